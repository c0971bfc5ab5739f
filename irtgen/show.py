"""``irtgen show``: what irtgen derives for a spec, as text for a terminal or as LaTeX.

``describe(spec_or_derivation)`` returns, for one distribution, its support, its parameters with
their constraints, how samples are drawn, and the formulas the generated code computes: the CDF,
the density q = ∂F/∂z, log q and the implicit gradient dz/dθ = −(∂F/∂θ)/q of every parameter,
exactly as derived and simplified (after irtgen's numerically safer rewrites, so the functions of
``irtgen.functions`` that appear are listed with their meaning). ``show_spec(path)`` does that for
every distribution of a spec file.
"""

from __future__ import annotations

import os
import shutil
import textwrap

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.latex import LatexPrinter
from sympy.printing.pretty.pretty import PrettyPrinter
from sympy.printing.pretty.stringpict import prettyForm, stringPict

from irtgen.derive import Derivation, derive
from irtgen.spec import Distribution

INDENT = "    "
NUMERIC_INVERSION = "numeric inversion of the CDF (bracketing, then safeguarded Newton)"

# Short meanings of SymPy's numerically careful functions that the rewrites introduce; irtgen's
# own functions are described by the first sentence of their docstrings.
_SYMPY_FUNCTIONS = {
    expm1: "exp(x) - 1, accurate for x near 0",
    log1p: "log(1 + x), accurate for x near 0",
}


# -- printers ----------------------------------------------------------------------------------


class _Pretty(PrettyPrinter):
    """SymPy's pretty printer, with function names printed as written (SymPy would read
    ``log_gamma_density`` as a symbol with a subscript and print ``log_γ_density``, and ``expm1``
    as ``expm₁``)."""

    def _helper_print_function(self, func, args, sort=False, func_name=None, **kwargs):
        name = func_name or getattr(func, "__name__", None)
        literal = name and ("_" in name or any(c.isdigit() for c in name))
        if not literal or kwargs.get("elementwise"):
            return super()._helper_print_function(func, args, sort, func_name, **kwargs)
        if sort:
            args = sorted(args, key=sp.default_sort_key)
        pretty_func = prettyForm(name)
        pretty_args = prettyForm(*self._print_seq(args, delimiter=", ").parens())
        picture, baseline = stringPict.next(pretty_func, pretty_args)
        pform = prettyForm(picture, baseline, binding=prettyForm.FUNC)
        pform.prettyFunc = pretty_func
        pform.prettyArgs = pretty_args
        return pform


class _Latex(LatexPrinter):
    """SymPy's LaTeX printer, with ``log_gamma_density`` as one operator name (SymPy prints
    ``\\operatorname{log}_{\\gamma density}``) and ``expm1`` as one (not ``expm_{1}``)."""

    def _hprint_Function(self, func: str) -> str:  # noqa: N802 - SymPy's method name
        if "_" in func or any(c.isdigit() for c in func):
            return r"\operatorname{" + func.replace("_", r"\_") + "}"
        return super()._hprint_Function(func)


def _symbol_names(exprs) -> dict:
    """Multi-letter names as one italic word (``\\mathit{scale}``, not the product of five
    letters); Greek names (``alpha``) and subscripted ones (``x_0``) keep SymPy's form."""
    names = {}
    for e in exprs:
        for s in sp.sympify(e).free_symbols:
            plain = sp.latex(sp.Symbol(s.name))
            if len(s.name) > 1 and plain == s.name:
                names[s] = r"\mathit{" + s.name + "}"
    return names


def _width() -> int:
    """Terminal width (COLUMNS, then the terminal, else 100), at least 40."""
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def _pretty(expr, width: int) -> str:
    """SymPy's two-dimensional unicode form when it fits in ``width`` columns, else the one-line
    form broken before top-level ``+``/``-`` (SymPy's own wrapping cuts a 2-D picture into
    stacked chunks, which is hard to read)."""
    expr = sp.sympify(expr)
    text = _Pretty({"use_unicode": True, "wrap_line": False}).doprint(expr)
    lines = [line.rstrip() for line in text.splitlines()]
    if max(map(len, lines)) <= width:
        return "\n".join(lines)
    return _wrap_linear(sp.sstr(expr), width)


def _break_points(text: str, ops: tuple[str, ...]) -> list[int]:
    """Indices (outside parentheses) where a line may break before one of ``ops``: ``"+"`` and
    ``"-"`` stand for the binary `` + ``/`` - ``, ``"*"`` and ``"/"`` for products and quotients
    (not ``**``)."""
    points, depth = [], 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth or i == 0:
            continue
        elif ch in "+-" and ch in ops and text[i - 1 : i + 2] == f" {ch} ":
            points.append(i - 1)
        elif ch in "*/" and ch in ops and "*" not in (text[i - 1], text[i + 1 : i + 2]):
            points.append(i)
    return points


def _split(text: str, points: list[int]) -> list[str]:
    bounds = [0, *points, len(text)]
    return [text[a:b].strip() for a, b in zip(bounds, bounds[1:], strict=False) if a < b]


def _wrap_linear(text: str, width: int, indent: str = "  ") -> str:
    """``text`` in lines of at most ``width`` where possible: broken before a `` + `` or `` - ``
    outside parentheses, and a term still too wide before its outermost ``*`` or ``/``; never
    inside a name. Continuation lines are indented."""
    pieces = []
    for term in _split(text, _break_points(text, ("+", "-"))):
        if len(term) + len(indent) > width:
            pieces += _split(term, _break_points(term, ("*", "/")))
        else:
            pieces.append(term)
    lines: list[str] = []
    for piece in pieces:
        joiner = "" if piece[:1] in "*/" else " "
        if lines and len(lines[-1]) + len(joiner) + len(piece) <= width:
            lines[-1] += joiner + piece
        else:
            lines.append((indent if lines else "") + piece)
    return "\n".join(lines)


# -- what a derivation says --------------------------------------------------------------------


def sampler_kind(spec: Distribution) -> str:
    """How ``sample``/``rsample`` draw: ``"sampler"`` (the spec's sampler formula), ``"icdf"``
    (the closed-form inverse CDF applied to uniforms) or ``"numeric"`` (numeric inversion of the
    CDF applied to uniforms). The generated module decides the same way: a sampler formula wins,
    then a closed-form icdf."""
    if spec.sampler is not None:
        return "sampler"
    if spec.icdf is not None:
        return "icdf"
    return "numeric"


def _arg_names(name: str, args) -> str:
    if name in ("log_ratio", "betaln"):
        return "a, b"
    if name.startswith("student_t"):
        return "df, t"
    return {1: "x", 2: "a, x", 4: "a, b, x, y"}.get(len(args), ", ".join("·" * len(args)))


def _functions_used(exprs) -> list[tuple[str, str]]:
    """(name(args), meaning) for irtgen's and SymPy's careful functions in ``exprs``."""
    found: dict[str, tuple[str, str]] = {}
    for e in exprs:
        for f in sp.sympify(e).atoms(sp.Function):
            cls = type(f)
            if cls in _SYMPY_FUNCTIONS:
                meaning = _SYMPY_FUNCTIONS[cls]
            elif cls.__module__ == "irtgen.functions" and cls.__doc__:
                meaning = " ".join(cls.__doc__.strip().split("\n\n")[0].split())
            else:
                continue
            found[cls.__name__] = (f"{cls.__name__}({_arg_names(cls.__name__, f.args)})", meaning)
    return [found[k] for k in sorted(found)]


def _spec_cdf(d: Derivation) -> sp.Basic:
    """The CDF as the user wrote it, in the derivation's symbols."""
    to_new = dict(zip(d.spec.params, d.params, strict=True))
    to_new[d.spec.variable] = d.z
    return d.spec.cdf.xreplace(to_new)


def _formulas(d: Derivation) -> list[tuple[str, str, sp.Basic]]:
    """(plain label, LaTeX label, expression) of every formula shown."""
    z = d.z.name
    theta = ", ".join(d.param_names)
    zt = sp.latex(d.z)
    names = _symbol_names([d.z, *d.params])
    tex = {p: names.get(p, sp.latex(p)) for p in d.params}
    tex_z = names.get(d.z, zt)
    tex_theta = ", ".join(tex[p] for p in d.params)
    rows = [
        (f"CDF  F({z}; {theta})", rf"F({tex_z}; {tex_theta})", _spec_cdf(d)),
        (f"density  q = ∂F/∂{z}", rf"q({tex_z}; {tex_theta})", d.pdf),
        ("log-density  log q", rf"\log q({tex_z}; {tex_theta})", d.log_pdf),
    ]
    for p, e in zip(d.params, d.implicit, strict=True):
        rows.append(
            (
                f"implicit gradient  d{z}/d{p.name} = −(∂F/∂{p.name})/q",
                rf"\frac{{\partial {tex_z}}}{{\partial {tex[p]}}}",
                e,
            )
        )
    if d.icdf is not None:
        rows.append(
            (
                f"inverse CDF  {z} = F⁻¹({d.u.name})",
                rf"F^{{-1}}({sp.latex(d.u)}; {tex_theta})",
                d.icdf,
            )
        )
    return rows


def _interval_text(d: Derivation, latex: bool) -> str:
    spec = d.spec
    lo_open, hi_open = spec.support.left_open, spec.support.right_open
    if latex:
        names = _symbol_names([d.support_lo, d.support_hi])
        lo, hi = (_Latex({"symbol_names": names}).doprint(e) for e in (d.support_lo, d.support_hi))
        left = r"\left(" if lo_open or d.support_lo == -sp.oo else r"\left["
        right = r"\right)" if hi_open or d.support_hi == sp.oo else r"\right]"
        return f"{sp.latex(d.z)} \\in {left}{lo}, {hi}{right}"
    return f"{d.z.name} ∈ {interval_text(d.support_lo, d.support_hi, lo_open, hi_open)}"


def _sampler_text(d: Derivation, latex: bool) -> list[tuple[str, str]]:
    """(method, how it computes) for ``sample``/``rsample`` and ``icdf``, as the generated
    module decides."""
    spec = d.spec
    z = d.z.name
    kind = sampler_kind(spec)
    icdf = "closed form (the inverse CDF below)" if spec.icdf is not None else NUMERIC_INVERSION
    if kind == "sampler":
        formula = sp.sstr(spec.sampler)
        if latex:
            names = _symbol_names([spec.sampler])
            formula = f"${_Latex({'symbol_names': names}).doprint(spec.sampler)}$"
        draw = f"sampler formula {z} = {formula} (irtgen.variates primitives)"
    elif kind == "icdf":
        draw = f"closed-form inverse CDF applied to uniforms, {z} = F⁻¹(u)"
    else:
        draw = f"{NUMERIC_INVERSION}, applied to uniforms"
        icdf = "the same numeric inversion"
    return [("sample/rsample", draw), ("icdf", icdf)]


def _params_text(d: Derivation, latex: bool) -> list[str]:
    spec = d.spec
    width = max(len(p.name) for p in d.params)
    cwidth = max(len(c.name) for c in spec.constraints.values())
    out = []
    for p_spec, p in zip(spec.params, d.params, strict=True):
        c = spec.constraints[p_spec]
        interval = c.interval
        rng = (
            f"${_Latex().doprint(interval)}$"
            if latex
            else interval_text(
                interval.start, interval.end, interval.left_open, interval.right_open
            )
        )
        line = f"{p.name:<{width}}  {c.name:<{cwidth}}  {rng}"
        if spec.defaults and p_spec in spec.defaults:
            line += f"  default {spec.defaults[p_spec]:g}"
        out.append(line)
    return out


def interval_text(lo, hi, left_open: bool, right_open: bool, infinity: str = "∞") -> str:
    """``[lo, hi)``-style text of an interval; an infinite end is always open."""
    a, b = (sp.sstr(e).replace("oo", infinity) for e in (lo, hi))
    left = "(" if left_open or lo == -sp.oo else "["
    right = ")" if right_open or hi == sp.oo else "]"
    return f"{left}{a}, {b}{right}"


def describe(obj: Distribution | Derivation, latex: bool = False, width: int | None = None) -> str:
    """Text (or, with ``latex``, LaTeX formulas) describing one distribution as irtgen derives it.

    ``obj`` is an ``irtgen.Distribution`` (derived here) or a ``Derivation``. ``width`` is the
    width plain-text formulas are wrapped to (default: the terminal's).
    """
    d = obj if isinstance(obj, Derivation) else derive(obj)
    spec = d.spec
    width = width or _width()
    head = spec.name + (f"  ({spec.source_file})" if spec.source_file else "")
    out = [head, "=" * len(head)]
    if spec.doc:
        out += textwrap.wrap(spec.doc, width)
    out += ["", "support", INDENT + _interval_text(d, latex)]
    out += ["", "parameters"] + [INDENT + line for line in _params_text(d, latex)]
    out += ["", "samples"]
    for key, text in _sampler_text(d, latex):
        if latex:  # never break inside LaTeX
            out.append(f"{INDENT}{key:<16}{text}")
            continue
        out += textwrap.wrap(
            text,
            width,
            initial_indent=f"{INDENT}{key:<16}",
            subsequent_indent=INDENT + " " * 16,
            break_on_hyphens=False,
        )
    names = _symbol_names([d.z, *d.params, d.u])
    printer = _Latex({"symbol_names": names})
    rows = _formulas(d)
    for label, tex_label, expr in rows:
        out += ["", label]
        if latex:
            out.append(f"{INDENT}{tex_label} = {printer.doprint(expr)}")
        else:
            body = _pretty(expr, width - len(INDENT))
            out += [(INDENT + line).rstrip() for line in body.splitlines()]
    # the numerically safer rewrites (irtgen.rewrite.RULES) that fired in these formulas
    out += ["", "rewrites: " + (", ".join(d.rewrites) or "none")]
    used = _functions_used([e for _, _, e in rows])
    if used:
        out += ["", "functions (irtgen.functions; numerically careful forms)"]
        w = max(len(n) for n, _ in used)
        room = width - len(INDENT) - w - 2
        for name, meaning in used:
            if room >= 40:  # meanings in a column
                first, *rest = textwrap.wrap(meaning, room)
                out.append(f"{INDENT}{name:<{w}}  {first}")
                out += [f"{INDENT}{'':<{w}}  {line}" for line in rest]
            else:  # too narrow: each meaning below its name
                out.append(INDENT + name)
                out += textwrap.wrap(
                    meaning, width, initial_indent=2 * INDENT, subsequent_indent=2 * INDENT
                )
    return "\n".join(out) + "\n"


def select(dists: list[Distribution], name: str | None, path) -> list[Distribution]:
    """The distributions of a spec file, or only the one named ``name`` (BuildError if none)."""
    from irtgen.build import BuildError

    if name is None:
        return dists
    chosen = [d for d in dists if d.name == name]
    if not chosen:
        known = ", ".join(d.name for d in dists)
        raise BuildError(f"{path}: no distribution named {name!r} (the file defines {known})")
    return chosen


def derive_or_fail(dist: Distribution, label) -> Derivation:
    """``derive`` with its errors as a BuildError naming the file and the distribution (as
    ``irtgen build`` reports them)."""
    from irtgen.build import BuildError
    from irtgen.codegen.functions import UnsupportedFunctionError
    from irtgen.spec import SpecError

    try:
        return derive(dist)
    except (SpecError, UnsupportedFunctionError) as err:
        msg = str(err)
        prefix = f"{dist.name}: "
        raise BuildError(f"{label}: {msg if msg.startswith(prefix) else prefix + msg}") from err


def show_spec(
    path: str | os.PathLike,
    name: str | None = None,
    latex: bool = False,
    width: int | None = None,
    problems: list[str] | None = None,
) -> str:
    """``describe`` for every distribution of a spec file (or only ``name``), separated by a
    blank line. Errors are ``irtgen.BuildError``, as for ``irtgen build``. The numeric checks
    that ``irtgen build`` runs (a CDF that is not monotone, wrong limits at the ends, ...) do
    not stop the description: their messages are appended to ``problems``."""
    from irtgen.build import load_spec_file
    from irtgen.diagnostics import check
    from irtgen.spec import SpecError

    texts = []
    for d in select(load_spec_file(path), name, path):
        derivation = derive_or_fail(d, path)
        text = describe(derivation, latex=latex, width=width)
        try:
            check(derivation)
        except SpecError as err:
            if problems is not None:
                msg = str(err)
                problems.append(f"{path}: {msg if msg.startswith(d.name) else f'{d.name}: {msg}'}")
            text += "\naccuracy\n" + INDENT + "not audited: the checks of the build fail\n"
        else:
            text += "\n" + accuracy_text(derivation, path, problems)
        texts.append(text)
    return "\n".join(texts)


def accuracy_text(d: Derivation, path, problems: list[str] | None = None) -> str:
    """The build's accuracy audit of ``d`` (irtgen.audit) as ``irtgen show`` prints it: the
    table of relative errors per formula and the worst point per dtype. A formula past the
    spec's ``max_error`` is appended to ``problems``, as the build would fail on it."""
    from irtgen.audit import AuditFailure, audit, parse_tolerance
    from irtgen.build import module_from_source
    from irtgen.codegen.module import render_module

    source = render_module(d, str(path), "irtgen show")
    report = audit(
        d, module_from_source(source, d.spec.snake_name), parse_tolerance(d.spec.max_error)
    )
    out = [
        "accuracy (the build's audit: relative error against mpmath at 50 digits, at quantiles "
        f"1e-12 ... 1 - 1e-12 of {report.combos} parameter values, {report.points} points; "
        "float32 as a GPU computes it)"
    ]
    out += [INDENT + row for row in report.table()]
    out += [INDENT + report.line()]
    try:
        report.check()
    except AuditFailure as err:
        if problems is not None:
            problems.append(f"{path}: {err}")
    return "\n".join(out) + "\n"
