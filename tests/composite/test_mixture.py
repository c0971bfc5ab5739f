"""``MixtureSameFamily``: implicit reparameterization gradients of mixtures of generated families.

Univariate mixtures are checked pointwise against dz/dθ = -(∂F/∂θ)/q from mpmath (50 digits,
``mpmath.diff``) with F = Σ_k w_k F_k; mixtures of factorized D-dimensional components against a
slow reference written here (the distributional transform u_d = F(z_d | z_<d) in plain torch
ops, its Jacobians by autograd and a triangular solve); both against Monte Carlo derivatives of
expectations with closed forms. Draws are checked by Kolmogorov-Smirnov tests, the Triton
kernels (in Triton's interpreter) against numba's, and bad inputs for clear errors.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import mpmath
import pytest
import scipy.stats
import torch
import torch.distributions as td
import torch.nn.functional as nnf
from torch.autograd.functional import jacobian
from torch.distributions import Categorical, Independent

import irtgen
from irtgen.composite import mixture as mixture_module
from irtgen.composite.mixture import MixtureSameFamily
from irtgen.distributions import Gamma, Logistic, Normal
from irtgen.runtime import ops

SPECS = Path(__file__).resolve().parent.parent / "specs"
DPS = 50


@pytest.fixture(autouse=True)
def numba_backend(monkeypatch):
    """numba's kernels unless a test asks for Triton."""
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")


@pytest.fixture(scope="module")
def gompertz(tmp_path_factory):
    """Gompertz(eta, b) of tests/specs/gompertz.py, built by ``irtgen.load`` into a temporary
    cache."""
    root = tmp_path_factory.mktemp("mixture")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IRTGEN_CACHE_DIR", str(root / "cache"))
        return irtgen.load(SPECS / "gompertz.py").Gompertz


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def leaf(values, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, requires_grad=True)


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest elementwise |got - want|/|want|; where want is below the smallest normal number
    of got's dtype (an underflow), got must be below it too."""
    tiny = torch.finfo(got.dtype).tiny
    got, want = got.to(torch.float64), want.to(torch.float64)
    small = want.abs() < tiny
    assert (got[small].abs() < tiny).all()
    return ((got - want).abs() / want.abs())[~small].max().item()


def norm_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """‖got - want‖/‖want‖, or ‖got‖ where want is zero."""
    scale = want.norm().item()
    diff = (got - want).norm().item()
    return diff / scale if scale > 0 else diff


# -- mpmath reference for univariate mixtures -------------------------------------------------


def softmax_weights(logits):
    e = [mpmath.exp(v) for v in logits]
    total = mpmath.fsum(e)
    return [v / total for v in e]


def normalized_weights(probs):
    total = mpmath.fsum(probs)
    return [p / total for p in probs]


def mp_normal_cdf(z, loc, scale):
    return mpmath.ncdf((z - loc) / scale)


def mp_normal_sf(z, loc, scale):
    return mpmath.ncdf((loc - z) / scale)


def mp_gamma_cdf(z, concentration, rate):
    return mpmath.gammainc(concentration, 0, rate * z, regularized=True)


def mp_gamma_sf(z, concentration, rate):
    return mpmath.gammainc(concentration, rate * z, mpmath.inf, regularized=True)


def mp_gompertz_cdf(z, eta, b):
    return -mpmath.expm1(-eta * mpmath.expm1(b * z))


def mp_gompertz_sf(z, eta, b):
    return mpmath.exp(-eta * mpmath.expm1(b * z))


def mp_mixture_grads(z, mix, params, weights, cdf, sf):
    """Reference dz/dθ = -(∂F/∂θ)/q at z, F(z) = Σ_k w_k F_k(z; θ_k), w = weights(mix).

    ``mix``: the K logits or probs; ``params``: one list of K values per component parameter.
    Returns [dz/dmix, dz/dparam_0, ...], each a list of K floats. All derivatives are
    ``mpmath.diff`` at DPS digits. Where F > 1/2 they are taken of S = 1 - F = Σ_k w_k S_k
    (∂F = -∂S, without the cancellation of 1 - F in the upper tail), and a derivative in a
    component's parameter of that component's term w_k F_k alone (the other terms do not
    depend on it), so that tiny posterior weights keep their relative accuracy.
    """
    with mpmath.workdps(DPS):
        z = mpmath.mpf(z)
        mix = [mpmath.mpf(v) for v in mix]
        params = [[mpmath.mpf(v) for v in p] for p in params]
        K = len(mix)

        def theta(k):
            return [p[k] for p in params]

        def total(fn, x, m):
            w = weights(m)
            return mpmath.fsum(w[k] * fn(x, *theta(k)) for k in range(K))

        upper = total(cdf, z, mix) > 0.5
        fn, sign = (sf, -1) if upper else (cdf, 1)  # F = fn (lower) or 1 - fn (upper)
        q = sign * mpmath.diff(lambda x: total(fn, x, mix), z)
        out = []
        row = []
        for j in range(K):

            def of_mix(v, j=j):
                m = list(mix)
                m[j] = v
                return total(fn, z, m)

            row.append(-sign * mpmath.diff(of_mix, mix[j]) / q)
        out.append(row)
        w = weights(mix)
        for i in range(len(params)):
            row = []
            for k in range(K):

                def of_param(v, i=i, k=k):
                    th = theta(k)
                    th[i] = v
                    return w[k] * fn(z, *th)

                row.append(-sign * mpmath.diff(of_param, params[i][k]) / q)
            out.append(row)
        return [[float(v) for v in r] for r in out]


def pointwise_grads(m: MixtureSameFamily, z: torch.Tensor, leaves) -> torch.Tensor:
    """(N, len(leaves), K): the gradient of each element of m.reparameterize(z) (z of shape (N,))
    in each leaf."""
    y = m.reparameterize(z)
    assert torch.equal(y.detach(), z)
    rows = []
    for i in range(z.shape[0]):
        gs = torch.autograd.grad(y[i], leaves, retain_graph=True)
        rows.append(torch.stack(gs))
    return torch.stack(rows)


def reference_grads(z, mix, params, weights, cdf, sf) -> torch.Tensor:
    rows = [
        mp_mixture_grads(zi, mix, params, weights, cdf, sf) for zi in z.to(torch.float64).tolist()
    ]
    return torch.tensor(rows, dtype=torch.float64)


NORMAL_MIX = {
    "logits": [0.3, -0.5, 1.0],
    "loc": [-2.0, 0.5, 3.0],
    "scale": [0.5, 1.0, 0.3],
    # both tails (q ~ 1e-19 and S ~ 1e-12), between and at the modes
    "z": [-6.5, -4.0, -2.5, -1.1, 0.45, 1.8, 2.4, 3.3, 4.5, 7.5],
}

GAMMA_MIX = {
    "logits": [-0.2, 0.4, 0.1],
    "concentration": [0.3, 2.5, 200.0],
    "rate": [1.5, 0.8, 40.0],
    # near zero (where only the concentration-0.3 part lives), between the modes, the upper tail
    "z": [1e-12, 1e-4, 0.05, 0.7, 2.5, 4.6, 5.0, 5.6, 12.0, 30.0],
}

GOMPERTZ_MIX = {
    "logits": [0.5, -0.3, 0.0],
    "eta": [0.5, 2.0, 0.05],
    "b": [1.0, 0.3, 3.0],
    "z": [1e-6, 0.01, 0.3, 1.0, 2.0, 4.0, 8.0],
}


def normal_case(dtype, probs=False):
    c = NORMAL_MIX
    loc, scale = leaf(c["loc"], dtype), leaf(c["scale"], dtype)
    if probs:
        mix = leaf([0.2, 0.3, 0.5], dtype)
        cat = Categorical(probs=mix)
    else:
        mix = leaf(c["logits"], dtype)
        cat = Categorical(logits=mix)
    m = MixtureSameFamily(cat, Normal(loc, scale))
    return m, [mix, loc, scale], torch.tensor(c["z"], dtype=dtype)


def gamma_case(dtype):
    c = GAMMA_MIX
    logits = leaf(c["logits"], dtype)
    conc, rate = leaf(c["concentration"], dtype), leaf(c["rate"], dtype)
    m = MixtureSameFamily(Categorical(logits=logits), Gamma(conc, rate))
    return m, [logits, conc, rate], torch.tensor(c["z"], dtype=dtype)


def check_pointwise(m, leaves, z, weights, cdf, sf, tol, label):
    got = pointwise_grads(m, z, leaves)
    mix = leaves[0].detach().to(torch.float64).tolist()
    params = [p.detach().to(torch.float64).tolist() for p in leaves[1:]]
    want = reference_grads(z, mix, params, weights, cdf, sf)
    assert torch.isfinite(got).all()
    err = rel_err(got, want)
    print(f"\n{label}: max relative error vs mpmath {err:.2e}")
    assert err <= tol, label


# -- 1. univariate mixtures, pointwise ----------------------------------------------------------


def test_normal_mixture_pointwise_float64():
    m, leaves, z = normal_case(torch.float64)
    check_pointwise(
        m, leaves, z, softmax_weights, mp_normal_cdf, mp_normal_sf, 1e-12, "Normal mixture f64"
    )


def test_gamma_mixture_pointwise_float64():
    m, leaves, z = gamma_case(torch.float64)
    check_pointwise(
        m, leaves, z, softmax_weights, mp_gamma_cdf, mp_gamma_sf, 1e-12, "Gamma mixture f64"
    )


def test_normal_mixture_pointwise_float32():
    m, leaves, z = normal_case(torch.float32)
    check_pointwise(
        m, leaves, z, softmax_weights, mp_normal_cdf, mp_normal_sf, 1e-5, "Normal mixture f32"
    )


def test_gamma_mixture_pointwise_float32():
    m, leaves, z = gamma_case(torch.float32)
    check_pointwise(
        m, leaves, z, softmax_weights, mp_gamma_cdf, mp_gamma_sf, 1e-5, "Gamma mixture f32"
    )


def test_probs_parameterization_pointwise():
    """Categorical(probs=p): F = Σ_k (p_k/Σp) F_k, the gradient to p by the chain rule."""
    m, leaves, z = normal_case(torch.float64, probs=True)
    check_pointwise(
        m, leaves, z, normalized_weights, mp_normal_cdf, mp_normal_sf, 1e-12, "Normal, probs"
    )


def test_user_built_component_pointwise(gompertz):
    c = GOMPERTZ_MIX
    logits, eta, b = leaf(c["logits"]), leaf(c["eta"]), leaf(c["b"])
    m = MixtureSameFamily(Categorical(logits=logits), gompertz(eta, b))
    z = torch.tensor(c["z"], dtype=torch.float64)
    check_pointwise(
        m,
        [logits, eta, b],
        z,
        softmax_weights,
        mp_gompertz_cdf,
        mp_gompertz_sf,
        1e-12,
        "Gompertz mixture f64",
    )


# -- 2. factorized components against the distributional transform ----------------------------


def _normal_cdf(x):
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def _normal_log_pdf(x):
    return -0.5 * x * x - 0.5 * math.log(2.0 * math.pi)


def _logistic_log_pdf(x):
    return nnf.logsigmoid(x) + nnf.logsigmoid(-x)


# closed-form standardized cdf and log density of the location-scale kernels
CLOSED_FORMS = {
    Normal: (_normal_cdf, _normal_log_pdf),
    Logistic: (torch.sigmoid, _logistic_log_pdf),
}


def conditional_cdfs(z, logits, loc, scale, family):
    """u_d = F(z_d | z_<d) = Σ_k r_kd F_kd(z_d), r_kd = softmax_k(logit_k + Σ_(j<d) log q_kj(z_j)).

    z (..., D), logits (..., K), loc and scale (..., K, D); returns u (..., D).
    """
    cdf, log_pdf = CLOSED_FORMS[family]
    x = (z.unsqueeze(-2) - loc) / scale
    log_q = log_pdf(x) - torch.log(scale)
    u = []
    for d in range(z.shape[-1]):
        r = torch.softmax(logits + log_q[..., :d].sum(dim=-1), dim=-1)
        u.append((r * cdf(x[..., d])).sum(dim=-1))
    return torch.stack(u, dim=-1)


def reference_vjp(z, g, logits, loc, scale, family):
    """g^T dz/dθ for one sample z (D,), dz/dθ = -(∂u/∂z)^-1 ∂u/∂θ; returns the parts for
    (logits (K,), loc (K, D), scale (K, D))."""
    D, K = z.shape[0], logits.shape[0]
    jz, jl, jloc, jscale = jacobian(
        lambda *a: conditional_cdfs(*a, family), (z, logits, loc, scale)
    )
    assert torch.equal(jz, torch.tril(jz))  # u_d depends on z_<=d alone
    jtheta = torch.cat([jl, jloc.reshape(D, -1), jscale.reshape(D, -1)], dim=1)
    v = g @ -torch.linalg.solve_triangular(jz, jtheta, upper=False)
    return v[:K], v[K : K + K * D].reshape(K, D), v[K + K * D :].reshape(K, D)


def batched_reference_vjp(z, g, logits, loc, scale, family):
    """Σ_samples g^T dz/dθ for z, g of shape (M, D) and unbatched parameters: per-sample copies
    of the parameters give each sample's ∂u/∂θ in D backward passes."""
    M, D = z.shape
    K = logits.shape[-1]
    z = z.detach().clone().requires_grad_()
    copies = [
        t.detach().expand((M,) + t.shape).clone().requires_grad_() for t in (logits, loc, scale)
    ]
    u = conditional_cdfs(z, *copies, family)
    rows = [torch.autograd.grad(u[:, d].sum(), [z, *copies], retain_graph=True) for d in range(D)]
    jz = torch.stack([r[0] for r in rows], dim=1)  # (M, D, D)
    jtheta = torch.stack([torch.cat([t.reshape(M, -1) for t in r[1:]], -1) for r in rows], 1)
    dz = -torch.linalg.solve_triangular(jz, jtheta, upper=False)  # (M, D, P)
    v = (g.unsqueeze(-2) @ dz).squeeze(-2).sum(dim=0)
    return v[:K], v[K : K + K * D].reshape(K, D), v[K + K * D :].reshape(K, D)


def random_factorized(family, batch, K, D, seed):
    """Leaves (logits, loc, scale) of a random mixture of K factorized D-dim components."""
    g = gen(seed)
    logits = torch.randn(batch + (K,), generator=g, dtype=torch.float64)
    loc = 1.5 * torch.randn(batch + (K, D), generator=g, dtype=torch.float64)
    scale = torch.exp(0.5 * torch.randn(batch + (K, D), generator=g, dtype=torch.float64))
    leaves = [t.requires_grad_() for t in (logits, loc, scale)]
    m = MixtureSameFamily(Categorical(logits=leaves[0]), Independent(family(*leaves[1:]), 1))
    return m, leaves


def check_factorized(family, batch, K, D, seed, samples=3, tol=1e-10):
    m, leaves = random_factorized(family, batch, K, D, seed)
    assert m.batch_shape == batch and m.event_shape == (D,)
    z = m.sample((samples,), generator=gen(seed + 1))
    g = torch.randn(z.shape, generator=gen(seed + 2), dtype=torch.float64)
    worst = 0.0
    for i in range(samples):
        y = m.reparameterize(z[i])
        got = torch.autograd.grad((g[i] * y).sum(), leaves, retain_graph=True)
        parts = [
            reference_vjp(z[i][b], g[i][b], *(t.detach()[b] for t in leaves), family)
            for b in itertools.product(*(range(n) for n in batch))
        ]
        for j, name in enumerate(("logits", "loc", "scale")):
            want = torch.stack([p[j] for p in parts]).reshape(leaves[j].shape)
            err = norm_err(got[j], want)
            worst = max(worst, err)
            assert err <= tol, (name, i, err)
    return worst


@pytest.mark.parametrize("family", [Normal, Logistic], ids=["normal", "logistic"])
@pytest.mark.parametrize("D", [1, 2, 5, 8])
@pytest.mark.parametrize("K", [1, 3, 8])
def test_factorized_against_transform(family, D, K):
    err = check_factorized(family, (2,), K, D, seed=100 * D + K)
    print(f"\n{family.__name__} D={D} K={K} batch (2,): max norm-relative error {err:.2e}")


@pytest.mark.parametrize("batch", [(), (3, 2)], ids=["unbatched", "batch32"])
def test_factorized_batch_shapes(batch):
    err = check_factorized(Normal, batch, K=3, D=4, seed=7)
    print(f"\nNormal D=4 K=3 batch {batch}: max norm-relative error {err:.2e}")


def test_batched_reference_matches_per_sample_reference():
    """The batched reference used for the timing below is the per-sample one, summed."""
    m, leaves = random_factorized(Logistic, (), 4, 3, seed=11)
    z = m.sample((5,), generator=gen(12))
    g = torch.randn(z.shape, generator=gen(13), dtype=torch.float64)
    params = [t.detach() for t in leaves]
    each = [reference_vjp(z[i], g[i], *params, Logistic) for i in range(5)]
    batched = batched_reference_vjp(z, g, *params, Logistic)
    for j in range(3):
        assert norm_err(batched[j], sum(e[j] for e in each)) <= 1e-12


def test_timing_d8_k8():
    """rsample + backward of 4096 samples, D = 8, K = 8: irtgen and the references (printed; the
    assertion is that the gradients agree)."""
    M, D, K = 4096, 8, 8
    m, leaves = random_factorized(Normal, (), K, D, seed=21)
    g = torch.randn((M, D), generator=gen(22), dtype=torch.float64)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        z = m.rsample((M,), generator=gen(23))
        got = torch.autograd.grad((g * z).sum(), leaves, retain_graph=True)
        best = min(best, time.perf_counter() - t0)
    params = [t.detach() for t in leaves]
    t0 = time.perf_counter()
    want = batched_reference_vjp(z.detach(), g, *params, Normal)
    t_batched = time.perf_counter() - t0
    few = 64
    t0 = time.perf_counter()
    for i in range(few):
        reference_vjp(z[i].detach(), g[i], *params, Normal)
    t_each = (time.perf_counter() - t0) * M / few
    print(
        f"\nD={D} K={K} M={M}: irtgen rsample+backward {best * 1e3:.1f} ms; reference batched "
        f"{t_batched * 1e3:.1f} ms; reference per sample {t_each:.2f} s (from {few} samples)"
    )
    for j in range(3):
        assert norm_err(got[j], want[j]) <= 1e-10


# -- 3. Monte Carlo: d/dθ E[f(z)] ---------------------------------------------------------------


def mc_check(make, f, expectation, leaves, batches=20, n=10000, seed=0):
    """Gradients of the mean of f(z) over independent batches (one mixture with a batch dimension
    of copies of the parameters) vs the analytic gradient of E[f], within 4 standard errors
    (elementwise); the standard errors must be small enough for the check to have power."""
    exact = torch.autograd.grad(expectation(*leaves), leaves, allow_unused=True)
    exact = [torch.zeros_like(t) if e is None else e for e, t in zip(exact, leaves, strict=True)]
    exact = torch.cat([e.reshape(-1) for e in exact])
    copies = [t.detach().expand((batches,) + t.shape).clone().requires_grad_() for t in leaves]
    z = make(*copies).rsample((n,), generator=gen(seed))
    grads = torch.autograd.grad(f(z).mean(dim=0).sum(), copies)
    est = torch.cat([e.reshape(batches, -1) for e in grads], dim=1)
    mean, se = est.mean(dim=0), est.std(dim=0) / math.sqrt(batches)
    assert (se <= 0.05 * exact.abs().max()).all()
    bad = (mean - exact).abs() > 4 * se
    assert not bad.any(), (mean[bad], exact[bad], se[bad])
    return ((mean - exact).abs() / se.clamp_min(1e-300)).max().item()


def normal_mix(logits, loc, scale):
    return MixtureSameFamily(Categorical(logits=logits), Normal(loc, scale))


def normal_mix_leaves():
    return [leaf([0.2, -0.4, 0.5]), leaf([-1.5, 0.3, 2.0]), leaf([0.6, 1.2, 0.5])]


def test_mc_normal_mixture_mean():
    def mean(logits, loc, scale):
        return (torch.softmax(logits, -1) * loc).sum()

    worst = mc_check(normal_mix, lambda z: z, mean, normal_mix_leaves(), seed=1)
    print(f"\nNormal mixture E[z]: max |error|/se {worst:.2f}")


def test_mc_normal_mixture_second_moment():
    def second(logits, loc, scale):
        return (torch.softmax(logits, -1) * (loc**2 + scale**2)).sum()

    worst = mc_check(normal_mix, lambda z: z**2, second, normal_mix_leaves(), seed=2)
    print(f"\nNormal mixture E[z^2]: max |error|/se {worst:.2f}")


def test_mc_gamma_mixture_mean():
    def make(logits, conc, rate):
        return MixtureSameFamily(Categorical(logits=logits), Gamma(conc, rate))

    def mean(logits, conc, rate):
        return (torch.softmax(logits, -1) * conc / rate).sum()

    leaves = [leaf([0.3, -0.2, 0.1]), leaf([0.6, 3.0, 20.0]), leaf([2.0, 1.0, 4.0])]
    worst = mc_check(make, lambda z: z, mean, leaves, n=2500, seed=3)
    print(f"\nGamma mixture E[z]: max |error|/se {worst:.2f}")


def factorized_normal(logits, loc, scale):
    return MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, scale), 1))


def factorized_leaves():
    return [
        leaf([0.4, -0.3, 0.1]),
        leaf([[-1.0, 0.5, 2.0], [1.5, -1.0, 0.5], [0.0, 2.0, -1.5]]),
        leaf([[0.5, 0.8, 0.6], [0.7, 0.4, 1.0], [0.9, 0.6, 0.5]]),
    ]


def test_mc_factorized_cross_moment():
    """E[z_0 z_2] = Σ_k w_k μ_k0 μ_k2: the gradient of z_2 reaches the parameters of dimension 0
    only through the posterior weights (the cross terms)."""

    def cross(logits, loc, scale):
        return (torch.softmax(logits, -1) * loc[:, 0] * loc[:, 2]).sum()

    worst = mc_check(
        factorized_normal,
        lambda z: z[..., 0] * z[..., 2],
        cross,
        factorized_leaves(),
        n=40000,
        seed=4,
    )
    print(f"\nFactorized E[z0 z2]: max |error|/se {worst:.2f}")


def test_mc_factorized_second_moment():
    def second(logits, loc, scale):
        return (torch.softmax(logits, -1) * (loc[:, 1] ** 2 + scale[:, 1] ** 2)).sum()

    worst = mc_check(
        factorized_normal, lambda z: z[..., 1] ** 2, second, factorized_leaves(), n=40000, seed=5
    )
    print(f"\nFactorized E[z1^2]: max |error|/se {worst:.2f}")


# -- 4. sampling --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["normal", "gamma"])
def test_samples_fit_the_mixture_cdf(kind):
    m = normal_case(torch.float64)[0] if kind == "normal" else gamma_case(torch.float64)[0]
    z = m.sample((4000,), generator=gen(31))
    assert z.shape == (4000,) and z.dtype == torch.float64

    def cdf(x):
        with torch.no_grad():
            return m.cdf(torch.as_tensor(x, dtype=torch.float64)).numpy()

    result = scipy.stats.kstest(z.numpy(), cdf)
    print(f"\n{kind} mixture KS p-value {result.pvalue:.3f}")
    assert result.pvalue > 0.01


def test_generator_reproducibility():
    m = normal_case(torch.float64)[0]
    a = m.rsample((200,), generator=gen(5))
    b = m.rsample((200,), generator=gen(5))
    c = m.sample((200,), generator=gen(5))
    d = m.rsample((200,), generator=gen(6))
    assert torch.equal(a, b) and torch.equal(a.detach(), c)
    assert not torch.equal(a, d)
    mf, _ = random_factorized(Normal, (2,), 3, 4, seed=3)
    assert torch.equal(mf.sample((7,), generator=gen(1)), mf.sample((7,), generator=gen(1)))


def test_sample_shapes_with_batch():
    logits = leaf([[0.1, 0.2, -0.3], [1.0, 0.0, -1.0]])
    loc = leaf([[-1.0, 0.0, 1.0], [2.0, 3.0, 4.0]])
    scale = leaf([[1.0, 0.5, 2.0], [0.3, 0.4, 0.5]])
    m = normal_mix(logits, loc, scale)
    assert m.batch_shape == (2,) and m.event_shape == ()
    z = m.rsample((5,), generator=gen(0))
    assert z.shape == (5, 2)
    grads = torch.autograd.grad(z.sum(), [logits, loc, scale])
    assert [t.shape for t in grads] == [logits.shape, loc.shape, scale.shape]
    assert all(torch.isfinite(t).all() for t in grads)

    mf, leaves = random_factorized(Normal, (2,), 3, 4, seed=9)
    z = mf.rsample((5,), generator=gen(0))
    assert z.shape == (5, 2, 4)
    grads = torch.autograd.grad(z.sum(), leaves)
    assert [t.shape for t in grads] == [t.shape for t in leaves]
    assert mf.rsample(generator=gen(0)).shape == (2, 4)


def test_mixture_batch_that_broadcasts():
    """Categorical batch shape () with components of batch shape (2, K), which torch accepts:
    draws and gradients are those of the Categorical expanded to (2,)."""
    logits = leaf([0.3, -0.5, 1.0])
    loc = leaf([[-2.0, 0.5, 3.0], [0.0, 1.0, 2.0]])
    scale = leaf([[0.5, 1.0, 0.3], [1.0, 2.0, 0.5]])
    m = normal_mix(logits, loc, scale)
    wide = normal_mix(logits.expand(2, 3), loc, scale)
    assert m.batch_shape == (2,)
    z = m.rsample((6,), generator=gen(9))
    assert torch.equal(z.detach(), wide.sample((6,), generator=gen(9)))
    leaves = [logits, loc, scale]
    got = torch.autograd.grad(z.sum(), leaves)
    want = torch.autograd.grad(wide.reparameterize(z.detach()).sum(), leaves)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


# -- 5. Triton backend --------------------------------------------------------------------------


def record_backends(monkeypatch) -> list:
    """The backends that irtgen's ops pick from now on, recorded as they are chosen."""
    seen = []

    def spy(device):
        seen.append(real(device))
        return seen[-1]

    real = ops.select_backend
    monkeypatch.setattr(ops, "select_backend", spy)
    # the mixture's own kernels (mixture_sample_kernel, mixture_backward_kernel) choose too
    monkeypatch.setattr(mixture_module, "select_backend", spy)
    return seen


def grads_at(m, z, g, leaves):
    return torch.autograd.grad((g * m.reparameterize(z)).sum(), leaves, retain_graph=True)


def test_triton_backend_gamma_mixture(monkeypatch):
    m, leaves, _ = gamma_case(torch.float64)
    z = m.sample((12,), generator=gen(41))
    g = torch.randn(z.shape, generator=gen(42), dtype=torch.float64)
    want = grads_at(m, z, g, leaves)
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    seen = record_backends(monkeypatch)
    got = grads_at(m, z, g, leaves)
    errs = [rel_err(a, b) for a, b in zip(got, want, strict=True)]
    print(f"\nTriton vs numba, Gamma mixture: max relative difference {max(errs):.2e}")
    assert max(errs) <= 1e-12
    zt = m.rsample((16,), generator=gen(43))
    assert torch.isfinite(zt).all() and (zt > 0).all()
    assert all(torch.isfinite(t).all() for t in torch.autograd.grad(zt.sum(), leaves))
    assert seen and set(seen) == {"triton"}


def test_triton_backend_factorized_normal(monkeypatch):
    m, leaves = random_factorized(Normal, (), 3, 3, seed=44)
    z = m.sample((10,), generator=gen(45))
    g = torch.randn(z.shape, generator=gen(46), dtype=torch.float64)
    want = grads_at(m, z, g, leaves)
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    seen = record_backends(monkeypatch)
    got = grads_at(m, z, g, leaves)
    errs = [rel_err(a, b) for a, b in zip(got, want, strict=True)]
    print(f"\nTriton vs numba, factorized Normal mixture: max relative difference {max(errs):.2e}")
    assert max(errs) <= 1e-12
    zt = m.rsample((8,), generator=gen(47))
    assert zt.shape == (8, 3) and torch.isfinite(zt).all()
    assert all(torch.isfinite(t).all() for t in torch.autograd.grad(zt.sum(), leaves))
    assert seen and set(seen) == {"triton"}


@pytest.mark.parametrize(
    ("family", "batch", "K", "D", "samples"),
    [(Logistic, (2,), 5, 4, 6), (Normal, (), 3, 2, 10000)],
    ids=["batch2-K5-D4", "two-splits-several-blocks"],
)
def test_triton_mixture_backward_kernel_layouts(monkeypatch, family, batch, K, D, samples):
    # batch columns with K not a power of two; and enough samples that the kernel runs two row
    # splits and several row blocks per split, accumulating its (k, d) partials across blocks
    m, leaves = random_factorized(family, batch, K, D, seed=48)
    z = m.sample((samples,), generator=gen(49))
    g = torch.randn(z.shape, generator=gen(50), dtype=torch.float64)
    want = grads_at(m, z, g, leaves)
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    seen = record_backends(monkeypatch)
    got = grads_at(m, z, g, leaves)
    assert max(rel_err(a, b) for a, b in zip(got, want, strict=True)) <= 1e-12
    assert seen and set(seen) == {"triton"}


def test_numba_backward_does_not_depend_on_the_thread_count():
    """The fused numba backward sums fixed row chunks in chunk order: bitwise the same gradients
    with one thread and with several."""
    m, leaves = random_factorized(Normal, (3,), 4, 3, seed=61)
    z = m.sample((300,), generator=gen(62))
    g = torch.randn(z.shape, generator=gen(63), dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            torch.set_num_threads(n)
            out.append(grads_at(m, z, g, leaves))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*out, strict=True))


def test_chunked_tensor_path_matches_the_fused_kernel():
    """The tensor code that Triton falls back to for more components than a tile holds gives the
    fused numba kernel's gradients (univariate Gamma, factorized Logistic with a batch)."""
    m, leaves, _ = gamma_case(torch.float64)
    z = m.sample((12,), generator=gen(51)).unsqueeze(-1)
    g = torch.randn(z.shape, generator=gen(52), dtype=torch.float64)
    logits, params = leaves[0].detach(), [p.detach().unsqueeze(-1) for p in leaves[1:]]
    mf, leaves_f = random_factorized(Logistic, (2,), 5, 4, seed=53)
    zf = mf.sample((7,), generator=gen(54))
    gf = torch.randn(zf.shape, generator=gen(55), dtype=torch.float64)
    for fam, args in (
        (Gamma.family, (z, logits, params, g)),
        (Logistic.family, (zf, leaves_f[0].detach(), [t.detach() for t in leaves_f[1:]], gf)),
    ):
        needs = (True,) * (1 + len(args[2]))
        want = mixture_module._mixture_backward_numba(fam, *args, needs)
        got = mixture_module._mixture_backward_chunked(fam, *args, needs)
        for a, b in zip([got[0], *got[1]], [want[0], *want[1]], strict=True):
            assert rel_err(a, b) <= 1e-12, fam.name


def test_triton_many_components_take_the_chunked_path(monkeypatch):
    """More components than the Triton kernel's tile: the chunked tensor code on Triton's
    family kernels, with numba's gradients."""
    from irtgen.compilers import gpu

    m, leaves = random_factorized(Normal, (2,), 5, 3, seed=56)
    z = m.sample((9,), generator=gen(57))
    g = torch.randn(z.shape, generator=gen(58), dtype=torch.float64)
    want = grads_at(m, z, g, leaves)
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    monkeypatch.setattr(gpu, "_mixture_tile", lambda wide: 4)
    assert not gpu.mixture_backward_fits(5, False)
    chunked = []
    real = mixture_module._mixture_backward_chunked

    def spy(*args):
        chunked.append(True)
        return real(*args)

    monkeypatch.setattr(mixture_module, "_mixture_backward_chunked", spy)
    seen = record_backends(monkeypatch)
    got = grads_at(m, z, g, leaves)
    assert max(rel_err(a, b) for a, b in zip(got, want, strict=True)) <= 1e-12
    assert chunked and seen and set(seen) == {"triton"}


def test_draws_agree_across_backends(monkeypatch, gompertz):
    """Draws are keyed by (Philox seed, element index): numba and the Triton kernel give the same
    numbers for the same generator state (a sampler with rejection, numeric inversion, a
    factorized mixture with a batch)."""
    f64 = torch.float64
    gomp = MixtureSameFamily(
        Categorical(probs=torch.tensor([0.2, 0.5, 0.3], dtype=f64)),
        gompertz(
            torch.tensor([0.5, 1.0, 2.0], dtype=f64), torch.tensor([1.0, 0.5, 2.0], dtype=f64)
        ),
    )
    mixtures = [gamma_case(f64)[0], gomp, random_factorized(Normal, (2,), 3, 4, seed=59)[0]]
    for i, m in enumerate(mixtures):
        draws = {}
        for backend in ("numba", "triton"):
            monkeypatch.setenv("IRTGEN_BACKEND", backend)
            draws[backend] = m.sample((50,), generator=gen(60 + i))
        assert torch.isfinite(draws["numba"]).all()
        torch.testing.assert_close(draws["triton"], draws["numba"], rtol=1e-12, atol=0)


# -- 7. errors ------------------------------------------------------------------------------------


def test_independent_of_two_dims_has_no_rsample():
    """torch takes Independent(<irtgen>, 2) components (event shape (2, 2)); the mixture's
    implicit gradient needs Independent(<irtgen>, 1): no rsample, and a message naming why."""
    comps = Independent(Normal(torch.zeros(3, 2, 2), torch.ones(3, 2, 2)), 2)
    m = MixtureSameFamily(Categorical(logits=torch.zeros(3)), comps)
    assert m.event_shape == (2, 2) and not m.has_rsample
    assert m.sample((4,)).shape == (4, 2, 2)
    with pytest.raises(NotImplementedError, match=r"Independent\(Normal, 2\)"):
        m.rsample()


def test_mixture_must_be_categorical():
    comps = Normal(torch.zeros(3), torch.ones(3))
    with pytest.raises(TypeError, match="Categorical"):
        MixtureSameFamily(td.OneHotCategorical(logits=torch.zeros(3)), comps)
    with pytest.raises(ValueError, match="Categorical"):  # torch raises ValueError
        MixtureSameFamily(td.OneHotCategorical(logits=torch.zeros(3)), comps)


def test_reparameterize_wrong_shape():
    m = normal_mix(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3))
    m_quiet = MixtureSameFamily(
        Categorical(logits=torch.zeros(2, 3)),
        Normal(torch.zeros(2, 3), torch.ones(2, 3)),
        validate_args=False,
    )
    for mix in (m, m_quiet):
        with pytest.raises(ValueError):
            mix.reparameterize(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="batch_shape"):
        m_quiet.reparameterize(torch.zeros(5, 3))
    mf, _ = random_factorized(Normal, (2,), 3, 4, seed=0)
    with pytest.raises(ValueError):
        mf.reparameterize(torch.zeros(5, 2, 3, dtype=torch.float64))
    assert mf.reparameterize(torch.zeros(5, 2, 4, dtype=torch.float64)).shape == (5, 2, 4)


def test_triton_mixture_sample_kernel_fits(monkeypatch, gompertz):
    # mixture_sample_kernel: the component pick and each dimension's draw, for a family with a
    # sampler (Beta), one sampled by numeric inversion (the user-built Gompertz) and a factorized
    # mixture, whose dimension d is the univariate mixture of the components' d-th parts
    monkeypatch.setenv("IRTGEN_BACKEND", "triton")
    seen = record_backends(monkeypatch)
    f64 = torch.float64

    def ks(m, z):
        return scipy.stats.kstest(
            z.double().numpy(), lambda x: m.cdf(torch.as_tensor(x, dtype=f64)).numpy()
        )

    beta = MixtureSameFamily(
        Categorical(logits=torch.tensor([0.0, 1.0, -0.5], dtype=f64)),
        irtgen.distributions.Beta(
            torch.tensor([0.5, 3.0, 20.0], dtype=f64), torch.tensor([2.0, 1.0, 20.0], dtype=f64)
        ),
    )
    gomp = MixtureSameFamily(
        Categorical(probs=torch.tensor([0.2, 0.5, 0.3], dtype=f64)),
        gompertz(
            torch.tensor([0.5, 1.0, 2.0], dtype=f64), torch.tensor([1.0, 0.5, 2.0], dtype=f64)
        ),
    )
    for m, seed in ((beta, 1), (gomp, 2)):
        z = m.sample((600,), generator=gen(seed))
        assert z.shape == (600,) and z.dtype == f64
        assert ks(m, z).pvalue > 1e-3
    logits = torch.tensor([0.3, -0.2, 0.0, 1.0], dtype=f64)
    loc = torch.tensor(
        [[-6.0, 0.0, 2.0], [-2.0, 5.0, 0.0], [2.0, -5.0, 4.0], [6.0, 1.0, -3.0]], dtype=f64
    )
    joint = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, 0.7), 1))
    z = joint.sample((600,), generator=gen(3))
    assert z.shape == (600, 3)
    for d in range(3):
        marginal = MixtureSameFamily(Categorical(logits=logits), Normal(loc[:, d], 0.7))
        assert ks(marginal, z[:, d]).pvalue > 1e-3, d
    # the dimensions of one draw come from one component: with scale 0.05 the components are
    # 80 scales apart in dimension 0, which identifies the component, and dimension 1 must then
    # lie within 10 scales of that component's location
    tight = MixtureSameFamily(Categorical(logits=logits), Independent(Normal(loc, 0.05), 1))
    z = tight.sample((300,), generator=gen(4))
    k = torch.argmin((z[:, :1] - loc[:, 0]).abs(), dim=1)
    assert ((z[:, 1] - loc[k, 1]).abs() < 0.5).all()
    assert len(set(k.tolist())) == 4
    assert seen and set(seen) == {"triton"}
