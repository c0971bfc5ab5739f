"""Differentiable ops of a generated family: sample/rsample, reparameterize, log_prob, cdf, icdf.

Every op runs the family's torch formulas or its Triton kernels (``backend.select_backend``) and
has a backward computed from the *derived* derivatives, on both backends:

=================  ===============================================================================
op                 backward
=================  ===============================================================================
rsample,           dz/dθ = -(∂F/∂θ)/q, the implicit reparameterization gradient; the draw itself
reparameterize(z)  is a constant (no gradient flows into a given z)
icdf(u)            dz/dθ as above, dz/du = 1/q
log_prob(x)        ∂log q/∂θ and ∂log q/∂x; zero outside the support
cdf(x)             ∂F/∂θ and q; zero outside the support
=================  ===============================================================================

Gradients are reduced over sample dimensions inside the backward (kernel or torch code) to the
batch shape; autograd's expand backward takes them on to each parameter's own shape.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from irtgen.runtime import launch, rng
from irtgen.runtime.backend import select_backend
from irtgen.runtime.family import Family

# -- forward ---------------------------------------------------------------------------------


def _prepare(value: torch.Tensor, params, batch_shape, wide: bool = False):
    work, result = launch.compute_dtype(value, *params)
    if wide:
        work = torch.float64
    value = value.to(work)
    params = [p.to(work) for p in params]
    return value, params, result


def _mask_torch(family: Family, op: str, x, out, params):
    """Apply the support conventions of ``op`` to raw formula output (torch path)."""
    if not family.has_bounds and op != "icdf":
        return out
    lo, hi = family.torch_fn("support")(*params)
    if op == "log_prob":
        inside = family.torch_fn("in_support")(x, *params)
        return torch.where(inside, out, torch.full_like(out, -float("inf")))
    if op == "cdf":
        out = torch.where(x < lo, torch.zeros_like(out), out)
        return torch.where(x > hi, torch.ones_like(out), out)
    if op == "sf":
        out = torch.where(x < lo, torch.ones_like(out), out)
        return torch.where(x > hi, torch.zeros_like(out), out)
    # icdf: the ends of [0, 1] map to the ends of the support; outside is NaN
    out = torch.where(
        x <= 0, torch.broadcast_to(torch.as_tensor(lo, dtype=out.dtype), out.shape), out
    )
    out = torch.where(
        x >= 1, torch.broadcast_to(torch.as_tensor(hi, dtype=out.dtype), out.shape), out
    )
    return torch.where((x < 0) | (x > 1), torch.full_like(out, float("nan")), out)


def forward_map(family: Family, op: str, value: torch.Tensor, params, batch_shape) -> torch.Tensor:
    """Elementwise op (log_prob, cdf, sf, icdf) at ``value`` broadcast against the batch shape."""
    value, params, result_dtype = _prepare(value, params, batch_shape)
    out_shape, _ = launch.out_shapes(value.shape, batch_shape)
    if select_backend(value.device) == "torch":
        raw = family.torch_fn(op)(value, *params)
        out = torch.broadcast_to(raw, out_shape)
        out = _mask_torch(family, op, value, out, params)
    else:
        flat = launch.flatten(value, params, batch_shape)
        out = torch.empty_like(flat.value)
        launch.launch_map(family.kernel(op), [flat.value, *flat.params], out, out.numel(), flat.NB)
        out = out.reshape(out_shape)
    return out.to(result_dtype)


def draw(family: Family, shape: torch.Size, params, batch_shape, generator=None) -> torch.Tensor:
    """Samples of ``shape`` = sample_shape + batch_shape (no gradient)."""
    dummy = params[0]
    work, result = launch.compute_dtype(*params)
    params = [p.to(work) for p in params]
    if select_backend(dummy.device) == "torch":
        if family.has_sampler:
            z = family.torch_fn("sample")(*(p.expand(shape) for p in params), generator)
        else:
            u = rng.uniform(shape, work, dummy.device, generator)
            z = family.torch_fn("icdf")(u, *params)
        z = torch.broadcast_to(z, shape).clone()
    else:
        flat_params = [p.expand(batch_shape).contiguous().reshape(-1) for p in params]
        nb = max(flat_params[0].numel(), 1)
        z = torch.empty(shape, dtype=work, device=dummy.device)
        seed = rng.philox_seed(dummy.device, generator)
        launch.launch_map(family.kernel("sample"), flat_params, z, z.numel(), nb, seed)
    return z.to(result)


# -- backward --------------------------------------------------------------------------------


def backward_reduce(family: Family, op: str, value, grad, params, needs, batch_shape):
    """Gradients of sum(grad * op(value)) w.r.t. value and params, via the derived derivatives.

    ``op`` names the derivative formulas: "implicit" (1/q, dz/dθ), "log_prob" (∂log q/∂x,
    ∂log q/∂θ) or "cdf" (q, ∂F/∂θ). ``needs`` = (value?, param_1?, ...).
    """
    need_value, need_params = needs[0], list(needs[1:])
    orig_value_shape = value.shape
    param_shapes = [p.shape for p in params]
    # families with special functions evaluate their derivative formulas in float64: products
    # such as z^2 * ratio (InverseGamma) overflow float32 where the result does not
    value, params, result_dtype = _prepare(value, params, batch_shape, family.wide_gradients)
    grad = grad.to(value.dtype)
    out_shape, param_shape = launch.out_shapes(value.shape, batch_shape)
    grad = torch.broadcast_to(grad, out_shape)

    if select_backend(value.device) == "torch":
        derivs = family.torch_fn(f"{op}_grad")(value, *params, needs=(need_value, *need_params))
        inside = family.torch_fn("in_support")(value, *params) if family.has_bounds else None

        def weighted(d):
            w = grad * d
            return torch.where(inside, w, torch.zeros_like(w)) if inside is not None else w

        gvalue = weighted(derivs[0]) if need_value else None
        gparams = [
            launch.reduce_to(torch.broadcast_to(weighted(d), out_shape), param_shape)
            if need
            else None
            for d, need in zip(derivs[1:], need_params, strict=True)
        ]
    else:
        flat = launch.flatten(value, params, batch_shape)
        g = grad.contiguous().reshape(-1)
        gvalue, gparams = launch.launch_backward(
            family.kernel(f"{op}_backward"), flat, g, need_value, need_params
        )
        if gvalue is not None:
            gvalue = gvalue.reshape(out_shape)
        gparams = [gp.reshape(param_shape) if gp is not None else None for gp in gparams]

    if gvalue is not None:
        gvalue = launch.reduce_to(torch.broadcast_to(gvalue, out_shape), orig_value_shape)
        gvalue = gvalue.to(result_dtype)
    gparams = [
        launch.reduce_to(gp, shape).to(result_dtype) if gp is not None else None
        for gp, shape in zip(gparams, param_shapes, strict=True)
    ]
    return gvalue, gparams


# -- autograd functions ----------------------------------------------------------------------


class _ElementwiseOp(torch.autograd.Function):
    """log_prob / cdf / icdf with derived backward formulas."""

    @staticmethod
    def forward(ctx, family, op, batch_shape, value, *params):
        ctx.family, ctx.op, ctx.batch_shape = family, op, batch_shape
        out = forward_map(family, op, value, params, batch_shape)
        if op == "icdf":  # the backward is evaluated at z = icdf(u)
            ctx.save_for_backward(value, out, *params)
        else:
            ctx.save_for_backward(value, *params)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        family, op = ctx.family, ctx.op
        needs = ctx.needs_input_grad[3:]
        if op == "icdf":
            u, z, *params = ctx.saved_tensors
            # dz/du = 1/q(z) and dz/dθ: the implicit formulas evaluated at z = icdf(u)
            gz, gparams = backward_reduce(
                family, "implicit", z, grad, params, needs, ctx.batch_shape
            )
            gvalue = launch.reduce_to(gz, u.shape) if gz is not None else None
        else:
            value, *params = ctx.saved_tensors
            gvalue, gparams = backward_reduce(
                family, op, value, grad, params, needs, ctx.batch_shape
            )
        return (None, None, None, gvalue, *gparams)


class _Reparameterize(torch.autograd.Function):
    """Identity on z whose backward is the implicit gradient dz/dθ = -(∂F/∂θ)/q."""

    @staticmethod
    def forward(ctx, family, batch_shape, z, *params):
        ctx.family, ctx.batch_shape = family, batch_shape
        ctx.save_for_backward(z, *params)
        return z.view_as(z)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z, *params = ctx.saved_tensors
        needs = (False, *ctx.needs_input_grad[3:])
        _, gparams = backward_reduce(
            ctx.family, "implicit", z, grad, params, needs, ctx.batch_shape
        )
        return (None, None, None, *gparams)


def log_prob(family: Family, value, params, batch_shape):
    return _ElementwiseOp.apply(family, "log_prob", batch_shape, value, *params)


def cdf(family: Family, value, params, batch_shape):
    return _ElementwiseOp.apply(family, "cdf", batch_shape, value, *params)


def icdf(family: Family, value, params, batch_shape):
    return _ElementwiseOp.apply(family, "icdf", batch_shape, value, *params)


def reparameterize(family: Family, z: torch.Tensor, params, batch_shape):
    """z (broadcast against the batch shape) carrying the implicit gradient to the parameters."""
    out_shape, _ = launch.out_shapes(z.shape, batch_shape)
    z = z.detach().expand(out_shape)
    _, result = launch.compute_dtype(z, *params)
    return _Reparameterize.apply(family, batch_shape, z.to(result), *params)


def rsample(family: Family, shape, params, batch_shape, generator=None):
    with torch.no_grad():
        z = draw(family, torch.Size(shape), params, batch_shape, generator)
    return _Reparameterize.apply(family, batch_shape, z, *params)
