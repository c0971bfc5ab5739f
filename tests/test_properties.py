"""Property-based tests (hypothesis) of every built-in univariate family over its parameter
ranges, in float32 and float64: draws finite and strictly inside the support, log_prob finite
at the draws, rsample's gradients finite, and in float64 the implicit gradient within 1e-6 of a
central finite difference of the icdf; a per-example deadline guards against hangs.

The Dirichlet likewise (K = 2..8, concentrations 1e-3..1e3, both estimators; in
float64 the gradient against the derivative of the transport map of its marginal Betas, with
scipy's incomplete beta).

Profiles (tests/conftest.py): ``ci`` (the default, a few examples per family) and
``thorough`` (``python -m pytest tests/test_properties.py --hypothesis-profile=thorough``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import special

import irtgen.distributions as D

F32, F64 = torch.float32, torch.float64
FAMILIES = [
    "Normal",
    "Exponential",
    "Gamma",
    "Chi2",
    "Beta",
    "Cauchy",
    "Gumbel",
    "Laplace",
    "HalfNormal",
    "LogNormal",
    "InverseGamma",
    "StudentT",
    "Weibull",
    "Kumaraswamy",
    "Logistic",
]


def _value(kind: str) -> st.SearchStrategy:
    """A parameter value: positive ones log-uniform over 1e-2 .. 1e2 (shapes, scales, rates),
    real ones (locations) uniform over -10 .. 10."""
    if kind == "real":
        return st.floats(-10.0, 10.0, allow_nan=False)
    return st.floats(-2.0, 2.0, allow_nan=False).map(lambda e: 10.0**e)


def _kinds(name: str) -> list[str]:
    cls = getattr(D, name)
    return [
        "real" if type(cls.arg_constraints[p]).__name__ == "_Real" else "positive"
        for p in cls.family.param_names
    ]


def _params(name: str) -> st.SearchStrategy:
    return st.tuples(*(_value(k) for k in _kinds(name)))


def _inside(d, x) -> bool:
    lo = getattr(d.support, "lower_bound", -math.inf)
    hi = getattr(d.support, "upper_bound", math.inf)
    return bool((torch.isfinite(x) & (x > lo) & (x < hi)).all())


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", FAMILIES)
def test_draws_log_prob_and_gradients(name, dtype):
    @given(values=_params(name), seed=st.integers(0, 2**31 - 1))
    def check(values, seed):
        torch.manual_seed(seed)
        params = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in values]
        d = getattr(D, name)(*params)
        z = d.rsample((64,))
        assert _inside(d, z.detach()), (values, z.min(), z.max())
        lp = d.log_prob(z.detach())
        assert not bool(torch.isnan(lp).any()) and bool((lp < math.inf).all()), values
        (z * torch.linspace(-1.0, 1.0, 64, dtype=dtype)).sum().backward()
        for p in params:
            assert not bool(torch.isnan(p.grad).any()), (values, p.grad)
            if dtype == F64:
                assert bool(torch.isfinite(p.grad).all()), (values, p.grad)

    check()


@pytest.mark.parametrize("name", FAMILIES)
def test_implicit_gradient_is_the_icdf_derivative(name):
    """dz/dθ of reparameterize(icdf(u)) against (icdf(u; θ + h) - icdf(u; θ - h)) / 2h in
    float64, at u from 0.05 to 0.95."""
    u = torch.linspace(0.05, 0.95, 7, dtype=F64)
    w = torch.linspace(0.5, 1.5, 7, dtype=F64)

    @given(values=_params(name))
    def check(values):
        cls = getattr(D, name)
        params = [torch.tensor(v, dtype=F64, requires_grad=True) for v in values]
        d = cls(*params)
        z = d.icdf(u).detach()
        grads = torch.autograd.grad((w * d.reparameterize(z)).sum(), params)
        for k, (v, kind) in enumerate(zip(values, _kinds(name), strict=True)):
            # a step relative to a positive parameter (shapes down to 1e-2), else to 1
            h = 1e-6 * (abs(v) if kind == "positive" else max(1.0, abs(v)))
            up = [torch.tensor(x + (h if i == k else 0.0), dtype=F64) for i, x in enumerate(values)]
            dn = [torch.tensor(x - (h if i == k else 0.0), dtype=F64) for i, x in enumerate(values)]
            fd = (w * (cls(*up).icdf(u) - cls(*dn).icdf(u))).sum() / (2 * h)
            scale = float((w * (z.abs() + 1.0)).sum()) / (abs(v) if kind == "positive" else 1.0)
            assert abs(float(grads[k]) - float(fd)) <= 1e-6 * max(abs(float(fd)), scale), (
                name,
                values,
                k,
                float(grads[k]),
                float(fd),
            )

    check()


# -- composites: Dirichlet ---------------------------------------------------------------------

# Concentrations log-uniform over 1e-3 .. 1e3 (the docstring's tiny α = 1e-3 up to large ones).
_CONCENTRATION = st.floats(-3.0, 3.0, allow_nan=False).map(lambda e: 10.0**e)


def _concentrations() -> st.SearchStrategy:
    """K in 2..8 concentrations."""
    return st.integers(2, 8).flatmap(lambda k: st.lists(_CONCENTRATION, min_size=k, max_size=k))


@pytest.mark.parametrize("estimator", ["beta", "gamma"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_dirichlet_draws_log_prob_and_gradients(dtype, estimator):
    """Draws finite and strictly inside the simplex (each coordinate in (0, 1) in the dtype, the
    sum 1 within 4 K ulp), log_prob finite at them, rsample's gradients finite."""
    eps = torch.finfo(dtype).eps

    @given(alpha=_concentrations(), seed=st.integers(0, 2**31 - 1))
    def check(alpha, seed):
        torch.manual_seed(seed)
        k = len(alpha)
        conc = torch.tensor(alpha, dtype=dtype, requires_grad=True)
        d = D.Dirichlet(conc, grad=estimator)
        z = d.rsample((64,))
        zd = z.detach()
        assert zd.dtype == dtype and zd.shape == (64, k)
        assert bool((torch.isfinite(zd) & (zd > 0) & (zd < 1)).all()), (alpha, zd.min(), zd.max())
        excess = (zd.to(F64).sum(-1) - 1.0).abs().max()
        assert float(excess) <= 4 * k * eps, (alpha, float(excess))
        lp = d.log_prob(zd)
        assert bool(torch.isfinite(lp).all()), (alpha, lp)
        (z * torch.linspace(-1.0, 1.0, k, dtype=dtype)).sum().backward()
        assert not bool(torch.isnan(conc.grad).any()), (alpha, conc.grad)
        if dtype == F64:
            assert bool(torch.isfinite(conc.grad).all()), (alpha, conc.grad)

    check()


def _others_sum(x: np.ndarray) -> np.ndarray:
    """Σ_{k≠j} x_k for every j along the last axis, from exclusive prefix and suffix sums."""
    zero = np.zeros_like(x[..., :1])
    before = np.concatenate([zero, np.cumsum(x[..., :-1], -1)], -1)
    after = np.concatenate([np.cumsum(x[..., :0:-1], -1)[..., ::-1], zero], -1)
    return before + after


def _beta_cdf_da(a, b, x, x1):
    """∂I_x(a, b)/∂a (numpy float64 arrays) from scipy's incomplete beta, an implementation
    independent of irtgen's: a fourth-order central difference with h = 1e-3 min(a, √a) (I
    varies on the scale of a for small a, of √a for large a), of I_x(a, b) or of its complement
    (whichever is smaller; scipy computes each directly), each evaluated from the smaller of x
    and x1 = 1 − x (given separately, with its digits)."""
    small_x = x <= x1

    def lower(s):  # I_x(s, b)
        return np.where(small_x, special.betainc(s, b, x), special.betaincc(b, s, x1))

    def upper(s):  # 1 − I_x(s, b)
        return np.where(small_x, special.betaincc(s, b, x), special.betainc(b, s, x1))

    use_lower = lower(a) <= 0.5

    def value(s):  # I_x(s, b) up to a constant where the complement is differenced
        return np.where(use_lower, lower(s), -upper(s))

    h = 1e-3 * np.minimum(a, np.sqrt(a))
    return (-value(a + 2 * h) + 8 * value(a + h) - 8 * value(a - h) + value(a - 2 * h)) / (12 * h)


def _dirichlet_reference(alpha: np.ndarray, z: np.ndarray, w: np.ndarray):
    """(Σ_i w_i dz_i/dα_j, a bound on its terms' magnitude) per draw (rows of z) and j: the
    derivative at h = 0 of the transport map that carries Dirichlet(α) to Dirichlet(α + h e_j).
    z_j follows the quantile map of its marginal Beta(α_j, β_j), β_j = Σ_{k≠j} α_k, so
    dz_j/dα_j = D_j = −∂_a I_z(a, β_j)/q(z) at a = α_j; the other coordinates keep their
    shares of 1 − z_j, dz_i/dα_j = −z_i D_j/(1 − z_j)."""
    a = np.broadcast_to(alpha, z.shape)
    b = np.broadcast_to(_others_sum(alpha), z.shape)
    rest = _others_sum(z)  # 1 − z_j with the digits of a small rest
    dI = _beta_cdf_da(a, b, z, rest)
    log_q = (a - 1) * np.log(z) + (b - 1) * np.log(rest) - special.betaln(a, b)
    dz = -np.sign(dI) * np.exp(np.log(np.abs(dI)) - log_q)  # D_j
    grad = dz * (w - _others_sum(w * z) / rest)
    bound = np.abs(dz) * (np.abs(w) + _others_sum(np.abs(w) * z) / rest)
    return grad, bound


def test_dirichlet_gradient_is_the_transport_derivative():
    """float64: rsample's gradient (per draw) against ``_dirichlet_reference`` within 1e-6 of
    the size of its terms, at ``reparameterize`` of the same draws (rsample's own gradient is
    compared where no coordinate was raised to the smallest normal number, the draw rule's floor:
    there rsample differentiates the unrounded draw and ``reparameterize`` the returned one)."""
    n = 16

    @given(alpha=_concentrations(), seed=st.integers(0, 2**31 - 1))
    def check(alpha, seed):
        k = len(alpha)
        conc = torch.tensor(alpha, dtype=F64).expand(n, k).clone().requires_grad_()
        w = (
            torch.linspace(-1.0, 1.0, k, dtype=F64)
            + torch.linspace(0.3, 0.7, n, dtype=F64)[:, None]
        )
        d = D.Dirichlet(conc)
        z = d.rsample(generator=torch.Generator().manual_seed(seed))
        (g_rsample,) = torch.autograd.grad((w * z).sum(), conc)
        z = z.detach()
        (g_rep,) = torch.autograd.grad((w * d.reparameterize(z)).sum(), conc)
        ref, bound = _dirichlet_reference(np.array(alpha), z.numpy(), w.numpy())
        err = (g_rep.numpy() - ref) / np.maximum(bound, 1e-300)
        worst = np.unravel_index(np.argmax(np.abs(err)), err.shape)
        assert np.abs(err).max() <= 1e-6, (alpha, z[worst[0]], worst, g_rep[worst], ref[worst])
        unclamped = (z > torch.finfo(F64).tiny).all(-1)
        torch.testing.assert_close(
            g_rsample[unclamped],
            g_rep[unclamped],
            rtol=1e-10,
            atol=0,
            msg=lambda m: f"{alpha}: {m}",
        )

    check()
