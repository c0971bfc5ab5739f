"""Broadcasting shared by every generated family's kernels (irtgen.compilers.cpu and .gpu).

Layout used by all kernels: a value tensor of shape ``S + B'`` (sample dims, then the trailing
batch dims) is flattened to ``M x NB`` rows/columns, with ``NB = prod(B')``; each parameter is
materialised once as a contiguous ``NB``-vector (batch-sized, never sample-sized). Element ``i``
of the value then uses parameter element ``i % NB``.

Backward kernels reduce ``g * d/dθ`` over the M rows inside the kernel, in a fixed order (fixed
chunks on the CPU, fixed tiles and splits on the GPU): no per-sample gradient tensor is written,
no atomics are used, and the result is deterministic for a given shape and device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Flat:
    """A value and its parameters, flattened for kernels."""

    value: torch.Tensor  # (M * NB,), contiguous
    params: list[torch.Tensor]  # each (NB,), contiguous
    out_shape: torch.Size
    param_shape: torch.Size  # B': trailing dims of out_shape that the parameters span
    M: int
    NB: int


def compute_dtype(*tensors: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(dtype to compute in, dtype to return): half precision computes in float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    return work, dtype


def broadcast_shapes(*shapes) -> torch.Size:
    """torch.broadcast_shapes for shapes of plain ints, in Python: torch's own imports its
    symbolic-shape machinery (and SymPy, ~0.5 s) on first use. Symbolic shapes (under
    torch.compile) go to torch's."""
    if not all(type(d) is int for s in shapes for d in s):
        return torch.broadcast_shapes(*shapes)
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, d in enumerate(s, ndim - len(s)):
            if d == out[i] or d == 1:
                continue
            if out[i] != 1:
                raise RuntimeError(
                    f"Shape mismatch: objects cannot be broadcast to a single shape: {shapes}"
                )
            out[i] = d
    return torch.Size(out)


def out_shapes(value_shape, batch_shape) -> tuple[torch.Size, torch.Size]:
    out = broadcast_shapes(value_shape, batch_shape)
    nb = len(batch_shape)
    param_shape = out[len(out) - nb :] if nb else torch.Size()
    return out, param_shape


def flatten(value: torch.Tensor, params, batch_shape) -> Flat:
    out_shape, param_shape = out_shapes(value.shape, batch_shape)
    flat_params = [p.expand(param_shape).contiguous().reshape(-1) for p in params]
    flat_value = value.expand(out_shape).contiguous().reshape(-1)
    NB = math.prod(param_shape)  # 1 for a scalar batch
    M = flat_value.numel() // NB if NB else 0
    return Flat(flat_value, flat_params, out_shape, param_shape, M, NB)


def reduce_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a gradient of a broadcast shape back to ``shape``."""
    if grad.shape == shape:
        return grad
    lead = grad.dim() - len(shape)
    if lead > 0:
        grad = grad.sum(dim=tuple(range(lead)))
    return grad.sum_to_size(shape) if grad.shape != shape else grad
