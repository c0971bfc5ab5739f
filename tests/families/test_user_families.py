"""Families a user declares by CDF only (no icdf, no sampler), none of them built in.

They are built with ``irtgen.load``; samples come from numeric inversion of the CDF. Checked on
both backends: samples follow the CDF (KS), and rsample's gradients equal the closed-form
derivative of the exact inverse CDF, d icdf(u; θ)/dθ at u = F(z), computed by mpmath.
Includes a parameter-dependent support (Pareto) and a piecewise CDF (two-sided exponential).
"""

from __future__ import annotations

import textwrap

import mpmath as mp
import pytest
import torch
from scipy import stats

from tests.user_specs import load_spec_text

SPEC = textwrap.dedent(
    """
    import sympy as sp
    import irtgen

    z = sp.Symbol("z", real=True)
    alpha, beta, s, m = sp.symbols("alpha beta s m", positive=True)
    mu = sp.Symbol("mu", real=True)
    s1, s2 = sp.symbols("s1 s2", positive=True)

    Frechet = irtgen.Distribution(
        name="Frechet", variable=z, params={alpha: "positive", s: "positive"},
        support=sp.Interval.open(0, sp.oo), cdf=sp.exp(-(z / s) ** (-alpha)))
    Pareto = irtgen.Distribution(
        name="Pareto", variable=z, params={m: "positive", alpha: "positive"},
        support=sp.Interval(m, sp.oo), cdf=1 - (m / z) ** alpha)
    Gompertz = irtgen.Distribution(
        name="Gompertz", variable=z, params={alpha: "positive", beta: "positive"},
        support=sp.Interval(0, sp.oo), cdf=1 - sp.exp(-alpha * (sp.exp(beta * z) - 1)))
    LogLogistic = irtgen.Distribution(
        name="LogLogistic", variable=z, params={alpha: "positive", beta: "positive"},
        support=sp.Interval(0, sp.oo), cdf=1 / (1 + (z / alpha) ** (-beta)))
    TwoSidedExponential = irtgen.Distribution(
        name="TwoSidedExponential", variable=z, params={mu: "real", s1: "positive", s2: "positive"},
        support=sp.Interval(-sp.oo, sp.oo),
        cdf=sp.Piecewise(
            (s1 / (s1 + s2) * sp.exp((z - mu) / s1), z < mu),
            (1 - s2 / (s1 + s2) * sp.exp(-(z - mu) / s2), True)))
    """
)


def _two_sided_q(u, mu, s1, s2):
    p = s1 / (s1 + s2)
    return mu + s1 * mp.log(u / p) if u < p else mu - s2 * mp.log((1 - u) / (1 - p))


def _two_sided_f(z, mu, s1, s2):
    p = s1 / (s1 + s2)
    return p * mp.exp((z - mu) / s1) if z < mu else 1 - (1 - p) * mp.exp(-(z - mu) / s2)


# name: (mpmath cdf, mpmath exact inverse, parameter values)
FAMILIES = {
    "Frechet": (
        lambda z, a, s: mp.exp(-((z / s) ** (-a))),
        lambda u, a, s: s * (-mp.log(u)) ** (-1 / a),
        (1.7, 0.8),
    ),
    "Pareto": (
        lambda z, m, a: 1 - (m / z) ** a,
        lambda u, m, a: m * (1 - u) ** (-1 / a),
        (2.0, 3.0),
    ),
    "Gompertz": (
        lambda z, a, b: 1 - mp.exp(-a * mp.expm1(b * z)),
        lambda u, a, b: mp.log1p(-mp.log(1 - u) / a) / b,
        (0.5, 1.2),
    ),
    "LogLogistic": (
        lambda z, a, b: 1 / (1 + (z / a) ** (-b)),
        lambda u, a, b: a * (u / (1 - u)) ** (1 / b),
        (1.3, 2.5),
    ),
    "TwoSidedExponential": (_two_sided_f, _two_sided_q, (0.5, 0.7, 2.0)),
}
TOL = {torch.float64: 1e-12, torch.float32: 2e-5}


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    yield from load_spec_text(tmp_path_factory, "my_families", SPEC)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_cdf_only_family_samples_and_gradients(user, name, dtype, backend):
    cdf, inverse, values = FAMILIES[name]
    n = 600 if backend == "torch" else 200
    params = [torch.full((2,), v, dtype=dtype, requires_grad=True) for v in values]
    torch.manual_seed(11)
    z = getattr(user, name)(*params).rsample((n // 2,))
    assert z.shape == (n // 2, 2) and torch.isfinite(z).all()
    z.sum().backward()

    exact = [0.0] * len(values)
    us = []
    with mp.workdps(40):
        pv = [mp.mpf(float(p[0].detach())) for p in params]
        for zv in z.detach().flatten().tolist():
            u = cdf(mp.mpf(zv), *pv)
            us.append(float(u))
            for i in range(len(values)):

                def f(t, i=i, u=u):
                    p = list(pv)
                    p[i] = t
                    return inverse(u, *p)

                exact[i] += mp.diff(f, pv[i])
    for i, p in enumerate(params):
        got = p.grad.double().sum().item()
        err = abs(got - float(exact[i])) / abs(float(exact[i]))
        assert err <= TOL[dtype], f"{name} d/d{i}: got {got}, exact {float(exact[i])}"
    assert stats.kstest(us, "uniform").pvalue > 1e-3


def test_numeric_inversion_inverts_the_cdf(user, backend):
    # validation asked for explicitly: torch.compile's first use in the process (an earlier
    # test) turns torch's default validation off
    d = user.Gompertz(
        torch.tensor(0.5, dtype=torch.float64),
        torch.tensor(1.2, dtype=torch.float64),
        validate_args=True,
    )
    u = torch.tensor([1e-12, 1e-6, 0.3, 0.5, 0.9, 1 - 1e-6, 1 - 1e-12], dtype=torch.float64)
    z = d.icdf(u)
    back = d.cdf(z)
    torch.testing.assert_close(back, u, rtol=1e-12, atol=0)
    assert d.icdf(torch.tensor([0.0, 1.0], dtype=torch.float64)).tolist() == [0.0, float("inf")]
    outside = torch.tensor([-0.1, 1.5], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d.icdf(outside)
    d.__init__(*d._params, validate_args=False)
    assert torch.isnan(d.icdf(outside)).all()


def test_parameter_dependent_support(user, backend):
    d = user.Pareto(torch.tensor([1.0, 5.0]), torch.tensor(2.0), validate_args=False)
    x = torch.tensor([[0.5, 4.0], [2.0, 6.0]])
    lp = d.log_prob(x)
    assert lp[0, 0] == -float("inf") and lp[0, 1] == -float("inf")
    assert torch.isfinite(lp[1]).all()
    assert d.cdf(x)[0].tolist() == [0.0, 0.0]
    assert d.support.check(torch.tensor([1.5, 5.5])).all()
    assert not d.support.check(torch.tensor([0.5, 4.5])).any()
    with pytest.raises(ValueError, match="support"):
        user.Pareto(torch.tensor([1.0, 5.0]), torch.tensor(2.0), validate_args=True).log_prob(x)
