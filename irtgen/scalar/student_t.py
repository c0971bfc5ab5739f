"""Student-t functions and log Φ as scalar functions: log_ndtr, log_ndtr_diff (log of a
difference Φ(y + d) - Φ(y) of normal CDFs), student_t_cdf and student_t_ddf_ratio, the ratio
(∂F/∂df)/(∂F/∂t) behind the implicit gradient of Student-t samples in df.

Each element takes ONE branch with a real ``if``/``else``: the incomplete beta
(irtgen.scalar.beta) below df = 50, otherwise one of the two 16-point quadratures of d log q/ddf
-- Gauss-Legendre for |t| <= 3, Gauss-Laguerre beyond -- with inline nodes and weights, so
nothing is kept in local memory (see the comment above _ddf_c for the mathematics). The sums
loop over the points of their rule, one term at a time; the sums and the rules at the end are
rendered by tools/render_student_t_quadrature.py.

The Gauss-Legendre terms exp(L_k) take a first-order correction for the rounding of
S = t²/(df + t²) (_ddf_scale, _ddf_bulk_term). |L_k| reaches ~4.5, so that rounding alone would
move every exp(L_k) by up to ~1e-15 in the same direction, and the sum (whose terms cancel by up
to ~8x) by up to ~3e-15; corrected, the ratio stays within 1.8e-15 of mpmath on the test grid
for df >= 50 (with correctly rounded exp and log as well as numpy's).

Public functions: log_ndtr(x), log_ndtr_diff(y, d), ndtr_diff(y, d), student_t_cdf(df, t),
student_t_ddf_ratio(df, t).
"""

from __future__ import annotations

from irtgen.scalar import beta
from irtgen.scalar import elementary as el
from irtgen.scalar.source import scalar, tl


@scalar
def log_ndtr(x):
    """log Φ(x): for x < -1, log(erfcx(-x/√2)/2) - x²/2 (no underflow of Φ); else log1p(-Φ(-x))."""
    if x < -1.0:
        r = tl.log(0.5 * el.erfcx_pos(-x * 0.7071067811865476)) - 0.5 * x * x
    else:
        r = el.log1p(-el.ndtr(-x))
    return r


@scalar
def _log_ndtr_diff_narrow(y, d):
    """log(Φ(y + d) - Φ(y)) for d·max(|y|, |y + d|, 1) <= 2: 12-point Gauss-Legendre quadrature
    of the density around the midpoint m, ∫ φ = (d/2) φ(m) Σ w_i exp(-s_i c - s_i² e) with
    c = d m/2 and e = d²/8 (|c| <= 1, e <= 1/2: positive terms within e^±1.5 of each other)."""
    m = y + 0.5 * d
    c = 0.5 * d * m
    e = 0.125 * d * d
    s = (
        0.2491470458134027
        * tl.exp(-0.015683406607400453 * e)
        * (tl.exp(-0.1252334085114689 * c) + tl.exp(0.1252334085114689 * c))
    )
    s += (
        0.2334925365383546
        * tl.exp(-0.13530001165524824 * e)
        * (tl.exp(-0.3678314989981802 * c) + tl.exp(0.3678314989981802 * c))
    )
    s += (
        0.20316742672306573
        * tl.exp(-0.3449423794274173 * e)
        * (tl.exp(-0.5873179542866175 * c) + tl.exp(0.5873179542866175 * c))
    )
    s += (
        0.16007832854334642
        * tl.exp(-0.5927501277315417 * e)
        * (tl.exp(-0.7699026741943047 * c) + tl.exp(0.7699026741943047 * c))
    )
    s += (
        0.10693932599531907
        * tl.exp(-0.8174280132668749 * e)
        * (tl.exp(-0.9041172563704748 * c) + tl.exp(0.9041172563704748 * c))
    )
    s += (
        0.04717533638651141
        * tl.exp(-0.9634612787028217 * e)
        * (tl.exp(-0.9815606342467192 * c) + tl.exp(0.9815606342467192 * c))
    )
    # log(d/2) - m²/2 - log(2π)/2 + log s
    return tl.log(0.5 * d) - 0.5 * m * m - 0.91893853320467274 + tl.log(s)


@scalar
def log_ndtr_diff(y, d):
    """log(Φ(y + d) - Φ(y)) for d >= 0 (-inf at d = 0), computed on the side that does not
    cancel: narrow windows by quadrature (_log_ndtr_diff_narrow); below 0 from log Φ(x) and
    log Φ(y), above 0 from log Φ(-y) and log Φ(-x), with log1mexp for the difference; a window
    around 0 as log1p(-Φ(y) - Φ(-x)). x = y + d is formed once, here."""
    x = y + d
    if d * tl.maximum(tl.maximum(tl.abs(x), tl.abs(y)), 1.0) <= 2.0:
        r = _log_ndtr_diff_narrow(y, d)
    elif x <= 0.0:
        lx = log_ndtr(x)
        r = lx + el.log1mexp(log_ndtr(y) - lx)
    elif y >= 0.0:
        ly = log_ndtr(-y)
        r = ly + el.log1mexp(log_ndtr(-x) - ly)
    else:
        r = el.log1p(-el.ndtr(y) - el.ndtr(-x))
    return r


@scalar
def ndtr_diff(y, d):
    """Φ(y + d) - Φ(y) for d of either sign: ±exp(log_ndtr_diff) of the window's lower end."""
    if d < 0.0:
        r = -tl.exp(log_ndtr_diff(y + d, -d))
    else:
        r = tl.exp(log_ndtr_diff(y, d))
    return r


@scalar
def _student_t_xy(df, t):
    """x = df/(df + t²) and y = t²/(df + t²), each without cancellation or inf/inf."""
    t2 = t * t
    return 1.0 / (1.0 + t2 / df), 1.0 / (1.0 + df / t2)


@scalar
def student_t_cdf(df, t):
    """F(t) = I_x(df/2, 1/2)/2 for t < 0, 1 - I_x(df/2, 1/2)/2 otherwise (x = df/(df + t²)).
    Past |t| = 1e150, where t² overflows (and x underflows for small df, although I_x does not:
    x^(df/2) at df = 0.01 is 2e-3 for |t| = 1e268), with x < 1e-20: the first term of the
    series, I_x(a, b) = x^a/(a B(a, b)) (1 + O(x)), from log x = log df - 2 log|t|."""
    a = 0.5 * df
    b = 0.5 + 0.0 * df
    norm = beta.log_beta_norm(a, b)  # log B(a, b) = -a log1p(b/a) - b log1p(a/b) - norm
    x, y = _student_t_xy(df, t)
    half = 0.5 * beta.betainc_at(a, b, x, y, norm)
    tau = tl.abs(t)
    if tau > 1e150:
        lx = tl.log(df) - 2.0 * tl.log(tau)
        if lx < -46.0:
            log_b = -a * el.log1p(b / a) - b * el.log1p(a / b) - norm
            half = 0.5 * tl.exp(a * lx - tl.log(a) - log_b)
    if t < 0.0:
        r = half
    else:
        r = 1.0 - half
    return r


@scalar
def student_t_ddf_ratio(df, t):
    """(∂F/∂df)/(∂F/∂t) for the standard Student-t CDF; 0 at t = 0. Below df = 50 from the
    incomplete beta, -(A (df/t + t)/4 + t/(2 df)) with A = betainc_da_ratio(df/2, 1/2, x, 1 - x)/x,
    x = df/(df + t²); from df = 50 on by the quadratures below (the two terms of the
    incomplete-beta form cancel to O(1/df²))."""
    tau = tl.abs(t)
    if t == 0.0:
        r = 0.0 * tau
    elif df >= 50.0:
        c = _ddf_c(df)
        if tau <= 3.0:
            q = tau * _ddf_bulk_sum(df, tau, c)
        else:
            q = -_ddf_tail_sum(df, tau, c) / (df + 1.0)
        if t < 0.0:
            r = -q
        else:
            r = q
    else:
        x, y = _student_t_xy(df, t)
        a_ratio = beta.betainc_da_ratio(0.5 * df, 0.5 + 0.0 * df, x, y) / x
        r = -(a_ratio * (df / t + t) * 0.25 + t / (2.0 * df))
    return r


# -- Student-t's dz/ddf at large df --------------------------------------------------------------
#
# The ratio R = (dF/ddf)/q(t) from the incomplete beta is a difference of two terms of size
# t/(2 df) whose sum is O(1/df^2): it would lose log10(df) digits. For df >= 50 it is an integral
# instead, R = (1/q(t)) int_0^t q(s) g(s) ds with g = d log q/ddf written without cancellation,
#     g(s) = c(df) + log1pmx(-v)/2 + v/(2 df),    v = s^2/(df + s^2),
#     c(df) = [psi((df+1)/2) - psi(df/2) - 1/df]/2   (an asymptotic series in 1/df),
# and, because int_0^inf q g = 0, also R = -(1/q(t)) int_|t|^inf q g ds (times sign t). For
# |t| <= 3: 16-point Gauss-Legendre on [0, |t|]. For |t| > 3: the substitution
# r = (df+1)/2 [log1p(s^2/df) - log1p(t^2/df)] turns q(s)/q(t) into e^-r, and 16-point
# Gauss-Laguerre integrates f(r) = g(s) (s + df/s)/(df + 1). Both agree with mpmath to a few ulp
# for df from 50 to 1e7 (tests/scalar/test_student_t.py).


@scalar
def _ddf_c(nu):
    """c(df) = [psi((df+1)/2) - psi(df/2) - 1/df]/2 by the asymptotic series
    psi(x + 1/2) - psi(x) - 1/(2x) = sum_k s_k h^(2k+2) at x = df/2, h = 1/x = 2/df <= 0.04, with
    s_k = 1/8, -1/64, 1/128, -17/2048, 31/2048, -691/16384, 5461/32768; Horner in h^2."""
    h2 = (2.0 / nu) * (2.0 / nu)
    acc = h2 * 0.166656494140625 - 0.0421752929687500
    acc = acc * h2 + 0.0151367187500000
    acc = acc * h2 - 0.00830078125000000
    acc = acc * h2 + 0.00781250000000000
    acc = acc * h2 - 0.0156250000000000
    acc = acc * h2 + 0.125
    return 0.5 * acc * h2


@scalar
def _ddf_g(nu, c, s):
    """g(s) = d log q(s)/ddf = c + log1pmx(-v)/2 + v/(2 df), v = s^2/(df + s^2) <= 1/2; past
    s^2 = df, log1pmx(-v) = v - log1p(w) + log(df) - 2 log(s) with w = df/s^2 (no overflow)."""
    s2 = s * s
    if s2 <= nu:
        v = s2 / (nu + s2)
        r = c + 0.5 * el.log1pmx(-v) + v / (2.0 * nu)
    else:
        w = nu / s2
        v = 1.0 / (1.0 + w)
        r = c + 0.5 * (v - el.log1p(w) + tl.log(nu) - 2.0 * tl.log(s)) + v / (2.0 * nu)
    return r


@scalar
def _ddf_scale(nu, tau):
    """(S, S_lo): S = fl(tau^2/(df + tau^2)) and the rest of tau^2/(df + tau^2) - S to about
    2^-75 relative. tau^2 and S (df + tau^2) are summed from exact products of Veltkamp halves
    (elementary.split), so FMA contraction cannot change the result and none is needed."""
    th, tl_ = el.split(tau)
    hh = th * th
    hl = 2.0 * th * tl_
    t2 = hh + hl
    t2_lo = ((hh - t2) + hl) + tl_ * tl_
    den, den_lo = el.two_sum(nu, t2)
    den_lo = den_lo + t2_lo
    s = t2 / den
    sh, sl = el.split(s)
    dh, dl = el.split(den)
    rest = (((t2 - sh * dh) - sh * dl) - sl * dh) - sl * dl
    return s, (rest + t2_lo - s * den_lo) / den


@scalar
def _ddf_bulk_term(nu, tau, c, s, s_lo, p):
    """q(tau p)/q(tau) g(tau p) = exp(L) g(tau p), L = -(df+1)/2 log1p(-z), z = S (1-p)(1+p),
    S = tau^2/(df+tau^2) = s + s_lo (_ddf_scale). |L| reaches (df+1) S/2 ~ 4.5, so the rounding
    of S alone would err by ~1e-15 in exp(L), the same way at every node: exp(L) takes the
    first-order correction dL = (df+1)/2 s_lo (1-p)(1+p)/(1 - z)."""
    m = (1.0 - p) * (1.0 + p)
    z = s * m
    half_df1 = 0.5 * (nu + 1.0)
    e = tl.exp(-half_df1 * el.log1p(-z))
    e = e + e * (half_df1 * s_lo * m / (1.0 - z))
    return e * _ddf_g(nu, c, tau * p)


@scalar
def _ddf_tail_term(nu, tau, c, r):
    """g(s) (s + df/s) at s = tau sqrt(1 + (1 + df/tau^2) expm1(2 r/(df + 1)))."""
    s = tau * tl.sqrt(1.0 + (1.0 + nu / (tau * tau)) * el.expm1(2.0 * r / (nu + 1.0)))
    return _ddf_g(nu, c, s) * (s + nu / s)


# -- the two sums and their rules, rendered by tools/render_student_t_quadrature.py -----------


@scalar
def _ddf_bulk_sum(nu, tau, c):
    """sum_k w_k q(tau p_k)/q(tau) g(tau p_k), k = 0 .. 15 in order, by the 16-point
    Gauss-Legendre rule on [0, 1]. A loop, not unrolled: unrolled, the compilers keep
    several terms in flight (~150 registers in float64)."""
    s, s_lo = _ddf_scale(nu, tau)
    zero = 0.0 * tau
    acc = zero
    for k in range(16):
        p, w = _legendre_node(k, zero)
        acc += w * _ddf_bulk_term(nu, tau, c, s, s_lo, p)
    return acc


@scalar
def _ddf_tail_sum(nu, tau, c):
    """sum_k w_k f(r_k), k = 0 .. 15 in order, by the 16-point Gauss-Laguerre rule
    (weight e^-r)."""
    zero = 0.0 * tau
    acc = zero
    for k in range(16):
        r, w = _laguerre_node(k, zero)
        acc += w * _ddf_tail_term(nu, tau, c, r)
    return acc


@scalar
def _legendre_node(k, zero):
    """Node p_k and weight w_k of the 16-point Gauss-Legendre rule on [0, 1]."""
    node = zero + 0.994700467495825
    weight = zero + 0.013576229705877048
    node = tl.where(k == 14, zero + 0.9722875115366163, node)
    weight = tl.where(k == 14, zero + 0.031126761969323947, weight)
    node = tl.where(k == 13, zero + 0.9328156011939158, node)
    weight = tl.where(k == 13, zero + 0.04757925584124639, weight)
    node = tl.where(k == 12, zero + 0.8777022041775016, node)
    weight = tl.where(k == 12, zero + 0.06231448562776694, weight)
    node = tl.where(k == 11, zero + 0.8089381222013219, node)
    weight = tl.where(k == 11, zero + 0.07479799440828837, weight)
    node = tl.where(k == 10, zero + 0.7290083888286137, node)
    weight = tl.where(k == 10, zero + 0.08457825969750127, weight)
    node = tl.where(k == 9, zero + 0.6408017753896295, node)
    weight = tl.where(k == 9, zero + 0.09130170752246179, weight)
    node = tl.where(k == 8, zero + 0.5475062549188188, node)
    weight = tl.where(k == 8, zero + 0.09472530522753425, weight)
    node = tl.where(k == 7, zero + 0.4524937450811813, node)
    weight = tl.where(k == 7, zero + 0.09472530522753425, weight)
    node = tl.where(k == 6, zero + 0.35919822461037054, node)
    weight = tl.where(k == 6, zero + 0.09130170752246179, weight)
    node = tl.where(k == 5, zero + 0.2709916111713863, node)
    weight = tl.where(k == 5, zero + 0.08457825969750127, weight)
    node = tl.where(k == 4, zero + 0.19106187779867811, node)
    weight = tl.where(k == 4, zero + 0.07479799440828837, weight)
    node = tl.where(k == 3, zero + 0.12229779582249849, node)
    weight = tl.where(k == 3, zero + 0.06231448562776694, weight)
    node = tl.where(k == 2, zero + 0.06718439880608412, node)
    weight = tl.where(k == 2, zero + 0.04757925584124639, weight)
    node = tl.where(k == 1, zero + 0.02771248846338371, node)
    weight = tl.where(k == 1, zero + 0.031126761969323947, weight)
    node = tl.where(k == 0, zero + 0.005299532504175033, node)
    weight = tl.where(k == 0, zero + 0.013576229705877048, weight)
    return node, weight


@scalar
def _laguerre_node(k, zero):
    """Node r_k and weight w_k of the 16-point Gauss-Laguerre rule (weight e^-r)."""
    node = zero + 51.70116033954332
    weight = zero + 4.161462370372855e-22
    node = tl.where(k == 14, zero + 41.94045264768833, node)
    weight = tl.where(k == 14, zero + 5.050473700035513e-18, weight)
    node = tl.where(k == 13, zero + 34.58339870228662, node)
    weight = tl.where(k == 13, zero + 6.297967002517868e-15, weight)
    node = tl.where(k == 12, zero + 28.57872974288214, node)
    weight = tl.where(k == 12, zero + 2.1270790332241028e-12, weight)
    node = tl.where(k == 11, zero + 23.515905693991908, node)
    weight = tl.where(k == 11, zero + 2.8623502429738814e-10, weight)
    node = tl.where(k == 10, zero + 19.180156856753136, node)
    weight = tl.where(k == 10, zero + 1.8810248410796733e-08, weight)
    node = tl.where(k == 9, zero + 15.441527368781617, node)
    weight = tl.where(k == 9, zero + 6.828319330871199e-07, weight)
    node = tl.where(k == 8, zero + 12.21422336886616, node)
    weight = tl.where(k == 8, zero + 1.4844586873981299e-05, weight)
    node = tl.where(k == 7, zero + 9.438314336391938, node)
    weight = tl.where(k == 7, zero + 0.00020427191530827845, weight)
    node = tl.where(k == 6, zero + 7.070338535048234, node)
    weight = tl.where(k == 6, zero + 0.0018490709435263109, weight)
    node = tl.where(k == 5, zero + 5.078018614549768, node)
    weight = tl.where(k == 5, zero + 0.011299900080339454, weight)
    node = tl.where(k == 4, zero + 3.4370866338932067, node)
    weight = tl.where(k == 4, zero + 0.04732892869412522, weight)
    node = tl.where(k == 3, zero + 2.1292836450983805, node)
    weight = tl.where(k == 3, zero + 0.13629693429637754, weight)
    node = tl.where(k == 2, zero + 1.141057774831227, node)
    weight = tl.where(k == 2, zero + 0.26579577764421414, weight)
    node = tl.where(k == 1, zero + 0.46269632891508083, node)
    weight = tl.where(k == 1, zero + 0.3310578549508842, weight)
    node = tl.where(k == 0, zero + 0.08764941047892784, node)
    weight = tl.where(k == 0, zero + 0.206151714957801, weight)
    return node, weight
