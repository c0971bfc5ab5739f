"""``irtgen.truncate(spec, low, high)``: a spec restricted to an interval, as a new spec.

For a base with CDF F on its support [s, t], the truncation to [a, b] ⊆ [s, t] is the spec with

    F_T(z) = (F(z) - F(a)) / (F(b) - F(a))    on [a, b].

The new spec has no closed-form icdf: the base's G(F(a) + u (F(b) - F(a))) loses every digit when
[a, b] lies in a tail (F(a) rounds to 1 beyond 8σ of a Normal), so the icdf and the draws use the
compiler's numeric inversion of F_T, which keeps its accuracy there. The compiler then treats it as any user's CDF: it derives the density and dz/dθ (to the base's parameters and
to the bounds), rewrites the differences of CDFs (irtgen.rewrite), audits every formula against
mpmath (irtgen.audit) and, where a form is inaccurate, searches for a better one (irtgen.search).

Bounds are numbers (±oo allowed), ``None`` (the base's own end) or SymPy expressions. Symbols in
them that are not parameters of the base become parameters of the new spec, after the base's,
with the constraint named in ``params`` or implied by the symbol's assumptions ("positive",
"nonnegative", else "real"). The compiler's checks ask that the support be non-empty for every
allowed parameter value, so two free bounds are written as ``low=a, high=a + w`` with w positive.

The runtime alternative, ``irtgen.distributions.Truncated(base, low, high)``, truncates an
already generated class and carries tensor bounds; this one gives a generated class of its own.
"""

from __future__ import annotations

import sympy as sp

from irtgen.constraints import parse_constraint
from irtgen.spec import Distribution, SpecError, snake_case


def _base_spec(spec) -> Distribution:
    if isinstance(spec, Distribution):
        return spec
    if isinstance(spec, str):
        from irtgen.build import builtin_spec_dir, load_spec_file

        path = builtin_spec_dir() / f"{snake_case(spec)}.py"
        found = [d for d in load_spec_file(path) if d.name == spec] if path.is_file() else []
        if found:
            return found[0]
        raise SpecError(f"truncate: no built-in distribution named {spec!r}")
    raise SpecError(
        f"truncate: the base must be an irtgen.Distribution or a built-in's name, got "
        f"{type(spec).__name__}"
    )


def _constraint_of(sym: sp.Symbol) -> str:
    if sym.is_positive:
        return "positive"
    if sym.is_nonnegative:
        return "nonnegative"
    return "real"


def _bound(value, what: str, label: str):
    if isinstance(value, bool) or not isinstance(value, (int, float, sp.Basic)):
        raise SpecError(
            f"{label}: the {what} bound must be a number, None or a SymPy expression, got "
            f"{type(value).__name__} ({value!r})"
        )
    expr = sp.sympify(value)
    if expr.is_real is False or expr is sp.nan:
        raise SpecError(f"{label}: the {what} bound {expr} is not a real number")
    return expr


def _provably(gap: sp.Expr, constraints: dict, strict: bool) -> bool:
    """gap > 0 (strict) or >= 0 for all parameter values within their constraints: by SymPy's
    assumptions of symbols carrying the constraints', else by interval arithmetic over the
    constraints' intervals (conservative: False when undecided)."""
    assumed = {s: sp.Symbol(s.name, **c.assumptions) for s, c in constraints.items()}
    g = gap.xreplace(assumed)
    if g is sp.oo or (g.is_positive if strict else g.is_nonnegative) is True:
        return True
    if not gap.free_symbols:
        return False
    bounds = {}
    for sym in gap.free_symbols:
        interval = constraints[sym].interval
        bounds[sym] = sp.AccumBounds(interval.start, interval.end)
    try:
        low = gap.xreplace(bounds)
        low = low.min if isinstance(low, sp.AccumBounds) else low
    except (TypeError, ValueError, NotImplementedError):
        return False
    return bool(low > 0) if strict else bool(low >= 0)


def truncate(
    spec,
    low=None,
    high=None,
    *,
    name: str | None = None,
    params: dict | None = None,
    doc: str | None = None,
) -> Distribution:
    """The distribution ``spec`` restricted to [low, high], as a new ``irtgen.Distribution``.

    Args:
        spec: an ``irtgen.Distribution`` or the name of a built-in (``"Normal"``, ``"Gamma"``...).
        low, high: the bounds: numbers, ``None`` for the base's own end, or SymPy expressions
            whose new symbols become parameters (e.g. ``low=a, high=a + w``).
        name: the class name; ``"Truncated" + spec.name`` by default.
        params: constraints of the new parameters, ``{symbol: constraint name}``; a symbol not
            listed gets "positive", "nonnegative" or "real" from its SymPy assumptions.
        doc: the class description; by default it says what was truncated to what.

    The new spec keeps the base's variable, parameters (then the new ones) and ``max_error``.
    Its sampler, moments, mode and parent are the base's no longer, so they are dropped; the
    icdf and draws come from the numeric inversion of the new CDF. The base's defaults are kept when no parameter is added.
    """
    base = _base_spec(spec)
    name = name if name is not None else f"Truncated{base.name}"
    label = name if isinstance(name, str) else "truncate"
    z = base.variable
    start, end = base.support.start, base.support.end
    lo = start if low is None else _bound(low, "lower", label)
    hi = end if high is None else _bound(high, "upper", label)

    params = dict(params or {})
    for sym in params:
        if not isinstance(sym, sp.Symbol):
            raise SpecError(f"{label}: params keys must be SymPy Symbols, got {sym!r}")
    new = sorted((lo.free_symbols | hi.free_symbols) - set(base.params), key=str)
    if z in new:
        raise SpecError(f"{label}: the bounds must not contain the variable {z}")
    taken = {s.name for s in base.params} | {z.name}
    for sym in new:
        if sym.name in taken:
            raise SpecError(
                f"{label}: the bound's symbol {sym.name} has the name of the base's "
                f"{'variable' if sym.name == z.name else 'parameter'} but other assumptions; "
                "use the base's own symbol or another name"
            )
    stray = [s for s in params if s not in new]
    if stray:
        raise SpecError(
            f"{label}: params lists {', '.join(map(str, stray))}, which appear in no bound"
        )
    all_params = dict(base.params)
    all_params.update({s: params.get(s, _constraint_of(s)) for s in new})

    # the bounds must lie in the base's support and leave a non-empty interval, for every
    # parameter value the constraints allow
    constraints = {}
    for sym, cname in all_params.items():
        try:
            constraints[sym] = parse_constraint(cname)
        except (ValueError, TypeError) as err:
            raise SpecError(f"{label}: parameter {sym}: {err}") from None
    for what, expr, gap in (("lower", lo, lo - start), ("upper", hi, end - hi)):
        if expr in (start, end) or _provably(gap, constraints, strict=False):
            continue
        raise SpecError(
            f"{label}: the {what} bound {expr} may lie outside the base's support "
            f"{base.support} (it must hold for every allowed parameter value; give the "
            "bound's symbols a constraint that ensures it, e.g. 'positive')"
        )
    if not _provably(hi - lo, constraints, strict=True):
        raise SpecError(
            f"{label}: cannot show that {lo} < {hi} for every allowed parameter value; write "
            "two free bounds as low=a, high=a + w with w a positive parameter"
        )

    cdf = base.cdf

    def at(x):
        if x == start:
            return sp.S.Zero
        if x == end:
            return sp.S.One
        return cdf.subs(z, x)

    f_lo, f_hi = at(lo), at(hi)
    if f_lo == 0 and f_hi == 1:
        raise SpecError(f"{label}: the bounds [{lo}, {hi}] truncate nothing of {base.name}")
    truncated = (cdf - f_lo) / (f_hi - f_lo)
    left_open = base.support.left_open if lo == start else False
    right_open = base.support.right_open if hi == end else False
    if lo is sp.S.NegativeInfinity:
        left_open = True
    if hi is sp.S.Infinity:
        right_open = True
    support = sp.Interval(lo, hi, left_open, right_open)
    describe = doc or (f"{base.name} truncated to [{lo}, {hi}].")
    return Distribution(
        name=name,
        variable=z,
        params=all_params,
        support=support,
        cdf=truncated,
        defaults=base.defaults if not new else None,
        doc=describe,
        max_error=base.max_error,
    )
