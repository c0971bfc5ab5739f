"""Property-based tests (hypothesis) of every built-in univariate family over its parameter
ranges, in float32 and float64: draws finite and strictly inside the support, log_prob finite
at the draws, rsample's gradients finite, and in float64 the implicit gradient within 1e-6 of a
central finite difference of the icdf; a per-example deadline guards against hangs.

Profiles (tests/conftest.py): ``ci`` (the default, a few examples per family) and
``thorough`` (``python -m pytest tests/test_properties.py --hypothesis-profile=thorough``).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import irtgen.distributions as D

F32, F64 = torch.float32, torch.float64
FAMILIES = [
    "Normal",
    "Exponential",
    "Gamma",
    "Chi2",
    "Beta",
    "Cauchy",
    "Gumbel",
    "Laplace",
    "HalfNormal",
    "LogNormal",
    "InverseGamma",
    "StudentT",
    "Weibull",
    "Kumaraswamy",
    "Logistic",
]


def _value(kind: str) -> st.SearchStrategy:
    """A parameter value: positive ones log-uniform over 1e-2 .. 1e2 (shapes, scales, rates),
    real ones (locations) uniform over -10 .. 10."""
    if kind == "real":
        return st.floats(-10.0, 10.0, allow_nan=False)
    return st.floats(-2.0, 2.0, allow_nan=False).map(lambda e: 10.0**e)


def _kinds(name: str) -> list[str]:
    cls = getattr(D, name)
    return [
        "real" if type(cls.arg_constraints[p]).__name__ == "_Real" else "positive"
        for p in cls.family.param_names
    ]


def _params(name: str) -> st.SearchStrategy:
    return st.tuples(*(_value(k) for k in _kinds(name)))


def _inside(d, x) -> bool:
    lo = getattr(d.support, "lower_bound", -math.inf)
    hi = getattr(d.support, "upper_bound", math.inf)
    return bool((torch.isfinite(x) & (x > lo) & (x < hi)).all())


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", FAMILIES)
def test_draws_log_prob_and_gradients(name, dtype):
    @given(values=_params(name), seed=st.integers(0, 2**31 - 1))
    def check(values, seed):
        torch.manual_seed(seed)
        params = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in values]
        d = getattr(D, name)(*params)
        z = d.rsample((64,))
        assert _inside(d, z.detach()), (values, z.min(), z.max())
        lp = d.log_prob(z.detach())
        assert not bool(torch.isnan(lp).any()) and bool((lp < math.inf).all()), values
        (z * torch.linspace(-1.0, 1.0, 64, dtype=dtype)).sum().backward()
        for p in params:
            assert not bool(torch.isnan(p.grad).any()), (values, p.grad)
            if dtype == F64:
                assert bool(torch.isfinite(p.grad).all()), (values, p.grad)

    check()


@pytest.mark.parametrize("name", FAMILIES)
def test_implicit_gradient_is_the_icdf_derivative(name):
    """dz/dθ of reparameterize(icdf(u)) against (icdf(u; θ + h) - icdf(u; θ - h)) / 2h in
    float64, at u from 0.05 to 0.95."""
    u = torch.linspace(0.05, 0.95, 7, dtype=F64)
    w = torch.linspace(0.5, 1.5, 7, dtype=F64)

    @given(values=_params(name))
    def check(values):
        cls = getattr(D, name)
        params = [torch.tensor(v, dtype=F64, requires_grad=True) for v in values]
        d = cls(*params)
        z = d.icdf(u).detach()
        grads = torch.autograd.grad((w * d.reparameterize(z)).sum(), params)
        for k, (v, kind) in enumerate(zip(values, _kinds(name), strict=True)):
            # a step relative to a positive parameter (shapes down to 1e-2), else to 1
            h = 1e-6 * (abs(v) if kind == "positive" else max(1.0, abs(v)))
            up = [torch.tensor(x + (h if i == k else 0.0), dtype=F64) for i, x in enumerate(values)]
            dn = [torch.tensor(x - (h if i == k else 0.0), dtype=F64) for i, x in enumerate(values)]
            fd = (w * (cls(*up).icdf(u) - cls(*dn).icdf(u))).sum() / (2 * h)
            scale = float((w * (z.abs() + 1.0)).sum()) / (abs(v) if kind == "positive" else 1.0)
            assert abs(float(grads[k]) - float(fd)) <= 1e-6 * max(abs(float(fd)), scale), (
                name,
                values,
                k,
                float(grads[k]),
                float(fd),
            )

    check()
