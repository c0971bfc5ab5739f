"""Lowering of SymPy's own special functions to irtgen's (before anything is differentiated).

SymPy differentiates ``lowergamma(a, x)`` in ``a`` into Meijer-G functions that no backend can
evaluate; irtgen's functions (``irtgen.functions``) carry derivative rules that the generated code
can compute, with the shared prefactors cancelled. So a user's CDF written with SymPy's functions
is rewritten first:

===================================  =======================================================
SymPy                                lowered to
===================================  =======================================================
``lowergamma(a, x)``                 ``gammainc(a, x) * gamma(a)`` (the Γ(a) of a regularized
                                     ``lowergamma(a, x)/gamma(a)`` cancels)
``uppergamma(a, x)``                 ``gammaincc(a, x) * gamma(a)``
``beta(a, b)``                       ``exp(betaln(a, b))``
``betainc_regularized(a, b, u, v)``  ``I_v(a, b) - I_u(a, b)`` with I_x = ``betainc(a, b, x, 1 - x)``
``betainc(a, b, u, v)``              ``B(a, b) * (I_v(a, b) - I_u(a, b))``
===================================  =======================================================

``1 - x`` is passed through ``together`` so that, e.g., 1 - ν/(ν + t²) becomes t²/(ν + t²) and
keeps its digits. ``gamma``, ``loggamma``, ``polygamma(0, ·)``, ``erf`` and ``erfc`` are computed
as they are (see ``irtgen.codegen.functions``). Functions that neither list knows fail the build
later with an error naming them.
"""

from __future__ import annotations

import sympy as sp

from irtgen.functions import betainc, betaln, gammainc, gammaincc


def _complement(x: sp.Expr) -> sp.Expr:
    y = sp.together(1 - x)
    return y if sp.count_ops(y) <= sp.count_ops(1 - x) + 2 else 1 - x


def _regularized_beta(a, b, x):
    if x == 0:
        return sp.S.Zero
    if x == 1:
        return sp.S.One
    return betainc(a, b, x, _complement(x))


RULES = {
    sp.lowergamma: lambda a, x: gammainc(a, x) * sp.gamma(a),
    sp.uppergamma: lambda a, x: gammaincc(a, x) * sp.gamma(a),
    sp.beta: lambda a, b: sp.exp(betaln(a, b)),
    sp.betainc_regularized: lambda a, b, u, v: (
        _regularized_beta(a, b, v) - _regularized_beta(a, b, u)
    ),
    sp.betainc: lambda a, b, u, v: (
        sp.exp(betaln(a, b)) * (_regularized_beta(a, b, v) - _regularized_beta(a, b, u))
    ),
}


def lower(expr: sp.Basic) -> sp.Basic:
    """``expr`` with SymPy's incomplete gamma/beta and beta functions replaced (see above)."""
    for cls, fn in RULES.items():
        expr = expr.replace(lambda e, cls=cls: isinstance(e, cls), lambda e, fn=fn: fn(*e.args))
    return expr
