"""The function registry: how each SymPy function is computed.

One row per SymPy function class (whose ``fdiff`` gives the derivative rules the derivation
uses): a format string for the scalar source of generated formulas (``{0}``, ``{1}`` are the
printed arguments), one for torch (the parameter-only properties mean, variance and entropy,
which autograd differentiates; None where torch has no such function), and the mpmath reference
the tests compare against. In the scalar source, ``tl.*`` are the primitives both compilers
provide (irtgen.compilers.numba_tl mirrors Triton's), and ``el.*``, ``ga.*``, ``be.*``, ``st.*``
are irtgen's scalar functions (irtgen.scalar.elementary, gamma, beta, student_t). A function
missing here fails the build with an error naming it.
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
    torch: str | None  # None: not available in torch expressions (fails the build if needed)
    scalar: str | None
    reference: Callable | None = None  # mpmath function of the same arguments (for tests)
    # numeric arguments are passed as values of the formula's dtype (``tl.zeros_like(z) + 0.5``):
    # irtgen's iterative functions start loop variables from their arguments
    tensor_args: bool = False


def _special(module: str, name: str, nargs: int, cls, torch: str | None = None) -> Impl:
    args = ", ".join(f"{{{i}}}" for i in range(nargs))
    return Impl(torch, f"{module}.{name}({args})", cls._mp, tensor_args=True)


FUNCTIONS: dict[type, Impl] = {
    sp.exp: Impl("torch.exp({0})", "tl.exp({0})", mpmath.exp),
    sp.log: Impl("torch.log({0})", "tl.log({0})", mpmath.log),
    log1p: Impl("torch.log1p({0})", "el.log1p({0})", mpmath.log1p),
    expm1: Impl("torch.expm1({0})", "el.expm1({0})", mpmath.expm1),
    log1mexp: Impl(
        "torch.where({0} > -0.6931471805599453, torch.log(-torch.expm1({0})), "
        "torch.log1p(-torch.exp({0})))",
        "el.log1mexp({0})",
        log1mexp._mp,
    ),
    softplus: Impl("torch.nn.functional.softplus({0})", "el.softplus({0})", softplus._mp),
    sigmoid: Impl("torch.sigmoid({0})", "el.sigmoid({0})", sigmoid._mp),
    log_ratio: Impl("torch.log({0} / {1})", "el.log_ratio({0}, {1})", log_ratio._mp),
    sp.sin: Impl("torch.sin({0})", "tl.sin({0})", mpmath.sin),
    sp.cos: Impl("torch.cos({0})", "tl.cos({0})", mpmath.cos),
    sp.tan: Impl("torch.tan({0})", "el.tan({0})", mpmath.tan),
    sp.atan: Impl("torch.atan({0})", "el.atan({0})", mpmath.atan),
    sp.asin: Impl("torch.asin({0})", "el.asin({0})", mpmath.asin),
    sp.acos: Impl("torch.acos({0})", "el.acos({0})", mpmath.acos),
    sp.sinh: Impl("torch.sinh({0})", "el.sinh({0})", mpmath.sinh),
    sp.cosh: Impl("torch.cosh({0})", "el.cosh({0})", mpmath.cosh),
    sp.tanh: Impl("torch.tanh({0})", "el.tanh({0})", mpmath.tanh),
    sp.asinh: Impl("torch.asinh({0})", "el.asinh({0})", mpmath.asinh),
    sp.acosh: Impl("torch.acosh({0})", "el.acosh({0})", mpmath.acosh),
    sp.atanh: Impl("torch.atanh({0})", "el.atanh({0})", mpmath.atanh),
    sp.erf: Impl("torch.erf({0})", "tl.math.erf({0})", mpmath.erf),
    sp.erfc: Impl("torch.special.erfc({0})", "el.erfc({0})", mpmath.erfc),
    sp.erfinv: Impl("torch.erfinv({0})", "el.erfinv({0})", mpmath.erfinv),
    ndtr: Impl(
        # erfc keeps the lower tail's digits, which (1 + erf)/2 (torch.special.ndtr) loses
        "0.5 * torch.special.erfc(-0.70710678118654752 * ({0}))",
        "el.ndtr({0})",
        ndtr._mp,
    ),
    ndtri: Impl("torch.special.ndtri({0})", "el.ndtri({0})", ndtri._mp),
    F.log_ndtr: _special("st", "log_ndtr", 1, F.log_ndtr, "torch.special.log_ndtr({0})"),
    # log(Φ(y + d) - Φ(y)), d > 0; the torch form (parameter-only properties) takes the
    # difference in the tail the window lies in
    F.log_ndtr_diff: _special(
        "st",
        "log_ndtr_diff",
        2,
        F.log_ndtr_diff,
        "torch.where(({0}) > 0, torch.log(torch.special.ndtr(-({0})) - torch.special.ndtr(-({0}) "
        "- ({1}))), torch.log(torch.special.ndtr(({0}) + ({1})) - torch.special.ndtr({0})))",
    ),
    F.ndtr_diff: _special(
        "st",
        "ndtr_diff",
        2,
        F.ndtr_diff,
        "(torch.special.ndtr(({0}) + ({1})) - torch.special.ndtr({0}))",
    ),
    F.logaddexp: Impl("torch.logaddexp({0}, {1})", "el.logaddexp({0}, {1})", F.logaddexp._mp),
    F.exp_expm1: Impl(
        "(torch.exp({0}) * torch.expm1({1}))", "el.exp_expm1({0}, {1})", F.exp_expm1._mp
    ),
    F.atan_cdf: Impl("(0.5 + torch.atan({0}) / torch.pi)", "el.atan_cdf({0})", F.atan_cdf._mp),
    F.cotpi: Impl(
        "(torch.cos(torch.pi * ({0})) / torch.sin(torch.pi * ({0})))",
        "el.cotpi({0})",
        F.cotpi._mp,
    ),
    sp.Abs: Impl("torch.abs({0})", "tl.abs({0})"),
    sp.sign: Impl("torch.sign({0})", "el.sign({0})"),
    sp.floor: Impl("torch.floor({0})", "tl.floor({0})"),
    sp.ceiling: Impl("torch.ceil({0})", "el.ceil({0})"),
    # Γ(x) for x > 0 (through its logarithm, which does not overflow first)
    sp.gamma: Impl("torch.exp(torch.lgamma({0}))", "tl.exp(ga.lgamma({0}))", mpmath.gamma),
    sp.loggamma: Impl("torch.lgamma({0})", "ga.lgamma({0})", mpmath.loggamma),
    # polygamma(0, x) only (digamma): torch.polygamma of higher order is good to ~1e-9
    sp.polygamma: Impl("torch.digamma({1})", "ga.digamma({1})", mpmath.polygamma),
    # incomplete gamma and beta, with the ratio functions their derivatives use
    F.log_gamma_density: _special("ga", "log_gamma_density", 2, F.log_gamma_density),
    F.gammainc: _special("ga", "gammainc", 2, F.gammainc),
    F.gammaincc: _special("ga", "gammaincc", 2, F.gammaincc),
    F.gammainc_da_ratio: _special("ga", "gammainc_da_ratio", 2, F.gammainc_da_ratio),
    F.betaln: _special(
        "be",
        "betaln",
        2,
        F.betaln,
        "(torch.lgamma({0}) + torch.lgamma({1}) - torch.lgamma({0} + {1}))",
    ),
    F.log_beta_density: _special("be", "log_beta_density", 4, F.log_beta_density),
    F.betainc: _special("be", "betainc", 4, F.betainc),
    F.betainc_da_ratio: _special("be", "betainc_da_ratio", 4, F.betainc_da_ratio),
    F.betainc_db_ratio: _special("be", "betainc_db_ratio", 4, F.betainc_db_ratio),
    F.student_t_cdf: _special("st", "student_t_cdf", 2, F.student_t_cdf),
    F.student_t_ddf_ratio: _special("st", "student_t_ddf_ratio", 2, F.student_t_ddf_ratio),
}

# irtgen's special functions (iterative algorithms); families using them compute their
# derivatives in float64 on every backend
SPECIAL_FUNCTIONS = tuple(cls for cls, impl in FUNCTIONS.items() if impl.tensor_args)

# Functions that one scalar function computes together from one evaluation: where a formula
# function calls all of them with the same arguments, it calls that scalar function once (its
# template, with the outputs in the tuple's order) instead of repeating the whole evaluation
JOINT_CALLS: dict[tuple[type, ...], str] = {
    (F.betainc_da_ratio, F.betainc_db_ratio): "be.betainc_ratios({0}, {1}, {2}, {3})",
}


# Parameter parts. Some scalar functions have a part that depends on their first k arguments
# alone: in a family's formulas, where those arguments are free of the value, the part is a
# parameter term (irtgen.codegen.module._hoist: computed once per parameter value on the CPU)
# and the call becomes ``<name>_at(arguments..., part)``. The classes below exist for printing
# only (they never reach a derivation).


class log_beta_norm(sp.Function):  # noqa: N801
    """log(ab/(2 pi (a+b)))/2 - (w(a) + w(b) - w(a+b)) (irtgen.scalar.beta.log_beta_norm)."""

    nargs = 2


class log_gamma_norm(sp.Function):  # noqa: N801
    """lgamma(a), or (log(2 pi) + log a)/2 + stirlerr(a) for a >= 10
    (irtgen.scalar.gamma.log_gamma_norm)."""

    nargs = 1


def _at(cls: type, nargs: int) -> type:
    return type(f"{cls.__name__}_at", (sp.Function,), {"nargs": nargs + 1})


# part class -> (scalar module, number of arguments)
_PARTS = {log_beta_norm: ("be", 2), log_gamma_norm: ("ga", 1)}
# function class -> (its number of arguments, part class)
_SPLIT = {
    F.log_beta_density: (4, log_beta_norm),
    F.betainc: (4, log_beta_norm),
    F.betainc_da_ratio: (4, log_beta_norm),
    F.betainc_db_ratio: (4, log_beta_norm),
    F.log_gamma_density: (2, log_gamma_norm),
}
# class -> (k, part class, class of the call with the part as its last argument)
PARAMETER_PARTS: dict[type, tuple[int, type, type]] = {
    cls: (_PARTS[part][1], part, _at(cls, n)) for cls, (n, part) in _SPLIT.items()
}
# joint calls likewise: template -> (k, part class, template with the part as argument k + ...)
JOINT_PARAMETER_PARTS: dict[str, tuple[int, type, str]] = {
    "be.betainc_ratios({0}, {1}, {2}, {3})": (
        2,
        log_beta_norm,
        "be.betainc_ratios_at({0}, {1}, {2}, {3}, {4})",
    ),
}


def _template(module: str, name: str, nargs: int) -> str:
    return f"{module}.{name}({', '.join(f'{{{i}}}' for i in range(nargs))})"


PART_FUNCTIONS: dict[type, Impl] = {
    **{
        part: Impl(None, _template(module, part.__name__, n), tensor_args=True)
        for part, (module, n) in _PARTS.items()
    },
    **{
        PARAMETER_PARTS[cls][2]: Impl(
            None, _template(_PARTS[part][0], f"{cls.__name__}_at", n + 1), tensor_args=True
        )
        for cls, (n, part) in _SPLIT.items()
    },
}

# Random-variate primitives of samplers (irtgen.variates), in irtgen.scalar.random. {0}, {1}:
# printed arguments; {stream}: the draw's index within a sample; _seed, _offs: the sample
# function's Philox key and element index.
VARIATES: dict[type, Impl] = {
    V.standard_normal: Impl(None, "rnd.standard_normal(_seed, _offs, {stream})"),
    V.standard_gamma: Impl(None, "rnd.standard_gamma({0}, _seed, _offs, {stream})"),
    V.beta_variate: Impl(None, "rnd.beta_variate({0}, {1}, _seed, _offs, {stream})"),
    V.student_t_variate: Impl(None, "rnd.student_t_variate({0}, _seed, _offs, {stream})"),
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
