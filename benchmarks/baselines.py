"""Hand-written baselines that the benchmark compares irtgen with.

Two kinds:

* **Hand-written implicit gradients**, compiled with ``torch.compile``: a draw is made without
  autograd, and ``Implicit`` attaches its gradient, computed by a formula written for the one
  family (for the Gamma torch's ``_standard_gamma_grad``, for the Beta and Dirichlet torch's
  ``_dirichlet_grad``, for the mixtures the posterior-weight formulas with back substitution).
  The log densities are written out and differentiated by autograd through the compiled graph.
* **The generic autograd-Jacobian method** for mixtures: the distributional transform u(z, θ)
  (u_d = F(z_d | z_<d, θ)) written with torch ops, its per-sample Jacobians J_z and J_θ from
  ``torch.func.jacrev`` under ``vmap``, dz/dθ = −J_z⁻¹ J_θ by a dense solve, and the
  vector-Jacobian product gᵀ dz/dθ. It needs no derivation by hand and works for any u; it is
  what irtgen's fused formulas replace.

torch's private samplers and gradient ops (``_standard_gamma_grad``, ``_dirichlet_grad``) have no
fake-tensor kernels, so ``torch.compile(fullgraph=True)`` cannot trace them; they are wrapped
here as ``torch.library`` custom ops with a fake kernel, which compile as opaque calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# --- torch's gradient ops as custom ops that torch.compile can trace --------------------------


@torch.library.custom_op("irtgen_bench::standard_gamma_grad", mutates_args=())
def standard_gamma_grad(alpha: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """dx/dα of a standard Gamma(α) draw x (torch's implicit gradient)."""
    return torch._standard_gamma_grad(alpha, x)


@standard_gamma_grad.register_fake
def _(alpha, x):
    return torch.empty_like(x)


@torch.library.custom_op("irtgen_bench::dirichlet_grad", mutates_args=())
def dirichlet_grad(x: torch.Tensor, alpha: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """dx_i/dα_i of x_i ~ Beta(α_i, total − α_i) (torch's Dirichlet gradient)."""
    return torch._dirichlet_grad(x, alpha, total)


@dirichlet_grad.register_fake
def _(x, alpha, total):
    return torch.empty_like(x)


# --- attaching a hand-written gradient to a draw ----------------------------------------------


class Implicit(torch.autograd.Function):
    """z = forward_fn(noise, *params) with gradient backward_fn(g, noise, *params) -> grads.

    ``noise`` is the parameter-free randomness of the draw (standard Gammas, a Dirichlet draw,
    the mixture sample itself); the gradients are the implicit ones, computed from it.
    """

    @staticmethod
    def forward(ctx, forward_fn, backward_fn, noise, *params):
        ctx.backward_fn = backward_fn
        ctx.save_for_backward(noise, *params)
        return forward_fn(noise, *params)

    @staticmethod
    def backward(ctx, grad):
        noise, *params = ctx.saved_tensors
        return None, None, None, *ctx.backward_fn(grad, noise, *params)


def identity(noise, *params):
    return noise


# --- univariate families: forward maps and implicit gradients --------------------------------


def gamma_forward(x, concentration, rate):
    return x / rate


def gamma_backward(g, x, concentration, rate):
    """x ~ Gamma(concentration, 1), z = x / rate."""
    return g * standard_gamma_grad(concentration, x) / rate, -g * x / (rate * rate)


def dirichlet_backward(g, x, concentration):
    """torch's own Dirichlet backward: dz_i/dα_j from the marginal Beta gradients."""
    total = concentration.sum(-1, keepdim=True).expand_as(concentration)
    grad = dirichlet_grad(x, concentration, total)
    return (grad * (g - (x * g).sum(-1, keepdim=True)),)


def beta_forward(x, concentration1, concentration0):
    return x[..., 0]


def beta_backward(g, x, concentration1, concentration0):
    """Beta(c1, c0) as the first coordinate of Dirichlet((c1, c0))."""
    (grad,) = dirichlet_backward(
        torch.stack([g, torch.zeros_like(g)], -1),
        x,
        torch.stack([concentration1, concentration0], -1),
    )
    return grad[..., 0], grad[..., 1]


def student_t_forward(noise, df, loc, scale):
    """noise[..., 0] ~ N(0, 1), noise[..., 1] ~ Gamma(df/2, 1): z = loc + scale ε √(df / 2G)."""
    return loc + scale * noise[..., 0] * torch.rsqrt(2 * noise[..., 1] / df)


def student_t_backward(g, noise, df, loc, scale):
    eps, gam = noise[..., 0], noise[..., 1]
    y = eps * torch.rsqrt(2 * gam / df)
    dgam_ddf = 0.5 * standard_gamma_grad(0.5 * df, gam)
    dy_ddf = y * (0.5 / df - 0.5 * dgam_ddf / gam)
    return g * scale * dy_ddf, g, g * y


def normal_rsample(loc, scale, eps):
    """The explicit reparameterization (autograd through it)."""
    return loc + scale * eps


# --- log densities (autograd through the compiled graph) --------------------------------------


def normal_log_prob(x, loc, scale):
    t = (x - loc) / scale
    return -0.5 * t * t - torch.log(scale) - _HALF_LOG_2PI


def gamma_log_prob(x, concentration, rate):
    return (
        torch.xlogy(concentration - 1, x)
        + concentration * torch.log(rate)
        - rate * x
        - torch.lgamma(concentration)
    )


def beta_log_prob(x, concentration1, concentration0):
    log_beta = (
        torch.lgamma(concentration1)
        + torch.lgamma(concentration0)
        - torch.lgamma(concentration1 + concentration0)
    )
    return (
        torch.xlogy(concentration1 - 1, x)
        + torch.special.xlog1py(concentration0 - 1, -x)
        - log_beta
    )


def student_t_log_prob(x, df, loc, scale):
    y = (x - loc) / scale
    log_norm = (
        torch.log(scale)
        + 0.5 * torch.log(df)
        + 0.5 * math.log(math.pi)
        + torch.lgamma(0.5 * df)
        - torch.lgamma(0.5 * (df + 1))
    )
    return -0.5 * (df + 1) * torch.log1p(y * y / df) - log_norm


def dirichlet_log_prob(x, concentration):
    return (
        torch.xlogy(concentration - 1, x).sum(-1)
        + torch.lgamma(concentration.sum(-1))
        - torch.lgamma(concentration).sum(-1)
    )


def mixture_log_prob(x, logits, loc, scale):
    """Mixture of K factorized Normals: x (M, D), logits (K,), loc and scale (K, D)."""
    log_q = normal_log_prob(x.unsqueeze(-2), loc, scale).sum(-1)  # (M, K)
    return torch.logsumexp(torch.log_softmax(logits, -1) + log_q, -1)


# --- mixtures of factorized Normals: the hand-written implicit gradient ------------------------


def mixture_backward(g, z, logits, loc, scale):
    """gᵀ dz/dθ for a mixture of K factorized Normals, O(K D) per sample.

    z, g (M, D); logits (K,); loc, scale (K, D). The distributional transform is
    u_d = Σ_k r_kd F_kd(z_d), r_kd = softmax_k(logit_k + Σ_{j<d} log q_kj(z_j)); its Jacobian is
    lower triangular, so the adjoint μ = diag(p) J⁻ᵀ g comes from back substitution. With D = 1
    this is the univariate mixture's dz/dθ_k = ρ_k dz_k/dθ_k, dz/dlogit_k = −w_k(F_k − F)/q.
    """
    t = (z.unsqueeze(-2) - loc) / scale  # (M, K, D)
    log_q = -0.5 * t * t - torch.log(scale) - _HALF_LOG_2PI
    prefix = torch.cumsum(log_q, -1) - log_q  # Σ_{j<d} log q_kj
    log_r = torch.log_softmax(logits.unsqueeze(-1) + prefix, dim=-2)
    r = torch.exp(log_r)
    cdf = torch.special.ndtr(t)
    log_p = torch.logsumexp(log_r + log_q, dim=-2)  # (M, D): the conditional density
    rho = torch.exp(log_r + log_q - log_p.unsqueeze(-2))
    cdf_bar = (r * cdf).sum(-2, keepdim=True)
    e = r * (cdf - cdf_bar) * torch.exp(-log_p).unsqueeze(-2)
    s = -t / scale  # ∂log q/∂z
    dims = z.shape[-1]
    w_next = torch.zeros_like(e[..., 0])
    mus, ws = [None] * dims, [None] * dims
    for d in range(dims - 1, -1, -1):
        ws[d] = w_next
        mus[d] = g[..., d] - (s[..., d] * w_next).sum(-1)
        w_next = w_next + mus[d].unsqueeze(-1) * e[..., d]
    mu = torch.stack(mus, -1).unsqueeze(-2)  # (M, 1, D)
    w = torch.stack(ws, -1)  # (M, K, D)
    grad_logits = -(mu * e).sum((0, 2))
    grad_loc = (mu * rho - w * t / scale).sum(0)
    grad_scale = (mu * rho * t - w * (t * t - 1) / scale).sum(0)
    return grad_logits, grad_loc, grad_scale


def mixture_backward_1d(g, z, logits, loc, scale):
    """The univariate mixture (z, g (M,); loc, scale (K,)) as D = 1 of ``mixture_backward``."""
    grad_logits, grad_loc, grad_scale = mixture_backward(
        g.unsqueeze(-1), z.unsqueeze(-1), logits, loc.unsqueeze(-1), scale.unsqueeze(-1)
    )
    return grad_logits, grad_loc.squeeze(-1), grad_scale.squeeze(-1)


def mixture_log_prob_1d(x, logits, loc, scale):
    return mixture_log_prob(x.unsqueeze(-1), logits, loc.unsqueeze(-1), scale.unsqueeze(-1))


# --- the generic method: autograd Jacobians of the distributional transform --------------------


def mixture_transform(z, logits, loc, scale):
    """u(z; θ) for one sample z (D,) of a mixture of K factorized Normals: u_d = F(z_d | z_<d)."""
    t = (z - loc) / scale  # (K, D)
    log_q = -0.5 * t * t - torch.log(scale) - _HALF_LOG_2PI
    prefix = torch.cumsum(log_q, -1) - log_q
    r = torch.softmax(logits.unsqueeze(-1) + prefix, dim=-2)
    return (r * torch.special.ndtr(t)).sum(-2)


def jacobian_implicit_grad(
    transform: Callable, z: torch.Tensor, g: torch.Tensor, params: list[torch.Tensor]
) -> list[torch.Tensor]:
    """gᵀ dz/dθ summed over samples, with dz/dθ = −J_z⁻¹ J_θ per sample from autograd Jacobians.

    transform(z_i, *params) -> u_i maps one sample (D,) to (D,); z and g are (M, D).
    """
    m, d = z.shape
    argnums = tuple(range(len(params) + 1))
    jac = torch.func.vmap(
        torch.func.jacrev(transform, argnums=argnums),
        in_dims=(0,) + (None,) * len(params),
        chunk_size=8192,  # bounds the memory of the per-sample intermediates
    )(z, *params)
    jac_z = jac[0]  # (M, D, D)
    jac_theta = torch.cat([j.reshape(m, d, -1) for j in jac[1:]], -1)  # (M, D, P)
    dz_dtheta = -torch.linalg.solve(jac_z, jac_theta)  # (M, D, P)
    flat = torch.einsum("md,mdp->p", g, dz_dtheta)
    return [
        part.reshape(p.shape)
        for part, p in zip(flat.split([p.numel() for p in params]), params, strict=True)
    ]
