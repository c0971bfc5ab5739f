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


def _has_torch_kl(p_cls, q_cls) -> bool:
    try:
        td.kl_divergence(_make(p_cls, P), _make(q_cls, Q))
    except NotImplementedError:
        return False
    return True


@pytest.mark.parametrize("name", FAMILIES)
def test_kl_is_torchs_closed_form_for_every_pairing(name):
    ours, theirs = getattr(ird, name), getattr(td, name)
    if not _has_torch_kl(theirs, theirs):  # torch has none (Cauchy, StudentT, ...): neither do we
        for a, b in ((ours, ours), (ours, theirs), (theirs, ours)):
            with pytest.raises(NotImplementedError):
                td.kl_divergence(_make(a, P), _make(b, Q))
        return
    want = td.kl_divergence(_make(theirs, P), _make(theirs, Q))
    assert want.item() > 0
    for a, b in ((ours, ours), (ours, theirs), (theirs, ours)):
        got = td.kl_divergence(_make(a, P), _make(b, Q))
        assert torch.equal(got, want), (a, b)


# torch classes without an irtgen namesake that torch pairs with one
OTHERS = {
    "Uniform": lambda: td.Uniform(
        torch.tensor(0.1, dtype=torch.float64), torch.tensor(2.5, dtype=torch.float64)
    ),
    "Pareto": lambda: td.Pareto(
        torch.tensor(0.5, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    ),
    "ContinuousBernoulli": lambda: td.ContinuousBernoulli(torch.tensor(0.3, dtype=torch.float64)),
}


def _cross_pairs():
    """Every pair of different classes that torch's registry gives a closed form, with an
    irtgen namesake on at least one side."""
    from torch.distributions.kl import _KL_REGISTRY

    names = set(FAMILIES) | set(OTHERS)
    pairs = set()
    for (p, q), fn in _KL_REGISTRY.items():
        if p is q or p.__name__ not in names or q.__name__ not in names:
            continue
        if fn.__module__ != "torch.distributions.kl":  # irtgen's own registrations
            continue
        if p.__name__ in FAMILIES or q.__name__ in FAMILIES:
            pairs.add((p.__name__, q.__name__))
    return sorted(pairs)


CROSS = _cross_pairs()


def _instance(name, ours: bool, values):
    if name in OTHERS:
        return OTHERS[name]()
    return _make(getattr(ird if ours else td, name), values)


@pytest.mark.parametrize("p_name, q_name", CROSS, ids=[f"{p}-{q}" for p, q in CROSS])
def test_cross_family_kl_is_torchs(p_name, q_name):
    """The pairs of different families that torch registers (Gamma‖Exponential, Beta‖Uniform,
    Normal‖Laplace, ...), with irtgen's class on either side or both: torch's value, and
    gradients to the irtgen side's parameters."""
    want = td.kl_divergence(_instance(p_name, False, P), _instance(q_name, False, Q))
    for p_ours in (False, True):
        for q_ours in (False, True):
            if (p_ours and p_name in OTHERS) or (q_ours and q_name in OTHERS):
                continue
            p = _instance(p_name, p_ours, P)
            q = _instance(q_name, q_ours, Q)
            got = td.kl_divergence(p, q)
            assert torch.equal(got, want), (p_name, p_ours, q_name, q_ours)


def test_cross_pairs_cover_torchs_registry():
    assert len(CROSS) >= 30
    assert {("Gamma", "Exponential"), ("Beta", "Uniform"), ("Normal", "Laplace")} <= set(CROSS)


def test_kl_after_rebinding_torchs_class(monkeypatch):
    """Switching a codebase by ``torch.distributions.Normal = irtgen.distributions.Normal``
    still reaches torch's closed form (it used to recurse without end)."""
    want = td.kl_divergence(_make(td.Normal, P), _make(td.Normal, Q))
    monkeypatch.setattr(td, "Normal", ird.Normal)
    got = td.kl_divergence(_make(ird.Normal, P), _make(ird.Normal, Q))
    assert torch.equal(got, want)


def test_chi2_against_gamma_uses_torchs_gamma_form():
    """torch's Chi2 is a Gamma, so torch's Gamma‖Gamma form applies to Chi2 against Gamma."""
    want = td.kl_divergence(
        td.Chi2(torch.tensor(3.0)), td.Gamma(torch.tensor(2.0), torch.tensor(0.7))
    )
    got = td.kl_divergence(
        ird.Chi2(torch.tensor(3.0)), ird.Gamma(torch.tensor(2.0), torch.tensor(0.7))
    )
    assert torch.equal(got, want)


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
