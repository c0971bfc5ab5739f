"""The generated families' ops as torch.library custom ops, so that torch.compile sees each one
as a single opaque node (``fullgraph=True`` works) and autograd uses the derived derivatives.

=====================================  =========================================================
op                                     backward (``irtgen::backward``, itself an op)
=====================================  =========================================================
``irtgen::sample(family, params,       none (draws only)
shape, batch_shape, token)``
``irtgen::reparameterize(family, z,    dz/dθ = -(∂F/∂θ)/q at the given z (the implicit
params, batch_shape)``                 gradient); z is a constant. rsample is
                                       reparameterize(sample(...)).
``irtgen::elementwise(family, op,      log_prob: ∂log q/∂θ, ∂log q/∂x; cdf: ∂F/∂θ, q;
value, params, batch_shape)``          icdf: dz/dθ and dz/du = 1/q at z = icdf(u)
=====================================  =========================================================

``family`` is the generated module's name (``Family.key``); the family is found in
``sys.modules``. ``sample`` carries the ``nondeterministic_seeded`` tag and increments a
per-device counter (``rng_token``), so a compiled graph neither merges two draws nor reorders
them: the same seed gives the same draws compiled and eager. Draws use the device's default
generator (``torch.manual_seed``); a ``generator=`` argument is honoured on the eager path
(``ops``), since custom ops cannot take one.

The composites register their own ops in the same namespace, with the same conventions (draws
tagged ``nondeterministic_seeded`` and advancing ``rng_token``, fake implementations, autograd
through a backward op): ``irtgen::dirichlet_sample``, ``dirichlet_normalize``,
``dirichlet_reparameterize``, ``dirichlet_backward`` (``irtgen.composite.dirichlet``) and
``irtgen::mixture_sample``, ``mixture_reparameterize``, ``mixture_backward``
(``irtgen.composite.mixture``). They share ``rng_token`` with ``irtgen::sample``, so draws of
generated families and composites keep their order relative to each other.
"""

from __future__ import annotations

import functools
import sys

import torch
from torch.library import custom_op

from irtgen.runtime import autograd, launch, ops
from irtgen.runtime.family import Family


def family_of(key: str) -> Family:
    """The Family of the generated module named ``key``."""
    module = sys.modules.get(key)
    if module is None:
        import importlib

        module = importlib.import_module(key)
    return module.FAMILY


def eager() -> bool:
    """True outside torch.compile. Eager calls run the ops as autograd functions in Python
    (irtgen.runtime.ops, the composites' own), without a custom op's dispatch, the copy that a
    custom op's output must be, and the import of torch._dynamo (1.6 s) that the first call of
    a custom op with autograd costs. Under torch.compile they are the custom ops below, single
    nodes of the graph. Both run the same kernels."""
    return not (torch.compiler.is_compiling() or torch._C._is_tracing())


def int_list(shape) -> list[int]:
    """A shape as the ``list[int]`` argument of a custom op. Under torch.jit.trace a size read
    from a tensor is a 0-dim tensor, which an ``int[]`` argument rejects (an internal assert);
    the trace then holds the traced shapes as constants."""
    return [int(s) for s in shape]


def _result_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return launch.compute_dtype(*tensors)[1]


# -- sampling --------------------------------------------------------------------------------

# One counter per device that every draw increments: the draws mutate it, so a compiled graph
# keeps them in program order (they consume the device generator in that order, as in eager
# mode) instead of reordering them as independent pure ops.
_RNG_TOKENS: dict[str, torch.Tensor] = {}


def rng_token(device: torch.device) -> torch.Tensor:
    key = str(device)
    token = _RNG_TOKENS.get(key)
    if token is None:
        token = _RNG_TOKENS[key] = torch.zeros(1, dtype=torch.int64, device=device)
    return token


@custom_op("irtgen::sample", mutates_args=("token",), tags=(torch.Tag.nondeterministic_seeded,))
def sample(
    family: str,
    params: list[torch.Tensor],
    shape: list[int],
    batch_shape: list[int],
    token: torch.Tensor,
) -> torch.Tensor:
    """Draws of ``shape`` (sample_shape + batch_shape), no gradient; ``token`` (rng_token) is
    incremented."""
    token.add_(1)
    return ops.draw(family_of(family), torch.Size(shape), params, torch.Size(batch_shape))


@sample.register_fake
def _(family, params, shape, batch_shape, token):
    return params[0].new_empty(shape, dtype=_result_dtype(*params))


@custom_op("irtgen::reparameterize", mutates_args=())
def reparameterize(
    family: str,
    z: torch.Tensor,
    params: list[torch.Tensor],
    batch_shape: list[int],
    drawn: bool,
) -> torch.Tensor:
    """A copy of z (broadcast against the batch shape) whose gradient is the implicit one;
    ``drawn``: z is ``sample``'s, so a draw that the draw rule moved has gradient 0."""
    out_shape, _ = launch.out_shapes(z.shape, torch.Size(batch_shape))
    return z.expand(out_shape).to(_result_dtype(z, *params)).clone()


@reparameterize.register_fake
def _(family, z, params, batch_shape, drawn):
    out_shape, _ = launch.out_shapes(z.shape, torch.Size(batch_shape))
    return z.new_empty(out_shape, dtype=_result_dtype(z, *params))


# -- elementwise maps ------------------------------------------------------------------------


@custom_op("irtgen::elementwise", mutates_args=())
def elementwise(
    family: str, op: str, value: torch.Tensor, params: list[torch.Tensor], batch_shape: list[int]
) -> torch.Tensor:
    """log_prob, cdf, sf or icdf at ``value`` broadcast against the batch shape."""
    return ops.forward_map(family_of(family), op, value, params, torch.Size(batch_shape))


@elementwise.register_fake
def _(family, op, value, params, batch_shape):
    out_shape, _ = launch.out_shapes(value.shape, torch.Size(batch_shape))
    return value.new_empty(out_shape, dtype=_result_dtype(value, *params))


@custom_op("irtgen::numeric_mode", mutates_args=())
def numeric_mode(family: str, params: list[torch.Tensor], batch_shape: list[int]) -> torch.Tensor:
    """The mode of a family without a closed form (ops.numeric_mode), no gradient."""
    return ops.numeric_mode(family_of(family), params, torch.Size(batch_shape))


@numeric_mode.register_fake
def _(family, params, batch_shape):
    return params[0].new_empty(batch_shape)


# -- the backward ----------------------------------------------------------------------------


@custom_op("irtgen::backward", mutates_args=())
def backward(
    family: str,
    op: str,
    value: torch.Tensor,
    grad: torch.Tensor,
    params: list[torch.Tensor],
    needs: list[bool],
    batch_shape: list[int],
) -> list[torch.Tensor]:
    """[grad of value, grad of each param] of sum(grad * op(value)); an empty tensor where
    ``needs`` (value?, param_1?, ...) is False. ``op``: implicit, implicit_drawn (value from
    ``sample``: see ops.backward_reduce), log_prob or cdf."""
    gvalue, gparams = ops.backward_reduce(
        family_of(family), op, value, grad, params, tuple(needs), torch.Size(batch_shape)
    )
    out = [gvalue if gvalue is not None else value.new_empty(0)]
    return out + [
        g if g is not None else p.new_empty(0) for g, p in zip(gparams, params, strict=True)
    ]


@backward.register_fake
def _(family, op, value, grad, params, needs, batch_shape):
    dtype = _result_dtype(value, *params)
    out = [value.new_empty(value.shape if needs[0] else (0,), dtype=dtype)]
    return out + [
        p.new_empty(p.shape if need else (0,), dtype=dtype)
        for p, need in zip(params, needs[1:], strict=True)
    ]


def _grads(family, op, value, grad, params, need_value, need_params, batch_shape):
    """(value grad or None, [param grads or None]) through ``irtgen::backward``."""
    needs = [bool(need_value), *(bool(n) for n in need_params)]
    if not any(needs):
        return None, [None] * len(params)
    out = backward(family, op, value, grad, params, needs, batch_shape)
    gvalue = out[0] if need_value else None
    gparams = [g if n else None for g, n in zip(out[1:], need_params, strict=True)]
    return gvalue, gparams


# -- autograd --------------------------------------------------------------------------------


def _no_grad_for(ints: list[int]):
    """The backward's entry for a list-of-ints argument: autograd compares the structure with
    the inputs', where a non-empty int list is one leaf and an empty one an empty list."""
    return None if len(ints) else []


def _setup_reparameterize(ctx, inputs, output):
    family, z, params, batch_shape, drawn = inputs
    ctx.family, ctx.batch_shape, ctx.drawn = family, batch_shape, drawn
    ctx.needs = [p.requires_grad for p in params]
    # the output, z carrying dz/dθ: a second derivative differentiates through it (ops)
    ctx.save_for_backward(output, *params)


def _backward_reparameterize(ctx, grad):
    z, *params = ctx.saved_tensors
    op = "implicit_drawn" if ctx.drawn else "implicit"  # ops.backward_reduce
    _, gparams = _grads(ctx.family, op, z, grad, params, False, ctx.needs, ctx.batch_shape)
    # z is a constant: no gradient flows into it
    return None, None, gparams, _no_grad_for(ctx.batch_shape), None


reparameterize.register_autograd(_backward_reparameterize, setup_context=_setup_reparameterize)


def _setup_elementwise(ctx, inputs, output):
    family, op, value, params, batch_shape = inputs
    ctx.family, ctx.op, ctx.batch_shape = family, op, batch_shape
    ctx.need_value = value.requires_grad
    ctx.needs = [p.requires_grad for p in params]
    # icdf's derivatives are evaluated at z = icdf(u)
    ctx.save_for_backward(value, output if op == "icdf" else value, *params)


def _backward_elementwise(ctx, grad):
    value, at, *params = ctx.saved_tensors
    op = "implicit" if ctx.op == "icdf" else ctx.op
    if ctx.op == "sf":
        raise RuntimeError("irtgen: sf has no derivative formulas; differentiate cdf instead")
    gvalue, gparams = _grads(
        ctx.family, op, at, grad, params, ctx.need_value, ctx.needs, ctx.batch_shape
    )
    if gvalue is not None and gvalue.shape != value.shape:
        gvalue = launch.reduce_to(gvalue, value.shape)
    return None, None, gvalue, gparams, _no_grad_for(ctx.batch_shape)


elementwise.register_autograd(_backward_elementwise, setup_context=_setup_elementwise)


def _setup_backward(ctx, inputs, output):
    family, op, value, grad, params, needs, batch_shape = inputs
    ctx.family, ctx.op, ctx.needs, ctx.batch_shape = family, op, needs, batch_shape
    ctx.input_needs = [value.requires_grad, grad.requires_grad, *(p.requires_grad for p in params)]
    ctx.save_for_backward(value, grad, *params)


def _backward_backward(ctx, ggrads):
    value, grad, *params = ctx.saved_tensors
    grads = ops.second_order(
        family_of(ctx.family),
        ctx.op,
        value,
        grad,
        params,
        ctx.needs,
        torch.Size(ctx.batch_shape),
        ggrads,
        ctx.input_needs,
    )
    gvalue, ggrad, *gparams = grads
    return None, None, gvalue, ggrad, gparams, None, _no_grad_for(ctx.batch_shape)


backward.register_autograd(_backward_backward, setup_context=_setup_backward)


# -- vmap (torch.func.vmap, jacrev, vmap over grad): irtgen.runtime.autograd's rules ----------


@sample.register_vmap
def _(info, in_dims, family, params, shape, batch_shape, token):
    return autograd.vmap_draw(
        sample, info, in_dims, params[0].device, None, family, params, shape, batch_shape, token
    )


for _op in (reparameterize, elementwise, backward, numeric_mode):
    _op.register_vmap(functools.partial(autograd.vmap_by_loop, _op))
