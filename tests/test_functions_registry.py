"""The special-function registry: derivative rules against mpmath, lowering of SymPy's own
functions, complement rewrites, and that every registry row is complete.

The *accuracy* of the scalar implementations (numba and Triton) is tested in tests/scalar/; here
the symbolic side is checked: each ``fdiff`` (the chain rule the derivation uses) equals the mpmath
derivative of the function's own mpmath definition.
"""

from __future__ import annotations

import mpmath as mp
import pytest
import sympy as sp

import irtgen.functions as F
from irtgen.codegen.functions import FUNCTIONS, SPECIAL_FUNCTIONS, VARIATES
from irtgen.lower import lower
from irtgen.rewrite import stabilize

# (function, point): every argument's partial derivative is checked at the point
POINTS = [
    (F.log_ndtr, (-3.5,)),
    (F.log_ndtr, (1.25,)),
    (F.log_gamma_density, (2.5, 1.75)),
    (F.gammainc, (2.5, 1.75)),
    (F.gammainc, (0.3, 4.0)),
    (F.gammaincc, (0.3, 4.0)),
    (F.betaln, (2.5, 0.75)),
    (F.log_beta_density, (2.5, 0.75, 0.25, 0.75)),
    (F.betainc, (2.5, 0.75, 0.25, 0.75)),
    (F.betainc, (0.5, 4.0, 0.125, 0.875)),
    (F.student_t_cdf, (3.5, -1.25)),
    (F.student_t_cdf, (0.75, 2.5)),
]


def _partial_numeric(cls, args, i):
    def f(t):
        values = list(args)
        values[i] = t
        return cls._mp(*values)

    return mp.diff(f, args[i])


@pytest.mark.parametrize("cls, point", POINTS, ids=[f"{c.__name__}{p}" for c, p in POINTS])
def test_derivative_rules_match_mpmath(cls, point):
    syms = sp.symbols(f"s0:{len(point)}", positive=True)
    expr = cls(*syms)
    with mp.workdps(40):
        args = [mp.mpf(v) for v in point]
        for i in range(len(point)):
            rule = sp.diff(expr, syms[i])
            assert not rule.has(sp.Derivative), f"{cls.__name__}: no rule for argument {i + 1}"
            exact = {s: sp.Float(v, 40) for s, v in zip(syms, point, strict=True)}
            got = mp.mpf(str(sp.N(rule.subs(exact), 30)))
            want = _partial_numeric(cls, args, i)
            assert abs(got - want) <= mp.mpf("1e-25") * max(1, abs(want)), (i, got, want)


def test_every_registry_row_has_a_scalar_form():
    """Every function has its scalar-source call (the formulas); the torch column (parameter-
    only properties) is missing only for irtgen's iterative special functions, which torch
    lacks."""
    for cls, impl in FUNCTIONS.items():
        assert impl.scalar, cls.__name__
        assert impl.torch or cls in SPECIAL_FUNCTIONS, cls.__name__
    for cls in F.IRTGEN_FUNCTIONS:
        assert cls in FUNCTIONS, cls.__name__
        assert FUNCTIONS[cls].reference is not None, cls.__name__
    for cls, impl in VARIATES.items():
        assert impl.scalar.startswith("rnd.") and "_seed, _offs" in impl.scalar, cls.__name__


a, b, x = sp.symbols("a b x", positive=True)
t = sp.Symbol("t", real=True)
nu = sp.Symbol("nu", positive=True)

LOWERED = [
    (sp.lowergamma(a, x) / sp.gamma(a), F.gammainc(a, x)),
    (sp.uppergamma(a, x) / sp.gamma(a), F.gammaincc(a, x)),
    (sp.lowergamma(a, x), F.gammainc(a, x) * sp.gamma(a)),
    (sp.beta(a, b), sp.exp(F.betaln(a, b))),
    (sp.betainc_regularized(a, b, 0, x), F.betainc(a, b, x, 1 - x)),
    (sp.betainc(a, b, 0, x) / sp.beta(a, b), F.betainc(a, b, x, 1 - x)),
    # 1 - x is formed with together(): t²/(ν + t²) keeps its digits where 1 - ν/(ν + t²) does not
    (
        sp.betainc_regularized(nu / 2, sp.S.Half, 0, nu / (nu + t**2)),
        F.betainc(nu / 2, sp.S.Half, nu / (nu + t**2), t**2 / (nu + t**2)),
    ),
    (
        sp.betainc_regularized(a, b, x / 2, x),
        F.betainc(a, b, x, 1 - x) - F.betainc(a, b, x / 2, 1 - x / 2),
    ),
]


@pytest.mark.parametrize("expr, want", LOWERED, ids=[str(e) for e, _ in LOWERED])
def test_lowering(expr, want):
    assert sp.simplify(lower(expr) - want) == 0


COMPLEMENTS = [
    (1 - F.gammainc(a, x), F.gammaincc(a, x)),
    (1 - F.gammaincc(a, x), F.gammainc(a, x)),
    (2 - 2 * F.betainc(a, b, x, 1 - x), 2 * F.betainc(b, a, 1 - x, x)),
    (1 - F.student_t_cdf(nu, t), F.student_t_cdf(nu, -t)),
]


@pytest.mark.parametrize("expr, want", COMPLEMENTS, ids=[str(e) for e, _ in COMPLEMENTS])
def test_complements_are_computed_directly(expr, want):
    assert stabilize(expr) == want


def test_regularized_gamma_derivatives_cancel_against_the_density():
    # the implicit gradient of Gamma(a, rate) is a ratio function alone: no exp() left over
    rate, z = sp.symbols("rate z", positive=True)
    cdf = F.gammainc(a, rate * z)
    implicit = sp.simplify(-sp.diff(cdf, a) / sp.diff(cdf, z))
    assert implicit == -F.gammainc_da_ratio(a, rate * z) / rate
