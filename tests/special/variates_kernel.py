"""A test kernel that draws one variate per element with one irtgen.runtime.triton_variates
primitive, at Philox offsets base + index, and stores it."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from irtgen.runtime import triton_variates as tv

NAMES = [
    "standard_normal",
    "standard_gamma",
    "log_standard_gamma",
    "beta_variate",
    "student_t_variate",
]


@triton.jit
def _draw_kernel(a_ptr, b_ptr, o_ptr, n, seed, base, stream, FN: tl.constexpr, BLOCK: tl.constexpr):
    idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = idx < n
    a = tl.load(a_ptr + idx, mask=m, other=1.0)
    b = tl.load(b_ptr + idx, mask=m, other=1.0)
    offset = base + idx.to(tl.int64)
    if FN == 0:
        r = tv.standard_normal(seed, offset, stream, a)
    elif FN == 1:
        r = tv.standard_gamma(a, seed, offset, stream)
    elif FN == 2:
        r = tv.log_standard_gamma(a, seed, offset, stream)
    elif FN == 3:
        r = tv.beta_variate(a, b, seed, offset, stream)
    else:
        r = tv.student_t_variate(a, seed, offset, stream)
    tl.store(o_ptr + idx, r, mask=m)


def draw(name: str, a: torch.Tensor, b=None, *, seed: int, base: int = 0, stream: int = 0):
    """One variate per element of ``a`` (and ``b`` for the Beta), with ``a``'s dtype."""
    a = a.contiguous()
    b = a if b is None else b.contiguous()
    out = torch.empty_like(a)
    block = 2048
    grid = (triton.cdiv(a.numel(), block),)
    _draw_kernel[grid](a, b, out, a.numel(), seed, base, stream, FN=NAMES.index(name), BLOCK=block)
    return out
