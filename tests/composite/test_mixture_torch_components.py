"""``MixtureSameFamily`` with torch.distributions components, as a torch user switching imports
meets it.

torch's methods (log_prob, sample, cdf, mean, variance, support, expand, validation) are checked
for equality with torch's own MixtureSameFamily on the same components. ``rsample`` gradients are
checked against finite differences of the mixture's inverse cdf (z(θ) solving F(z; θ) = u by
bisection in float64, a five-point stencil in θ) for the three ways they are computed: torch
components of a family irtgen has (irtgen's kernels on the same tensors), other univariate
continuous torch components with a cdf (the implicit gradient in torch code, through the cdf),
and the torch-code path on torch's Normal and Laplace against irtgen's kernels. Components
without rsample must say why.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.special
import torch
import torch.distributions as td
from torch.distributions import Categorical, Independent

import irtgen.distributions as D
from irtgen.composite import mixture as mixture_module
from irtgen.composite.mixture import MixtureSameFamily

F64 = torch.float64
EPS = torch.finfo(F64).eps


@pytest.fixture(autouse=True)
def numba_backend(monkeypatch):
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tensor(values, grad=False) -> torch.Tensor:
    return torch.tensor(values, dtype=F64, requires_grad=grad)


def jacobian_rows(y: torch.Tensor, leaves) -> list[torch.Tensor]:
    """[dy/dleaf for each leaf], each of shape y.shape + leaf.shape (y one-dimensional)."""
    rows = [torch.autograd.grad(y[i], leaves, retain_graph=True) for i in range(y.shape[0])]
    return [torch.stack([r[j] for r in rows]) for j in range(len(leaves))]


# -- 1. torch's methods are torch's ---------------------------------------------------------------


def _random(seed):
    g = gen(seed)
    return lambda *shape: torch.randn(shape, generator=g, dtype=F64)


def _mvn():
    r = _random(1)
    tril = r(2, 3, 2, 2).tril()
    tril.diagonal(dim1=-2, dim2=-1).copy_(tril.diagonal(dim1=-2, dim2=-1).abs() + 0.5)
    return td.MultivariateNormal(r(2, 3, 2), scale_tril=tril), torch.full((2, 2), math.nan)


def _binomial():
    return td.Binomial(10, torch.sigmoid(_random(2)(2, 3))), tensor([11.0, 3.0])


def _poisson():
    return td.Poisson(torch.exp(_random(3)(2, 3))), tensor([0.5, 1.0])


def _normal():
    r = _random(4)
    return td.Normal(r(2, 3), torch.exp(r(2, 3))), tensor([math.nan, 0.0])


def _gamma():
    r = _random(5)
    return td.Gamma(torch.exp(r(2, 3)), torch.exp(r(2, 3))), tensor([-1.0, 1.0])


def _independent_normal():
    r = _random(6)
    comps = Independent(td.Normal(r(2, 3, 4), torch.exp(r(2, 3, 4))), 1)
    return comps, torch.full((2, 4), math.nan)


# name: (components and a value outside their support, whether the mixture has rsample)
FORWARD = {
    "MultivariateNormal": (_mvn, False),
    "Binomial": (_binomial, False),
    "Poisson": (_poisson, False),
    "Normal": (_normal, True),
    "Gamma": (_gamma, True),
    "Independent(Normal, 1)": (_independent_normal, True),
}


def same_outcome(fn, ours, theirs):
    """fn(ours) equals fn(theirs), or raises the same exception type as fn(theirs) does."""
    try:
        want = fn(theirs)
    except Exception as e:  # noqa: BLE001 - torch's own outcome, whatever it is
        with pytest.raises(type(e)):
            fn(ours)
        return
    assert torch.equal(fn(ours), want)


@pytest.mark.parametrize("name", list(FORWARD))
def test_forward_methods_are_torchs(name):
    make, rsample = FORWARD[name]
    comps, bad = make()
    logits = _random(7)(2, 3)
    ours = MixtureSameFamily(Categorical(logits=logits), comps, validate_args=True)
    theirs = td.MixtureSameFamily(Categorical(logits=logits), comps, validate_args=True)
    assert ours.batch_shape == theirs.batch_shape == (2,)
    assert ours.event_shape == theirs.event_shape
    assert ours.has_rsample is rsample
    torch.manual_seed(1)
    x = ours.sample((6,))
    torch.manual_seed(1)
    assert torch.equal(x, theirs.sample((6,)))  # torch's sampler, the same draws
    assert torch.equal(ours.log_prob(x), theirs.log_prob(x))
    assert torch.equal(ours.mean, theirs.mean)
    assert torch.equal(ours.variance, theirs.variance)
    assert repr(ours.support) == repr(theirs.support)
    assert torch.equal(ours.support.check(x), theirs.support.check(x))
    same_outcome(lambda m: m.cdf(x), ours, theirs)
    for m in (theirs, ours):
        with pytest.raises(ValueError):
            m.log_prob(bad)
    big_ours, big_theirs = ours.expand((4, 2)), theirs.expand((4, 2))
    assert type(big_ours) is MixtureSameFamily and big_ours.has_rsample is rsample
    assert big_ours.batch_shape == big_theirs.batch_shape == (4, 2)
    torch.manual_seed(2)
    y = big_ours.sample((3,))
    torch.manual_seed(2)
    assert torch.equal(y, big_theirs.sample((3,)))
    assert torch.equal(big_ours.log_prob(y), big_theirs.log_prob(y))


# -- 2. no rsample: a clear message ---------------------------------------------------------------

NO_RSAMPLE = [
    (lambda: td.MultivariateNormal(torch.zeros(3, 2), torch.eye(2)), "multivariate"),
    (lambda: td.Binomial(10, torch.full((3,), 0.3)), "Binomial are discrete"),
    (lambda: td.Poisson(torch.ones(3)), "Poisson are discrete"),
    (lambda: td.VonMises(torch.zeros(3), torch.ones(3)), "VonMises have no cdf"),
    # a TransformedDistribution over a base without cdf
    (lambda: td.RelaxedBernoulli(0.5, probs=torch.full((3,), 0.3)), "RelaxedBernoulli have no"),
    (lambda: Independent(td.Uniform(torch.zeros(3, 2), 1.0), 1), r"\(Uniform, 1\) are factor"),
    (lambda: Independent(td.Normal(torch.zeros(3, 2, 2), 1.0), 2), r"Independent\(Normal, 2\)"),
]


@pytest.mark.parametrize(("make", "why"), NO_RSAMPLE, ids=[w for _, w in NO_RSAMPLE])
def test_no_rsample_says_why(make, why):
    m = MixtureSameFamily(Categorical(logits=torch.zeros(3)), make())
    assert m.has_rsample is False and MixtureSameFamily.has_rsample is True
    assert m.expand((2,)).has_rsample is False
    x = m.sample((5,))
    assert x.shape == (5,) + m.batch_shape + m.event_shape
    with pytest.raises(NotImplementedError, match=f"MixtureSameFamily.rsample: .*{why}"):
        m.rsample((2,))
    with pytest.raises(NotImplementedError, match=why):
        m.reparameterize(x)


# -- 3. torch classes that take irtgen's kernels ------------------------------------------------

POS = [0.7, 1.3, 2.5]
LOC = [-0.5, 0.2, 1.0]
TWIN_PARAMS = {
    "Beta": [POS, [2.0, 0.6, 1.1]],
    "Cauchy": [LOC, POS],
    "Chi2": [POS],
    "Exponential": [POS],
    "Gamma": [POS, [2.0, 0.6, 1.1]],
    "Gumbel": [LOC, POS],
    "HalfNormal": [POS],
    "InverseGamma": [POS, [2.0, 0.6, 1.1]],
    "Kumaraswamy": [POS, [2.0, 0.6, 1.1]],
    "Laplace": [LOC, POS],
    "LogNormal": [LOC, POS],
    "Normal": [LOC, POS],
    "StudentT": [[3.0, 1.5, 8.0], LOC, POS],
    "Weibull": [POS, [2.0, 0.6, 1.1]],
}


@pytest.mark.parametrize("name", mixture_module._TWIN_NAMES)
def test_twin_is_the_same_distribution(name):
    """The irtgen twin of a torch component has torch's density, on the torch distribution's
    own tensors: log_prob and its gradients in torch's parameters agree."""
    leaves = [tensor(v, grad=True) for v in TWIN_PARAMS[name]]
    comp = getattr(td, name)(*leaves)
    twin = mixture_module._twin(comp)
    assert type(twin) is getattr(D, name)
    torch.manual_seed(0)
    x = comp.sample((4,))
    want = comp.log_prob(x)
    got = twin.log_prob(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    g_want = torch.autograd.grad(want.sum(), leaves, retain_graph=True)
    g_got = torch.autograd.grad(got.sum(), leaves)
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


def test_torch_subclass_is_not_taken_for_its_parent():
    """A subclass of a torch family may be another distribution: it takes the torch-code path."""

    class Shifted(td.Normal):
        def cdf(self, value):
            return super().cdf(value - 1.0)

    m = MixtureSameFamily(Categorical(logits=torch.zeros(3)), Shifted(torch.zeros(3), 1.0))
    assert m._kind == "torch"
    assert (
        MixtureSameFamily(Categorical(logits=torch.zeros(3)), td.Normal(0.0, torch.ones(3)))._kind
        == "twin"
    )


# -- 4. gradients against finite differences of the inverse cdf ----------------------------------


def bisect(cdf, u, z0, lower, upper, iterations=90):
    """z with cdf(z) = u near z0, by bisection in [z0 - r, z0 + r] within (lower, upper)."""
    r = 1e-2 * (1.0 + z0.abs())
    lo = torch.clamp(z0 - r, min=lower)
    hi = torch.clamp(z0 + r, max=upper)
    assert (cdf(lo) <= u).all() and (cdf(hi) >= u).all()
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < u
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def icdf_derivatives(cdf, values, z, lower, upper):
    """dz/dθ at the points z for every element θ of every tensor in ``values``: z(θ) solves
    cdf(z, *values) = cdf(z0, *values0); five-point stencil, step 1e-4 max(1, |θ|)."""
    u = cdf(z, *values)
    out = []
    for i, v in enumerate(values):
        d = torch.empty((z.shape[0],) + v.shape, dtype=F64)
        for j in np.ndindex(*v.shape):
            h = 1e-4 * max(1.0, abs(v[j].item()))
            roots = {}
            for s in (-2, -1, 1, 2):
                moved = [w.clone() for w in values]
                moved[i][j] += s * h
                roots[s] = bisect(lambda x, m=moved: cdf(x, *m), u, z, lower, upper)
            d[(slice(None), *j)] = (roots[-2] - 8 * roots[-1] + 8 * roots[1] - roots[2]) / (12 * h)
        out.append(d)
    return out


def torch_cdf(make):
    """F(z) = Σ_k w_k F_k(z), F_k from torch's cdf, unvalidated, taken in [0, 1] (a Pareto
    component's cdf is negative below its support)."""

    def cdf(z, logits, *params):
        comps = make(*params, validate_args=False)
        f = comps.cdf(z.unsqueeze(-1)).clamp(0.0, 1.0)
        return (torch.softmax(logits, -1) * f).sum(-1)

    return cdf


def scipy_cdf(fn):
    """F(z) = Σ_k w_k fn(z, *θ_k) with a scipy cdf fn."""

    def cdf(z, logits, *params):
        args = [p.numpy() for p in params]
        f = torch.from_numpy(fn(z.unsqueeze(-1).numpy(), *args))
        return (torch.softmax(logits, -1) * f).sum(-1)

    return cdf


def _transformed(loc, scale, validate_args=None):
    """z = exp(-x), x ~ Normal(loc, scale): a decreasing transform (the cdf flips)."""
    transforms = [td.transforms.AffineTransform(0.0, -1.0), td.transforms.ExpTransform()]
    base = td.Normal(loc, scale, validate_args=validate_args)
    return td.TransformedDistribution(base, transforms, validate_args=validate_args)


@dataclass
class Case:
    make: object  # (*params, validate_args=None) -> components
    kind: str  # the mixture's path
    params: list
    z: list
    cdf: object  # reference F(z, logits, *params)
    lower: float = -math.inf
    upper: float = math.inf
    logits: tuple = (0.3, -0.5, 0.8)


CASES = {
    # torch-code path: univariate continuous torch components that irtgen has no family of
    "Uniform": Case(
        td.Uniform,
        "torch",
        [[-2.0, 0.5, 1.0], [1.0, 2.5, 3.5]],
        [-1.5, 0.0, 0.8, 1.7, 3.0],
        torch_cdf(td.Uniform),
        lower=-2.0,
        upper=3.5,
    ),
    "HalfCauchy": Case(
        td.HalfCauchy, "torch", [[0.5, 1.0, 3.0]], [0.1, 0.7, 2.0, 6.0], torch_cdf(td.HalfCauchy)
    ),
    # components outside their support at some z (z < scale_k): their cdf is no help there
    "Pareto": Case(
        td.Pareto,
        "torch",
        [[0.5, 1.0, 1.5], [1.0, 2.5, 4.0]],
        [0.7, 1.2, 2.0, 4.0],
        torch_cdf(td.Pareto),
        lower=0.5,
    ),
    "exp(-Normal)": Case(
        _transformed,
        "torch",
        [[-0.5, 0.3, 1.0], [0.4, 1.0, 0.6]],
        [0.3, 0.8, 1.5, 3.0],
        torch_cdf(_transformed),
        lower=0.0,
    ),
    # irtgen's kernels on torch's tensors: concentration has no gradient through torch's cdf,
    # and Beta and StudentT have no torch cdf at all
    "Gamma": Case(
        td.Gamma,
        "twin",
        [[0.6, 2.5, 9.0], [1.5, 0.8, 3.0]],
        [0.1, 0.9, 2.5, 5.0],
        scipy_cdf(lambda z, a, r: scipy.special.gammainc(a, r * z)),
        lower=0.0,
    ),
    "Beta": Case(
        td.Beta,
        "twin",
        [[0.6, 2.5, 9.0], [1.5, 0.8, 3.0]],
        [0.05, 0.3, 0.6, 0.9],
        scipy_cdf(lambda z, a, b: scipy.special.betainc(a, b, z)),
        lower=0.0,
        upper=1.0,
    ),
    "StudentT": Case(
        td.StudentT,
        "twin",
        [[1.5, 4.0, 30.0], [-1.0, 0.5, 2.0], [0.5, 1.0, 0.7]],
        [-3.0, -0.5, 0.6, 2.2, 5.0],
        scipy_cdf(lambda z, df, loc, scale: scipy.special.stdtr(df, (z - loc) / scale)),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_against_icdf_finite_differences(name):
    c = CASES[name]
    leaves = [tensor(c.logits, grad=True)] + [tensor(p, grad=True) for p in c.params]
    m = MixtureSameFamily(Categorical(logits=leaves[0]), c.make(*leaves[1:]))
    assert m._kind == c.kind and m.has_rsample
    z = tensor(c.z)
    y = m.reparameterize(z)
    assert torch.equal(y.detach(), z)
    got = jacobian_rows(y, leaves)
    values = [t.detach() for t in leaves]
    want = icdf_derivatives(c.cdf, values, z, c.lower, c.upper)
    # per point, relative to the largest derivative at that point
    scale = torch.stack([w.reshape(len(z), -1).abs().amax(-1) for w in want]).amax(0)
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        err = (g - w).reshape(len(z), -1).abs().amax(-1) / scale
        worst = max(worst, err.max().item())
    print(f"\n{name}: max error vs finite differences of the icdf {worst:.1e}")
    assert worst <= 1e-8


# -- 5. the torch-code path against irtgen's kernels ----------------------------------------------


def test_torch_code_path_matches_irtgen_kernels(monkeypatch):
    """torch's Normal forced onto the torch-code path (no twin) against irtgen's kernels for its
    Normal on the same tensors, at points in both tails (q ~ 1e-19, 1 - F ~ 1e-12), between and
    at the modes. (torch's Normal.cdf has derivatives exact to rounding in its tails, through
    erf's backward; torch's Laplace.cdf, 0.5 - 0.5 sign(x) expm1(-|x|), loses them there.)

    The component parameters' gradients agree to rounding everywhere (log-space posterior
    weights). The logits' gradient -w_k (F_k - F)/q needs F_k, which torch's cdf gives to an
    absolute error of a few ulps of 1 (1 - F is not computed separately): the bound there is
    rounding plus 8 eps w_k/q(z)."""
    leaves = [tensor([0.3, -0.5, 1.0], True), tensor([-2.0, 0.5, 3.0], True)]
    leaves.append(tensor([0.5, 1.0, 0.3], True))
    z = tensor([-6.5, -4.0, -2.5, -1.1, 0.45, 1.8, 2.4, 3.3, 4.5, 7.5])
    kernel = MixtureSameFamily(Categorical(logits=leaves[0]), D.Normal(*leaves[1:]))
    want = jacobian_rows(kernel.reparameterize(z), leaves)
    monkeypatch.setattr(mixture_module, "_twin", lambda dist: None)
    m = MixtureSameFamily(Categorical(logits=leaves[0]), td.Normal(*leaves[1:]))
    assert m._kind == "torch"
    y = m.reparameterize(z)
    assert torch.equal(y.detach(), z)
    got = jacobian_rows(y, leaves)
    with torch.no_grad():
        log_w = torch.log_softmax(leaves[0], -1)
        log_q = m.log_prob(z).unsqueeze(-1)
        bound = 8 * EPS * torch.exp(log_w - log_q)  # (points, K)
    err_logits = ((got[0] - want[0]).abs() - 1e-12 * want[0].abs()) / bound
    assert (err_logits <= 1).all(), err_logits.max()
    for g, w in zip(got[1:], want[1:], strict=True):
        assert ((g - w).abs() <= 1e-12 * w.abs()).all(), ((g - w).abs() / w.abs()).max()
    print(f"\nlogits' error at most {err_logits.max().item():.2f} x the bound")


# -- 6. draws, generators, Monte Carlo ------------------------------------------------------------


def _draw_cases():
    logits = tensor([[0.3, -0.5, 1.0], [0.0, 0.2, -0.1]], True)
    a = tensor([[-2.0, 0.5, 1.0], [0.0, 1.0, 2.0]], True)
    b = tensor([[1.0, 2.5, 3.5], [0.5, 1.5, 3.0]], True)
    loc = tensor(np.arange(24.0).reshape(2, 3, 4) / 10, True)
    return {
        "twin": ([logits, a, b], td.Normal(a, b)),
        "torch": ([logits, a, b], td.Uniform(a, a + b)),
        "factorized twin": ([logits, loc], Independent(td.Normal(loc, 0.5), 1)),
    }


@pytest.mark.parametrize("kind", ["twin", "torch", "factorized twin"])
def test_rsample_is_torchs_draw_with_the_implicit_gradient(kind):
    leaves, comps = _draw_cases()[kind]
    m = MixtureSameFamily(Categorical(logits=leaves[0]), comps)
    assert m._kind == kind.split()[-1]
    theirs = td.MixtureSameFamily(Categorical(logits=leaves[0]), comps)
    torch.manual_seed(3)
    z = m.rsample((5,))
    torch.manual_seed(3)
    assert torch.equal(z.detach(), theirs.sample((5,)))
    g = torch.randn(z.shape, generator=gen(4), dtype=F64)
    grads = torch.autograd.grad((g * z).sum(), leaves, retain_graph=True)
    again = torch.autograd.grad((g * m.reparameterize(z.detach())).sum(), leaves)
    for a, b in zip(grads, again, strict=True):
        assert torch.isfinite(a).all() and a.abs().sum() > 0
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["twin", "torch"])
def test_generator_draws_from_torch_samplers(kind):
    """With generator=, torch's samplers draw from the global RNG seeded from it inside
    fork_rng: the same generator state gives the same draws, the global stream is untouched."""
    leaves, comps = _draw_cases()[kind]
    m = MixtureSameFamily(Categorical(logits=leaves[0]), comps)
    state = torch.get_rng_state()
    a = m.rsample((50,), generator=gen(5))
    b = m.sample((50,), generator=gen(5))
    c = m.sample((50,), generator=gen(6))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.detach(), b) and not torch.equal(b, c)


def test_mc_uniform_mixture_mean():
    """d/dθ E[z] of a mixture of torch Uniforms (the torch-code path; each component's support
    leaves out part of the others') against the closed form Σ_k w_k (low_k + high_k)/2, within
    4 standard errors over 20 independent batches of 5000 draws.

    The supports overlap: the implicit gradient is that of the inverse cdf, and where the
    mixture's support has a gap the inverse cdf jumps across it, which the gradient of an
    expectation would then miss (as for any mixture whose components' supports are disjoint)."""
    logits, low, high = (
        tensor([0.3, -0.4, 0.2]),
        tensor([-2.0, -1.2, 1.0]),
        tensor([-1.0, 1.5, 3.0]),
    )
    leaves = [t.requires_grad_() for t in (logits, low, high)]
    exact = torch.autograd.grad(
        (torch.softmax(leaves[0], -1) * (leaves[1] + leaves[2]) / 2).sum(), leaves
    )
    exact = torch.cat([e.reshape(-1) for e in exact])
    batches = 20
    copies = [t.detach().expand(batches, 3).clone().requires_grad_() for t in leaves]
    m = MixtureSameFamily(Categorical(logits=copies[0]), td.Uniform(copies[1], copies[2]))
    assert m._kind == "torch"
    torch.manual_seed(7)
    z = m.rsample((5000,))
    est = torch.cat(torch.autograd.grad(z.mean(0).sum(), copies), dim=1)
    mean, se = est.mean(0), est.std(0) / math.sqrt(batches)
    assert (se <= 0.05 * exact.abs().max()).all()
    assert ((mean - exact).abs() <= 4 * se).all(), (mean, exact, se)


# -- 7. a mixture batch shape that broadcasts -----------------------------------------------------


@pytest.mark.parametrize("kind", ["twin", "torch"])
def test_mixture_batch_that_broadcasts(kind):
    """Categorical batch shape () with torch components of batch shape (2, K), which torch
    accepts (and whose sample torch cannot draw): draws and gradients are those of the
    Categorical expanded to (2,). (irtgen components: tests/composite/test_mixture.py.)"""
    logits = tensor([0.3, -0.5, 1.0], True)
    loc = tensor([[-2.0, 0.5, 3.0], [0.0, 1.0, 2.0]], True)
    scale = tensor([[0.5, 1.0, 0.3], [1.0, 2.0, 0.5]], True)
    if kind == "torch":
        # torch's support of a mixture is every component's: validation refuses its draws
        comps, check = td.Uniform(loc, loc + scale, validate_args=False), False
    else:
        comps, check = td.Normal(loc, scale), None
    m = MixtureSameFamily(Categorical(logits=logits), comps, validate_args=check)
    wide = MixtureSameFamily(Categorical(logits=logits.expand(2, 3)), comps, validate_args=check)
    assert m._kind == kind and m.batch_shape == (2,)
    z = m.rsample((6,), generator=gen(9))
    assert torch.equal(z.detach(), wide.sample((6,), generator=gen(9)))
    assert torch.equal(m.log_prob(z.detach()), wide.log_prob(z.detach()))
    leaves = [logits, loc, scale]
    got = torch.autograd.grad(z.sum(), leaves)
    want = torch.autograd.grad(wide.reparameterize(z.detach()).sum(), leaves)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


# -- 8. torch.compile -----------------------------------------------------------------------------


def _compiled_step(logits, low, high, loc, scale, z1, z2):
    cat = Categorical(logits=logits, validate_args=False)
    generic = MixtureSameFamily(cat, td.Uniform(low, high, validate_args=False), False)
    twin = MixtureSameFamily(cat, td.Normal(loc, scale, validate_args=False), False)
    return generic.reparameterize(z1), twin.reparameterize(z2), generic.rsample((32,))


def test_compile_fullgraph():
    """The torch-code path (torch's Uniform) and the twin path (torch's Normal) under
    torch.compile(fullgraph=True): reparameterize at fixed points has eager mode's values and
    gradients, and the compiled rsample's draws lie in the support with the gradients eager
    reparameterize gives at those draws."""
    leaves = [
        tensor([0.3, -0.5, 1.0], True),
        tensor([-2.0, 0.5, 1.0], True),
        tensor([1.0, 2.5, 3.5], True),
        tensor([-1.0, 0.5, 2.0], True),
        tensor([0.5, 1.0, 0.7], True),
    ]
    z1, z2 = tensor([-1.5, 0.0, 1.7, 3.0]), tensor([-2.0, 0.3, 1.1, 4.0])
    g1, g2 = tensor([1.0, -2.0, 0.5, 3.0]), tensor([0.7, 1.0, -1.5, 2.0])
    t0 = time.perf_counter()
    y1, y2, draws = torch.compile(_compiled_step, fullgraph=True)(*leaves, z1, z2)
    print(f"\ncompile and first call: {time.perf_counter() - t0:.1f} s")
    e1, e2, _ = _compiled_step(*leaves, z1, z2)
    assert torch.equal(y1.detach(), z1) and torch.equal(y2.detach(), z2)
    got = torch.autograd.grad((g1 * y1).sum() + (g2 * y2).sum(), leaves, retain_graph=True)
    want = torch.autograd.grad((g1 * e1).sum() + (g2 * e2).sum(), leaves)
    for a, b in zip(got, want, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    assert draws.shape == (32,) and ((draws >= -2.0) & (draws < 3.5)).all()
    got = torch.autograd.grad(draws.sum(), leaves[:3])
    eager = MixtureSameFamily(Categorical(logits=leaves[0]), td.Uniform(leaves[1], leaves[2]))
    want = torch.autograd.grad(eager.reparameterize(draws.detach()).sum(), leaves[:3])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_torch_code_path_logit_of_minus_infinity():
    """A component switched off by a logit of -inf: finite gradients, none for it, and the
    others' those of the mixture without it."""
    logits = tensor([0.2, -math.inf, 0.5], True)
    low, high = tensor([-1.0, 0.0, 0.5], True), tensor([1.0, 3.0, 2.0], True)
    m = MixtureSameFamily(Categorical(logits=logits), td.Uniform(low, high))
    z = tensor([-0.5, 0.7, 1.5])
    got = torch.autograd.grad(m.reparameterize(z).sum(), [logits, low, high])
    assert all(torch.isfinite(g).all() for g in got)
    assert got[0][1] == 0 and got[1][1] == 0 and got[2][1] == 0
    keep = [0, 2]
    leaves = [t.detach()[keep].requires_grad_() for t in (logits, low, high)]
    two = MixtureSameFamily(Categorical(logits=leaves[0]), td.Uniform(*leaves[1:]))
    want = torch.autograd.grad(two.reparameterize(z).sum(), leaves)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g[keep], w, rtol=1e-14, atol=1e-16)


def test_twin_gradients_are_irtgens():
    """torch components of a family irtgen has get exactly the gradients irtgen's own components
    with the same tensors get (univariate Gamma; factorized Normal with a batch)."""
    g = gen(11)
    conc = torch.exp(torch.randn(2, 3, generator=g, dtype=F64)).requires_grad_()
    rate = torch.exp(torch.randn(2, 3, generator=g, dtype=F64)).requires_grad_()
    loc = torch.randn(2, 3, 4, generator=g, dtype=F64).requires_grad_()
    scale = torch.exp(torch.randn(2, 3, 4, generator=g, dtype=F64)).requires_grad_()
    logits = torch.randn(2, 3, generator=g, dtype=F64).requires_grad_()
    pairs = [
        ([logits, conc, rate], td.Gamma(conc, rate), D.Gamma(conc, rate)),
        (
            [logits, loc, scale],
            Independent(td.Normal(loc, scale), 1),
            Independent(D.Normal(loc, scale), 1),
        ),
    ]
    for leaves, theirs, ours in pairs:
        m = MixtureSameFamily(Categorical(logits=logits), theirs)
        ref = MixtureSameFamily(Categorical(logits=logits), ours)
        assert m._kind == "twin" and ref._kind == "irtgen"
        z = ref.sample((7,), generator=gen(12))
        w = torch.randn(z.shape, generator=gen(13), dtype=F64)
        got = torch.autograd.grad((w * m.reparameterize(z)).sum(), leaves, retain_graph=True)
        want = torch.autograd.grad((w * ref.reparameterize(z)).sum(), leaves, retain_graph=True)
        for a, b in zip(got, want, strict=True):
            assert a.abs().sum() > 0 and torch.equal(a, b)


def test_reparameterize_validates_a_possible_draw():
    """With validate_args, reparameterize takes z inside some component's support (torch's
    support of the mixture, for log_prob, is inside every component's) and the right shape."""
    low, high = tensor([-2.0, 0.0, 1.0]), tensor([-1.0, 1.5, 3.0])
    m = MixtureSameFamily(
        Categorical(logits=tensor([0.3, -0.4, 0.2])), td.Uniform(low, high), validate_args=True
    )
    z = tensor([-1.5, 0.5, 2.5])
    assert not m.support.check(z).any()  # torch's support: no draw of this mixture is in it
    assert torch.equal(m.reparameterize(z).detach(), z)
    assert m.reparameterize([0.5]).dtype == F64  # a list takes the mixture's dtype
    with pytest.raises(ValueError, match="outside every component's support"):
        m.reparameterize(tensor([-0.5]))
