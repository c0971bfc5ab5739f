"""Property-based tests (hypothesis) of every built-in univariate family over its parameter
ranges, in float32 and float64: draws finite and strictly inside the support, log_prob finite
at the draws, rsample's gradients finite, and in float64 the implicit gradient within 1e-6 of a
central finite difference of the icdf; a per-example deadline guards against hangs.

The composites likewise: Dirichlet (K = 2..8, concentrations 1e-3..1e3, both estimators; in
float64 the gradient against the derivative of the transport map of its marginal Betas, with
scipy's incomplete beta) and MixtureSameFamily (Normal and Gamma components, univariate and
Independent(..., 1) with D = 2..3; in float64 the univariate gradient against a central
difference of the mixture's quantile, solved with scipy's component distribution functions).

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
from torch.distributions import Categorical, Independent

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


# -- composites: MixtureSameFamily -------------------------------------------------------------

_LOGIT = st.floats(-5.0, 5.0, allow_nan=False)
MIXTURES = ["Normal", "Gamma", "Independent Normal", "Independent Gamma"]


def _mixture_case(kind: str, k_max: int = 5) -> st.SearchStrategy:
    """(logits, component parameters, D or None): K in 1..k_max components, D in 2..3 for the
    factorized kinds; each parameter drawn as for the univariate families."""
    name = kind.split()[-1]
    factorized = kind.startswith("Independent")

    def case(k, dims):
        shape = k * (dims or 1)
        params = st.tuples(
            *(st.lists(_value(t), min_size=shape, max_size=shape) for t in _kinds(name))
        )
        return st.tuples(st.lists(_LOGIT, min_size=k, max_size=k), params, st.just(dims))

    dims = st.integers(2, 3) if factorized else st.none()
    return st.tuples(st.integers(1, k_max), dims).flatmap(lambda kd: case(*kd))


def _mixture(kind: str, logits, params, dims, dtype):
    """(the mixture, its leaf tensors: logits then the component parameters)."""
    name = kind.split()[-1]
    k = len(logits)
    shape = (k,) if dims is None else (k, dims)
    leaves = [torch.tensor(logits, dtype=dtype, requires_grad=True)] + [
        torch.tensor(p, dtype=dtype).reshape(shape).requires_grad_() for p in params
    ]
    comp = getattr(D, name)(*leaves[1:])
    if dims is not None:
        comp = Independent(comp, 1)
    return D.MixtureSameFamily(Categorical(logits=leaves[0]), comp), leaves


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", MIXTURES)
def test_mixture_draws_log_prob_and_gradients(kind, dtype):
    """Draws finite and inside the components' support, log_prob finite at them, rsample's
    gradients in the logits and every component parameter finite."""

    @given(case=_mixture_case(kind), seed=st.integers(0, 2**31 - 1))
    def check(case, seed):
        torch.manual_seed(seed)
        logits, params, dims = case
        mix, leaves = _mixture(kind, logits, params, dims, dtype)
        z = mix.rsample((64,))
        zd = z.detach()
        assert zd.dtype == dtype and zd.shape == (64,) + (() if dims is None else (dims,))
        lo = 0.0 if kind.endswith("Gamma") else -math.inf
        assert bool((torch.isfinite(zd) & (zd > lo)).all()), (case, zd.min(), zd.max())
        lp = mix.log_prob(zd)
        assert bool(torch.isfinite(lp).all()), (case, lp)
        w = torch.linspace(-1.0, 1.0, zd.numel(), dtype=dtype).reshape(zd.shape)
        (z * w).sum().backward()
        for p in leaves:
            assert not bool(torch.isnan(p.grad).any()), (case, p.grad)
            if dtype == F64:
                assert bool(torch.isfinite(p.grad).all()), (case, p.grad)

    check()


def _component_tails(name: str, params, z):
    """(log F_k, log S_k, log q_k) of each component at each point, numpy float64 with scipy
    (independent of irtgen's formulas): z (n, 1), params (K,) each, results (n, K)."""
    if name == "Normal":
        loc, scale = params
        t = (z - loc) / scale
        return (
            special.log_ndtr(t),
            special.log_ndtr(-t),
            -0.5 * t * t - np.log(scale) - 0.5 * math.log(2 * math.pi),
        )
    conc, rate = params
    x = rate * z
    with np.errstate(divide="ignore"):  # an underflowing tail is -inf, the other component's
        log_f, log_s = np.log(special.gammainc(conc, x)), np.log(special.gammaincc(conc, x))
    log_q = conc * np.log(rate) + special.xlogy(conc - 1, z) - x - special.gammaln(conc)
    return log_f, log_s, log_q


def _mixture_quantile(name: str, logits, params, lower, log_v, z0, tol):
    """z with the mixture's log F(z) (lower) or log S(z) = log_v, per point, by Newton's method
    on that log from z0, in t = z (t = log z for Gamma components), until the steps are below
    ``tol`` (in t): F = Σ_k w_k F_k with scipy's F_k."""
    log_w = special.log_softmax(logits)
    positive = name == "Gamma"
    t = np.log(z0) if positive else z0.copy()
    for _ in range(50):
        z = np.exp(t) if positive else t
        log_f, log_s, log_q = _component_tails(name, params, z[:, None])
        log_tail = special.logsumexp(log_w + np.where(lower[:, None], log_f, log_s), axis=1)
        log_dens = special.logsumexp(log_w + log_q, axis=1) + (np.log(z) if positive else 0.0)
        slope = np.where(lower, 1.0, -1.0) * np.exp(log_dens - log_tail)  # d log tail / dt
        step = (log_tail - log_v) / slope
        t = t - step
        if np.all(np.abs(step) <= tol):
            return np.exp(t) if positive else t
    raise AssertionError(f"Newton's method did not converge: steps {step}")


@pytest.mark.parametrize("name", ["Normal", "Gamma"])
def test_mixture_implicit_gradient_is_the_quantile_derivative(name):
    """float64, univariate mixtures: the gradient of rsample's draws (logits and component
    parameters) within 1e-6 (relative, plus 100 times the estimate of rounding noise) of a
    fourth-order central difference, h = 1e-6 relative, of the draw's quantile map: z' solves
    F(z'; θ') = F(z; θ), F the mixture's distribution function from scipy's component functions
    (the survival function where F > 1/2), by Newton's method."""
    n = 8
    w = torch.linspace(0.5, 1.5, n, dtype=F64)

    @given(case=_mixture_case(name, k_max=4), seed=st.integers(0, 2**31 - 1))
    def check(case, seed):
        logits, params, _ = case
        mix, leaves = _mixture(name, logits, params, None, F64)
        z = mix.rsample((n,), generator=torch.Generator().manual_seed(seed))
        grads = torch.autograd.grad((w * z).sum(), leaves)
        z = z.detach().numpy()
        values = [np.array(logits)] + [np.array(p) for p in params]
        log_f, log_s, log_q = _component_tails(name, values[1:], z[:, None])
        log_w = special.log_softmax(values[0])
        lf, ls = special.logsumexp(log_w + log_f, axis=1), special.logsumexp(log_w + log_s, axis=1)
        lower = lf <= ls
        log_v = np.where(lower, lf, ls)
        # a root of log V = log_v is rounded by about ε (1 + |log V|) V/q, and t by ε |t|: the
        # Newton steps stop below (a multiple of) that, and the difference quotient carries
        # the rounding over h as noise
        length = np.exp(log_v - special.logsumexp(log_w + log_q, axis=1))  # V/q
        if name == "Gamma":  # in t = log z
            t, rounding = np.log(z), np.abs(z) * (1 + np.abs(np.log(z)))
            tol = 1e-13 * (np.abs(t) + 1 + (1 + np.abs(log_v)) * length / z)
        else:
            t, rounding = z, np.abs(z)
            tol = 1e-13 * (np.abs(t) + (1 + np.abs(log_v)) * length)
        rounding = 1e-15 * (rounding + (1 + np.abs(log_v)) * length)
        kinds = ["real"] + _kinds(name)
        for i, vals in enumerate(values):
            for k, v in enumerate(vals):
                positive = kinds[i] == "positive"
                h = 1e-6 * (abs(v) if positive else max(1.0, abs(v)))

                def at(step, i=i, k=k):
                    moved = [x.copy() for x in values]
                    moved[i][k] += step
                    return _mixture_quantile(name, moved[0], moved[1:], lower, log_v, z, tol)

                dz = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
                fd = float((w.numpy() * dz).sum())
                got = float(grads[i][k])
                noise = 1.5 * float((w.numpy() * rounding).sum()) / h
                assert abs(got - fd) <= 1e-6 * abs(fd) + 100 * noise, (case, i, k, got, fd, noise)

    check()
