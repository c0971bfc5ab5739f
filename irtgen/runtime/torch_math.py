"""Special functions for the torch (CPU) path that torch lacks in the form irtgen needs.

Everything else maps straight to torch (torch.log1p, torch.special.ndtri, ...); the table in
``irtgen.codegen.functions`` says which. Generated modules see this module as ``tm``.
"""

from __future__ import annotations

import math

import torch

_LOG2 = math.log(2.0)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, switching at -log 2 between the two accurate forms."""
    return torch.where(x > -_LOG2, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), exact where torch's thresholded one is not."""
    return torch.clamp_min(x, 0.0) + torch.log1p(torch.exp(-torch.abs(x)))


def log_ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(a/b), through log1p((a - b)/b) when a/b is within [1/2, 3/2] (a - b is then exact)."""
    d = a - b
    near = d.abs() <= 0.5 * b.abs()
    return torch.where(near, torch.log1p(d / b), torch.log(a / b))


def _exp_neg_half_sq(x: torch.Tensor) -> torch.Tensor:
    """exp(-x^2/2) without the error of rounding x^2: x = h + l with h a multiple of 1/16."""
    h = torch.floor(x * 16.0) * 0.0625
    low = x - h
    return torch.exp(-0.5 * h * h) * torch.exp(-(h + 0.5 * low) * low)


def ndtr(x: torch.Tensor) -> torch.Tensor:
    """Standard normal CDF with full relative accuracy in the lower tail.

    torch.special.ndtr computes (1 + erf(x/sqrt 2))/2 on the CPU, which is 0 below x = -10.
    Here, for |x| >= 1/sqrt(2): erfcx(|x|/sqrt 2) exp(-x^2/2)/2, the exponential taken of x itself.
    """
    t = x * 0.70710678118654752
    big = 0.5 * torch.special.erfcx(t.abs()) * _exp_neg_half_sq(x.abs())
    tail = torch.where(x < 0, big, 1.0 - big)
    return torch.where(t.abs() < 0.5, 0.5 + 0.5 * torch.erf(t), tail)


def pow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: A001
    """a**b with C semantics (torch.pow of two tensors)."""
    return torch.pow(a, b)


def full_like(ref: torch.Tensor, value: float) -> torch.Tensor:
    """A constant with ref's dtype and device, broadcastable against ref."""
    return torch.full((), value, dtype=ref.dtype, device=ref.device)


def atanh_series(u2: torch.Tensor) -> torch.Tensor:
    """sum_j u2^j/(2j + 3), j = 0..18: (atanh(u) - u)/u^3 for u^2 = u2 <= 1/9."""
    s = torch.full_like(u2, 1.0 / 39.0)
    for j in range(17, -1, -1):
        s = s * u2 + 1.0 / (2 * j + 3)
    return s


def log1pmx(t: torch.Tensor) -> torch.Tensor:
    """log(1 + t) - t: for t in [-1/2, 1] as -t u + 2 u^3 sum_j u^(2j)/(2j + 3) with
    u = t/(2 + t) (log(1 + t) = 2 atanh u; u^2 <= 1/9, no cancellation), else directly."""
    tc = torch.clamp(t, -0.5, 1.0)
    u = tc / (2.0 + tc)
    u2 = u * u
    near = -tc * u + 2.0 * u * u2 * atanh_series(u2)
    return torch.where((t >= -0.5) & (t <= 1.0), near, torch.log1p(t) - t)
