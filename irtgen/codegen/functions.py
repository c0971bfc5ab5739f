"""The function registry: how each SymPy function is computed by each backend.

One row per SymPy function class (whose ``fdiff`` gives the derivative rules the derivation
uses): a format string for the torch path, one for Triton kernels (``{0}``, ``{1}`` are the
printed arguments), and the mpmath reference the tests compare both against. ``tl.*`` are
Triton primitives that run in the interpreter; ``tlm.*`` (``irtgen.runtime.triton_math``) and
``tls.*`` (``irtgen.runtime.triton_special``) are irtgen's device functions; ``tm.*``
(``irtgen.runtime.torch_math``) and ``ts.*`` (``irtgen.runtime.torch_special``) its torch
helpers. A function missing here fails the build with an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from irtgen import functions as F
from irtgen import variates as V
from irtgen.functions import log1mexp, log_ratio, ndtr, ndtri, sigmoid, softplus


@dataclass(frozen=True)
class Impl:
    torch: str | None
    triton: str | None  # None: not available in kernels yet (fails the build if a kernel needs it)
    reference: Callable | None = None  # mpmath function of the same arguments (for tests)

    @property
    def scalar(self) -> str | None:
        """The call in the scalar source (irtgen.scalar, compiled by numba and Triton): the
        Triton call with irtgen's device functions taken from the scalar modules."""
        if self.triton is None:
            return None
        text = self.triton.replace("tlm.", "el.").replace("tlv.", "rnd.")
        text = text.replace(", {like})", ")")  # variates: the scalar form has no shape argument
        if text.startswith("tls."):
            name = text[4 : text.index("(")]
            text = f"{SCALAR_MODULES[name]}.{text[4:]}"
        return text.replace("tl.exp(tls.", "tl.exp(ga.")


# The scalar module of each special function: ga (irtgen.scalar.gamma), be (beta), st (student_t)
SCALAR_MODULES = {
    "lgamma": "ga",
    "digamma": "ga",
    "log_gamma_density": "ga",
    "gammainc": "ga",
    "gammaincc": "ga",
    "gammainc_da_ratio": "ga",
    "betaln": "be",
    "log_beta_density": "be",
    "betainc": "be",
    "betainc_da_ratio": "be",
    "betainc_db_ratio": "be",
    "log_ndtr": "st",
    "student_t_cdf": "st",
    "student_t_ddf_ratio": "st",
}


def _special(name: str, nargs: int, cls) -> Impl:
    args = ", ".join(f"{{{i}}}" for i in range(nargs))
    return Impl(f"ts.{name}({args})", f"tls.{name}({args})", cls._mp)


FUNCTIONS: dict[type, Impl] = {
    sp.exp: Impl("torch.exp({0})", "tl.exp({0})", mpmath.exp),
    sp.log: Impl("torch.log({0})", "tl.log({0})", mpmath.log),
    log1p: Impl("torch.log1p({0})", "tlm.log1p({0})", mpmath.log1p),
    expm1: Impl("torch.expm1({0})", "tlm.expm1({0})", mpmath.expm1),
    log1mexp: Impl("tm.log1mexp({0})", "tlm.log1mexp({0})", log1mexp._mp),
    softplus: Impl("tm.softplus({0})", "tlm.softplus({0})", softplus._mp),
    sigmoid: Impl("torch.sigmoid({0})", "tlm.sigmoid({0})", sigmoid._mp),
    log_ratio: Impl("tm.log_ratio({0}, {1})", "tlm.log_ratio({0}, {1})", log_ratio._mp),
    sp.sin: Impl("torch.sin({0})", "tl.sin({0})", mpmath.sin),
    sp.cos: Impl("torch.cos({0})", "tl.cos({0})", mpmath.cos),
    sp.tan: Impl("torch.tan({0})", "tlm.tan({0})", mpmath.tan),
    sp.atan: Impl("torch.atan({0})", "tlm.atan({0})", mpmath.atan),
    sp.asin: Impl("torch.asin({0})", "tlm.asin({0})", mpmath.asin),
    sp.acos: Impl("torch.acos({0})", "tlm.acos({0})", mpmath.acos),
    sp.sinh: Impl("torch.sinh({0})", "tlm.sinh({0})", mpmath.sinh),
    sp.cosh: Impl("torch.cosh({0})", "tlm.cosh({0})", mpmath.cosh),
    sp.tanh: Impl("torch.tanh({0})", "tlm.tanh({0})", mpmath.tanh),
    sp.asinh: Impl("torch.asinh({0})", "tlm.asinh({0})", mpmath.asinh),
    sp.acosh: Impl("torch.acosh({0})", "tlm.acosh({0})", mpmath.acosh),
    sp.atanh: Impl("torch.atanh({0})", "tlm.atanh({0})", mpmath.atanh),
    sp.erf: Impl("torch.erf({0})", "tl.math.erf({0})", mpmath.erf),
    sp.erfc: Impl("torch.special.erfc({0})", "tlm.erfc({0})", mpmath.erfc),
    sp.erfinv: Impl("torch.erfinv({0})", "tlm.erfinv({0})", mpmath.erfinv),
    # torch.special.ndtr is 0 below -10 on CPU
    ndtr: Impl("tm.ndtr({0})", "tlm.ndtr({0})", ndtr._mp),
    ndtri: Impl("torch.special.ndtri({0})", "tlm.ndtri({0})", ndtri._mp),
    F.log_ndtr: _special("log_ndtr", 1, F.log_ndtr),
    sp.Abs: Impl("torch.abs({0})", "tl.abs({0})"),
    sp.sign: Impl("torch.sign({0})", "tlm.sign({0})"),
    sp.floor: Impl("torch.floor({0})", "tl.floor({0})"),
    sp.ceiling: Impl("torch.ceil({0})", "tlm.ceil({0})"),
    # Γ(x) for x > 0 (through its logarithm, which does not overflow first)
    sp.gamma: Impl("torch.exp(torch.lgamma({0}))", "tl.exp(tls.lgamma({0}))", mpmath.gamma),
    sp.loggamma: Impl("torch.lgamma({0})", "tls.lgamma({0})", mpmath.loggamma),
    # polygamma(0, x) only (digamma): torch.polygamma of higher order is good to ~1e-9
    sp.polygamma: Impl("torch.digamma({1})", "tls.digamma({1})", mpmath.polygamma),
    # incomplete gamma and beta, with the ratio functions their derivatives use
    F.log_gamma_density: _special("log_gamma_density", 2, F.log_gamma_density),
    F.gammainc: _special("gammainc", 2, F.gammainc),
    F.gammaincc: _special("gammaincc", 2, F.gammaincc),
    F.gammainc_da_ratio: _special("gammainc_da_ratio", 2, F.gammainc_da_ratio),
    F.betaln: _special("betaln", 2, F.betaln),
    F.log_beta_density: _special("log_beta_density", 4, F.log_beta_density),
    F.betainc: _special("betainc", 4, F.betainc),
    F.betainc_da_ratio: _special("betainc_da_ratio", 4, F.betainc_da_ratio),
    F.betainc_db_ratio: _special("betainc_db_ratio", 4, F.betainc_db_ratio),
    F.student_t_cdf: _special("student_t_cdf", 2, F.student_t_cdf),
    F.student_t_ddf_ratio: _special("student_t_ddf_ratio", 2, F.student_t_ddf_ratio),
}

# Functions computed by iterative algorithms in float64 internally (torch_special/triton_special)
SPECIAL_FUNCTIONS = tuple(cls for cls, impl in FUNCTIONS.items() if impl.torch.startswith("ts."))

# Random-variate primitives of samplers (irtgen.variates). {0}, {1}: printed arguments;
# {like}: a parameter (the draw's shape and dtype); {stream}: the draw's index within a sample.
VARIATES: dict[type, Impl] = {
    V.standard_normal: Impl(
        "tv.standard_normal({like}.shape, {like}.dtype, {like}.device, generator)",
        "tlv.standard_normal(_seed, _offs, {stream}, {like})",
    ),
    V.standard_gamma: Impl(
        "tv.standard_gamma({0}, generator)", "tlv.standard_gamma({0}, _seed, _offs, {stream})"
    ),
    V.beta_variate: Impl(
        "tv.beta_variate({0}, {1}, generator)",
        "tlv.beta_variate({0}, {1}, _seed, _offs, {stream})",
    ),
    V.student_t_variate: Impl(
        "tv.student_t_variate({0}, generator)",
        "tlv.student_t_variate({0}, _seed, _offs, {stream})",
    ),
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
