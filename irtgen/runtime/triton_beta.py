"""Regularized incomplete beta function, log Beta function and density, and the Beta implicit
gradient ratios as Triton device functions, built from ``tl`` primitives.

The algorithm, regimes and accuracy are those of irtgen.runtime.torch_beta (see its docstring);
both modules evaluate the same formulas in the same order, so they agree to a few ulp. Every
function takes y = 1 - x besides x (the smaller of the two is the exact one).

All functions are elementwise and take float32 or float64 tensors (all arguments of one dtype);
they compute in float64 and return the input dtype. Iterations are capped at MAX_ITER per
element (a lane that does not converge returns NaN); a block loops until its slowest lane is
done, and the regimes keep every lane under ~110 iterations. Interpreter rule followed
throughout: numeric constants are written inline (a float bound to a name becomes float32).
"""

from __future__ import annotations

import triton
import triton.language as tl

from irtgen.runtime import triton_math as tlm

MAX_ITER = tl.constexpr(300)  # series terms / contracted continued-fraction steps

# -- elementary pieces -----------------------------------------------------------------------


@triton.jit
def _stirling_series(z):
    """sum_k B_2k/(2k (2k-1) z^(2k-1)), k = 1..9: lgamma(z) - (z - 1/2) log z + z - log(2 pi)/2
    for z >= 10."""
    r = 1.0 / z
    r2 = r * r
    p = r2 * 0.17964437236883057 - 0.029550653594771242
    p = p * r2 + 0.00641025641025641
    p = p * r2 - 0.0019175269175269176
    p = p * r2 + 0.0008417508417508417
    p = p * r2 - 0.0005952380952380953
    p = p * r2 + 0.0007936507936507937
    p = p * r2 - 0.002777777777777778
    p = p * r2 + 0.08333333333333333
    return r * p


@triton.jit
def _stirlerr(z):
    """w(z) = lgamma(z) - (z - 1/2) log z + z - log(2 pi)/2 for z > 0: the recurrence
    w(z) = w(z + 1) + (z + 1/2) log1p(1/z) - 1 lifts z to >= 10 (for z >= 1 the step is
    q^2 sum_j q^(2j)/(2j + 3), q = 1/(2z + 1), without cancellation), then Stirling's series."""
    acc = z * 0.0
    for _ in range(10):  # a loop, not unrolled: this is inlined several times
        low = z < 10.0
        q = 1.0 / (2.0 * z + 1.0)
        q2 = q * q
        step = tl.where(z >= 1.0, q2 * tlm.atanh_series(q2), (z + 0.5) * tlm.log1p(1.0 / z) - 1.0)
        acc = acc + tl.where(low, step, 0.0)
        z = tl.where(low, z + 1.0, z)
    return acc + _stirling_series(z)


@triton.jit
def _chi_diff(z, t):
    """chi(z) - chi(z + t) for z > 0, t >= 0, chi(z) = log z - psi(z), with relative accuracy
    also for t << z: steps t/(z(z+t)(z+t+1)) - log1pmx(t/(z(z+t+1))) (both >= 0) lift z to
    >= 10, then t/(2z(z+t)) + (1 - q) sum_k c_k z^-2k (1 + q + ... + q^(k-1)), q = (z/(z+t))^2,
    c_k = B_2k/(2k)."""
    acc = z * 0.0
    for _ in range(10):  # a loop, not unrolled: this is inlined several times
        low = z < 10.0
        zt = z + t
        step = t / (z * zt * (zt + 1.0)) - tlm.log1pmx(t / (z * (zt + 1.0)))
        acc = acc + tl.where(low, step, 0.0)
        z = tl.where(low, z + 1.0, z)
    zt = z + t
    ratio = z / zt
    q = ratio * ratio
    w = 1.0 / (z * z)
    g = z * 0.0 + 1.0
    wk = w
    tail = wk * 0.08333333333333333
    g = 1.0 + q * g
    wk = wk * w
    tail = tail - wk * g * 0.008333333333333333
    g = 1.0 + q * g
    wk = wk * w
    tail = tail + wk * g * 0.003968253968253968
    g = 1.0 + q * g
    wk = wk * w
    tail = tail - wk * g * 0.004166666666666667
    g = 1.0 + q * g
    wk = wk * w
    tail = tail + wk * g * 0.007575757575757576
    g = 1.0 + q * g
    wk = wk * w
    tail = tail - wk * g * 0.021092796092796094
    g = 1.0 + q * g
    wk = wk * w
    tail = tail + wk * g * 0.08333333333333333
    g = 1.0 + q * g
    wk = wk * w
    tail = tail - wk * g * 0.4432598039215686
    g = 1.0 + q * g
    wk = wk * w
    tail = tail + wk * g * 3.0539543302701198
    one_minus_q = (t / zt) * (1.0 + ratio)
    return acc + t / (2.0 * z * zt) + one_minus_q * tail


@triton.jit
def _lgamma1p_small(t):
    """lgamma(1 + t) for 0 <= t <= 1/2 with relative accuracy: lgamma(2 + t) - log1p(t), the
    first by its Maclaurin series (1 - euler_gamma) t + sum_k (-1)^k (zeta(k) - 1) t^k/k."""
    p = t * -2.7595228851242334e-10 + 5.731367241678862e-10
    p = p * t - 1.1921401405860912e-09
    p = p * t + 2.4836745438024785e-09
    p = p * t - 5.183475041970047e-09
    p = p * t + 1.0838659214896955e-08
    p = p * t - 2.2711094608943164e-08
    p = p * t + 4.7698101693639804e-08
    p = p * t - 1.0043224823968099e-07
    p = p * t + 2.1207184805554665e-07
    p = p * t - 4.492469198764566e-07
    p = p * t + 9.55141213040742e-07
    p = p * t - 2.039215753801366e-06
    p = p * t + 4.374866789907488e-06
    p = p * t - 9.439488275268397e-06
    p = p * t + 2.050721277567069e-05
    p = p * t - 4.492623673813314e-05
    p = p * t + 9.945751278180853e-05
    p = p * t - 0.00022315475845357939
    p = p * t + 0.0005096695247430425
    p = p * t - 0.001192753911703261
    p = p * t + 0.0028905103307415234
    p = p * t - 0.007385551028673986
    p = p * t + 0.020580808427784546
    p = p * t - 0.0673523010531981
    p = p * t + 0.3224670334241132
    p = p * t + 0.42278433509846713
    return t * p - tlm.log1p(t)


@triton.jit
def _lgamma_step(z, t):
    """lgamma(z + t) - lgamma(z) for z > 0, 0 <= t <= 1/2, with relative accuracy: the
    recurrence lifts z to >= 10, where the Stirling form has no cancellation."""
    acc = z * 0.0
    for _ in range(10):
        low = z < 10.0
        acc = acc - tl.where(low, tlm.log1p(t / z), 0.0)
        z = tl.where(low, z + 1.0, z)
    big = (z - 0.5) * tlm.log1p(t / z) + t * tl.log(z + t) - t
    return acc + big + (_stirling_series(z + t) - _stirling_series(z))


@triton.jit
def _deviation(a, b, x, y):
    """d = x (a + b) - a = b - y (a + b) to a few ulp, from the smaller of x and y: a + b as an
    exact sum, the product exact by fma (p - a is exact where it is small)."""
    r = a + b
    rb = r - a
    r_lo = (a - (r - rb)) + (b - rb)
    use_x = x <= y
    t = tl.where(use_x, x, y)
    p = t * r
    e = tl.fma(t, r, -p)
    corr = e + t * r_lo
    return tl.where(use_x, (p - a) + corr, (b - p) - corr)


@triton.jit
def _exponent(a, b, x, y, d):
    """u = x/mu - 1, v = y/(1-mu) - 1, log x, log y, log(x/mu), log(y/(1-mu)) and
    E = a log(x/mu) + b log(y/(1-mu)) <= 0 = a (log(x/mu) - u) + b (log(y/(1-mu)) - v) (a u + b v = 0),
    each log taken where it is accurate (see torch_beta._Pre)."""
    u = d / a
    v = -d / b
    log_x = tl.where(x <= y, tl.log(x), tlm.log1p(-y))
    log_y = tl.where(y < x, tl.log(y), tlm.log1p(-x))
    lxm = tl.where(u >= -0.9, tlm.log1p(u), log_x + tlm.log1p(b / a))
    lym = tl.where(v >= -0.9, tlm.log1p(v), log_y + tlm.log1p(a / b))
    ea = tl.where((u >= -0.5) & (u <= 1.0), tlm.log1pmx(u), lxm - u)
    eb = tl.where((v >= -0.5) & (v <= 1.0), tlm.log1pmx(v), lym - v)
    return u, v, log_x, log_y, lxm, lym, tl.minimum(a * ea + b * eb, 0.0)


@triton.jit
def _log_prefactor(a, b, e):
    """log P = log(x^a y^b / B(a, b)) = E + log(ab/(2 pi (a+b)))/2 - (w(a) + w(b) - w(a+b))."""
    r = a + b
    dw = _stirlerr(a) + _stirlerr(b) - _stirlerr(r)
    return e + 0.5 * (tl.log(a * b / r) - 1.8378770664093455) - dw


# -- the three methods, for x <= mu (or where they converge) ---------------------------------


@triton.jit
def _temme(a, b, x, y, u, v, lxm, lym, e, log_p, ca, cb, NEED_GRAD: tl.constexpr):
    """Temme's expansion (I, ratio_a, ratio_b) for x <= mu, ab/(a+b) >= TEMME_RHO_MIN."""
    r = a + b
    rho = a * b / r
    w = tl.sqrt(-e)
    xi = -w * 1.4142135623730951 / tl.sqrt(rho)
    nu = (b - a) / r
    z = 1.0 / rho
    sg = _temme_g(xi, nu, z)
    value = 0.5 * tlm.erfc(w) - tl.exp(log_p) * sg
    ratio_a = value
    ratio_b = value
    if NEED_GRAD:
        sa, sb = _temme_l(xi, nu, z)
        # the k = 0 terms in closed form: (1 - mu) log(1 + u)/u and -mu log(1 + v)/v
        la0 = tl.where(u == 0.0, 1.0, lxm / tl.where(u == 0.0, 1.0, u)) * (b / r)
        lb0 = -tl.where(v == 0.0, 1.0, lym / tl.where(v == 0.0, 1.0, v)) * (a / r)
        xy = x * y
        ratio_a = -xy * (ca * sg + (sa + la0) * z)
        ratio_b = -xy * (cb * sg + (sb + lb0) * z)
    return value, ratio_a, ratio_b


@triton.jit
def _series(a, b, x, y, log_x, log_y, log_p, cb, act, NEED_GRAD: tl.constexpr):
    """Power series I = x^a/B sum_n (1-b)_n x^n/(n! (a+n)) (DLMF 8.17.7) with its a- and
    b-derivatives on the lanes of act; also log I in a form whose terms are all O(a) for
    a <= 1/2 (so that 1 - I = -expm1(log I) keeps relative accuracy), and the failed lanes."""
    s1 = x * 0.0
    t = x * 0.0
    sb = x * 0.0
    p = x * 0.0 + 1.0
    dp = x * 0.0
    failed = act & (x != x)
    n = 0
    while tl.max(act.to(tl.int32)) > 0:  # over the whole block, any shape
        n += 1
        dp = tl.where(act, (dp * (n - b) - p) * x / n, dp)
        p = tl.where(act, p * (n - b) * x / n, p)
        term = p / (a + n)
        dterm = dp / (a + n)
        tterm = term * n / (a + n)
        s1 = s1 + tl.where(act, term, 0.0)
        t = t + tl.where(act, tterm, 0.0)
        sb = sb + tl.where(act, dterm, 0.0)
        s = 1.0 / a + s1
        done = tl.abs(term) <= 1e-17 * tl.abs(s)
        if NEED_GRAD:
            done = done & (tl.abs(tterm) <= 1e-17 * (tl.abs(t) + tl.abs(s)))
            done = done & (tl.abs(dterm) <= 1e-17 * (tl.abs(sb) + tl.abs(s)))
        act = act & ~done
        failed = failed | (act & (n >= MAX_ITER))
        act = act & (n < MAX_ITER)
    s = 1.0 / a + s1
    value = tl.exp(log_p - b * log_y) * s
    # log(a B(a, b)) = lgamma(1 + a) - (lgamma(a + b) - lgamma(b))
    small = tl.minimum(a, 0.5)
    log_ab = _lgamma1p_small(small) - _lgamma_step(b, small)
    log_value = a * log_x - log_ab + tlm.log1p(a * s1)
    ratio_a = value
    ratio_b = value
    if NEED_GRAD:
        # m = log x - psi(a + 1) + psi(a + b) and psi(a + b) - psi(b) as log ratios plus chi
        # differences (chi(a+1) - chi(a+b) taken in the direction of increasing argument)
        chi_up = _chi_diff(a + 1.0, tl.maximum(b - 1.0, 0.0))
        chi_down = -_chi_diff(tl.where(b < 1.0, a + b, 1.0), tl.maximum(1.0 - b, 0.0))
        m = log_x + tlm.log1p((b - 1.0) / (a + 1.0)) + tl.where(b >= 1.0, chi_up, chi_down)
        psi_rb = tlm.log1p(a / b) + cb
        scale = x * tl.exp((1.0 - b) * log_y)
        ratio_a = scale * (m * s + t / a)
        ratio_b = scale * (sb + s * psi_rb)
    return value, ratio_a, ratio_b, log_value, failed


@triton.jit
def _cf_odd(a, b, x, m):
    """d_(2m+1) of DLMF 8.17.22 and its a-, b-derivatives (m a float tensor)."""
    d = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))
    da = d * (m / ((a + m) * (a + 2.0 * m)) + (m + 1.0 - b) / ((a + b + m) * (a + 2.0 * m + 1.0)))
    return d, da, d / (a + b + m)


@triton.jit
def _cf_even(a, b, x, m):
    """d_(2m) of DLMF 8.17.22 and its a-, b-derivatives (m >= 1 a float tensor)."""
    den = (a + 2.0 * m - 1.0) * (a + 2.0 * m)
    d = m * (b - m) * x / den
    return d, -d * (1.0 / (a + 2.0 * m - 1.0) + 1.0 / (a + 2.0 * m)), m * x / den


@triton.jit
def _cf_one_plus_odd(a, b, x, y, d, m):
    """1 + d_(2m+1) = ((a+m)(1-d) + m(a(3-x) + m(4-x) + 1)) / ((a+2m)(a+2m+1)), all terms
    positive, and its a-, b-derivatives (dd/da = -y, dd/db = x)."""
    n = (a + m) * (1.0 - d) + m * (a * (3.0 - x) + m * (4.0 - x) + 1.0)
    q = (a + 2.0 * m) * (a + 2.0 * m + 1.0)
    w = n / q
    na = (1.0 - d) + (a + m) * y + m * (3.0 - x)
    return w, (na - w * (2.0 * a + 4.0 * m + 1.0)) / q, -(a + m) * x / q


@triton.jit
def _cf_brackets(f, ga, gb, d2, d2a, d2b, d3, d3a, d3b, w0, w0a, w0b, la, lb):
    """K = W1/U1 and the ratio brackets d log K/da + la, d log K/db + lb from W2 = f and
    d log W2 = (ga, gb): W1 = 1 + d2 - d2 d3/W2, U1 = (1 + d1) + d2 - d2 d3/W2."""
    t = d2 * d3 / f
    big_w = 1.0 + d2 - t
    big_u = w0 + d2 - t
    ta = (d2a * d3 + d2 * d3a) / f - t * ga
    tb = (d2b * d3 + d2 * d3b) / f - t * gb
    ka = (d2a - ta) / big_w - (w0a + d2a - ta) / big_u
    kb = (d2b - tb) / big_w - (w0b + d2b - tb) / big_u
    return big_w / big_u, ka + la, kb + lb


@triton.jit
def _continued_fraction(a, b, x, y, d, lxm, lym, log_p, ca, cb, act, NEED_GRAD: tl.constexpr):
    """DLMF 8.17.22 in its even contraction (see torch_beta._continued_fraction): I = (P/a) K,
    K = W1/(W1 + d1); W2 by modified Lentz with d log W2/da, db carried forward."""
    zero = x * 0.0
    d2, d2a, d2b = _cf_even(a, b, x, zero + 1.0)
    d3, d3a, d3b = _cf_odd(a, b, x, zero + 1.0)
    w0, w0a, w0b = _cf_one_plus_odd(a, b, x, y, d, zero)
    la = lxm + ca - 1.0 / a
    lb = lym + cb
    w1, w1a, w1b = _cf_one_plus_odd(a, b, x, y, d, zero + 1.0)
    e4, e4a, e4b = _cf_even(a, b, x, zero + 2.0)
    f = w1 + e4
    ga = (w1a + e4a) / f
    gb = (w1b + e4b) / f
    c = f
    ca_ = w1a + e4a
    cb_ = w1b + e4b
    dd = zero
    da = zero
    db = zero
    bra = zero + 1e300  # brackets of the previous step
    brb = bra
    failed = act & (x != x)
    j = 0
    while tl.max(act.to(tl.int32)) > 0:  # over the whole block, any shape
        j += 1
        m1 = zero + (j + 1)
        e, ea, eb = _cf_even(a, b, x, m1)
        o, oa, ob = _cf_odd(a, b, x, m1)
        num = -e * o
        num_a = -(ea * o + e * oa)
        num_b = -(eb * o + e * ob)
        w, wa, wb = _cf_one_plus_odd(a, b, x, y, d, m1)
        e2, e2a, e2b = _cf_even(a, b, x, m1 + 1.0)
        den = w + e2
        dn = 1.0 / (den + num * dd)
        cn = den + num / c
        step = cn * dn
        f = tl.where(act, f * step, f)
        done = tl.abs(step - 1.0) <= 1e-17
        if NEED_GRAD:
            den_a = wa + e2a
            den_b = wb + e2b
            dn_a = -dn * dn * (den_a + num_a * dd + num * da)
            dn_b = -dn * dn * (den_b + num_b * dd + num * db)
            cn_a = den_a + (num_a - num * ca_ / c) / c
            cn_b = den_b + (num_b - num * cb_ / c) / c
            ga = tl.where(act, ga + cn_a / cn + dn_a / dn, ga)
            gb = tl.where(act, gb + cn_b / cn + dn_b / dn, gb)
            da = tl.where(act, dn_a, da)
            db = tl.where(act, dn_b, db)
            ca_ = tl.where(act, cn_a, ca_)
            cb_ = tl.where(act, cn_b, cb_)
            # stop when the ratios themselves have converged
            _k, nra, nrb = _cf_brackets(f, ga, gb, d2, d2a, d2b, d3, d3a, d3b, w0, w0a, w0b, la, lb)
            done = done & (tl.abs(nra - bra) <= 1e-17 * tl.abs(nra))
            done = done & (tl.abs(nrb - brb) <= 1e-17 * tl.abs(nrb))
            bra = tl.where(act, nra, bra)
            brb = tl.where(act, nrb, brb)
        dd = tl.where(act, dn, dd)
        c = tl.where(act, cn, c)
        act = act & ~done
        failed = failed | (act & (j >= MAX_ITER))
        act = act & (j < MAX_ITER)
    t = d2 * d3 / f
    k = (1.0 + d2 - t) / (w0 + d2 - t)
    value = tl.exp(log_p) * k / a
    scale = x * y * k / a
    return value, scale * bra, scale * brb, failed


# -- dispatch --------------------------------------------------------------------------------


@triton.jit
def _betainc_core(a_in, b_in, x_in, y_in, WANT: tl.constexpr):
    """WANT 0: I_x(a, b), 1: (dI/da)/(dI/dx), 2: (dI/db)/(dI/dx)."""
    a0 = a_in.to(tl.float64)
    b0 = b_in.to(tl.float64)
    x0 = x_in.to(tl.float64)
    y0 = y_in.to(tl.float64)
    valid = (a0 > 0.0) & (b0 > 0.0) & (a0 < float("inf")) & (b0 < float("inf"))
    valid = valid & (x0 >= 0.0) & (x0 <= 1.0) & (y0 >= 0.0) & (y0 <= 1.0)
    inner = valid & (x0 > 0.0) & (y0 > 0.0)
    a = tl.where(inner, a0, 1.0)
    b = tl.where(inner, b0, 1.0)
    x = tl.where(inner, x0, 0.5)
    y = tl.where(inner, y0, 0.5)
    # the smaller of x, y is the exact one
    xs = x <= y
    x = tl.where(xs, x, 1.0 - y)
    y = tl.where(xs, 1.0 - x, y)
    d = _deviation(a, b, x, y)
    r = a + b
    rho = a * b / r
    # regimes as torch_beta._core (2000 is TEMME_RHO_MIN, 0.01 is TEMME_XI_MAX^2); E is the
    # same in both orientations
    u0, v0, lx0, ly0, lxm0, lym0, e = _exponent(a, b, x, y, d)
    temme = inner & (rho >= 2000.0) & (-2.0 * e <= 0.01 * rho)
    ser_d = ~temme & (x <= 0.7) & ((b * x <= 1.0) | ((a <= 0.5) & (b * x <= 1.5)))
    ser_s = ~temme & ~ser_d & (y <= 0.7) & ((a * y <= 1.0) | ((b <= 0.5) & (a * y <= 1.5)))
    series = inner & (ser_d | ser_s)
    cf = inner & ~temme & ~series
    cf_swap = x * (r + 2.0) > a + 1.0
    swap = tl.where(temme, d > 0.0, ser_s | (~ser_d & cf_swap))
    # I_y(b, a) where swapped: the pieces of _exponent trade places (u <-> v, ...)
    aa = tl.where(swap, b, a)
    bb = tl.where(swap, a, b)
    xx = tl.where(swap, y, x)
    yy = tl.where(swap, x, y)
    dd = tl.where(swap, -d, d)
    u = tl.where(swap, v0, u0)
    v = tl.where(swap, u0, v0)
    log_x = tl.where(swap, ly0, lx0)
    log_y = tl.where(swap, lx0, ly0)
    lxm = tl.where(swap, lym0, lxm0)
    lym = tl.where(swap, lxm0, lym0)
    log_p = _log_prefactor(aa, bb, e)
    if WANT > 0:
        ca = _chi_diff(aa, bb)  # chi(a) - chi(a + b), chi(z) = log z - psi(z)
        cb = _chi_diff(bb, aa)
    else:
        ca = x * 0.0
        cb = ca
    value = x * 0.0
    ra = value
    rb = value
    slog = value
    failed = inner & (x != x)
    if tl.max(series.to(tl.int32)) > 0:
        sv, sra, srb, slog, s_failed = _series(
            aa, bb, xx, yy, log_x, log_y, log_p, cb, series, WANT > 0
        )
        value = tl.where(series, sv, value)
        ra = tl.where(series, sra, ra)
        rb = tl.where(series, srb, rb)
        failed = failed | (series & s_failed)
    if tl.max(cf.to(tl.int32)) > 0:
        cv, cra, crb, c_failed = _continued_fraction(
            aa, bb, xx, yy, dd, lxm, lym, log_p, ca, cb, cf, WANT > 0
        )
        value = tl.where(cf, cv, value)
        ra = tl.where(cf, cra, ra)
        rb = tl.where(cf, crb, rb)
        failed = failed | (cf & c_failed)
    if tl.max(temme.to(tl.int32)) > 0:
        tv, tra, trb = _temme(aa, bb, xx, yy, u, v, lxm, lym, e, log_p, ca, cb, WANT > 0)
        value = tl.where(temme, tv, value)
        ra = tl.where(temme, tra, ra)
        rb = tl.where(temme, trb, rb)
    if WANT == 0:
        # 1 - I_y(b, a) from log I_y(b, a), whose terms are all small for b <= 1/2
        comp = tl.where(series & (aa <= 0.5), -tlm.expm1(slog), 1.0 - value)
        out = tl.where(swap, comp, value)
        edge = (y0 == 0.0) & (x0 != 0.0)
        out = tl.where(valid & ~inner, tl.where(edge, 1.0, 0.0), out)
    elif WANT == 1:
        out = tl.where(swap, -rb, ra)
        out = tl.where(valid & ~inner, 0.0, out)
    else:
        out = tl.where(swap, -ra, rb)
        out = tl.where(valid & ~inner, 0.0, out)
    out = tl.where(failed, float("nan"), out)
    out = tl.where(valid, out, float("nan"))
    return out.to(x_in.dtype)


# -- public functions ------------------------------------------------------------------------


@triton.jit
def betaln(a_in, b_in):
    """log B(a, b) = -a log1p(b/a) - b log1p(a/b) - log(ab/(2 pi (a+b)))/2 + w(a) + w(b) - w(a+b)
    (w the Stirling remainder): no cancellation for huge or very unequal a, b."""
    a0 = a_in.to(tl.float64)
    b0 = b_in.to(tl.float64)
    valid = (a0 > 0.0) & (b0 > 0.0)
    finite = valid & (a0 < float("inf")) & (b0 < float("inf"))
    a = tl.where(finite, a0, 1.0)
    b = tl.where(finite, b0, 1.0)
    r = a + b
    rho = a * b / r
    dw = _stirlerr(a) + _stirlerr(b) - _stirlerr(r)
    out = -a * tlm.log1p(b / a) - b * tlm.log1p(a / b) - 0.5 * (tl.log(rho) - 1.8378770664093455)
    out = out + dw
    out = tl.where(finite, out, -float("inf"))
    out = tl.where(valid, out, float("nan"))
    return out.to(a_in.dtype)


@triton.jit
def log_beta_density(a_in, b_in, x_in, y_in):
    """log(x^(a-1) y^(b-1) / B(a, b)) = log dI_x(a, b)/dx with y = 1 - x, accurate for large a, b
    near the mode; x = 0 or y = 0 give the limits (+inf, a finite value, or -inf)."""
    a0 = a_in.to(tl.float64)
    b0 = b_in.to(tl.float64)
    x0 = x_in.to(tl.float64)
    y0 = y_in.to(tl.float64)
    valid = (a0 > 0.0) & (b0 > 0.0) & (a0 < float("inf")) & (b0 < float("inf"))
    valid = valid & (x0 >= 0.0) & (x0 <= 1.0) & (y0 >= 0.0) & (y0 <= 1.0)
    inner = valid & (x0 > 0.0) & (y0 > 0.0)
    a = tl.where(inner, a0, 1.0)
    b = tl.where(inner, b0, 1.0)
    x = tl.where(inner, x0, 0.5)
    y = tl.where(inner, y0, 0.5)
    xs = x <= y
    x = tl.where(xs, x, 1.0 - y)
    y = tl.where(xs, 1.0 - x, y)
    d = _deviation(a, b, x, y)
    _u, _v, log_x, log_y, _lxm, _lym, e = _exponent(a, b, x, y, d)
    out = _log_prefactor(a, b, e) - log_x - log_y
    # at x = 0 the density is x^(a-1)/B(a, b): inf, b (a = 1) or 0; likewise at y = 0 with b
    at0 = tl.where(a0 < 1.0, float("inf"), tl.where(a0 == 1.0, tl.log(b0), -float("inf")))
    at1 = tl.where(b0 < 1.0, float("inf"), tl.where(b0 == 1.0, tl.log(a0), -float("inf")))
    out = tl.where(valid & (x0 == 0.0), at0, out)
    out = tl.where(valid & (y0 == 0.0) & (x0 != 0.0), at1, out)
    out = tl.where(valid, out, float("nan"))
    return out.to(x_in.dtype)


@triton.jit
def betainc(a, b, x, y):
    """Regularized incomplete beta I_x(a, b) = int_0^x t^(a-1) (1-t)^(b-1) dt / B(a, b), given
    y = 1 - x as well; full relative accuracy in both tails."""
    return _betainc_core(a, b, x, y, 0)


@triton.jit
def betainc_da_ratio(a, b, x, y):
    """(dI_x(a, b)/da) / (dI_x(a, b)/dx), without forming either (the density cancels)."""
    return _betainc_core(a, b, x, y, 1)


@triton.jit
def betainc_db_ratio(a, b, x, y):
    """(dI_x(a, b)/db) / (dI_x(a, b)/dx) = -betainc_da_ratio(b, a, y, x)."""
    return _betainc_core(a, b, x, y, 2)


# -- Temme's sums, unrolled by tools/render_beta_temme.py --------------------------------------


@triton.jit
def _temme_g(xi, nu, z):
    """sum_k z^(k+1) sum_j G_k[j] xi^j with G_k[j] = m_kj h_(j+1+2k)(nu): torch_beta._TEMME_H
    unrolled (the interpreter cannot loop over float tables)."""
    nu2 = nu * nu
    h1 = nu * -0.3333333333333333
    h2 = nu2 * 0.020833333333333332 + 0.0625
    h3 = nu2 * 0.001851851851851852 - 0.016666666666666666
    h3 = h3 * nu
    h4 = nu2 * 7.233796296296296e-05 + 0.00043402777777777775
    h4 = h4 * nu2 + 0.0006510416666666666
    h5 = nu2 * -1.1022927689594357e-05 + 6.613756613756614e-05
    h5 = h5 * nu2 + 0.00029761904761904765
    h5 = h5 * nu
    h6 = nu2 * -2.793049125514403e-06 + 9.584780092592592e-06
    h6 = h6 * nu2 - 0.00014485677083333334
    h6 = h6 * nu2 - 4.0690104166666664e-05
    h7 = nu2 * -3.0619243582206544e-07 + 9.185773074661964e-07
    h7 = h7 * nu2 + 1.3778659611992945e-05
    h7 = h7 * nu2 + 2.48015873015873e-05
    h7 = h7 * nu
    h8 = nu2 * -8.536908244843719e-09 + 8.970481518224574e-10
    h8 = h8 * nu2 - 3.5765309813161377e-07
    h8 = h8 * nu2 - 1.4386858258928572e-06
    h8 = h8 * nu2 - 3.814697265625e-07
    h9 = nu2 * 3.621215255303047e-09 - 1.9484973188676894e-08
    h9 = h9 * nu2 + 1.878908128908129e-08
    h9 = h9 * nu2 - 1.1523969857303192e-06
    h9 = h9 * nu2 - 7.045905483405483e-07
    h9 = h9 * nu
    h10 = nu2 * 8.102257168899499e-10 - 4.130174031161265e-09
    h10 = h10 * nu2 + 7.786075382053435e-09
    h10 = h10 * nu2 + 2.513280631293075e-07
    h10 = h10 * nu2 + 5.235441327545558e-07
    h10 = h10 * nu2 + 5.0332811143663194e-08
    s = h9 * 192.0
    s = s * xi + h8 * 105.0
    s = s * xi + h7 * 48.0
    sg = s * z
    s = h10 * 63.0
    s = s * xi + h9 * 48.0
    s = s * xi + h8 * 35.0
    s = s * xi + h7 * 24.0
    s = s * xi + h6 * 15.0
    s = s * xi + h5 * 8.0
    sg = (sg + s) * z
    s = h10 * 9.0
    s = s * xi + h9 * 8.0
    s = s * xi + h8 * 7.0
    s = s * xi + h7 * 6.0
    s = s * xi + h6 * 5.0
    s = s * xi + h5 * 4.0
    s = s * xi + h4 * 3.0
    s = s * xi + h3 * 2.0
    sg = (sg + s) * z
    s = h10 * 1.0
    s = s * xi + h9 * 1.0
    s = s * xi + h8 * 1.0
    s = s * xi + h7 * 1.0
    s = s * xi + h6 * 1.0
    s = s * xi + h5 * 1.0
    s = s * xi + h4 * 1.0
    s = s * xi + h3 * 1.0
    s = s * xi + h2 * 1.0
    s = s * xi + h1 * 1.0
    sg = (sg + s) * z
    return sg


@triton.jit
def _temme_l(xi, nu, z):
    """sum_(k>=1) z^k sum_j L_k[j] xi^j, L_k[j] = m_kj l_(j+1+2k)(nu), and its mirror image
    L_b(xi; nu) = -L_a(-xi; -nu): torch_beta._TEMME_L unrolled, split into even and odd parts
    in nu."""
    nu2 = nu * nu
    le3 = nu2 * 0.041666666666666664 + 0.041666666666666664
    lo3 = nu * 0.08333333333333333
    le4 = nu2 * 0.0008680555555555555 - 0.013888888888888888
    le4 = le4 * nu2 - 0.0078125
    lo4 = nu2 * -0.001736111111111111 - 0.019097222222222224
    lo4 = lo4 * nu
    le5 = nu2 * -0.00011574074074074075 + 0.002777777777777778
    le5 = le5 * nu2 + 0.0010416666666666667
    lo5 = nu2 * 0.00011574074074074075 + 0.000462962962962963
    lo5 = lo5 * nu2 + 0.003125
    lo5 = lo5 * nu
    le6 = nu2 * 5.4253472222222224e-06 - 3.436053240740741e-05
    le6 = le6 * nu2 - 0.00017903645833333332
    le6 = le6 * nu2 - 8.138020833333333e-05
    lo6 = nu2 * -3.6168981481481483e-06 - 7.957175925925927e-05
    lo6 = lo6 * nu2 - 0.00020616319444444444
    lo6 = lo6 * nu
    le7 = nu2 * 4.592886537330982e-07 - 5.9707524985302764e-06
    le7 = le7 * nu2 - 7.027116402116402e-05
    le7 = le7 * nu2 - 1.240079365079365e-05
    lo7 = nu2 * -9.185773074661964e-07 + 3.6743092298647855e-06
    lo7 = lo7 * nu2 - 4.1335978835978834e-05
    lo7 = lo7 * nu2 - 4.96031746031746e-05
    lo7 = lo7 * nu
    le8 = nu2 * -2.4937938620664313e-07 + 1.118798454952969e-06
    le8 = le8 * nu2 + 5.192832341269841e-06
    le8 = le8 * nu2 + 3.354027157738095e-05
    le8 = le8 * nu2 + 5.086263020833333e-06
    lo8 = nu2 * 9.975175448265727e-08 - 4.2843019731040566e-07
    lo8 = lo8 * nu2 + 2.4498026207010583e-05
    lo8 = lo8 * nu2 + 2.051943824404762e-05
    lo8 = lo8 * nu
    le9 = nu2 * 9.568513619439545e-09 - 1.913702723887909e-08
    le9 = le9 * nu2 - 2.296443268665491e-06
    le9 = le9 * nu2 - 6.717096560846561e-06
    le9 = le9 * nu2 - 7.750496031746032e-07
    lo9 = nu2 * -2.8705540858318637e-08 + 1.3395919067215364e-07
    lo9 = lo9 * nu2 - 6.889329805996473e-07
    lo9 = lo9 * nu2 - 5.339230599647266e-06
    lo9 = lo9 * nu2 - 3.875248015873016e-06
    lo9 = lo9 * nu
    le10 = nu2 * -8.299771904709172e-10 + 3.0015812580077828e-09
    le10 = le10 * nu2 + 4.705765096435308e-09
    le10 = le10 * nu2 + 1.8435460830141278e-07
    le10 = le10 * nu2 + 3.074464343843006e-07
    le10 = le10 * nu2 + 4.76837158203125e-08
    lo10 = nu2 * 2.3713634013454775e-10 + 1.8223367084245106e-09
    lo10 = lo10 * nu2 + 4.9524533381864835e-08
    lo10 = lo10 * nu2 + 3.194836992715682e-07
    lo10 = lo10 * nu2 + 1.7529442196800595e-07
    lo10 = lo10 * nu
    le11 = nu2 * -9.053038138257617e-11 + 6.465995567075814e-10
    le11 = le11 * nu2 + 1.061235146883295e-09
    le11 = le11 * nu2 + 1.9932083734167068e-07
    le11 = le11 * nu2 + 2.449626473063973e-07
    le11 = le11 * nu2 + 1.761476370851371e-08
    lo11 = nu2 * 3.6212152553030467e-10 - 2.241673998789911e-09
    lo11 = lo11 * nu2 + 5.845491956603068e-09
    lo11 = lo11 * nu2 + 5.292257896424563e-08
    lo11 = lo11 * nu2 + 3.0093845198011864e-07
    lo11 = lo11 * nu2 + 1.0568858225108225e-07
    lo11 = lo11 * nu
    ta = (le9 + lo9) * 384.0
    tb = (le9 - lo9) * -384.0
    sa = ta * z
    sb = tb * z
    ta = (le10 + lo10) * 315.0
    tb = (le10 - lo10) * 315.0
    ta = ta * xi + (le9 + lo9) * 192.0
    tb = tb * xi + (le9 - lo9) * -192.0
    ta = ta * xi + (le8 + lo8) * 105.0
    tb = tb * xi + (le8 - lo8) * 105.0
    ta = ta * xi + (le7 + lo7) * 48.0
    tb = tb * xi + (le7 - lo7) * -48.0
    sa = (sa + ta) * z
    sb = (sb + tb) * z
    ta = (le11 + lo11) * 80.0
    tb = (le11 - lo11) * -80.0
    ta = ta * xi + (le10 + lo10) * 63.0
    tb = tb * xi + (le10 - lo10) * 63.0
    ta = ta * xi + (le9 + lo9) * 48.0
    tb = tb * xi + (le9 - lo9) * -48.0
    ta = ta * xi + (le8 + lo8) * 35.0
    tb = tb * xi + (le8 - lo8) * 35.0
    ta = ta * xi + (le7 + lo7) * 24.0
    tb = tb * xi + (le7 - lo7) * -24.0
    ta = ta * xi + (le6 + lo6) * 15.0
    tb = tb * xi + (le6 - lo6) * 15.0
    ta = ta * xi + (le5 + lo5) * 8.0
    tb = tb * xi + (le5 - lo5) * -8.0
    sa = (sa + ta) * z
    sb = (sb + tb) * z
    ta = (le11 + lo11) * 10.0
    tb = (le11 - lo11) * -10.0
    ta = ta * xi + (le10 + lo10) * 9.0
    tb = tb * xi + (le10 - lo10) * 9.0
    ta = ta * xi + (le9 + lo9) * 8.0
    tb = tb * xi + (le9 - lo9) * -8.0
    ta = ta * xi + (le8 + lo8) * 7.0
    tb = tb * xi + (le8 - lo8) * 7.0
    ta = ta * xi + (le7 + lo7) * 6.0
    tb = tb * xi + (le7 - lo7) * -6.0
    ta = ta * xi + (le6 + lo6) * 5.0
    tb = tb * xi + (le6 - lo6) * 5.0
    ta = ta * xi + (le5 + lo5) * 4.0
    tb = tb * xi + (le5 - lo5) * -4.0
    ta = ta * xi + (le4 + lo4) * 3.0
    tb = tb * xi + (le4 - lo4) * 3.0
    ta = ta * xi + (le3 + lo3) * 2.0
    tb = tb * xi + (le3 - lo3) * -2.0
    sa = (sa + ta) * z
    sb = (sb + tb) * z
    return sa, sb
