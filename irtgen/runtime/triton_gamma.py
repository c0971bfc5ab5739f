"""Gamma-function special functions as Triton device functions, built from ``tl`` primitives.

lgamma, digamma, the Gamma log density, the regularized incomplete gamma functions P and Q and
the Gamma implicit-gradient ratio (dP/da)/(dP/dx). The algorithm, regimes and accuracy are those
of irtgen.runtime.torch_gamma (see its docstring): both evaluate the same formulas in the same
order; the torch path takes lgamma, erfcx, log1p and expm1 from torch, so the two agree to a few
ulp (more in far tails, where exp(L) turns an ulp of L into |L| ulp).

All functions are elementwise and take float32 or float64 tensors (a and x of one dtype); they
compute in float64 and return the input dtype. Iterations are capped at MAX_ITER per element
(a lane that does not converge returns NaN); a block loops until its slowest lane is done, so
the regimes are chosen to keep every lane under ~120 iterations. Interpreter rule followed
throughout: numeric constants are written inline (a float bound to a name becomes float32).
"""

from __future__ import annotations

import triton
import triton.language as tl

from irtgen.runtime import temme_coefficients as tc
from irtgen.runtime import triton_math as tlm

tc.jit_functions()

MAX_ITER = tl.constexpr(300)  # series and continued-fraction terms; the regimes need <= ~120

# -- gamma function ---------------------------------------------------------------------------


@triton.jit
def _stirlerr(a):
    """lgamma(a) - (a - 1/2) log a + a - log(2 pi)/2 for a >= 10 (Stirling's series)."""
    return tc.stirling_series(1.0 / a)


@triton.jit
def _lgamma_pos(x):
    """lgamma(x) for float64 x > 0: Stirling for x >= 10; below, the recurrence into
    (1.5, 2.5] and (x - 1) h1, (x - 2) h2 around the zeros; x < 0.5 via lgamma(1 + x) - log x."""
    r = x
    prod = x * 0.0 + 1.0
    for _ in tl.static_range(8):
        down = (r > 2.5) & (r < 10.0)
        r = tl.where(down, r - 1.0, r)
        prod = tl.where(down, prod * r, prod)
    near1 = (r - 1.0) * tc.lgamma_h1(2.0 * (r - 1.0))
    near2 = (r - 2.0) * tc.lgamma_h2(2.0 * (r - 2.0))
    mid = tl.where(r <= 1.5, near1, near2 + tl.log(prod))
    tiny = x * tc.lgamma_h1(2.0 * tl.minimum(x, 0.5)) - tl.log(x)
    xb = tl.maximum(x, 10.0)
    big = (xb - 0.5) * tl.log(xb) - xb + 0.91893853320467274 + _stirlerr(xb)
    return tl.where(x >= 10.0, big, tl.where(x < 0.5, tiny, mid))


@triton.jit
def _lgamma1p(a):
    """lgamma(1 + a) for a >= 0, with relative accuracy for small a (1 + a is not formed)."""
    near1 = a * tc.lgamma_h1(2.0 * tl.minimum(a, 0.5))
    am1 = a - 1.0
    near2 = am1 * tc.lgamma_h2(2.0 * tl.minimum(am1, 0.5))
    far = _lgamma_pos(tl.maximum(a, 1.5) + 1.0)
    return tl.where(a <= 0.5, near1, tl.where(a <= 1.5, near2, far))


@triton.jit
def _sinpi_cospi(x):
    """sin(pi x), cos(pi x) with the exact reduction r = x - round(x), |r| <= 1/2."""
    n = tl.floor(x + 0.5)
    r = x - n
    odd = (n - 2.0 * tl.floor(0.5 * n)) != 0.0
    s = tl.sin(3.141592653589793 * r)
    c = tl.cos(3.141592653589793 * r)
    return tl.where(odd, -s, s), tl.where(odd, -c, c)


@triton.jit
def lgamma(x_in):
    """log|Gamma(x)|; x <= 0 by reflection, log(pi/|sin(pi x)|) - lgamma(1 - x); poles give inf."""
    x = x_in.to(tl.float64)
    pos = _lgamma_pos(tl.where(x > 0.0, x, 1.0 - x))
    s, _c = _sinpi_cospi(x)
    refl = 1.1447298858494002 - tl.log(tl.abs(s)) - pos
    r = tl.where(x > 0.0, pos, refl)
    r = tl.where((x == float("inf")) | (x == -float("inf")), float("inf"), r)
    return r.to(x_in.dtype)


@triton.jit
def _digamma_pos(x):
    """digamma(x) for float64 x > 0: asymptotic series for x >= 10, (x - root) g(x) on [1, 2]
    (relative accuracy at the root 1.4616...), the recurrence psi(x + 1) = psi(x) + 1/x between."""
    acc = tl.where(x < 1.0, -1.0 / x, 0.0)
    r = tl.where(x < 1.0, x + 1.0, x)
    for _ in tl.static_range(8):
        down = (r > 2.0) & (r < 10.0)
        acc = acc + tl.where(down, 1.0 / (r - 1.0), 0.0)
        r = tl.where(down, r - 1.0, r)
    mid = tc.digamma_near_root(r)
    rr = 1.0 / tl.maximum(r, 10.0)
    big = tl.log(r) - 0.5 * rr - tc.digamma_series(rr)
    return tl.where(r >= 10.0, big, mid) + acc


@triton.jit
def digamma(x_in):
    """psi(x) = Gamma'(x)/Gamma(x); x < 0 by reflection, psi(1 - x) - pi/tan(pi x); poles NaN."""
    x = x_in.to(tl.float64)
    pos = _digamma_pos(tl.where(x > 0.0, x, 1.0 - x))
    s, c = _sinpi_cospi(x)
    refl = pos - 3.141592653589793 * c / s
    r = tl.where(x > 0.0, pos, tl.where(s == 0.0, float("nan"), refl))
    r = tl.where(x == float("inf"), float("inf"), r)
    return r.to(x_in.dtype)


# -- log density ------------------------------------------------------------------------------


@triton.jit
def _stirling_parts(a, x):
    """(a log1pmx((x - a)/a), log(x/a), stirlerr(a)) for float64 a >= 10 (other lanes: junk)."""
    ab = tl.maximum(a, 10.0)
    t = (x - ab) / ab
    q = x / ab
    far = tl.where(q > 1e-300, tl.log(q), tl.log(x) - tl.log(ab))
    lr = tl.where(tl.abs(t) <= 0.5, tlm.log1p(t), far)
    near = (t >= -0.5) & (t <= 1.0)
    lm = tl.where(near, tlm.log1pmx(tl.minimum(tl.maximum(t, -0.5), 1.0)), lr - t)
    return ab * lm, lr, _stirlerr(ab)


@triton.jit
def _log_density(a, x):
    """log(x^(a-1) e^-x / Gamma(a)) for float64 a > 0, 0 < x < inf."""
    direct = (a - 1.0) * tl.log(x) - x - _lgamma_pos(a)
    alm, lr, se = _stirling_parts(a, x)
    stirling = alm - lr - 0.5 * (1.8378770664093455 + tl.log(a)) - se
    return tl.where(a >= 10.0, stirling, direct)


@triton.jit
def log_gamma_density(a_in, x_in):
    """log(x^(a-1) e^-x / Gamma(a)) = log dP(a, x)/dx, accurate for large a with x ~ a."""
    a = a_in.to(tl.float64)
    x = x_in.to(tl.float64)
    valid = (a > 0.0) & (a < float("inf")) & (x >= 0.0)
    inner = valid & (x > 0.0) & (x < float("inf"))
    r = _log_density(tl.where(inner, a, 1.0), tl.where(inner, x, 1.0))
    at0 = tl.where(a < 1.0, float("inf"), tl.where(a == 1.0, 0.0, -float("inf")))
    r = tl.where(x == 0.0, at0, r)
    r = tl.where(x == float("inf"), -float("inf"), r)
    r = tl.where(valid, r, float("nan"))
    return r.to(x_in.dtype)


# -- incomplete gamma -------------------------------------------------------------------------


@triton.jit
def _erfcx_nonneg(y):
    """exp(y^2) erfc(y) for y >= 0."""
    yc = tl.minimum(y, 0.5)
    small = tl.exp(yc * yc) * (1.0 - tl.math.erf(yc))
    return tl.where(y < 0.5, small, tlm.erfcx_pos(tl.maximum(y, 0.5)))


@triton.jit
def _temme(a, x):
    """(P, Q, ratio) from Temme's expansion for a > 20, |x - a| <= 0.4 a (float64).

    Q = erfc(y)/2 + exp(-a eta^2/2)/sqrt(2 pi a) S, y = eta sqrt(a/2), S = sum c_k(eta) a^-k;
    exp(-y^2) = exp(a log1pmx(t)) is taken out of both terms exactly.
    dQ/da = exp(-a eta^2/2)/sqrt(2 pi a) [log(lam)/eta + S (log(lam) - 1/(2a)) + dS/da] with
    d eta/da = -(lam - 1)/(a eta); the density is exp(-a eta^2/2)/(lam sqrt(2 pi a)) e^-stirlerr.
    """
    t = (x - a) / a
    lm = tlm.log1pmx(t)
    eta = tl.sqrt(-2.0 * lm)
    eta = tl.where(t < 0.0, -eta, eta)
    loglam = tlm.log1p(t)
    z = 1.0 / a
    s, s_eta, s_k = tc.temme_sum(eta, z)
    e = tl.exp(a * lm)
    y = eta * tl.sqrt(0.5 * a)
    scaled = s / tl.sqrt(6.283185307179586 * a)
    small_q = e * (0.5 * _erfcx_nonneg(tl.maximum(y, 0.0)) + scaled)
    small_p = e * (0.5 * _erfcx_nonneg(tl.maximum(-y, 0.0)) - scaled)
    upper = eta >= 0.0
    q = tl.where(upper, small_q, 1.0 - small_p)
    p = tl.where(upper, 1.0 - small_q, small_p)
    zero = eta == 0.0
    eta_safe = tl.where(zero, 1.0, eta)
    loglam_over_eta = tl.where(zero, 1.0, loglam / eta_safe)
    t_over_eta = tl.where(zero, 1.0, t / eta_safe)
    ds_da = -z * (t_over_eta * s_eta + s_k)
    braces = loglam_over_eta + s * (loglam - 0.5 * z) + ds_da
    ratio = -(1.0 + t) * tl.exp(_stirlerr(a)) * braces
    return p, q, ratio


@triton.jit
def _series(a, x, act):
    """S = sum_n x^n/((a+1)...(a+n)) and dS/da on the lanes of act (P = x^a e^-x/Gamma(a+1) S);
    also the lanes that did not converge within MAX_ITER terms."""
    t = x * 0.0 + 1.0
    dt = x * 0.0
    s = x * 0.0 + 1.0
    ds = x * 0.0
    failed = act & (x != x)
    n = 0
    while tl.max(act.to(tl.int32)) > 0:  # over the whole block, any shape
        n += 1
        an = a + n
        r = x / an
        t = t * r
        dt = dt * r - t / an
        s = s + tl.where(act, t, 0.0)
        ds = ds + tl.where(act, dt, 0.0)
        act = act & ~((t <= 1e-17 * s) & (tl.abs(dt) <= 1e-17 * tl.abs(ds)))
        failed = failed | (act & (n >= MAX_ITER))
        act = act & (n < MAX_ITER)
    return s, ds, failed


@triton.jit
def _continued_fraction(a, x, act):
    """G and d log G/da on the lanes of act, G = b_0 + a_1/(b_1 + a_2/(b_2 + ...)),
    b_n = x + 2n + 1 - a, a_n = -n (n - a), so that Q = x^a e^-x/Gamma(a) / G (DLMF 8.9.2,
    even part). Modified Lentz with its factors C_n, D_n differentiated in a."""
    b = x + 1.0 - a
    g = b
    dlog = -1.0 / b
    c = b
    dc = x * 0.0 - 1.0
    d = x * 0.0
    dd = x * 0.0
    failed = act & (x != x)
    n = 0
    while tl.max(act.to(tl.int32)) > 0:  # over the whole block, any shape
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
        g = tl.where(act, g * delta, g)
        dlog = dlog + tl.where(act, step, 0.0)
        # d log G/da enters the ratio next to log x - psi(a): for huge x it is tiny against
        # log x and need not be resolved to its own relative precision
        # a factor within an ulp of 1: 1/b rounds, and for huge x the factor can settle one
        # ulp below 1 instead of at 1
        conv = (tl.abs(delta - 1.0) <= 2.3e-16) & (
            tl.abs(step) <= 1e-17 * (tl.abs(dlog) + tl.abs(tl.log(x)))
        )
        act = act & ~conv
        failed = failed | (act & (n >= MAX_ITER))
        act = act & (n < MAX_ITER)
    return g, dlog, failed


@triton.jit
def _small_q(a, x, act):
    """Q for x < 1.1 and small a: 1 - x^a/Gamma(1+a) - x^a/Gamma(1+a) a T with
    T = sum_{n>=1} (-x)^n/(n! (a+n)), from gamma(a, x) = x^a sum (-x)^n/(n! (a+n))."""
    term = x * 0.0 + 1.0
    tsum = x * 0.0
    failed = act & (x != x)
    n = 0
    while tl.max(act.to(tl.int32)) > 0:  # over the whole block, any shape
        n += 1
        term = term * (-x / n)
        inc = term / (a + n)
        tsum = tsum + tl.where(act, inc, 0.0)
        act = act & ~(tl.abs(inc) <= 1e-17 * tl.abs(tsum))
        failed = failed | (act & (n >= MAX_ITER))
        act = act & (n < MAX_ITER)
    l1 = a * tl.log(x) - _lgamma1p(a)
    q = -tlm.expm1(l1) - tl.exp(l1) * a * tsum
    return tl.where(failed, float("nan"), q)


@triton.jit
def _igamma(a_in, x_in, WANT: tl.constexpr):
    """WANT 0: P(a, x), 1: Q(a, x), 2: (dP/da)/(dP/dx)."""
    a0 = a_in.to(tl.float64)
    x0 = x_in.to(tl.float64)
    valid = (a0 > 0.0) & (a0 < float("inf")) & (x0 >= 0.0)
    inner = valid & (x0 > 0.0) & (x0 < float("inf"))
    a = tl.where(inner, a0, 1.0)
    x = tl.where(inner, x0, 1.0)
    lx = tl.log(x)

    # regimes as torch_gamma._regimes (20.0 is temme_coefficients.TEMME_A_MIN)
    temme = inner & (a > 20.0) & (tl.abs(x - a) <= 0.4 * a)
    small_x = x < 1.1
    series = inner & ~temme & (small_x | (x - 1.0 / (3.0 * x) < a))
    cf = inner & ~temme & ~series
    limit = tl.where(x < 0.5, -0.4 / lx, 0.75 * x)
    small_q = series & small_x & (a <= limit)
    if WANT != 2:
        series = series & ~small_q

    s, ds, s_failed = _series(a, x, series)
    g, dlog, g_failed = _continued_fraction(a, x, cf)
    tp, tq, tr = _temme(tl.where(temme, a, 100.0), tl.where(temme, x, 100.0))
    if WANT == 2:
        psi = _digamma_pos(tl.where(series, a + 1.0, a))
        r_series = (x / a) * (s * (lx - psi) + ds)
        r_cf = -(x / g) * ((lx - psi) - dlog)
        r = tl.where(series, r_series, tl.where(cf, r_cf, tr))
        at0 = 0.0
        atinf = -float("inf")
    else:
        alm, _lr, se = _stirling_parts(a, x)
        lower = tl.where(
            a >= 10.0,
            alm - 0.5 * (1.8378770664093455 + tl.log(a)) - se,
            a * lx - x - _lgamma1p(a),
        )
        upper = tl.where(
            a >= 10.0,
            alm + 0.5 * (tl.log(a) - 1.8378770664093455) - se,
            a * lx - x - _lgamma_pos(a),
        )
        p_series = tl.exp(lower) * s
        q_cf = tl.exp(upper) / g
        q_small = _small_q(a, x, small_q)
        if WANT == 0:
            r = tl.where(series, p_series, tl.where(cf, 1.0 - q_cf, tp))
            r = tl.where(small_q, 1.0 - q_small, r)
            at0 = 0.0
            atinf = 1.0
        else:
            r = tl.where(series, 1.0 - p_series, tl.where(cf, q_cf, tq))
            r = tl.where(small_q, q_small, r)
            at0 = 1.0
            atinf = 0.0
    r = tl.where((series & s_failed) | (cf & g_failed), float("nan"), r)
    r = tl.where(x0 == 0.0, at0, r)
    r = tl.where(x0 == float("inf"), atinf, r)
    r = tl.where(valid, r, float("nan"))
    return r.to(x_in.dtype)


@triton.jit
def gammainc(a, x):
    """Regularized lower incomplete gamma function P(a, x) = gamma(a, x)/Gamma(a)."""
    return _igamma(a, x, 0)


@triton.jit
def gammaincc(a, x):
    """Regularized upper incomplete gamma function Q(a, x) = Gamma(a, x)/Gamma(a), computed
    directly (accurate in its own small tail)."""
    return _igamma(a, x, 1)


@triton.jit
def gammainc_da_ratio(a, x):
    """(dP/da)(a, x) / (dP/dx)(a, x), the shared factor x^a e^-x/Gamma(a) cancelled.

    For z ~ Gamma(a, rate) and x = rate z, dz/da = -gammainc_da_ratio(a, x)/rate.
    """
    return _igamma(a, x, 2)
