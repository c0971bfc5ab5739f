"""SymPy functions that irtgen adds for numerically careful code.

They carry derivative rules (``fdiff``) so that the symbolic derivation differentiates through
them, and numeric evaluation (``_eval_evalf``) so that build-time checks can evaluate them. The
rewrite pass (``irtgen.rewrite``) and the lowering of SymPy's own special functions
(``irtgen.lower``) introduce them; a spec may also use them directly, e.g.
``irtgen.functions.ndtri(u)`` in a Normal icdf. ``log1p`` and ``expm1`` are SymPy's own
(``sympy.codegen.cfunctions``) and are re-exported here.

The incomplete gamma and beta functions come with *ratio* functions: ∂P/∂a divided by ∂P/∂x
(the density), computed with the shared prefactor cancelled inside the algorithm. Their fdiff
writes ∂P/∂a = exp(log density) * ratio, so that in an implicit gradient -(∂F/∂θ)/q the
exponential cancels symbolically and the generated code never divides two numbers that
underflow together.
"""

from __future__ import annotations

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

__all__ = [
    "expm1",
    "log1p",
    "log1mexp",
    "softplus",
    "sigmoid",
    "log_ratio",
    "ndtr",
    "ndtri",
    "log_ndtr",
    "log_ndtr_diff",
    "ndtr_diff",
    "logaddexp",
    "exp_expm1",
    "atan_cdf",
    "cotpi",
    "log_gamma_density",
    "gammainc",
    "gammaincc",
    "gammainc_da_ratio",
    "betaln",
    "log_beta_density",
    "betainc",
    "betainc_da_ratio",
    "betainc_db_ratio",
    "student_t_cdf",
    "student_t_ddf_ratio",
    "IRTGEN_FUNCTIONS",
]


class _MpmathFunction(sp.Function):
    """A function with a numeric definition through mpmath, used by evalf."""

    @staticmethod
    def _mp(*args):  # pragma: no cover - overridden
        raise NotImplementedError

    def _eval_evalf(self, prec):
        args = [a.evalf(prec) for a in self.args]
        if not all(a.is_number for a in args):
            return None
        with mpmath.workprec(prec):
            value = self._mp(*(mpmath.mpf(str(a)) for a in args))
        return sp.Float(value, sp.core.evalf.prec_to_dps(prec))


class log1mexp(_MpmathFunction):  # noqa: N801 - mirrors the usual math-library name
    """log(1 - exp(x)) for x < 0, accurate for x near 0 and for x very negative."""

    nargs = 1

    @staticmethod
    def _mp(x):
        if x > -mpmath.log(2):
            return mpmath.log(-mpmath.expm1(x))
        return mpmath.log1p(-mpmath.exp(x))

    def fdiff(self, argindex=1):
        (x,) = self.args
        return -1 / expm1(-x)

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 - sp.exp(x))


class softplus(_MpmathFunction):  # noqa: N801
    """log(1 + exp(x)), without overflow for large x."""

    nargs = 1

    @staticmethod
    def _mp(x):
        return mpmath.log1p(mpmath.exp(x))

    def fdiff(self, argindex=1):
        (x,) = self.args
        return 1 / (1 + sp.exp(-x))

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))


class sigmoid(_MpmathFunction):  # noqa: N801
    """1/(1 + exp(-x)), without overflow for either sign of x."""

    nargs = 1

    @staticmethod
    def _mp(x):
        return 1 / (1 + mpmath.exp(-x))

    def fdiff(self, argindex=1):
        (x,) = self.args
        return sigmoid(x) * sigmoid(-x)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))


class log_ratio(_MpmathFunction):  # noqa: N801
    """log(a/b) for a, b > 0, accurate when a is close to b (then a - b is exact)."""

    nargs = 2

    @staticmethod
    def _mp(a, b):
        return mpmath.log(a / b)

    def fdiff(self, argindex=1):
        a, b = self.args
        return 1 / a if argindex == 1 else -1 / b

    def _eval_evalf(self, prec):
        a, b = self.args
        # a - b through SymPy's adaptive evalf: exact digits even when a and b nearly agree
        d = (a - b).evalf(prec)
        bv = b.evalf(prec)
        if not (d.is_number and bv.is_number):
            return None
        with mpmath.workprec(prec):
            value = mpmath.log1p(mpmath.mpf(str(d)) / mpmath.mpf(str(bv)))
        return sp.Float(value, sp.core.evalf.prec_to_dps(prec))

    def _eval_rewrite_as_log(self, a, b, **kwargs):
        return sp.log(a / b)


class ndtr(_MpmathFunction):  # noqa: N801
    """Standard normal CDF, (1 + erf(x/sqrt(2)))/2, accurate in the lower tail (via erfc)."""

    nargs = 1

    @staticmethod
    def _mp(x):
        return mpmath.ncdf(x)

    def fdiff(self, argindex=1):
        (x,) = self.args
        return sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)

    def _eval_rewrite_as_erf(self, x, **kwargs):
        return (1 + sp.erf(x / sp.sqrt(2))) / 2


class ndtri(_MpmathFunction):  # noqa: N801
    """Inverse of the standard normal CDF, accurate in both tails."""

    nargs = 1

    @staticmethod
    def _mp(p):
        # 2p - 1 loses the digits of p near 0 and 1: add as many as they need
        tail = min(p, 1 - p)
        extra = int(-mpmath.log10(tail)) + 10 if 0 < tail < 1 else 10
        with mpmath.workdps(mpmath.mp.dps + extra):
            return mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1)

    def fdiff(self, argindex=1):
        return sp.sqrt(2 * sp.pi) * sp.exp(self**2 / 2)

    def _eval_rewrite_as_erfinv(self, p, **kwargs):
        return sp.sqrt(2) * sp.erfinv(2 * p - 1)


class log_ndtr(_MpmathFunction):  # noqa: N801
    """log of the standard normal CDF, accurate far into the lower tail."""

    nargs = 1
    is_extended_real = True

    @staticmethod
    def _mp(x):
        return mpmath.log(mpmath.ncdf(x))

    def fdiff(self, argindex=1):
        (x,) = self.args
        return sp.exp(-(x**2) / 2 - self) / sp.sqrt(2 * sp.pi)

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(ndtr(x))


def _mp_ndtr_diff(y, d):
    """Φ(y + d) - Φ(y) for d >= 0, as a - b from the tail the window lies in, with as many
    extra bits as a - b cancels."""
    if d == 0:
        return mpmath.mpf(0)
    prec = mpmath.mp.prec
    extra = 20
    for _ in range(10):
        with mpmath.workprec(prec + extra):
            x = y + d
            if y >= 0:  # upper tail: Φ(-y) - Φ(-x)
                a, b = mpmath.ncdf(-y), mpmath.ncdf(-x)
            elif x <= 0:
                a, b = mpmath.ncdf(x), mpmath.ncdf(y)
            else:
                a, b = 1 - mpmath.ncdf(-x), mpmath.ncdf(y)
            diff = a - b
            if diff > 0 and mpmath.log(a / diff, 2) < extra - 10:
                return +diff
            extra = 4 * extra if diff <= 0 else int(mpmath.log(a / diff, 2)) + 30
    return diff


class log_ndtr_diff(_MpmathFunction):  # noqa: N801
    """log(Φ(y + d) - Φ(y)) for d > 0: the log-probability of the window [y, y + d] under the
    standard normal, from the side of 0 where nothing cancels (quadrature for narrow windows).
    The window's width d is its own argument, so that e.g. (z - low)/scale is one rounding."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(y, d):
        return mpmath.log(_mp_ndtr_diff(y, d))

    def fdiff(self, argindex=1):
        y, d = self.args
        # φ(y + d)/(Φ(y + d) - Φ(y)) and, in y, that minus φ(y)/(Φ(y + d) - Φ(y)): written as
        # exponentials of the density's log minus this one, so that products with
        # exp(log_ndtr_diff) cancel symbolically
        upper = sp.exp(-((y + d) ** 2) / 2 - self) / sp.sqrt(2 * sp.pi)
        if argindex == 2:
            return upper
        return upper - sp.exp(-(y**2) / 2 - self) / sp.sqrt(2 * sp.pi)

    def _eval_rewrite_as_log(self, y, d, **kwargs):
        return sp.log(ndtr(y + d) - ndtr(y))


class ndtr_diff(_MpmathFunction):  # noqa: N801
    """Φ(y + d) - Φ(y) for d of either sign (negative for d < 0), through log_ndtr_diff of the
    window between y and y + d."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(y, d):
        return _mp_ndtr_diff(y, d) if d >= 0 else -_mp_ndtr_diff(y + d, -d)

    def fdiff(self, argindex=1):
        y, d = self.args
        upper = sp.exp(-((y + d) ** 2) / 2) / sp.sqrt(2 * sp.pi)
        if argindex == 2:
            return upper
        return upper - sp.exp(-(y**2) / 2) / sp.sqrt(2 * sp.pi)

    def _eval_rewrite_as_ndtr(self, y, d, **kwargs):
        return ndtr(y + d) - ndtr(y)


class logaddexp(_MpmathFunction):  # noqa: N801
    """log(exp(a) + exp(b)), without overflow or underflow of the exponentials."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(a, b):
        return mpmath.log(mpmath.exp(a) + mpmath.exp(b))

    def fdiff(self, argindex=1):
        a, b = self.args
        return sigmoid(a - b) if argindex == 1 else sigmoid(b - a)

    def _eval_rewrite_as_exp(self, a, b, **kwargs):
        return sp.log(sp.exp(a) + sp.exp(b))


class exp_expm1(_MpmathFunction):  # noqa: N801
    """exp(b)*expm1(d) = exp(b + d) - exp(b), without inf*0 for b << 0 and d >> 0."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(b, d):
        return mpmath.exp(b) * mpmath.expm1(d)

    def fdiff(self, argindex=1):
        b, d = self.args
        return exp_expm1(b, d) if argindex == 1 else sp.exp(b + d)

    def _eval_rewrite_as_exp(self, b, d, **kwargs):
        return sp.exp(b + d) - sp.exp(b)


class atan_cdf(_MpmathFunction):  # noqa: N801
    """1/2 + atan(x)/pi, the standard Cauchy CDF, accurate in the lower tail."""

    nargs = 1
    is_extended_real = True

    @staticmethod
    def _mp(x):
        return mpmath.mpf(1) / 2 + mpmath.atan(x) / mpmath.pi

    def fdiff(self, argindex=1):
        (x,) = self.args
        return 1 / (sp.pi * (1 + x**2))

    def _eval_rewrite_as_atan(self, x, **kwargs):
        return sp.Rational(1, 2) + sp.atan(x) / sp.pi


class cotpi(_MpmathFunction):  # noqa: N801
    """cot(pi x), accurate for x near the integers (sin(pi x) computed exactly there)."""

    nargs = 1
    is_extended_real = True

    @staticmethod
    def _mp(x):
        return mpmath.cospi(x) / mpmath.sinpi(x)

    def fdiff(self, argindex=1):
        (x,) = self.args
        return -sp.pi * (1 + cotpi(x) ** 2)

    def _eval_rewrite_as_cot(self, x, **kwargs):
        return sp.cot(sp.pi * x)


# -- incomplete gamma ------------------------------------------------------------------------


def _mp_log_gamma_density(a, x):
    if x == 0:
        return mpmath.inf if a < 1 else (mpmath.mpf(0) if a == 1 else -mpmath.inf)
    return (a - 1) * mpmath.log(x) - x - mpmath.loggamma(a)


def _mp_gammainc(a, x):
    return mpmath.gammainc(a, 0, x, regularized=True)


class log_gamma_density(_MpmathFunction):  # noqa: N801
    """log(x^(a-1) e^(-x) / Γ(a)): the log-density of Gamma(a, 1), = log ∂P(a, x)/∂x.

    Computed without the cancellation of (a - 1) log x - x - lgamma(a) for large a near x = a.
    """

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(a, x):
        return _mp_log_gamma_density(a, x)

    def fdiff(self, argindex=1):
        a, x = self.args
        if argindex == 1:
            return sp.log(x) - sp.polygamma(0, a)
        return (a - 1) / x - 1

    def _eval_rewrite_as_log(self, a, x, **kwargs):
        return (a - 1) * sp.log(x) - x - sp.loggamma(a)


class gammainc_da_ratio(_MpmathFunction):  # noqa: N801
    """(∂P/∂a) / (∂P/∂x) for the regularized lower incomplete gamma P(a, x).

    For z ~ Gamma(a, 1), -gammainc_da_ratio(a, z) is dz/da at fixed P(a, z).
    """

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(a, x):
        d = mpmath.diff(lambda s: _mp_gammainc(s, x), a)
        return d / mpmath.exp(_mp_log_gamma_density(a, x))


class gammainc(_MpmathFunction):  # noqa: N801
    """Regularized lower incomplete gamma P(a, x) = γ(a, x)/Γ(a)."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(a, x):
        return _mp_gammainc(a, x)

    def fdiff(self, argindex=1):
        a, x = self.args
        density = sp.exp(log_gamma_density(a, x))
        return density * gammainc_da_ratio(a, x) if argindex == 1 else density

    def _eval_rewrite_as_lowergamma(self, a, x, **kwargs):
        return sp.lowergamma(a, x) / sp.gamma(a)


class gammaincc(_MpmathFunction):  # noqa: N801
    """Regularized upper incomplete gamma Q(a, x) = Γ(a, x)/Γ(a) = 1 - P(a, x), computed
    directly (accurate where P is close to 1)."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(a, x):
        return mpmath.gammainc(a, x, mpmath.inf, regularized=True)

    def fdiff(self, argindex=1):
        a, x = self.args
        density = sp.exp(log_gamma_density(a, x))
        return -density * gammainc_da_ratio(a, x) if argindex == 1 else -density

    def _eval_rewrite_as_uppergamma(self, a, x, **kwargs):
        return sp.uppergamma(a, x) / sp.gamma(a)


# -- incomplete beta -------------------------------------------------------------------------
#
# The beta functions take y = 1 - x as a separate argument: the caller supplies it in a form
# that keeps its digits (t^2/(nu + t^2) for Student-t, not 1 - nu/(nu + t^2)). The derivative
# with respect to y is 0 by convention: y only carries the digits of 1 - x, and the chain rule
# through x alone is the whole derivative.


def _mp_log_beta_density(a, b, x, y):
    return (a - 1) * mpmath.log(x) + (b - 1) * mpmath.log(y) - mpmath.log(mpmath.beta(a, b))


def _mp_betainc(a, b, x, y):
    if x <= y:
        return mpmath.betainc(a, b, 0, x, regularized=True)
    return 1 - mpmath.betainc(b, a, 0, y, regularized=True)


class betaln(_MpmathFunction):  # noqa: N801
    """log B(a, b), without the cancellation of lgamma(a) + lgamma(b) - lgamma(a + b)."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(a, b):
        return mpmath.log(mpmath.beta(a, b))

    def fdiff(self, argindex=1):
        a, b = self.args
        own = a if argindex == 1 else b
        return sp.polygamma(0, own) - sp.polygamma(0, a + b)

    def _eval_rewrite_as_loggamma(self, a, b, **kwargs):
        return sp.loggamma(a) + sp.loggamma(b) - sp.loggamma(a + b)


class log_beta_density(_MpmathFunction):  # noqa: N801
    """log(x^(a-1) y^(b-1) / B(a, b)) with y = 1 - x: the log-density of Beta(a, b),
    = log ∂I_x(a, b)/∂x."""

    nargs = 4
    is_extended_real = True

    @staticmethod
    def _mp(a, b, x, y):
        return _mp_log_beta_density(a, b, x, y)

    def fdiff(self, argindex=1):
        a, b, x, y = self.args
        if argindex == 1:
            return sp.log(x) - sp.polygamma(0, a) + sp.polygamma(0, a + b)
        if argindex == 2:
            return sp.log(y) - sp.polygamma(0, b) + sp.polygamma(0, a + b)
        if argindex == 3:
            return (a - 1) / x
        return (b - 1) / y

    def _eval_rewrite_as_log(self, a, b, x, y, **kwargs):
        return (a - 1) * sp.log(x) + (b - 1) * sp.log(y) - betaln(a, b)


class _BetaRatio(_MpmathFunction):
    nargs = 4
    is_extended_real = True
    _wrt = 0  # which shape: 0 for a, 1 for b

    @classmethod
    def _mp(cls, a, b, x, y):
        if cls._wrt == 0:
            d = mpmath.diff(lambda s: _mp_betainc(s, b, x, y), a)
        else:
            d = mpmath.diff(lambda s: _mp_betainc(a, s, x, y), b)
        return d / mpmath.exp(_mp_log_beta_density(a, b, x, y))


class betainc_da_ratio(_BetaRatio):  # noqa: N801
    """(∂I/∂a) / (∂I/∂x) for the regularized incomplete beta I_x(a, b), y = 1 - x."""

    _wrt = 0


class betainc_db_ratio(_BetaRatio):  # noqa: N801
    """(∂I/∂b) / (∂I/∂x) for the regularized incomplete beta I_x(a, b), y = 1 - x."""

    _wrt = 1


class betainc(_MpmathFunction):  # noqa: N801
    """Regularized incomplete beta I_x(a, b), with y = 1 - x given separately (see above)."""

    nargs = 4
    is_extended_real = True

    @staticmethod
    def _mp(a, b, x, y):
        return _mp_betainc(a, b, x, y)

    def fdiff(self, argindex=1):
        a, b, x, y = self.args
        density = sp.exp(log_beta_density(a, b, x, y))
        if argindex == 1:
            return density * betainc_da_ratio(a, b, x, y)
        if argindex == 2:
            return density * betainc_db_ratio(a, b, x, y)
        if argindex == 3:
            return density
        return sp.S.Zero

    def _eval_rewrite_as_betainc_regularized(self, a, b, x, y, **kwargs):
        return sp.betainc_regularized(a, b, 0, x)


# -- Student-t --------------------------------------------------------------------------------


def _mp_student_t_cdf(df, t):
    x = df / (df + t * t)
    half = mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, x, regularized=True) / 2
    return half if t < 0 else 1 - half


def student_t_log_density(df, t):
    """log of the standard Student-t density, as a SymPy expression (betaln keeps large df
    accurate: lgamma((df+1)/2) - lgamma(df/2) = log(pi)/2 - betaln(df/2, 1/2))."""
    return -betaln(df / 2, sp.S.Half) - sp.log(df) / 2 - (df + 1) / 2 * log1p(t**2 / df)


class student_t_ddf_ratio(_MpmathFunction):  # noqa: N801
    """(∂F/∂df) / (∂F/∂t) for the standard Student-t CDF F(df, t); 0 at t = 0."""

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(df, t):
        if t == 0:
            return mpmath.mpf(0)
        # F = I_x(df/2, 1/2)/2 for t < 0 and 1 - I_x(df/2, 1/2)/2 for t > 0: differentiate the
        # half alone, since 1 - (a tiny half) would leave no digits for the derivative
        x = lambda s: s / (s + t * t)  # noqa: E731
        half = lambda s: mpmath.betainc(s / 2, mpmath.mpf(1) / 2, 0, x(s), regularized=True) / 2  # noqa: E731
        d = mpmath.diff(half, df)
        return (d if t < 0 else -d) / mpmath.exp(_mp_student_t_log_density(df, t))


def _mp_student_t_log_density(df, t):
    return (
        mpmath.loggamma((df + 1) / 2)
        - mpmath.loggamma(df / 2)
        - mpmath.log(df * mpmath.pi) / 2
        - (df + 1) / 2 * mpmath.log1p(t * t / df)
    )


class student_t_cdf(_MpmathFunction):  # noqa: N801
    """CDF of the standard Student-t distribution with df degrees of freedom at t.

    Computed as I_x(df/2, 1/2)/2 (t < 0) or 1 - I_x(df/2, 1/2)/2 with x = df/(df + t²) and
    1 - x = t²/(df + t²) kept separately; the complement is student_t_cdf(df, -t). Its own
    function (rather than ``betainc`` in the spec) so that the density is the closed form,
    finite at t = 0, and ∂F/∂df comes from ``student_t_ddf_ratio``.
    """

    nargs = 2
    is_extended_real = True

    @staticmethod
    def _mp(df, t):
        return _mp_student_t_cdf(df, t)

    def fdiff(self, argindex=1):
        df, t = self.args
        density = sp.exp(student_t_log_density(df, t))
        return density * student_t_ddf_ratio(df, t) if argindex == 1 else density


# Functions defined here, for spec namespaces and printers.
IRTGEN_FUNCTIONS = (
    log1mexp,
    softplus,
    sigmoid,
    log_ratio,
    ndtr,
    ndtri,
    log_ndtr,
    log_ndtr_diff,
    ndtr_diff,
    logaddexp,
    exp_expm1,
    atan_cdf,
    cotpi,
    log_gamma_density,
    gammainc,
    gammaincc,
    gammainc_da_ratio,
    betaln,
    log_beta_density,
    betainc,
    betainc_da_ratio,
    betainc_db_ratio,
    student_t_cdf,
    student_t_ddf_ratio,
)
