"""What every irtgen autograd function shares so that torch.func's transforms and higher-order
autograd meet a defined behaviour: a vmap rule, and the error of a derivative that is first
order only.

The autograd functions (irtgen.runtime.ops, the composites) are written in torch.func's form:
``forward`` without ``ctx``, ``setup_context``, and a ``vmap`` staticmethod, so
``torch.func.grad``, ``vjp``, ``jacrev``, ``jacfwd``-free compositions, ``vmap`` and
``torch.autograd.gradcheck(check_batched_grad=True)`` work on them. The torch.library custom ops
that torch.compile sees (irtgen.runtime.library) register the same vmap rule.
"""

from __future__ import annotations

import functools

import torch
from torch._C import _functions


def _select(arg, dim, b):
    if dim is None:
        return arg
    if isinstance(arg, (list, tuple)):
        return type(arg)(_select(a, d, b) for a, d in zip(arg, dim, strict=True))
    return arg.select(dim, b)


def vmap_by_loop(apply, info, in_dims, *args):
    """A vmap rule: ``apply`` (an autograd function's ``apply`` or a custom op) on each element
    of the vmapped dimension, the results stacked along dimension 0. The kernels take whole
    tensors, so one call per element is what vmap costs; inputs without a vmapped dimension
    pass unchanged. An output that is an empty tensor (a gradient that was not asked for) is
    returned unbatched."""
    outs = [apply(*_select(args, in_dims, b)) for b in range(info.batch_size)]
    if isinstance(outs[0], (tuple, list)):
        stacked, dims = [], []
        for i in range(len(outs[0])):
            column = [o[i] for o in outs]
            if column[0].numel() == 0:
                stacked.append(column[0])
                dims.append(None)
            else:
                stacked.append(torch.stack(column))
                dims.append(0)
        return type(outs[0])(stacked), type(outs[0])(dims)
    return torch.stack(outs), 0


def default_generator(device: torch.device, generator: torch.Generator | None):
    """The generator a draw on ``device`` consumes."""
    if generator is not None:
        return generator
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index or torch.cuda.current_device()]
    return torch.default_generator


def vmap_draw(apply, info, in_dims, device, generator, *args):
    """The vmap rule of a draw, by vmap's ``randomness``: "error" (vmap's default) refuses as
    torch's own random operators do; "different" draws each element of the vmapped dimension
    anew; "same" gives every element the same random numbers (the generator is rewound to one
    state before each element's draw, then left as after one draw)."""
    if info.randomness == "error":
        raise RuntimeError(
            "vmap: called random operation while in randomness error mode. Please either use "
            "the 'same' or 'different' randomness flags on vmap or perform the randomness "
            "operation out of vmap"
        )
    if info.randomness == "same":
        gen = default_generator(device, generator)
        state = gen.get_state()
        outs = []
        for b in range(info.batch_size):
            gen.set_state(state)
            outs.append(apply(*_select(args, in_dims, b)))
        return torch.stack(outs), 0
    return vmap_by_loop(apply, info, in_dims, *args)


def first_order(what: str):
    """``@once_differentiable`` with irtgen's message: the backward runs without recording a
    graph, and differentiating its result (a second derivative) raises an error that names
    ``what`` and says that its gradients are first order."""
    message = (
        f"irtgen: {what} has first derivatives only; a gradient of its gradient "
        "(create_graph=True, torch.func.hessian, jacfwd over jacrev) is not available"
    ).encode()

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(ctx, *args):
            with torch.no_grad():
                outputs = fn(ctx, *args)
            if not torch.is_grad_enabled():
                return outputs
            if not any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
                return outputs
            single = not isinstance(outputs, tuple)
            outs = (outputs,) if single else outputs
            tensors = [o for o in outs if isinstance(o, torch.Tensor)]
            if not tensors:
                return outputs
            err = _functions.DelayedError(message, len(tensors))
            aliased = err(*[t.detach().requires_grad_() for t in tensors])
            aliased = iter(aliased if isinstance(aliased, tuple) else (aliased,))
            outs = tuple(next(aliased) if isinstance(o, torch.Tensor) else o for o in outs)
            return outs[0] if single else outs

        return wrapper

    return decorate
