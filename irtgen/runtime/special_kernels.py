"""Triton kernels behind ``irtgen.special``: the regularized incomplete gamma and beta functions
and their gradients, elementwise over flat contiguous tensors (the caller broadcasts).

Each kernel computes the value or all partial derivatives of one function:

* gammainc / gammaincc: ∂P/∂x = exp(log_gamma_density(a, x)), ∂P/∂a = ∂P/∂x * ratio(a, x);
  Q = 1 - P has the negated derivatives.
* betainc: ∂I/∂x = exp(log_beta_density(a, b, x, 1 - x)), ∂I/∂a and ∂I/∂b the density times
  the ratio functions.

This module imports Triton; ``irtgen.special`` imports it at the first launch.
"""

from __future__ import annotations

import triton
import triton.language as tl

from irtgen.runtime import triton_special as tls


@triton.jit
def gamma_value_kernel(a_ptr, x_ptr, out_ptr, n, UPPER: tl.constexpr, BLOCK: tl.constexpr):
    """P(a, x), or Q(a, x) when UPPER."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=1.0)
    x = tl.load(x_ptr + offs, mask=m, other=1.0)
    if UPPER:
        r = tls.gammaincc(a, x)
    else:
        r = tls.gammainc(a, x)
    tl.store(out_ptr + offs, r, mask=m)


@triton.jit
def gamma_grad_kernel(
    a_ptr, x_ptr, g_ptr, da_ptr, dx_ptr, n, UPPER: tl.constexpr, BLOCK: tl.constexpr
):
    """g * ∂P/∂a and g * ∂P/∂x (negated for Q when UPPER)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=1.0)
    x = tl.load(x_ptr + offs, mask=m, other=1.0)
    g = tl.load(g_ptr + offs, mask=m, other=0.0)
    if UPPER:
        g = -g
    dens = tl.exp(tls.log_gamma_density(a, x))
    tl.store(dx_ptr + offs, g * dens, mask=m)
    tl.store(da_ptr + offs, g * dens * tls.gammainc_da_ratio(a, x), mask=m)


@triton.jit
def beta_value_kernel(a_ptr, b_ptr, x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """I_x(a, b)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=1.0)
    b = tl.load(b_ptr + offs, mask=m, other=1.0)
    x = tl.load(x_ptr + offs, mask=m, other=0.5)
    tl.store(out_ptr + offs, tls.betainc(a, b, x, 1.0 - x), mask=m)


@triton.jit
def beta_grad_kernel(a_ptr, b_ptr, x_ptr, g_ptr, da_ptr, db_ptr, dx_ptr, n, BLOCK: tl.constexpr):
    """g * ∂I/∂a, g * ∂I/∂b and g * ∂I/∂x."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=1.0)
    b = tl.load(b_ptr + offs, mask=m, other=1.0)
    x = tl.load(x_ptr + offs, mask=m, other=0.5)
    g = tl.load(g_ptr + offs, mask=m, other=0.0)
    y = 1.0 - x
    gd = g * tl.exp(tls.log_beta_density(a, b, x, y))
    tl.store(dx_ptr + offs, gd, mask=m)
    tl.store(da_ptr + offs, gd * tls.betainc_da_ratio(a, b, x, y), mask=m)
    tl.store(db_ptr + offs, gd * tls.betainc_db_ratio(a, b, x, y), mask=m)
