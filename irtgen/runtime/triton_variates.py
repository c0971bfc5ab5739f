"""Random variates as Triton device functions: normal, gamma, log-gamma, beta and Student-t.

Each function takes the 62-bit Philox ``seed`` (``rng.philox_seed`` draws it from torch's
generator), an int64 block ``offset`` of unique element indices and a small non-negative integer
``stream`` (compile-time or run-time) that tells independent draws for one element apart; it
returns one variate per lane with the dtype of its parameter (``like`` for the normal).

Philox counter layout. ``tl.randint4x(seed, offset)`` runs Philox4x32-10 with key = seed (low,
high words) on the counter (offset mod 2^32, offset >> 32, 0, 0) -- both offset words, so int64
offsets up to 2^64 stay distinct. These functions call ``tl.philox`` directly with

    counter = (offset mod 2^32, offset >> 32, 4 * stream + part, block)

where ``part`` in 0..3 names a draw inside one primitive (the two gammas of a Beta, the gamma and
the normal of a Student-t) and ``block`` >= 1 numbers the 128-bit Philox outputs that draw uses:
the normal takes block 1; the gamma's rejection iteration i (0-based) takes blocks 2i + 1 (the
proposal's normal) and 2i + 2 (the acceptance uniform and the uniform of the a < 1 boost). No two
(offset, stream, part, block) coincide across lanes, streams or iterations for offsets below 2^64,
streams below 2^30 and fewer than 2^31 iterations (the loop stops at 64), and block >= 1 never
meets ``triton_math.uniform``'s counter (offset words, 0, 0). A sampler that calls several
primitives for one element gives each call its own stream.

Precision. Every uniform has 52 random bits, (k + 1/2) 2^-52, and the arithmetic is float64 for
float32 and float64 parameters alike; a float32 result is the float64 variate drawn from the same
bits, rounded. Float32 arithmetic would lose Marsaglia-Tsang's test for large shapes (d (1 - v +
log v) cancels) and the boost for small ones (log G = log G(a + 1) + log(U)/a magnifies the error
of log U by 1/a). On GPUs with slow float64 this costs speed; on H100-class parts it is the same
policy as the project's special functions.

Gamma(a, 1) is Marsaglia and Tsang's method (ACM TOMS 26, 2000) with per-lane rejection: a lane
leaves the loop when accepted, the loop ends when no lane is active, and a lane still rejected
after 64 iterations (probability < 0.05^64) returns NaN. Shapes a < 1 draw G(a + 1) and add
log(U)/a to its log, so tiny shapes give finite log variates and variates that underflow to 0.
The boost uniform U comes from the accepted iteration's second block: which iteration accepts
depends only on that iteration's other words, so U is independent of G(a + 1).
"""

from __future__ import annotations

import triton
import triton.language as tl

from irtgen.runtime import triton_math as tlm


@triton.jit
def _philox(seed, offset, word2, block):
    """Four uint32 words of Philox4x32-10 at counter (offset lo, offset hi, word2, block)."""
    lo = offset.to(tl.uint32)
    hi = (offset >> 32).to(tl.uint32)
    zero = offset * 0
    c2 = (zero + word2).to(tl.uint32)
    c3 = (zero + block).to(tl.uint32)
    return tl.philox(seed, lo, hi, c2, c3)


@triton.jit
def _u52(hi, lo):
    """(k + 1/2) 2^-52 in float64 from the top 26 bits of two uint32 words: never 0 or 1."""
    k_hi = (hi >> 6).to(tl.float64)
    k_lo = (lo >> 6).to(tl.float64)
    return (k_hi * 67108864.0 + k_lo + 0.5) * 2.220446049250313e-16


@triton.jit
def _box_muller(r0, r1, r2, r3):
    """A float64 N(0, 1) variate from one Philox block: sqrt(-2 log U1) cos(2 pi U2)."""
    u1 = _u52(r0, r1)
    u2 = _u52(r2, r3)
    return tl.sqrt(-2.0 * tl.log(u1)) * tl.cos(6.283185307179586 * u2)


@triton.jit
def _normal64(seed, offset, word2):
    r0, r1, r2, r3 = _philox(seed, offset, word2, 1)
    return _box_muller(r0, r1, r2, r3)


@triton.jit
def _marsaglia_tsang(a64, seed, offset, word2):
    """(d, w, log-boost, accepted) with G = d (1 + w)^3 exp(log-boost) ~ Gamma(a, 1), float64.

    d = a' - 1/3 for a' = a + 1 (a < 1) or a; log-boost = log(U)/a for a < 1 and 0 otherwise.
    Lanes with a < 0, NaN or inf, and lanes the loop gave up on, have accepted = False.
    """
    small = a64 < 1.0
    d = tl.where(small, a64 + 1.0, a64) - 0.33333333333333333
    c = 1.0 / tl.sqrt(9.0 * d)
    active = (a64 >= 0.0) & (a64 < float("inf"))  # negative, NaN, inf: never accepted, NaN out
    accepted = active & False
    w_acc = a64 * 0.0
    u_boost = w_acc + 0.5
    it = 0
    while tl.max(active.to(tl.int32), axis=0) > 0:
        r0, r1, r2, r3 = _philox(seed, offset, word2, 2 * it + 1)
        x = _box_muller(r0, r1, r2, r3)
        s0, s1, s2, s3 = _philox(seed, offset, word2, 2 * it + 2)
        u = _u52(s0, s1)
        w = c * x
        vm1 = w * (3.0 + w * (3.0 + w))  # v - 1 for v = (1 + w)^3, without rounding v
        xx = x * x
        ok = u < 1.0 - 0.0331 * xx * xx
        # 1 - v + log v from v - 1 and log1p keeps the small difference for large d.
        ok = ok | (tl.log(u) < 0.5 * xx + d * (3.0 * tlm.log1p(w) - vm1))
        take = active & ok & (w > -1.0)
        w_acc = tl.where(take, w, w_acc)
        u_boost = tl.where(take, _u52(s2, s3), u_boost)
        accepted = accepted | take
        it += 1
        active = active & ~take & (it < 64)
    boost = tl.where(small, tl.log(u_boost) / a64, 0.0)
    return d, w_acc, boost, accepted


@triton.jit
def _log_gamma64(a64, seed, offset, word2):
    d, w, boost, accepted = _marsaglia_tsang(a64, seed, offset, word2)
    lg = tl.log(d) + 3.0 * tlm.log1p(w) + boost
    return tl.where(accepted, lg, float("nan"))


@triton.jit
def standard_normal(seed, offset, stream, like):
    """N(0, 1) with like's dtype: Box-Muller on two 52-bit uniforms, in float64."""
    return _normal64(seed, offset, stream * 4).to(like.dtype)


@triton.jit
def standard_gamma(a, seed, offset, stream):
    """Gamma(a, 1): Marsaglia-Tsang; for a < 1, G(a + 1) exp(log(U)/a)."""
    d, w, boost, accepted = _marsaglia_tsang(a.to(tl.float64), seed, offset, stream * 4)
    # 1 + w is exact for w <= -1/2, where (1 + w)^3 is small; elsewhere it rounds by one ulp.
    t = 1.0 + w
    g = d * (t * t * t)
    # Multiplying by exp(boost) rounds twice but exactly enough while exp(boost) is normal;
    # deeper, the product would lose bits and exp(log G) is taken instead.
    deep = boost < -700.0
    e = tl.exp(tl.where(deep, tl.log(d) + 3.0 * tlm.log1p(w) + boost, boost))
    g = tl.where(deep, e, g * e)
    return tl.where(accepted, g, float("nan")).to(a.dtype)


@triton.jit
def log_standard_gamma(a, seed, offset, stream):
    """log of a Gamma(a, 1) variate, finite where the variate itself underflows (tiny a)."""
    return _log_gamma64(a.to(tl.float64), seed, offset, stream * 4).to(a.dtype)


@triton.jit
def beta_variate(a, b, seed, offset, stream):
    """Beta(a, b) = X/(X + Y) = exp(-softplus(log Y - log X)), X, Y Gamma from parts 0 and 1."""
    lx = _log_gamma64(a.to(tl.float64), seed, offset, stream * 4)
    ly = _log_gamma64(b.to(tl.float64), seed, offset, stream * 4 + 1)
    return tl.exp(-tlm.softplus(ly - lx)).to(a.dtype)


@triton.jit
def student_t_variate(df, seed, offset, stream):
    """Student-t: N sqrt(df/V), V = 2 G(df/2), as N exp((log(df/2) - log G)/2)."""
    half = df.to(tl.float64) * 0.5
    lg = _log_gamma64(half, seed, offset, stream * 4)
    n = _normal64(seed, offset, stream * 4 + 1)
    h = 0.5 * (tl.log(half) - lg)
    # exp(h) alone overflows for tiny df while N exp(h) may still be representable.
    big = h >= 700.0
    e = tl.exp(tl.where(big, tl.log(tl.abs(n)) + h, h))
    t = tl.where(big, tl.where(n < 0.0, -e, e), n * e)
    return t.to(df.dtype)
