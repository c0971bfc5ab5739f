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

from irtgen.codegen.functions import (
    JOINT_CALLS,
    JOINT_PARAMETER_PARTS,
    PARAMETER_PARTS,
    SPECIAL_FUNCTIONS,
    VARIATES,
)
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
    # parameter terms (_hoist): the function of the parameters alone that computes them, and
    # their names, which are extra arguments of this function
    terms: FormulaFunction | None = None
    term_names: list[str] = field(default_factory=list)

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


def _worth_hoisting(e: sp.Basic) -> bool:
    """Whether a parameter-only subexpression is worth an extra argument: a function call or a
    general power (exp(c log x)) somewhere in it. Divisions and square roots stay where they
    are: hoisting 1/s out of x/s would round twice."""
    for node in sp.preorder_traversal(e):
        if isinstance(node, sp.Function):
            return True
        if isinstance(node, sp.Pow) and not (node.exp.is_Integer or abs(node.exp) == sp.S.Half):
            return True
    return False


def _hoist(exprs: list[sp.Basic], params: set[sp.Symbol]):
    """The maximal subexpressions of ``exprs`` that depend on the parameters alone and are worth
    computing once per parameter value (_worth_hoisting), replaced by symbols ``_p0``, ``_p1``,
    ...: (new exprs, [(symbol, subexpression)])."""
    found: dict[sp.Basic, sp.Symbol] = {}

    def visit(e: sp.Basic) -> None:
        if (
            isinstance(e, sp.Expr)
            and not e.is_Atom
            and e.free_symbols
            and e.free_symbols <= params
            and _worth_hoisting(e)
        ):
            if e not in found:
                found[e] = sp.Symbol(f"_p{len(found)}")
            return
        for arg in e.args:
            visit(arg)

    for e in exprs:
        visit(sp.sympify(e))
    new = [sp.sympify(e).xreplace(found) for e in exprs]
    return new, [(sym, e) for e, sym in found.items()]


def _split_parts(exprs: list[sp.Basic], joint, params: set[sp.Symbol]):
    """Calls of PARAMETER_PARTS functions whose first k arguments depend on the parameters
    alone, rewritten to the ``_at`` form with the part as an argument (which _hoist then
    makes a parameter term); joint calls likewise (JOINT_PARAMETER_PARTS)."""

    def splits(e) -> bool:
        k = PARAMETER_PARTS[type(e)][0]
        head = [a.free_symbols for a in e.args[:k]]
        return all(h <= params for h in head) and not e.free_symbols <= params

    def rewrite(e):
        k, part, at = PARAMETER_PARTS[type(e)]
        return at(*e.args, part(*e.args[:k]))

    classes = tuple(PARAMETER_PARTS)
    new = [
        sp.sympify(e).replace(lambda n: isinstance(n, classes) and splits(n), rewrite)
        for e in exprs
    ]
    new_joint = []
    for syms, call_args, template in joint:
        k, part, at_template = JOINT_PARAMETER_PARTS.get(template, (None, None, None))
        if k is not None and all(sp.sympify(a).free_symbols <= params for a in call_args[:k]):
            call_args = (*call_args, part(*call_args[:k]))
            template = at_template
        new_joint.append((syms, call_args, template))
    return new, new_joint


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
    hoist: list[str] | None = None,
) -> FormulaFunction:
    """Print ``outputs`` (label, expression) as one function of ``args`` for ``backend``
    ("scalar": a per-element function of the one source; "torch": a torch expression of the
    parameters). In the scalar source, functions that one scalar function computes together
    (JOINT_CALLS) are computed by one call of it. With ``hoist`` (the parameter names), the
    subexpressions of the parameters alone (_hoist) become extra arguments, computed by
    ``.terms``, a function of the parameters (so the CPU kernels compute them once per
    parameter value rather than once per element)."""
    printer = Printer(backend, ref)
    exprs, joint = [e for _, e in outputs], []
    if backend == "scalar":
        exprs, joint = _joint_calls(exprs)
    joint_args = [a for _, call_args, _ in joint for a in call_args]
    terms = []
    if hoist:
        symbols = {
            s for e in exprs + joint_args for s in sp.sympify(e).free_symbols if s.name in hoist
        }
        exprs, joint = _split_parts(exprs, joint, symbols)
        joint_args = [a for _, call_args, _ in joint for a in call_args]
        hoisted, terms = _hoist(exprs + joint_args, symbols)
        exprs, joint_args = hoisted[: len(exprs)], hoisted[len(exprs) :]
        joint = _rejoin(joint, joint_args)
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
    f = FormulaFunction(name, args, lines, returns, comments)
    if terms:
        f.term_names = [str(sym) for sym, _ in terms]
        f.terms = formula_function(
            f"{name}_terms", hoist, [(str(sym), e) for sym, e in terms], backend, hoist[0]
        )
        f.terms.comments = [f"parameter terms of {name}:", *f.terms.comments]
    return f


def _rejoin(joint, joint_args):
    """``joint`` with its calls' arguments replaced by ``joint_args`` (in order)."""
    out, k = [], 0
    for syms, call_args, template in joint:
        out.append((syms, tuple(joint_args[k : k + len(call_args)]), template))
        k += len(call_args)
    return out


def split_parts(f: FormulaFunction) -> list[FormulaFunction]:
    """The functions to print for ``f``: f itself, or, where it has parameter terms, the terms
    function, ``<name>_at`` (f with the terms as arguments) and ``<name>``, which calls both."""
    if f.terms is None:
        return [f]
    names = ", ".join(f.term_names)
    at = FormulaFunction(f"{f.name}_at", f.args + f.term_names, f.lines, f.returns, f.comments)
    whole = FormulaFunction(
        f.name,
        f.args,
        [f"{names} = {f.terms.name}({', '.join(f.terms.args)})"],
        [f"{at.name}({', '.join(at.args)})"],
        [
            f"{f.name} = {at.name} with {f.terms.name} (computed once per parameter value on the CPU)"
        ],
    )
    return [f.terms, at, whole]


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
        hoist = ps if op not in ("support", "in_support") else None
        return formula_function(op, args, outputs, "scalar", ref, hoist)

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


def _base_draw(d: Derivation) -> str | None:
    """What one draw transforms: "uniform" (no sampler: icdf of a uniform), "normal" (a sampler
    with one standard_normal and no other variate) or None (rejection variates)."""
    if d.spec.sampler is None:
        return "uniform"
    calls = sp.sympify(d.spec.sampler).atoms(*VARIATES)
    if len(calls) == 1 and type(next(iter(calls))).__name__ == "standard_normal":
        return "normal"
    return None


def _sample_from_normal(d: Derivation) -> FormulaFunction | None:
    """``sample_from_normal(_r0, params...)``: the sampler with its standard normal given, for
    draws whose normals come from torch's generator (irtgen.runtime.ops.draw)."""
    if _base_draw(d) != "normal":
        return None
    ps = d.param_names
    expr = sp.sympify(d.spec.sampler).xreplace(dict(zip(d.spec.params, d.params, strict=True)))
    (call,) = expr.atoms(*VARIATES)
    body = expr.xreplace({call: sp.Symbol("_r0", real=True)})
    return formula_function(
        "sample_from_normal",
        ["_r0", *ps],
        [(f"{d.z.name} = {sp.sstr(expr)} at standard_normal() = _r0, i.e. {d.z.name}", body)],
        "scalar",
        "_r0",
    )


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


def _exponential_family(d: Derivation) -> dict | None:
    """torch's ExponentialFamily interface where log q = Σ η_i(θ) T_i(z) − A(η) with carrier
    measure 1 (irtgen.derive.exponential_family): the natural parameters as a torch function of
    the parameters, the log normalizer as one of the η (autograd differentiates both, as torch's
    Bregman entropy and KL need), and the statistics, a function of the variable."""
    form = d.exponential_family
    if form is None:
        return None
    ps, z = d.param_names, d.z.name
    etas = [k.name for k in form.eta]
    stats = [sp.sstr(t) for t in form.statistics]
    natural = formula_function(
        "natural_params_torch",
        ps,
        [
            (f"{k} (coefficient of {t})", e)
            for k, t, e in zip(etas, stats, form.natural_params, strict=True)
        ],
        "torch",
        ps[0],
    )
    normalizer = formula_function(
        "log_normalizer_torch", etas, [("A", form.log_normalizer)], "torch", etas[0]
    )
    statistics = formula_function(
        "sufficient_statistics_torch",
        [z],
        [(f"T{i + 1}", t) for i, t in enumerate(form.statistics)],
        "torch",
        z,
    )
    for f in (natural, statistics):
        if len(f.returns) == 1:  # a tuple, as torch's _natural_params
            f.returns = [f"({f.returns[0]},)"]
    terms = " + ".join(sp.sstr(k * t) for k, t in zip(form.eta, form.statistics, strict=True))
    return {
        "natural": natural,
        "normalizer": normalizer,
        "statistics": statistics,
        "etas": etas,
        "formula": f"log q({z}) = {terms} - A({', '.join(etas)}), carrier measure 1",
    }


def _parent(d: Derivation) -> dict | None:
    """The built-in class a family subclasses (spec.parent): its module and, per parameter of
    the parent, a torch function of the family's own parameters."""
    if d.parent is None:
        return None
    from irtgen.spec import snake_case

    name, mapping = d.parent
    params = []
    for pname, expr in mapping.items():
        f = formula_function(
            f"parent_{pname}_torch", d.param_names, [(pname, expr)], "torch", d.param_names[0]
        )
        params.append({"name": pname, "fn": f})
    return {"name": name, "module": f"irtgen.generated.{snake_case(name)}", "params": params}


def template_environment() -> jinja2.Environment:
    path = resources.files("irtgen.templates")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_module(d: Derivation, spec_label: str, command: str, audit=None) -> str:
    """Source of the generated module for one derivation (with the accuracy table of
    ``audit``, an irtgen.audit.AuditReport, in its docstring)."""
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
        "formulas": {k: split_parts(f) for k, f in _formulas(d).items()},
        "has_icdf": d.icdf is not None,
        "wide_gradients": _uses_special_functions(d),
        "sampler": _sampler(d),
        "sample_from_normal": _sample_from_normal(d),
        "base_draw": _base_draw(d),
        "has_sampler": spec.sampler is not None,
        "sampler_text": sp.sstr(spec.sampler) if spec.sampler is not None else None,
        "has_bounds": d.support_lo != -sp.oo or d.support_hi != sp.oo,
        "support_src": support_src,
        "support_text": sp.sstr(spec.support),
        "interval_kind": _interval_kind(spec.support),
        "cdf_text": sp.sstr(spec.cdf),
        "icdf_text": sp.sstr(spec.icdf.expr) if spec.icdf is not None else None,
        "extras": _extras(d),
        "parent": _parent(d),
        "exp_family": _exponential_family(d),
        "audit": audit,
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
