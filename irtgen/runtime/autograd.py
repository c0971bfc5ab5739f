"""What every irtgen autograd function shares so that torch.func's transforms meet a defined
behaviour: the vmap rules.

The autograd functions (irtgen.runtime.ops, the composites) are written in torch.func's form:
``forward`` without ``ctx``, ``setup_context``, and a ``vmap`` staticmethod, so
``torch.func.grad``, ``vjp``, ``jacrev``, ``jacfwd`` (the ops of generated families have a
``jvp``), ``hessian``, ``vmap`` and
``torch.autograd.gradcheck(check_batched_grad=True)`` work on them. The torch.library custom ops
that torch.compile sees (irtgen.runtime.library) register the same vmap rule.
"""

from __future__ import annotations

import torch

from irtgen.runtime import rng


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
        gen = generator if generator is not None else rng.default_generator(device)
        state = gen.get_state()
        outs = []
        for b in range(info.batch_size):
            gen.set_state(state)
            outs.append(apply(*_select(args, in_dims, b)))
        return torch.stack(outs), 0
    return vmap_by_loop(apply, info, in_dims, *args)


def without_gradient(forward, name: str, draws=None):
    """``forward`` (tensors and other arguments in, one tensor out) as an autograd function
    whose output has no gradient, so that torch.func's transforms unwrap its inputs before the
    kernels read them; its vmap rule is vmap_by_loop, or vmap_draw where ``draws`` is given
    (a function of the arguments giving the (device, generator) the draw consumes). Returns
    the function's ``apply``."""

    def vmap(info, in_dims, *args):
        if draws is None:
            return vmap_by_loop(fn.apply, info, in_dims, *args)
        device, generator = draws(*args)
        return vmap_draw(fn.apply, info, in_dims, device, generator, *args)

    fn = type(
        name,
        (torch.autograd.Function,),
        {
            "__doc__": forward.__doc__,
            "forward": staticmethod(forward),
            "setup_context": staticmethod(
                lambda ctx, inputs, output: ctx.mark_non_differentiable(output)
            ),
            "jvp": staticmethod(lambda ctx, *tangents: None),
            "vmap": staticmethod(vmap),
        },
    )
    return fn.apply
