"""Test kernels that apply irtgen.runtime.triton_gamma functions elementwise.

The incomplete-gamma kernel works on 2-D tiles (ROWS x BLOCK/ROWS), as the generated gradient
kernels do, so the per-lane loops are exercised on a block of rank 2."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from irtgen.runtime import triton_gamma as tg

BLOCK = 256
ROWS = 16


@triton.jit
def incomplete_gamma_kernel(
    a_ptr, x_ptr, p_ptr, q_ptr, r_ptr, d_ptr, n, BLOCK: tl.constexpr, ROWS: tl.constexpr
):
    cols: tl.constexpr = BLOCK // ROWS
    tile = tl.arange(0, ROWS)[:, None] * cols + tl.arange(0, cols)[None, :]
    offs = tl.program_id(0) * BLOCK + tile
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=1.0)
    x = tl.load(x_ptr + offs, mask=m, other=1.0)
    tl.store(p_ptr + offs, tg.gammainc(a, x), mask=m)
    tl.store(q_ptr + offs, tg.gammaincc(a, x), mask=m)
    tl.store(r_ptr + offs, tg.gammainc_da_ratio(a, x), mask=m)
    tl.store(d_ptr + offs, tg.log_gamma_density(a, x), mask=m)


@triton.jit
def gamma_function_kernel(x_ptr, lg_ptr, dg_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=1.0)
    tl.store(lg_ptr + offs, tg.lgamma(x), mask=m)
    tl.store(dg_ptr + offs, tg.digamma(x), mask=m)


def incomplete_gamma(a: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"gammainc", "gammaincc", "gammainc_da_ratio", "log_gamma_density"} at (a, x), one launch."""
    a, x = (t.contiguous() for t in torch.broadcast_tensors(a, x))
    out = {k: torch.empty_like(x) for k in ("p", "q", "r", "d")}
    grid = (triton.cdiv(x.numel(), BLOCK),)
    incomplete_gamma_kernel[grid](
        a, x, out["p"], out["q"], out["r"], out["d"], x.numel(), BLOCK=BLOCK, ROWS=ROWS
    )
    return {
        "gammainc": out["p"],
        "gammaincc": out["q"],
        "gammainc_da_ratio": out["r"],
        "log_gamma_density": out["d"],
    }


def gamma_functions(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"lgamma", "digamma"} at x, one launch."""
    x = x.contiguous()
    lg, dg = torch.empty_like(x), torch.empty_like(x)
    gamma_function_kernel[(triton.cdiv(x.numel(), BLOCK),)](x, lg, dg, x.numel(), BLOCK=BLOCK)
    return {"lgamma": lg, "digamma": dg}
