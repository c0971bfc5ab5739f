"""The incomplete beta family as scalar functions (irtgen.scalar.source): the regularized
incomplete beta function I_x(a, b), its implicit-gradient ratios (dI/da)/(dI/dx) and
(dI/db)/(dI/dx), log B(a, b) and the Beta log density.

Every function takes y = 1 - x besides x: the smaller of the two is the exact one (x <= 1/2: x
and 1 - x are used, else 1 - y and y). With r = a + b, mu = a/r, rho = ab/r and
d = x r - a = x b - y a (an exact product and sum, _deviation):

* log P = log(x^a y^b / B(a, b)) = E + log(rho/(2 pi))/2 - (w(a) + w(b) - w(r)), where
  E = a log(x/mu) + b log(y/(1-mu)) = a log1pmx(d/a) + b log1pmx(-d/b) <= 0 and w is the
  Stirling remainder lgamma(z) - (z - 1/2) log z + z - log(2 pi)/2. Nothing cancels for large a, b
  near the mode, where the terms of a log x + b log y - log B(a, b) are ~10^5 times the result.
* Regimes, one per element with a real ``if``/``else`` (I = 1 - I_y(b, a) where the method runs
  on the mirror image; the ratios swap and change sign):
  - Temme's uniform expansion (DLMF 8.18) for rho >= 2000 and |xi| <= 0.1,
    xi = -sqrt(-2E/rho), oriented x <= mu: I = erfc(sqrt(-E))/2 - P sum_k G_k(xi) rho^-(k+1). The
    ratios come from the same expansion applied to dI/da = int_0^x (log t - psi(a) + psi(r))
    t^(a-1) (1-t)^(b-1) dt / B(a, b), whose erfc term vanishes (the integral over (0, 1) is 0).
    The Maclaurin tables of G_k and of the ratios' L_k are tools/render_beta_temme.py's.
  - the power series x^a/B sum (1-b)_n x^n/(n! (a+n)) (DLMF 8.17.7) for x <= 0.7 and b x <= 1
    (b x <= 1.5 when a <= 1/2), or that of I_y(b, a) under the mirrored conditions; there, for
    b <= 1/2, 1 - I_y(b, a) = -expm1(log I_y(b, a)) with every term of the log O(b).
  - otherwise the continued fraction DLMF 8.17.22 in its even contraction, for x <= (a+1)/(a+b+2)
    or the mirror image, written so that 1 + d_(2m+1) never cancels (_continued_fraction), with
    forward-mode derivatives of its partial numerators in a and b (as Boik and Robison-Cox 1998
    do for the plain fraction).
* The ratios (dI/da)/(dI/dx), (dI/db)/(dI/dx) never form the density: with I = f F, f = dI/dx,
  ratio = dF/da + F dlog f/da, and F (series or fraction over f) has no prefactor; the digamma
  differences in dlog f/da come from chi(z) - chi(z + t), chi = log - psi, without cancellation.

Each element runs its own ``while`` loop; every element needs at most ~110 terms (series at
x = 0.7, or the fraction next to mu at rho ~ 2000), loops are capped at MAX_ITER terms and an
element that does not converge gives NaN. Invalid arguments (a, b <= 0 or infinite, x or y
outside [0, 1], NaN) give NaN.

d = x (a + b) - a is the sum of the exact products of Veltkamp halves, added with error-free
steps, rather than fl(x (a + b)) plus its rounding error from an FMA: numba's ``tl.fma`` is not
fused, and a compiler contracting a multiply and an add (ptxas does) could fuse the product whose
rounding the correction compensates; with every product exact, contraction cannot change
anything. lgamma(1 + a) (a <= 1/2, in the series' log I) is gamma.lgamma1p.

Public functions: betainc, betainc_ratios (both ratios from one evaluation), betainc_da_ratio,
betainc_db_ratio, betaln, log_beta_density; each but betaln also as ``*_at`` taking
log_beta_norm(a, b), the part of log P that depends on a and b alone (formulas of a family with
parameters a, b compute it once per parameter value). The Temme sums at the end are rendered by
tools/render_beta_temme.py.
"""

from __future__ import annotations

from irtgen.scalar import elementary as el
from irtgen.scalar import gamma as ga
from irtgen.scalar.source import scalar, tl

MAX_ITER = 300  # series terms / contracted continued-fraction steps; the regimes need <= ~110

# -- elementary pieces -----------------------------------------------------------------------


@scalar
def _stirlerr_pos(z):
    """w(z) = lgamma(z) - (z - 1/2) log z + z - log(2 pi)/2 for z > 0: the recurrence
    w(z) = w(z + 1) + (z + 1/2) log1p(1/z) - 1 lifts z to >= 10 (for z >= 1 the step is
    q^2 sum_j q^(2j)/(2j + 3), q = 1/(2z + 1), without cancellation), then Stirling's series
    (gamma.stirlerr)."""
    acc = 0.0 * z
    while z < 10.0:
        if z >= 1.0:
            q = 1.0 / (2.0 * z + 1.0)
            q2 = q * q
            acc = acc + q2 * el.atanh_series(q2)
        else:
            acc = acc + ((z + 0.5) * el.log1p(1.0 / z) - 1.0)
        z = z + 1.0
    return acc + ga.stirlerr(z)


@scalar
def _chi_diff(z, t):
    """chi(z) - chi(z + t) for z > 0, t >= 0, chi(z) = log z - psi(z), with relative accuracy
    also for t << z: steps t/(z(z+t)(z+t+1)) - log1pmx(t/(z(z+t+1))) (both >= 0) lift z to
    >= 10, then t/(2z(z+t)) + (1 - q) sum_k c_k z^-2k (1 + q + ... + q^(k-1)), q = (z/(z+t))^2,
    c_k = B_2k/(2k)."""
    acc = 0.0 * z
    while z < 10.0:
        zt = z + t
        acc = acc + (t / (z * zt * (zt + 1.0)) - el.log1pmx(t / (z * (zt + 1.0))))
        z = z + 1.0
    zt = z + t
    ratio = z / zt
    q = ratio * ratio
    w = 1.0 / (z * z)
    g = 1.0 + 0.0 * z
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


@scalar
def _lgamma_step(z, t):
    """lgamma(z + t) - lgamma(z) for z > 0, 0 <= t <= 1/2, with relative accuracy: the
    recurrence lifts z to >= 10, where the Stirling form has no cancellation."""
    acc = 0.0 * z
    while z < 10.0:
        acc = acc - el.log1p(t / z)
        z = z + 1.0
    big = (z - 0.5) * el.log1p(t / z) + t * tl.log(z + t) - t
    return acc + big + (ga.stirlerr(z + t) - ga.stirlerr(z))


@scalar
def _deviation(a, b, x, y):
    """d = x (a + b) - a = b - y (a + b) to a few ulp, from the smaller t of x and y: a + b as
    an exact sum r + r_lo, t r as hh + hl + lh + ll, the exact products of Veltkamp halves,
    summed with error-free steps (hh - a is exact where d is small). Every product is exact, so
    FMA contraction cannot change the result and no fused multiply-add is needed."""
    r = a + b
    rb = r - a
    r_lo = (a - (r - rb)) + (b - rb)
    use_x = x <= y
    if use_x:
        t = x
        base = a
    else:
        t = y
        base = b
    if r > 1e290:  # the split would overflow; plain rounding is fine there
        hh = t * r
        hl = 0.0 * t
        lh = hl
        ll = hl
    else:
        th, tl_ = el.split(t)
        rh, rl = el.split(r)
        hh = th * rh
        hl = th * rl
        lh = tl_ * rh
        ll = tl_ * rl
    s1, e1 = el.two_sum(hh - base, hl)
    s2, e2 = el.two_sum(s1, lh)
    dev = s2 + (((e1 + e2) + ll) + t * r_lo)  # t (r + r_lo) - base
    if use_x:
        d = dev
    else:
        d = -dev
    return d


@scalar
def _exponent(a, b, x, y, d):
    """u = x/mu - 1, v = y/(1-mu) - 1, log x, log y, log(x/mu), log(y/(1-mu)) and
    E = a log(x/mu) + b log(y/(1-mu)) <= 0 = a (log(x/mu) - u) + b (log(y/(1-mu)) - v)
    (a u + b v = 0), each log taken where it is accurate: log x and log y from the smaller of
    the two, log1p(u) while 1 + u = x/mu is not small (u is exact, as d is)."""
    u = d / a
    v = -d / b
    if x <= y:
        log_x = tl.log(x)
        log_y = el.log1p(-x)
    else:
        log_x = el.log1p(-y)
        log_y = tl.log(y)
    if u >= -0.9:
        lxm = el.log1p(u)
    else:
        lxm = log_x + el.log1p(b / a)
    if v >= -0.9:
        lym = el.log1p(v)
    else:
        lym = log_y + el.log1p(a / b)
    if (u >= -0.5) and (u <= 1.0):
        ea = el.log1pmx(u)
    else:
        ea = lxm - u
    if (v >= -0.5) and (v <= 1.0):
        eb = el.log1pmx(v)
    else:
        eb = lym - v
    return u, v, log_x, log_y, lxm, lym, tl.minimum(a * ea + b * eb, 0.0)


@scalar
def log_beta_norm(a, b):
    """N(a, b) = log(ab/(2 pi (a+b)))/2 - (w(a) + w(b) - w(a+b)), symmetric in a and b: the part
    of log P = log(x^a y^b / B(a, b)) = E + N(a, b) that depends on a and b alone (a, b > 0
    finite; the callers check). Formulas with fixed a, b compute it once per parameter value and
    call the ``*_at`` functions below."""
    r = a + b
    dw = _stirlerr_pos(a) + _stirlerr_pos(b) - _stirlerr_pos(r)
    return 0.5 * (tl.log(a * b / r) - 1.8378770664093455) - dw


# -- the three methods, for x <= mu (or where they converge) ---------------------------------


@scalar
def _temme(a, b, x, y, u, v, lxm, lym, e, log_p, ca, cb, NEED_GRAD):
    """Temme's expansion for x <= mu, ab/(a+b) >= 2000, |xi| <= 0.1: I (NEED_GRAD 0) or
    (ratio_a, ratio_b) (NEED_GRAD 1, a literal), as (value, ratio_a, ratio_b)."""
    r = a + b
    rho = a * b / r
    w = tl.sqrt(-e)
    xi = -w * 1.4142135623730951 / tl.sqrt(rho)
    nu = (b - a) / r
    z = 1.0 / rho
    sg = _temme_g(xi, nu, z)
    if NEED_GRAD:
        sa, sb = _temme_l(xi, nu, z)
        # the k = 0 terms in closed form: (1 - mu) log(1 + u)/u and -mu log(1 + v)/v
        if u == 0.0:
            la0 = b / r
        else:
            la0 = (lxm / u) * (b / r)
        if v == 0.0:
            lb0 = -(a / r)
        else:
            lb0 = -(lym / v) * (a / r)
        xy = x * y
        ratio_a = -xy * (ca * sg + (sa + la0) * z)
        ratio_b = -xy * (cb * sg + (sb + lb0) * z)
        value = ratio_a
    else:
        value = 0.5 * el.erfc(w) - tl.exp(log_p) * sg
        ratio_a = value
        ratio_b = value
    return value, ratio_a, ratio_b


@scalar
def _series(a, b, x, y, log_x, log_y, log_p, cb, NEED_GRAD):
    """Power series I = x^a/B sum_n (1-b)_n x^n/(n! (a+n)) (DLMF 8.17.7): (value, ratio_a,
    ratio_b, log_value), the ratios with NEED_GRAD; log_value = log I in a form whose terms are
    all O(a) for a <= 1/2 (so that 1 - I = -expm1(log I) keeps relative accuracy; computed for
    a <= 1/2 only). All NaN where the series does not converge in MAX_ITER terms."""
    s1 = 0.0 * x  # sum_{n>=1} p_n/(a+n), p_n = (1-b)_n x^n/n!
    t = s1  # sum_{n>=1} n p_n/(a+n)^2
    sb = s1  # sum_{n>=1} (dp_n/db)/(a+n)
    p = s1 + 1.0
    dp = s1
    more = x == x
    n = 0
    while more and (n < MAX_ITER):
        n += 1
        if NEED_GRAD:
            dp = (dp * (n - b) - p) * x / n
        p = p * (n - b) * x / n
        term = p / (a + n)
        s1 = s1 + term
        s = 1.0 / a + s1
        more = tl.abs(term) > 1e-17 * tl.abs(s)
        if NEED_GRAD:
            dterm = dp / (a + n)
            tterm = term * n / (a + n)
            t = t + tterm
            sb = sb + dterm
            more = more or (tl.abs(tterm) > 1e-17 * (tl.abs(t) + tl.abs(s)))
            more = more or (tl.abs(dterm) > 1e-17 * (tl.abs(sb) + tl.abs(s)))
    s = 1.0 / a + s1
    if NEED_GRAD:
        # m = log x - psi(a + 1) + psi(a + b) and psi(a + b) - psi(b) as log ratios plus chi
        # differences (chi(a+1) - chi(a+b) taken in the direction of increasing argument)
        if b >= 1.0:
            chi = _chi_diff(a + 1.0, b - 1.0)
        else:
            chi = -_chi_diff(a + b, 1.0 - b)
        m = log_x + el.log1p((b - 1.0) / (a + 1.0)) + chi
        psi_rb = el.log1p(a / b) + cb
        scale = x * tl.exp((1.0 - b) * log_y)
        ratio_a = scale * (m * s + t / a)
        ratio_b = scale * (sb + s * psi_rb)
        value = ratio_a
        log_value = ratio_a
    else:
        value = tl.exp(log_p - b * log_y) * s
        ratio_a = value
        ratio_b = value
        if a <= 0.5:
            # log(a B(a, b)) = lgamma(1 + a) - (lgamma(a + b) - lgamma(b))
            log_ab = ga.lgamma1p(a) - _lgamma_step(b, a)
            log_value = a * log_x - log_ab + el.log1p(a * s1)
        else:
            log_value = value
    if more:
        value = 0.0 * x + float("nan")
        ratio_a = value
        ratio_b = value
        log_value = value
    return value, ratio_a, ratio_b, log_value


@scalar
def _cf_odd(a, b, x, m):
    """d_(2m+1) of DLMF 8.17.22 and its a-, b-derivatives (m a float)."""
    d = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))
    da = d * (m / ((a + m) * (a + 2.0 * m)) + (m + 1.0 - b) / ((a + b + m) * (a + 2.0 * m + 1.0)))
    return d, da, d / (a + b + m)


@scalar
def _cf_even(a, b, x, m):
    """d_(2m) of DLMF 8.17.22 and its a-, b-derivatives (m >= 1 a float)."""
    den = (a + 2.0 * m - 1.0) * (a + 2.0 * m)
    d = m * (b - m) * x / den
    return d, -d * (1.0 / (a + 2.0 * m - 1.0) + 1.0 / (a + 2.0 * m)), m * x / den


@scalar
def _cf_one_plus_odd(a, b, x, y, d, m):
    """1 + d_(2m+1) = ((a+m)(1-d) + m(a(3-x) + m(4-x) + 1)) / ((a+2m)(a+2m+1)), all terms
    positive, and its a-, b-derivatives (dd/da = -y, dd/db = x)."""
    n = (a + m) * (1.0 - d) + m * (a * (3.0 - x) + m * (4.0 - x) + 1.0)
    q = (a + 2.0 * m) * (a + 2.0 * m + 1.0)
    w = n / q
    na = (1.0 - d) + (a + m) * y + m * (3.0 - x)
    return w, (na - w * (2.0 * a + 4.0 * m + 1.0)) / q, -(a + m) * x / q


@scalar
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


@scalar
def _continued_fraction(a, b, x, y, d, lxm, lym, log_p, ca, cb, NEED_GRAD):
    """DLMF 8.17.22, I = (P/a) K with 1/K = 1 + d1/(1 + d2/(1 + ...)), in its even contraction
    1/K = 1 + d1/W1, W1 = 1 + d2 - d2 d3/W2, W_m = (1 + d_(2m-1)) + d_(2m) - d_(2m) d_(2m+1)/W_(m+1),
    so K = W1/(W1 + d1) with 1 + d1 and each 1 + d_odd formed without cancellation (the plain
    fraction loses ~K ulp as x -> 1); W2 by modified Lentz with d log W2/da, db carried forward
    (NEED_GRAD).
    Returns (value, ratio_a, ratio_b), NaN where MAX_ITER steps do not converge."""
    zero = 0.0 * x
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
    more = x == x
    j = 0
    while more and (j < MAX_ITER):
        j += 1
        m1 = zero + (j + 1)
        e, ea, eb = _cf_even(a, b, x, m1)
        o, oa, ob = _cf_odd(a, b, x, m1)
        num = -e * o
        w, wa, wb = _cf_one_plus_odd(a, b, x, y, d, m1)
        e2, e2a, e2b = _cf_even(a, b, x, m1 + 1.0)
        den = w + e2
        dn = 1.0 / (den + num * dd)
        cn = den + num / c
        step = cn * dn
        f = f * step
        more = tl.abs(step - 1.0) > 1e-17
        if NEED_GRAD:
            num_a = -(ea * o + e * oa)
            num_b = -(eb * o + e * ob)
            den_a = wa + e2a
            den_b = wb + e2b
            dn_a = -dn * dn * (den_a + num_a * dd + num * da)
            dn_b = -dn * dn * (den_b + num_b * dd + num * db)
            cn_a = den_a + (num_a - num * ca_ / c) / c
            cn_b = den_b + (num_b - num * cb_ / c) / c
            ga = ga + cn_a / cn + dn_a / dn
            gb = gb + cn_b / cn + dn_b / dn
            da = dn_a
            db = dn_b
            ca_ = cn_a
            cb_ = cn_b
            # stop when the ratios themselves have converged
            _k, nra, nrb = _cf_brackets(f, ga, gb, d2, d2a, d2b, d3, d3a, d3b, w0, w0a, w0b, la, lb)
            more = more or (tl.abs(nra - bra) > 1e-17 * tl.abs(nra))
            more = more or (tl.abs(nrb - brb) > 1e-17 * tl.abs(nrb))
            bra = nra
            brb = nrb
        dd = dn
        c = cn
    t = d2 * d3 / f
    k = (1.0 + d2 - t) / (w0 + d2 - t)
    if NEED_GRAD:
        scale = x * y * k / a
        ratio_a = scale * bra
        ratio_b = scale * brb
        value = ratio_a
    else:
        value = tl.exp(log_p) * k / a
        ratio_a = value
        ratio_b = value
    if more:
        value = zero + float("nan")
        ratio_a = value
        ratio_b = value
    return value, ratio_a, ratio_b


# -- dispatch --------------------------------------------------------------------------------


@scalar
def _inner(a, b, x, y, norm, NEED_GRAD, HAVE_NORM):
    """I_x(a, b) (NEED_GRAD 0) or the two ratios (NEED_GRAD 1) as (value, ratio_a, ratio_b),
    for 0 < a, b < inf and 0 < x, y < 1, norm = log_beta_norm(a, b) (computed here, where it
    is used, unless HAVE_NORM): one regime per element (module docstring).
    NEED_GRAD is a literal at every call site: a constexpr for Triton, which compiles only the
    computations that it asks for."""
    # the smaller of x, y is the exact one
    if x <= y:
        y = 1.0 - x
    else:
        x = 1.0 - y
    d = _deviation(a, b, x, y)
    r = a + b
    rho = a * b / r
    # E is the same in both orientations; the pieces trade places (u <-> v, ...) when swapped
    u0, v0, lx0, ly0, lxm0, lym0, e = _exponent(a, b, x, y, d)
    # regimes (module docstring; Temme for rho >= 2000 and xi^2 = -2E/rho <= 0.01):
    # method 0 Temme, 1 series, 2 continued fraction; swap: it runs on I_y(b, a)
    if (rho >= 2000.0) and (-2.0 * e <= 0.01 * rho):
        method = 0
        swap = d > 0.0
    elif (x <= 0.7) and ((b * x <= 1.0) or ((a <= 0.5) and (b * x <= 1.5))):
        method = 1
        swap = False
    elif (y <= 0.7) and ((a * y <= 1.0) or ((b <= 0.5) and (a * y <= 1.5))):
        method = 1
        swap = True
    else:
        method = 2
        swap = x * (r + 2.0) > a + 1.0
    if swap:
        aa = b
        bb = a
        xx = y
        yy = x
        dd = -d
        u = v0
        v = u0
        log_x = ly0
        log_y = lx0
        lxm = lym0
        lym = lxm0
    else:
        aa = a
        bb = b
        xx = x
        yy = y
        dd = d
        u = u0
        v = v0
        log_x = lx0
        log_y = ly0
        lxm = lxm0
        lym = lym0
    if not HAVE_NORM:
        norm = log_beta_norm(a, b)
    log_p = e + norm  # log_beta_norm is symmetric: the same for the swapped pair
    ca = 0.0 * x
    cb = ca
    if NEED_GRAD:
        cb = _chi_diff(bb, aa)  # chi(b) - chi(a + b), chi(z) = log z - psi(z)
        if method != 1:
            ca = _chi_diff(aa, bb)
    if method == 0:
        value, ra, rb = _temme(aa, bb, xx, yy, u, v, lxm, lym, e, log_p, ca, cb, NEED_GRAD)
        log_value = value
    elif method == 1:
        value, ra, rb, log_value = _series(aa, bb, xx, yy, log_x, log_y, log_p, cb, NEED_GRAD)
    else:
        value, ra, rb = _continued_fraction(aa, bb, xx, yy, dd, lxm, lym, log_p, ca, cb, NEED_GRAD)
        log_value = value
    out_a = ra
    out_b = rb
    if swap:
        if NEED_GRAD:
            out_a = -rb
            out_b = -ra
        elif (method == 1) and (aa <= 0.5):
            # 1 - I_y(b, a) from log I_y(b, a), whose terms are all small for b <= 1/2
            value = -el.expm1(log_value)
        else:
            value = 1.0 - value
    return value, out_a, out_b


@scalar
def _valid(a, b, x, y):
    """0 < a, b < inf and 0 <= x, y <= 1 (False for NaN)."""
    ok = (a > 0.0) and (b > 0.0) and (a < float("inf")) and (b < float("inf"))
    return ok and (x >= 0.0) and (x <= 1.0) and (y >= 0.0) and (y <= 1.0)


@scalar
def _betainc_core(a, b, x, y, norm, NEED_GRAD, HAVE_NORM):
    """(I, ratio_a, ratio_b) with the edge values: x = 0 or y = 0 give I = 0 or 1 and ratios 0,
    invalid arguments NaN. ``norm`` is log_beta_norm(a, b) if HAVE_NORM, else _inner computes
    it where it is used (fewer live values on the GPU). NEED_GRAD and HAVE_NORM are literals at
    every call site (constexprs for Triton)."""
    if _valid(a, b, x, y):
        if (x > 0.0) and (y > 0.0):
            value, ra, rb = _inner(a, b, x, y, norm, NEED_GRAD, HAVE_NORM)
        else:
            ra = 0.0 * x
            rb = ra
            value = tl.where((y == 0.0) and (x != 0.0), ra + 1.0, ra)
    else:
        value = 0.0 * x + float("nan")
        ra = value
        rb = value
    return value, ra, rb


# -- public functions ------------------------------------------------------------------------


@scalar
def betainc_at(a, b, x, y, norm):
    """betainc with norm = log_beta_norm(a, b) given."""
    value, _ra, _rb = _betainc_core(a, b, x, y, norm, 0, 1)
    return value


@scalar
def betainc(a, b, x, y):
    """Regularized incomplete beta I_x(a, b) = int_0^x t^(a-1) (1-t)^(b-1) dt / B(a, b), given
    y = 1 - x as well; full relative accuracy in both tails."""
    value, _ra, _rb = _betainc_core(a, b, x, y, 0.0 * a, 0, 0)
    return value


@scalar
def betainc_ratios_at(a, b, x, y, norm):
    """betainc_ratios with norm = log_beta_norm(a, b) given."""
    _value, ra, rb = _betainc_core(a, b, x, y, norm, 1, 1)
    return ra, rb


@scalar
def betainc_ratios(a, b, x, y):
    """((dI/da)/(dI/dx), (dI/db)/(dI/dx)) of I = I_x(a, b) from one evaluation, without forming
    the density (it cancels)."""
    return betainc_ratios_at(a, b, x, y, log_beta_norm(a, b))


@scalar
def betainc_da_ratio_at(a, b, x, y, norm):
    """betainc_da_ratio with norm = log_beta_norm(a, b) given."""
    ra, _rb = betainc_ratios_at(a, b, x, y, norm)
    return ra


@scalar
def betainc_da_ratio(a, b, x, y):
    """(dI_x(a, b)/da) / (dI_x(a, b)/dx), without forming either (the density cancels)."""
    return betainc_da_ratio_at(a, b, x, y, log_beta_norm(a, b))


@scalar
def betainc_db_ratio_at(a, b, x, y, norm):
    """betainc_db_ratio with norm = log_beta_norm(a, b) given."""
    _ra, rb = betainc_ratios_at(a, b, x, y, norm)
    return rb


@scalar
def betainc_db_ratio(a, b, x, y):
    """(dI_x(a, b)/db) / (dI_x(a, b)/dx) = -betainc_da_ratio(b, a, y, x)."""
    return betainc_db_ratio_at(a, b, x, y, log_beta_norm(a, b))


@scalar
def betaln(a, b):
    """log B(a, b) = -a log1p(b/a) - b log1p(a/b) - log(ab/(2 pi (a+b)))/2 + w(a) + w(b) - w(a+b)
    (w the Stirling remainder): no cancellation for huge or very unequal a, b. -inf where a or b
    is inf, NaN unless a, b > 0."""
    if (a > 0.0) and (b > 0.0):
        if (a < float("inf")) and (b < float("inf")):
            out = -a * el.log1p(b / a) - b * el.log1p(a / b) - log_beta_norm(a, b)
        else:
            out = -(a + b)  # -inf
    else:
        out = 0.0 * a + float("nan")
    return out


@scalar
def log_beta_density(a, b, x, y):
    """log(x^(a-1) y^(b-1) / B(a, b)) = log dI_x(a, b)/dx with y = 1 - x, accurate for large a, b
    near the mode; x = 0 or y = 0 give the limits (+inf, a finite value, or -inf)."""
    return log_beta_density_at(a, b, x, y, log_beta_norm(a, b))


@scalar
def log_beta_density_at(a, b, x, y, norm):
    """log_beta_density with norm = log_beta_norm(a, b) given."""
    if _valid(a, b, x, y):
        if x == 0.0:
            # the density is x^(a-1)/B(a, b): inf, b (a = 1) or 0
            out = tl.where(a < 1.0, float("inf"), tl.where(a == 1.0, tl.log(b), -float("inf")))
        elif y == 0.0:
            out = tl.where(b < 1.0, float("inf"), tl.where(b == 1.0, tl.log(a), -float("inf")))
        else:
            if x <= y:
                y = 1.0 - x
            else:
                x = 1.0 - y
            d = _deviation(a, b, x, y)
            _u, _v, log_x, log_y, _lxm, _lym, e = _exponent(a, b, x, y, d)
            out = (e + norm) - log_x - log_y
    else:
        out = 0.0 * x + float("nan")
    return out


# -- Temme's sums, rendered by tools/render_beta_temme.py ------------------------------------


@scalar
def _temme_g(xi, nu, z):
    """sum_k z^(k+1) sum_j G_k[j] xi^j with G_k[j] = m_kj h_(j+1+2k)(nu), the table h of
    tools/render_beta_temme.py unrolled (a scalar function cannot loop over a float table)."""
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


@scalar
def _temme_l(xi, nu, z):
    """sum_(k>=1) z^k sum_j L_k[j] xi^j, L_k[j] = m_kj l_(j+1+2k)(nu), and its mirror image
    L_b(xi; nu) = -L_a(-xi; -nu): the table l of tools/render_beta_temme.py unrolled, split into
    even and odd parts in nu."""
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
