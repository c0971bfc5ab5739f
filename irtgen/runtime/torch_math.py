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


def pow(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: A001
    """a**b with C semantics (torch.pow of two tensors)."""
    return torch.pow(a, b)


def full_like(ref: torch.Tensor, value: float) -> torch.Tensor:
    """A constant with ref's dtype and device, broadcastable against ref."""
    return torch.full((), value, dtype=ref.dtype, device=ref.device)
