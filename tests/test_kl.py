"""kl_divergence for irtgen's built-ins: torch's closed forms, for irtgen/irtgen and mixed pairs."""

from __future__ import annotations

import mpmath
import pytest
import torch
import torch.distributions as td

import irtgen.distributions as ird
from irtgen.kl import FAMILIES

P = {"loc": 0.3, "scale": 1.7, "concentration": 2.5, "rate": 0.8, "df": 3.0}
Q = {"loc": -0.4, "scale": 0.9, "concentration": 1.2, "rate": 1.9, "df": 5.5}
P.update(concentration1=2.5, concentration0=0.7)
Q.update(concentration1=0.6, concentration0=3.0)


def _make(cls, values, grad=False):
    names = list(getattr(ird, cls.__name__).arg_constraints)
    return cls(
        **{n: torch.tensor(values[n], dtype=torch.float64, requires_grad=grad) for n in names}
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_kl_is_torchs_closed_form_for_every_pairing(name):
    want = td.kl_divergence(_make(getattr(td, name), P), _make(getattr(td, name), Q))
    assert want.item() > 0
    ours, theirs = getattr(ird, name), getattr(td, name)
    for a, b in ((ours, ours), (ours, theirs), (theirs, ours)):
        got = td.kl_divergence(_make(a, P), _make(b, Q))
        assert torch.equal(got, want), (a, b)


def test_gamma_kl_against_numeric_integration_and_its_gradient():
    p = _make(ird.Gamma, P, grad=True)
    q = _make(ird.Gamma, Q)
    kl = td.kl_divergence(p, q)

    def integrand(x, a=P["concentration"], r=P["rate"], b=Q["concentration"], s=Q["rate"]):
        def logq(x, a, r):
            return a * mpmath.log(r) + (a - 1) * mpmath.log(x) - r * x - mpmath.loggamma(a)

        return mpmath.exp(logq(x, a, r)) * (logq(x, a, r) - logq(x, b, s))

    with mpmath.workdps(30):
        want = mpmath.quad(integrand, [0, 1, 10, mpmath.inf])
    assert abs(kl.item() - float(want)) < 1e-12 * float(want)
    kl.backward()
    assert p.concentration.grad is not None and torch.isfinite(p.concentration.grad)
    with mpmath.workdps(30):
        h = mpmath.mpf("1e-10")
        a0 = mpmath.mpf(P["concentration"])
        fd = (
            mpmath.quad(lambda x: integrand(x, a=a0 + h), [0, 1, 10, mpmath.inf])
            - mpmath.quad(lambda x: integrand(x, a=a0 - h), [0, 1, 10, mpmath.inf])
        ) / (2 * h)
    assert abs(p.concentration.grad.item() - float(fd)) < 1e-8 * abs(float(fd))
