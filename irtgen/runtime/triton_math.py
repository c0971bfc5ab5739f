"""Special functions as Triton device functions, built only from ``tl`` primitives.

libdevice calls do not run under ``TRITON_INTERPRET=1``, so every function that generated
kernels call beyond tl.exp/log/sqrt/sin/cos/floor/abs/erf lives here, written so that it runs in
the interpreter and compiles for the GPU alike. All are elementwise and dtype-generic (float32 or
float64 in, same dtype out). Generated modules see this module as ``tlm``.

Interpreter rule followed throughout: numeric constants are written inline. A Python number
bound to a local name (``c = 1.0 / 3.0``) becomes a float32 scalar under the interpreter and
rounds float64 arithmetic that uses it.

This module imports Triton; generated modules import it only when a kernel first launches.
"""

from __future__ import annotations

import triton
import triton.language as tl

from irtgen.runtime import triton_polynomials as poly

# -- elementary ------------------------------------------------------------------------------


@triton.jit
def square(x):
    return x * x


@triton.jit
def powi(x, N: tl.constexpr):
    """x**N for a compile-time integer N >= 1, by repeated multiplication."""
    r = x
    for _ in tl.static_range(N - 1):
        r = r * x
    return r


@triton.jit
def pow(a, b):  # noqa: A001 - the name a reader of a formula expects
    """a**b for real a, b (b a tensor): exp(b log|a|), in float64 internally.

    a == 0 gives 0 (b > 0), 1 (b == 0) or inf (b < 0); a < 0 is defined for integer b only
    (NaN otherwise), as for C's pow.
    """
    a64 = a.to(tl.float64)
    b64 = b.to(tl.float64)
    r = tl.exp(b64 * tl.log(tl.abs(a64)))
    r = tl.where(b64 == 0.0, 1.0, r)
    is_int = tl.floor(b64) == b64
    odd = is_int & (tl.floor(b64 * 0.5) * 2.0 != b64)
    neg = tl.where(is_int, tl.where(odd, -r, r), float("nan"))
    r = tl.where(a64 < 0.0, neg, r)
    return r.to(a.dtype)


@triton.jit
def sign(x):
    one = tl.full(x.shape, 1.0, x.dtype)
    return tl.where(x > 0.0, one, tl.where(x < 0.0, -one, 0.0 * one))


@triton.jit
def ceil(x):
    return -tl.floor(-x)


@triton.jit
def log1p(x):
    """log(1 + x): with u = 1 + x, log(u) - ((u - 1) - x)/u cancels the rounding of u."""
    u = 1.0 + x
    r = tl.log(u) - ((u - 1.0) - x) / u
    r = tl.where((u == 0.0) | (u == float("inf")), tl.log(u), r)
    return tl.where(u == 1.0, x, r)


@triton.jit
def expm1(x):
    """exp(x) - 1: for |x| < 1/2, with u = exp(x), (u - 1) * x / log(u) cancels the rounding of
    u; elsewhere u - 1 loses at most a few ulp."""
    u = tl.exp(x)
    um1 = u - 1.0
    r = um1 * x / tl.log(u)
    r = tl.where(u == 1.0, x, r)
    return tl.where(tl.abs(x) < 0.5, r, um1)


@triton.jit
def log_ratio(a, b):
    """log(a/b), through log1p((a - b)/b) when a/b is within [1/2, 3/2] (a - b is then exact)."""
    d = a - b
    return tl.where(tl.abs(d) <= 0.5 * tl.abs(b), log1p(d / b), tl.log(a / b))


@triton.jit
def log1mexp(x):
    """log(1 - exp(x)) for x <= 0, switching at -log 2 between the two accurate forms."""
    return tl.where(x > -0.6931471805599453, tl.log(-expm1(x)), log1p(-tl.exp(x)))


@triton.jit
def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    return tl.maximum(x, 0.0) + log1p(tl.exp(-tl.abs(x)))


@triton.jit
def sigmoid(x):
    """1/(1 + exp(-x)) evaluated with exp(-|x|) so nothing overflows."""
    e = tl.exp(-tl.abs(x))
    r = 1.0 / (1.0 + e)
    return tl.where(x >= 0.0, r, e * r)


# -- trigonometric and hyperbolic ------------------------------------------------------------


@triton.jit
def tan(x):
    return tl.sin(x) / tl.cos(x)


@triton.jit
def atan(x):
    """Arctangent: reduce |x| > 1 by pi/2 - atan(1/x) and |x| > tan(pi/8) by
    pi/4 + atan((x - 1)/(x + 1)); then the Taylor series in t^2 <= 0.172 to 23 terms."""
    ax = tl.abs(x)
    inv = ax > 1.0
    y = tl.where(inv, 1.0 / ax, ax)
    mid = y > 0.41421356237309503
    t = tl.where(mid, (y - 1.0) / (y + 1.0), y)
    t2 = t * t
    p = tl.zeros_like(t2)
    for i in tl.static_range(23):  # coefficient (-1)^k/(2k + 1), k = 22 - i
        p = p * t2 + (1.0 - 2.0 * ((22 - i) % 2)) / (2.0 * (22 - i) + 1.0)
    r = t * p
    r = tl.where(mid, 0.7853981633974483 + r, r)
    r = tl.where(inv, 1.5707963267948966 - r, r)
    return tl.where(x < 0.0, -r, r)


@triton.jit
def asin(x):
    """asin(x) = atan(x / sqrt((1 - x)(1 + x)))."""
    return atan(x / tl.sqrt((1.0 - x) * (1.0 + x)))


@triton.jit
def acos(x):
    """acos(x) = 2 atan(sqrt((1 - x)/(1 + x))), accurate near x = 1."""
    return 2.0 * atan(tl.sqrt((1.0 - x) / (1.0 + x)))


@triton.jit
def sinh(x):
    return 0.5 * (expm1(x) - expm1(-x))


@triton.jit
def cosh(x):
    e = tl.exp(tl.abs(x))
    return 0.5 * e + 0.5 / e


@triton.jit
def tanh(x):
    """tanh(x) = expm1(2|x|)/(expm1(2|x|) + 2), odd."""
    e = expm1(2.0 * tl.abs(x))
    r = tl.where(e == float("inf"), 1.0, e / (e + 2.0))
    return tl.where(x < 0.0, -r, r)


@triton.jit
def asinh(x):
    """asinh(x) = log1p(|x| + x^2/(1 + sqrt(1 + x^2))), log(2|x|) for huge |x|, odd."""
    ax = tl.abs(x)
    r = log1p(ax + ax * ax / (1.0 + tl.sqrt(1.0 + ax * ax)))
    r = tl.where(ax > 1e150, tl.log(ax) + 0.6931471805599453, r)
    return tl.where(x < 0.0, -r, r)


@triton.jit
def acosh(x):
    """acosh(x) = log1p((x - 1) + sqrt((x - 1)(x + 1))), log(2x) for huge x."""
    xm1 = x - 1.0
    r = log1p(xm1 + tl.sqrt(xm1 * (x + 1.0)))
    return tl.where(x > 1e150, tl.log(x) + 0.6931471805599453, r)


@triton.jit
def atanh(x):
    """atanh(x) = log1p(2x/(1 - x))/2."""
    return 0.5 * log1p(2.0 * x / (1.0 - x))


# -- error function family -------------------------------------------------------------------


@triton.jit
def _exp_neg_sq(x):
    """exp(-x^2) without the error of rounding x^2: x = h + l with h a multiple of 1/16, so
    h^2 is exact and x^2 = h^2 + (2h + l) l."""
    h = tl.floor(x * 16.0) * 0.0625
    l = x - h  # noqa: E741
    return tl.exp(-h * h) * tl.exp(-(2.0 * h + l) * l)


@triton.jit
def _exp_neg_half_sq(x):
    """exp(-x^2/2), split as in _exp_neg_sq."""
    h = tl.floor(x * 16.0) * 0.0625
    l = x - h  # noqa: E741
    return tl.exp(-0.5 * h * h) * tl.exp(-(h + 0.5 * l) * l)


@triton.jit
def erfcx_pos(x):
    """exp(x^2) erfc(x) for x >= 0.5 (fitted polynomials; see tools/fit_special_functions.py)."""
    w = 8.0 / x
    tail = poly.erfcx_tail(w) * w * 0.070523697943469541  # h(w)/(x sqrt(pi)) = h w/(8 sqrt(pi))
    r = tl.where(x < 8.0, poly.erfcx_3(x), tail)
    r = tl.where(x < 4.0, poly.erfcx_2(x), r)
    r = tl.where(x < 2.5, poly.erfcx_1(x), r)
    return tl.where(x < 1.5, poly.erfcx_0(x), r)


@triton.jit
def erfc(x):
    """Complementary error function with full relative accuracy in the upper tail."""
    ax = tl.abs(x)
    big = erfcx_pos(tl.maximum(ax, 0.5)) * _exp_neg_sq(ax)
    r = tl.where(x > 0.0, big, 2.0 - big)
    return tl.where(ax < 0.5, 1.0 - tl.math.erf(x), r)


@triton.jit
def ndtr(x):
    """Standard normal CDF; in the tails erfcx(|t|) exp(-x^2/2)/2 with t = x/sqrt(2), so the
    exponential is taken of x itself and the lower tail keeps full relative accuracy."""
    t = x * 0.70710678118654752
    at = tl.abs(t)
    big = 0.5 * erfcx_pos(tl.maximum(at, 0.5)) * _exp_neg_half_sq(tl.abs(x))
    r = tl.where(x < 0.0, big, 1.0 - big)
    return tl.where(at < 0.5, 0.5 + 0.5 * tl.math.erf(t), r)


@triton.jit
def ndtri(p):
    """Inverse standard normal CDF: fitted starting value, then one Halley step on ndtr.

    Central region |p - 1/2| <= 0.425: z = q R(q^2). Tails: a polynomial in
    r = sqrt(-log(min(p, 1 - p))). The Halley step solves ndtr(z) = p in the tail z lies in
    (via 1 - p, exact for p > 1/2), which gives full precision from the ~1e-8 start.
    """
    q = p - 0.5
    central = q * poly.ndtri_central(q * q)
    pp = tl.minimum(p, 1.0 - p)
    r = tl.sqrt(-tl.log(pp))
    tail = tl.where(r < 8.0, poly.ndtri_tail_1(r), poly.ndtri_tail_2(r))
    tail = tl.where(r < 4.0, poly.ndtri_tail_0(r), tail)
    tail = tl.where(p > 0.5, tail, -tail)
    z = tl.where(tl.abs(q) <= 0.425, central, tail)
    # Halley: e = ndtr(z) - p without cancellation: erf(z/sqrt 2)/2 - (p - 1/2) in the centre,
    # otherwise in the tail z lies in (1 - p is exact for p > 1/2); u = e / phi(z)
    e = tl.where(z < 0.0, ndtr(z) - p, (1.0 - p) - ndtr(-z))
    e = tl.where(tl.abs(q) <= 0.425, 0.5 * tl.math.erf(z * 0.70710678118654752) - q, e)
    phi = 0.3989422804014327 * _exp_neg_half_sq(tl.abs(z))
    u = e / phi
    z1 = z - u / (1.0 + 0.5 * z * u)
    z = tl.where(phi > 1e-300, z1, z)  # a denormal density has too few bits for a step
    z = tl.where(p <= 0.0, -float("inf"), z)
    z = tl.where(p >= 1.0, float("inf"), z)
    return tl.where((p < 0.0) | (p > 1.0), float("nan"), z)


@triton.jit
def erfinv(y):
    """erfinv(y) = ndtri((1 + y)/2)/sqrt(2)."""
    return ndtri(0.5 * y + 0.5) * 0.70710678118654752


# -- random numbers --------------------------------------------------------------------------


@triton.jit
def uniform(seed, offset, like):
    """Uniform in (0, 1) with like's dtype from Philox(seed, offset): (k + 1/2) 2^-bits with
    k of 52 (float64) or 23 (float32) random bits -- never 0 or 1, exact in the dtype."""
    if like.dtype == tl.float64:
        r0, r1, _r2, _r3 = tl.randint4x(seed, offset)
        hi = (r0 >> 6).to(tl.float64)  # 26 bits
        lo = (r1 >> 6).to(tl.float64)  # 26 bits
        u = (hi * 67108864.0 + lo + 0.5) * 2.220446049250313e-16
    else:
        r = tl.randint(seed, offset)
        u = ((r >> 9).to(tl.float32) + 0.5) * 1.1920928955078125e-07
    return u


@triton.jit
def atanh_series(u2):
    """sum_j u2^j/(2j + 3), j = 0..18: (atanh(u) - u)/u^3 for u^2 = u2 <= 1/9."""
    s = u2 * 0.0 + 0.02564102564102564  # 1/39
    for j in tl.static_range(18):
        s = s * u2 + 1.0 / (2 * (17 - j) + 3)
    return s


@triton.jit
def log1pmx(t):
    """log(1 + t) - t: for t in [-1/2, 1] as -t u + 2 u^3 sum_j u^(2j)/(2j + 3) with
    u = t/(2 + t) (log(1 + t) = 2 atanh u; u^2 <= 1/9, no cancellation), else directly."""
    tc = tl.minimum(tl.maximum(t, -0.5), 1.0)
    u = tc / (2.0 + tc)
    u2 = u * u
    near = -tc * u + 2.0 * u * u2 * atanh_series(u2)
    return tl.where((t >= -0.5) & (t <= 1.0), near, log1p(t) - t)
