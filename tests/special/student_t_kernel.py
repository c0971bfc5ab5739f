"""Test kernel for the Student-t functions of irtgen.runtime.triton_special: student_t_cdf and
student_t_ddf_ratio elementwise on 2-D tiles (ROWS x BLOCK/ROWS), as the generated kernels use
them."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from irtgen.runtime import triton_special as tls

BLOCK = 64
ROWS = 8


@triton.jit
def student_t_kernel(df_ptr, t_ptr, cdf_ptr, ratio_ptr, n, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    cols: tl.constexpr = BLOCK // ROWS
    tile = tl.arange(0, ROWS)[:, None] * cols + tl.arange(0, cols)[None, :]
    offs = tl.program_id(0) * BLOCK + tile
    m = offs < n
    df = tl.load(df_ptr + offs, mask=m, other=1.0)
    t = tl.load(t_ptr + offs, mask=m, other=0.0)
    tl.store(cdf_ptr + offs, tls.student_t_cdf(df, t), mask=m)
    tl.store(ratio_ptr + offs, tls.student_t_ddf_ratio(df, t), mask=m)


def student_t_functions(df, t) -> tuple[torch.Tensor, torch.Tensor]:
    """(student_t_cdf, student_t_ddf_ratio) at (df, t) (one dtype), one launch."""
    df, t = (v.contiguous() for v in torch.broadcast_tensors(df, t))
    cdf, ratio = torch.empty_like(t), torch.empty_like(t)
    grid = (triton.cdiv(t.numel(), BLOCK),)
    student_t_kernel[grid](df, t, cdf, ratio, t.numel(), BLOCK=BLOCK, ROWS=ROWS)
    return cdf, ratio
