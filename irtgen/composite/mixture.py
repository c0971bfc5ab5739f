"""Mixtures with implicit reparameterization gradients.

``MixtureSameFamily(Categorical(logits=...), components)`` is torch's constructor and takes every
component torch's does; ``log_prob``, ``cdf``, ``mean``, ``variance``, ``support`` and ``expand``
are torch's. Sampling picks a component and draws from it; the gradient of a sample is implicit,
from the mixture's CDF, so it is a function of the sample alone. Per kind of component:

- irtgen's (a generated distribution: a univariate mixture; ``Independent(<generated>, 1)``: a
  mixture of factorized D-dimensional components): irtgen's kernels below draw and
  differentiate.
- torch's of a family irtgen has (Normal, Gamma, Beta, StudentT, ...: ``_TWIN_NAMES``, exact
  types), or ``Independent(<such>, 1)``: torch's sampler draws (``sample`` is torch's), and the
  kernels differentiate with irtgen's family on the same parameter tensors, so the gradients
  reach them, also where torch's cdf has no derivative (Gamma's concentration) or no cdf at
  all (Beta, StudentT).
- other univariate continuous torch distributions with a ``cdf`` (Uniform, HalfCauchy, Pareto,
  a TransformedDistribution with monotone transforms, a user's): torch's sampler draws and
  ``_implicit_torch`` gives the same implicit gradient in torch code, through autograd of the
  components' cdf: z - [Σ_k (w_k/q) (F_k - F_k.detach()) + Σ_k (w_k/q)(F_k - F)(log w_k -
  log w_k.detach())], all factors but F_k and log w_k detached, w_k/q = exp(log w_k - log q)
  and log q a logsumexp of the components' log_prob. It is as accurate as torch's cdf and its
  derivatives: the logits' gradient needs F_k - F, to an absolute error of a few ulps of 1, so
  in the tails it is less accurate than the kernels' (which use survival functions there), and
  where q(z) is below the dtype's range the gradient is NaN.
- anything else (multivariate, discrete, no cdf): ``has_rsample`` is False on the instance and
  ``rsample`` raises NotImplementedError saying why; ``sample`` is torch's.

The gradient is that of the mixture's inverse cdf: where the components' supports leave a gap
in the mixture's (disjoint Uniforms), the inverse cdf jumps across it and the gradient of an
expectation misses that jump.

Univariate: F(z) = sum_k w_k F_k(z), q(z) = sum_k w_k q_k(z), w = softmax(logits), and

    dz/dθ_k     = rho_k(z) dz_k/dθ_k,          rho_k = w_k q_k(z)/q(z)  (posterior weight)
    dz/dlogit_k = -w_k (F_k(z) - F(z))/q(z)

where dz_k/dθ_k = -(∂F_k/∂θ_k)/q_k is the component's own simplified implicit gradient.

Factorized components, z in R^D: the distributional transform u_d = F(z_d | z_<d) with

    F(z_d | z_<d) = sum_k r_kd F_kd(z_d),   r_kd = softmax_k(logit_k + sum_(j<d) log q_kj(z_j)),

has a lower-triangular Jacobian J (J_dd = p_d = sum_k r_kd q_kd, the conditional density;
J_dd' = sum_k r_kd (F_kd - Fbar_d) s_kd' for d' < d, s = ∂log q/∂z) and dz/dθ = -J^-1 ∂u/∂θ.
The backward needs only g^T dz/dθ = -mu^T diag(p)^-1 ∂u/∂θ with mu = diag(p) J^-T g, found by
back substitution. J_dd'/p_d factorizes over k, so with E_kd = r_kd (F_kd - Fbar_d)/p_d and
W_kd = sum_(d'>d) mu_d' E_kd':

    mu_d           = g_d - sum_k s_kd W_kd                          (d = D-1, ..., 0)
    grad logit_k   = -sum_d mu_d E_kd
    grad θ_kd      = mu_d rho_kd dz_kd/dθ_kd - W_kd ∂log q_kd/∂θ_kd,  rho_kd = r_kd q_kd/p_d

in O(K D) per sample. Posterior weights are formed in log space and F_kd - Fbar_d from the
survival functions in upper tails.

Kernels. Each direction is one kernel written once and specialised on the component family's
scalar formulas (log q, F, S = 1 - F, ∂log q/∂(z, θ), the implicit gradient, the support test):
``irtgen.compilers.cpu.mixture_backward`` (numba, one task per row chunk and batch column) and
``irtgen.compilers.gpu.mixture_backward_kernel`` (Triton, one program per batch column and range
of samples, the K components of a sample in one tile), both with deterministic partial sums.
Draws: draw n picks its component from ``random.uniform(seed_pick, n)`` and dimension d is the
family's sampler at element n D + d (``gpu.mixture_sample_kernel``; on the CPU numba's sample
kernel and a search of the cumulative weights), the same numbers on both backends. On Triton a
mixture of more components than one tile holds (``Empirical`` of thousands of points) runs the
same formulas as tensor code over chunks of samples (``_mixture_backward_chunked``), which does
not materialise a samples x components tensor of unbounded size.

torch.compile. Both directions are torch.library custom ops, so ``torch.compile(fullgraph=True)``
sees opaque nodes that run exactly the eager code: ``irtgen::mixture_sample`` (the component pick
and the component's draw; tagged ``nondeterministic_seeded`` and advancing
``library.rng_token``, as ``irtgen::sample``), ``irtgen::mixture_reparameterize`` (a copy of z
whose backward is ``irtgen::mixture_backward``, the gradients above). ``generator=`` cannot pass
through a custom op: with one, the draw runs eagerly. With torch components the draw is torch's
sampler and ``_implicit_torch`` is torch code, both traced as they are; torch's samplers take no
``generator``, so with one they draw from torch's global RNG seeded from it inside
``torch.random.fork_rng`` (the global stream is left as it was).
"""

from __future__ import annotations

import copy
import functools
import math

import torch
from torch.distributions import Categorical, Distribution, Independent, TransformedDistribution
from torch.distributions import MixtureSameFamily as _TorchMixture
from torch.library import custom_op

from irtgen.composite.factorized import _global_rng_from
from irtgen.runtime import autograd, launch, library, ops, rng
from irtgen.runtime.backend import select_backend
from irtgen.runtime.distribution import GeneratedDistribution
from irtgen.runtime.family import Family
from irtgen.scalar import random as rnd

# samples x components x dimensions per chunk of the backward
_CHUNK_ELEMENTS = 1 << 20


# torch.distributions classes with an irtgen family of the same name and parameters; their
# gradients run irtgen's kernels (see the module docstring). Exact types: a subclass may have
# changed the distribution. Filled on first use (irtgen.distributions imports this module).
_TWINS: dict[type, type] = {}
_TWIN_NAMES = (
    "Beta",
    "Cauchy",
    "Chi2",
    "Exponential",
    "Gamma",
    "Gumbel",
    "HalfNormal",
    "InverseGamma",
    "Kumaraswamy",
    "Laplace",
    "LogNormal",
    "Normal",
    "StudentT",
    "Weibull",
)


def _twins() -> dict[type, type]:
    if not _TWINS:
        import torch.distributions as td

        import irtgen.distributions as irtgen_distributions

        for name in _TWIN_NAMES:
            _TWINS[getattr(td, name)] = getattr(irtgen_distributions, name)
    return _TWINS


def _twin(dist) -> GeneratedDistribution | None:
    """The irtgen distribution equal to the torch distribution ``dist``, on the same parameter
    tensors (so gradients reach them), or None where irtgen has no such family."""
    cls = _twins().get(type(dist))
    if cls is None:
        return None
    return cls(*(getattr(dist, n) for n in cls.family.param_names), validate_args=False)


def _has_cdf(dist) -> bool:
    """Whether ``dist.cdf`` is implemented (torch's Distribution.cdf raises
    NotImplementedError; a TransformedDistribution's needs its base's cdf and the transforms'
    signs)."""
    if isinstance(dist, TransformedDistribution) and type(dist).cdf is TransformedDistribution.cdf:
        try:
            for t in dist.transforms:
                t.sign  # noqa: B018 (raises NotImplementedError where unknown)
        except NotImplementedError:
            return False
        return _has_cdf(dist.base_dist)
    return type(dist).cdf is not Distribution.cdf


def _is_discrete(dist) -> bool:
    try:
        return bool(dist.support.is_discrete)
    except NotImplementedError:
        return False


def _describe(dist) -> str:
    if isinstance(dist, Independent):
        return f"Independent({_describe(dist.base_dist)}, {dist.reinterpreted_batch_ndims})"
    return type(dist).__name__


def _plan(comp):
    """How a mixture of ``comp`` draws and differentiates: (kind, base, D, why not).

    kind "irtgen": irtgen components, ``base`` the generated distribution (``comp`` or the base
    of ``Independent(comp, 1)``, then D its event size; D None for univariate) — irtgen's
    kernels draw and differentiate. "twin": torch components of a family irtgen has, ``base``
    the irtgen twin on the same tensors — torch draws, irtgen's kernels differentiate.
    "torch": univariate continuous torch components with a cdf — torch draws, the gradient is
    the implicit one in torch code (``_implicit_torch``). "none": no rsample, ``why`` says why.
    """
    name = _describe(comp)
    needs = (
        "implicit reparameterization needs univariate continuous components with a cdf "
        "(irtgen's or torch's) or Independent(<irtgen distribution>, 1)"
    )
    if isinstance(comp, GeneratedDistribution):
        return "irtgen", comp, None, None
    if isinstance(comp, Independent):
        base = comp.base_dist
        if comp.reinterpreted_batch_ndims != 1 or base.event_shape != ():
            why = f"components {name} have event_shape {tuple(comp.event_shape)}; " + needs
            return "none", None, None, why
        D = comp.event_shape[0]
        if isinstance(base, GeneratedDistribution):
            return "irtgen", base, D, None
        twin = _twin(base)
        if twin is not None:
            return "twin", twin, D, None
        why = (
            f"components {name} are factorized torch distributions; the mixture's "
            "D-dimensional implicit gradient runs irtgen's kernels, which need an irtgen base "
            f"distribution or a torch one irtgen has ({', '.join(_TWIN_NAMES)})"
        )
        return "none", None, None, why
    if comp.event_shape != ():
        why = (
            f"components {name} are multivariate torch distributions (event_shape "
            f"{tuple(comp.event_shape)}); " + needs
        )
        return "none", None, None, why
    twin = _twin(comp)
    if twin is not None:
        return "twin", twin, None, None
    if _is_discrete(comp):
        why = (
            f"components {name} are discrete (support {type(comp.support).__name__}): the "
            "samples of a discrete mixture have no gradient with respect to its parameters"
        )
        return "none", None, None, why
    if not _has_cdf(comp):
        why = f"components {name} have no cdf (torch's {name}.cdf is not implemented); " + needs
        return "none", None, None, why
    return "torch", None, None, None


class _MixtureArgumentError(TypeError, ValueError):
    """A bad mixture_distribution: a TypeError, and a ValueError as torch raises."""


def _unvalidated(dist):
    """A shallow copy of ``dist`` (and of the distributions inside it) that does not validate
    values: the implicit gradient evaluates every component at every sample, also outside that
    component's support (a mixture of Uniforms)."""
    if not dist._validate_args and not isinstance(dist, (TransformedDistribution, Independent)):
        return dist
    out = copy.copy(dist)
    out._validate_args = False
    if isinstance(dist, (TransformedDistribution, Independent)):
        out.base_dist = _unvalidated(dist.base_dist)
    return out


def _implicit_torch(mixture: MixtureSameFamily, z: torch.Tensor) -> torch.Tensor:
    """z (shape S + batch_shape, held constant) unchanged in value, with the mixture's implicit
    gradient dz/dθ = -(∂F/∂θ)/q for univariate torch components, in torch code.

    Two Newton steps for F(z, θ) = F(z̄, θ̄) from the draw z̄, each z - (F(z, θ) - F(z̄, θ̄))/q(z, θ)
    with F = Σ_k w_k F_k and log q = logsumexp_k(log w_k + log q_k) (w = softmax of
    Categorical's logits, also where it was given probs): both steps are 0 in value, and
    autograd through them gives -(∂F/∂θ)/q, with the first derivative of dz/dθ exact as well
    (the second step's error is of fourth order in the parameters' change), so second
    derivatives (create_graph=True, torch.func.hessian) are right too. Outside a component's
    support (its ``support`` checks z) its density is 0, its cdf 0 or 1 and its parameters get
    no gradient: torch's formulas are not evaluated there (a Pareto's cdf and log_prob are
    finite nonsense below its scale). A logit of -inf (a component switched off) has weight 0
    and no gradient; where q(z) = 0 the step is 0 (z's gradient is then 0)."""
    comp = mixture._unvalidated_components
    z0 = z.detach()
    log_w = torch.log_softmax(mixture.mixture_distribution.logits, dim=-1)
    log_w = torch.where(torch.isfinite(log_w.detach()), log_w, -math.inf)

    def cdf_and_log_q(x):
        xk = x.unsqueeze(-1)  # S + B + (1,), against the components' B + (K,)
        inside = mixture._inside_components(xk.detach())
        cdf_k = comp.cdf(xk)
        cdf_k = torch.where(inside, cdf_k.clamp(0.0, 1.0), (cdf_k.detach() > 0.5).to(cdf_k.dtype))
        log_qk = torch.where(inside, comp.log_prob(xk), -math.inf)
        cdf = (torch.exp(log_w) * cdf_k).sum(dim=-1)
        return cdf, torch.logsumexp(log_w + log_qk, dim=-1)

    def step(x, cdf, log_q, target):
        shift = (cdf - target) * torch.exp(-log_q)
        return x - torch.where(torch.isfinite(log_q.detach()), shift, 0.0)

    cdf0, log_q0 = cdf_and_log_q(z0)
    target = cdf0.detach()
    z1 = step(z0, cdf0, log_q0, target)
    return step(z1, *cdf_and_log_q(z1), target)


def _mixture_backward(family: Family, z, logits, params, grad, needs):
    """Dispatch to the fused numba or Triton kernel; Triton with more components than one
    program's tile takes the chunked tensor code (_mixture_backward_chunked) instead."""
    if select_backend(z.device) == "numba":
        return _mixture_backward_numba(family, z, logits, params, grad, needs)
    from irtgen.compilers import gpu

    if gpu.mixture_backward_fits(logits.shape[-1], family.wide_gradients):
        return _mixture_backward_triton(family, z, logits, params, grad, needs)
    return _mixture_backward_chunked(family, z, logits, params, grad, needs)


def _mixture_backward_numba(family: Family, z, logits, params, grad, needs):
    """``irtgen.compilers.cpu.mixture_backward`` specialised on the family's formulas, in
    float64: one task per (row chunk, batch column)."""
    from irtgen.compilers import cpu

    cpu.set_threads(torch.get_num_threads())
    D = z.shape[-1]
    K = logits.shape[-1]
    NB = max(math.prod(logits.shape[:-1]), 1)
    f64 = torch.float64
    zf = z.detach().to(f64).contiguous().numpy()
    gf = grad.detach().to(f64).contiguous().numpy()
    logw = torch.log_softmax(logits.detach().to(f64), dim=-1).reshape(NB, K).contiguous().numpy()
    P = torch.stack([p.detach().to(f64).reshape(NB, K, D) for p in params], dim=-1)
    g_logits, g_params = cpu.run_mixture_backward(
        family.fn, zf, gf, logw, P.contiguous().numpy(), tuple(needs)
    )
    out_logits = torch.from_numpy(g_logits).reshape(logits.shape) if needs[0] else None
    out_params = [
        torch.from_numpy(g).reshape(p.shape) if g is not None else None
        for g, p in zip(g_params, params, strict=True)
    ]
    return out_logits, out_params


def _mixture_backward_triton(family: Family, z, logits, params, grad, needs):
    """``irtgen.compilers.gpu.mixture_backward_kernel`` specialised on the family's formulas:
    one program per (batch column, row split)."""
    from irtgen.compilers import gpu

    M, D = z.shape[0], z.shape[-1]
    K = logits.shape[-1]
    NB = max(math.prod(logits.shape[:-1]), 1)
    work = torch.float64 if family.wide_gradients else z.dtype
    zf = z.to(work).contiguous()
    gf = grad.to(work).contiguous()
    logw = torch.log_softmax(logits.to(torch.float64), dim=-1).contiguous()
    pf = [p.to(work).contiguous() for p in params]
    g_logits, g_params = gpu.run_mixture_backward(
        family.fn, zf, gf, logw, pf, M, NB, K, D, tuple(needs), family.wide_gradients
    )
    out_logits = g_logits.reshape(logits.shape) if g_logits is not None else None
    out_params = [
        g.reshape(p.shape) if g is not None else None for g, p in zip(g_params, params, strict=True)
    ]
    return out_logits, out_params


def _mixture_backward_chunked(family: Family, z, logits, params, grad, needs):
    """Gradients of sum(grad * z) w.r.t. logits and component params, z held by the implicit map,
    as tensor code over chunks of samples (the family's formulas in its own kernels), for
    mixtures of more components than the fused Triton kernel takes.

    Shapes: z and grad (M, *B, D); logits (*B, K); params broadcast to (*B, K, D). Returns
    (grad logits or None, [grad param or None]) with the shapes of logits and params.
    """
    M, D = z.shape[0], z.shape[-1]
    K = logits.shape[-1]
    batch = params[0].shape  # (*B, K, D)
    log_w = torch.log_softmax(logits, dim=-1).unsqueeze(-1)  # (*B, K, 1)
    need_logits, need_params = needs[0], list(needs[1:])
    g_logits = torch.zeros_like(logits) if need_logits else None
    g_params = [
        torch.zeros_like(p) if n else None for p, n in zip(params, need_params, strict=True)
    ]
    per_row = max(math.prod(batch), 1)
    chunk = max(1, _CHUNK_ELEMENTS // per_row)
    for start in range(0, M, chunk):
        zc = z[start : start + chunk]
        gc = grad[start : start + chunk]
        zk = zc.unsqueeze(-2).expand(zc.shape[:-1] + (K, D))  # (m, *B, K, D)
        log_q = ops.forward_map(family, "log_prob", zk, params, batch)
        cdf = ops.forward_map(family, "cdf", zk, params, batch)
        sf = ops.forward_map(family, "sf", zk, params, batch)
        # A_kd = log w_k + sum_(j<d) log q_kj: the log posterior weight before dimension d
        before = torch.cumsum(log_q[..., :-1], dim=-1)
        a = log_w + torch.cat([torch.zeros_like(log_q[..., :1]), before], dim=-1)
        lse_a = torch.logsumexp(a, dim=-2, keepdim=True)
        lse_l = torch.logsumexp(a + log_q, dim=-2, keepdim=True)  # log (p_d sum_k e^A_kd)
        r = torch.exp(a - lse_a)
        rho = torch.exp(a + log_q - lse_l)  # r_kd q_kd / p_d
        r_over_p = torch.exp(a - lse_l)  # r_kd / p_d
        fbar = (r * cdf).sum(dim=-2, keepdim=True)
        sbar = (r * sf).sum(dim=-2, keepdim=True)
        # F_kd - Fbar_d, from the survival functions where Fbar_d > 1/2 (no 1 - 1 cancellation)
        diff = torch.where(fbar <= 0.5, cdf - fbar, sbar - sf)
        e = r_over_p * diff  # E_kd, (m, *B, K, D)
        if D > 1:
            ones = torch.ones_like(log_q)
            needs_s = (True,) + (False,) * len(params)
            s, _ = ops.backward_reduce(family, "log_prob", zk, ones, params, needs_s, batch)
        mu = torch.empty_like(gc)
        w_acc = torch.zeros_like(e[..., 0])  # W_k for the current d, (m, *B, K)
        w_all = torch.zeros_like(e)
        for d in range(D - 1, -1, -1):
            w_all[..., d] = w_acc
            if d == D - 1:
                mu[..., d] = gc[..., d]
            else:
                mu[..., d] = gc[..., d] - (s[..., d] * w_acc).sum(dim=-1)
            w_acc = w_acc + mu[..., d].unsqueeze(-1) * e[..., d]
        mu_k = mu.unsqueeze(-2)  # (m, *B, 1, D)
        if need_logits:
            g_logits += -(mu_k * e).sum(dim=-1).sum(dim=0).reshape(logits.shape)
        if any(need_params):
            flags = (False, *need_params)
            _, gi = ops.backward_reduce(family, "implicit", zk, mu_k * rho, params, flags, batch)
            gl = [None] * len(params)
            if D > 1:
                _, gl = ops.backward_reduce(family, "log_prob", zk, -w_all, params, flags, batch)
            for i, need in enumerate(need_params):
                if need:
                    g_params[i] += gi[i]
                    if gl[i] is not None:
                        g_params[i] += gl[i]
    return g_logits, g_params


def _reparameterize_backward(family: Family, univariate: bool, z, grad, logits, params, needs):
    """(grad logits or None, [grad param or None]) of sum(grad * z), z the mixture sample held
    by the implicit map; ``needs`` = (logits?, param_1?, ...). Shapes and dtypes of the inputs."""
    work = z.dtype
    batch_shape = logits.shape[:-1]
    K = logits.shape[-1]
    if univariate:
        z, grad = z.unsqueeze(-1), grad.unsqueeze(-1)
        params_d = [p.unsqueeze(-1) for p in params]
    else:
        params_d = list(params)
    D = z.shape[-1]
    full = batch_shape + (K, D)
    sample_ndim = z.dim() - len(batch_shape) - 1
    rows = math.prod(z.shape[:sample_ndim])
    z2 = z.reshape((rows,) + batch_shape + (D,))
    g2 = torch.broadcast_to(grad, z.shape).reshape((rows,) + batch_shape + (D,)).to(work)
    pe = [p.to(work).expand(full) for p in params_d]
    g_logits, g_params = _mixture_backward(family, z2, logits.to(work), pe, g2, tuple(needs))
    out = []
    for g, p, p_orig in zip(g_params, params_d, params, strict=True):
        if g is None:
            out.append(None)
            continue
        g = launch.reduce_to(g, p.shape)
        out.append((g.squeeze(-1) if univariate else g).to(p_orig.dtype))
    g_logits = g_logits.to(logits.dtype) if g_logits is not None else None
    return g_logits, out


def _draw(family: Family, univariate: bool, probs, params, sample_shape: torch.Size, generator):
    """Draws of shape sample_shape + B [+ (D,)]: a component index from the mixture weights
    ``probs`` (B + (K,)), then that component's draw; ``params`` broadcast to B + (K,) [+ (D,)].

    Draw n (of the N = |sample_shape + B| draws) picks component k = #{j < K - 1 : u_n > cum_j}
    with u_n = ``random.uniform(seed_pick, n)`` and the cumulative weights cum (float64), and
    its dimension d is the family's sampler at (seed, n D + d) with component k's parameters:
    the same numbers on every backend (numba on the CPU, ``gpu.mixture_sample_kernel`` on
    Triton) for the same generator state."""
    batch_shape = probs.shape[:-1]
    work, result = launch.compute_dtype(*params)
    K = probs.shape[-1]
    D = 1 if univariate else params[0].shape[-1]
    probs = probs.to(torch.float64)
    cum = torch.cumsum(probs, dim=-1)
    cum = (cum / cum[..., -1:]).contiguous()
    full = batch_shape + (K, D)
    pd = [(p.unsqueeze(-1) if univariate else p).expand(full) for p in params]
    NB = max(math.prod(batch_shape), 1)
    N = math.prod(sample_shape) * NB
    device = probs.device
    seed_pick = rng.philox_seed(device, generator)
    seed = rng.philox_seed(device, generator)
    if select_backend(device) == "triton":
        from irtgen.compilers import gpu

        pf = [p.to(work).contiguous() for p in pd]
        wide = family.wide("sample")
        z = gpu.run_mixture_sample(
            rnd.uniform, family.fn("sample"), cum, pf, N, NB, K, D, (seed_pick, seed), work, wide
        )
    else:
        z = _draw_cpu(family, cum, pd, N, NB, K, D, seed_pick, seed)
    z = z.reshape(sample_shape + batch_shape + (D,)).to(result)
    # the draw rule (ops.inside_support) with the components' supports together: strictly
    # inside the lowest lower end and the highest upper end
    lo, hi = ops.support_interior(family, pd, full, result)
    z = torch.minimum(torch.maximum(z, lo.amin(dim=-2)), hi.amax(dim=-2))
    return z.squeeze(-1) if univariate else z


def _draw_cpu(family: Family, cum, params, N: int, NB: int, K: int, D: int, seed_pick, seed):
    """(N, D) float64 draws with numba: the uniforms of the pick and the family's sampler, keyed
    by element index as in ``gpu.mixture_sample_kernel``."""
    import numpy as np

    from irtgen.compilers import cpu

    cpu.set_threads(torch.get_num_threads())
    u = torch.from_numpy(cpu.run_sample(rnd.uniform, np.empty((1, 0)), N, seed_pick))
    rows = torch.arange(N) % NB
    if K > 1:  # k = #{j < K - 1 : u > cum_j}, cum nondecreasing: a left search
        bounds = cum.reshape(NB, K)[:, : K - 1].contiguous()
        k = torch.searchsorted(bounds, u.reshape(-1, NB).T.contiguous()).T.reshape(-1)
    else:
        k = torch.zeros(N, dtype=torch.int64)
    # parameter rows of the chosen components: (N, D, NP) -> (N D, NP)
    P = torch.stack([p.reshape(NB, K, D)[rows, k] for p in params], dim=-1)
    P = P.to(torch.float64).reshape(N * D, len(params)).contiguous().numpy()
    return torch.from_numpy(cpu.run_sample(family.fn("sample"), P, N * D, seed)).reshape(N, D)


# -- custom ops (torch.compile) ----------------------------------------------------------------


def _sample_shape_of(univariate: bool, probs, params, sample_shape) -> list[int]:
    event = [] if univariate else [params[0].shape[-1]]
    return [*sample_shape, *probs.shape[:-1], *event]


@custom_op(
    "irtgen::mixture_sample",
    mutates_args=("token",),
    tags=(torch.Tag.nondeterministic_seeded,),
)
def _sample_op(
    family: str,
    univariate: bool,
    probs: torch.Tensor,
    params: list[torch.Tensor],
    sample_shape: list[int],
    token: torch.Tensor,
) -> torch.Tensor:
    """Mixture draws (no gradient) from the device's generator; ``token`` (library.rng_token) is
    incremented. ``probs``: B + (K,); ``params``: the components' broadcast to B + (K,) [+ (D,)]."""
    token.add_(1)
    fam = library.family_of(family)
    z = _draw(fam, univariate, probs, params, torch.Size(sample_shape), None)
    return z.contiguous()


@_sample_op.register_fake
def _(family, univariate, probs, params, sample_shape, token):
    shape = _sample_shape_of(univariate, probs, params, sample_shape)
    return params[0].new_empty(shape, dtype=launch.compute_dtype(*params)[1])


@custom_op("irtgen::mixture_reparameterize", mutates_args=())
def _reparameterize_op(
    family: str,
    univariate: bool,
    z: torch.Tensor,
    logits: torch.Tensor,
    params: list[torch.Tensor],
) -> torch.Tensor:
    """A copy of the mixture sample z whose gradient is the mixture's implicit one."""
    return z.clone(memory_format=torch.contiguous_format)


@_reparameterize_op.register_fake
def _(family, univariate, z, logits, params):
    return z.new_empty(z.shape)


@custom_op("irtgen::mixture_backward", mutates_args=())
def _backward_op(
    family: str,
    univariate: bool,
    z: torch.Tensor,
    grad: torch.Tensor,
    logits: torch.Tensor,
    params: list[torch.Tensor],
    needs: list[bool],
) -> list[torch.Tensor]:
    """[grad of logits, grad of each param] of sum(grad * z), z held by the implicit map; an
    empty tensor where ``needs`` (logits?, param_1?, ...) is False."""
    g_logits, g_params = _reparameterize_backward(
        library.family_of(family), univariate, z, grad, logits, params, needs
    )
    out = [g_logits.contiguous() if g_logits is not None else logits.new_empty(0)]
    return out + [
        g.contiguous() if g is not None else p.new_empty(0)
        for g, p in zip(g_params, params, strict=True)
    ]


@_backward_op.register_fake
def _(family, univariate, z, grad, logits, params, needs):
    tensors = [logits, *params]
    return [t.new_empty(t.shape if need else (0,)) for t, need in zip(tensors, needs, strict=True)]


def _setup_reparameterize(ctx, inputs, output):
    family, univariate, z, logits, params = inputs
    ctx.family, ctx.univariate = family, univariate
    ctx.needs = [logits.requires_grad, *(p.requires_grad for p in params)]
    ctx.save_for_backward(z, logits, *params)


def _backward_reparameterize(ctx, grad):
    z, logits, *params = ctx.saved_tensors
    out = _backward_op(ctx.family, ctx.univariate, z, grad, logits, params, ctx.needs)
    grads = [g if need else None for g, need in zip(out, ctx.needs, strict=True)]
    # z is a constant: no gradient flows into it
    return None, None, None, grads[0], grads[1:]


_reparameterize_op.register_autograd(_backward_reparameterize, setup_context=_setup_reparameterize)


def _backward_backward(ctx, grads):
    raise RuntimeError(_FIRST_ORDER)


_backward_op.register_autograd(_backward_backward, setup_context=lambda ctx, inputs, output: None)
_reparameterize_op.register_vmap(functools.partial(autograd.vmap_by_loop, _reparameterize_op))
_backward_op.register_vmap(functools.partial(autograd.vmap_by_loop, _backward_op))


@_sample_op.register_vmap
def _(info, in_dims, family, univariate, probs, params, sample_shape, token):
    args = (family, univariate, probs, params, sample_shape, token)
    return autograd.vmap_draw(_sample_op, info, in_dims, probs.device, None, *args)


class _Backward(torch.autograd.Function):
    """_reparameterize_backward as a function, so that the kernels see unwrapped tensors under
    torch.func's transforms: (grad logits, *grad params), empty where not needed. First order:
    its own backward is an error that says so."""

    @staticmethod
    def forward(family, univariate, needs, z, grad, logits, *params):
        g_logits, g_params = _reparameterize_backward(
            family, univariate, z, grad, logits, params, list(needs)
        )
        empty = z.new_empty(0)
        return (g_logits if g_logits is not None else empty,) + tuple(
            g if g is not None else empty for g in g_params
        )

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError(_FIRST_ORDER)

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_Backward.apply, info, in_dims, *args)


_FIRST_ORDER = (
    "irtgen: MixtureSameFamily has first derivatives only; a gradient of its gradient "
    "(create_graph=True, torch.func.hessian) is not available"
)
_NO_JVP = (
    "irtgen: MixtureSameFamily has reverse-mode derivatives only (the fused backward); "
    "forward mode (torch.func.jvp, jacfwd, hessian) is not available: use vjp or jacrev"
)


class _Reparameterize(torch.autograd.Function):
    """``irtgen::mixture_reparameterize`` for eager calls (library.eager): z itself (a view, no
    copy) with the same backward."""

    @staticmethod
    def forward(family, univariate, z, logits, *params):
        return z.view_as(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        family, univariate, z, logits, *params = inputs
        ctx.family, ctx.univariate = family, univariate
        ctx.save_for_backward(z, logits, *params)

    @staticmethod
    def backward(ctx, grad):
        z, logits, *params = ctx.saved_tensors
        needs = tuple(ctx.needs_input_grad[3:])
        if not any(needs):
            return (None,) * (4 + len(params))
        out = _Backward.apply(ctx.family, ctx.univariate, needs, z, grad, logits, *params)
        grads = [g if n else None for g, n in zip(out, needs, strict=True)]
        return (None, None, None, *grads)

    @staticmethod
    def jvp(ctx, *tangents):
        raise RuntimeError(_NO_JVP)

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_Reparameterize.apply, info, in_dims, *args)


_Draw = autograd.without_gradient(
    lambda family, univariate, sample_shape, generator, probs, *params: _draw(
        family, univariate, probs, list(params), sample_shape, generator
    ),
    "MixtureDraw",
    draws=lambda family, univariate, sample_shape, generator, probs, *params: (
        probs.device,
        generator,
    ),
)


class MixtureSameFamily(_TorchMixture):
    """torch.distributions.MixtureSameFamily with ``rsample``: implicit reparameterization
    gradients for the component parameters and the mixture's logits or probs.

    Args:
        mixture_distribution: a torch ``Categorical`` (probs or logits) whose batch shape
            broadcasts with B, as in torch.
        component_distribution: any component torch's MixtureSameFamily takes, with batch
            shape B + (K,). ``log_prob``, ``cdf``, ``mean``, ``variance``, ``support`` and
            ``expand`` are torch's. Draws and gradients:

            - an irtgen distribution (univariate mixture) or ``Independent(<irtgen>, 1)``
              (factorized D-dimensional components): irtgen's kernels draw and differentiate;
            - a torch distribution of a family irtgen has (Normal, Gamma, Beta, StudentT, ...;
              ``_TWIN_NAMES``), or ``Independent(<such>, 1)``: torch's sampler draws, irtgen's
              kernels differentiate (the same tensors, so gradients reach them);
            - another univariate continuous torch distribution with a ``cdf``: torch's sampler
              draws and the gradient is the implicit one in torch code, through the cdf;
            - otherwise (multivariate, discrete, no cdf): ``has_rsample`` is False and
              ``rsample`` raises NotImplementedError saying why; ``sample`` is torch's.
        validate_args: as in torch.
    """

    has_rsample = True  # per instance: set from the components (_classify)

    def __init__(self, mixture_distribution, component_distribution, validate_args=None):
        if not isinstance(mixture_distribution, Categorical):
            raise _MixtureArgumentError(
                "MixtureSameFamily: mixture_distribution must be a torch.distributions.Categorical, "
                f"got {type(mixture_distribution).__name__}"
            )
        super().__init__(mixture_distribution, component_distribution, validate_args)
        self._classify()

    def _classify(self) -> None:
        kind, base, D, why = _plan(self._component_distribution)
        self._kind, self._kernel_base, self._D, self._why_not = kind, base, D, why
        self.has_rsample = kind != "none"
        if kind == "torch":
            self._unvalidated_components = _unvalidated(self._component_distribution)
            try:
                self._component_support = self._component_distribution.support
            except NotImplementedError:  # a user's distribution may not say
                self._component_support = None

    def _inside_components(self, zk: torch.Tensor) -> torch.Tensor:
        """Whether zk (S + B + (1,)) is in each component's support: S + B + (K,)."""
        if self._component_support is None:
            return torch.ones(
                zk.shape[:-1] + self.component_distribution.batch_shape[-1:],
                dtype=torch.bool,
                device=zk.device,
            )
        return self._component_support.check(zk)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MixtureSameFamily, _instance)
        new = super().expand(batch_shape, _instance=new)
        new._classify()
        return new

    @property
    def _base(self) -> GeneratedDistribution:
        """The irtgen distribution whose kernels give the gradients (kinds irtgen and twin)."""
        return self._kernel_base

    @property
    def _univariate(self) -> bool:
        return self._D is None

    def _component_params(self):
        """The base distribution's parameters, broadcast to its batch shape B + (K,) [+ (D,)]."""
        base = self._base
        return [p.expand(base.batch_shape) for p in base._params]

    def _mixture_param(self, name: str) -> torch.Tensor:
        """The mixture's probs or logits, broadcast to batch_shape + (K,)."""
        t = getattr(self.mixture_distribution, name)
        want = self.batch_shape + t.shape[-1:]
        return t if t.shape == want else t.expand(want)

    def sample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Draws: a component index from the mixture weights, then that component's draw (by
        irtgen's kernels for irtgen components, torch's sampler otherwise)."""
        with torch.no_grad():
            return self._draw(torch.Size(sample_shape), generator)

    def _draw(self, sample_shape: torch.Size, generator) -> torch.Tensor:
        if self._kind != "irtgen":
            return self._torch_draw(sample_shape, generator)
        probs = self._mixture_param("probs")
        params = self._component_params()
        if generator is not None or library.eager():  # custom ops cannot take a generator
            family, univariate = self._base.family, self._univariate
            return _Draw(family, univariate, sample_shape, generator, probs, *params)
        return _sample_op(
            self._base.family.key,
            self._univariate,
            probs.detach(),
            [p.detach() for p in params],
            library.int_list(sample_shape),
            library.rng_token(probs.device),
        )

    def _torch_draw(self, sample_shape: torch.Size, generator) -> torch.Tensor:
        """torch's MixtureSameFamily.sample; with a generator, from torch's global RNG seeded
        from it (the global stream is left as it was)."""
        if generator is not None:
            with _global_rng_from(generator):
                return self._torch_draw(sample_shape, None)
        mix = self.mixture_distribution
        if mix.batch_shape != self.batch_shape:
            # torch's sample gathers with the mixture's batch shape: expand it first (the
            # same draws where torch's sample works at all)
            mix = mix.expand(self.batch_shape)
            return _TorchMixture(mix, self.component_distribution, False).sample(sample_shape)
        return super().sample(sample_shape)

    def rsample(self, sample_shape=(), generator: torch.Generator | None = None):
        """Samples of shape sample_shape + batch_shape + event_shape with implicit gradients."""
        self._check_rsample("rsample")
        with torch.no_grad():
            z = self._draw(torch.Size(sample_shape), generator)
        return self._reparameterize(z)

    def _check_rsample(self, method: str) -> None:
        if not self.has_rsample:
            raise NotImplementedError(f"MixtureSameFamily.{method}: {self._why_not}")

    def reparameterize(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` unchanged in value, with the mixture's implicit gradient (for draws made
        elsewhere); z must have shape S + batch_shape + event_shape and is held constant."""
        self._check_rsample("reparameterize")
        if self._kind == "torch":  # as torch's log_prob: a float tensor keeps its dtype
            like = self.mixture_distribution.logits
            if not (isinstance(z, torch.Tensor) and z.dtype.is_floating_point):
                z = torch.as_tensor(z, dtype=like.dtype)
            z = z.to(like.device)
        else:
            like = self._component_params()[0]
            z = torch.as_tensor(z, dtype=like.dtype, device=like.device)
        want = self.batch_shape + self.event_shape
        if self._validate_args and z.shape[z.dim() - len(want) :] == want:
            # a possible draw: inside some component's support (torch's support, for log_prob,
            # is inside every component's, which a mixture of Uniforms' draws are not)
            inside = self._component_distribution.support.check(self._pad(z)).any(-1)
            if not torch._is_all_true(inside):
                raise ValueError(
                    f"reparameterize: z has values outside every component's support:\n{z[~inside]}"
                )
        if z.shape[z.dim() - len(want) :] != want:
            raise ValueError(
                f"reparameterize: z of shape {tuple(z.shape)} does not end in batch_shape + "
                f"event_shape = {tuple(want)}"
            )
        return self._reparameterize(z.detach())

    def _reparameterize(self, z: torch.Tensor) -> torch.Tensor:
        if self._kind == "torch":
            return _implicit_torch(self, z)
        logits = self._mixture_param("logits")
        params = self._component_params()
        if library.eager():
            return _Reparameterize.apply(self._base.family, self._univariate, z, logits, *params)
        return _reparameterize_op(self._base.family.key, self._univariate, z, logits, params)
