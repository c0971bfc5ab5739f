"""Render one generated module (per-element formulas, Distribution class) per family.

The derivation's expressions become *formula functions*: common subexpressions are shared
(``sympy.cse``), each function is printed once in the scalar source (irtgen.scalar), which numba
compiles for the CPU and Triton for the GPU, and the jinja2 template in ``templates/`` arranges
them into a module. The kernels that run them are not generated: they are written once in
irtgen.compilers and specialised on these functions. Numeric CSE temporaries are inlined again: a
float bound to a name inside a Triton function would become float32 under the interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import jinja2
import sympy as sp

from irtgen.codegen.functions import JOINT_CALLS, SPECIAL_FUNCTIONS, VARIATES
from irtgen.codegen.printer import Printer, float_literal
from irtgen.constraints import support_constraint_source
from irtgen.derive import Derivation


@dataclass
class FormulaFunction:
    """One formula function, printed for one backend."""

    name: str
    args: list[str]
    lines: list[str]  # "_t0 = ..." assignments
    returns: list[str]
    comments: list[str] = field(default_factory=list)  # "label = formula" for humans

    @property
    def signature(self) -> str:
        return ", ".join(self.args)

    @property
    def return_expr(self) -> str:
        return self.returns[0] if len(self.returns) == 1 else ", ".join(self.returns)


def _cse(exprs: list[sp.Basic]):
    replacements, reduced = sp.cse(
        [sp.sympify(e) for e in exprs], symbols=sp.numbered_symbols("_t"), order="none"
    )
    kept = []
    inline: dict = {}
    for sym, val in replacements:
        val = val.xreplace(inline)
        if not val.free_symbols:  # a number: keep it inline, never bound to a name
            inline[sym] = val
        else:
            kept.append((sym, val))
    reduced = [e.xreplace(inline) for e in reduced]
    return kept, reduced


def _joint_calls(exprs: list[sp.Basic]):
    """Each group of JOINT_CALLS that ``exprs`` call with the same arguments replaced by fresh
    symbols: (new exprs, [(symbols, arguments, template)])."""
    exprs = [sp.sympify(e) for e in exprs]
    joint, subs = [], {}
    for classes, template in JOINT_CALLS.items():
        calls = {c for e in exprs for c in e.atoms(*classes)}
        for call_args in sorted({c.args for c in calls}, key=sp.default_sort_key):
            group = [cls(*call_args) for cls in classes]
            if all(g in calls for g in group):
                k = len(joint)
                syms = [sp.Symbol(f"_j{k}_{i}") for i in range(len(group))]
                subs.update(zip(group, syms, strict=True))
                joint.append((syms, call_args, template))
    return [e.xreplace(subs) for e in exprs], joint


def _ordered(items: list[tuple[list[sp.Symbol], set, str]]) -> list[str]:
    """Lines (defined symbols, symbols used, text) in an order that defines every symbol before
    its use, keeping the given order where it already does."""
    defined = {s for syms, _, _ in items for s in syms}
    done: set = set()
    out, pending = [], list(items)
    while pending:
        i = next(i for i, (_, used, _) in enumerate(pending) if (used & defined) <= done)
        syms, _, text = pending.pop(i)
        done.update(syms)
        out.append(text)
    return out


def formula_function(
    name: str,
    args: list[str],
    outputs: list[tuple[str, sp.Basic]],
    backend: str,
    ref: str,
) -> FormulaFunction:
    """Print ``outputs`` (label, expression) as one function of ``args`` for ``backend``
    ("scalar": a per-element function of the one source; "torch": a torch expression of the
    parameters). In the scalar source, functions that one scalar function computes together
    (JOINT_CALLS) are computed by one call of it."""
    printer = Printer(backend, ref)
    exprs, joint = [e for _, e in outputs], []
    if backend == "scalar":
        exprs, joint = _joint_calls(exprs)
    joint_args = [a for _, call_args, _ in joint for a in call_args]
    kept, reduced = _cse(exprs + joint_args)
    reduced, reduced_args = reduced[: len(exprs)], reduced[len(exprs) :]
    comments = [f"{label} = {sp.sstr(e)}" for label, e in outputs]
    items = [([sym], val.free_symbols, f"{sym} = {printer.doprint(val)}") for sym, val in kept]
    for syms, call_args, template in joint:
        call_args, reduced_args = reduced_args[: len(call_args)], reduced_args[len(call_args) :]
        call = template.format(*(printer._tensor_arg(a) for a in call_args))
        used = set().union(*(a.free_symbols for a in call_args))
        items.append((syms, used, f"{', '.join(map(str, syms))} = {call}"))
    lines = _ordered(items)
    returns = [printer.output(e) for e in reduced]
    return FormulaFunction(name, args, lines, returns, comments)


def _support_condition(d: Derivation) -> sp.Basic:
    # a plain real symbol: with the derivation's z (positive on [0, oo)) SymPy would decide
    # z >= 0 is True and the generated check would let negative values through
    z = sp.Symbol(d.z.name, real=True)
    conds = []
    interval = d.spec.support
    if d.support_lo != -sp.oo:
        conds.append(z > d.support_lo if interval.left_open else z >= d.support_lo)
    if d.support_hi != sp.oo:
        conds.append(z < d.support_hi if interval.right_open else z <= d.support_hi)
    if not conds:
        return sp.true
    return sp.And(*conds, evaluate=False) if len(conds) > 1 else conds[0]


def _formulas(d: Derivation) -> dict[str, FormulaFunction]:
    """The family's per-element formulas, in the scalar source. The conventions outside the
    support are part of them: log q = -inf, F = 0 below and 1 above, S the reverse; icdf maps 0
    and 1 to the ends of the support and anything outside [0, 1] to NaN."""
    z = d.z.name
    ps = d.param_names
    zs = [z, *ps]
    bounded = d.support_lo != -sp.oo or d.support_hi != sp.oo

    def fn(op, args, outputs, ref):
        return formula_function(op, args, outputs, "scalar", ref)

    out = {
        "log_prob": fn("log_prob", zs, [("log q", d.log_pdf)], z),
        "cdf": fn("cdf", zs, [("F", d.cdf)], z),
        "sf": fn("sf", zs, [("S = 1 - F", d.sf)], z),
        "pdf": fn("pdf", zs, [("q", d.pdf)], z),
        "log_prob_grad": fn(
            "log_prob_grad",
            zs,
            [(f"d log q/d{z}", d.dlog_pdf_dz)]
            + [(f"d log q/d{p}", e) for p, e in zip(ps, d.dlog_pdf, strict=True)],
            z,
        ),
        "cdf_grad": fn(
            "cdf_grad",
            zs,
            [(f"dF/d{z} = q", d.pdf)] + [(f"dF/d{p}", e) for p, e in zip(ps, d.dcdf, strict=True)],
            z,
        ),
        "implicit_grad": fn(
            "implicit_grad",
            zs,
            [(f"d{z}/du = 1/q", d.inv_pdf)]
            + [(f"d{z}/d{p}", e) for p, e in zip(ps, d.implicit, strict=True)],
            z,
        ),
        "support": fn(
            "support", ps, [("lower end", d.support_lo), ("upper end", d.support_hi)], ps[0]
        ),
        "in_support": fn("in_support", zs, [("inside", _support_condition(d))], z),
    }
    plist = ", ".join(ps)
    if bounded:
        f = out["log_prob"]
        f.lines.append(f"_out = {f.returns[0]}")
        f.returns = [f'tl.where(in_support({z}, {plist}), _out, -float("inf"))']
        for op, below, above in (("cdf", "0.0", "1.0"), ("sf", "1.0", "0.0")):
            f = out[op]
            f.lines += [f"_out = {f.returns[0]}", f"_lo, _hi = support({plist})"]
            f.returns = [f"tl.where({z} < _lo, {below}, tl.where({z} > _hi, {above}, _out))"]
    if d.icdf is not None:
        u = d.u.name
        f = fn("icdf", [u, *ps], [(f"{z} = F^-1({u})", d.icdf)], u)
        f.lines += [f"_out = {f.returns[0]}", f"_lo, _hi = support({plist})"]
        f.returns = [
            f'tl.where(({u} < 0.0) | ({u} > 1.0), float("nan"), '
            f"tl.where({u} <= 0.0, _lo, tl.where({u} >= 1.0, _hi, _out)))"
        ]
        out["icdf"] = f
    return out


def _sampler(d: Derivation) -> FormulaFunction:
    """``sample(_seed, _offs, params...)``: the spec's sampler, each distinct variate call drawn
    once (stream k for the k-th call); without a sampler, icdf of a Philox uniform."""
    ps = d.param_names
    args = ["_seed", "_offs", *ps]
    printer = Printer("scalar", ps[0])
    expr = d.spec.sampler
    if expr is None:
        f = formula_function("sample", args, [], "scalar", ps[0])
        f.comments = [f"{d.z.name} = F^-1(u), u uniform on (0, 1)"]
        f.returns = [f"icdf(rnd.uniform(_seed, _offs), {', '.join(ps)})"]
        return f
    expr = sp.sympify(expr).xreplace(dict(zip(d.spec.params, d.params, strict=True)))
    calls = sorted(expr.atoms(*VARIATES), key=sp.default_sort_key)
    draws = [sp.Symbol(f"_r{k}") for k in range(len(calls))]
    lines = []
    for k, (call, sym) in enumerate(zip(calls, draws, strict=True)):
        impl = VARIATES[type(call)].scalar
        # standard_normal's optional argument is a label, not an input
        printed = [] if type(call).__name__ == "standard_normal" else call.args
        printed = [printer.doprint(a) for a in printed]
        lines.append(f"{sym} = " + impl.format(*printed, stream=k))
    body = expr.xreplace(dict(zip(calls, draws, strict=True)))
    f = formula_function("sample", args, [(f"{d.z.name} = {sp.sstr(expr)}", body)], "scalar", ps[0])
    f.lines = lines + f.lines
    return f


def _uses_special_functions(d: Derivation) -> bool:
    """Whether the derivative formulas call the incomplete gamma/beta or Student-t functions:
    then the backward runs in float64 (their products overflow float32 in far tails)."""
    exprs = [d.pdf, d.inv_pdf, d.dlog_pdf_dz, *d.dcdf, *d.dlog_pdf, *d.implicit]
    return any(e.atoms(*SPECIAL_FUNCTIONS) for e in exprs)


def _extras(d: Derivation) -> list[dict]:
    extras = []
    for key, expr in d.extras.items():
        f = formula_function(
            f"{key}_torch", d.param_names, [(key, expr)], "torch", d.param_names[0]
        )
        extras.append({"name": key, "fn": f})
    return extras


def template_environment() -> jinja2.Environment:
    path = resources.files("irtgen.templates")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_module(d: Derivation, spec_label: str, command: str) -> str:
    """Source of the generated module for one derivation."""
    spec = d.spec
    params = []
    for sym, c in spec.constraints.items():
        params.append({"name": sym.name, "constraint": c.torch_source, "cname": c.name})
    support_src = None if d.support_is_param_dependent else support_constraint_source(spec.support)
    context = {
        "name": spec.name,
        "snake": spec.snake_name,
        "doc": spec.doc,
        "spec_label": spec_label,
        "command": command,
        "var": d.z.name,
        "u": d.u.name,
        "params": params,
        "param_list": ", ".join(d.param_names),
        "init_params": ", ".join(
            f"{p.name}={float_literal(spec.defaults[p])}"
            if spec.defaults and p in spec.defaults
            else p.name
            for p in spec.params
        ),
        "formulas": _formulas(d),
        "has_icdf": d.icdf is not None,
        "wide_gradients": _uses_special_functions(d),
        "sampler": _sampler(d),
        "has_sampler": spec.sampler is not None,
        "sampler_text": sp.sstr(spec.sampler) if spec.sampler is not None else None,
        "has_bounds": d.support_lo != -sp.oo or d.support_hi != sp.oo,
        "support_src": support_src,
        "support_text": sp.sstr(spec.support),
        "interval_kind": _interval_kind(spec.support),
        "cdf_text": sp.sstr(spec.cdf),
        "icdf_text": sp.sstr(spec.icdf.expr) if spec.icdf is not None else None,
        "extras": _extras(d),
    }
    env = template_environment()
    context["imports"], context["import_math"] = [], False
    body = env.get_template("module.py.j2").render(**context)
    # import the scalar modules the formulas call, and no others
    context["imports"] = [(m, alias) for m, alias in _SCALAR_IMPORTS if f"{alias}." in body]
    context["import_math"] = "math." in body
    return env.get_template("module.py.j2").render(**context)


def _interval_kind(interval: sp.Interval) -> str:
    """torch constraint constructor for a parameter-dependent support."""
    if interval.end == sp.oo:
        return "greater_than" if interval.left_open else "greater_than_eq"
    if interval.start == -sp.oo:
        return "less_than"
    if interval.right_open and not interval.left_open:
        return "half_open_interval"
    return "interval"


_SCALAR_IMPORTS = [
    ("beta", "be"),
    ("elementary", "el"),
    ("gamma", "ga"),
    ("inversion", "inversion"),
    ("random", "rnd"),
    ("student_t", "st"),
]
