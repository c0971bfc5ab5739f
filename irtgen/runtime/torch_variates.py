"""Random variates for the torch path: normal, gamma, log-gamma, beta and Student-t samplers.

Every draw comes from torch's RNG through ``generator=`` (default: the device's generator), so
``torch.manual_seed`` or a seeded generator makes samples reproducible. Parameter tensors arrive
broadcast to the output shape; float32 or float64 in gives the same dtype out, computed in float64.
Sampling only: gradients come from the implicit reparameterization elsewhere.

Gamma(a, 1) is Marsaglia and Tsang's method (ACM TOMS 26, 2000), vectorized: one pass over all
elements (in cache-sized chunks on the CPU), then passes over the still-rejected ones only (about
3% for a near 1, fewer for larger a), at most ``_MAX_PASSES``; an element still rejected after
that returns NaN. Shapes a < 1 draw G(a + 1) and multiply by U^(1/a) in log space,
log G = log G(a + 1) + log(U)/a, so a tiny a gives a finite log variate and a variate that
underflows to 0 as it should, never NaN.

Proposals for float64 use 53-bit uniforms and Box-Muller normals on them (torch.randn's float64
CPU path is about twice as slow); for float32, torch's float32 rand and randn (24-bit), whose
granularity in G is about one float32 ulp, at half the cost. The uniform of the a < 1 boost always
has 53 bits: it sets the granularity of log G, where log(U)/a magnifies it by 1/a.
Shapes that are negative, NaN or inf give NaN.
"""

from __future__ import annotations

import math

import torch

from irtgen.runtime import torch_math as tm

# Marsaglia-Tsang accepts with probability > 0.95 per pass, so 64 passes never run out in
# practice; the cap bounds the work for inputs that cannot be accepted.
_MAX_PASSES = 64
# Elements per chunk and CPU thread of the first pass: the float64 temporaries fit in a
# last-level cache; larger chunks run memory-bound, smaller ones pay Python overhead.
_CHUNK = 1 << 16


def _box_muller64(n: int, device, generator) -> torch.Tensor:
    half = (n + 1) // 2
    u = torch.rand(2, half, dtype=torch.float64, device=device, generator=generator)
    # 1 - u lies in (0, 1]: log1p(-u) is finite and exact where u is small. In-place ops
    # throughout: on the CPU each fresh large tensor costs page faults comparable to the math.
    r = u[0].neg_().log1p_().mul_(-2.0).sqrt_()
    theta = u[1].mul_(2.0 * math.pi)
    out = torch.empty(2 * half, dtype=torch.float64, device=device)
    torch.cos(theta, out=out[:half]).mul_(r)
    torch.sin(theta, out=out[half:]).mul_(r)
    return out[:n]


def _normal64(n: int, source: torch.dtype, device, generator) -> torch.Tensor:
    """n standard normals as float64, with the precision of ``source``'s sampler."""
    if source == torch.float64:
        return _box_muller64(n, device, generator)
    return torch.randn(n, dtype=torch.float32, device=device, generator=generator).double()


def _uniform64(n: int, source: torch.dtype, device, generator) -> torch.Tensor:
    """n uniforms in [0, 1) as float64, with 24 (float32) or 53 (float64) random bits."""
    return torch.rand(n, dtype=source, device=device, generator=generator).double()


def standard_normal(shape, dtype: torch.dtype, device, generator=None) -> torch.Tensor:
    """N(0, 1) variates: Box-Muller on 53-bit uniforms for float64, torch.randn for float32."""
    shape = tuple(shape)
    if dtype == torch.float64:
        return _box_muller64(math.prod(shape), device, generator).reshape(shape)
    return torch.randn(shape, dtype=dtype, device=device, generator=generator)


def _log_test(u, x, w, d):
    """Marsaglia-Tsang's exact test log u < x^2/2 + d (1 - v + log v), v = (1 + w)^3."""
    vm1 = w * (3.0 + w * (3.0 + w))  # v - 1 without rounding v
    ok = torch.log(u) < 0.5 * x * x + d * (3.0 * torch.log1p(w) - vm1)
    return ok & (w > -1.0)


def _mt_pass(d: torch.Tensor, source: torch.dtype, generator):
    """One Marsaglia-Tsang proposal per lane: (w = c x, accepted), c = 1/sqrt(9 d).

    The squeeze u < 1 - 0.0331 x^4 runs on every lane, the log test only on the ~10% it leaves.
    A lane with d = NaN has w = NaN and is rejected unless the squeeze (which ignores d) accepts.
    """
    m = d.numel()
    x = _normal64(m, source, d.device, generator)
    u = _uniform64(m, source, d.device, generator)
    w = torch.rsqrt(9.0 * d).mul_(x)
    # The squeeze never accepts w <= -1 (that needs x^4 >= 81 d^2 >= 36) nor a NaN lane.
    ok = u < x.square().square_().mul_(-0.0331).add_(1.0)
    rest = torch.nonzero(~ok).squeeze(1)
    pick = lambda t: torch.index_select(t, 0, rest)  # noqa: E731
    ok.index_copy_(0, rest, _log_test(pick(u), pick(x), pick(w), pick(d)))
    return w, ok


def _source(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype == torch.float32 else torch.float64


def _mt_shape(a64: torch.Tensor) -> torch.Tensor:
    """d = a' - 1/3 for a' = a + 1 (a < 1) or a; NaN for a < 0, NaN or inf (NaN out)."""
    d = (a64 - 1.0 / 3.0).add_(a64 < 1.0)
    return d.masked_fill_((a64 < 0.0) | (a64 == math.inf), math.nan)


def _boost(a64: torch.Tensor, generator):
    """log(U)/a for a < 1, 0 elsewhere; None (no draw) when no a < 1."""
    small = a64 < 1.0
    if not bool(small.any()):
        return None
    # U = 1 - r lies in (0, 1]. a = 0 is the point mass at 0: log G = -inf (also where r = 0
    # would give 0/0).
    r = torch.rand(a64.shape, dtype=torch.float64, device=a64.device, generator=generator)
    boost = r.neg_().log1p_().div_(a64).masked_fill_(~small, 0.0)
    return boost.masked_fill_(a64 == 0.0, -math.inf)


def _result(d, w, boost, want_log: bool) -> torch.Tensor:
    """log G or G for G = d (1 + w)^3 exp(boost)."""
    if want_log:
        lg = torch.log1p(w).mul_(3.0).add_(torch.log(d))
        return lg if boost is None else lg.add_(boost)
    # 1 + w is exact for w <= -1/2, where (1 + w)^3 is small; elsewhere it rounds by one ulp.
    t = w + 1.0
    g = t.square().mul_(t).mul_(d)
    if boost is None:
        return g
    # The product rounds twice but loses nothing while exp(boost) is a normal number; deeper,
    # exp(log G) is taken instead.
    deep = torch.nonzero(boost < -700.0).squeeze(1)
    g.mul_(torch.exp(boost))
    if deep.numel():
        pick = lambda t: torch.index_select(t, 0, deep)  # noqa: E731
        lg = 3.0 * torch.log1p(pick(w)) + torch.log(pick(d)) + pick(boost)
        g.index_copy_(0, deep, torch.exp(lg))
    return g


def _gamma64(a: torch.Tensor, generator, want_log: bool, source: torch.dtype) -> torch.Tensor:
    """Gamma(a, 1) variate (or its log) in float64; proposals drawn with ``source`` precision.

    The first proposal of every element runs chunk by chunk, so that the temporaries stay in
    the CPU's cache; the few rejected elements then go through further passes together.
    """
    flat = a.detach().reshape(-1)
    n = flat.numel()
    out = torch.empty(n, dtype=torch.float64, device=flat.device)
    chunk = _CHUNK * torch.get_num_threads() if flat.device.type == "cpu" else max(n, 1)
    pending, pending_boost, any_boost = [], [], False
    for start in range(0, n, chunk):
        a64 = flat[start : start + chunk].to(torch.float64)
        d = _mt_shape(a64)
        boost = _boost(a64, generator)
        w, ok = _mt_pass(d, source, generator)
        out[start : start + a64.numel()] = _result(d, w, boost, want_log)
        rejected = torch.nonzero(~ok & ~torch.isnan(d)).squeeze(1)
        pending.append(rejected + start)
        if boost is None:
            pending_boost.append(torch.zeros(rejected.shape, dtype=torch.float64, device=d.device))
        else:
            any_boost = True
            pending_boost.append(torch.index_select(boost, 0, rejected))
    idx = torch.cat(pending) if pending else out.new_empty(0, dtype=torch.int64)
    if idx.numel() == 0:
        return out.reshape(a.shape)
    d = _mt_shape(torch.index_select(flat, 0, idx).to(torch.float64))
    w = torch.full_like(d, math.nan)
    active = torch.arange(idx.numel(), device=idx.device)
    for _ in range(_MAX_PASSES - 1):
        wp, ok = _mt_pass(torch.index_select(d, 0, active), source, generator)
        w.index_copy_(0, active[ok], wp[ok])
        active = active[~ok]
        if active.numel() == 0:
            break
    boost = torch.cat(pending_boost) if any_boost else None
    out.index_copy_(0, idx, _result(d, w, boost, want_log))
    return out.reshape(a.shape)


def standard_gamma(a: torch.Tensor, generator=None) -> torch.Tensor:
    """Gamma(a, 1) variates: Marsaglia-Tsang, with G(a) = G(a + 1) exp(log(U)/a) for a < 1."""
    return _gamma64(a, generator, False, _source(a.dtype)).to(a.dtype)


def log_standard_gamma(a: torch.Tensor, generator=None) -> torch.Tensor:
    """log of a Gamma(a, 1) variate; finite for tiny a where the variate itself underflows."""
    return _gamma64(a, generator, True, _source(a.dtype)).to(a.dtype)


def beta_variate(a: torch.Tensor, b: torch.Tensor, generator=None) -> torch.Tensor:
    """Beta(a, b) variates X/(X + Y) = exp(-softplus(log Y - log X)) from two log-gammas."""
    lx = _gamma64(a, generator, True, _source(a.dtype))
    ly = _gamma64(b, generator, True, _source(b.dtype))
    return torch.exp(-tm.softplus(ly - lx)).to(a.dtype)


def student_t_variate(df: torch.Tensor, generator=None) -> torch.Tensor:
    """Student-t variates N sqrt(df/V), V = 2 G(df/2), as N exp((log(df/2) - log G)/2)."""
    source = _source(df.dtype)
    half = df.detach().to(torch.float64) * 0.5
    lg = _gamma64(half, generator, True, source)
    n = _normal64(df.numel(), source, df.device, generator).reshape(df.shape)
    h = 0.5 * (torch.log(half) - lg)
    # exp(h) alone overflows for tiny df while N exp(h) may still be representable.
    big = torch.sign(n) * torch.exp(torch.log(torch.abs(n)) + h)
    return torch.where(h < 700.0, n * torch.exp(h), big).to(df.dtype)
