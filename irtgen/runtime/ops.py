"""Differentiable ops of a generated family: sample/rsample, reparameterize, log_prob, cdf, icdf.

Every op runs the family's scalar formulas in numba's kernels (CPU) or Triton's (CUDA), chosen by
``backend.select_backend``, and has a backward computed from the *derived* derivatives:

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

import math

import torch
from torch.autograd.function import once_differentiable

from irtgen.runtime import launch, rng
from irtgen.runtime.backend import cpu_draws, select_backend
from irtgen.runtime.family import Family

# -- the kernels: numba on the CPU, Triton on CUDA (or in the interpreter) ----------------------


def _cpu():
    from irtgen.compilers import cpu

    cpu.set_threads(torch.get_num_threads())
    return cpu


def _gpu():
    from irtgen.compilers import gpu

    return gpu


def _numpy(t: torch.Tensor, dtype: torch.dtype = torch.float64):
    """A numpy view (or copy) of a CPU tensor in ``dtype``. The CPU kernels take float32 or
    float64 values (and compute in float64); parameters are float64."""
    return t.detach().to(dtype).contiguous().numpy()


def _param_rows(params):
    """(NB, NP) float64 numpy array: row j holds the parameters of batch column j."""
    return _numpy(torch.stack([p.reshape(-1) for p in params], dim=1))


def _cpu_formula(family: Family, op: str, P, terms=None):
    """(scalar function, parameter rows) that the CPU kernels run for formula ``op``: ``op``
    itself, or ``op_at`` with the formula's parameter terms appended to P as columns
    (Family.split): ``terms`` (an (NB, n) array, computed by the caller where it knows that
    few parameter values repeat), or computed here once per row of P."""
    split = family.split(op)
    if split is None:
        return family.fn(op), P
    import numpy as np

    fn_terms, at, n = split
    C = _cpu().run_params(fn_terms, P, n).T if terms is None else terms
    return at, np.ascontiguousarray(np.concatenate([P, C], axis=1))


def parameter_terms(family: Family, op: str, params) -> list[torch.Tensor] | None:
    """The parameter terms of formula ``op`` (Family.split) at broadcast parameter tensors, in
    float64 (None where the formula has none). For backward_reduce's ``terms``."""
    split = family.split(op)
    if split is None:
        return None
    fn_terms, _at, n = split
    wide = [torch.as_tensor(p).to(torch.float64) for p in params]
    out = map_scalar(fn_terms, wide, n)
    return list(out) if n > 1 else [out]


def evaluate(family: Family, op: str, tensors):
    """Formula ``op`` of ``family`` at broadcast tensors; a tensor or a tuple of tensors."""
    out = map_scalar(family.fn(op), tensors, family.n_out(op), family.wide(op))
    if op == "in_support":
        return out.to(torch.bool)
    return out


def map_scalar(sf, tensors, n_out: int = 1, wide: bool = False):
    """Scalar function ``sf`` elementwise over broadcast tensors by the current backend: numba
    on the CPU (float64), Triton on CUDA (float64 when ``wide``, else the inputs' dtype). Returns
    a tensor, or a tuple of ``n_out`` tensors, of the inputs' promoted dtype."""
    tensors = [torch.as_tensor(t) for t in tensors]
    work, result = launch.compute_dtype(*tensors)
    shape = launch.broadcast_shapes(*(t.shape for t in tensors))
    device = tensors[0].device
    if select_backend(device) == "numba":
        import numpy as np

        x = _numpy(tensors[0].expand(shape).reshape(-1), work)
        flat = [_numpy(t.expand(shape).reshape(-1)) for t in tensors[1:]]
        P = np.stack(flat, axis=1) if flat else np.zeros((x.size, 0))
        if x.size == 0:
            out = np.empty((n_out, 0)) if n_out > 1 else np.empty(0)
        elif P.shape[1] == 0 and n_out > 1:  # a function of one argument with several outputs
            out = _cpu().run_params(sf, x[:, None], n_out)
        else:
            out = _cpu().run_map(sf, x, P, n_out)
        outs = [torch.from_numpy(np.ascontiguousarray(o)) for o in (out if n_out > 1 else [out])]
    else:
        work = torch.float64 if wide else work
        flat = [t.to(work).expand(shape).contiguous().reshape(-1) for t in tensors]
        out = _gpu().map_scalar(sf, flat, n_out)
        outs = list(out) if n_out > 1 else [out]
    outs = [o.to(device=device, dtype=result).reshape(shape) for o in outs]
    return outs[0] if n_out == 1 else tuple(outs)


def _grad_array(grad: torch.Tensor, dtype: torch.dtype):
    """The flat upstream gradient as a numpy array of ``dtype``: a read-only zero-stride view
    where it is one value broadcast (the gradient of a sum), so it is neither materialised nor
    read element by element from memory."""
    import numpy as np

    if grad.numel() > 1 and all(s == 0 for s in grad.stride()):
        one = grad.reshape(-1)[:1].detach().to(dtype).numpy()
        return np.broadcast_to(one, (grad.numel(),))
    return _numpy(grad.reshape(-1), dtype)


def all_in_support(family: Family, value: torch.Tensor, params, batch_shape) -> bool:
    """Whether every element of ``value`` (broadcast against the batch shape) lies in the
    support, by the family's ``in_support`` formula; on the CPU a counting kernel, without an
    output array."""
    value, params, _ = _prepare(value, params, batch_shape)
    flat = launch.flatten(value, params, batch_shape)
    if select_backend(value.device) == "numba":
        x = _numpy(flat.value, flat.value.dtype)
        return _cpu().run_count_outside(family.fn("in_support"), x, _param_rows(flat.params)) == 0
    inside = evaluate(family, "in_support", (flat.value.reshape(flat.M, flat.NB), *flat.params))
    return bool(inside.all())


# -- forward ---------------------------------------------------------------------------------


def _prepare(value: torch.Tensor, params, batch_shape):
    work, result = launch.compute_dtype(value, *params)
    value = value.to(work)
    params = [p.to(work) for p in params]
    return value, params, result


def forward_map(family: Family, op: str, value: torch.Tensor, params, batch_shape) -> torch.Tensor:
    """Elementwise op (log_prob, cdf, sf, icdf) at ``value`` broadcast against the batch shape;
    the support conventions are part of the formulas."""
    value, params, result_dtype = _prepare(value, params, batch_shape)
    flat = launch.flatten(value, params, batch_shape)
    if select_backend(value.device) == "numba":
        sf, P = _cpu_formula(family, op, _param_rows(flat.params))
        x = _numpy(flat.value, flat.value.dtype)
        out = torch.from_numpy(_cpu().run_map(sf, x, P))
    else:
        out = _gpu().run_family_map(family.fn(op), flat.value, flat.params, family.wide(op))
    return out.reshape(flat.out_shape).to(result_dtype)


def draw(family: Family, shape: torch.Size, params, batch_shape, generator=None) -> torch.Tensor:
    """Samples of ``shape`` = sample_shape + batch_shape (no gradient): element i of the flat
    draw is the family's sampler keyed by (Philox seed from the torch generator, i), the same
    numbers on every backend."""
    device = params[0].device
    work, result = launch.compute_dtype(*params)
    flat_params = [p.to(work).expand(batch_shape).contiguous().reshape(-1) for p in params]
    n = math.prod(shape)
    backend = select_backend(device)
    if backend == "numba" and family.base_draw and cpu_draws() == "torch":
        z = _draw_from_torch(family, shape, flat_params, work, generator).to(result)
        return inside_support(family, z, params, batch_shape)
    seed = rng.philox_seed(device, generator)
    if backend == "numba":
        P = _param_rows(flat_params)
        dtype = torch.empty(0, dtype=work).numpy().dtype
        z = torch.from_numpy(_cpu().run_sample(family.fn("sample"), P, n, seed, dtype))
    else:
        z = _gpu().run_family_sample(
            family.fn("sample"), flat_params, n, seed, work, family.wide("sample")
        )
    return inside_support(family, z.reshape(shape).to(result), params, batch_shape)


def support_interior(family: Family, params, batch_shape, dtype):
    """(lo, hi): the smallest and largest numbers of ``dtype`` strictly inside the support's
    ends, per batch element: the next number after a finite end, the smallest normal number
    above an end at 0 (as torch clamps its Gamma and Beta draws; a subnormal would be flushed to
    0 by a GPU's float32 arithmetic), ±the largest finite number for an infinite end."""
    wide = [torch.as_tensor(p).to(torch.float64).expand(batch_shape) for p in params]
    ends = evaluate(family, "support", wide)
    info = torch.finfo(dtype)
    lo, hi = (e.to(dtype) for e in ends)
    lo_in = torch.where(
        lo == 0,
        info.tiny,
        torch.nextafter(lo, torch.tensor(math.inf, dtype=dtype, device=lo.device)),
    )
    hi_in = torch.where(
        hi == 0,
        -info.tiny,
        torch.nextafter(hi, torch.tensor(-math.inf, dtype=dtype, device=hi.device)),
    )
    # nextafter of -inf is -max; of +inf, +max
    return lo_in, hi_in


def zero_at_clamped(family: Family, z: torch.Tensor, grad: torch.Tensor, params, batch_shape):
    """The upstream gradient with 0 where z lies on support_interior's ends: a draw clamped
    there by ``inside_support`` is a constant (the clamp's derivative is 0), so its gradient is
    0, not the formula's value at the clamped point (which in float32 can exceed the range, e.g.
    dz/ddf of a Student-t draw at ±3.4e38)."""
    if not z.dtype.is_floating_point or z.numel() == 0:
        return grad
    lo, hi = support_interior(family, params, batch_shape, z.dtype)
    return grad.masked_fill((z == lo) | (z == hi), 0)


def inside_support(family: Family, z: torch.Tensor, params, batch_shape) -> torch.Tensor:
    """The draw rule: every draw is finite and strictly inside the support in its dtype. A draw
    that rounded onto an end of the support or beyond (an exact value that the dtype cannot
    hold: Gamma(0.01) below float32's range, Beta(0.01, 0.01) within 2^-24 of 1, Student-t
    with df = 0.05 beyond float32's largest number) becomes the nearest number strictly inside
    (support_interior); NaN (invalid parameters) stays NaN."""
    if not z.dtype.is_floating_point or z.numel() == 0:
        return z
    lo, hi = support_interior(family, params, batch_shape, z.dtype)
    if lo.numel() == 1:
        return z.clamp_(float(lo.reshape(())), float(hi.reshape(())))
    return torch.minimum(torch.maximum(z, lo), hi)


def _draw_from_torch(family: Family, shape, flat_params, work, generator) -> torch.Tensor:
    """CPU draws of a family whose draw transforms one uniform (its icdf) or one normal
    (``sample_from_normal``), with that uniform or normal from torch's generator
    (backend.cpu_draws): torch.rand in float64 (52 of its bits kept, never 0 or 1), torch.randn
    in the compute dtype, as torch.distributions draws them."""
    n = math.prod(shape)
    P = _param_rows(flat_params)
    dtype = torch.empty(0, dtype=work).numpy().dtype
    if family.base_draw == "normal":
        r = torch.randn(n, dtype=work, generator=generator)
        z = _cpu().run_map(family.fn("sample_from_normal"), r.numpy(), P)
    else:
        u = torch.rand(n, dtype=torch.float64, generator=generator)
        sf, P = _cpu_formula(family, "icdf", P)
        z = _cpu().run_uniforms(sf, u.numpy(), P, dtype)
    return torch.from_numpy(z).reshape(shape)


# -- backward --------------------------------------------------------------------------------


def backward_reduce(family: Family, op: str, value, grad, params, needs, batch_shape, terms=None):
    """Gradients of sum(grad * op(value)) w.r.t. value and params, via the derived derivatives.

    ``op`` names the derivative formulas: "implicit" (1/q, dz/dθ; "implicit_drawn" for a value
    from ``draw``, where an element moved by the draw rule gets 0), "log_prob" (∂log q/∂x,
    ∂log q/∂θ) or "cdf" (q, ∂F/∂θ). ``needs`` = (value?, param_1?, ...). One fused kernel
    computes every needed gradient and reduces over the sample dimensions; an element where
    grad is 0 contributes exactly 0. ``terms``: the formula's parameter terms at ``params``
    (parameter_terms), for callers whose parameters have the shape of the value but few
    distinct values; the CPU kernels otherwise compute them once per parameter element.
    """
    if op == "implicit_drawn":  # value from draw(): a draw moved by the draw rule is a constant
        grad = zero_at_clamped(family, value, grad, params, batch_shape)
        op = "implicit"
    need_value, need_params = needs[0], list(needs[1:])
    orig_value_shape = value.shape
    param_shapes = [p.shape for p in params]
    value, params, result_dtype = _prepare(value, params, batch_shape)
    grad = grad.to(value.dtype)
    out_shape, param_shape = launch.out_shapes(value.shape, batch_shape)
    grad = torch.broadcast_to(grad, out_shape)
    flat = launch.flatten(value, params, batch_shape)
    grad_fn, inside_fn = family.fn(f"{op}_grad"), family.fn("in_support")
    if select_backend(value.device) == "numba":
        x, gx = _numpy(flat.value, flat.value.dtype), _grad_array(grad, flat.value.dtype)
        if terms is not None:
            terms = _param_rows(launch.flatten(value, terms, batch_shape).params)
        grad_fn, P = _cpu_formula(family, f"{op}_grad", _param_rows(flat.params), terms)
        light = not family.wide_gradients  # no special function: a small formula
        gv, gp = _cpu().run_backward(grad_fn, inside_fn, x, gx, P, need_value, len(params), light)
        gvalue = torch.from_numpy(gv) if gv is not None else None
        gparams = [torch.from_numpy(gp[k]) if n else None for k, n in enumerate(need_params)]
    else:
        g = grad.contiguous().reshape(-1)
        gvalue, gparams = _gpu().run_family_backward(
            grad_fn, inside_fn, flat.value, g, flat.params, needs, family.wide(op)
        )
    if gvalue is not None:
        gvalue = launch.reduce_to(gvalue.reshape(out_shape), orig_value_shape).to(result_dtype)
    gparams = [
        launch.reduce_to(gp.reshape(param_shape), shape).to(result_dtype)
        if gp is not None
        else None
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
    def forward(ctx, family, batch_shape, drawn, z, *params):
        ctx.family, ctx.batch_shape, ctx.drawn = family, batch_shape, drawn
        ctx.save_for_backward(z, *params)
        return z.view_as(z)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        z, *params = ctx.saved_tensors
        needs = (False, *ctx.needs_input_grad[4:])
        op = "implicit_drawn" if ctx.drawn else "implicit"
        _, gparams = backward_reduce(ctx.family, op, z, grad, params, needs, ctx.batch_shape)
        return (None, None, None, None, *gparams)


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
    return _Reparameterize.apply(family, batch_shape, False, z.to(result), *params)


def rsample(family: Family, shape, params, batch_shape, generator=None):
    with torch.no_grad():
        z = draw(family, torch.Size(shape), params, batch_shape, generator)
    return _Reparameterize.apply(family, batch_shape, True, z, *params)
