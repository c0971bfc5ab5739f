"""Gamma, Beta and Student-t at extreme shapes, on both backends.

Gradients (float32): rsample over log-spaced shapes from tiny to huge must give finite
gradients; samples that rounded onto an end of the support carry gradient 0, the limit of dz/dθ
there. Each parameter is materialised per sample (shape (n, K)), so every gradient entry is
dz/dθ of one sample.

Samplers (float64): Kolmogorov-Smirnov of the probability integral transform F(z) with scipy's
CDF, fixed seeds. Tiny shapes put much of the mass below the smallest double (Gamma(1e-4): 93%
of the draws are exactly 0) or within half an ulp of 1 (Beta with b = 1e-3); a draw equal to an
end is given a uniform value over the probability that rounds onto that end, so the transform is
uniform exactly when the sampler is right, the count of exact ends included.

Every family is sampled in one call with a batch of K parameter sets: the Triton interpreter
costs per launch, not per element.
"""

from __future__ import annotations

import itertools
import math

import mpmath as mp
import numpy as np
import torch
from scipy import stats

from irtgen.distributions import Beta, Gamma, StudentT
from tests.families.cases import CASES, reference_implicit

GAMMA_SHAPES = torch.logspace(-4, 5, 12).tolist()
BETA_VALUES = torch.logspace(-3, 4, 5).tolist()  # 1e-3, 0.056, 3.2, 178, 1e4
BETA_PAIRS = list(itertools.product(BETA_VALUES, BETA_VALUES))
STUDENT_DF = torch.logspace(math.log10(0.05), 6, 10).tolist()

# float64 draws by the draw rule: exact values below the smallest normal number become it;
# within 1.5 ulp (of numbers below 1) of 1 they round to 1 - 2^-53 or to 1, which becomes
# 1 - 2^-53.
TINY = float(np.finfo(np.float64).tiny)
BELOW_ONE = 1.0 - 2.0**-53
ZERO_EDGE = mp.mpf(2) ** -1022
ONE_GAP = 3 * mp.mpf(2) ** -54


def _per_sample(values, n, dtype=torch.float32):
    """A (n, K) parameter tensor (leaf) repeating ``values`` in every row."""
    return torch.tensor(values, dtype=dtype).expand(n, len(values)).clone().requires_grad_()


def _gradients(dist, params):
    z = dist.rsample()
    grads = torch.autograd.grad(z.sum(), params)
    return z.detach(), grads


# -- gradients, float32 ----------------------------------------------------------------------


def test_gamma_gradients_finite_at_extreme_shapes(backend):
    n = 300 if backend == "torch" else 100
    torch.manual_seed(11)
    conc = _per_sample(GAMMA_SHAPES, n)
    rate = _per_sample([0.5, 3.0] * (len(GAMMA_SHAPES) // 2), n)
    z, (dconc, drate) = _gradients(Gamma(conc, rate), (conc, rate))
    assert torch.isfinite(z).all() and (z > 0).all()
    assert torch.isfinite(dconc).all(), f"non-finite dz/dα at α = {conc[~dconc.isfinite()]}"
    assert torch.isfinite(drate).all(), f"non-finite dz/drate at α = {conc[~drate.isfinite()]}"
    # float32 draws of Gamma(1e-4) are below float32's range with probability 0.99: the draw
    # rule moves them to the smallest normal number, where the draw is a constant (gradient 0)
    moved = z == torch.finfo(torch.float32).tiny
    assert moved[:, 0].float().mean() > 0.9
    assert (dconc[moved] == 0).all() and (drate[moved] == 0).all()
    # Gamma is stochastically increasing in α, and z = G/rate
    assert (dconc >= 0).all()
    assert (dconc[:, 4:] > 0).all()  # α >= 0.19: no draw underflows
    kept = ~moved
    torch.testing.assert_close(drate[kept], (-z / rate.detach())[kept], rtol=1e-6, atol=2.0**-148)


def test_beta_gradients_finite_at_extreme_shapes(backend):
    n = 200 if backend == "torch" else 32
    torch.manual_seed(12)
    a = _per_sample([p[0] for p in BETA_PAIRS], n)
    b = _per_sample([p[1] for p in BETA_PAIRS], n)
    z, (da, db) = _gradients(Beta(a, b), (a, b))
    assert ((z > 0) & (z < 1)).all()
    for name, g in (("a", da), ("b", db)):
        bad = ~torch.isfinite(g)
        assert not bad.any(), (
            f"non-finite dz/d{name} at (a, b, z) = "
            f"{list(zip(a[bad].tolist(), b[bad].tolist(), z[bad].tolist(), strict=True))[:5]}"
        )
    # Beta is stochastically increasing in a and decreasing in b
    assert (da >= 0).all() and (db <= 0).all()
    # the shape 1e-3 puts most exact draws within float32's spacing of an end: the draw rule
    # moves them to the nearest number strictly inside, where the gradient is 0
    info = torch.finfo(torch.float32)
    ends = (z == info.tiny) | (z == 1 - info.eps / 2)
    assert ends.any()
    assert (da[ends] == 0).all() and (db[ends] == 0).all()


def test_student_t_gradients_finite_where_samples_are(backend):
    n = 400 if backend == "torch" else 80
    torch.manual_seed(13)
    df = _per_sample(STUDENT_DF, n)
    loc = _per_sample([1.0] * len(STUDENT_DF), n)
    scale = _per_sample([2.0] * len(STUDENT_DF), n)
    params = (df, loc, scale)
    z, grads = _gradients(StudentT(*params), params)
    ddf, dloc, dscale = grads
    assert torch.isfinite(z).all()
    # For df < 0.2, P(|t| > 3.4e38) is about 1%: by the draw rule such draws are ±float32's
    # largest number, constants with gradient 0. At every other draw the gradients must be
    # finite, except where the exact gradient itself exceeds float32's range (dz/ddf = -2.5e39
    # at df = 0.05, z = 1e36): there it must be that infinity, checked against mpmath.
    moved = z.abs() == torch.finfo(torch.float32).max
    assert not moved[:, torch.tensor(STUDENT_DF) >= 0.2].any()
    assert moved.float().mean() < 0.05
    for g in grads:
        assert (g[moved] == 0).all()
    finite = ~moved
    case = next(c for c in CASES if c.name == "StudentT")
    for i, g in enumerate(grads):
        bad = finite & ~torch.isfinite(g)
        assert not (bad & g.isnan()).any(), f"NaN dz/d{case.param_names[i]} at a finite draw"
        for k in bad.nonzero().tolist():
            point = [float(p.detach()[tuple(k)]) for p in params]
            with mp.workdps(40):
                ref = float(reference_implicit(case, float(z[tuple(k)]), point)[i])
            got = float(g[tuple(k)])
            assert abs(ref) > torch.finfo(torch.float32).max and got == math.copysign(
                math.inf, ref
            ), (
                f"dz/d{case.param_names[i]} = {got} at z = {float(z[tuple(k)])}, "
                f"(df, loc, scale) = {point}; mpmath: {ref}"
            )
    t = (z - 1.0) / 2.0
    # quantiles above the median decrease with df (lighter tails), those below increase
    assert (ddf[finite] * t[finite] <= 0).all()
    torch.testing.assert_close(dloc[finite], torch.ones_like(dloc[finite]), rtol=1e-6, atol=0)
    torch.testing.assert_close(dscale[finite], t[finite], rtol=1e-6, atol=1e-30)


# -- samplers, float64 -----------------------------------------------------------------------


def _transform(z, u, mass_at_zero=0.0, mass_at_one=0.0, seed=0):
    """u = F(z), with draws at the smallest normal number (or at 1 - 2^-53, the top of a unit
    support) spread uniformly over the probability mass_at_zero (mass_at_one) that the draw
    rule puts there."""
    v = np.random.default_rng(seed).uniform(size=z.shape)
    u = np.where(z == TINY, v * mass_at_zero, u)
    return np.where(z == BELOW_ONE, 1 - v * mass_at_one, u) if mass_at_one else u


def _assert_uniform(labels, transformed):
    pvalues = [float(stats.kstest(u, "uniform").pvalue) for u in transformed]
    low = [(lab, p) for lab, p in zip(labels, pvalues, strict=True) if not p > 1e-3]
    assert not low, f"KS p-values below 1e-3: {low}"


def _n(backend):
    return 5000 if backend == "torch" else 1000


def test_gamma_sampler_at_extreme_shapes(backend):
    shapes = [1e-4, 0.01, 1.0, 1e3, 1e5]
    torch.manual_seed(21)
    d = Gamma(torch.tensor(shapes, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    z = d.sample((_n(backend),)).numpy()
    assert np.isfinite(z).all()
    transformed = []
    for k, a in enumerate(shapes):
        with mp.workdps(30):
            zero_mass = float(mp.gammainc(a, 0, ZERO_EDGE, regularized=True))
        u = stats.gamma.cdf(z[:, k], a)
        transformed.append(_transform(z[:, k], u, zero_mass, seed=k))
    _assert_uniform(shapes, transformed)


def test_beta_sampler_at_extreme_shapes(backend):
    pairs = [(1e-3, 1e4), (1e4, 1e-3), (1e-3, 1e-3), (1e4, 1e4), (2.0, 5.0)]
    torch.manual_seed(22)
    a = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    b = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    z = Beta(a, b).sample((_n(backend),)).numpy()
    assert ((z > 0) & (z < 1)).all()
    transformed = []
    for k, (p, q) in enumerate(pairs):
        with mp.workdps(30):
            zero_mass = float(mp.betainc(p, q, 0, ZERO_EDGE, regularized=True))
            one_mass = float(mp.betainc(q, p, 0, ONE_GAP, regularized=True))
        u = stats.beta.cdf(z[:, k], p, q)
        transformed.append(_transform(z[:, k], u, zero_mass, one_mass, seed=k))
    _assert_uniform(pairs, transformed)


def test_student_t_sampler_at_extreme_shapes(backend):
    dfs = [0.05, 1.0, 1e6]
    torch.manual_seed(23)
    zero, one = (torch.tensor(v, dtype=torch.float64) for v in (0.0, 1.0))
    z = StudentT(torch.tensor(dfs, dtype=torch.float64), zero, one).sample((_n(backend),))
    z = z.numpy()
    assert not np.isnan(z).any()
    _assert_uniform(dfs, [stats.t.cdf(z[:, k], v) for k, v in enumerate(dfs)])
