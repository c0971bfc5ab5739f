"""Differentiable special functions for any torch code, with gradients in every argument.

``gammainc(a, x)`` = P(a, x), ``gammaincc(a, x)`` = Q(a, x) = 1 - P(a, x) (regularized incomplete
gamma) and ``betainc(a, b, x)`` = I_x(a, b) (regularized incomplete beta). torch's own
``torch.special.gammainc`` has no gradient in ``a``; these have ∂/∂a (and ∂/∂b) as well as ∂/∂x.

The gradients reuse the ratio functions of the compiler (``irtgen.functions``):
∂P/∂x = x^(a-1) e^(-x)/Γ(a) (in log space), ∂P/∂a = ∂P/∂x * gammainc_da_ratio(a, x), and so on.
Values and gradients are computed in float64 internally; float32 in, float32 out. The same scalar
source (irtgen.scalar) runs in numba's kernels for CPU tensors and Triton's for CUDA tensors
(``IRTGEN_BACKEND`` as for families).
Arguments broadcast; integer inputs are promoted to the default dtype.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from irtgen.runtime import launch, ops
from irtgen.scalar import beta as be
from irtgen.scalar import gamma as ga
from irtgen.scalar import scalar, tl

__all__ = ["gammainc", "gammaincc", "betainc"]


# -- the per-element functions (irtgen.scalar), run by numba on the CPU and Triton on CUDA ------


@scalar
def _gammainc_grad(a, x):
    """(∂P/∂a, ∂P/∂x) = density * (gammainc_da_ratio, 1), density = x^(a-1) e^(-x)/Γ(a)."""
    d = tl.exp(ga.log_gamma_density(a, x))
    return d * ga.gammainc_da_ratio(a, x), d


@scalar
def _betainc(a, b, x):
    return be.betainc(a, b, x, 1.0 - x)


@scalar
def _betainc_grad(a, b, x):
    """(∂I/∂a, ∂I/∂b, ∂I/∂x) = density * (da ratio, db ratio, 1)."""
    y = 1.0 - x
    d = tl.exp(be.log_beta_density(a, b, x, y))
    ra, rb = be.betainc_ratios(a, b, x, y)
    return d * ra, d * rb, d


def _prepare(*args):
    tensors = [torch.as_tensor(a) for a in args]
    device = next((t.device for t in tensors if t.device.type != "cpu"), tensors[0].device)
    tensors = [t.to(device) for t in tensors]
    _, result = launch.compute_dtype(*tensors)
    # float64 throughout, also for float32 inputs: exp(log density) and its products are
    # then rounded once, at the end
    return [t.to(torch.float64) for t in tensors], result


def _reduce(grad, like):
    return launch.reduce_to(grad, like.shape).to(like.dtype) if grad is not None else None


class _IncompleteGamma(torch.autograd.Function):
    @staticmethod
    def forward(ctx, upper, a, x):
        (wa, wx), result = _prepare(a, x)
        out = ops.map_scalar(ga.gammaincc if upper else ga.gammainc, [wa, wx], wide=True)
        ctx.upper = upper
        ctx.save_for_backward(a, x)
        return out.to(result)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, x = ctx.saved_tensors
        (wa, wx, g), _ = _prepare(a, x, grad)
        da, dx = ops.map_scalar(_gammainc_grad, [wa, wx], 2, wide=True)
        sign = -1.0 if ctx.upper else 1.0  # Q = 1 - P
        needs = ctx.needs_input_grad
        return (
            None,
            _reduce(sign * g * da, a) if needs[1] else None,
            _reduce(sign * g * dx, x) if needs[2] else None,
        )


class _IncompleteBeta(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, x):
        (wa, wb, wx), result = _prepare(a, b, x)
        out = ops.map_scalar(_betainc, [wa, wb, wx], wide=True)
        ctx.save_for_backward(a, b, x)
        return out.to(result)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, b, x = ctx.saved_tensors
        (wa, wb, wx, g), _ = _prepare(a, b, x, grad)
        grads = ops.map_scalar(_betainc_grad, [wa, wb, wx], 3, wide=True)
        needs = ctx.needs_input_grad
        return tuple(
            _reduce(g * d, t) if need else None
            for d, t, need in zip(grads, (a, b, x), needs, strict=True)
        )


def _tensors(*args):
    return [
        a if torch.is_tensor(a) else torch.as_tensor(a, dtype=torch.get_default_dtype())
        for a in args
    ]


def gammainc(a, x) -> torch.Tensor:
    """Regularized lower incomplete gamma P(a, x) = γ(a, x)/Γ(a), differentiable in a and x."""
    return _IncompleteGamma.apply(False, *_tensors(a, x))


def gammaincc(a, x) -> torch.Tensor:
    """Regularized upper incomplete gamma Q(a, x) = 1 - P(a, x), computed directly (accurate
    where P is close to 1), differentiable in a and x."""
    return _IncompleteGamma.apply(True, *_tensors(a, x))


def betainc(a, b, x) -> torch.Tensor:
    """Regularized incomplete beta I_x(a, b), differentiable in a, b and x."""
    return _IncompleteBeta.apply(*_tensors(a, b, x))
