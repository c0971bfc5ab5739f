"""Dirichlet: the K = 2 case against irtgen's Beta pointwise, Monte Carlo gradients of E[f(z)]
against closed forms for both estimators, log_prob and moments against torch, goodness of fit,
tiny concentrations, the Triton backend (interpreter) against numba's, shapes."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from irtgen.composite import dirichlet as dmod
from irtgen.composite.dirichlet import ESTIMATORS, Dirichlet
from irtgen.distributions import Beta

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """On a CPU shared with other jobs, each parallel op can wait on a stalled thread (1000x
    slower measured here with torch's OpenMP). One thread, for torch and for numba's kernels
    (which follow torch's thread count), keeps this file's runtime predictable; results do not
    depend on it (the kernels' reductions are deterministic)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- K = 2: component 0 is Beta(a, b), gradients included ------------------------------------

SHAPES = [0.01, 0.5, 3.0, 300.0]
PAIRS = [(a, b) for a in SHAPES for b in SHAPES]


def _beta_grads(x, a, b):
    """dx/da, dx/db of Beta(a, b) at x, one (a, b) per point."""
    a = a.clone().requires_grad_()
    b = b.clone().requires_grad_()
    return torch.autograd.grad(Beta(a, b).reparameterize(x).sum(), (a, b))


@pytest.mark.parametrize("a,b", PAIRS)
def test_k2_reparameterize_matches_beta(a, b):
    """At the same points z = (x, 1 − x) the Dirichlet's dz_0/dα is Beta(a, b)'s dz/d(a, b)."""
    gen = torch.Generator().manual_seed(1)
    x = Beta(torch.tensor(a, dtype=F64), torch.tensor(b, dtype=F64)).sample((40,), generator=gen)
    # both ends: points beyond 1/2 take the mirrored Beta inside the Dirichlet
    x = torch.cat([x, torch.tensor([1e-3, 0.25, 0.5, 0.75, 0.999], dtype=F64)])
    x = x[(x > 0) & (x < 1)]
    n = x.numel()
    alpha = torch.tensor([a, b], dtype=F64).expand(n, 2).clone().requires_grad_()
    z = torch.stack([x, 1 - x], -1)
    out = Dirichlet(alpha).reparameterize(z)
    assert torch.equal(out.detach(), z)
    (grad,) = torch.autograd.grad(out[:, 0].sum(), alpha, retain_graph=True)
    ref_a, ref_b = _beta_grads(x, alpha[:, 0].detach(), alpha[:, 1].detach())
    torch.testing.assert_close(grad[:, 0], ref_a, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad[:, 1], ref_b, rtol=1e-12, atol=0)
    # the second component moves the other way
    (grad1,) = torch.autograd.grad(out[:, 1].sum(), alpha)
    torch.testing.assert_close(grad1, -grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("a,b", PAIRS)
def test_k2_rsample_matches_beta(a, b):
    """rsample's dz_0/dα equals Beta's implicit gradient at the drawn point, evaluated at the
    smaller coordinate (its complement is not representable next to 1)."""
    n = 64
    alpha = torch.tensor([a, b], dtype=F64).expand(n, 2).clone().requires_grad_()
    z = Dirichlet(alpha).rsample(generator=torch.Generator().manual_seed(2))
    (grad,) = torch.autograd.grad(z[:, 0].sum(), alpha)
    z = z.detach()
    a_, b_ = alpha[:, 0].detach(), alpha[:, 1].detach()
    da, db = _beta_grads(z[:, 0], a_, b_)  # x = z_0 ~ Beta(a, b)
    mb, ma = _beta_grads(z[:, 1], b_, a_)  # z_1 ~ Beta(b, a), dz_0 = −dz_1
    low = z[:, 0] <= 0.5
    torch.testing.assert_close(grad[:, 0], torch.where(low, da, -ma), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad[:, 1], torch.where(low, db, -mb), rtol=1e-12, atol=0)


def test_reparameterize_matches_torch_backward():
    """torch's _Dirichlet_backward, D_j/(1 − z_j) · (g_j − Σ_k z_k g_k) with a fitted
    _dirichlet_grad, is the same estimator: equal to rounding at most points, and within
    torch's own Beta tolerance (5e-3) at all."""
    from torch.distributions.dirichlet import _Dirichlet_backward

    a = torch.tensor([0.7, 2.0, 5.0, 1.3], dtype=F64)
    z = Dirichlet(a).sample((1000,), generator=torch.Generator().manual_seed(0))
    g = torch.randn(z.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    p = a.expand(z.shape).clone().requires_grad_()
    (ours,) = torch.autograd.grad((g * Dirichlet(p).reparameterize(z)).sum(), p)
    rel = ((ours - _Dirichlet_backward(z, a.expand(z.shape), g)).abs() / ours.abs()).flatten()
    assert rel.median() < 1e-12 and rel.max() < 5e-3, (rel.median(), rel.max())


# -- Monte Carlo: d/dα E[f(z)] against the closed forms ---------------------------------------


def _quad_weights(k, like):
    return torch.arange(1, k + 1, dtype=like.dtype) / k


def _f(name, z):
    if name == "z":
        return z[..., 0]
    if name == "z2":
        return z[..., 0] ** 2
    if name == "logz":
        return torch.log(z[..., 0])
    # non-separable: Σ_k c_k z_k² + z_0 z_1
    return (_quad_weights(z.shape[-1], z) * z * z).sum(-1) + z[..., 0] * z[..., 1]


def _expectation(name, a):
    """E z_i = α_i/α_0, E z_i z_j = α_i (α_j + δ_ij)/(α_0 (α_0 + 1)), E log z_i = ψ(α_i) − ψ(α_0)."""
    a0 = a.sum()
    if name == "z":
        return a[0] / a0
    if name == "z2":
        return a[0] * (a[0] + 1) / (a0 * (a0 + 1))
    if name == "logz":
        return torch.digamma(a[0]) - torch.digamma(a0)
    c = _quad_weights(a.shape[-1], a)
    return ((c * a * (a + 1)).sum() + a[0] * a[1]) / (a0 * (a0 + 1))


FUNCTIONS = ["z", "z2", "logz", "quad"]
MC_ALPHAS = {
    "mixed-K3": [0.1, 1.0, 10.0],
    "small-K4": [0.2, 0.1, 0.3, 0.15],
    "one-K5": [1.0, 1.0, 1.0, 1.0, 1.0],
    "wide-K8": [0.5, 2.0, 1.0, 30.0, 5.0, 0.8, 12.0, 3.0],
}
BATCHES, PER_BATCH = 20, 1000


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("alpha", list(MC_ALPHAS.values()), ids=list(MC_ALPHAS))
def test_monte_carlo_gradients(alpha, estimator):
    """Batch means of ∇_α f over BATCHES independent batches: the mean is within 4 standard
    errors of d/dα E[f] for every coordinate and f."""
    k = len(alpha)
    a = torch.tensor(alpha, dtype=F64).expand(BATCHES, k).clone().requires_grad_()
    z = Dirichlet(a, grad=estimator).rsample(
        (PER_BATCH,), generator=torch.Generator().manual_seed(7)
    )
    for name in FUNCTIONS:
        (g,) = torch.autograd.grad(_f(name, z).mean(0).sum(), a, retain_graph=True)
        ref = torch.tensor(alpha, dtype=F64, requires_grad=True)
        (exact,) = torch.autograd.grad(_expectation(name, ref), ref)
        mean, se = g.mean(0), g.std(0) / BATCHES**0.5
        score = ((mean - exact) / se).abs()
        assert bool((score < 4).all()), (name, mean, exact, score)


# -- log_prob and moments against torch ------------------------------------------------------


def _alpha(shape, dtype=F64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (0.05 + 5 * torch.rand(shape, generator=gen, dtype=F64)).to(dtype)


def test_log_prob_matches_torch():
    a = _alpha((4, 3)).requires_grad_()
    ours, ref = Dirichlet(a), torch.distributions.Dirichlet(a)
    x = ref.sample((6,)).requires_grad_()
    lp, lp_ref = ours.log_prob(x), ref.log_prob(x)
    assert lp.shape == (6, 4)
    torch.testing.assert_close(lp, lp_ref, rtol=1e-13, atol=1e-13)
    g = torch.autograd.grad(lp.sum(), (a, x))
    g_ref = torch.autograd.grad(lp_ref.sum(), (a, x))
    for u, v in zip(g, g_ref, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)


def test_moments_match_torch():
    a = _alpha((2, 4))
    a[0] = torch.tensor([0.3, 0.5, 0.2, 0.9], dtype=F64)  # every α < 1: a vertex is the mode
    ours, ref = Dirichlet(a), torch.distributions.Dirichlet(a)
    for attr in ("mean", "variance", "mode"):
        torch.testing.assert_close(getattr(ours, attr), getattr(ref, attr), rtol=1e-14, atol=0)
    torch.testing.assert_close(ours.entropy(), ref.entropy(), rtol=1e-13, atol=1e-13)
    q = Dirichlet(_alpha((2, 4), seed=1))
    kl = torch.distributions.kl_divergence(ours, q)
    kl_ref = torch.distributions.kl_divergence(ref, torch.distributions.Dirichlet(q.concentration))
    torch.testing.assert_close(kl, kl_ref, rtol=1e-13, atol=1e-13)


def test_validate_args():
    with pytest.raises(ValueError):
        Dirichlet(torch.tensor([1.0, -0.5]), validate_args=True)
    with pytest.raises(ValueError):
        Dirichlet(torch.tensor(2.0))
    with pytest.raises(ValueError):
        Dirichlet(torch.tensor([1.0, 2.0]), grad="score")
    d = Dirichlet(torch.tensor([1.0, 2.0, 3.0]), validate_args=True)
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([0.5, 0.6, 0.1]))
    with pytest.raises(ValueError):
        d.reparameterize(torch.tensor([0.5, 0.6, -0.1]))
    d.log_prob(torch.tensor([0.2, 0.3, 0.5]))
    Dirichlet(torch.tensor([1.0, -0.5]), validate_args=False)  # not checked


# -- samples -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
def test_marginals_are_beta(dtype):
    """Kolmogorov–Smirnov of each marginal against Beta(α_i, α_0 − α_i) (scipy)."""
    alpha = [0.3, 1.0, 4.0, 0.05]
    a = torch.tensor(alpha, dtype=dtype)
    z = Dirichlet(a).sample((4000,), generator=torch.Generator().manual_seed(11))
    assert z.dtype == dtype
    a0 = sum(alpha)
    for i, ai in enumerate(alpha):
        p = stats.kstest(z[:, i].double().numpy(), stats.beta(ai, a0 - ai).cdf).pvalue
        assert p > 1e-3, (i, p)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("alpha", [[1e-3] * 4, [1e-3, 1.0, 1e-3], [1e-3, 50.0]])
def test_tiny_concentrations(alpha, dtype, estimator):
    """α = 1e-3: the Gamma draws underflow, the log-space normalization does not; samples lie
    on the simplex and gradients are finite."""
    n = 500
    a = torch.tensor(alpha, dtype=dtype, requires_grad=True)
    z = Dirichlet(a, grad=estimator).rsample((n,), generator=torch.Generator().manual_seed(5))
    assert z.dtype == dtype
    assert bool(torch.isfinite(z).all()) and bool((z >= 0).all())
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(z.sum(-1), torch.ones(n, dtype=dtype), rtol=0, atol=4 * eps)
    # with every α = 1e-3 nearly all the mass sits on one vertex per draw
    if len(alpha) == 4:
        assert float((z.max(-1).values > 1 - 1e-6).double().mean()) > 0.95
    w = torch.linspace(0.5, 2.0, len(alpha), dtype=dtype)
    (g,) = torch.autograd.grad((w * z * z).sum() + z[:, 0].sum(), a)
    assert bool(torch.isfinite(g).all()), g


def test_same_seed_same_samples():
    a = torch.tensor([0.5, 2.0, 1.0], dtype=F64)
    z1 = Dirichlet(a).rsample((10,), generator=torch.Generator().manual_seed(3))
    z2 = Dirichlet(a, grad="gamma").rsample((10,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(z1, z2)


# -- Triton backend (interpreter) -----------------------------------------------------------


def _fixed_draws(monkeypatch, logg):
    """Make rsample use the given log G on every backend (the RNG streams of the backends
    differ, so the same z comes from fixing the draws)."""
    monkeypatch.setattr(dmod, "_log_gamma_draws", lambda alpha, shape, gen: logg.expand(shape))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_triton_gradients_match_numba(estimator, monkeypatch):
    """The same draws: z equal, gradients from the Beta/Gamma Triton kernels equal numba's
    (4 x 3 batch, 20 samples: 240 elements), including tiny concentrations."""
    a = _alpha((4, 3), seed=3)
    a[0] = torch.tensor([1e-3, 2e-3, 0.5], dtype=F64)
    gen = torch.Generator().manual_seed(4)
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")
    logg = dmod._log_gamma_draws(a, torch.Size((20, 4, 3)), gen)
    w = torch.randn(20, 4, 3, generator=gen, dtype=F64)
    _fixed_draws(monkeypatch, logg)
    results = {}
    for backend in ("numba", "triton"):
        monkeypatch.setenv("IRTGEN_BACKEND", backend)
        p = a.clone().requires_grad_()
        z = Dirichlet(p, grad=estimator).rsample((20,))
        (g,) = torch.autograd.grad((w * z).sum() + (z * z).sum(), p)
        results[backend] = (z.detach(), g)
    torch.testing.assert_close(results["triton"][0], results["numba"][0], rtol=0, atol=0)
    torch.testing.assert_close(results["triton"][1], results["numba"][1], rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
def test_triton_reparameterize_matches_numba(dtype, monkeypatch):
    a = _alpha((4, 3), dtype=dtype, seed=5)
    z = Dirichlet(a.double()).sample((10,), generator=torch.Generator().manual_seed(6))
    z = z.to(dtype)
    w = torch.randn(z.shape, generator=torch.Generator().manual_seed(7), dtype=dtype)
    grads = {}
    for backend in ("numba", "triton"):
        monkeypatch.setenv("IRTGEN_BACKEND", backend)
        p = a.clone().requires_grad_()
        (grads[backend],) = torch.autograd.grad((w * Dirichlet(p).reparameterize(z)).sum(), p)
    tol = 1e-12 if dtype == F64 else 2e-6
    torch.testing.assert_close(grads["triton"], grads["numba"], rtol=tol, atol=tol)


def test_triton_samples(monkeypatch):
    """Samples drawn by the Gamma family's Triton kernel: on the simplex, finite for tiny α,
    and the marginal of the larger row is Beta (KS, 300 draws)."""
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    a = torch.tensor([[0.5, 2.0, 1.5], [1e-3, 1e-3, 1.0]], dtype=F64, requires_grad=True)
    z = Dirichlet(a).rsample((150,), generator=torch.Generator().manual_seed(8))
    assert z.shape == (150, 2, 3)
    assert bool(torch.isfinite(z).all()) and bool((z >= 0).all())
    torch.testing.assert_close(z.sum(-1), torch.ones(150, 2, dtype=F64), rtol=0, atol=1e-15)
    (g,) = torch.autograd.grad(z[..., 0].sum(), a)
    assert bool(torch.isfinite(g).all())
    p = stats.kstest(z[:, 0, 1].detach().numpy(), stats.beta(2.0, 2.0).cdf).pvalue
    assert p > 1e-3


def test_draws_agree_across_backends(monkeypatch):
    """log G is keyed by (Philox seed, element index): numba and Triton draw the same numbers for
    the same generator state, tiny concentrations included, and so the same samples."""
    a = torch.tensor([[0.5, 2.0, 1.5], [1e-3, 1e-3, 1.0]], dtype=F64)
    logg, z = {}, {}
    for backend in ("numba", "triton"):
        monkeypatch.setenv("IRTGEN_BACKEND", backend)
        gen = torch.Generator().manual_seed(10)
        logg[backend] = dmod._log_gamma_draws(a, torch.Size((40, 2, 3)), gen)
        z[backend] = Dirichlet(a).sample((40,), generator=torch.Generator().manual_seed(11))
    assert bool(torch.isfinite(logg["numba"]).all())
    assert bool((logg["numba"][:, 1, :2] < -50).any())  # tiny α: G itself underflows
    torch.testing.assert_close(logg["triton"], logg["numba"], rtol=1e-14, atol=0)
    torch.testing.assert_close(z["triton"], z["numba"], rtol=1e-13, atol=1e-300)


# -- shapes --------------------------------------------------------------------------------


def test_batch_and_sample_shapes():
    a = _alpha((4, 3)).requires_grad_()
    d = Dirichlet(a)
    assert d.batch_shape == (4,) and d.event_shape == (3,)
    z = d.rsample((2, 5))
    assert z.shape == (2, 5, 4, 3)
    assert d.sample().shape == (4, 3)
    assert d.log_prob(z).shape == (2, 5, 4)
    (g,) = torch.autograd.grad(z.sum(-1).sum() + (z[..., 0] ** 2).sum(), a)
    assert g.shape == (4, 3)
    # a (1, 3) concentration expanded to batch (4,): the gradient sums over the batch
    b = torch.tensor([[0.5, 1.0, 2.0]], dtype=F64, requires_grad=True)
    e = Dirichlet(b).expand((4,))
    assert e.batch_shape == (4,) and e.concentration.shape == (4, 3)
    gen = torch.Generator().manual_seed(9)
    ze = e.rsample((6,), generator=gen)
    (gb,) = torch.autograd.grad((ze[..., 0] ** 2).sum(), b)
    assert gb.shape == (1, 3) and bool(torch.isfinite(gb).all())
    # the same draws per sample and batch element as a (4, 3) concentration, summed
    c = b.detach().expand(4, 3).clone().requires_grad_()
    zc = Dirichlet(c).rsample((6,), generator=torch.Generator().manual_seed(9))
    assert torch.equal(zc, ze.detach())
    (gc,) = torch.autograd.grad((zc[..., 0] ** 2).sum(), c)
    torch.testing.assert_close(gb, gc.sum(0, keepdim=True), rtol=1e-14, atol=0)
    # reparameterize broadcasts z (5, 1, 3) against the batch (4,)
    zr = Dirichlet(a).reparameterize(z[0].detach()[:, :1])
    assert zr.shape == (5, 4, 3)


def test_one_component():
    a = torch.tensor([[2.0], [0.5]], dtype=F64, requires_grad=True)
    z = Dirichlet(a).rsample((3,))
    assert torch.equal(z.detach(), torch.ones(3, 2, 1, dtype=F64))
    (g,) = torch.autograd.grad(z.sum(), a)
    assert torch.equal(g, torch.zeros_like(a))
