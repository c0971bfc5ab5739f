"""Numerically safer rewrites of derived expressions.

Each rule (``RULES``: a short name, a one-line description and a function) looks at one node and
returns a replacement or None. ``stabilize`` applies them bottom-up until nothing changes, and can
report the names of the rules that fired (``irtgen show`` lists them). Rules only ever replace a
formula by an equal one that loses less precision in floating point:

=============================  ======================================  ============================
pattern                        becomes                                 why
=============================  ======================================  ============================
``c - c*exp(x)``               ``-c*expm1(x)``                         1 - e^x cancels for x ~ 0
``a - a*exp(x)`` (symbolic a)  ``-a*expm1(x)``                         same, after factor_terms
``c - c*b**e`` (symbolic e)    ``-c*expm1(e*log(b))``                  same, b**e = exp(e log b)
``log(1 + x)``                 ``log1p(x)``                            1 + x rounds away small x
``log(a**e * b**-e)`` (a, b>0)  ``e*log(a/b)``                         a**e overflows or underflows
``log(1/x)``                   ``-log(x)``                             then log1p for x = 1 - u
``log(-expm1(x))``             ``log1mexp(x)``                         both regimes of log(1 - e^x)
``log1p(-exp(x))``             ``log1mexp(x)``
``log1p(exp(x))``              ``softplus(x)``                         e^x overflows for large x
``c + c*erf(a)``               ``2*c*ndtr(sqrt(2)*a)``                 1 + erf(a) cancels for a << 0
``c - c*erf(a)``               ``2*c*ndtr(-sqrt(2)*a)``
``erfinv(2u - 1)``             ``ndtri(u)/sqrt(2)``                    keeps the tail of u (only
                                                                        where (1 + y)/2 is free of
                                                                        a constant)
``(1 + exp(t))**-k``           ``sigmoid(-t)**k``                      e^t overflows for large t
``exp(t)*sigmoid(-t)**k``      ``sigmoid(t)*sigmoid(-t)**(k-1)``       inf*0 for large t
``c - c*sigmoid(x)``           ``c*sigmoid(-x)``                       1 - s cancels as s -> 1
``log(sigmoid(x))``            ``-softplus(-x)``
``log(a/b)`` (a, b symbolic)   ``log_ratio(a, b)``                     log1p((a - b)/b) when a ~ b
``c - c*gammainc(a, x)``       ``c*gammaincc(a, x)``                   1 - P cancels as P -> 1
``c - c*gammaincc(a, x)``      ``c*gammainc(a, x)``
``c - c*betainc(a, b, x, y)``  ``c*betainc(b, a, y, x)``               I_x(a,b) = 1 - I_y(b,a)
``c - c*ndtr(x)``              ``c*ndtr(-x)``
``c - c*student_t_cdf(n, t)``  ``c*student_t_cdf(n, -t)``
``c*erf(x) - c*erf(y)``        ``2*c*exp(log_ndtr_diff(√2 y, d))``      erf(x) - erf(y) cancels in
                               d = √2 (x - y) simplified; ndtr_diff    the tails; d keeps x - y
                               where the sign of d is unknown
``c*erf(x) + c*erf(y)``        the same with erf(x) - erf(-y)
``ndtr``, ``erfc`` differences  the same (Φ(x) - Φ(y), erfc(y) - erfc(x))
``c*f(x) - c*f(y)``, f in       ``c*(f(x) - f(y))`` where f(y) <= 1/2,   f(x) - f(y) cancels where
gammainc, gammaincc, betainc,   else ``c*(f'(y) - f'(x))``, f' the       both are close to 1
student_t_cdf, atan_cdf,        complement (a Piecewise)
sigmoid
``exp(a)*exp(b)/exp(c)``       ``exp(a + b - c)``, polynomial part      e^a e^-b overflows before it
                               factored ((x - y)(x + y), not x² - y²)   cancels
``exp((a*L + p)/c)``           ``exp(a*L/c + p/c)``, p/c factored       as for products
``exp(p)*(exp(a)*u + ...)``     ``exp(p + a)*u + ...``                   e^p overflows first
``c*exp(a) - c*exp(b)``        ``c*exp(b)*expm1(a - b)``                e^a - e^b cancels for a ~ b
  (when a - b simplifies)
``c*exp(a) - c*exp(b)``,        ``-c*exp(b)*S``, S the window above z     1 - F cancels as F -> 1
  exp(a - b) = F of a window
``1 - exp(L(y,d) - L(y,D))``   ``exp(L(y + d, D - d) - L(y, D))``       1 - F cancels as F -> 1
  L = log_ndtr_diff, D > d     (the survival function of a window)
``log1p(-f)`` (f in the        ``log(1 - f)`` of the complement,        the complement keeps its
complement table)              e.g. ``log(gammaincc(a, x))``            digits
``log(ndtr(x))``               ``log_ndtr(x)``                          Φ underflows for x << 0
``exp(a)*expm1(-a)``           ``-expm1(a)``                            0*inf for a << 0
``log(expm1(x))`` (x > 0)       ``x + log1mexp(-x)``                     expm1 overflows for x > 709
``(Σ t expm1(a))/expm1(b)``     ``Σ t exp(a - b) expm1(-a)/expm1(-b)``   inf/inf for b > 709
  (a, b >= 0)
``exp(a)/expm1(b)`` (b > 0)     ``-exp(a - b)/expm1(-b)``                inf/inf for b > 709
``1 - expm1(a)/expm1(b)``       ``exp(a)*expm1(b - a)/expm1(b)``         1 - F cancels as F -> 1
  (a, b <= 0)
``a*f + b*f`` (f with functions) ``(a + b)*f``, a + b simplified        z*f - low*f cancels
``p + c*exp(x)``, p + c simpler ``(p + c) + c*expm1(x)``                 p + c e^x cancels as x -> 0
``log(c1*exp(a) + c2*exp(b))``  ``logaddexp(a + log c1, b + log c2)``  e^a overflows
``gamma(a)*gamma(b)/           ``exp(betaln(a, b))``; other ratios      Γ overflows before the
gamma(a + b)``                 through gammasimp or exp(Σ ± loggamma)   ratio does
``exp(b)*expm1(d)``            ``exp_expm1(b, d)``                      0*inf for b << 0, d >> 0
``c + c*(2/pi)*atan(x)``       ``2*c*atan_cdf(x)``                      pi/2 + atan(x) cancels
                                                                        for x << 0
``tan(pi*(u - 1/2))``          ``-cotpi(u)``                            pi*(u - 1/2) loses u near
                                                                        0 and 1
=============================  ======================================  ============================

The sign of a window's width d decides between log_ndtr_diff (d > 0) and the signed ndtr_diff:
SymPy's assumptions decide it, or ``nonnegative`` expressions that the caller knows to be >= 0
(the derivation passes z - lo and hi - z for a support [lo, hi]): d is positive when d/e is, for
one of them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from irtgen.functions import (
    atan_cdf,
    betainc,
    betaln,
    cotpi,
    exp_expm1,
    gammainc,
    gammaincc,
    log1mexp,
    log_ndtr,
    log_ndtr_diff,
    log_ratio,
    logaddexp,
    ndtr,
    ndtr_diff,
    ndtri,
    sigmoid,
    softplus,
    student_t_cdf,
)


def _as_exp_argument(f: sp.Expr) -> sp.Expr | None:
    """x if f is exp(x) or a power b**e with a symbolic exponent (= exp(e*log(b)))."""
    if isinstance(f, sp.exp):
        return f.args[0]
    if isinstance(f, sp.Pow) and not f.exp.is_number:
        return f.exp * sp.log(f.base)
    return None


def _split_add(node: sp.Add):
    const, terms = node.as_coeff_add()
    return const, list(terms)


def _one_minus_exp(node: sp.Basic):
    if not isinstance(node, sp.Add):
        return None
    c, terms = _split_add(node)
    if c == 0:
        # a - a*exp(t): take out the common factor and look again
        factored = sp.factor_terms(node)
        if isinstance(factored, sp.Mul):
            for i, f in enumerate(factored.args):
                inner = _one_minus_exp(f) if isinstance(f, sp.Add) else None
                if inner is not None:
                    rest = factored.args[:i] + factored.args[i + 1 :]
                    return sp.Mul(*rest) * inner
        return None
    for i, t in enumerate(terms):
        coef, f = t.as_coeff_Mul()
        x = _as_exp_argument(f)
        if x is not None and coef == -c:
            rest = terms[:i] + terms[i + 1 :]
            return -c * expm1(x) + sp.Add(*rest)
    return None


def _constant_plus_term(node: sp.Basic, rewrite) -> sp.Basic | None:
    """For node = c + coef*f + rest (c a nonzero number): rewrite(c, coef, f) gives a
    replacement for c + coef*f, or None to look at the next term."""
    if not isinstance(node, sp.Add):
        return None
    c, terms = _split_add(node)
    if c == 0:
        return None
    for i, t in enumerate(terms):
        coef, f = t.as_coeff_Mul()
        new = rewrite(c, coef, f)
        if new is not None:
            return new + sp.Add(*terms[:i], *terms[i + 1 :])
    return None


def _erf_to_ndtr(node: sp.Basic):
    def rewrite(c, coef, f):
        if isinstance(f, sp.erf) and coef in (c, -c):
            sign = 1 if coef == c else -1
            return 2 * c * ndtr(sign * sp.sqrt(2) * f.args[0])
        return None

    return _constant_plus_term(node, rewrite)


def _log_of_powers(arg: sp.Basic) -> sp.Basic | None:
    """log of a power or a product of powers of positive bases, as exponent * log: powers with
    opposite exponents pair up, log(a**e * b**-e) = e*log(a/b), so that the log_ratio rule can
    take log(a/b) where a ~ b. None unless some exponent is symbolic (then the log of the power
    itself overflows or underflows long before e*log(b) does)."""
    factors = arg.args if isinstance(arg, sp.Mul) else (arg,)
    if not all(f.is_positive for f in factors):
        return None
    powers = [f.as_base_exp() for f in factors]
    if all(e.is_number for _, e in powers) or not all(e.is_real for _, e in powers):
        return None
    groups: dict[sp.Basic, tuple[sp.Basic, list, list]] = {}  # expanded e -> (e, num, den)
    for b, e in powers:
        key = sp.expand(e)
        flip = key not in groups and sp.expand(-e) in groups
        _, num, den = groups.setdefault(sp.expand(-e) if flip else key, (e, [], []))
        (den if flip else num).append(b)
    return sp.Add(*(e * sp.log(sp.Mul(*num) / sp.Mul(*den)) for e, num, den in groups.values()))


@dataclass(frozen=True)
class Context:
    """What the rules may assume beyond SymPy's assumptions: expressions known to be >= 0."""

    nonnegative: tuple[sp.Expr, ...] = ()
    # values f(y) of CDF-like functions whose differences are already split by the side of
    # 1/2 they lie on (in the branches of the cdf_difference rule's Piecewise)
    sided: frozenset = frozenset()

    def sign(self, e: sp.Expr) -> int:
        """1 if e >= 0 is known, -1 if e <= 0 is, else 0."""
        if e.is_nonnegative:
            return 1
        if e.is_nonpositive:
            return -1
        for c in self.nonnegative:
            q = sp.cancel(e / c)
            if q.is_positive:
                return 1
            if q.is_negative:
                return -1
        return 0


# -- logarithms ----------------------------------------------------------------------------


def _log_powers_rule(node, ctx):
    if isinstance(node, sp.log):
        arg = node.args[0]
        if isinstance(arg, sp.Pow) and arg.exp == -1:  # log(1/x) = -log(x): log1p can follow
            return -sp.log(arg.base)
        return _log_of_powers(arg)
    return None


def _log1p_rule(node, ctx):
    if isinstance(node, sp.log) and isinstance(node.args[0], sp.Add):
        c, terms = _split_add(node.args[0])
        if c == 1:
            return log1p(sp.Add(*terms))
    return None


def _log_expm1_rule(node, ctx):
    if isinstance(node, sp.log):
        coef, f = node.args[0].as_coeff_Mul()
        if coef == -1 and isinstance(f, expm1):
            return log1mexp(f.args[0])
        if coef == 1 and isinstance(f, expm1) and ctx.sign(f.args[0]) > 0:
            x = f.args[0]  # expm1(x) overflows for x > 709; its log does not
            return x + log1mexp(-x)
    return None


def _log_ratio_rule(node, ctx):
    if isinstance(node, sp.log) and isinstance(node.args[0], sp.Mul):
        num, den = node.args[0].as_numer_denom()
        if not num.is_number and not den.is_number and den != 1:
            return log_ratio(num, den)
    return None


def _log1p_exp_rule(node, ctx):
    if not isinstance(node, log1p):
        return None
    (arg,) = node.args
    coef, f = arg.as_coeff_Mul()
    x = _as_exp_argument(f)
    if x is None:
        return None
    if coef == -1:
        return log1mexp(x)
    if coef == 1:
        return softplus(x)
    return None


def _erfinv_rule(node, ctx):
    """erfinv(2u - 1) -> ndtri(u)/sqrt(2): only where (1 + y)/2 has no constant term (the
    argument was formed from u), else erfinv(y) itself (el.erfinv keeps small y and y near 1,
    where (1 + y)/2 would round them away)."""
    if isinstance(node, sp.erfinv):
        (y,) = node.args
        half = sp.expand((1 + y) / 2)
        if half.as_coeff_Add()[0] != 0:
            return None
        return ndtri(half) / sp.sqrt(2)
    return None


def _sigmoid_pow_rule(node, ctx):
    if isinstance(node, sp.Pow) and node.exp.is_integer and node.exp.is_negative:
        base = node.base
        if isinstance(base, sp.Add):
            c, terms = _split_add(base)
            if c == 1 and len(terms) == 1:
                coef, f = terms[0].as_coeff_Mul()
                t = _as_exp_argument(f)
                if t is not None and coef == 1:
                    return sigmoid(-t) ** (-node.exp)
    return None


def _sigmoid_exp_rule(node, ctx):
    if not isinstance(node, sp.Mul):
        return None
    factors = list(node.args)
    for i, f in enumerate(factors):
        t = _as_exp_argument(f)
        if t is None:
            continue
        for j, g in enumerate(factors):
            base, k = (g.base, g.exp) if isinstance(g, sp.Pow) else (g, sp.S.One)
            if (
                isinstance(base, sigmoid)
                and k.is_integer
                and k.is_positive
                and sp.expand(base.args[0] + t) == 0
            ):
                rest = [h for m, h in enumerate(factors) if m not in (i, j)]
                return sigmoid(t) * base ** (k - 1) * sp.Mul(*rest)
    return None


def _log_sigmoid_rule(node, ctx):
    if isinstance(node, sp.log) and isinstance(node.args[0], sigmoid):
        return -softplus(-node.args[0].args[0])
    return None


# f -> 1 - f, computed directly
COMPLEMENTS: dict[type, Callable[..., sp.Expr]] = {
    gammainc: lambda a, x: gammaincc(a, x),
    gammaincc: lambda a, x: gammainc(a, x),
    betainc: lambda a, b, x, y: betainc(b, a, y, x),
    ndtr: lambda x: ndtr(-x),
    sigmoid: lambda x: sigmoid(-x),
    student_t_cdf: lambda df, t: student_t_cdf(df, -t),
    atan_cdf: lambda x: atan_cdf(-x),
}


def _complement_rule(node, ctx):
    def rewrite(c, coef, f):
        if coef == -c and type(f) in COMPLEMENTS:
            return c * COMPLEMENTS[type(f)](*f.args)
        return None

    return _constant_plus_term(node, rewrite)


def _log1p_complement_rule(node, ctx):
    if isinstance(node, log1p):
        coef, f = node.args[0].as_coeff_Mul()
        if coef == -1 and type(f) in COMPLEMENTS:
            return sp.log(COMPLEMENTS[type(f)](*f.args))
        if coef == -1:
            survival = _window_survival(f, ctx)
            if survival is not None:
                return sp.log(survival)
    return None


def _log_ndtr_rule(node, ctx):
    if isinstance(node, sp.log) and isinstance(node.args[0], ndtr):
        return log_ndtr(node.args[0].args[0])
    return None


# -- differences of normal CDFs ----------------------------------------------------------------


def tidy(e: sp.Expr) -> sp.Expr:
    """e as one fraction, factored where that is no longer: x - y appears as one factor."""
    e = sp.cancel(sp.together(e))
    try:
        f = sp.factor(e)
    except (sp.PolynomialError, NotImplementedError):
        return e
    return f if sp.count_ops(f) <= sp.count_ops(e) else e


def _window(y: sp.Expr, d: sp.Expr, ctx: Context) -> sp.Expr:
    """Φ(y + d) - Φ(y) in the form the sign of d allows."""
    d = tidy(d)
    sign = ctx.sign(d)
    if sign > 0:
        return sp.exp(log_ndtr_diff(y, d))
    if sign < 0:
        return -sp.exp(log_ndtr_diff(tidy(y + d), tidy(-d)))
    return ndtr_diff(y, d)


# f(x) - f(y) = scale * (Φ(h(x)) - Φ(h(y))): (scale, h); erfc(x) - erfc(y) = erf(y) - erf(x)
_CDF_LIKE: dict[type, tuple[sp.Expr, Callable[[sp.Expr], sp.Expr]]] = {
    ndtr: (sp.S.One, lambda x: x),
    sp.erf: (sp.S(2), lambda x: sp.sqrt(2) * x),
    sp.erfc: (sp.S(-2), lambda x: sp.sqrt(2) * x),
}


def split_function(term: sp.Expr, cls: type) -> tuple[sp.Expr, sp.Expr] | None:
    """(rest, f) with term = rest * f, f of class cls, rest free of that class."""
    factors = term.args if isinstance(term, sp.Mul) else (term,)
    found = [k for k, f in enumerate(factors) if isinstance(f, cls)]
    if len(found) != 1:
        return None
    k = found[0]
    return sp.Mul(*factors[:k], *factors[k + 1 :]), factors[k]


def _function_pairs(node, cls: type):
    """(i, j, (r_i, f_i), (r_j, f_j)) for the pairs of terms i < j of the sum ``node`` that are
    each r * f with f of class cls (split_function); ``_replace_pair`` replaces the pair."""
    if not isinstance(node, sp.Add):
        return
    split = [split_function(t, cls) for t in node.args]
    for i, si in enumerate(split):
        for j in range(i + 1, len(split)):
            if si is not None and split[j] is not None:
                yield i, j, si, split[j]


def _ndtr_difference_rule(node, ctx):
    for cls, (scale, h) in _CDF_LIKE.items():
        for i, j, (ri, fi), (rj, fj) in _function_pairs(node, cls):
            if ri == -rj:  # ri*(f(a) - f(b)), ri the positive-looking one
                a, b = fi.args[0], fj.args[0]
                if ri.could_extract_minus_sign():
                    ri, a, b = rj, b, a
            elif ri == rj and cls is sp.erf:  # erf(a) + erf(b) = erf(a) - erf(-b)
                a, b = fi.args[0], -fj.args[0]
            else:
                continue
            # ri*(f(a) - f(b)) = ri*scale*(Φ(h(a)) - Φ(h(b)))
            y = tidy(h(b))
            return _replace_pair(node, i, j, ri * scale * _window(y, h(a) - h(b), ctx))
    return None


# f(..., x) - f(..., y) for a CDF-like f with a complement (COMPLEMENTS): its shape arguments,
# those that must agree (all but the point)
_DIFFERENCE_SHAPES: dict[type, Callable[[tuple], tuple]] = {
    gammainc: lambda args: args[:1],
    gammaincc: lambda args: args[:1],
    betainc: lambda args: args[:2],
    student_t_cdf: lambda args: args[:1],
    atan_cdf: lambda args: (),
    sigmoid: lambda args: (),
}


def _cdf_difference_rule(node, ctx):
    """c*f(x) - c*f(y) -> c*(f(x) - f(y)) where f(y) <= 1/2, else c*(f'(y) - f'(x)) with f' the
    complement: the difference of the two values nearer 0 keeps its digits."""
    for cls, shape in _DIFFERENCE_SHAPES.items():
        for i, j, (ri, fx), (rj, fy) in _function_pairs(node, cls):
            if ri != -rj or shape(fx.args) != shape(fy.args) or fx == fy:
                continue
            if fx in ctx.sided or fy in ctx.sided:
                continue  # a branch of this rule's own Piecewise
            if ri.could_extract_minus_sign():
                ri, fx, fy = rj, fy, fx
            complement = COMPLEMENTS[cls]
            new = sp.Piecewise(
                (ri * (fx - fy), fy <= sp.S.Half),
                (ri * (complement(*fy.args) - complement(*fx.args)), True),
            )
            return _replace_pair(node, i, j, new)
    return None


def window_ratio(e: sp.Expr):
    """(y, d, D) for e = exp(L(y, d) - L(y, D)) or ndtr_diff(y, d)/ndtr_diff(y, D)."""
    if isinstance(e, sp.exp) and isinstance(e.args[0], sp.Add) and len(e.args[0].args) == 2:
        p, q = e.args[0].args
        if isinstance(q, log_ndtr_diff):
            p, q = q, p
        cq, q = q.as_coeff_Mul()
        if isinstance(p, log_ndtr_diff) and cq == -1 and isinstance(q, log_ndtr_diff):
            if p.args[0] == q.args[0]:
                return p.args[0], p.args[1], q.args[1]
    if isinstance(e, sp.Mul) and len(e.args) == 2:
        p, q = e.args
        if isinstance(p, sp.Pow):
            p, q = q, p
        if (
            isinstance(p, ndtr_diff)
            and isinstance(q, sp.Pow)
            and q.exp == -1
            and isinstance(q.base, ndtr_diff)
            and p.args[0] == q.base.args[0]
        ):
            return p.args[0], p.args[1], q.base.args[1]
    return None


def _window_survival(f: sp.Expr, ctx: Context) -> sp.Expr | None:
    """1 - f for f the probability of [y, y + d] within [y, y + D]: that of [y + d, y + D]."""
    found = window_ratio(f)
    if found is None:
        return None
    y, d, big = found
    rest = _window(tidy(y + d), big - d, ctx)
    if isinstance(f, sp.exp):
        return rest * sp.exp(-log_ndtr_diff(y, big))
    return rest / ndtr_diff(y, big)


def _window_survival_rule(node, ctx):
    def rewrite(c, coef, f):
        if coef == -c:
            survival = _window_survival(f, ctx)
            if survival is not None:
                return c * survival
        return None

    return _constant_plus_term(node, rewrite)


# -- exponentials ----------------------------------------------------------------------------


def _tidy_exponent(e: sp.Expr) -> sp.Expr:
    """The sum of exponents: its rational part (no functions) factored, so that a difference
    of squares shows x - y, the rest as it is."""
    e = sp.expand(e, deep=False)
    plain, other = [], []
    for t in sp.Add.make_args(e):
        (other if t.atoms(sp.Function) else plain).append(t)
    return tidy(sp.Add(*plain)) + sp.Add(*other)


def _exp_product_rule(node, ctx):
    if not isinstance(node, sp.Mul):
        return None
    exps = [f for f in node.args if isinstance(f, sp.exp)]
    if len(exps) < 2:
        return None
    rest = [f for f in node.args if not isinstance(f, sp.exp)]
    return sp.Mul(*rest) * sp.exp(_tidy_exponent(sp.Add(*(f.args[0] for f in exps))))


def _exp_exponent_rule(node, ctx):
    """exp((a*L + p)/c) -> exp(a*L/c + tidy(p/c)): an exponent over a common denominator split
    into its function terms (log_ndtr_diff, ...) and its factored polynomial part."""
    if not isinstance(node, sp.exp) or isinstance(node.args[0], sp.Add):
        return None
    e = node.args[0]
    if not e.atoms(sp.Function):
        return None
    split = sp.expand(e, deep=False)
    if not isinstance(split, sp.Add):
        return None
    return sp.exp(_tidy_exponent(split))


def _exp_distribute_rule(node, ctx):
    """exp(p)*(exp(a)*u + exp(b)*v) -> exp(p + a)*u + exp(p + b)*v: each product of
    exponentials becomes one (exp(p) may overflow where exp(p + a) does not)."""
    if not isinstance(node, sp.Mul):
        return None
    exps = [f for f in node.args if isinstance(f, sp.exp)]
    sums = [f for f in node.args if isinstance(f, sp.Add)]
    if len(exps) != 1 or len(sums) != 1:
        return None
    (total,) = sums
    if not all(any(isinstance(f, sp.exp) for f in sp.Mul.make_args(t)) for t in total.args):
        return None
    rest = [f for f in node.args if f is not exps[0] and f is not total]
    return sp.Mul(*rest) * sp.Add(*(exps[0] * t for t in total.args))


def _exp_expm1_rule(node, ctx):
    """exp(a)*expm1(-a) -> -expm1(a): 0*inf (a << 0) or inf*(-1) (a >> 0) as written."""
    if not isinstance(node, sp.Mul):
        return None
    for e in node.args:
        if not isinstance(e, sp.exp):
            continue
        for f in node.args:
            if isinstance(f, expm1) and sp.expand(f.args[0] + e.args[0]) == 0:
                rest = [g for g in node.args if g is not e and g is not f]
                return -sp.Mul(*rest) * expm1(e.args[0])
    return None


def _exp_times_expm1_rule(node, ctx):
    """exp(b)*expm1(d) -> exp_expm1(b, d): exp(b) underflows to 0 while expm1(d) overflows
    (0*inf) where b << 0 and d >> 0 although the product is finite."""
    if not isinstance(node, sp.Mul):
        return None
    e = next((f for f in node.args if isinstance(f, sp.exp)), None)
    m = next((f for f in node.args if isinstance(f, expm1)), None)
    if e is None or m is None:
        return None
    rest = [g for g in node.args if g is not e and g is not m]
    return sp.Mul(*rest) * exp_expm1(e.args[0], m.args[0])


def _expm1_reciprocal(f: sp.Basic) -> bool:
    """f = 1/expm1(b)."""
    return isinstance(f, sp.Pow) and f.exp == -1 and isinstance(f.base, expm1)


def _expm1_ratio_rule(node, ctx):
    """(Σ t_i expm1(a_i))/expm1(b) -> Σ t_i exp(a_i - b) expm1(-a_i)/expm1(-b) for a_i, b >= 0:
    expm1(a)/expm1(b) = e^(a-b) (1 - e^-a)/(1 - e^-b), finite where both overflow (b > 709)."""
    if not isinstance(node, sp.Mul):
        return None
    dens = [f for f in node.args if _expm1_reciprocal(f)]
    if len(dens) != 1:
        return None
    den = dens[0]
    b = den.base.args[0]
    if ctx.sign(b) <= 0:
        return None
    coef, num = [], []
    for f in node.args:
        if f is den:
            continue
        (num if f.has(expm1) else coef).append(f)
    changed = False
    terms = []
    for t in sp.Add.make_args(sp.Mul(*num)):
        split = split_function(t, expm1)
        if split is not None and ctx.sign(split[1].args[0]) > 0:
            r, e = split
            a = e.args[0]
            if a == b:
                terms.append(r)
            else:
                terms.append(r * sp.exp(tidy(a - b)) * expm1(-a) / expm1(-b))
            changed = True
        else:
            terms.append(t / den.base)
    if not changed:
        return None
    return sp.Mul(*coef) * sp.Add(*terms)


def _exp_over_expm1_rule(node, ctx):
    """exp(a)/expm1(b), b > 0 -> -exp(a - b)/expm1(-b): inf/inf where b > 709."""
    if not isinstance(node, sp.Mul):
        return None
    e = [f for f in node.args if isinstance(f, sp.exp)]
    d = [f for f in node.args if _expm1_reciprocal(f)]
    if len(e) != 1 or len(d) != 1:
        return None
    (e,), (d,) = e, d
    b = d.base.args[0]
    if ctx.sign(b) <= 0:
        return None
    rest = [f for f in node.args if f is not e and f is not d]
    return -sp.Mul(*rest) * sp.exp(tidy(e.args[0] - b)) / expm1(-b)


def _expm1_complement_rule(node, ctx):
    """c - c*expm1(a)/expm1(b) -> c*exp(a)*expm1(b - a)/expm1(b): 1 - F cancels as F -> 1
    (e^b - e^a = e^a expm1(b - a)); only where a, b <= 0, so that nothing overflows."""

    def rewrite(c, coef, f):
        if coef != -c or not isinstance(f, sp.Mul) or len(f.args) != 2:
            return None
        p, q = f.args
        if isinstance(p, sp.Pow):
            p, q = q, p
        if not (isinstance(p, expm1) and _expm1_reciprocal(q)):
            return None
        a, b = p.args[0], q.base.args[0]
        if ctx.sign(a) >= 0 or ctx.sign(b) >= 0:
            return None
        return c * sp.exp(a) * expm1(tidy(b - a)) / q.base

    return _constant_plus_term(node, rewrite)


def _atan_cdf_rule(node, ctx):
    """c + c*(2/pi)*atan(x) -> 2c*atan_cdf(x) (and -x for the minus sign): pi/2 + atan(x)
    cancels for x << 0."""
    if not isinstance(node, sp.Add):
        return None
    c, terms = _split_add(node)
    if c == 0:
        return None
    for i, t in enumerate(terms):
        f = next((g for g in sp.Mul.make_args(t) if isinstance(g, sp.atan)), None)
        if f is None:
            continue
        k = sp.simplify(t / f * sp.pi / (2 * c))
        if k in (1, -1):
            rest = terms[:i] + terms[i + 1 :]
            return 2 * c * atan_cdf(k * f.args[0]) + sp.Add(*rest)
    return None


def _tan_half_pi_rule(node, ctx):
    """tan(pi*(v + 1/2)) -> -cotpi(v): pi*(u - 1/2) loses u's digits next to 0 and 1 (and tan
    is infinitely sensitive at -pi/2), cotpi(u) keeps them."""
    if not isinstance(node, sp.tan):
        return None
    w = sp.expand(node.args[0] / sp.pi)
    c, v = w.as_coeff_Add()
    if v == 0 or not c.is_Rational or (c - sp.Rational(1, 2)) % 1 != 0:
        return None
    return -cotpi(v)


def _function_part(term: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(coefficient, function part) of a product: the factors without and with functions."""
    plain, funcs = [], []
    for f in sp.Mul.make_args(term):
        (funcs if f.atoms(sp.Function) else plain).append(f)
    return sp.Mul(*plain), sp.Mul(*funcs)


def _collect_rule(node, ctx):
    """a*f + b*f -> (a + b)*f for one function part f (a, b free of functions: a + b is one
    rounding, e.g. z - low, not z*f - low*f); p + c*exp(x) -> (p + c) + c*expm1(x) where p + c
    simplifies; r - r*exp(x) -> -r*expm1(x) for symbolic r."""
    if not isinstance(node, sp.Add):
        return None
    groups: dict[sp.Expr, list[int]] = {}
    parts = [_function_part(t) for t in node.args]
    for k, (_, f) in enumerate(parts):
        if f != 1:
            groups.setdefault(f, []).append(k)
    for f, ks in groups.items():
        if len(ks) > 1:
            total = tidy(sp.Add(*(parts[k][0] for k in ks)))
            rest = [t for k, t in enumerate(node.args) if k not in ks]
            return total * f + sp.Add(*rest)
    # p + c*exp(x) -> (p + c) + c*expm1(x) for the function-free terms p where p + c
    # simplifies: (z - loc) - (low - loc)*e^x = (z - low) - (low - loc)*expm1(x)
    plain = [k for k, (_, f) in enumerate(parts) if f == 1]
    p = sp.Add(*(node.args[k] for k in plain))
    if plain and not p.is_number:
        for j, (c, f) in enumerate(parts):
            if not isinstance(f, sp.exp) or c.is_number or f.args[0].atoms(sp.Function):
                continue  # x with functions (a window's log): no reason to expect x ~ 0
            total = tidy(p + c)
            if sp.count_ops(total) < sp.count_ops(p) + sp.count_ops(c):
                rest = [t for i, t in enumerate(node.args) if i != j and i not in plain]
                return total + c * expm1(f.args[0]) + sp.Add(*rest)
    for k, (c, f) in enumerate(parts):
        if f != 1 or c.is_number:
            continue
        for j, (cj, fj) in enumerate(parts):
            if isinstance(fj, sp.exp) and cj == -c:
                rest = [t for i, t in enumerate(node.args) if i not in (k, j)]
                return -c * expm1(fj.args[0]) + sp.Add(*rest)
    return None


def _exp_pairs(node):
    """(i, j, c, a, b) for terms i, j of the sum node equal to c*exp(a) and -c*exp(b)."""
    if not isinstance(node, sp.Add):
        return []
    split = [split_function(t, sp.exp) for t in node.args]
    pairs = []
    for i, si in enumerate(split):
        for j in range(i + 1, len(split)):
            sj = split[j]
            if si is not None and sj is not None and si[0] == -sj[0]:
                pairs.append((i, j, si[0], si[1].args[0], sj[1].args[0]))
    return pairs


def _replace_pair(node, i, j, new):
    return new + sp.Add(*(t for k, t in enumerate(node.args) if k not in (i, j)))


def _window_difference_rule(node, ctx):
    """c*exp(a) - c*exp(b) -> -c*exp(b)*(1 - exp(a - b)) -> -c*exp(b)*S where exp(a - b) is the
    probability of [y, y + d] within [y, y + D] and S that of [y + d, y + D]."""
    for i, j, c, a, b in _exp_pairs(node):
        diff = _tidy_exponent(a - b)
        for sign, base, ratio in ((-1, b, diff), (1, a, -diff)):
            survival = _window_survival(sp.exp(ratio), ctx)
            if survival is not None:
                return _replace_pair(node, i, j, sign * c * sp.exp(base) * survival)
    return None


def _exp_difference_rule(node, ctx):
    """c*exp(a) - c*exp(b) -> c*exp(b)*expm1(a - b) where a - b is simpler than a and b."""
    for i, j, c, a, b in _exp_pairs(node):
        diff = _tidy_exponent(a - b)
        if diff.atoms(sp.Function) or sp.count_ops(diff) >= sp.count_ops(a) + sp.count_ops(b):
            continue  # nothing cancels in a - b
        return _replace_pair(node, i, j, c * sp.exp(b) * expm1(diff))
    return None


def distribute(e: sp.Basic) -> sp.Basic:
    """e with products distributed over sums, except inside function arguments: a sum of
    products, in which equal terms of opposite sign cancel and each product of exponentials
    can become one."""
    if isinstance(e, sp.Add):
        return sp.Add(*(distribute(a) for a in e.args))
    if isinstance(e, sp.Mul):
        return sp.expand_mul(sp.Mul(*(distribute(a) for a in e.args)), deep=False)
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
        return sp.expand_multinomial(sp.Pow(distribute(e.base), e.exp), deep=False)
    return e


def _logsumexp_rule(node, ctx):
    if not isinstance(node, sp.log) or not isinstance(node.args[0], sp.Add):
        return None
    exponents = []
    for t in node.args[0].args:
        split = split_function(t, sp.exp)
        if split is None or not (split[0].is_positive and split[0].is_number):
            return None
        exponents.append(split[1].args[0] + sp.log(split[0]))
    out = exponents[0]
    for e in exponents[1:]:
        out = logaddexp(out, e)
    return out


# -- Gamma and Beta functions ------------------------------------------------------------------


def _gamma_ratio_rule(node, ctx):
    """A product of Γ functions (integer powers) as Γ(a)Γ(b)/Γ(a + b) = exp(betaln(a, b)),
    gammasimp's closed form where it has no Γ left (Γ(a + 1)/Γ(a) = a), else exp(Σ ± lgamma)."""
    if not isinstance(node, sp.Mul):
        return None
    powers = []  # (argument, integer exponent)
    rest = []
    for f in node.args:
        base, k = f.as_base_exp()
        if isinstance(base, sp.gamma) and k.is_integer:
            powers.append([base.args[0], int(k)])
        else:
            rest.append(f)
    if len(powers) < 2 or not any(k < 0 for _, k in powers):
        return None
    out = []
    for c in powers:
        if c[1] >= 0:
            continue
        for a in powers:
            for b in powers:
                if a is b or c[1] >= 0 or a[1] <= 0 or b[1] <= 0:
                    continue
                if sp.expand(a[0] + b[0] - c[0]) == 0:
                    out.append(sp.exp(betaln(a[0], b[0])))
                    a[1] -= 1
                    b[1] -= 1
                    c[1] += 1
    left = sp.Mul(*(sp.gamma(x) ** k for x, k in powers if k))
    closed = sp.gammasimp(left)
    if closed.has(sp.gamma):
        closed = sp.exp(sp.Add(*(k * sp.loggamma(x) for x, k in powers if k)))
    return sp.Mul(*rest, *out) * closed


# -- the rules, in the order they are tried ----------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    doc: str  # one line: pattern -> form
    fn: Callable[[sp.Basic, Context], sp.Basic | None]


RULES: tuple[Rule, ...] = (
    Rule(
        "window_survival",
        "1 - exp(L(y,d) - L(y,D)) -> exp(L(y+d, D-d) - L(y,D))",
        _window_survival_rule,
    ),
    Rule("one_minus_exp", "c - c*exp(x) -> -c*expm1(x)", lambda n, ctx: _one_minus_exp(n)),
    Rule("erf_to_ndtr", "c +- c*erf(a) -> 2*c*ndtr(+-sqrt(2)*a)", lambda n, ctx: _erf_to_ndtr(n)),
    Rule(
        "ndtr_difference",
        "f(x) - f(y), f in erf/erfc/ndtr -> exp(log_ndtr_diff(y', d))",
        _ndtr_difference_rule,
    ),
    Rule(
        "cdf_difference",
        "f(x) - f(y), f in gammainc/gammaincc/betainc/student_t_cdf/atan_cdf/sigmoid -> that of "
        "the complement where f(y) > 1/2",
        _cdf_difference_rule,
    ),
    Rule("log_powers", "log(a**e * b**-e) -> e*log(a/b), log(1/x) -> -log(x)", _log_powers_rule),
    Rule("log1p", "log(1 + x) -> log1p(x)", _log1p_rule),
    Rule(
        "log1mexp",
        "log(-expm1(x)) -> log1mexp(x); log(expm1(x)), x > 0 -> x + log1mexp(-x)",
        _log_expm1_rule,
    ),
    Rule("log_ratio", "log(a/b) -> log_ratio(a, b)", _log_ratio_rule),
    Rule("log_complement", "log1p(-f) -> log of the complement of f", _log1p_complement_rule),
    Rule(
        "log1p_exp", "log1p(-exp(x)) -> log1mexp(x), log1p(exp(x)) -> softplus(x)", _log1p_exp_rule
    ),
    Rule("erfinv", "erfinv(y) -> ndtri((1 + y)/2)/sqrt(2)", _erfinv_rule),
    Rule("sigmoid_pow", "(1 + exp(t))**-k -> sigmoid(-t)**k", _sigmoid_pow_rule),
    Rule(
        "sigmoid_exp", "exp(t)*sigmoid(-t)**k -> sigmoid(t)*sigmoid(-t)**(k-1)", _sigmoid_exp_rule
    ),
    Rule("log_sigmoid", "log(sigmoid(x)) -> -softplus(-x)", _log_sigmoid_rule),
    Rule(
        "complement",
        "c - c*f -> c*(1 - f) computed directly (gammaincc, ndtr(-x), ...)",
        _complement_rule,
    ),
    Rule("log_ndtr", "log(ndtr(x)) -> log_ndtr(x)", _log_ndtr_rule),
    Rule("exp_product", "exp(a)*exp(b) -> exp(a + b), polynomial part factored", _exp_product_rule),
    Rule(
        "exp_exponent",
        "exp((a*L + p)/c) -> exp(a*L/c + p/c), p/c factored",
        _exp_exponent_rule,
    ),
    Rule(
        "exp_distribute",
        "exp(p)*(exp(a)*u + exp(b)*v) -> exp(p + a)*u + exp(p + b)*v",
        _exp_distribute_rule,
    ),
    Rule(
        "window_difference",
        "c*exp(a) - c*exp(b), exp(a - b) = F of a window -> -c*exp(b)*S (window survival)",
        _window_difference_rule,
    ),
    Rule("exp_difference", "c*exp(a) - c*exp(b) -> c*exp(b)*expm1(a - b)", _exp_difference_rule),
    Rule("exp_expm1", "exp(a)*expm1(-a) -> -expm1(a)", _exp_expm1_rule),
    Rule(
        "exp_over_expm1",
        "exp(a)/expm1(b), b > 0 -> -exp(a - b)/expm1(-b)",
        _exp_over_expm1_rule,
    ),
    Rule(
        "expm1_complement",
        "1 - expm1(a)/expm1(b), a, b <= 0 -> exp(a)*expm1(b - a)/expm1(b)",
        _expm1_complement_rule,
    ),
    Rule(
        "expm1_ratio",
        "expm1(a)/expm1(b), a, b >= 0 -> exp(a - b)*expm1(-a)/expm1(-b)",
        _expm1_ratio_rule,
    ),
    Rule(
        "exp_times_expm1",
        "exp(b)*expm1(d) -> exp_expm1(b, d), no 0*inf",
        _exp_times_expm1_rule,
    ),
    Rule("atan_cdf", "1/2 + atan(x)/pi -> atan_cdf(x)", _atan_cdf_rule),
    Rule("tan_half_pi", "tan(pi*(u - 1/2)) -> -cotpi(u)", _tan_half_pi_rule),
    Rule(
        "collect",
        "a*f + b*f -> (a + b)*f; p + c*exp(x) -> (p + c) + c*expm1(x) where p + c simplifies",
        _collect_rule,
    ),
    Rule("logsumexp", "log(exp(a) + exp(b)) -> logaddexp(a, b)", _logsumexp_rule),
    Rule(
        "gamma_ratio",
        "gamma(a)*gamma(b)/gamma(a+b) -> exp(betaln(a, b)), other ratios",
        _gamma_ratio_rule,
    ),
)
RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
FINAL_RULES = ("exp_times_expm1",)


# set by ``rules_off()``: stabilize returns its input (the search's "rules off" candidates)
_OFF: contextvars.ContextVar[bool] = contextvars.ContextVar("irtgen_rewrites_off", default=False)


@contextlib.contextmanager
def rules_off():
    """Within this block ``stabilize`` changes nothing: the derivation as SymPy gives it."""
    token = _OFF.set(True)
    try:
        yield
    finally:
        _OFF.reset(token)


def stabilize(
    expr: sp.Basic,
    fired: set[str] | None = None,
    *,
    nonnegative: Iterable[sp.Expr] = (),
    rules: Iterable[str] | None = None,
) -> sp.Basic:
    """Apply the rules bottom-up until none fires.

    ``fired``: a set that receives the names of the rules that fired. ``nonnegative``:
    expressions known to be >= 0 (see the module's notes). ``rules``: the names of the rules to
    use (default all), tried in ``RULES``' order.
    """
    if _OFF.get():
        return sp.sympify(expr)
    names = RULE_NAMES if rules is None else set(rules)
    ctx = Context(tuple(nonnegative))
    fired = set() if fired is None else fired
    # the final rules run once the others are done: they hide exponentials from them
    first = tuple(r for r in RULES if r.name in names and r.name not in FINAL_RULES)
    last = tuple(r for r in RULES if r.name in names and r.name in FINAL_RULES)
    out = _stabilize(sp.sympify(expr), first, ctx, fired, 0)
    return _stabilize(out, last, ctx, fired, 0) if last else out


def _with_sides(expr: sp.Piecewise, ctx: Context) -> Context:
    """ctx with the values that the conditions ``f(y) <= 1/2`` of expr split by side."""
    sided = set(ctx.sided)
    for _, cond in expr.args:
        if isinstance(cond, sp.LessThan) and cond.rhs == sp.S.Half:
            f = cond.lhs
            if type(f) in _DIFFERENCE_SHAPES:
                sided |= {f, COMPLEMENTS[type(f)](*f.args)}
    return ctx if len(sided) == len(ctx.sided) else dataclasses.replace(ctx, sided=frozenset(sided))


def _stabilize(expr, rules, ctx, fired, depth):
    if depth > 50:  # a rule cycle would be a bug; fail loudly rather than loop
        raise RuntimeError(f"rewrite rules do not terminate on {expr}")
    if expr.is_Atom:
        return expr
    if isinstance(expr, sp.Piecewise):
        ctx = _with_sides(expr, ctx)
        return sp.Piecewise(
            *((_stabilize(e, rules, ctx, fired, depth), c) for e, c in expr.args), evaluate=False
        )
    if isinstance(expr, (sp.core.relational.Relational, sp.logic.boolalg.Boolean)):
        return expr.func(*(_stabilize(a, rules, ctx, fired, depth) for a in expr.args))
    node = expr.func(*(_stabilize(a, rules, ctx, fired, depth) for a in expr.args))
    for rule in rules:
        new = rule.fn(node, ctx)
        if new is not None and new != node:
            fired.add(rule.name)
            return _stabilize(new, rules, ctx, fired, depth + 1)
    return node
