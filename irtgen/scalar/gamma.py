"""Gamma-function special functions as scalar functions (irtgen.scalar.source).

lgamma, digamma, the Gamma log density, the regularized incomplete gamma functions P and Q and
the Gamma implicit-gradient ratio (dP/da)/(dP/dx). Each element takes one regime with a real
``if``/``else``, and each loop stops when its own element has converged:

* Temme's uniform expansion (DLMF 8.12) for a > 20 and |x - a| <= 0.4 a, differentiated in a
  analytically; the factor exp(-a eta^2 / 2) is the density's and cancels in the ratio.
* Otherwise the power series of P for x < 1.1 or x - 1/(3x) < a, else Legendre's continued
  fraction of Q (modified Lentz), each carrying its derivative in a forward-mode.
* For small a (a <= -0.4/log x if x < 0.5, a <= 0.75 x if 0.5 <= x < 1.1), where P is close
  to 1, Q comes from Q = 1 - x^a/Gamma(1+a) - (x^a/Gamma(a)) sum_{n>=1} (-x)^n/(n! (a+n)).
  The series/fraction/small-a boundaries are those of DiDonato and Morris (1986).

Prefactors are taken in log space; for a >= 10 through Stirling's series, with
x^a e^-x / Gamma(a+1) = exp(a log1pmx((x-a)/a) - stirlerr(a)) / sqrt(2 pi a), which has no
cancellation when x ~ a. The ratio needs no prefactor at all. Series and continued fractions are
capped at MAX_ITER terms; an element that does not converge within them gives NaN. Invalid
arguments (a <= 0, a = inf, x < 0, NaN) give NaN.

Accuracy (float64, against mpmath, tests/scalar/test_gamma.py): ratio and log density within
~1e-14 relative; P and Q within ~1e-14 for values v >= 1e-10 and about 2 |log v| ulp below (the
rounding of the exponent log v; ~5e-14 near 1e-300), which is the conditioning of P in a and x
there.

Arguments are float64 in practice (CPU kernels compute in float64; Triton kernels call special
functions with float64 inputs); the coefficient tables are in irtgen.scalar.gamma_tables.
"""

from __future__ import annotations

from irtgen.scalar import elementary as el
from irtgen.scalar import gamma_tables as gt
from irtgen.scalar.source import scalar, tl

MAX_ITER = 300  # series and continued-fraction terms; the regimes need <= ~120

# ``want`` of the incomplete-gamma helpers, a literal int at every call site (so a constexpr
# for Triton, which compiles one branch): 0 P(a, x), 1 Q(a, x), 2 (dP/da)/(dP/dx)

# -- gamma function ---------------------------------------------------------------------------


@scalar
def stirlerr(a):
    """lgamma(a) - (a - 1/2) log a + a - log(2 pi)/2 for a >= 10 (Stirling's series)."""
    return gt.stirling_series(1.0 / a)


@scalar
def lgamma_pos(x):
    """lgamma(x) for x > 0: Stirling for x >= 10; x < 0.5 via lgamma(1 + x) - log x; between,
    the recurrence into (1.5, 2.5] and (x - 1) h1, (x - 2) h2 around the zeros."""
    if x >= 10.0:
        r = (x - 0.5) * tl.log(x) - x + 0.91893853320467274 + stirlerr(x)
    elif x < 0.5:
        r = x * gt.lgamma_h1(2.0 * x) - tl.log(x)
    elif x <= 1.5:
        r = (x - 1.0) * gt.lgamma_h1(2.0 * (x - 1.0))
    else:
        z = x
        prod = 0.0 * x + 1.0
        while z > 2.5:  # at most 8 steps (x < 10)
            z = z - 1.0
            prod = prod * z
        r = (z - 2.0) * gt.lgamma_h2(2.0 * (z - 2.0)) + tl.log(prod)
    return r


@scalar
def lgamma1p(a):
    """lgamma(1 + a) for a >= 0, with relative accuracy for small a (1 + a is not formed)."""
    if a <= 0.5:
        r = a * gt.lgamma_h1(2.0 * a)
    elif a <= 1.5:
        r = (a - 1.0) * gt.lgamma_h2(2.0 * (a - 1.0))
    else:
        r = lgamma_pos(a + 1.0)
    return r


@scalar
def _sinpi_cospi(x):
    """sin(pi x), cos(pi x) (elementary.sinpi_cospi: exact reduction, no stack)."""
    return el.sinpi_cospi(x)


@scalar
def lgamma(x):
    """log|Gamma(x)|; x <= 0 by reflection, log(pi/|sin(pi x)|) - lgamma(1 - x); poles give inf."""
    if (x == float("inf")) or (x == -float("inf")):
        r = tl.abs(x)
    elif x > 0.0:
        r = lgamma_pos(x)
    else:
        s, _c = _sinpi_cospi(x)
        r = 1.1447298858494002 - tl.log(tl.abs(s)) - lgamma_pos(1.0 - x)
    return r


@scalar
def digamma_pos(x):
    """digamma(x) for x > 0: asymptotic series for x >= 10, (x - root) g(x) on [1, 2]
    (relative accuracy at the root 1.4616...), the recurrence psi(x + 1) = psi(x) + 1/x between."""
    if x < 1.0:
        acc = -1.0 / x
        z = x + 1.0
    else:
        acc = 0.0 * x
        z = x
    while (z > 2.0) and (z < 10.0):  # at most 8 steps
        acc = acc + 1.0 / (z - 1.0)
        z = z - 1.0
    if z >= 10.0:
        rr = 1.0 / z
        r = tl.log(z) - 0.5 * rr - gt.digamma_series(rr)
    else:
        r = gt.digamma_near_root(z)
    return r + acc


@scalar
def digamma(x):
    """psi(x) = Gamma'(x)/Gamma(x); x < 0 by reflection, psi(1 - x) - pi/tan(pi x); poles NaN."""
    if x == float("inf"):
        r = x
    elif x > 0.0:
        r = digamma_pos(x)
    else:
        s, c = _sinpi_cospi(x)
        if s == 0.0:
            r = x * 0.0 + float("nan")
        else:
            r = digamma_pos(1.0 - x) - 3.141592653589793 * c / s
    return r


# -- log density ------------------------------------------------------------------------------


@scalar
def stirling_parts(a, x):
    """(a log1pmx((x - a)/a), log(x/a)) for a >= 10."""
    t = (x - a) / a
    q = x / a
    if tl.abs(t) <= 0.5:
        lr = el.log1p(t)
    elif q > 1e-300:
        lr = tl.log(q)
    else:
        lr = tl.log(x) - tl.log(a)
    if (t >= -0.5) and (t <= 1.0):
        lm = el.log1pmx(t)
    else:
        lm = lr - t
    return a * lm, lr


@scalar
def log_gamma_norm(a):
    """N(a): the part of log_gamma_density(a, x) that depends on a alone (a > 0 finite; the
    callers check): (log(2 pi) + log a)/2 + stirlerr(a) for a >= 10, where the density is
    exp(a log1pmx((x - a)/a) - log(x/a) - N(a)), and lgamma(a) below. Formulas with a fixed a
    compute it once per parameter value and call ``log_gamma_density_at``."""
    if a >= 10.0:
        r = 0.5 * (1.8378770664093455 + tl.log(a)) + stirlerr(a)
    else:
        r = lgamma_pos(a)
    return r


@scalar
def log_gamma_density(a, x):
    """log(x^(a-1) e^-x / Gamma(a)) = log dP(a, x)/dx, accurate for large a with x ~ a."""
    return log_gamma_density_at(a, x, log_gamma_norm(a))


@scalar
def log_gamma_density_at(a, x, norm):
    """log_gamma_density with norm = log_gamma_norm(a) given."""
    if ((a > 0.0) and (a < float("inf"))) and (x >= 0.0):
        if x == 0.0:
            r = 0.0 * a + tl.where(a < 1.0, float("inf"), tl.where(a == 1.0, 0.0, -float("inf")))
        elif x == float("inf"):
            r = 0.0 * a - float("inf")
        elif a >= 10.0:
            alm, lr = stirling_parts(a, x)
            r = alm - lr - norm
        else:
            r = (a - 1.0) * tl.log(x) - x - norm
    else:
        r = a + x + float("nan")
    return r


# -- incomplete gamma: the three regimes -------------------------------------------------------


@scalar
def _temme(a, x, want):
    """P (want 0), Q (1) or the ratio (2) from Temme's expansion for a > 20, |x - a| <= 0.4 a.

    Q = erfc(y)/2 + exp(-a eta^2/2)/sqrt(2 pi a) S, y = eta sqrt(a/2), S = sum c_k(eta) a^-k;
    exp(-y^2) = exp(a log1pmx(t)) is taken out of both terms exactly.
    dQ/da = exp(-a eta^2/2)/sqrt(2 pi a) [log(lam)/eta + S (log(lam) - 1/(2a)) + dS/da] with
    d eta/da = -(lam - 1)/(a eta); the density is exp(-a eta^2/2)/(lam sqrt(2 pi a)) e^-stirlerr.
    """
    t = (x - a) / a
    lm = el.log1pmx(t)
    eta = tl.sqrt(-2.0 * lm)
    if t < 0.0:
        eta = -eta
    z = 1.0 / a
    s, s_eta, s_k = gt.temme_sum(eta, z)
    if want == 2:
        loglam = el.log1p(t)
        if eta == 0.0:
            loglam_over_eta = 0.0 * t + 1.0
            t_over_eta = 0.0 * t + 1.0
        else:
            loglam_over_eta = loglam / eta
            t_over_eta = t / eta
        ds_da = -z * (t_over_eta * s_eta + s_k)
        braces = loglam_over_eta + s * (loglam - 0.5 * z) + ds_da
        r = -(1.0 + t) * tl.exp(stirlerr(a)) * braces
    else:
        e = tl.exp(a * lm)
        y = eta * tl.sqrt(0.5 * a)
        scaled = s / tl.sqrt(6.283185307179586 * a)
        if eta >= 0.0:
            small_q = e * (0.5 * el.erfcx_nonneg(y) + scaled)
            if want == 0:
                r = 1.0 - small_q
            else:
                r = small_q
        else:
            small_p = e * (0.5 * el.erfcx_nonneg(-y) - scaled)
            if want == 0:
                r = small_p
            else:
                r = 1.0 - small_p
    return r


@scalar
def _series(a, x, n_max):
    """S = sum_n x^n/((a+1)...(a+n)) and dS/da (P = x^a e^-x/Gamma(a+1) S); S is NaN if the
    series did not converge within n_max terms."""
    t = 0.0 * x + 1.0
    dt = 0.0 * x
    s = 0.0 * x + 1.0
    ds = 0.0 * x
    more = x == x
    n = 0
    while more and (n < n_max):
        n += 1
        an = a + n
        r = x / an
        t = t * r
        dt = dt * r - t / an
        s = s + t
        ds = ds + dt
        more = not ((t <= 1e-17 * s) and (tl.abs(dt) <= 1e-17 * tl.abs(ds)))
    if more:
        s = s + float("nan")
    return s, ds


@scalar
def _continued_fraction(a, x, lx, n_max):
    """G and d log G/da, G = b_0 + a_1/(b_1 + a_2/(b_2 + ...)), b_n = x + 2n + 1 - a,
    a_n = -n (n - a), so that Q = x^a e^-x/Gamma(a) / G (DLMF 8.9.2, even part); lx = log x.
    Modified Lentz with its factors C_n, D_n differentiated in a. G is NaN if the fraction did
    not converge within n_max steps."""
    b = x + 1.0 - a
    g = b
    dlog = -1.0 / b
    c = b
    dc = 0.0 * x - 1.0
    d = 0.0 * x
    dd = 0.0 * x
    alx = tl.abs(lx)
    more = x == x
    n = 0
    while more and (n < n_max):
        n += 1
        an = (a - n) * n
        b = b + 2.0
        d_new = 1.0 / (b + an * d)
        dd_over_d = -d_new * (-1.0 + n * d + an * dd)
        dd = dd_over_d * d_new
        d = d_new
        c_new = b + an / c
        dc = -1.0 + (n - an * dc / c) / c
        c = c_new
        delta = c * d
        step = dc / c + dd_over_d
        g = g * delta
        dlog = dlog + step
        # d log G/da enters the ratio next to log x - psi(a): for huge x it is tiny against
        # log x and need not be resolved to its own relative precision; a factor within an
        # ulp of 1: 1/b rounds, and for huge x the factor can settle one ulp below 1
        more = not (
            (tl.abs(delta - 1.0) <= 2.3e-16) and (tl.abs(step) <= 1e-17 * (tl.abs(dlog) + alx))
        )
    if more:
        g = g + float("nan")
    return g, dlog


@scalar
def _small_q(a, x, n_max):
    """Q for x < 1.1 and small a: 1 - x^a/Gamma(1+a) - x^a/Gamma(1+a) a T with
    T = sum_{n>=1} (-x)^n/(n! (a+n)), from gamma(a, x) = x^a sum (-x)^n/(n! (a+n)); NaN if T
    did not converge within n_max terms."""
    term = 0.0 * x + 1.0
    tsum = 0.0 * x
    more = x == x
    n = 0
    while more and (n < n_max):
        n += 1
        term = term * (-x / n)
        inc = term / (a + n)
        tsum = tsum + inc
        more = not (tl.abs(inc) <= 1e-17 * tl.abs(tsum))
    l1 = a * tl.log(x) - lgamma1p(a)
    q = -el.expm1(l1) - tl.exp(l1) * a * tsum
    if more:
        q = q + float("nan")
    return q


@scalar
def _igamma_inner(a, x, want, n_max):
    """P (want 0), Q (1) or the ratio (2) for 0 < a < inf, 0 < x < inf, in the regimes of the
    module docstring (20.0 is tools/fit_temme.py's TEMME_A_MIN)."""
    lx = tl.log(x)
    if (a > 20.0) and (tl.abs(x - a) <= 0.4 * a):
        r = _temme(a, x, want)
    elif (x < 1.1) or (x - 1.0 / (3.0 * x) < a):
        # the series of P; for small a (P close to 1) Q from small_q instead, except the ratio
        if x < 0.5:
            limit = -0.4 / lx
        else:
            limit = 0.75 * x
        if want == 2:
            s, ds = _series(a, x, n_max)
            r = (x / a) * (s * (lx - digamma_pos(a + 1.0)) + ds)
        elif (x < 1.1) and (a <= limit):
            q = _small_q(a, x, n_max)
            if want == 0:
                r = 1.0 - q
            else:
                r = q
        else:
            s, _ds = _series(a, x, n_max)
            if a >= 10.0:
                alm, _lr = stirling_parts(a, x)
                lower = alm - 0.5 * (1.8378770664093455 + tl.log(a)) - stirlerr(a)
            else:
                lower = a * lx - x - lgamma1p(a)
            p = tl.exp(lower) * s
            if want == 0:
                r = p
            else:
                r = 1.0 - p
    else:
        g, dlog = _continued_fraction(a, x, lx, n_max)
        if want == 2:
            r = -(x / g) * ((lx - digamma_pos(a)) - dlog)
        else:
            if a >= 10.0:
                alm, _lr = stirling_parts(a, x)
                upper = alm + 0.5 * (tl.log(a) - 1.8378770664093455) - stirlerr(a)
            else:
                upper = a * lx - x - lgamma_pos(a)
            q = tl.exp(upper) / g
            if want == 0:
                r = 1.0 - q
            else:
                r = q
    return r


@scalar
def _igamma(a, x, want, n_max):
    """P (want 0), Q (1) or the ratio (2) at any a, x: the values at x = 0 and x = inf, NaN for
    invalid arguments, igamma_inner elsewhere."""
    if ((a > 0.0) and (a < float("inf"))) and (x >= 0.0):
        if x == 0.0:
            if want == 1:
                r = 0.0 * a + 1.0
            else:
                r = 0.0 * a
        elif x == float("inf"):
            if want == 0:
                r = 0.0 * a + 1.0
            elif want == 1:
                r = 0.0 * a
            else:
                r = 0.0 * a - float("inf")
        else:
            r = _igamma_inner(a, x, want, n_max)
    else:
        r = a + x + float("nan")
    return r


@scalar
def gammainc(a, x):
    """Regularized lower incomplete gamma function P(a, x) = gamma(a, x)/Gamma(a)."""
    return _igamma(a, x, 0, MAX_ITER)


@scalar
def gammaincc(a, x):
    """Regularized upper incomplete gamma function Q(a, x) = Gamma(a, x)/Gamma(a), computed
    directly (accurate in its own small tail)."""
    return _igamma(a, x, 1, MAX_ITER)


@scalar
def gammainc_da_ratio(a, x):
    """(dP/da)(a, x) / (dP/dx)(a, x), the shared factor x^a e^-x/Gamma(a) cancelled.

    For z ~ Gamma(a, rate) and x = rate z, dz/da = -gammainc_da_ratio(a, x)/rate.
    """
    return _igamma(a, x, 2, MAX_ITER)
