"""The random-number contract: the same seed (torch.manual_seed or generator=) gives identical
draws and bit-identical gradients on the same device and backend; another seed gives other draws.
Both backends (Triton in the interpreter, small sizes)."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, Independent

from irtgen.distributions import Beta, Dirichlet, Gamma, MixtureSameFamily, Normal, StudentT

F64 = torch.float64


def _leaves():
    return [
        torch.tensor([0.3, 2.5], dtype=F64, requires_grad=True),
        torch.tensor([1.5, 0.7], dtype=F64, requires_grad=True),
    ]


def _cases():
    return {
        "Normal": lambda a, b: Normal(a, b),
        "Gamma": lambda a, b: Gamma(a, b),
        "Beta": lambda a, b: Beta(a, b),
        "StudentT": lambda a, b: StudentT(a + 1.0, b, b),
        "Mixture": lambda a, b: MixtureSameFamily(
            Categorical(logits=a), Gamma(b + 1.0, torch.ones(2, dtype=F64))
        ),
        "Independent mixture": lambda a, b: MixtureSameFamily(
            Categorical(logits=a), Independent(Normal(torch.stack([a, b]), b.unsqueeze(-1)), 1)
        ),
        "Dirichlet": lambda a, b: Dirichlet(a + b),
    }


def _run(make, seed, generator: bool):
    leaves = _leaves()
    d = make(*leaves)
    if generator:
        z = d.rsample((24,), generator=torch.Generator().manual_seed(seed))
    else:
        torch.manual_seed(seed)
        z = d.rsample((24,))
    grads = torch.autograd.grad((z * z).sum(), leaves, allow_unused=True)
    return z.detach(), [g if g is not None else torch.zeros(0) for g in grads]


@pytest.mark.parametrize("backend", ["numba", "triton"])
@pytest.mark.parametrize("generator", [False, True], ids=["manual_seed", "generator"])
@pytest.mark.parametrize("name", list(_cases()))
def test_same_seed_same_draws_and_gradients(monkeypatch, backend, generator, name):
    monkeypatch.setenv("IRTGEN_BACKEND", backend)
    make = _cases()[name]
    z1, g1 = _run(make, 11, generator)
    z2, g2 = _run(make, 11, generator)
    assert torch.equal(z1, z2)
    for a, b in zip(g1, g2, strict=True):
        assert torch.equal(a, b)  # bit-identical, not merely close
    z3, _ = _run(make, 12, generator)
    assert not torch.equal(z1, z3)
