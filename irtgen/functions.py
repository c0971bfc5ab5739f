"""SymPy functions that irtgen adds for numerically careful code.

They carry derivative rules (``fdiff``) so that the symbolic derivation differentiates through
them, and numeric evaluation (``_eval_evalf``) so that build-time checks can evaluate them. The
rewrite pass (``irtgen.rewrite``) introduces them; a spec may also use them directly, e.g.
``irtgen.functions.ndtri(u)`` in a Normal icdf. ``log1p`` and ``expm1`` are SymPy's own
(``sympy.codegen.cfunctions``) and are re-exported here.
"""

from __future__ import annotations

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

__all__ = [
    "expm1",
    "log1p",
    "log1mexp",
    "softplus",
    "sigmoid",
    "log_ratio",
    "ndtr",
    "ndtri",
    "IRTGEN_FUNCTIONS",
]


class _MpmathFunction(sp.Function):
    """A function with a numeric definition through mpmath, used by evalf."""

    @staticmethod
    def _mp(*args):  # pragma: no cover - overridden
        raise NotImplementedError

    def _eval_evalf(self, prec):
        args = [a.evalf(prec) for a in self.args]
        if not all(a.is_number for a in args):
            return None
        with mpmath.workprec(prec):
            value = self._mp(*(mpmath.mpf(str(a)) for a in args))
        return sp.Float(value, sp.core.evalf.prec_to_dps(prec))


class log1mexp(_MpmathFunction):  # noqa: N801 - mirrors the usual math-library name
    """log(1 - exp(x)) for x < 0, accurate for x near 0 and for x very negative."""

    nargs = 1

    @staticmethod
    def _mp(x):
        if x > -mpmath.log(2):
            return mpmath.log(-mpmath.expm1(x))
        return mpmath.log1p(-mpmath.exp(x))

    def fdiff(self, argindex=1):
        (x,) = self.args
        return -1 / expm1(-x)

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 - sp.exp(x))


class softplus(_MpmathFunction):  # noqa: N801
    """log(1 + exp(x)), without overflow for large x."""

    nargs = 1

    @staticmethod
    def _mp(x):
        return mpmath.log1p(mpmath.exp(x))

    def fdiff(self, argindex=1):
        (x,) = self.args
        return 1 / (1 + sp.exp(-x))

    def _eval_rewrite_as_log(self, x, **kwargs):
        return sp.log(1 + sp.exp(x))


class sigmoid(_MpmathFunction):  # noqa: N801
    """1/(1 + exp(-x)), without overflow for either sign of x."""

    nargs = 1

    @staticmethod
    def _mp(x):
        return 1 / (1 + mpmath.exp(-x))

    def fdiff(self, argindex=1):
        (x,) = self.args
        return sigmoid(x) * sigmoid(-x)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sp.exp(-x))


class log_ratio(_MpmathFunction):  # noqa: N801
    """log(a/b) for a, b > 0, accurate when a is close to b (then a - b is exact)."""

    nargs = 2

    @staticmethod
    def _mp(a, b):
        return mpmath.log(a / b)

    def fdiff(self, argindex=1):
        a, b = self.args
        return 1 / a if argindex == 1 else -1 / b

    def _eval_evalf(self, prec):
        a, b = self.args
        # a - b through SymPy's adaptive evalf: exact digits even when a and b nearly agree
        d = (a - b).evalf(prec)
        bv = b.evalf(prec)
        if not (d.is_number and bv.is_number):
            return None
        with mpmath.workprec(prec):
            value = mpmath.log1p(mpmath.mpf(str(d)) / mpmath.mpf(str(bv)))
        return sp.Float(value, sp.core.evalf.prec_to_dps(prec))

    def _eval_rewrite_as_log(self, a, b, **kwargs):
        return sp.log(a / b)


class ndtr(_MpmathFunction):  # noqa: N801
    """Standard normal CDF, (1 + erf(x/sqrt(2)))/2, accurate in the lower tail (via erfc)."""

    nargs = 1

    @staticmethod
    def _mp(x):
        return mpmath.ncdf(x)

    def fdiff(self, argindex=1):
        (x,) = self.args
        return sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)

    def _eval_rewrite_as_erf(self, x, **kwargs):
        return (1 + sp.erf(x / sp.sqrt(2))) / 2


class ndtri(_MpmathFunction):  # noqa: N801
    """Inverse of the standard normal CDF, accurate in both tails."""

    nargs = 1

    @staticmethod
    def _mp(p):
        # 2p - 1 loses the digits of p near 0 and 1: add as many as they need
        tail = min(p, 1 - p)
        extra = int(-mpmath.log10(tail)) + 10 if 0 < tail < 1 else 10
        with mpmath.workdps(mpmath.mp.dps + extra):
            return mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1)

    def fdiff(self, argindex=1):
        return sp.sqrt(2 * sp.pi) * sp.exp(self**2 / 2)

    def _eval_rewrite_as_erfinv(self, p, **kwargs):
        return sp.sqrt(2) * sp.erfinv(2 * p - 1)


# Functions defined here, for spec namespaces and printers.
IRTGEN_FUNCTIONS = (log1mexp, softplus, sigmoid, log_ratio, ndtr, ndtri)
