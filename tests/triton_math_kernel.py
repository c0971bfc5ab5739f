"""A test kernel that applies one irtgen.runtime.triton_math function elementwise."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from irtgen.runtime import triton_math as tlm

NAMES = [
    "log1p",
    "expm1",
    "log1mexp",
    "softplus",
    "sigmoid",
    "erfc",
    "ndtr",
    "ndtri",
    "atan",
    "tanh",
    "asinh",
    "sinh",
    "log_ratio_1",
]


@triton.jit
def _apply_kernel(x_ptr, o_ptr, n, FN: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=0.5)
    if FN == 0:
        r = tlm.log1p(x)
    elif FN == 1:
        r = tlm.expm1(x)
    elif FN == 2:
        r = tlm.log1mexp(x)
    elif FN == 3:
        r = tlm.softplus(x)
    elif FN == 4:
        r = tlm.sigmoid(x)
    elif FN == 5:
        r = tlm.erfc(x)
    elif FN == 6:
        r = tlm.ndtr(x)
    elif FN == 7:
        r = tlm.ndtri(x)
    elif FN == 8:
        r = tlm.atan(x)
    elif FN == 9:
        r = tlm.tanh(x)
    elif FN == 10:
        r = tlm.asinh(x)
    elif FN == 11:
        r = tlm.sinh(x)
    else:
        r = tlm.log_ratio(x, 1.0 + 0.0 * x)
    tl.store(o_ptr + offs, r, mask=m)


def apply(name: str, x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    block = 4096
    _apply_kernel[(triton.cdiv(x.numel(), block),)](
        x, out, x.numel(), FN=NAMES.index(name), BLOCK=block
    )
    return out
