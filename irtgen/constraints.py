"""Parameter constraints: torch.distributions constraint names and what they mean symbolically.

A spec declares each parameter with a constraint name, e.g. ``{a: "positive"}``. This table maps
the name to (1) the SymPy assumptions used while deriving, (2) the source of the torch constraint
written into the generated class, and (3) a domain interval used by build-time checks.
Parameterised names take numeric arguments: ``"greater_than(1)"``, ``"interval(0, 1)"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint name."""

    name: str  # as written in the spec, normalised ("greater_than(1)")
    torch_source: str  # expression in generated code, e.g. "constraints.positive"
    interval: sp.Interval  # the set of allowed values
    assumptions: dict  # SymPy assumptions for the symbol during derivation


# name -> (torch source, interval, assumptions)
_SIMPLE: dict[str, tuple[str, sp.Interval, dict]] = {
    "real": ("constraints.real", sp.Interval(-sp.oo, sp.oo), {"real": True}),
    "positive": ("constraints.positive", sp.Interval.open(0, sp.oo), {"positive": True}),
    "nonnegative": (
        "constraints.nonnegative",
        sp.Interval(0, sp.oo),
        {"nonnegative": True, "real": True},
    ),
    "unit_interval": ("constraints.unit_interval", sp.Interval(0, 1), {"nonnegative": True}),
}

# name(args) -> (torch constructor, interval builder, number of args)
_PARAMETERISED = {
    "greater_than": ("constraints.greater_than", lambda c: sp.Interval.open(c, sp.oo), 1),
    "greater_than_eq": ("constraints.greater_than_eq", lambda c: sp.Interval(c, sp.oo), 1),
    "less_than": ("constraints.less_than", lambda c: sp.Interval.open(-sp.oo, c), 1),
    "interval": ("constraints.interval", lambda lo, hi: sp.Interval(lo, hi), 2),
    "half_open_interval": (
        "constraints.half_open_interval",
        lambda lo, hi: sp.Interval.Ropen(lo, hi),
        2,
    ),
}

CONSTRAINT_NAMES = tuple(_SIMPLE) + tuple(f"{k}(...)" for k in _PARAMETERISED)


def _assumptions_for(interval: sp.Interval) -> dict:
    lo = interval.start
    if lo.is_positive or (lo == 0 and interval.left_open):
        return {"positive": True}
    if lo.is_nonnegative:
        return {"nonnegative": True, "real": True}
    return {"real": True}


def parse_constraint(text: str) -> Constraint:
    """Parse a constraint name such as ``"positive"`` or ``"interval(0, 1)"``."""
    if not isinstance(text, str):
        raise TypeError(f"constraint must be a string name, got {type(text).__name__}")
    name = text.strip()
    if name in _SIMPLE:
        src, interval, assumptions = _SIMPLE[name]
        return Constraint(name, src, interval, dict(assumptions))
    m = re.fullmatch(r"(\w+)\s*\((.*)\)", name)
    if m and m.group(1) in _PARAMETERISED:
        ctor, build, nargs = _PARAMETERISED[m.group(1)]
        parts = [p.strip() for p in m.group(2).split(",") if p.strip()]
        if len(parts) != nargs:
            raise ValueError(f"constraint {name!r} takes {nargs} numeric argument(s)")
        try:
            values = [sp.nsimplify(float(p), rational=True) for p in parts]
        except ValueError:
            raise ValueError(f"constraint {name!r}: arguments must be numbers") from None
        interval = build(*values)
        if interval.is_empty:
            raise ValueError(f"constraint {name!r} allows no value")
        args = ", ".join(repr(float(v)) for v in values)
        norm = f"{m.group(1)}({', '.join(parts)})"
        return Constraint(norm, f"{ctor}({args})", interval, _assumptions_for(interval))
    raise ValueError(f"unknown constraint {text!r}; known: {', '.join(CONSTRAINT_NAMES)}")


def support_constraint_source(interval: sp.Interval) -> str | None:
    """torch constraint source for a support with numeric ends, or None if no name fits."""
    lo, hi = interval.start, interval.end
    if lo == -sp.oo and hi == sp.oo:
        return "constraints.real"
    if lo == 0 and hi == sp.oo:
        return "constraints.positive" if interval.left_open else "constraints.nonnegative"
    if lo == 0 and hi == 1 and not interval.left_open and not interval.right_open:
        return "constraints.unit_interval"
    if hi == sp.oo:
        kind = "greater_than" if interval.left_open else "greater_than_eq"
        return f"constraints.{kind}({float(lo)!r})"
    if lo == -sp.oo:
        return f"constraints.less_than({float(hi)!r})"
    if interval.right_open and not interval.left_open:
        return f"constraints.half_open_interval({float(lo)!r}, {float(hi)!r})"
    return f"constraints.interval({float(lo)!r}, {float(hi)!r})"
