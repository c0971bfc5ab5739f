"""Random variates as scalar functions: uniforms, normal, gamma, log-gamma, beta and Student-t.

Each variate takes its parameters, then the 62-bit Philox ``seed`` (``rng.philox_seed`` draws it
from torch's generator), the int64 ``offset`` of the element (unique per element) and a small
non-negative integer ``stream`` that tells independent draws for one element apart. Every draw is
a function of (seed, offset, stream) alone, and the CPU (numba,
``irtgen.compilers.numba_tl.philox``) and the GPU (Triton, ``tl.philox``) draw the same Philox
words, so both give the same variates up to the rounding of their float64 libraries.

Philox counter layout. ``uniform`` uses ``tl.randint4x(seed, offset)``: Philox4x32-10 with
key = seed (low, high words) on the counter (offset mod 2^32, offset >> 32, 0, 0) -- both offset
words, so int64 offsets stay distinct. The variates call ``tl.philox`` with

    counter = (offset mod 2^32, offset >> 32, 4 * stream + part, block)

where ``part`` in 0..3 names a draw inside one primitive (the two gammas of a Beta, the gamma and
the normal of a Student-t) and ``block`` >= 1 numbers the 128-bit Philox outputs that draw uses:
the normal takes block 1; the gamma's rejection iteration i (0-based) takes blocks 2i + 1 (the
proposal's normal) and 2i + 2 (the acceptance uniform and the uniform of the a < 1 boost). No two
(offset, stream, part, block) coincide across elements, streams or iterations for offsets below
2^63, streams below 2^30 and fewer than 2^31 iterations (the loop stops at MAX_REJECTIONS), and
block >= 1 never meets ``uniform``'s counter (offset words, 0, 0). A sampler that calls several
primitives for one element gives each call its own stream.

Precision. Every uniform of a variate has 52 random bits, (k + 1/2) 2^-52, and the arithmetic is
float64 (the CPU computes every scalar function in float64; Triton kernels compute the variates in
float64 and round the result to the parameters' dtype). Float32 arithmetic would lose
Marsaglia-Tsang's test for large shapes (d (1 - v + log v) cancels) and the boost for small ones
(log G = log G(a + 1) + log(U)/a magnifies the error of log U by 1/a).

Gamma(a, 1) is Marsaglia and Tsang's method (ACM TOMS 26, 2000) with per-element rejection: an
element leaves its loop when accepted, and one still rejected after MAX_REJECTIONS iterations
(probability < 0.05^64) returns NaN. Shapes a < 1 draw G(a + 1) and add log(U)/a to its log, so
tiny shapes give finite log variates and variates that underflow to 0. The boost uniform U comes
from the accepted iteration's second block: which iteration accepts depends only on that
iteration's other words, so U is independent of G(a + 1).

Integer code. Philox needs 32-bit words: ``tl.cast(x, tl.uint32)`` takes an int64's low word
(Triton and numba both wrap), ``tl.cast(k, tl.float64)`` turns a random word into a float. These
are the only casts of the scalar sources.
"""

from __future__ import annotations

from irtgen.scalar import elementary as el
from irtgen.scalar.source import scalar, tl

MAX_REJECTIONS = 64  # Marsaglia-Tsang iterations before an element gives up (returns NaN)


@scalar
def _philox(seed, offset, word2, block):
    """Four uint32 words of Philox4x32-10 at counter (offset lo, offset hi, word2, block)."""
    lo = tl.cast(offset, tl.uint32)
    hi = tl.cast(offset >> 32, tl.uint32)
    return tl.philox(seed, lo, hi, tl.cast(word2, tl.uint32), tl.cast(block, tl.uint32))


@scalar
def _u52(hi, lo):
    """(k + 1/2) 2^-52 in float64 from the top 26 bits of two uint32 words: never 0 or 1."""
    k_hi = tl.cast(hi >> 6, tl.float64)
    k_lo = tl.cast(lo >> 6, tl.float64)
    return (k_hi * 67108864.0 + k_lo + 0.5) * 2.220446049250313e-16


@scalar
def _box_muller(r0, r1, r2, r3):
    """A float64 N(0, 1) variate from one Philox block: sqrt(-2 log U1) cos(2 pi U2)."""
    u1 = _u52(r0, r1)
    u2 = _u52(r2, r3)
    return tl.sqrt(-2.0 * tl.log(u1)) * el.cos_small(6.283185307179586 * u2)


@scalar
def _normal(seed, offset, word2):
    r0, r1, r2, r3 = _philox(seed, offset, word2, 1)
    return _box_muller(r0, r1, r2, r3)


@scalar
def _marsaglia_tsang(a, seed, offset, word2):
    """(d, w, log-boost, accepted) with G = d (1 + w)^3 exp(log-boost) ~ Gamma(a, 1).

    d = a' - 1/3 for a' = a + 1 (a < 1) or a; log-boost = log(U)/a for a < 1 and 0 otherwise.
    a < 0, NaN or inf, and elements the loop gave up on, have accepted = False.
    """
    if a < 1.0:
        a_eff = a + 1.0
    else:
        a_eff = a
    d = a_eff - 0.3333333333333333
    c = 1.0 / tl.sqrt(9.0 * d)
    w_acc = 0.0 * a
    u_boost = w_acc + 0.5
    # state 0: drawing; 1: accepted; 2: invalid shape or given up
    state = tl.where((a >= 0.0) and (a <= 1.7976931348623157e308), 0, 2)
    it = 0
    while state == 0:
        r0, r1, r2, r3 = _philox(seed, offset, word2, 2 * it + 1)
        x = _box_muller(r0, r1, r2, r3)
        s0, s1, s2, s3 = _philox(seed, offset, word2, 2 * it + 2)
        u = _u52(s0, s1)
        w = c * x
        xx = x * x
        if (w > -1.0) and (u >= 1.0 - 0.0331 * xx * xx):
            # the squeeze failed: log U < x^2/2 + d (1 - v + log v), with 1 - v + log v from
            # v - 1 = w (3 + w (3 + w)) and log1p (no rounding of v = (1 + w)^3)
            vm1 = w * (3.0 + w * (3.0 + w))
            ok = tl.log(u) < 0.5 * xx + d * (3.0 * el.log1p(w) - vm1)
        else:
            ok = w > -1.0
        w_acc = tl.where(ok, w, w_acc)
        u_boost = tl.where(ok, _u52(s2, s3), u_boost)
        it += 1
        state = tl.where(ok, 1, tl.where(it < MAX_REJECTIONS, 0, 2))
    if a < 1.0:
        boost = tl.log(u_boost) / a
    else:
        boost = 0.0 * a
    return d, w_acc, boost, state == 1


@scalar
def _log_gamma(a, seed, offset, word2):
    d, w, boost, accepted = _marsaglia_tsang(a, seed, offset, word2)
    lg = tl.log(d) + 3.0 * el.log1p(w) + boost
    return tl.where(accepted, lg, float("nan"))


@scalar
def uniform(seed, offset):
    """Uniform in (0, 1) from ``tl.randint4x(seed, offset)``: (k + 1/2) 2^-52 with k of 52 random
    bits (the top 26 of the first two words) -- never 0 or 1, exact in float64."""
    r0, r1, _r2, _r3 = tl.randint4x(seed, offset)
    return _u52(r0, r1)


@scalar
def uniform32(seed, offset):
    """Uniform in (0, 1) exact in float32: (k + 1/2) 2^-23 with k the top 23 bits of
    ``tl.randint(seed, offset)`` (the first word of ``uniform``'s block)."""
    r0, _r1, _r2, _r3 = tl.randint4x(seed, offset)
    return (tl.cast(r0 >> 9, tl.float32) + 0.5) * 1.1920928955078125e-07


@scalar
def standard_normal(seed, offset, stream):
    """N(0, 1): Box-Muller on two 52-bit uniforms (part 0, block 1), in float64."""
    return _normal(seed, offset, stream * 4)


@scalar
def standard_gamma(a, seed, offset, stream):
    """Gamma(a, 1): Marsaglia-Tsang; for a < 1, G(a + 1) exp(log(U)/a)."""
    d, w, boost, accepted = _marsaglia_tsang(a, seed, offset, stream * 4)
    if boost < -700.0:
        # exp(boost) would be subnormal or 0 and the product would lose bits: exp(log G)
        g = tl.exp(tl.log(d) + 3.0 * el.log1p(w) + boost)
    else:
        # 1 + w is exact for w <= -1/2, where (1 + w)^3 is small; elsewhere it rounds by one ulp
        t = 1.0 + w
        g = d * (t * t * t) * tl.exp(boost)
    return tl.where(accepted, g, float("nan"))


@scalar
def log_standard_gamma(a, seed, offset, stream):
    """log of a Gamma(a, 1) variate, finite where the variate itself underflows (tiny a)."""
    return _log_gamma(a, seed, offset, stream * 4)


@scalar
def beta_variate(a, b, seed, offset, stream):
    """Beta(a, b) = X/(X + Y) = exp(-softplus(log Y - log X)), X, Y Gamma from parts 0 and 1."""
    lx = _log_gamma(a, seed, offset, stream * 4)
    ly = _log_gamma(b, seed, offset, stream * 4 + 1)
    return tl.exp(-el.softplus(ly - lx))


@scalar
def student_t_variate(df, seed, offset, stream):
    """Student-t: N sqrt(df/V), V = 2 G(df/2), as N exp((log(df/2) - log G)/2); the gamma is
    part 0, the normal part 1."""
    half = df * 0.5
    lg = _log_gamma(half, seed, offset, stream * 4)
    n = _normal(seed, offset, stream * 4 + 1)
    h = 0.5 * (tl.log(half) - lg)
    if h >= 700.0:
        # exp(h) alone overflows for tiny df while N exp(h) may still be representable
        e = tl.exp(tl.log(tl.abs(n)) + h)
        t = tl.where(n < 0.0, -e, e)
    else:
        t = n * tl.exp(h)
    return t
