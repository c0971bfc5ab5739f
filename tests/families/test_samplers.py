"""Samplers: Kolmogorov-Smirnov against the family's own CDF (mpmath, independent of irtgen),
fixed seeds, both backends. The Triton interpreter is slow with RNG, so its samples are fewer."""

from __future__ import annotations

import mpmath as mp
import pytest
import torch
from scipy import stats

from tests.families.cases import CASES

# One parameter set per family, including a small and a large shape among them.
PICK = {c.name: c.grid[1] for c in CASES}


# numba with uniforms and normals from torch's generator (the default) or from the Philox
# stream (IRTGEN_CPU_DRAWS=philox), and Triton (always Philox)
PATHS = [("numba", "torch"), ("numba", "philox"), ("triton", "philox")]


@pytest.mark.parametrize("path", PATHS, ids=lambda p: "-".join(p))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_sampler_matches_cdf(case, path, monkeypatch):
    backend, draws = path
    monkeypatch.setenv("IRTGEN_BACKEND", backend)
    monkeypatch.setenv("IRTGEN_CPU_DRAWS", draws)
    n = 4000 if backend == "numba" else 1000
    params = [torch.tensor(v, dtype=torch.float64) for v in PICK[case.name]]
    torch.manual_seed(1234)
    x = case.cls(*params).sample((n,))
    assert x.shape == (n,) and torch.isfinite(x).all()
    cdf = [float(case.cdf(mp.mpf(v), *[mp.mpf(p) for p in PICK[case.name]])) for v in x.tolist()]
    result = stats.kstest(cdf, "uniform")
    assert result.pvalue > 1e-3, f"KS statistic {result.statistic:.4f}, p = {result.pvalue:.2e}"


def test_same_seed_same_samples(backend):
    from irtgen.distributions import Gumbel

    d = Gumbel(torch.tensor([0.0, 1.0]), torch.tensor(2.0))
    torch.manual_seed(7)
    a = d.rsample((100,))
    torch.manual_seed(7)
    b = d.rsample((100,))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(7)
    c = d.sample((100,), generator=g)
    g = torch.Generator().manual_seed(7)
    assert torch.equal(c, d.sample((100,), generator=g))
    assert not torch.equal(a, d.rsample((100,)))


def test_torch_uniforms_never_reach_the_ends():
    """IRTGEN_CPU_DRAWS=torch: torch.rand's float64 u in [0, 1) becomes (floor(2^52 u) + 1/2)
    2^-52, strictly inside (0, 1), so an icdf never maps a draw to an end of the support."""
    import numpy as np

    from irtgen.compilers import cpu
    from irtgen.scalar import scalar

    @scalar
    def identity(u):
        return u

    u = np.array([0.0, 2.0**-53, 0.5, 1.0 - 2.0**-53])
    v = cpu.run_uniforms(identity, u, np.zeros((1, 0)), np.float64)
    assert v[0] == v[1] == 2.0**-53
    assert v[2] == 0.5 + 2.0**-53
    assert v[3] == 1.0 - 2.0**-53
    assert (v > 0).all() and (v < 1).all()


@pytest.mark.parametrize("draws", ["torch", "philox"])
def test_cpu_draws_modes(draws, monkeypatch):
    """Both modes are reproducible for a seed; they differ from each other for the families
    whose draw is one uniform or one normal, and Gamma draws from Philox in both."""
    from irtgen.distributions import Gamma, Normal

    monkeypatch.setenv("IRTGEN_BACKEND", "numba")
    out = {}
    for mode in ("torch", "philox"):
        monkeypatch.setenv("IRTGEN_CPU_DRAWS", mode)
        for cls, args in ((Normal, (0.5, 2.0)), (Gamma, (2.5, 1.5))):
            torch.manual_seed(3)
            a = cls(*map(torch.tensor, args)).sample((200,))
            torch.manual_seed(3)
            assert torch.equal(a, cls(*map(torch.tensor, args)).sample((200,)))
            out[mode, cls.__name__] = a
    assert not torch.equal(out["torch", "Normal"], out["philox", "Normal"])
    assert torch.equal(out["torch", "Gamma"], out["philox", "Gamma"])
    monkeypatch.setenv("IRTGEN_CPU_DRAWS", "bogus")
    with pytest.raises(ValueError, match="IRTGEN_CPU_DRAWS"):
        Normal(torch.tensor(0.0), torch.tensor(1.0)).sample((2,))
