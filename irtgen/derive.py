"""Symbolic derivation: from a CDF to everything the generated code computes.

For a spec with CDF F(z; θ) this derives

* the density q = ∂F/∂z and its logarithm (expanded into a sum of logs, so log q never
  underflows where q does),
* the survival function S = 1 − F, simplified (so the upper tail is not computed as 1 − F),
* ∂F/∂θ for every parameter,
* the implicit reparameterization gradient dz/dθ = −(∂F/∂θ)/q, *simplified*: common factors of
  numerator and density cancel symbolically, so Normal gives exactly 1 and (z − loc)/scale,
* ∂log q/∂θ and ∂log q/∂z, and 1/q (= du/dz, the gradient of the icdf in u),
* where log q is of exponential-family form Σ_i η_i(θ) T_i(z) − A(η) with a constant carrier
  measure, the statistics T, natural parameters η(θ) and log normalizer A(η)
  (``exponential_family``; torch's ``ExponentialFamily`` interface in the generated class),

then applies the numerically safer rewrites of ``irtgen.rewrite``. SymPy's own special functions
(incomplete gamma and beta) are first lowered to irtgen's (``irtgen.lower``).

Piecewise CDFs (and ``Abs``, ``sign``, ``Heaviside``, ``Max``, ``Min``, which are first rewritten
into two pieces split at a condition y < 0 with y increasing in the variable) are derived piece by
piece. Convention at a kink: every derived quantity takes the value of the piece whose condition
holds at that point, i.e. the first true condition in the Piecewise. For the functions above that
is always the right-hand piece (the limit from larger z); for a user's own
``Piecewise((f, z < m), (g, True))`` it is g, also the right-hand piece. Derivatives at a kink
are therefore finite and one-sided.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from irtgen.functions import log_beta_density, log_gamma_density, log_ndtr_diff
from irtgen.lower import lower
from irtgen.rewrite import (
    RULE_NAMES,
    distribute,
    split_function,
    stabilize,
    tidy,
    window_ratio,
)
from irtgen.spec import Distribution, SpecError
from irtgen.timelimit import Timeout, time_limit


@dataclass
class ExponentialFamilyForm:
    """log q(z; θ) = Σ_i η_i(θ) T_i(z) − A(η), carrier measure h(z) = 1: the form behind torch's
    ``ExponentialFamily`` (its Bregman entropy and same-class KL need η, A and E[log h] = 0)."""

    statistics: list[sp.Expr]  # T_i(z)
    natural_params: list[sp.Expr]  # η_i(θ)
    eta: list[sp.Symbol]  # the arguments of A
    log_normalizer: sp.Expr  # A(η)


@dataclass
class Derivation:
    """Everything derived for one distribution, in assumption-carrying symbols."""

    spec: Distribution
    z: sp.Symbol
    u: sp.Symbol
    params: list[sp.Symbol]
    support_lo: sp.Expr
    support_hi: sp.Expr
    cdf: sp.Expr
    sf: sp.Expr
    pdf: sp.Expr
    inv_pdf: sp.Expr
    log_pdf: sp.Expr
    dlog_pdf_dz: sp.Expr
    dcdf: list[sp.Expr]
    dlog_pdf: list[sp.Expr]
    implicit: list[sp.Expr]
    icdf: sp.Expr | None = None
    extras: dict[str, sp.Expr] = field(default_factory=dict)  # mean, variance, entropy, mode
    parent: tuple[str, dict[str, sp.Expr]] | None = None  # spec.parent, in the new symbols
    # None: not of that form (or a family with a parent, which is what its parent is)
    exponential_family: ExponentialFamilyForm | None = None
    # names of the rewrite rules (irtgen.rewrite.RULES) that fired in these formulas, in order
    rewrites: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def support_is_param_dependent(self) -> bool:
        return bool(self.support_lo.free_symbols | self.support_hi.free_symbols)


# -- helpers ---------------------------------------------------------------------------------


def _cost(e: sp.Basic) -> int:
    return int(sp.count_ops(e, visual=False))


def _function_types(e: sp.Basic) -> set:
    return {type(f) for f in e.atoms(sp.Function)}


# time box of each of simplify's transforms: past it the transform is skipped
SIMPLIFY_SECONDS = 5.0


def simplify(e: sp.Basic) -> sp.Basic:
    """The cheapest of a few equivalent forms (count of operations), each transform time-boxed.

    Forms that bring in functions the input did not have (SymPy likes to turn exponentials into
    cosh and tanh) are rejected: log(cosh(t)) overflows where the exponential form does not.
    """
    e = sp.sympify(e)
    if e.is_number or e.is_Atom:
        return e
    allowed = _function_types(e)
    candidates = [e]
    for f in (sp.simplify, lambda x: sp.powsimp(sp.cancel(x)), sp.factor_terms, sp.cancel):
        try:
            with time_limit(SIMPLIFY_SECONDS):
                c = f(e)
        except (sp.PolynomialError, TypeError, ValueError, NotImplementedError, Timeout):
            continue  # Timeout: SymPy's expansion can grow without end (rational exponentials)
        if _function_types(c) <= allowed:
            candidates.append(c)
    return min(candidates, key=_cost)


def _canonical(x: sp.Expr, z: sp.Symbol) -> tuple[int, sp.Expr]:
    """(s, y) with x = s*y and y increasing in z where that can be decided (else a fixed
    choice between x and -x), so that the pieces made for Abs(x), sign(-x), Max(a, b) ... share
    one condition ``y < 0``, fold cleanly, and put the kink y = 0 on the right-hand piece."""
    slope = sp.diff(x, z)
    if slope.is_negative:
        return -1, -x
    if slope.is_positive:
        return 1, x
    return (-1, -x) if x.could_extract_minus_sign() else (1, x)


def _to_piecewise(expr: sp.Basic, z: sp.Symbol) -> sp.Basic:
    """Rewrite Abs, sign, Heaviside, Max and Min into two-piece Piecewise expressions.

    Every rewrite splits at ``y < 0`` with y increasing in the variable z, and has no separate
    y = 0 piece: at a kink the right-hand piece (the limit from larger z) applies.
    """

    def pw_abs(x):
        _, y = _canonical(x, z)
        return sp.Piecewise((-y, y < 0), (y, True))

    def pw_sign(x):
        s, y = _canonical(x, z)
        return sp.Piecewise((-s, y < 0), (s, True))

    def pw_heaviside(x, *_):
        s, y = _canonical(x, z)
        return (
            sp.Piecewise((0, y < 0), (1, True)) if s == 1 else sp.Piecewise((1, y < 0), (0, True))
        )

    def pw_max(a, b):
        s, y = _canonical(a - b, z)  # a - b = s*y
        return (
            sp.Piecewise((b, y < 0), (a, True)) if s == 1 else sp.Piecewise((a, y < 0), (b, True))
        )

    def pw_min(a, b):
        s, y = _canonical(a - b, z)
        return (
            sp.Piecewise((a, y < 0), (b, True)) if s == 1 else sp.Piecewise((b, y < 0), (a, True))
        )

    def fold_pairwise(fn):
        def apply(*args):
            out = args[0]
            for a in args[1:]:
                out = fn(out, a)
            return out

        return apply

    table = {
        sp.Abs: pw_abs,
        sp.sign: pw_sign,
        sp.Heaviside: pw_heaviside,
        sp.Max: fold_pairwise(pw_max),
        sp.Min: fold_pairwise(pw_min),
    }
    for cls, fn in table.items():
        expr = expr.replace(lambda e, cls=cls: isinstance(e, cls), lambda e, fn=fn: fn(*e.args))
    return _prune(sp.piecewise_fold(expr))


def _prune(expr: sp.Basic) -> sp.Basic:
    """Drop pieces whose condition can never hold, and everything after an always-true one."""
    if not isinstance(expr, sp.Piecewise):
        return expr
    kept = []
    for e, c in expr.args:
        c = sp.simplify_logic(c) if not isinstance(c, sp.logic.boolalg.BooleanAtom) else c
        if c == sp.false:
            continue
        kept.append((e, c))
        if c == sp.true:
            break
    if len(kept) == 1 and kept[0][1] == sp.true:
        return kept[0][0]
    return sp.Piecewise(*kept)


def _pieces(expr: sp.Basic) -> list[tuple[sp.Basic, sp.Basic]]:
    if isinstance(expr, sp.Piecewise):
        if expr.args[-1][1] != sp.true:
            raise SpecError(
                "a piecewise cdf needs a final (expr, True) piece so that every point is covered"
            )
        return [(e, c) for e, c in expr.args]
    return [(expr, sp.true)]


def _join(values: list[sp.Basic], conds: list[sp.Basic]) -> sp.Basic:
    if len(values) == 1:
        return values[0]
    # Merge neighbours with equal values; keep the order (first true condition wins).
    return sp.Piecewise(*zip(values, conds, strict=True))


def probe_points(params: list[sp.Symbol], constraints: list, lo: sp.Expr, hi: sp.Expr):
    """A few (param values, z value) points inside the constraints and the support.

    Used for build-time numeric checks; deterministic.
    """
    offsets = [0.45, 1.3, 2.7]
    fractions = [0.23, 0.5, 0.77]

    def values_in(interval: sp.Interval):
        a, b = interval.start, interval.end
        if a == -sp.oo and b == sp.oo:
            return [-0.7, 0.3, 1.6]
        if b == sp.oo:
            return [float(a) + o for o in offsets]
        if a == -sp.oo:
            return [float(b) - o for o in offsets]
        return [float(a) + (float(b) - float(a)) * f for f in fractions]

    columns = [values_in(c.interval) for c in constraints]
    points = []
    for k in range(3):
        theta = {
            p: col[(k + i) % 3] for i, (p, col) in enumerate(zip(params, columns, strict=True))
        }
        a = lo.subs(theta)
        b = hi.subs(theta)
        if a == -sp.oo and b == sp.oo:
            zs = [-1.3, 0.1, 1.9]
        elif b == sp.oo:
            zs = [float(a) + o for o in (0.2, 1.1, 3.3)]
        elif a == -sp.oo:
            zs = [float(b) - o for o in (0.2, 1.1, 3.3)]
        else:
            zs = [float(a) + (float(b) - float(a)) * f for f in (0.13, 0.5, 0.87)]
        points.extend((theta, zv) for zv in zs)
    return points


def _numerically_equal(a: sp.Basic, b: sp.Basic, z: sp.Symbol, points) -> bool:
    for theta, zv in points:
        subs = {**theta, z: zv}
        try:
            va = complex(a.evalf(20, subs=subs))
            vb = complex(b.evalf(20, subs=subs))
        except (TypeError, ValueError):  # not a number at this point: cannot confirm
            return False
        if any(map(lambda v: v != v or abs(v) == float("inf"), (va, vb))):  # nan / inf
            continue
        if abs(va - vb) > 1e-9 * (1 + abs(vb)):
            return False
    return True


def _log_of(pdf: sp.Basic, z: sp.Symbol, points) -> sp.Basic:
    """log(pdf) as a sum of logs when that is the same function on the probe points."""
    plain = sp.log(pdf)
    forced = sp.expand_log(plain, force=True)
    if forced != plain and _numerically_equal(forced, plain, z, points):
        return forced
    return sp.expand_log(plain)


# -- the derivation --------------------------------------------------------------------------


def derive(spec: Distribution, rewrite: bool = True) -> Derivation:
    """Derive density, survival function, parameter derivatives and implicit gradients; with
    ``rewrite=False`` without the rules of irtgen.rewrite (what irtgen.search compares)."""
    if not rewrite:
        from irtgen.rewrite import rules_off

        with rules_off():
            return derive(spec)
    constraints = [spec.constraints[p] for p in spec.params]
    params = [
        sp.Symbol(p.name, **c.assumptions) for p, c in zip(spec.params, constraints, strict=True)
    ]
    to_new = dict(zip(spec.params, params, strict=True))

    lo = sp.sympify(spec.support.start).xreplace(to_new)
    hi = sp.sympify(spec.support.end).xreplace(to_new)
    z_assumptions = {"positive": True} if lo.is_nonnegative else {"real": True}
    z = sp.Symbol(spec.variable.name, **z_assumptions)
    to_new[spec.variable] = z

    cdf = _to_piecewise(lower(spec.cdf.xreplace(to_new)), z)
    pieces = _pieces(cdf)
    points = probe_points(params, constraints, lo, hi)

    conds = [c for _, c in pieces]
    cols: dict[str, list] = {k: [] for k in ("cdf", "sf", "pdf", "inv_pdf", "log_pdf", "dlogdz")}
    per_param: dict[str, list[list]] = {k: [[] for _ in params] for k in ("dcdf", "dlog", "imp")}

    # what the rewrites may assume: z lies in the support
    inside = [e for e in (z - lo, hi - z) if e.is_finite is not False and not e.has(sp.oo, -sp.oo)]
    fired: set[str] = set()

    for F, _cond in pieces:
        F, pre_sf = _prepare(F, inside, fired)
        raw_pdf = sp.diff(F, z)
        _require_derivative(spec.name, "the density dF/d" + z.name, raw_pdf)
        pdf = simplify(raw_pdf)
        cols["cdf"].append(F)  # as the user wrote it: simplify may expand a stable form
        cols["sf"].append(simplify(1 - F) if pre_sf is None else pre_sf)
        cols["pdf"].append(pdf)
        flat = pdf == 0  # a piece where the CDF is constant: no density, no gradient
        log_pdf = -sp.oo if flat else _log_of(pdf, z, points)
        cols["log_pdf"].append(log_pdf)
        cols["inv_pdf"].append(sp.oo if flat else simplify(1 / pdf))
        cols["dlogdz"].append(sp.S.Zero if flat else simplify(sp.diff(log_pdf, z)))
        for i, p in enumerate(params):
            dF = sp.diff(F, p)
            if pre_sf is None:
                per_param["dcdf"][i].append(simplify(dF))
                per_param["imp"][i].append(sp.S.Zero if flat else simplify(-dF / pdf))
            else:
                # windows: the rewrites cancel their exponentials (simplify would combine the
                # window's terms before they can), in two forms either side of F = 1/2
                per_param["dcdf"][i].append(_two_sided(dF, F, inside, fired))
                imp = sp.S.Zero if flat else _two_sided(-dF / raw_pdf, F, inside, fired)
                per_param["imp"][i].append(imp)
            per_param["dlog"][i].append(sp.S.Zero if flat else simplify(sp.diff(log_pdf, p)))

    def final(values):
        return stabilize(_join(values, conds), fired, nonnegative=inside)

    icdf = None
    u = sp.Symbol("u", positive=True)
    if spec.icdf is not None:
        (u_old,) = spec.icdf.variables
        u = sp.Symbol(u_old.name, positive=True)
        icdf = stabilize(simplify(lower(spec.icdf.expr.xreplace({**to_new, u_old: u}))))

    extras = {}
    for key in ("mean", "variance", "entropy", "mode"):
        expr = getattr(spec, key)
        if expr is not None:
            extras[key] = stabilize(simplify(lower(sp.sympify(expr).xreplace(to_new))))
    parent = None
    if spec.parent is not None:
        name, mapping = spec.parent
        parent = (
            name,
            {
                k: stabilize(simplify(lower(sp.sympify(e).xreplace(to_new))))
                for k, e in mapping.items()
            },
        )
    if "mode" not in extras:
        mode = _mode_from_density(final(cols["dlogdz"]), z, lo, hi)
        if mode is not None:
            extras["mode"] = mode

    exp_family = None
    if spec.parent is None and len(pieces) == 1 and not (lo.free_symbols | hi.free_symbols):
        exp_family = exponential_family(cols["log_pdf"][0], z, params, points)

    result = Derivation(
        spec=spec,
        z=z,
        u=u,
        params=params,
        support_lo=lo,
        support_hi=hi,
        cdf=final(cols["cdf"]),
        sf=final(cols["sf"]),
        pdf=final(cols["pdf"]),
        inv_pdf=final(cols["inv_pdf"]),
        log_pdf=final(cols["log_pdf"]),
        dlog_pdf_dz=final(cols["dlogdz"]),
        dcdf=[final(v) for v in per_param["dcdf"]],
        dlog_pdf=[final(v) for v in per_param["dlog"]],
        implicit=[final(v) for v in per_param["imp"]],
        icdf=icdf,
        extras=extras,
        parent=parent,
        exponential_family=exp_family,
        rewrites=[name for name in RULE_NAMES if name in fired],
    )
    _check_derived(result)
    return result


# rewrites applied to the CDF before it is differentiated: a difference of normal CDFs becomes a
# window function whose derivatives are exponentials of (log density - log window), which cancel
# symbolically against exp(log window) -- differentiating the difference itself gives
# differences and ratios of erf that SymPy's simplification spreads apart beyond repair
_PRE_RULES = ("ndtr_difference",)
_PRE_FOLLOW_UP = ("ndtr_difference", "exp_product")
# the form of a derivative in F (_two_sided): the rules that bring in S left out
_F_FORM_RULES = tuple(n for n in RULE_NAMES if n not in ("window_survival", "window_difference"))


def _prepare(F: sp.Expr, inside: list, fired: set) -> tuple[sp.Expr, sp.Expr | None]:
    """(F to differentiate, its survival function or None): F with differences of normal CDFs
    as windows (then also 1 - F as the window above z), else F itself and None."""
    pre: set[str] = set()
    G = stabilize(F, pre, nonnegative=inside, rules=_PRE_RULES)
    if not pre:
        return F, None
    G = stabilize(G, pre, nonnegative=inside, rules=_PRE_FOLLOW_UP)
    fired |= pre
    return G, stabilize(1 - G, fired, nonnegative=inside)


def _two_sided(expr: sp.Expr, F: sp.Expr, inside: list, fired: set) -> sp.Expr:
    """A derivative of the window probability F = exp(L(y, d) - L(y, D)) (irtgen.rewrite), as
    Piecewise((its form in F, F < 1/2), (its form in S = 1 - F, True)).

    The terms of a derivative are products of exponentials, some proportional to F. Where F is
    close to 1 such terms cancel against others (1 - F is lost); there the same terms are
    written with F = 1 - S, the window above z, after which the cancelling parts are equal
    terms of opposite sign and vanish. Each form is used where the probability it is written in
    is at most 1/2, as for an incomplete gamma function and its complement."""
    merge = ("exp_product", "exp_exponent")
    low = stabilize(distribute(expr), fired, nonnegative=inside, rules=merge)
    f_form = stabilize(low, fired, nonnegative=inside, rules=_F_FORM_RULES)
    window = window_ratio(F)
    if window is None or not isinstance(low, sp.Add):
        return f_form
    y, d, big = window
    l_f, l_all = log_ndtr_diff(y, d), log_ndtr_diff(y, big)
    l_s = log_ndtr_diff(tidy(y + d), tidy(big - d))

    def in_s(term):
        split = split_function(term, sp.exp)
        if split is None:
            return term
        rest, e = split
        exponent = sp.expand(e.args[0], deep=False)
        if exponent.coeff(l_f) != 1:
            return term
        base = exponent - l_f + l_all  # F e^r = e^r - S e^r, S = exp(l_s - l_all)
        return rest * (sp.exp(base) - sp.exp(base + l_s - l_all))

    s_form = stabilize(
        distribute(sp.Add(*(in_s(t) for t in low.args))),
        fired,
        nonnegative=inside,
        rules=merge,
    )
    s_form = stabilize(s_form, fired, nonnegative=inside)
    if s_form == f_form:
        return f_form
    return sp.Piecewise((f_form, l_f - l_all < -sp.log(2)), (s_form, True))


def _require_derivative(name: str, what: str, e: sp.Basic) -> None:
    bad = e.atoms(sp.Derivative, sp.Subs)
    if bad:
        raise SpecError(
            f"{name}: cannot derive {what}: SymPy left {sorted(map(str, bad))[0]} unevaluated "
            "(a function without a known derivative)"
        )


def _check_derived(d: Derivation) -> None:
    """Fail the build when SymPy could not differentiate something (an opaque function)."""
    named = {"pdf": d.pdf, "log pdf": d.log_pdf, "d log pdf/dz": d.dlog_pdf_dz}
    for p, e1, e2 in zip(d.params, d.dcdf, d.dlog_pdf, strict=True):
        named[f"dF/d{p}"] = e1
        named[f"d log pdf/d{p}"] = e2
    for what, e in named.items():
        bad = e.atoms(sp.Derivative, sp.Subs, sp.DiracDelta)
        if bad:
            raise SpecError(
                f"{d.name}: cannot derive {what}: SymPy left {sorted(map(str, bad))[0]} "
                "unevaluated (a function without a known derivative)"
            )


def _mode_from_density(dlogdz: sp.Expr, z: sp.Symbol, lo, hi) -> sp.Expr | None:
    """The mode from d log q/dz = N/D = 0 where N = c1 z + c0 is linear in z: its one root,
    where q has a maximum if c1/D < 0 on the whole support (as SymPy proves from the
    parameters' assumptions), clamped to the support's ends (a root beyond an end means the
    density is monotone on the support, as Gamma's with concentration < 1). None where that does
    not settle it: the spec can give ``mode=``."""
    if dlogdz.has(sp.Piecewise):
        return None
    num, den = sp.fraction(sp.together(dlogdz))
    try:
        poly = sp.Poly(num, z)
    except sp.PolynomialError:
        return None
    if poly.degree() != 1:
        return None
    c1, c0 = poly.all_coeffs()
    # q increases below the root and decreases above it where c1/D < 0 on the whole support
    if den.has(z):
        if not (lo == 0 and hi == sp.oo):
            return None
        den = den.subs(z, sp.Symbol(z.name, positive=True))  # D's sign for z in (0, oo)
    sign = sp.simplify(c1 / den)
    if sign.is_negative is not True:
        return None
    return sp.Min(sp.Max(sp.simplify(-c0 / c1), lo), hi)


# -- exponential-family form -------------------------------------------------------------------

# irtgen functions in a derived log density whose elementary form shows its statistics
_DENSITY_FUNCTIONS = (log_gamma_density, log_beta_density)


def exponential_family(
    log_pdf: sp.Expr, z: sp.Symbol, params: list[sp.Symbol], points
) -> ExponentialFamilyForm | None:
    """log q as Σ_i η_i(θ) T_i(z) − A(η) with carrier measure h(z) = 1, or None.

    The expanded log density's terms are grouped by their factor in z (the statistics T_i); a
    statistic's whole coefficient, constant part included (the −1 of a − 1), is η_i(θ), and the
    terms free of z are −A(θ). Not of this form (None, not an error): a term in which z and θ do
    not separate (Laplace's |z − μ|, Weibull's (z/λ)^k, Student-t's log(1 + z²/ν)), a statistic
    whose coefficient is a number alone (then h(z) is not constant, as Chi2's e^(−z/2) with
    T = log z), fewer or more statistics than parameters (a curved family such as Normal(m, m)),
    or η = η(θ) without exactly one solution θ(η) in the parameters' domain. The support must
    not depend on θ (the caller checks). Every step is confirmed numerically on the probe
    points; A(η) has its logs expanded (_log_normalizer).
    """
    e = log_pdf.replace(lambda n: isinstance(n, _DENSITY_FUNCTIONS), lambda n: n.rewrite(sp.log))
    e = sp.expand(sp.expand_log(e, force=True))
    theta = set(params)
    coeffs: dict[sp.Expr, sp.Expr] = {}
    rest = sp.S.Zero
    for term in sp.Add.make_args(e):
        c, t = term.as_independent(z, as_Add=False)
        if t == 1:
            rest += c
        elif t.free_symbols & theta:
            return None  # z and θ do not separate
        else:
            coeffs[t] = coeffs.get(t, sp.S.Zero) + c
    coeffs = {t: c for t, c in coeffs.items() if sp.expand(c) != 0}
    if any(not (c.free_symbols & theta) for c in coeffs.values()):
        return None  # a term in z alone: h(z) is not constant
    if len(coeffs) != len(params) or not coeffs:
        return None
    index = {p: i for i, p in enumerate(params)}
    stats = sorted(
        coeffs,
        key=lambda t: (
            min(index[p] for p in coeffs[t].free_symbols & theta),
            sp.default_sort_key(t),
        ),
    )
    natural = [sp.expand(coeffs[t]) for t in stats]
    taken = {p.name for p in params} | {z.name}
    prefix = "eta" if not any(f"eta{i + 1}" in taken for i in range(len(stats))) else "_eta"
    eta = [sp.Symbol(f"{prefix}{i + 1}", **_sign(c)) for i, c in enumerate(natural)]
    a_theta = -rest
    identity = sum((c * t for c, t in zip(natural, stats, strict=True)), sp.S.Zero) - a_theta
    if not _numerically_equal(identity, log_pdf, z, points):
        return None  # a forced expansion of a log that does not hold on the support
    try:
        solutions = sp.solve([k - c for k, c in zip(eta, natural, strict=True)], params, dict=True)
    except (NotImplementedError, ValueError, TypeError, sp.PolynomialError):
        return None
    thetas = [dict(t) for t in {tuple(th.items()) for th, _ in points}]
    solutions = [s for s in solutions if set(s) == theta and _inverts(s, eta, natural, thetas)]
    if len(solutions) != 1:
        return None
    a_eta = _log_normalizer(a_theta.xreplace(solutions[0]), eta)
    a_back = a_eta.xreplace(dict(zip(eta, natural, strict=True)))
    if not _numerically_equal(a_back, a_theta, z, points):
        return None
    return ExponentialFamilyForm(
        statistics=[stabilize(t) for t in stats],
        natural_params=natural,
        eta=eta,
        log_normalizer=a_eta,
    )


def _sign(e: sp.Expr) -> dict:
    """The assumption for a symbol standing for e: its sign where SymPy can tell it (so that
    solving for a positive parameter keeps only the root that can be positive)."""
    if e.is_negative:
        return {"negative": True}
    return {"positive": True} if e.is_positive else {"real": True}


def _inverts(solution: dict, eta: list, natural: list, thetas: list[dict]) -> bool:
    """θ(η(θ)) = θ at every probe value of the parameters."""
    for theta in thetas:
        at = {k: c.evalf(30, subs=theta) for k, c in zip(eta, natural, strict=True)}
        for p, expr in solution.items():
            try:
                got = complex(expr.evalf(30, subs=at))
            except (TypeError, ValueError):
                return False
            if abs(got - theta[p]) > 1e-9 * (1 + abs(theta[p])):
                return False
    return True


def _log_normalizer(a: sp.Expr, eta: list[sp.Symbol]) -> sp.Expr:
    """A(η) with its logs expanded: a negative η_i stands in as −m_i with m_i > 0 meanwhile, so
    log(sqrt(−1/(2η))) becomes −log(−η)/2 − log(2)/2 and never a log of a power."""
    fwd, back = {}, {}
    for k in eta:
        if k.is_negative:
            m = sp.Symbol(f"_m_{k.name}", positive=True)
            fwd[k], back[m] = -m, -k
    expanded = sp.expand_log(a.xreplace(fwd), force=True).xreplace(back)
    return stabilize(min([a, expanded], key=_cost))
