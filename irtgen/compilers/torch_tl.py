"""``tl`` for torch tensors: a third binding of the scalar sources, for second derivatives.

A generated family's derivative formulas (``log_prob_grad``, ``cdf_grad``, ``implicit_grad``)
are ``@scalar`` functions. Bound to this module instead of ``triton.language`` or
irtgen.compilers.numba_tl, a formula whose body is straight-line code (no ``if``, loop or
conditional expression, in it or in a scalar function it calls) runs elementwise on whole
tensors with torch's operators, so autograd differentiates it once more: that is the double
backward of the family's ops (irtgen.runtime.ops.second_order). The kernels still compute every
first derivative; this binding runs only when a gradient of a gradient is asked for.

The elementary functions of irtgen.scalar.elementary, lgamma, digamma and betaln branch on the
value (they pick a regime per element); here they bind to torch's own functions of the same
meaning (``TORCH_FORMS``), which autograd knows. A formula that calls any other branching function (the incomplete gamma
and beta functions and their parameter derivatives) has no torch form: calling it raises
SecondOrderUnavailable.
"""

from __future__ import annotations

import types

import torch


class SecondOrderUnavailable(RuntimeError):
    """A derivative formula that cannot be differentiated once more."""


exp = torch.exp
log = torch.log
sqrt = torch.sqrt
abs = torch.abs  # noqa: A001 - Triton's name
floor = torch.floor
sin = torch.sin
cos = torch.cos
zeros_like = torch.zeros_like
full_like = torch.full_like


def rsqrt(x):
    return torch.rsqrt(x)


def where(c, a, b):
    return torch.where(c, a, b)


def maximum(a, b):
    if not isinstance(b, torch.Tensor):
        return torch.clamp(a, min=b)
    if not isinstance(a, torch.Tensor):
        return torch.clamp(b, min=a)
    return torch.maximum(a, b)


def minimum(a, b):
    if not isinstance(b, torch.Tensor):
        return torch.clamp(a, max=b)
    if not isinstance(a, torch.Tensor):
        return torch.clamp(b, max=a)
    return torch.minimum(a, b)


def fma(a, b, c):
    return a * b + c


math = types.SimpleNamespace(erf=torch.special.erf, erfc=torch.special.erfc)


def _log1mexp(x):
    # log(1 - exp(x)), x <= 0: the two accurate forms either side of -log 2
    return torch.where(
        x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x))
    )


def _log_ndtr_diff(y, d):
    # log(Φ(y + d) - Φ(y)): the difference taken in the tail the window lies in
    upper = torch.log(torch.special.ndtr(-y) - torch.special.ndtr(-y - d))
    return torch.where(y > 0, upper, torch.log(torch.special.ndtr(y + d) - torch.special.ndtr(y)))


def _pow(a, b):
    return torch.pow(a, b)


# scalar functions that choose a regime per element, by torch's own of the same meaning
TORCH_FORMS = {
    "irtgen.scalar.elementary.square": lambda x: x * x,
    "irtgen.scalar.elementary.powi": torch.pow,
    "irtgen.scalar.elementary.pow": _pow,
    "irtgen.scalar.elementary.log1p": torch.log1p,
    "irtgen.scalar.elementary.expm1": torch.expm1,
    "irtgen.scalar.elementary.log_ratio": lambda a, b: torch.log(a / b),
    "irtgen.scalar.elementary.log1mexp": _log1mexp,
    "irtgen.scalar.elementary.softplus": torch.nn.functional.softplus,
    "irtgen.scalar.elementary.sigmoid": torch.sigmoid,
    "irtgen.scalar.elementary.sign": torch.sign,
    "irtgen.scalar.elementary.ceil": torch.ceil,
    "irtgen.scalar.elementary.tan": torch.tan,
    "irtgen.scalar.elementary.atan": torch.atan,
    "irtgen.scalar.elementary.asin": torch.asin,
    "irtgen.scalar.elementary.acos": torch.acos,
    "irtgen.scalar.elementary.sinh": torch.sinh,
    "irtgen.scalar.elementary.cosh": torch.cosh,
    "irtgen.scalar.elementary.tanh": torch.tanh,
    "irtgen.scalar.elementary.asinh": torch.asinh,
    "irtgen.scalar.elementary.acosh": torch.acosh,
    "irtgen.scalar.elementary.atanh": torch.atanh,
    "irtgen.scalar.elementary.ndtr": torch.special.ndtr,
    "irtgen.scalar.elementary.ndtri": torch.special.ndtri,
    "irtgen.scalar.elementary.log_ndtr": torch.special.log_ndtr,
    "irtgen.scalar.elementary.logaddexp": torch.logaddexp,
    "irtgen.scalar.elementary.exp_expm1": lambda b, d: torch.exp(b) * torch.expm1(d),
    "irtgen.scalar.elementary.atan_cdf": lambda x: 0.5 + torch.atan(x) / torch.pi,
    "irtgen.scalar.elementary.cotpi": lambda x: torch.cos(torch.pi * x) / torch.sin(torch.pi * x),
    "irtgen.scalar.student_t.log_ndtr": torch.special.log_ndtr,
    "irtgen.scalar.student_t.log_ndtr_diff": _log_ndtr_diff,
    "irtgen.scalar.student_t.ndtr_diff": lambda y, d: (
        torch.special.ndtr(y + d) - torch.special.ndtr(y)
    ),
    "irtgen.scalar.elementary.erfc": torch.special.erfc,
    "irtgen.scalar.elementary.erfcx": torch.special.erfcx,
    "irtgen.scalar.elementary.erfinv": torch.special.erfinv,
    "irtgen.scalar.elementary.exp_neg_sq": lambda x: torch.exp(-x * x),
    "irtgen.scalar.elementary.exp_neg_half_sq": lambda x: torch.exp(-0.5 * x * x),
    "irtgen.scalar.elementary.log1pmx": lambda x: torch.log1p(x) - x,
    "irtgen.scalar.gamma.lgamma": torch.lgamma,
    "irtgen.scalar.gamma.lgamma_pos": torch.lgamma,
    "irtgen.scalar.gamma.lgamma1p": lambda a: torch.lgamma(1.0 + a),
    "irtgen.scalar.gamma.digamma": torch.digamma,
    "irtgen.scalar.gamma.digamma_pos": torch.digamma,
    "irtgen.scalar.beta.betaln": lambda a, b: (
        torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    ),
}
