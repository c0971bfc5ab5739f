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

The autograd functions below are in torch.func's form (irtgen.runtime.autograd): the first
derivatives are the kernels' (``_Backward``), forward mode evaluates the same formulas per
element (``_Derivatives``), and second derivatives are autograd's through the formulas bound to
torch (irtgen.compilers.bind.torch_function; ``second_order``), refused by name where a formula
branches per element.
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from irtgen.runtime import autograd, launch, rng
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
    if any(_functorch_wrapped(t) for t in (value, *params)):  # under torch.func's transforms
        return torch._is_all_true(_InSupport(family, batch_shape, value, *params)).item()
    value, params, _ = _prepare(value, params, batch_shape)
    flat = launch.flatten(value, params, batch_shape)
    if select_backend(value.device) == "numba":
        x = _numpy(flat.value, flat.value.dtype)
        return _cpu().run_count_outside(family.fn("in_support"), x, _param_rows(flat.params)) == 0
    inside = evaluate(family, "in_support", (flat.value.reshape(flat.M, flat.NB), *flat.params))
    return bool(inside.all())


def _functorch_wrapped(t) -> bool:
    return isinstance(t, torch.Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(t)


def _in_support(family, batch_shape, value, *params):
    """The family's in_support formula at ``value`` broadcast against the batch shape (a bool
    tensor): the support check of validation under torch.func's transforms, whose wrapped
    tensors the kernels cannot read directly."""
    value, params, _ = _prepare(value, params, batch_shape)
    return evaluate(family, "in_support", (value, *(p.expand(batch_shape) for p in params)))


_InSupport = autograd.without_gradient(_in_support, "InSupport")


_NumericMode = autograd.without_gradient(
    lambda family, batch_shape, *params: numeric_mode(family, params, batch_shape), "NumericMode"
)


def mode(family: Family, params, batch_shape) -> torch.Tensor:
    return _NumericMode(family, torch.Size(batch_shape), *params)


def numeric_mode(family: Family, params, batch_shape) -> torch.Tensor:
    """The mode where the build found no closed form: per batch element, log q at 241 quantiles
    (logits -30 ... 30, so u from 1e-13 to 1 - 1e-13), then 64 bisections of the quantile
    between the best point's neighbours on the sign of d log q/dz (log_prob_grad's first
    output). Where that lands beyond the outermost grid point next to a finite end of the
    support, the mode is the end (the density rises towards it). The global maximum among the grid's points is refined, so a
    multimodal density gives its highest mode where the grid separates the modes. Computed in
    float64 without a gradient."""
    dtype = params[0].dtype
    wide = [p.detach().to(torch.float64).expand(batch_shape).reshape(1, -1) for p in params]
    nb = wide[0].shape[1]
    if nb == 0:
        return torch.empty(batch_shape, dtype=dtype, device=params[0].device)
    device = wide[0].device
    u = torch.sigmoid(torch.linspace(-30.0, 30.0, 241, dtype=torch.float64, device=device))
    zs = evaluate(family, "icdf", (u[:, None].expand(-1, nb), *wide))
    logq = evaluate(family, "log_prob", (zs, *wide)).nan_to_num(nan=-math.inf)
    k = logq.argmax(dim=0)
    last = len(u) - 1
    lo = torch.where(k > 0, u[(k - 1).clamp(min=0)], 0.0)
    hi = torch.where(k < last, u[(k + 1).clamp(max=last)], 1.0)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        z = evaluate(family, "icdf", (mid[None], *wide))
        slope = evaluate(family, "log_prob_grad", (z, *wide))[0][0]
        rising = slope > 0
        lo = torch.where(rising, mid, lo)
        hi = torch.where(rising, hi, mid)
    mode = evaluate(family, "icdf", (0.5 * (lo + hi)[None], *wide))[0]
    # beyond the grid's outermost point next to a finite end: the density rises towards that
    # end as far as the grid can tell (Gamma's 0 for concentration < 1), and the mode is the end
    ends = evaluate(family, "support", wide)
    below = (k == 0) & (mode < zs[0]) & torch.isfinite(ends[0][0])
    above = (k == last) & (mode > zs[last]) & torch.isfinite(ends[1][0])
    mode = torch.where(below, ends[0][0], torch.where(above, ends[1][0], mode))
    return mode.reshape(batch_shape).to(dtype)


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


def _draw(family: Family, shape: torch.Size, params, batch_shape, generator=None) -> torch.Tensor:
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
# In torch.func's form (irtgen.runtime.autograd): forward without ctx, setup_context, a vmap
# rule. The first derivatives are the kernels' (backward_reduce, through _Backward); the
# second are autograd's, through the derivative formulas bound to torch (second_order).


_Draw = autograd.without_gradient(
    lambda family, shape, batch_shape, generator, *params: _draw(
        family, shape, params, batch_shape, generator
    ),
    "Draw",
    draws=lambda family, shape, batch_shape, generator, *params: (params[0].device, generator),
)


def draw(family: Family, shape: torch.Size, params, batch_shape, generator=None) -> torch.Tensor:
    """Samples of ``shape`` = sample_shape + batch_shape (no gradient); see _draw."""
    return _Draw(family, torch.Size(shape), torch.Size(batch_shape), generator, *params)


class _Backward(torch.autograd.Function):
    """backward_reduce as a function: (value grad, *param grads), an empty tensor for each that
    ``needs`` (value?, param_1?, ...) does not ask for. Its own backward is the second
    derivative (second_order)."""

    @staticmethod
    def forward(family, op, batch_shape, needs, value, grad, *params):
        gvalue, gparams = backward_reduce(family, op, value, grad, params, needs, batch_shape)
        empty = value.new_empty(0)
        return (gvalue if gvalue is not None else empty,) + tuple(
            g if g is not None else empty for g in gparams
        )

    @staticmethod
    def setup_context(ctx, inputs, output):
        family, op, batch_shape, needs, value, grad, *params = inputs
        ctx.family, ctx.op, ctx.batch_shape, ctx.needs = family, op, batch_shape, needs
        ctx.save_for_backward(value, grad, *params)
        ctx.save_for_forward(value, grad, *params)

    @staticmethod
    def jvp(ctx, _family, _op, _batch_shape, _needs, *tangents):
        # forward mode through the derivative formulas bound to torch (second_order's)
        primals = ctx.saved_tensors
        tangents = [
            torch.zeros_like(p) if t is None else t for p, t in zip(primals, tangents, strict=True)
        ]
        return _formulas_jvp(ctx.family, ctx.op, ctx.batch_shape, ctx.needs, primals, tangents)

    @staticmethod
    @once_differentiable
    def backward(ctx, *ggrads):
        value, grad, *params = ctx.saved_tensors
        grads = second_order(
            ctx.family,
            ctx.op,
            value,
            grad,
            params,
            ctx.needs,
            ctx.batch_shape,
            ggrads,
            ctx.needs_input_grad[4:],
        )
        return (None, None, None, None, *grads)

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_Backward.apply, info, in_dims, *args)


def gradients(family: Family, op: str, value, grad, params, needs, batch_shape):
    """(value grad or None, [param grads or None]) of sum(grad * op(value)): backward_reduce,
    differentiable once more where the family's formulas allow (second_order)."""
    needs = tuple(bool(n) for n in needs)
    if not any(needs):
        return None, [None] * len(params)
    if torch._C._functorch.is_legacy_batchedtensor(grad):  # gradcheck's batched gradients
        out = backward_formulas(family, op, value, grad, params, needs, batch_shape, True)
        return out[0], out[1:]
    out = _Backward.apply(family, op, torch.Size(batch_shape), needs, value, grad, *params)
    gvalue = out[0] if needs[0] else None
    return gvalue, [g if n else None for g, n in zip(out[1:], needs[1:], strict=True)]


def backward_formulas(
    family: Family, op: str, value, grad, params, needs, batch_shape, kernels=False
):
    """backward_reduce's results as tensor code: [value grad, *param grads], None where
    ``needs`` is False. The derivative values come from the formulas bound to torch
    (irtgen.compilers.bind.torch_function), which autograd differentiates once more (raises
    SecondOrderUnavailable where a formula branches per element), or, with ``kernels``, from
    the kernels (first order, for an upstream gradient that only tensor code can read: a
    batched gradient of gradcheck's check_batched_grad)."""
    if op == "implicit_drawn":
        grad = zero_at_clamped(
            family, value.detach(), grad, [p.detach() for p in params], batch_shape
        )
        op = "implicit"
    work, result = launch.compute_dtype(value, *params)
    v, ps = value.to(work), [p.to(work) for p in params]
    out_shape, _ = launch.out_shapes(v.shape, batch_shape)
    if kernels:
        bs = [p.expand(batch_shape) for p in ps]
        derivatives = evaluate(family, f"{op}_grad", (v, *bs))
        inside = evaluate(family, "in_support", (v, *bs))
    else:
        from irtgen.compilers import bind

        derivatives = bind.torch_function(family.fn(f"{op}_grad"))(v, *ps)
        inside = bind.torch_function(family.fn("in_support"))(v, *ps)
    g = grad.to(work).expand(out_shape)
    # as the kernels: 0 outside the support and where the upstream gradient is 0
    keep = inside.expand(out_shape) & (g != 0)
    g = torch.where(keep, g, 0.0)
    shapes = [value.shape] + [p.shape for p in params]
    out = []
    for d, need, shape in zip(derivatives, needs, shapes, strict=True):
        if not need:
            out.append(None)
            continue
        term = torch.where(keep, g * torch.as_tensor(d, dtype=work), 0.0)
        out.append(launch.reduce_to(term.expand(out_shape), shape).to(result))
    return out


def second_order(family, op, value, grad, params, needs, batch_shape, ggrads, input_needs):
    """Gradients of <ggrads, backward_reduce(value, grad, params)> w.r.t. (value, grad,
    *params): autograd through backward_formulas."""
    from irtgen.compilers.torch_tl import SecondOrderUnavailable

    pairs = [(i, gg) for i, gg in enumerate(ggrads) if needs[i] and gg is not None]
    if not pairs or not any(input_needs):
        return [None] * len(input_needs)
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_() for t in (value, grad, *params)]
        try:
            outs = backward_formulas(
                family, op, leaves[0], leaves[1], leaves[2:], needs, batch_shape
            )
        except SecondOrderUnavailable as e:
            raise RuntimeError(
                f"irtgen: {family.name}: second derivatives are not available ({e}); its "
                "gradients are first order"
            ) from None
        wanted = [i for i, n in enumerate(input_needs) if n]
        grads = torch.autograd.grad(
            [outs[i] for i, _ in pairs],
            [leaves[i] for i in wanted],
            [gg for _, gg in pairs],
            allow_unused=True,
        )
    full = [None] * len(input_needs)
    for i, gr in zip(wanted, grads, strict=True):
        full[i] = gr
    return full


def _torch_derivatives(family: Family, op: str, at, params, batch_shape):
    """The derivative formulas of ``op`` bound to torch (differentiable), 0 outside the support;
    each of shape out_shapes(at.shape, batch_shape)[0]."""
    from irtgen.compilers import bind

    out_shape, _ = launch.out_shapes(at.shape, batch_shape)
    inside = bind.torch_function(family.fn("in_support"))(at, *params)
    derivatives = bind.torch_function(family.fn(f"{op}_grad"))(at, *params)
    keep = inside.expand(out_shape)
    return tuple(torch.where(keep, torch.as_tensor(d).expand(out_shape), 0.0) for d in derivatives)


def _second_order_error(family: Family, e) -> RuntimeError:
    return RuntimeError(
        f"irtgen: {family.name}: second derivatives are not available ({e}); its gradients "
        "are first order"
    )


class _Derivatives(torch.autograd.Function):
    """The derivative formulas of an op ("log_prob", "cdf", "implicit") per element, from the
    kernels, 0 outside the support: the forward-mode derivatives of the ops (jvp). Their own
    derivatives are autograd's through the formulas bound to torch."""

    @staticmethod
    def forward(family, op, batch_shape, at, *params):
        work, result = launch.compute_dtype(at, *params)
        x = at.to(work)
        bs = [p.to(work).expand(batch_shape) for p in params]
        out_shape, _ = launch.out_shapes(x.shape, batch_shape)
        keep = evaluate(family, "in_support", (x, *bs)).expand(out_shape)
        derivatives = evaluate(family, f"{op}_grad", (x, *bs))
        return tuple(torch.where(keep, d.expand(out_shape), 0.0).to(result) for d in derivatives)

    @staticmethod
    def setup_context(ctx, inputs, output):
        family, op, batch_shape, at, *params = inputs
        ctx.family, ctx.op, ctx.batch_shape = family, op, batch_shape
        ctx.save_for_backward(at, *params)
        ctx.save_for_forward(at, *params)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        from irtgen.compilers.torch_tl import SecondOrderUnavailable

        at, *params = ctx.saved_tensors
        wanted = [i for i, n in enumerate(ctx.needs_input_grad[3:]) if n]
        pairs = [(i, g) for i, g in enumerate(grads) if g is not None]
        full = [None] * (1 + len(params))
        if not wanted or not pairs:
            return (None, None, None, *full)
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_() for t in (at, *params)]
            try:
                d = _torch_derivatives(ctx.family, ctx.op, leaves[0], leaves[1:], ctx.batch_shape)
            except SecondOrderUnavailable as e:
                raise _second_order_error(ctx.family, e) from None
            out = torch.autograd.grad(
                [d[i] for i, _ in pairs],
                [leaves[i] for i in wanted],
                [g for _, g in pairs],
                allow_unused=True,
            )
        for i, g in zip(wanted, out, strict=True):
            full[i] = g
        return (None, None, None, *full)

    @staticmethod
    def jvp(ctx, _family, _op, _batch_shape, *tangents):
        from irtgen.compilers.torch_tl import SecondOrderUnavailable

        primals = ctx.saved_tensors
        tangents = [
            torch.zeros_like(p) if t is None else t for p, t in zip(primals, tangents, strict=True)
        ]

        def f(at, *params):
            return _torch_derivatives(ctx.family, ctx.op, at, params, ctx.batch_shape)

        try:
            return torch.func.jvp(f, tuple(primals), tuple(tangents))[1]
        except SecondOrderUnavailable as e:
            raise _second_order_error(ctx.family, e) from None

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_Derivatives.apply, info, in_dims, *args)


def forward_derivative(family: Family, op: str, at, params, tangents, batch_shape):
    """The forward-mode derivative (jvp) of an op: sum_i D_i t_i over the inputs with a
    tangent, D the derivative formulas of ``op`` ("log_prob", "cdf", "implicit",
    "implicit_drawn") at ``at`` (_Derivatives); ``tangents`` = (value's, *params'); 0 outside
    the support and, for "implicit_drawn", at a draw moved by the draw rule."""
    drawn = op == "implicit_drawn"
    op = "implicit" if drawn else op
    derivatives = _Derivatives.apply(family, op, torch.Size(batch_shape), at, *params)
    total = None
    for d, t in zip(derivatives, tangents, strict=True):
        if t is not None:
            total = d * t if total is None else total + d * t
    if total is None:
        total = torch.zeros_like(derivatives[0])
    if drawn:
        lo, hi = support_interior(family, [p.detach() for p in params], batch_shape, at.dtype)
        total = torch.where((at == lo) | (at == hi), 0.0, total)
    return total


def _formulas_jvp(family, op, batch_shape, needs, primals, tangents):
    """The jvp of backward_formulas (torch code) at ``primals``: a second derivative in forward
    mode (torch.func.hessian's jacfwd over jacrev), empty where ``needs`` is False."""
    from irtgen.compilers.torch_tl import SecondOrderUnavailable

    def f(value, grad, *params):
        out = backward_formulas(family, op, value, grad, params, needs, batch_shape)
        return tuple(o if o is not None else value.new_empty(0) for o in out)

    try:
        _, out = torch.func.jvp(f, tuple(primals), tuple(tangents))
    except SecondOrderUnavailable as e:
        raise RuntimeError(
            f"irtgen: {family.name}: second derivatives are not available ({e}); its "
            "gradients are first order"
        ) from None
    return out


class _ElementwiseOp(torch.autograd.Function):
    """log_prob / cdf / icdf with derived backward formulas."""

    @staticmethod
    def forward(family, op, batch_shape, value, *params):
        return forward_map(family, op, value, params, batch_shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        family, op, batch_shape, value, *params = inputs
        ctx.family, ctx.op, ctx.batch_shape, ctx.value_shape = family, op, batch_shape, value.shape
        # icdf's derivatives are evaluated at z = icdf(u): the output itself, through which a
        # second derivative sees dz/du and dz/dθ
        at = output if op == "icdf" else value
        ctx.save_for_backward(at, *params)
        ctx.save_for_forward(at, *params)

    @staticmethod
    def jvp(ctx, _family, _op, _batch_shape, value_t, *param_ts):
        at, *params = ctx.saved_tensors
        op = "implicit" if ctx.op == "icdf" else ctx.op
        return forward_derivative(ctx.family, op, at, params, (value_t, *param_ts), ctx.batch_shape)

    @staticmethod
    def backward(ctx, grad):
        at, *params = ctx.saved_tensors
        # icdf: dz/du = 1/q(z) and dz/dθ, the implicit formulas at z = icdf(u)
        op = "implicit" if ctx.op == "icdf" else ctx.op
        needs = ctx.needs_input_grad[3:]
        gvalue, gparams = gradients(ctx.family, op, at, grad, params, needs, ctx.batch_shape)
        if gvalue is not None and gvalue.shape != ctx.value_shape:
            gvalue = launch.reduce_to(gvalue, ctx.value_shape)
        return (None, None, None, gvalue, *gparams)

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_ElementwiseOp.apply, info, in_dims, *args)


class _Reparameterize(torch.autograd.Function):
    """Identity on z whose backward is the implicit gradient dz/dθ = -(∂F/∂θ)/q."""

    @staticmethod
    def forward(family, batch_shape, drawn, z, *params):
        return z.view_as(z)

    @staticmethod
    def setup_context(ctx, inputs, output):
        family, batch_shape, drawn, z, *params = inputs
        ctx.family, ctx.batch_shape, ctx.drawn = family, batch_shape, drawn
        # the output (z carrying dz/dθ): a second derivative differentiates dz/dθ(z, θ) through
        # z as well
        ctx.save_for_backward(output, *params)
        ctx.save_for_forward(z, *params)

    @staticmethod
    def jvp(ctx, _family, _batch_shape, _drawn, _z_t, *param_ts):
        # z is a constant: its own tangent does not enter
        z, *params = ctx.saved_tensors
        op = "implicit_drawn" if ctx.drawn else "implicit"
        return forward_derivative(ctx.family, op, z, params, (None, *param_ts), ctx.batch_shape)

    @staticmethod
    def backward(ctx, grad):
        z, *params = ctx.saved_tensors
        needs = (False, *ctx.needs_input_grad[4:])
        op = "implicit_drawn" if ctx.drawn else "implicit"
        _, gparams = gradients(ctx.family, op, z, grad, params, needs, ctx.batch_shape)
        return (None, None, None, None, *gparams)

    @staticmethod
    def vmap(info, in_dims, *args):
        return autograd.vmap_by_loop(_Reparameterize.apply, info, in_dims, *args)


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
    z = draw(family, torch.Size(shape), params, batch_shape, generator)
    return _Reparameterize.apply(family, batch_shape, True, z, *params)
