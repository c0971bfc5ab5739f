"""Special functions for Triton kernels: lgamma, digamma, incomplete gamma and beta with their
ratio functions, and log_ndtr -- all built from tl primitives, so they run in the interpreter
and compile for the GPU. Generated modules see this module as ``tls``; the algorithms live in
``triton_gamma`` and ``triton_beta``. This module imports Triton."""

from __future__ import annotations

import triton
import triton.language as tl

from irtgen.runtime import triton_math as tlm
from irtgen.runtime.triton_beta import (  # noqa: F401 - re-exported for generated kernels
    betainc,
    betainc_da_ratio,
    betainc_db_ratio,
    betaln,
    log_beta_density,
)
from irtgen.runtime.triton_gamma import (  # noqa: F401
    digamma,
    gammainc,
    gammainc_da_ratio,
    gammaincc,
    lgamma,
    log_gamma_density,
)


@triton.jit
def log_ndtr(x):
    """log Φ(x): for x < -1, log(erfcx(-x/√2)/2) - x²/2 (no underflow of Φ); else log1p(-Φ(-x))."""
    t = tl.maximum(-x * 0.70710678118654752, 0.5)
    lower = tl.log(0.5 * tlm.erfcx_pos(t)) - 0.5 * x * x
    upper = tlm.log1p(-tlm.ndtr(-x))
    return tl.where(x < -1.0, lower, upper)


@triton.jit
def _student_t_xy(df, t):
    """x = df/(df + t²) and y = t²/(df + t²), each without cancellation or inf/inf."""
    t2 = t * t
    return 1.0 / (1.0 + t2 / df), 1.0 / (1.0 + df / t2)


@triton.jit
def student_t_cdf(df, t):
    """F(t) = I_x(df/2, 1/2)/2 for t < 0, 1 - I_x(df/2, 1/2)/2 otherwise (x = df/(df + t²))."""
    d = df.to(tl.float64)
    t64 = t.to(tl.float64)
    x, y = _student_t_xy(d, t64)
    half = 0.5 * betainc(0.5 * d, 0.5 + 0.0 * d, x, y)
    return tl.where(t64 < 0.0, half, 1.0 - half).to(t.dtype)


@triton.jit
def student_t_ddf_ratio(df, t):
    """(∂F/∂df)/(∂F/∂t) for the standard Student-t CDF: -(A (df/t + t)/4 + t/(2 df)) with
    A = betainc_da_ratio(df/2, 1/2, x, 1 - x)/x, x = df/(df + t²); 0 at t = 0."""
    d = df.to(tl.float64)
    t64 = t.to(tl.float64)
    x, y = _student_t_xy(d, t64)
    a_ratio = betainc_da_ratio(0.5 * d, 0.5 + 0.0 * d, x, y) / x
    out = -(a_ratio * (d / t64 + t64) * 0.25 + t64 / (2.0 * d))
    return tl.where(t64 == 0.0, 0.0, out).to(t.dtype)
