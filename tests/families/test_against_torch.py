"""Built-ins against torch.distributions where torch has the family: log_prob, cdf, moments,
and Normal's gradient against explicit reparameterization (exact up to rounding)."""

from __future__ import annotations

import mpmath as mp
import pytest
import torch

from tests.families.cases import CASES

WITH_TORCH = [c for c in CASES if c.torch_cls is not None]


def _values(case, params, n=64):
    torch.manual_seed(1)
    ref = case.torch_cls(*params)
    return ref.sample((n,))


@pytest.mark.parametrize("case", WITH_TORCH, ids=lambda c: c.name)
def test_log_prob_matches_torch(case, backend):
    for params in case.grid:
        p = [torch.tensor(v, dtype=torch.float64) for v in params]
        x = _values(case, p)
        if case.name == "Kumaraswamy":  # torch's sampler rounds to the ends for small shapes
            x = x.clamp(1e-12, 1 - 1e-12)
        ours = case.cls(*p).log_prob(x)
        theirs = case.torch_cls(*p).log_prob(x)
        ok = torch.isfinite(theirs)
        assert ok.sum() > 32
        torch.testing.assert_close(ours[ok], theirs[ok], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", WITH_TORCH, ids=lambda c: c.name)
def test_cdf_matches_torch(case, backend):
    if case.special:
        pytest.skip("compared with mpmath instead: torch's gammainc/betainc err by up to 1e-9")
    for params in case.grid:
        p = [torch.tensor(v, dtype=torch.float64) for v in params]
        x = _values(case, p)
        try:
            theirs = case.torch_cls(*p).cdf(x)
        except NotImplementedError:
            pytest.skip(f"torch's {case.name} has no cdf")
        torch.testing.assert_close(case.cls(*p).cdf(x), theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", WITH_TORCH, ids=lambda c: c.name)
@pytest.mark.parametrize("moment", ["mean", "variance", "entropy"])
def test_moments_match_torch(case, moment):
    for params in case.grid:
        p = [torch.tensor([v, 1.5 * v], dtype=torch.float64) for v in params]
        theirs = getattr(case.torch_cls(*p), moment)
        ours = getattr(case.cls(*p), moment)
        # the same kind of attribute as torch's: mean/variance properties, entropy() a method
        assert callable(ours) == callable(theirs), moment
        if callable(theirs):
            theirs, ours = theirs(), ours()
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_normal_equals_explicit_reparameterization(dtype, backend):
    from irtgen.distributions import Normal

    torch.manual_seed(0)
    loc = torch.randn(3, 1, dtype=dtype, requires_grad=True)
    scale = (torch.rand(4, dtype=dtype) + 0.1).requires_grad_()
    z = Normal(loc, scale).rsample((5,))
    weights = torch.randn_like(z)
    (weights * z).sum().backward()
    # explicit: z = loc + scale * eps, eps = (z - loc)/scale
    eps = ((z - loc) / scale).detach()
    expect_loc = weights.sum(dim=(0, 2)).unsqueeze(1)
    expect_scale = (weights * eps).sum(dim=(0, 1))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loc.grad, expect_loc, **tol)
    torch.testing.assert_close(scale.grad, expect_scale, **tol)


@pytest.mark.parametrize("case", [c for c in CASES if c.special], ids=lambda c: c.name)
def test_cdf_matches_mpmath(case, backend):
    """torch.distributions' samples, irtgen's cdf, mpmath's reference (40 digits)."""
    worst = 0.0
    for params in case.grid:
        p = [torch.tensor(v, dtype=torch.float64) for v in params]
        x = _values(case, p, n=16)
        ours = case.cls(*p).cdf(x).tolist()
        with mp.workdps(40):
            pm = [mp.mpf(v) for v in params]
            for xv, got in zip(x.tolist(), ours, strict=True):
                ref = case.cdf(mp.mpf(xv), *pm)
                worst = max(worst, float(abs(got - ref) / ref) if ref else abs(got))
    assert worst <= 1e-13, worst
