"""Special functions of the torch path: incomplete gamma and beta with their ratio functions,
and log_ndtr. Generated modules see this module as ``ts``; the algorithms live in
``torch_gamma`` and ``torch_beta`` (the same algorithms as the Triton device functions)."""

from __future__ import annotations

import math

import torch

from irtgen.runtime.torch_beta import (
    betainc,
    betainc_da_ratio,
    betainc_db_ratio,
    betaln,
    log_beta_density,
)
from irtgen.runtime.torch_gamma import (
    gammainc,
    gammainc_da_ratio,
    gammaincc,
    log_gamma_density,
)
from irtgen.runtime.torch_math import ndtr

__all__ = [
    "betainc",
    "betainc_da_ratio",
    "betainc_db_ratio",
    "betaln",
    "log_beta_density",
    "gammainc",
    "gammainc_da_ratio",
    "gammaincc",
    "log_gamma_density",
    "log_ndtr",
    "student_t_cdf",
    "student_t_ddf_ratio",
]

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def log_ndtr(x: torch.Tensor) -> torch.Tensor:
    """log Φ(x): for x < -1, log(erfcx(-x/√2)/2) - x²/2 (no underflow of Φ); else log1p(-Φ(-x))."""
    lower = torch.log(0.5 * torch.special.erfcx(-x * _SQRT1_2)) - 0.5 * x * x
    upper = torch.log1p(-ndtr(-x))
    return torch.where(x < -1.0, lower, upper)


def _student_t_xy(df: torch.Tensor, t: torch.Tensor):
    """x = df/(df + t²) and y = t²/(df + t²), each without cancellation or inf/inf."""
    t2 = t * t
    return 1.0 / (1.0 + t2 / df), 1.0 / (1.0 + df / t2)


def student_t_cdf(df: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """F(t) = I_x(df/2, 1/2)/2 for t < 0, 1 - I_x(df/2, 1/2)/2 otherwise (x = df/(df + t²))."""
    df, t = torch.broadcast_tensors(df, t)
    dtype = t.dtype
    df, t = df.double(), t.double()
    x, y = _student_t_xy(df, t)
    half = 0.5 * betainc(0.5 * df, torch.full_like(df, 0.5), x, y)
    return torch.where(t < 0, half, 1.0 - half).to(dtype)


def student_t_ddf_ratio(df: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(∂F/∂df)/(∂F/∂t) for the standard Student-t CDF.

    With x = df/(df + t²), A = betainc_da_ratio(df/2, 1/2, x, 1 - x)/x, both halves of F give
    -(A (df/t + t)/4 + t/(2 df)); the shared density factor has cancelled. 0 at t = 0.
    """
    df, t = torch.broadcast_tensors(df, t)
    dtype = t.dtype
    df, t = df.double(), t.double()
    x, y = _student_t_xy(df, t)
    a_ratio = betainc_da_ratio(0.5 * df, torch.full_like(df, 0.5), x, y) / x
    out = -(a_ratio * (df / t + t) * 0.25 + t / (2.0 * df))
    return torch.where(t == 0, torch.zeros_like(out), out).to(dtype)
