"""Test kernels for irtgen.runtime.triton_beta.

beta_kernel applies the five public functions elementwise, on 2-D tiles (ROWS x BLOCK/ROWS) as
the generated gradient kernels do, so the per-lane loops run on a block of rank 2; temme_kernel
evaluates the unrolled Temme sums, to check them against torch_beta's tables."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from irtgen.runtime import triton_beta as tb

BLOCK = 256
ROWS = 16
NAMES = ("betainc", "betainc_da_ratio", "betainc_db_ratio", "log_beta_density", "betaln")


@triton.jit
def beta_kernel(
    a_ptr,
    b_ptr,
    x_ptr,
    y_ptr,
    i_ptr,
    ra_ptr,
    rb_ptr,
    ld_ptr,
    bl_ptr,
    n,
    BLOCK: tl.constexpr,
    ROWS: tl.constexpr,
):
    cols: tl.constexpr = BLOCK // ROWS
    tile = tl.arange(0, ROWS)[:, None] * cols + tl.arange(0, cols)[None, :]
    offs = tl.program_id(0) * BLOCK + tile
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=1.0)
    b = tl.load(b_ptr + offs, mask=m, other=1.0)
    x = tl.load(x_ptr + offs, mask=m, other=0.5)
    y = tl.load(y_ptr + offs, mask=m, other=0.5)
    tl.store(i_ptr + offs, tb.betainc(a, b, x, y), mask=m)
    tl.store(ra_ptr + offs, tb.betainc_da_ratio(a, b, x, y), mask=m)
    tl.store(rb_ptr + offs, tb.betainc_db_ratio(a, b, x, y), mask=m)
    tl.store(ld_ptr + offs, tb.log_beta_density(a, b, x, y), mask=m)
    tl.store(bl_ptr + offs, tb.betaln(a, b), mask=m)


@triton.jit
def temme_kernel(xi_ptr, nu_ptr, z_ptr, g_ptr, la_ptr, lb_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    xi = tl.load(xi_ptr + offs, mask=m, other=0.0)
    nu = tl.load(nu_ptr + offs, mask=m, other=0.0)
    z = tl.load(z_ptr + offs, mask=m, other=0.0)
    sa, sb = tb._temme_l(xi, nu, z)
    tl.store(g_ptr + offs, tb._temme_g(xi, nu, z), mask=m)
    tl.store(la_ptr + offs, sa, mask=m)
    tl.store(lb_ptr + offs, sb, mask=m)


def temme_sums(xi, nu, z) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """triton_beta's (_temme_g, *_temme_l) at float64 (xi, nu, z), one launch."""
    xi, nu, z = (t.contiguous() for t in torch.broadcast_tensors(xi, nu, z))
    out = [torch.empty_like(xi) for _ in range(3)]
    temme_kernel[(triton.cdiv(xi.numel(), BLOCK),)](xi, nu, z, *out, xi.numel(), BLOCK=BLOCK)
    return tuple(out)


def beta_functions(a, b, x, y) -> dict[str, torch.Tensor]:
    """{name: values} for every name in NAMES at (a, b, x, y) (one dtype), one launch."""
    a, b, x, y = (t.contiguous() for t in torch.broadcast_tensors(a, b, x, y))
    out = {k: torch.empty_like(x) for k in NAMES}
    grid = (triton.cdiv(x.numel(), BLOCK),)
    beta_kernel[grid](a, b, x, y, *out.values(), x.numel(), BLOCK=BLOCK, ROWS=ROWS)
    return out
