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


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_sampler_matches_cdf(case, backend):
    n = 4000 if backend == "torch" else 1000
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
