"""``Empirical``: a kernel-smoothed empirical distribution with gradients to its data points and
bandwidth.

Pointwise gradients are checked against dz/dθ = -(∂F/∂θ)/q from mpmath (50 digits,
``mpmath.diff``) with F(z) = (1/N) Σ_i K((z - x_i)/h), for Normal and Logistic kernels, with and
without a batch dimension; Monte Carlo derivatives of E[z^2] against their closed forms; a large
data set for finite gradients and two exact identities; bad inputs for clear errors.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import scipy.stats
import torch
import torch.distributions as td

from irtgen.composite.empirical import Empirical
from irtgen.distributions import Gamma, Logistic, Normal
from tests.composite.test_mixture import gen, leaf, record_backends, rel_err

DPS = 50


@pytest.fixture(autouse=True)
def numba_backend(monkeypatch):
    """numba's kernels unless a test asks for Triton."""
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")


# -- mpmath reference -----------------------------------------------------------------------------

# standardized kernel cdfs K(t); both kernels are symmetric, so 1 - K(t) = K(-t)
MP_KERNELS = {
    Normal: mpmath.ncdf,
    Logistic: lambda t: 1 / (1 + mpmath.exp(-t)),
}


def mp_empirical_grads(z, data, h, kernel):
    """Reference (dz/dx_1, ..., dz/dx_N, dz/dh) at z for F(z) = (1/N) Σ_i K((z - x_i)/h).

    ``mpmath.diff`` at DPS digits; of S = 1 - F = (1/N) Σ_i K((x_i - z)/h) where F > 1/2 (no
    cancellation of 1 - F in the upper tail), and in x_i of the i-th term alone (the only one
    that depends on x_i), so that tiny posterior weights keep their relative accuracy.
    """
    K = MP_KERNELS[kernel]
    with mpmath.workdps(DPS):
        z, h = mpmath.mpf(z), mpmath.mpf(h)
        xs = [mpmath.mpf(v) for v in data]
        n = len(xs)

        def term(x, xi, hh, sign):
            return K(sign * (x - xi) / hh) / n

        def total(x, hh, sign):
            return mpmath.fsum(term(x, xi, hh, sign) for xi in xs)

        sign = -1 if total(z, h, 1) > 0.5 else 1  # fn = F (sign 1) or S = 1 - F (sign -1)
        q = sign * mpmath.diff(lambda x: total(x, h, sign), z)
        out = [
            -sign * mpmath.diff(lambda v: term(z, v, h, sign), xi) / q  # noqa: B023
            for xi in xs
        ]
        out.append(-sign * mpmath.diff(lambda v: total(z, v, sign), h) / q)
        return [float(v) for v in out]


DATA = [-1.3, 0.2, 0.25, 1.7, 4.0]
BANDWIDTH = 0.6
# both tails (F ~ 1e-15 for the Normal kernel), between and next to the data points
POINTS = [-6.0, -2.0, -0.5, 0.22, 1.0, 2.9, 4.1, 9.0]


@pytest.mark.parametrize("kernel", [Normal, Logistic], ids=["normal", "logistic"])
def test_pointwise_against_mpmath(kernel):
    data, h = leaf(DATA), leaf(BANDWIDTH)
    e = Empirical(data, h, kernel=kernel)
    assert e.batch_shape == () and e.event_shape == ()
    z = torch.tensor(POINTS, dtype=torch.float64)
    y = e.reparameterize(z)
    assert torch.equal(y.detach(), z)
    got = []
    for i in range(z.shape[0]):
        gd, gh = torch.autograd.grad(y[i], [data, h], retain_graph=True)
        got.append(torch.cat([gd, gh.reshape(1)]))
    got = torch.stack(got)
    want = torch.tensor(
        [mp_empirical_grads(v, DATA, BANDWIDTH, kernel) for v in POINTS], dtype=torch.float64
    )
    err = rel_err(got, want)
    print(f"\nEmpirical, {kernel.__name__} kernel: max relative error vs mpmath {err:.2e}")
    assert err <= 1e-12


@pytest.mark.parametrize("kernel", [Normal, Logistic], ids=["normal", "logistic"])
def test_batched_data_pointwise(kernel):
    """data (2, N), bandwidth (2,): each batch element is its own empirical distribution."""
    rows = [DATA, [0.5, -2.0, 3.0, 3.1, -0.4]]
    bws = [BANDWIDTH, 1.3]
    data, h = leaf(rows), leaf(bws)
    e = Empirical(data, h, kernel=kernel)
    assert e.batch_shape == (2,)
    z = torch.tensor([[-3.0, -4.0], [0.3, 3.05], [2.2, 8.0]], dtype=torch.float64)
    y = e.reparameterize(z)
    worst = 0.0
    for i in range(z.shape[0]):
        for b in range(2):
            gd, gh = torch.autograd.grad(y[i, b], [data, h], retain_graph=True)
            # the other batch element's data and bandwidth get nothing
            assert (gd[1 - b] == 0).all() and gh[1 - b] == 0
            got = torch.cat([gd[b], gh[b].reshape(1)])
            want = torch.tensor(
                mp_empirical_grads(z[i, b].item(), rows[b], bws[b], kernel), dtype=torch.float64
            )
            worst = max(worst, rel_err(got, want))
    print(f"\nEmpirical batch (2,), {kernel.__name__}: max relative error vs mpmath {worst:.2e}")
    assert worst <= 1e-12


def test_scalar_bandwidth_broadcasts_over_batched_data():
    data, h = leaf([DATA, [0.5, -2.0, 3.0, 3.1, -0.4]]), leaf(0.7)
    e = Empirical(data, h)
    z = e.rsample((6,), generator=gen(0))
    assert z.shape == (6, 2)
    gd, gh = torch.autograd.grad(z.sum(), [data, h])
    assert gd.shape == (2, 5) and gh.shape == ()
    assert torch.isfinite(gd).all() and torch.isfinite(gh)


# -- Monte Carlo ------------------------------------------------------------------------------------


def test_mc_second_moment():
    """E[z^2] = mean_i x_i^2 + h^2 (Normal kernel): d/dh = 2h, d/dx_i = 2 x_i/N, estimated over
    independent batches (a batch dimension of copies of the data) within 4 standard errors."""
    batches, n, N = 20, 5000, len(DATA)
    data = torch.tensor(DATA, dtype=torch.float64).expand(batches, N).clone().requires_grad_()
    h = torch.full((batches,), BANDWIDTH, dtype=torch.float64, requires_grad=True)
    z = Empirical(data, h).rsample((n,), generator=gen(1))
    gd, gh = torch.autograd.grad(z.square().mean(dim=0).sum(), [data, h])
    est = torch.cat([gd, gh.unsqueeze(-1)], dim=1)  # (batches, N + 1)
    exact = torch.tensor([2 * x / N for x in DATA] + [2 * BANDWIDTH], dtype=torch.float64)
    mean, se = est.mean(dim=0), est.std(dim=0) / math.sqrt(batches)
    print(f"\nEmpirical E[z^2]: max |error|/se {((mean - exact).abs() / se).max():.2f}")
    assert (se <= 0.05 * exact.abs().max()).all()
    assert ((mean - exact).abs() <= 4 * se).all(), (mean, exact, se)


# -- a large data set -------------------------------------------------------------------------------


def test_large_data_set():
    """5000 data points x 2000 samples: finite gradients, and two identities of every sample:
    Σ_i dz/dx_i = 1 (moving all data moves z) and Σ_i x_i dz/dx_i + h dz/dh = z (scaling the data
    and the bandwidth scales z)."""
    data = torch.randn(5000, generator=gen(2), dtype=torch.float64).mul(3.0).requires_grad_()
    h = leaf(0.25)
    e = Empirical(data, h)
    z = e.rsample((2000,), generator=gen(3))
    assert z.shape == (2000,) and torch.isfinite(z).all()
    gd, gh = torch.autograd.grad(z.sum(), [data, h])
    assert torch.isfinite(gd).all() and torch.isfinite(gh)
    torch.testing.assert_close(
        gd.sum(), torch.tensor(2000.0, dtype=torch.float64), rtol=1e-10, atol=0
    )
    scaled = (data.detach() * gd).sum() + h.detach() * gh
    torch.testing.assert_close(scaled, z.detach().sum(), rtol=1e-10, atol=1e-10)


# -- sampling ---------------------------------------------------------------------------------------


def test_samples_fit_the_cdf():
    e = Empirical(torch.tensor(DATA, dtype=torch.float64), BANDWIDTH, kernel=Logistic)
    z = e.sample((3000,), generator=gen(4))
    assert torch.equal(z, e.sample((3000,), generator=gen(4)))

    def cdf(x):
        return e.cdf(torch.as_tensor(x, dtype=torch.float64)).numpy()

    result = scipy.stats.kstest(z.numpy(), cdf)
    print(f"\nEmpirical KS p-value {result.pvalue:.3f}")
    assert result.pvalue > 0.01


def test_triton_backend_matches_numba(monkeypatch):
    data, h = leaf(DATA), leaf(BANDWIDTH)
    e = Empirical(data, h)
    z = e.sample((8,), generator=gen(5))
    g = torch.randn(z.shape, generator=gen(6), dtype=torch.float64)
    want = torch.autograd.grad((g * e.reparameterize(z)).sum(), [data, h])
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    seen = record_backends(monkeypatch)
    got = torch.autograd.grad((g * e.reparameterize(z)).sum(), [data, h])
    err = max(rel_err(a, b) for a, b in zip(got, want, strict=True))
    print(f"\nEmpirical, Triton vs numba: max relative difference {err:.2e}")
    assert err <= 1e-12
    zt = e.rsample((8,), generator=gen(7))
    assert torch.isfinite(zt).all()
    assert all(torch.isfinite(t).all() for t in torch.autograd.grad(zt.sum(), [data, h]))
    assert seen and set(seen) == {"triton"}


# -- errors -----------------------------------------------------------------------------------------


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="at least one point"):
        Empirical(torch.zeros(0), 0.5)
    with pytest.raises(ValueError, match="at least one point"):
        Empirical(torch.zeros(2, 0), 0.5)
    with pytest.raises(ValueError, match="at least one point"):
        Empirical(torch.tensor(1.0), 0.5)


def test_kernel_must_be_a_location_scale_family():
    with pytest.raises(ValueError, match=r"\(loc, scale\)"):
        Empirical(torch.zeros(3), 0.5, kernel=Gamma)
    with pytest.raises(TypeError, match="irtgen distribution class"):
        Empirical(torch.zeros(3), 0.5, kernel=td.Normal)
    with pytest.raises(TypeError, match="irtgen distribution class"):
        Empirical(torch.zeros(3), 0.5, kernel=Normal(0.0, 1.0))


@pytest.mark.parametrize("bandwidth", [0.0, -0.5, [0.5, -1.0]])
def test_non_positive_bandwidth_is_refused(bandwidth):
    with pytest.raises(ValueError, match="bandwidth"):
        Empirical(torch.zeros(2, 3), bandwidth, validate_args=True)


def test_non_finite_data_is_refused():
    with pytest.raises(ValueError, match="finite"):
        Empirical(torch.tensor([0.0, math.inf]), 0.5, validate_args=True)
