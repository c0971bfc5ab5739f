"""Regularized incomplete gamma functions and the Gamma implicit gradient, in torch.

The same algorithm as irtgen.runtime.triton_gamma, written with torch tensors for the CPU path.
Arguments broadcast; float32 and float64 inputs are computed in float64 and rounded once.

Regimes of P(a, x), Q(a, x) = 1 - P and of the ratio (dP/da)/(dP/dx):

* Temme's uniform expansion (DLMF 8.12) for a > 20 and |x - a| <= 0.4 a, differentiated in a
  analytically; the factor exp(-a eta^2 / 2) is the density's and cancels in the ratio.
* Otherwise the power series of P for x < 1.1 or x - 1/(3x) < a, else Legendre's continued
  fraction of Q (modified Lentz), each carrying its derivative in a forward-mode.
* For small a (a <= -0.4/log x if x < 0.5, a <= 0.75 x if 0.5 <= x < 1.1), where P is close
  to 1, Q comes from Q = 1 - x^a/Gamma(1+a) - (x^a/Gamma(a)) sum_{n>=1} (-x)^n/(n! (a+n)).
  The series/fraction/small-a boundaries are those of DiDonato and Morris (1986).

Prefactors are taken in log space; for a >= 10 through Stirling's series, with
x^a e^-x / Gamma(a+1) = exp(a log1pmx((x-a)/a) - stirlerr(a)) / sqrt(2 pi a), which has no
cancellation when x ~ a. The ratio needs no prefactor at all. Iterations are capped at
MAX_ITER; an element that does not converge gives NaN. Invalid arguments (a <= 0, a = inf,
x < 0, NaN) give NaN.

Accuracy (float64, against mpmath): ratio and log density within ~1e-14 relative; P and Q
within ~1e-14 for values v >= 1e-10 and about 2 |log v| ulp below (the rounding of the exponent
log v; ~2e-13 near 1e-300), which is the conditioning of P in a and x there.
"""

from __future__ import annotations

import math

import torch

from irtgen.runtime import temme_coefficients as tc
from irtgen.runtime.torch_loop import Loop
from irtgen.runtime.torch_math import log1pmx

MAX_ITER = 300  # series and continued fraction terms; the regimes need at most ~120
TEMME_A_MIN = tc.TEMME_A_MIN
_EPS = 1e-17  # convergence tolerance of series and continued fraction
# a Lentz factor within an ulp of 1 (1 - 2^-53 or 1 + 2^-52): 1/b rounds, so for huge x the
# factor can settle one ulp below 1 instead of at 1
_EPS_DELTA = 2.3e-16
_LOG_SQRT_2PI = 0.91893853320467274
_LOG_2PI = 1.8378770664093455


def _horner(coeffs, x: torch.Tensor) -> torch.Tensor:
    """sum coeffs[i] x^(n - i), coeffs highest power first."""
    p = torch.full_like(x, coeffs[0])
    for c in coeffs[1:]:
        p = p * x + c
    return p


def _prepare(a, x):
    a = torch.as_tensor(a)
    x = torch.as_tensor(x, device=a.device)
    dtype = torch.result_type(a, x)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    a, x = torch.broadcast_tensors(a.to(torch.float64), x.to(torch.float64))
    return a.contiguous(), x.contiguous(), dtype


# -- gamma function pieces -------------------------------------------------------------------


def _lgamma1p(a: torch.Tensor) -> torch.Tensor:
    """lgamma(1 + a) with relative accuracy for small |a| (1 + a is never rounded there)."""
    near1 = a * _horner(tc.LGAMMA_H1, 2.0 * a)
    am1 = a - 1.0
    near2 = am1 * _horner(tc.LGAMMA_H2, 2.0 * am1)
    r = torch.where(a <= 1.5, near2, torch.lgamma(a + 1.0))
    return torch.where(a.abs() <= 0.5, near1, r)


def _digamma(x: torch.Tensor) -> torch.Tensor:
    """digamma(x) for x > 0 with relative accuracy next to its root 1.4616...

    x >= 10: asymptotic series; [1, 2]: (x - root) g(x); elsewhere the recurrence
    psi(x + 1) = psi(x) + 1/x moves x into one of them.
    """
    acc = torch.where(x < 1.0, -1.0 / x, torch.zeros_like(x))
    r = torch.where(x < 1.0, x + 1.0, x)
    for _ in range(8):
        down = (r > 2.0) & (r < 10.0)
        acc = acc + torch.where(down, 1.0 / (r - 1.0), torch.zeros_like(r))
        r = torch.where(down, r - 1.0, r)
    mid = ((r - tc.DIGAMMA_ROOT_HI) - tc.DIGAMMA_ROOT_LO) * _horner(tc.DIGAMMA_G, 2.0 * r - 3.0)
    rr = 1.0 / torch.clamp_min(r, 10.0)
    big = torch.log(r) - 0.5 * rr - rr * rr * _horner(tc.DIGAMMA_ASYMPTOTIC[::-1], rr * rr)
    return torch.where(r >= 10.0, big, mid) + acc


def _stirlerr(a: torch.Tensor) -> torch.Tensor:
    """lgamma(a) - (a - 1/2) log a + a - log(2 pi)/2 for a >= 10 (Stirling's series)."""
    r = 1.0 / a
    return r * _horner(tc.STIRLING[::-1], r * r)


def _log_ratio_xa(x, a, t):
    """log(x/a) given t = (x - a)/a."""
    q = x / a
    far = torch.where(q > 1e-300, torch.log(q), torch.log(x) - torch.log(a))
    return torch.where(t.abs() <= 0.5, torch.log1p(t), far)


def _stirling_parts(a, x):
    """(a log1pmx((x-a)/a), log(x/a), stirlerr(a)) for a >= 10."""
    t = (x - a) / a
    lr = _log_ratio_xa(x, a, t)
    near = (t >= -0.5) & (t <= 1.0)
    lm = torch.where(near, log1pmx(torch.clamp(t, -0.5, 1.0)), lr - t)
    return a * lm, lr, _stirlerr(torch.clamp_min(a, 10.0))


# -- log density -----------------------------------------------------------------------------


def _log_density(a, x):
    """log(x^(a-1) e^-x / Gamma(a)) for a > 0, 0 < x < inf (float64)."""
    direct = (a - 1.0) * torch.log(x) - x - torch.lgamma(a)
    alm, lr, se = _stirling_parts(a, x)
    stirling = alm - lr - 0.5 * (_LOG_2PI + torch.log(a)) - se
    return torch.where(a >= 10.0, stirling, direct)


def log_gamma_density(a, x) -> torch.Tensor:
    """log(x^(a-1) e^-x / Gamma(a)) = log dP(a, x)/dx, accurate for large a with x ~ a."""
    a, x, dtype = _prepare(a, x)
    valid = (a > 0) & (a < math.inf) & (x >= 0)
    inner = valid & (x > 0) & (x < math.inf)
    xs = torch.where(inner, x, torch.ones_like(x))
    as_ = torch.where(inner, a, torch.ones_like(a))
    r = _log_density(as_, xs)
    at0 = torch.where(a < 1.0, math.inf, torch.where(a == 1.0, 0.0, -math.inf))
    r = torch.where(x == 0, at0, r)
    r = torch.where(x == math.inf, -math.inf, r)
    return torch.where(valid, r, math.nan).to(dtype)


# -- the three regimes -----------------------------------------------------------------------


def _series_step(n, a, x, t, dt, s, ds, act):
    """Term n of S and dS/da."""
    an = a + n
    t = t * (x / an)
    dt = dt * (x / an) - t / an
    s = s + torch.where(act, t, 0.0)
    ds = ds + torch.where(act, dt, 0.0)
    act = act & ~((t <= _EPS * s) & (dt.abs() <= _EPS * ds.abs()))
    return t, dt, s, ds, act


def _series(a, x):
    """S = sum_n x^n/((a+1)...(a+n)) and dS/da; P = x^a e^-x/Gamma(a+1) S. NaN if the
    series did not converge within MAX_ITER terms."""
    one = torch.ones_like(x)
    zero = torch.zeros_like(x)
    state = (one, zero, one, zero, torch.ones_like(x, dtype=torch.bool))
    _, _, s, ds, act = _SERIES_LOOP((a, x), state, MAX_ITER)
    s = torch.where(act, math.nan, s)
    return s, ds


def _cf_step(n, a, logx, b, c, dc, d, dd, g, dlog, act):
    """Step n of modified Lentz for G, each factor differentiated in a."""
    an = -n * (n - a)
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
    g = torch.where(act, g * delta, g)
    dlog = dlog + torch.where(act, step, 0.0)
    # d log G/da enters the ratio next to log x - psi(a): for huge x it is tiny against
    # log x and need not be resolved to its own relative precision
    act = act & ~(
        ((delta - 1.0).abs() <= _EPS_DELTA) & (step.abs() <= _EPS * (dlog.abs() + logx.abs()))
    )
    return b, c, dc, d, dd, g, dlog, act


def _continued_fraction(a, x):
    """G and d log G/da for the continued fraction G = b_0 + a_1/(b_1 + a_2/(b_2 + ...)),
    b_n = x + 2n + 1 - a, a_n = -n (n - a); Q = x^a e^-x/Gamma(a) / G (DLMF 8.9.2, even
    part). Modified Lentz, each of its factors C_n, D_n differentiated in a."""
    b = x + 1.0 - a
    zero = torch.zeros_like(x)
    act = torch.ones_like(x, dtype=torch.bool)
    state = (b, b.clone(), -torch.ones_like(x), zero, zero, b.clone(), -1.0 / b, act)
    _, _, _, _, _, g, dlog, act = _CF_LOOP((a, torch.log(x)), state, MAX_ITER)
    g = torch.where(act, math.nan, g)
    return g, dlog


# series and fraction run on the lanes that have not converged yet (torch_loop.Loop)
_SERIES_LOOP = Loop(_series_step)
_CF_LOOP = Loop(_cf_step)


def _temme(a, x):
    """(P, Q, ratio) from Temme's expansion for a > 20, |x - a| <= 0.4 a.

    Q = erfc(y)/2 + exp(-a eta^2/2)/sqrt(2 pi a) S, y = eta sqrt(a/2), S = sum c_k(eta) a^-k;
    both terms carry exp(-y^2) = exp(a log1pmx(t)), taken out exactly.
    dQ/da = exp(-a eta^2/2)/sqrt(2 pi a) [log(lam)/eta + S (log(lam) - 1/(2a)) + dS/da] with
    d eta/da = -(lam - 1)/(a eta); the density is exp(-a eta^2/2)/(lam sqrt(2 pi a)) e^-stirlerr.
    """
    t = (x - a) / a
    lm = log1pmx(t)
    eta = torch.sign(t) * torch.sqrt(-2.0 * lm)
    loglam = torch.log1p(t)
    z = 1.0 / a
    s, s_eta, s_k = _temme_sum(eta, z)
    e = torch.exp(a * lm)
    y = eta * torch.sqrt(0.5 * a)
    scaled = s / torch.sqrt(2.0 * math.pi * a)
    small_q = e * (0.5 * torch.special.erfcx(y) + scaled)
    small_p = e * (0.5 * torch.special.erfcx(-y) - scaled)
    upper = eta >= 0
    q = torch.where(upper, small_q, 1.0 - small_p)
    p = torch.where(upper, 1.0 - small_q, small_p)
    zero = eta == 0
    eta_safe = torch.where(zero, torch.ones_like(eta), eta)
    loglam_over_eta = torch.where(zero, 1.0, loglam / eta_safe)
    t_over_eta = torch.where(zero, 1.0, t / eta_safe)
    ds_da = -z * (t_over_eta * s_eta + s_k)
    braces = loglam_over_eta + s * (loglam - 0.5 * z) + ds_da
    ratio = -(1.0 + t) * torch.exp(_stirlerr(a)) * braces
    return p, q, ratio


def _temme_sum(eta, z):
    s = torch.zeros_like(eta)
    s_eta = torch.zeros_like(eta)
    s_k = torch.zeros_like(eta)
    for k in range(len(tc.TEMME_C) - 1, -1, -1):
        coeffs = tc.TEMME_C[k]
        p = torch.full_like(eta, coeffs[-1])
        dp = torch.zeros_like(eta)
        for c in coeffs[-2::-1]:
            dp = dp * eta + p
            p = p * eta + c
        s = s * z + p
        s_eta = s_eta * z + dp
        s_k = s_k * z + k * p
    return s, s_eta, s_k


def _small_q(a, x):
    """Q for x < 1.1 and small a: 1 - x^a/Gamma(1+a) - x^a/Gamma(1+a) a T, with
    T = sum_{n>=1} (-x)^n/(n! (a+n)), from gamma(a, x) = x^a sum (-x)^n/(n! (a+n))."""
    term = torch.ones_like(x)
    tsum = torch.zeros_like(x)
    act = torch.ones_like(x, dtype=torch.bool)
    for n in range(1, MAX_ITER + 1):
        term = term * (-x / n)
        inc = term / (a + n)
        tsum = tsum + torch.where(act, inc, 0.0)
        act = act & ~(inc.abs() <= _EPS * tsum.abs())
        if not bool(act.any()):
            break
    tsum = torch.where(act, math.nan, tsum)
    l1 = a * torch.log(x) - _lgamma1p(a)
    return -torch.expm1(l1) - torch.exp(l1) * a * tsum


def _regimes(a, x):
    """Boolean masks (temme, series, cf, small_q) for valid a > 0 and finite x > 0."""
    temme = (a > TEMME_A_MIN) & ((x - a).abs() <= 0.4 * a)
    small_x = x < 1.1
    series = ~temme & (small_x | (x - 1.0 / (3.0 * x) < a))
    cf = ~temme & ~series
    limit = torch.where(x < 0.5, -0.4 / torch.log(x), 0.75 * x)
    small_q = small_x & (a <= limit)
    return temme, series, cf, small_q


def _lower_prefactor(a, x):
    """log(x^a e^-x / Gamma(a+1))."""
    direct = a * torch.log(x) - x - _lgamma1p(a)
    alm, _, se = _stirling_parts(a, x)
    stirling = alm - 0.5 * (_LOG_2PI + torch.log(a)) - se
    return torch.where(a >= 10.0, stirling, direct)


def _upper_prefactor(a, x):
    """log(x^a e^-x / Gamma(a))."""
    direct = a * torch.log(x) - x - torch.lgamma(a)
    alm, _, se = _stirling_parts(a, x)
    stirling = alm + 0.5 * (torch.log(a) - _LOG_2PI) - se
    return torch.where(a >= 10.0, stirling, direct)


def _igamma(a, x, want: str):
    """want: "p", "q" or "ratio"."""
    a, x, dtype = _prepare(a, x)
    out = torch.full_like(x, math.nan)
    valid = (a > 0) & (a < math.inf) & (x >= 0)
    inner = valid & (x > 0) & (x < math.inf)
    temme, series, cf, small_q = (m & inner for m in _regimes(a, x))
    # the ratio takes the series of P also where Q comes from the small-a formula
    series_need = series if want == "ratio" else series & ~small_q
    if bool(series_need.any()):
        aa, xx = a[series_need], x[series_need]
        s, ds = _series(aa, xx)
        if want == "ratio":
            r = (xx / aa) * (s * (torch.log(xx) - _digamma(aa + 1.0)) + ds)
        else:
            p = torch.exp(_lower_prefactor(aa, xx)) * s
            r = p if want == "p" else 1.0 - p
        out[series_need] = r
    if want != "ratio" and bool(small_q.any()):
        q = _small_q(a[small_q], x[small_q])
        out[small_q] = q if want == "q" else 1.0 - q
    if bool(cf.any()):
        aa, xx = a[cf], x[cf]
        g, dlog = _continued_fraction(aa, xx)
        if want == "ratio":
            r = -(xx / g) * ((torch.log(xx) - _digamma(aa)) - dlog)
        else:
            q = torch.exp(_upper_prefactor(aa, xx)) / g
            r = q if want == "q" else 1.0 - q
        out[cf] = r
    if bool(temme.any()):
        p, q, ratio = _temme(a[temme], x[temme])
        out[temme] = {"p": p, "q": q, "ratio": ratio}[want]
    at0 = {"p": 0.0, "q": 1.0, "ratio": 0.0}[want]
    atinf = {"p": 1.0, "q": 0.0, "ratio": -math.inf}[want]
    out = torch.where(valid & (x == 0), at0, out)
    out = torch.where(valid & (x == math.inf), atinf, out)
    return out.to(dtype)


def gammainc(a, x) -> torch.Tensor:
    """Regularized lower incomplete gamma function P(a, x) = gamma(a, x)/Gamma(a)."""
    return _igamma(a, x, "p")


def gammaincc(a, x) -> torch.Tensor:
    """Regularized upper incomplete gamma function Q(a, x) = Gamma(a, x)/Gamma(a), computed
    directly (accurate in its own small tail)."""
    return _igamma(a, x, "q")


def gammainc_da_ratio(a, x) -> torch.Tensor:
    """(dP/da)(a, x) / (dP/dx)(a, x), the shared factor x^a e^-x/Gamma(a) cancelled.

    For z ~ Gamma(a, rate) and x = rate z, dz/da = -gammainc_da_ratio(a, x)/rate.
    """
    return _igamma(a, x, "ratio")
