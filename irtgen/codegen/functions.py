"""The function table: how each SymPy function is computed by each backend.

One row per SymPy function class: a format string for the torch path and one for Triton kernels
(``{0}``, ``{1}`` are the printed arguments). ``tl.*`` are Triton primitives that run in the
interpreter; ``tlm.*`` are irtgen's device functions (``irtgen.runtime.triton_math``); ``tm.*``
are irtgen's torch helpers (``irtgen.runtime.torch_math``). A function missing here fails the
build with an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from irtgen.functions import log1mexp, log_ratio, ndtr, ndtri, sigmoid, softplus


@dataclass(frozen=True)
class Impl:
    torch: str | None
    triton: str | None  # None: not available in kernels yet (fails the build if a kernel needs it)


FUNCTIONS: dict[type, Impl] = {
    sp.exp: Impl("torch.exp({0})", "tl.exp({0})"),
    sp.log: Impl("torch.log({0})", "tl.log({0})"),
    log1p: Impl("torch.log1p({0})", "tlm.log1p({0})"),
    expm1: Impl("torch.expm1({0})", "tlm.expm1({0})"),
    log1mexp: Impl("tm.log1mexp({0})", "tlm.log1mexp({0})"),
    softplus: Impl("tm.softplus({0})", "tlm.softplus({0})"),
    sigmoid: Impl("torch.sigmoid({0})", "tlm.sigmoid({0})"),
    log_ratio: Impl("tm.log_ratio({0}, {1})", "tlm.log_ratio({0}, {1})"),
    sp.sin: Impl("torch.sin({0})", "tl.sin({0})"),
    sp.cos: Impl("torch.cos({0})", "tl.cos({0})"),
    sp.tan: Impl("torch.tan({0})", "tlm.tan({0})"),
    sp.atan: Impl("torch.atan({0})", "tlm.atan({0})"),
    sp.asin: Impl("torch.asin({0})", "tlm.asin({0})"),
    sp.acos: Impl("torch.acos({0})", "tlm.acos({0})"),
    sp.sinh: Impl("torch.sinh({0})", "tlm.sinh({0})"),
    sp.cosh: Impl("torch.cosh({0})", "tlm.cosh({0})"),
    sp.tanh: Impl("torch.tanh({0})", "tlm.tanh({0})"),
    sp.asinh: Impl("torch.asinh({0})", "tlm.asinh({0})"),
    sp.acosh: Impl("torch.acosh({0})", "tlm.acosh({0})"),
    sp.atanh: Impl("torch.atanh({0})", "tlm.atanh({0})"),
    sp.erf: Impl("torch.erf({0})", "tl.math.erf({0})"),
    sp.erfc: Impl("torch.special.erfc({0})", "tlm.erfc({0})"),
    sp.erfinv: Impl("torch.erfinv({0})", "tlm.erfinv({0})"),
    ndtr: Impl("tm.ndtr({0})", "tlm.ndtr({0})"),  # torch.special.ndtr is 0 below -10 on CPU
    ndtri: Impl("torch.special.ndtri({0})", "tlm.ndtri({0})"),
    sp.Abs: Impl("torch.abs({0})", "tl.abs({0})"),
    sp.sign: Impl("torch.sign({0})", "tlm.sign({0})"),
    sp.floor: Impl("torch.floor({0})", "tl.floor({0})"),
    sp.ceiling: Impl("torch.ceil({0})", "tlm.ceil({0})"),
    # used by closed-form moments (mean, variance, entropy), which only the torch path evaluates
    sp.gamma: Impl("torch.exp(torch.lgamma({0}))", None),
    sp.loggamma: Impl("torch.lgamma({0})", None),
    # polygamma(0, x) only (digamma): torch.polygamma of higher order is good to ~1e-9
    sp.polygamma: Impl("torch.digamma({1})", None),
}

# n-ary functions printed as a chain of binary calls
BINARY_CHAINS: dict[type, Impl] = {
    sp.Min: Impl("torch.minimum({0}, {1})", "tl.minimum({0}, {1})"),
    sp.Max: Impl("torch.maximum({0}, {1})", "tl.maximum({0}, {1})"),
}


class UnsupportedFunctionError(ValueError):
    """A SymPy function that no backend implements appears in a formula."""


def supported_function_names() -> list[str]:
    return sorted(f.__name__ for f in (*FUNCTIONS, *BINARY_CHAINS))
