"""Random-variate primitives for a spec's ``sampler``: z as a formula in random draws.

A sampler is an expression in the parameters and these primitives, e.g. Gamma's
``standard_gamma(concentration) / rate`` or Student-t's
``loc + scale * student_t_variate(df)``. It is used for *drawing* only: gradients of samples
always come from the CDF (the implicit formula), so a sampler needs no derivative. Each distinct
call is one independent draw per sample; two identical calls are the same draw (SymPy treats
them as one expression), so write ``standard_normal(0)`` and ``standard_normal(1)`` for two
independent normals (the optional argument of ``standard_normal`` is only a label).

The generated sample formulas call the scalar variates of ``irtgen.scalar.random`` (one source
for numba's and Triton's kernels); ``irtgen.codegen.functions.VARIATES`` maps them.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["standard_normal", "standard_gamma", "beta_variate", "student_t_variate", "Variate"]


class Variate(sp.Function):
    """A random draw; never differentiated, never evaluated symbolically."""

    is_extended_real = True

    def fdiff(self, argindex=1):  # pragma: no cover - samplers are not differentiated
        raise TypeError(f"{type(self).__name__} is a random draw and has no derivative")


class standard_normal(Variate):  # noqa: N801
    """A standard normal draw; the optional argument labels independent draws."""

    nargs = (0, 1)


class standard_gamma(Variate):  # noqa: N801
    """A Gamma(a, 1) draw (Marsaglia-Tsang; for a < 1 the boost U^(1/a) in log space)."""

    nargs = 1


class beta_variate(Variate):  # noqa: N801
    """A Beta(a, b) draw, from two gamma draws combined in log space (tiny shapes work)."""

    nargs = 2


class student_t_variate(Variate):  # noqa: N801
    """A standard Student-t draw with df degrees of freedom: N sqrt(df / chi2(df))."""

    nargs = 1


VARIATES = (standard_normal, standard_gamma, beta_variate, student_t_variate)
