"""Broadcasting and kernel launches shared by every generated family.

Layout used by all kernels: a value tensor of shape ``S + B'`` (sample dims, then the trailing
batch dims) is flattened to ``M x NB`` rows/columns, with ``NB = prod(B')``; each parameter is
materialised once as a contiguous ``NB``-vector (batch-sized, never sample-sized). Element ``i``
of the value then uses parameter element ``i % NB``.

Backward kernels reduce ``g * d/dθ`` over the M rows inside the kernel: a grid of
(column blocks) x (row splits) programs, each accumulating its tile in registers and writing one
partial sum per column; the host sums the few splits. No per-sample gradient tensor is written
and no atomics are used, so the reduction is deterministic for a given shape and device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from irtgen.runtime.backend import interpreting


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


def out_shapes(value_shape, batch_shape) -> tuple[torch.Size, torch.Size]:
    out = torch.broadcast_shapes(value_shape, batch_shape)
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


# -- Triton launches -------------------------------------------------------------------------


def _next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def map_block(n: int) -> int:
    """Elements per program for elementwise kernels."""
    if interpreting():  # the interpreter pays per program, not per element
        return max(16, min(_next_pow2(n), 1 << 16))
    return 1024


def launch_map(kernel, inputs: list[torch.Tensor], out: torch.Tensor, N: int, NB: int, *extra):
    """kernel(*inputs, out, N, NB, *extra, _BLOCK) over N elements."""
    if N == 0:
        return out
    block = map_block(N)
    grid = (triton_cdiv(N, block),)
    kernel[grid](*inputs, out, N, NB, *extra, _BLOCK=block)
    return out


def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


@dataclass
class Tiling:
    block_m: int
    block_b: int
    splits: int
    m_per_split: int


def backward_tiling(M: int, NB: int, device: torch.device) -> Tiling:
    """Tile sizes for the reducing backward kernels (deterministic in M, NB and device)."""
    total = 1 << 14 if interpreting() else 2048
    block_b = min(_next_pow2(NB), total)
    block_m = max(total // block_b, 1)
    col_blocks = triton_cdiv(NB, block_b)
    programs = 2 if interpreting() else 4 * _sm_count(device)
    splits = max(1, min(programs // col_blocks, triton_cdiv(M, block_m)))
    m_per_split = triton_cdiv(triton_cdiv(M, splits), block_m) * block_m
    splits = max(1, triton_cdiv(M, m_per_split))
    return Tiling(block_m, block_b, splits, m_per_split)


def launch_backward(kernel, flat: Flat, grad: torch.Tensor, needs_value: bool, needs_params):
    """Run a reducing backward kernel; returns (value grad (M*NB,) or None, [param grads (NB,)])."""
    t = backward_tiling(flat.M, flat.NB, flat.value.device)
    dtype = flat.value.dtype
    dev = flat.value.device
    gvalue = torch.empty_like(flat.value) if needs_value else flat.value  # unused when not needed
    partials = [
        torch.empty((t.splits, flat.NB), dtype=dtype, device=dev) if need else flat.value
        for need in needs_params
    ]
    flags = {"_NEED_VALUE": bool(needs_value)}
    for i, need in enumerate(needs_params):
        flags[f"_NEED_P{i}"] = bool(need)
    grid = (triton_cdiv(flat.NB, t.block_b), t.splits)
    kernel[grid](
        flat.value,
        grad,
        *flat.params,
        gvalue,
        *partials,
        flat.M,
        flat.NB,
        t.m_per_split,
        _BLOCK_M=t.block_m,
        _BLOCK_B=t.block_b,
        **flags,
    )
    grads = [p.sum(dim=0) if need else None for p, need in zip(partials, needs_params, strict=True)]
    return (gvalue if needs_value else None), grads


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)
