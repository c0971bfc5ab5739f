"""Elementary special functions as scalar functions (irtgen.scalar.source): the one source of
what generated kernels call as ``tlm.<name>`` beyond the ``tl`` primitives.

The algorithms, regimes, thresholds and coefficients are those of the block-form Triton device
functions they replace (irtgen.runtime.triton_math); here each element takes one regime with a
real ``if``/``else``. Arguments and results are of one float dtype (CPU kernels compute in
float64; Triton kernels in the input dtype, special functions in float64). Polynomial pieces
live in irtgen.scalar.polynomials (generated; see tools/render_scalar_tables.py).
"""

from __future__ import annotations

from irtgen.scalar import polynomials as poly
from irtgen.scalar.source import scalar, tl

# -- elementary ------------------------------------------------------------------------------


@scalar
def square(x):
    return x * x


@scalar
def powi(x, n):
    """x**n for an integer n >= 1, by repeated multiplication (the printer passes a literal)."""
    r = x
    for _ in range(n - 1):
        r = r * x
    return r


@scalar
def pow(a, b):  # noqa: A001 - the name a reader of a formula expects
    """a**b for real a, b: exp(b log|a|).

    a == 0 gives 0 (b > 0), 1 (b == 0) or inf (b < 0); a < 0 is defined for integer b only
    (NaN otherwise), as for C's pow.
    """
    # values derive from r, not from a or b: the two may differ in dtype (a float64 draw, a
    # float32 parameter); r is NaN at a = 0, b = 0 (0 * log 0), so b == 0 takes 1 by tl.where
    r = tl.where(b == 0.0, 1.0, tl.exp(b * tl.log(tl.abs(a))))
    if a < 0.0:
        if tl.floor(b) == b:
            if tl.floor(b * 0.5) * 2.0 != b:
                r = -r
        else:
            r = r + float("nan")
    return r


@scalar
def sign(x):
    """1, -1 or 0 (of x's sign; -0 for -0); NaN for NaN."""
    return tl.where(x > 0.0, 1.0, tl.where(x < 0.0, -1.0, x * 0.0))


@scalar
def ceil(x):
    return -tl.floor(-x)


@scalar
def log1p(x):
    """log(1 + x): with u = 1 + x, log(u) - ((u - 1) - x)/u cancels the rounding of u."""
    u = 1.0 + x
    if u == 1.0:
        r = x
    elif (u == 0.0) or (u == float("inf")):
        r = tl.log(u)
    else:
        r = tl.log(u) - ((u - 1.0) - x) / u
    return r


@scalar
def expm1(x):
    """exp(x) - 1: for |x| < 1/2, with u = exp(x), (u - 1) * x / log(u) cancels the rounding of
    u; elsewhere u - 1 loses at most a few ulp."""
    u = tl.exp(x)
    if tl.abs(x) < 0.5:
        if u == 1.0:
            r = x
        else:
            r = (u - 1.0) * x / tl.log(u)
    else:
        r = u - 1.0
    return r


@scalar
def log_ratio(a, b):
    """log(a/b), through log1p((a - b)/b) when a/b is within [1/2, 3/2] (a - b is then exact)."""
    d = a - b
    if tl.abs(d) <= 0.5 * tl.abs(b):
        r = log1p(d / b)
    else:
        r = tl.log(a / b)
    return r


@scalar
def log1mexp(x):
    """log(1 - exp(x)) for x <= 0, switching at -log 2 between the two accurate forms."""
    if x > -0.6931471805599453:
        r = tl.log(-expm1(x))
    else:
        r = log1p(-tl.exp(x))
    return r


@scalar
def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    return tl.maximum(x, 0.0) + log1p(tl.exp(-tl.abs(x)))


@scalar
def sigmoid(x):
    """1/(1 + exp(-x)) evaluated with exp(-|x|) so nothing overflows."""
    e = tl.exp(-tl.abs(x))
    r = 1.0 / (1.0 + e)
    if x < 0.0:
        r = e * r
    return r


# -- trigonometric and hyperbolic ------------------------------------------------------------


@scalar
def tan(x):
    return tl.sin(x) / tl.cos(x)


@scalar
def atan(x):
    """Arctangent: reduce |x| > 1 by pi/2 - atan(1/x) and |x| > tan(pi/8) by
    pi/4 + atan((x - 1)/(x + 1)); then the Taylor series in t^2 <= 0.172 to 23 terms
    (coefficients (-1)^k/(2k + 1), k = 22 .. 0)."""
    ax = tl.abs(x)
    if ax > 1.0:
        y = 1.0 / ax
    else:
        y = ax
    if y > 0.41421356237309503:
        t = (y - 1.0) / (y + 1.0)
    else:
        t = y
    t2 = t * t
    p = t2 * 0.022222222222222223 - 0.023255813953488372
    p = p * t2 + 0.024390243902439025
    p = p * t2 - 0.02564102564102564
    p = p * t2 + 0.02702702702702703
    p = p * t2 - 0.02857142857142857
    p = p * t2 + 0.030303030303030304
    p = p * t2 - 0.03225806451612903
    p = p * t2 + 0.034482758620689655
    p = p * t2 - 0.037037037037037035
    p = p * t2 + 0.04
    p = p * t2 - 0.043478260869565216
    p = p * t2 + 0.047619047619047616
    p = p * t2 - 0.05263157894736842
    p = p * t2 + 0.058823529411764705
    p = p * t2 - 0.06666666666666667
    p = p * t2 + 0.07692307692307693
    p = p * t2 - 0.09090909090909091
    p = p * t2 + 0.1111111111111111
    p = p * t2 - 0.14285714285714285
    p = p * t2 + 0.2
    p = p * t2 - 0.3333333333333333
    p = p * t2 + 1.0
    r = t * p
    if y > 0.41421356237309503:
        r = 0.7853981633974483 + r
    if ax > 1.0:
        r = 1.5707963267948966 - r
    if x < 0.0:
        r = -r
    return r


@scalar
def asin(x):
    """asin(x) = atan(x / sqrt((1 - x)(1 + x)))."""
    return atan(x / tl.sqrt((1.0 - x) * (1.0 + x)))


@scalar
def acos(x):
    """acos(x) = 2 atan(sqrt((1 - x)/(1 + x))), accurate near x = 1."""
    return 2.0 * atan(tl.sqrt((1.0 - x) / (1.0 + x)))


@scalar
def sinh(x):
    return 0.5 * (expm1(x) - expm1(-x))


@scalar
def cosh(x):
    e = tl.exp(tl.abs(x))
    return 0.5 * e + 0.5 / e


@scalar
def tanh(x):
    """tanh(x) = expm1(2|x|)/(expm1(2|x|) + 2), odd."""
    e = expm1(2.0 * tl.abs(x))
    r = tl.where(e == float("inf"), 1.0, e / (e + 2.0))
    if x < 0.0:
        r = -r
    return r


@scalar
def asinh(x):
    """asinh(x) = log1p(|x| + x^2/(1 + sqrt(1 + x^2))), log(2|x|) for huge |x|, odd."""
    ax = tl.abs(x)
    if ax > 1e150:
        r = tl.log(ax) + 0.6931471805599453
    else:
        r = log1p(ax + ax * ax / (1.0 + tl.sqrt(1.0 + ax * ax)))
    if x < 0.0:
        r = -r
    return r


@scalar
def acosh(x):
    """acosh(x) = log1p((x - 1) + sqrt((x - 1)(x + 1))), log(2x) for huge x."""
    if x > 1e150:
        r = tl.log(x) + 0.6931471805599453
    else:
        xm1 = x - 1.0
        r = log1p(xm1 + tl.sqrt(xm1 * (x + 1.0)))
    return r


@scalar
def atanh(x):
    """atanh(x) = log1p(2x/(1 - x))/2."""
    return 0.5 * log1p(2.0 * x / (1.0 - x))


# -- error function family -------------------------------------------------------------------


@scalar
def exp_neg_sq(x):
    """exp(-x^2) without the error of rounding x^2: x = h + l with h a multiple of 1/16, so
    h^2 is exact and x^2 = h^2 + (2h + l) l."""
    h = tl.floor(x * 16.0) * 0.0625
    l = x - h  # noqa: E741
    return tl.exp(-h * h) * tl.exp(-(2.0 * h + l) * l)


@scalar
def exp_neg_half_sq(x):
    """exp(-x^2/2), split as in exp_neg_sq."""
    h = tl.floor(x * 16.0) * 0.0625
    l = x - h  # noqa: E741
    return tl.exp(-0.5 * h * h) * tl.exp(-(h + 0.5 * l) * l)


@scalar
def erfcx_pos(x):
    """exp(x^2) erfc(x) for x >= 0.5 (fitted polynomials; see tools/fit_special_functions.py)."""
    if x < 1.5:
        r = poly.erfcx_0(x)
    elif x < 2.5:
        r = poly.erfcx_1(x)
    elif x < 4.0:
        r = poly.erfcx_2(x)
    elif x < 8.0:
        r = poly.erfcx_3(x)
    else:
        w = 8.0 / x
        r = poly.erfcx_tail(w) * w * 0.070523697943469541  # h(w)/(x sqrt(pi))
    return r


@scalar
def erfcx_nonneg(y):
    """exp(y^2) erfc(y) for y >= 0."""
    if y < 0.5:
        r = tl.exp(y * y) * (1.0 - tl.math.erf(y))
    else:
        r = erfcx_pos(y)
    return r


@scalar
def erfcx(x):
    """exp(x^2) erfc(x) for real x; for x <= -1/2, 2 exp(x^2) - erfcx(-x) (inf below -26.6)."""
    if x >= 0.5:
        r = erfcx_pos(x)
    elif x > -0.5:
        r = tl.exp(x * x) * (1.0 - tl.math.erf(x))
    else:
        r = 2.0 / exp_neg_sq(-x) - erfcx_pos(-x)
    return r


@scalar
def erfc(x):
    """Complementary error function with full relative accuracy in the upper tail."""
    ax = tl.abs(x)
    if ax < 0.5:
        r = 1.0 - tl.math.erf(x)
    else:
        big = erfcx_pos(ax) * exp_neg_sq(ax)
        if x > 0.0:
            r = big
        else:
            r = 2.0 - big
    return r


@scalar
def ndtr(x):
    """Standard normal CDF; in the tails erfcx(|t|) exp(-x^2/2)/2 with t = x/sqrt(2), so the
    exponential is taken of x itself and the lower tail keeps full relative accuracy."""
    t = x * 0.70710678118654752
    at = tl.abs(t)
    if at < 0.5:
        r = 0.5 + 0.5 * tl.math.erf(t)
    else:
        big = 0.5 * erfcx_pos(at) * exp_neg_half_sq(tl.abs(x))
        if x < 0.0:
            r = big
        else:
            r = 1.0 - big
    return r


@scalar
def ndtri_pqc(p, q, c):
    """ndtri(p) given p, q = p - 1/2 and c = 1 - p, each as exact as the caller has them.

    Fitted starting value, then one Halley step on ndtr. Central region |q| <= 0.425:
    z = q R(q^2). Tails: a polynomial in r = sqrt(-log(min(p, c))). The Halley step solves
    ndtr(z) = p in the tail z lies in (through c for z > 0), which gives full precision from the
    ~1e-8 start. p = 0 gives -inf, c = 0 inf, p or c negative NaN.
    """
    if (p > 0.0) and (c > 0.0):
        central = tl.abs(q) <= 0.425
        if central:
            z = q * poly.ndtri_central(q * q)
        else:
            r = tl.sqrt(-tl.log(tl.minimum(p, c)))
            if r < 4.0:
                z = poly.ndtri_tail_0(r)
            elif r < 8.0:
                z = poly.ndtri_tail_1(r)
            else:
                z = poly.ndtri_tail_2(r)
            if q <= 0.0:
                z = -z
        # Halley: e = ndtr(z) - p without cancellation: erf(z/sqrt 2)/2 - q in the centre,
        # otherwise in the tail z lies in; u = e / phi(z)
        if central:
            e = 0.5 * tl.math.erf(z * 0.70710678118654752) - q
        elif z < 0.0:
            e = ndtr(z) - p
        else:
            e = c - ndtr(-z)
        phi = 0.3989422804014327 * exp_neg_half_sq(tl.abs(z))
        if phi > 1e-300:  # a denormal density has too few bits for a step
            u = e / phi
            z = z - u / (1.0 + 0.5 * z * u)
    else:
        nan_or_inf = tl.where(c == 0.0, float("inf"), float("nan"))
        z = 0.0 * q + tl.where(p == 0.0, -float("inf"), nan_or_inf)
    return z


@scalar
def ndtri(p):
    """Inverse standard normal CDF (ndtri_pqc with q = p - 1/2 and c = 1 - p, which is exact
    for p > 1/2). p = 0 gives -inf, p = 1 inf, p outside [0, 1] NaN."""
    return ndtri_pqc(p, p - 0.5, 1.0 - p)


@scalar
def erfinv(y):
    """erfinv(y) = ndtri((1 + y)/2)/sqrt(2), with q = y/2 and c = (1 - y)/2 formed from y
    itself: exact, so that small |y| and y near 1 keep full relative accuracy."""
    return ndtri_pqc(0.5 * (1.0 + y), 0.5 * y, 0.5 * (1.0 - y)) * 0.70710678118654752


# -- log(1 + t) - t --------------------------------------------------------------------------


@scalar
def atanh_series(u2):
    """sum_j u2^j/(2j + 3), j = 0..18: (atanh(u) - u)/u^3 for u^2 = u2 <= 1/9."""
    s = u2 * 0.02564102564102564 + 0.02702702702702703
    s = s * u2 + 0.02857142857142857
    s = s * u2 + 0.030303030303030304
    s = s * u2 + 0.03225806451612903
    s = s * u2 + 0.034482758620689655
    s = s * u2 + 0.037037037037037035
    s = s * u2 + 0.04
    s = s * u2 + 0.043478260869565216
    s = s * u2 + 0.047619047619047616
    s = s * u2 + 0.05263157894736842
    s = s * u2 + 0.058823529411764705
    s = s * u2 + 0.06666666666666667
    s = s * u2 + 0.07692307692307693
    s = s * u2 + 0.09090909090909091
    s = s * u2 + 0.1111111111111111
    s = s * u2 + 0.14285714285714285
    s = s * u2 + 0.2
    s = s * u2 + 0.3333333333333333
    return s


@scalar
def log1pmx(t):
    """log(1 + t) - t: for t in [-1/2, 1] as -t u + 2 u^3 sum_j u^(2j)/(2j + 3) with
    u = t/(2 + t) (log(1 + t) = 2 atanh u; u^2 <= 1/9, no cancellation), else directly."""
    if (t >= -0.5) and (t <= 1.0):
        u = t / (2.0 + t)
        u2 = u * u
        r = -t * u + 2.0 * u * u2 * atanh_series(u2)
    else:
        r = log1p(t) - t
    return r
