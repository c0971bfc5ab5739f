"""Differentiable special functions for any torch code, with gradients in every argument.

``gammainc(a, x)`` = P(a, x), ``gammaincc(a, x)`` = Q(a, x) = 1 - P(a, x) (regularized incomplete
gamma) and ``betainc(a, b, x)`` = I_x(a, b) (regularized incomplete beta). torch's own
``torch.special.gammainc`` has no gradient in ``a``; these have ∂/∂a (and ∂/∂b) as well as ∂/∂x.

The gradients reuse the ratio functions of the compiler (``irtgen.functions``):
∂P/∂x = x^(a-1) e^(-x)/Γ(a) (in log space), ∂P/∂a = ∂P/∂x * gammainc_da_ratio(a, x), and so on.
Values and gradients are computed in float64 internally; float32 in, float32 out. CUDA tensors
run Triton kernels, CPU tensors the torch implementation (``IRTGEN_BACKEND`` as for families).
Arguments broadcast; integer inputs are promoted to the default dtype.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from irtgen.runtime import launch, torch_special
from irtgen.runtime.backend import select_backend

__all__ = ["gammainc", "gammaincc", "betainc"]


def _prepare(*args):
    tensors = [torch.as_tensor(a) for a in args]
    device = next((t.device for t in tensors if t.device.type != "cpu"), tensors[0].device)
    tensors = [t.to(device) for t in tensors]
    _, result = launch.compute_dtype(*tensors)
    # float64 throughout, also for float32 inputs: exp(log density) and its products are
    # then rounded once, at the end
    tensors = torch.broadcast_tensors(*(t.to(torch.float64) for t in tensors))
    return [t.contiguous() for t in tensors], result


def _kernels():
    from irtgen.runtime import special_kernels

    return special_kernels


def _launch(kernel, tensors, n, **meta):
    block = launch.map_block(n)
    if n:
        kernel[(launch.triton_cdiv(n, block),)](*tensors, n, **meta, BLOCK=block)


def _reduce(grad, like):
    return launch.reduce_to(grad, like.shape).to(like.dtype) if grad is not None else None


class _IncompleteGamma(torch.autograd.Function):
    @staticmethod
    def forward(ctx, upper, a, x):
        (wa, wx), result = _prepare(a, x)
        if select_backend(wa.device) == "torch":
            fn = torch_special.gammaincc if upper else torch_special.gammainc
            out = fn(wa, wx)
        else:
            out = torch.empty_like(wa)
            _launch(_kernels().gamma_value_kernel, [wa, wx, out], out.numel(), UPPER=upper)
        ctx.upper = upper
        ctx.save_for_backward(a, x)
        return out.to(result)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, x = ctx.saved_tensors
        (wa, wx, g), _ = _prepare(a, x, grad)
        if select_backend(wa.device) == "torch":
            sign = -1.0 if ctx.upper else 1.0
            gd = sign * g * torch.exp(torch_special.log_gamma_density(wa, wx))
            da, dx = gd * torch_special.gammainc_da_ratio(wa, wx), gd
        else:
            da, dx = torch.empty_like(wa), torch.empty_like(wa)
            _launch(_kernels().gamma_grad_kernel, [wa, wx, g, da, dx], wa.numel(), UPPER=ctx.upper)
        needs = ctx.needs_input_grad
        return (
            None,
            _reduce(da, a) if needs[1] else None,
            _reduce(dx, x) if needs[2] else None,
        )


class _IncompleteBeta(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, x):
        (wa, wb, wx), result = _prepare(a, b, x)
        if select_backend(wa.device) == "torch":
            out = torch_special.betainc(wa, wb, wx, 1.0 - wx)
        else:
            out = torch.empty_like(wa)
            _launch(_kernels().beta_value_kernel, [wa, wb, wx, out], out.numel())
        ctx.save_for_backward(a, b, x)
        return out.to(result)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, b, x = ctx.saved_tensors
        (wa, wb, wx, g), _ = _prepare(a, b, x, grad)
        if select_backend(wa.device) == "torch":
            wy = 1.0 - wx
            gd = g * torch.exp(torch_special.log_beta_density(wa, wb, wx, wy))
            da = gd * torch_special.betainc_da_ratio(wa, wb, wx, wy)
            db = gd * torch_special.betainc_db_ratio(wa, wb, wx, wy)
            dx = gd
        else:
            da, db, dx = (torch.empty_like(wa) for _ in range(3))
            _launch(_kernels().beta_grad_kernel, [wa, wb, wx, g, da, db, dx], wa.numel())
        needs = ctx.needs_input_grad
        return tuple(
            _reduce(d, t) if need else None
            for d, t, need in zip((da, db, dx), (a, b, x), needs, strict=True)
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
