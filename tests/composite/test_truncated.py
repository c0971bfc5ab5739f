"""``Truncated(base, low, high)``: generated families restricted to an interval.

The implicit gradients dz/dθ, dz/dlow, dz/dhigh are checked pointwise against
-(∂F_T/∂θ)/(∂F_T/∂z) from mpmath (50 digits, ``mpmath.diff`` of the truncated CDF at the exact
binary values of the float inputs) on quantiles of the truncated distribution from 1e-6 to
1 - 1e-6; log_prob, cdf, icdf, mean and variance against scipy's truncnorm; draws by
Kolmogorov-Smirnov tests; gradients as a whole by gradcheck; torch.compile(fullgraph=True) in
a subprocess (its first use switches validation off process-wide).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import mpmath
import pytest
import scipy.stats
import torch

import irtgen
from irtgen.distributions import Gamma, MixtureSameFamily, Normal, Truncated

SPECS = Path(__file__).resolve().parent.parent / "specs"
F32, F64 = torch.float32, torch.float64
QUANTILES = (1e-6, 0.01, 0.3, 0.5, 0.7, 0.99, 1 - 1e-6)
INF = math.inf
mpmath.mp.dps = 50


@pytest.fixture(autouse=True)
def numba_backend(monkeypatch):
    monkeypatch.setenv("IRTGEN_BACKEND", "numba")


@pytest.fixture(scope="module")
def gompertz():
    return irtgen.load(SPECS / "gompertz.py").Gompertz


# -- the references: each family's CDF and survival function in mpmath ------------------------


def _normal_cdf(x, loc, scale):
    return mpmath.ncdf((x - loc) / scale)


def _normal_sf(x, loc, scale):
    return mpmath.ncdf(-(x - loc) / scale)


def _gamma_cdf(x, concentration, rate):
    if x <= 0:
        return mpmath.mpf(0)
    return mpmath.gammainc(concentration, 0, rate * x, regularized=True)


def _gamma_sf(x, concentration, rate):
    if x <= 0:
        return mpmath.mpf(1)
    return mpmath.gammainc(concentration, rate * x, mpmath.inf, regularized=True)


def _gompertz_cdf(x, eta, b):
    if x <= 0:
        return mpmath.mpf(0)
    return -mpmath.expm1(-eta * mpmath.expm1(b * x))


def _gompertz_sf(x, eta, b):
    if x <= 0:
        return mpmath.mpf(1)
    return mpmath.exp(-eta * mpmath.expm1(b * x))


def _mp(x):
    """A float's exact binary value (an mpf passes unchanged)."""
    if isinstance(x, mpmath.mpf):
        return x
    return mpmath.inf if x == INF else -mpmath.inf if x == -INF else mpmath.mpf(float(x))


def _truncated_cdf(ref, x, params, low, high):
    """F_T(x) from the side that keeps its digits at 50 (S(40) = 1 - F(40) = 3.7e-350)."""
    cdf, sf = ref
    x, low, high = _mp(x), _mp(low), _mp(high)
    fa = cdf(low, *params) if low != -mpmath.inf else mpmath.mpf(0)
    if fa > 0.5:
        sa = sf(low, *params)
        sb = sf(high, *params) if high != mpmath.inf else mpmath.mpf(0)
        return (sa - sf(x, *params)) / (sa - sb)
    fb = cdf(high, *params) if high != mpmath.inf else mpmath.mpf(1)
    return (cdf(x, *params) - fa) / (fb - fa)


def _reference(ref, z, params, low, high):
    """[dz/dθ_1, ..., dz/dθ_P, dz/dlow, dz/dhigh] at z, from the truncated CDF."""
    z, params, low, high = _mp(z), [_mp(p) for p in params], _mp(low), _mp(high)

    def truncated(x, ps, a, b):
        return _truncated_cdf(ref, x, ps, a, b)

    density = mpmath.diff(lambda x: truncated(x, params, low, high), z)
    out = []
    for i in range(len(params)):

        def at(t, i=i):
            ps = list(params)
            ps[i] = t
            return truncated(z, ps, low, high)

        out.append(-mpmath.diff(at, params[i]) / density)
    for i, end in enumerate((low, high)):
        if not mpmath.isfinite(end):
            out.append(mpmath.mpf(0))
            continue
        out.append(
            -mpmath.diff(
                lambda t, i=i: truncated(z, params, *((t, high) if i == 0 else (low, t))), end
            )
            / density
        )
    return out


NORMAL = (_normal_cdf, _normal_sf)
GAMMA = (_gamma_cdf, _gamma_sf)
GOMPERTZ = (_gompertz_cdf, _gompertz_sf)

# (name, family, mpmath (cdf, sf), params, low, high, dtype, tolerance)
CASES = [
    ("Normal(0,1) [8, 9]", "Normal", NORMAL, (0.0, 1.0), 8.0, 9.0, F64, 1e-12),
    ("Normal(0,1) [8, 9]", "Normal", NORMAL, (0.0, 1.0), 8.0, 9.0, F32, 1e-5),
    ("Normal(0,1) [-6, -5]", "Normal", NORMAL, (0.0, 1.0), -6.0, -5.0, F64, 1e-12),
    ("Normal(0,1) [-6, -5]", "Normal", NORMAL, (0.0, 1.0), -6.0, -5.0, F32, 1e-5),
    ("Normal(0,1) [-1, 2]", "Normal", NORMAL, (0.0, 1.0), -1.0, 2.0, F64, 1e-12),
    ("Normal(0,1) [-1, 2]", "Normal", NORMAL, (0.0, 1.0), -1.0, 2.0, F32, 1e-5),
    ("Normal(0.5,2) [20, inf)", "Normal", NORMAL, (0.5, 2.0), 20.0, INF, F64, 1e-12),
    ("Normal(0.5,2) (-inf, -9]", "Normal", NORMAL, (0.5, 2.0), -INF, -9.0, F64, 1e-12),
    ("Normal(0.5,2) (-inf, -9]", "Normal", NORMAL, (0.5, 2.0), -INF, -9.0, F32, 1e-5),
    ("Normal(0,1) [40, inf)", "Normal", NORMAL, (0.0, 1.0), 40.0, INF, F64, 1e-12),
    ("Normal(0,1) [-41, -40]", "Normal", NORMAL, (0.0, 1.0), -41.0, -40.0, F64, 1e-12),
    ("Normal(0,1) [-41, -40]", "Normal", NORMAL, (0.0, 1.0), -41.0, -40.0, F32, 1e-5),
    ("Gamma(3,1) [20, 20.5]", "Gamma", GAMMA, (3.0, 1.0), 20.0, 20.5, F64, 1e-12),
    ("Gamma(3,1) [20, 20.5]", "Gamma", GAMMA, (3.0, 1.0), 20.0, 20.5, F32, 1e-5),
    ("Gamma(3,1) [20, 20.03125]", "Gamma", GAMMA, (3.0, 1.0), 20.0, 20.03125, F64, 1e-12),
    ("Gamma(3,1) [20, inf)", "Gamma", GAMMA, (3.0, 1.0), 20.0, INF, F64, 1e-12),
    ("Gamma(0.5,2) [-1, 0.125]", "Gamma", GAMMA, (0.5, 2.0), -1.0, 0.125, F64, 1e-12),
    ("Gompertz(0.25,1.5) [3, 3.5]", "Gompertz", GOMPERTZ, (0.25, 1.5), 3.0, 3.5, F64, 1e-12),
    ("Gompertz(0.25,1.5) [3, 3.5]", "Gompertz", GOMPERTZ, (0.25, 1.5), 3.0, 3.5, F32, 1e-5),
    ("Gompertz(0.25,1.5) [1, inf)", "Gompertz", GOMPERTZ, (0.25, 1.5), 1.0, INF, F64, 1e-12),
]


def _family(name, gompertz):
    return {"Normal": Normal, "Gamma": Gamma, "Gompertz": gompertz}[name]


def measured_errors(case, gompertz):
    """(max relative error of each of dz/dθ..., dz/dlow, dz/dhigh over QUANTILES, the largest
    of all) of one case; an exact 0 must be computed as 0."""
    _, name, cdf, params, low, high, dtype, _ = case
    family = _family(name, gompertz)
    base = family(*(torch.tensor(p, dtype=dtype, requires_grad=True) for p in params))
    lo = torch.tensor(low, dtype=dtype, requires_grad=True)
    hi = torch.tensor(high, dtype=dtype, requires_grad=True)
    d = Truncated(base, lo, hi)
    u = torch.tensor(QUANTILES, dtype=F64).to(dtype)
    z = d.icdf(u).detach()
    assert bool(((z >= low) & (z <= high)).all()), z
    leaves = [*d._params, lo, hi]
    rows = []
    for k in range(len(QUANTILES)):
        r = d.reparameterize(z[k])
        grads = torch.autograd.grad(r, [base._params[i] for i in range(len(params))] + [lo, hi])
        got = [g.item() for g in grads]
        ref = _reference(cdf, z[k].item(), params, low, high)
        errs = []
        for g, e in zip(got, ref, strict=True):
            if e == 0:
                assert g == 0, (k, got, ref)
                errs.append(0.0)
            else:
                errs.append(float(abs((g - e) / e)))
        rows.append(errs)
    del leaves
    per_input = [max(col) for col in zip(*rows, strict=True)]
    return per_input, max(per_input)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{str(c[6])[6:]}" for c in CASES])
def test_implicit_gradients_match_mpmath(case, gompertz):
    per_input, worst = measured_errors(case, gompertz)
    assert worst <= case[7], per_input


@pytest.mark.parametrize("width", [2.0**-10, 2.0**-20])
def test_very_narrow_windows_are_as_accurate_as_their_conditioning(width, gompertz):
    """In a window of width w, dz/dθ vanishes at both ends and varies on the scale w, so
    rounding z to float64 alone changes it by ~ulp(z)/w relative (3.6e-12 at w = 2^-10 near
    20, 3.7e-9 at 2^-20): no formula of the float inputs can do better. The computed values
    stay within a small multiple of that (measured: 1.4e-11 and 3.0e-9)."""
    case = ("", "Gamma", GAMMA, (3.0, 1.0), 20.0, 20.0 + width, F64, None)
    _, worst = measured_errors(case, gompertz)
    conditioning = math.ulp(20.0) / width
    assert worst <= 8 * conditioning


# -- against scipy's truncnorm --------------------------------------------------------------


TRUNCNORM = [
    (0.0, 1.0, -1.0, 2.0),
    (1.0, 2.0, -INF, 0.0),
    (0.0, 1.0, 8.0, 9.0),
    (0.0, 1.0, -6.0, INF),
]


def _normal_truncated_cdf(x, loc, scale, low, high):
    return _truncated_cdf(NORMAL, x, (loc, scale), low, high)


@pytest.mark.parametrize("loc,scale,low,high", TRUNCNORM)
def test_normal_matches_scipy_truncnorm(loc, scale, low, high):
    """scipy's values to its own accuracy (its cdf is (Φ(z) - Φ(a))/Z, to ~1e-16 absolute, and
    its ppf inherits that near the ends); mpmath's to 1e-13 (cdf), and icdf(u) within two ulps of the
    exact quantile of a u' within 16 eps of u."""
    d = Truncated(Normal(torch.tensor(loc, dtype=F64), torch.tensor(scale, dtype=F64)), low, high)
    ref = scipy.stats.truncnorm((low - loc) / scale, (high - loc) / scale, loc=loc, scale=scale)
    u = torch.tensor([1e-9, 0.01, 0.3, 0.5, 0.9, 1 - 1e-9], dtype=F64)
    z = d.icdf(u)
    torch.testing.assert_close(z, torch.from_numpy(ref.ppf(u.numpy())), rtol=1e-6, atol=0)
    for zi, ui in zip(z.tolist(), u.tolist(), strict=True):
        below, above = zi, zi
        for _ in range(2):
            below, above = math.nextafter(below, -INF), math.nextafter(above, INF)
        f = [_normal_truncated_cdf(x, loc, scale, low, high) for x in (below, above)]
        # the exact quantile of a u' within 16 eps of u (of 1 - u above the median)
        tol = 16 * 2.0**-52 * min(ui, 1 - ui)
        assert f[0] <= mpmath.mpf(ui) + tol and mpmath.mpf(ui) - tol <= f[1]
    cdf = d.cdf(z)
    torch.testing.assert_close(cdf, torch.from_numpy(ref.cdf(z.numpy())), rtol=1e-6, atol=1e-14)
    exact = [float(_normal_truncated_cdf(x, loc, scale, low, high)) for x in z.tolist()]
    torch.testing.assert_close(cdf, torch.tensor(exact, dtype=F64), rtol=1e-13, atol=0)
    torch.testing.assert_close(
        d.log_prob(z), torch.from_numpy(ref.logpdf(z.numpy())), rtol=1e-12, atol=0
    )
    # moments to 1e-12 of the scale (a mean of 6e-9 at [-6, inf) is exact to 1e-17)
    mean = torch.tensor(ref.mean(), dtype=F64)
    torch.testing.assert_close(d.mean, mean, rtol=1e-12, atol=1e-12 * scale)
    var = torch.tensor(ref.var(), dtype=F64)
    torch.testing.assert_close(d.variance, var, rtol=1e-9, atol=1e-12 * scale**2)


@pytest.mark.parametrize("low,high", [(40.0, INF), (-41.0, -40.0), (38.0, 39.0)])
def test_far_tails_where_the_masses_underflow(low, high):
    """S(40) = 3.7e-350 is below float64's range (S(38) is subnormal): the masses come from
    quadrature in log space. There log q ≈ -800 carries an absolute rounding of ~1e-13 (the
    base's own log_prob), which log_prob = log q - log Z keeps as an absolute error and
    F_T = exp(log P - log Z) as a relative one: the tolerances below are that rounding."""
    d = Truncated(Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)), low, high)
    end = low if math.isfinite(low) else high
    x = torch.tensor([end + 0.001, end + 0.01, end + 0.1], dtype=F64)
    if x[0] > high:
        x = torch.tensor([high - 0.001, high - 0.01, high - 0.1], dtype=F64)
    cdf = [float(_normal_truncated_cdf(xi, 0.0, 1.0, low, high)) for xi in x.tolist()]
    rounding = 2.0**-52 * abs(end) ** 2 / 2  # of log q at the end
    torch.testing.assert_close(d.cdf(x), torch.tensor(cdf, dtype=F64), rtol=4 * rounding, atol=0)
    if low > 0:
        z_mass = _normal_sf(_mp(low), 0, 1) - _normal_sf(_mp(high), 0, 1)
    else:
        z_mass = _normal_cdf(_mp(high), 0, 1) - _normal_cdf(_mp(low), 0, 1)
    log_q = [float(mpmath.log(mpmath.npdf(_mp(xi)) / z_mass)) for xi in x.tolist()]
    expected = torch.tensor(log_q, dtype=F64)
    torch.testing.assert_close(d.log_prob(x), expected, rtol=1e-13, atol=4 * rounding)


def test_outside_the_window():
    base = Normal(torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64))
    d = Truncated(base, -1.0, 2.0, validate_args=False)
    x = torch.tensor([-3.0, -1.0, 2.0, 5.0], dtype=F64)
    lp = d.log_prob(x)
    assert lp[0] == -INF and lp[3] == -INF and torch.isfinite(lp[1:3]).all()
    torch.testing.assert_close(d.cdf(x), torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=F64))


# -- draws ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("loc,scale,low,high", [*TRUNCNORM, (0.0, 1.0, 40.0, INF)])
def test_draws_pass_kolmogorov_smirnov(loc, scale, low, high):
    d = Truncated(Normal(torch.tensor(loc, dtype=F64), torch.tensor(scale, dtype=F64)), low, high)
    z = d.sample((20000,), generator=torch.Generator().manual_seed(7))
    a, b = (low - loc) / scale, (high - loc) / scale
    if low == 40.0:  # beyond scipy's reach (S(40) underflows): the cdf checked below
        ref = d.cdf
        p = scipy.stats.kstest(z.numpy(), lambda x: ref(torch.from_numpy(x)).numpy()).pvalue
    else:
        p = scipy.stats.kstest(z.numpy(), scipy.stats.truncnorm(a, b, loc, scale).cdf).pvalue
    assert p > 1e-3


def test_draws_are_strictly_inside_in_float32():
    one = torch.tensor(1.0)
    up = torch.nextafter(torch.nextafter(one, torch.tensor(2.0)), torch.tensor(2.0))
    cases = [(0.0, 1.0, -6.0, -5.0), (0.0, 1.0, 1.0, up.item()), (0.0, 1.0, 8.0, 8.000004)]
    for loc, scale, low, high in cases:
        lo, hi = torch.tensor(low, dtype=F32), torch.tensor(high, dtype=F32)
        d = Truncated(Normal(torch.tensor(loc), torch.tensor(scale)), lo, hi)
        z = d.rsample((5000,), generator=torch.Generator().manual_seed(1))
        assert z.dtype == F32
        assert bool(((z > lo) & (z < hi) & torch.isfinite(z)).all())
    # Gamma's support starts at 0: [0, 1e-30] keeps draws above 0 and below 1e-30
    d = Truncated(Gamma(torch.tensor(0.5), torch.tensor(1.0)), 0.0, 1e-30)
    z = d.sample((1000,), generator=torch.Generator().manual_seed(2))
    assert bool(((z > 0) & (z < torch.tensor(1e-30))).all())


def test_a_clamped_draw_has_gradient_zero():
    lo = torch.tensor(1.0, requires_grad=True)
    up = torch.nextafter(torch.nextafter(lo.detach(), torch.tensor(2.0)), torch.tensor(2.0))
    hi = up.clone().requires_grad_()
    loc = torch.tensor(0.0, requires_grad=True)
    d = Truncated(Normal(loc, torch.tensor(1.0)), lo, hi)
    z = d.rsample((200,), generator=torch.Generator().manual_seed(3))
    # the only float32 number strictly inside
    assert bool((z == torch.nextafter(lo.detach(), torch.tensor(2.0))).all())
    z.sum().backward()
    assert loc.grad == 0 and lo.grad == 0 and hi.grad == 0


# -- gradients -----------------------------------------------------------------------------------


def test_gradcheck_of_rsample_cdf_icdf_log_prob():
    def draw(loc, scale, low, high):
        d = Truncated(Normal(loc, scale), low, high)
        return d.rsample((3,), generator=torch.Generator().manual_seed(11))

    def others(loc, scale, low, high, x, u):
        d = Truncated(Normal(loc, scale), low, high)
        return d.log_prob(x), d.cdf(x), d.icdf(u), d.mean, d.variance

    args = [
        torch.tensor([0.3, -0.2], dtype=F64, requires_grad=True),
        torch.tensor([1.5, 0.7], dtype=F64, requires_grad=True),
        torch.tensor([-1.0, 0.5], dtype=F64, requires_grad=True),
        torch.tensor([2.0, 2.5], dtype=F64, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(draw, args)
    x = torch.tensor([0.1, 1.9], dtype=F64, requires_grad=True)
    u = torch.tensor([0.2, 0.95], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(others, (*args, x, u))


def test_gradients_to_tensor_bounds_reduce_over_samples_and_broadcast():
    loc = torch.tensor([0.0, 1.0, 2.0], dtype=F64, requires_grad=True)
    low = torch.tensor(-0.5, dtype=F64, requires_grad=True)  # one bound for the whole batch
    high = torch.tensor([1.0, 2.0, 3.0], dtype=F64, requires_grad=True)
    d = Truncated(Normal(loc, torch.tensor(1.0, dtype=F64)), low, high)
    assert d.batch_shape == (3,)
    z = d.rsample((4, 2), generator=torch.Generator().manual_seed(5))
    assert z.shape == (4, 2, 3)
    z.sum().backward()
    grads = [loc.grad.clone(), low.grad.clone(), high.grad.clone()]
    for t in (loc, low, high):
        t.grad = None
    # element by element
    total = [torch.zeros(3, dtype=F64), torch.zeros((), dtype=F64), torch.zeros(3, dtype=F64)]
    for j in range(3):
        dj = Truncated(Normal(loc[j], torch.tensor(1.0, dtype=F64)), low, high[j])
        gl, glow, ghigh = torch.autograd.grad(
            dj.reparameterize(z[..., j].detach()).sum(), [loc, low, high]
        )
        total[0] += gl
        total[1] += glow
        total[2] += ghigh
    for g, t in zip(grads, total, strict=True):
        torch.testing.assert_close(g, t, rtol=1e-13, atol=0)


def test_torch_func_grad_and_vmap():
    def f(loc, low):
        d = Truncated(Normal(loc, torch.tensor(1.0, dtype=F64)), low, 2.0)
        z = d.reparameterize(torch.tensor([0.4, 1.1], dtype=F64))
        return d.log_prob(torch.tensor([0.1, 0.5], dtype=F64)).sum() + d.cdf(z).sum() + z.sum()

    loc, low = torch.tensor(0.2, dtype=F64), torch.tensor(-1.0, dtype=F64)
    leaves = [loc.clone().requires_grad_(), low.clone().requires_grad_()]
    expected = torch.autograd.grad(f(*leaves), leaves)
    got = torch.func.grad(f, argnums=(0, 1))(loc, low)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-14, atol=0)
    locs = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    batched = torch.func.vmap(torch.func.grad(f), in_dims=(0, None))(locs, low)
    one_by_one = torch.stack([torch.func.grad(f)(x, low) for x in locs])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-14, atol=0)


@pytest.mark.parametrize("low,high", [(-INF, 1.0), (0.5, INF), (-INF, INF)])
def test_infinite_bounds(low, high):
    loc = torch.tensor(0.3, dtype=F64, requires_grad=True)
    scale = torch.tensor(1.7, dtype=F64, requires_grad=True)
    lo = torch.tensor(low, dtype=F64, requires_grad=True)
    hi = torch.tensor(high, dtype=F64, requires_grad=True)
    d = Truncated(Normal(loc, scale), lo, hi)
    z = d.rsample((1000,), generator=torch.Generator().manual_seed(4))
    lp = d.log_prob(z)
    (z.sum() + lp.sum()).backward()
    for t in (loc, scale, lo, hi):
        assert torch.isfinite(t.grad)
    if math.isinf(low):
        assert lo.grad == 0
    if math.isinf(high):
        assert hi.grad == 0
    if math.isinf(low) and math.isinf(high):  # the base itself
        base = Normal(loc.detach(), scale.detach())
        torch.testing.assert_close(d.log_prob(z).detach(), base.log_prob(z.detach()))
        loc2, scale2 = loc.detach().requires_grad_(), scale.detach().requires_grad_()
        r = Normal(loc2, scale2).reparameterize(z.detach())
        r.sum().backward()
        z2 = d.reparameterize(z.detach())
        g = torch.autograd.grad(z2.sum(), [loc, scale])
        torch.testing.assert_close(g[0], loc2.grad, rtol=1e-13, atol=0)
        torch.testing.assert_close(g[1], scale2.grad, rtol=1e-12, atol=0)


def test_gamma_window_mean_and_variance_by_quadrature():
    d = Truncated(Gamma(torch.tensor(3.0, dtype=F64), torch.tensor(1.0, dtype=F64)), 20.0, 20.5)
    a, b = mpmath.mpf(20), mpmath.mpf("20.5")

    def q(x):
        return x**2 * mpmath.exp(-x)

    z_mass = mpmath.quad(q, [a, b])
    mean = mpmath.quad(lambda x: x * q(x), [a, b]) / z_mass
    var = mpmath.quad(lambda x: (x - mean) ** 2 * q(x), [a, b]) / z_mass
    assert abs(d.mean.item() - float(mean)) <= 1e-14 * float(mean)
    assert abs(d.variance.item() - float(var)) <= 1e-12 * float(var)


# -- the distribution's interface ------------------------------------------------------------


def test_expand_shapes_and_repr():
    d = Truncated(Normal(torch.tensor([0.0, 1.0]), torch.tensor(1.0)), -1.0, 2.0)
    e = d.expand((3, 2))
    assert e.batch_shape == (3, 2) and e.low.shape == (3, 2)
    assert e.sample((4,)).shape == (4, 3, 2)
    assert e.log_prob(torch.zeros(3, 2)).shape == (3, 2)
    assert d.has_rsample
    assert "Truncated(Normal(" in repr(d) and "low" in repr(d)
    assert d.support.check(torch.tensor([-1.0, 3.0])).tolist() == [True, False]


def test_validation_errors():
    base = Normal(torch.tensor(0.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match="LessThan"):
        Truncated(base, 2.0, 1.0, validate_args=True)
    with pytest.raises(ValueError, match="LessThan"):
        Truncated(Gamma(torch.tensor(2.0), torch.tensor(1.0)), -3.0, -1.0, validate_args=True)
    d = Truncated(base, -1.0, 2.0, validate_args=True)
    with pytest.raises(ValueError, match="within the support"):
        d.log_prob(torch.tensor(3.0))
    with pytest.raises(ValueError, match="within the support"):
        d.cdf(torch.tensor(-2.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        d.icdf(torch.tensor(1.5))
    assert torch.isfinite(d.log_prob(torch.tensor(-1.0)))  # an end is in the support
    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        Truncated(base, 2.0, 1.0)  # no check without validation
    finally:  # as it was (torch.compile's first use turns it off for the process)
        torch.distributions.Distribution.set_default_validate_args(before)


def test_unsupported_bases_are_a_type_error():
    with pytest.raises(TypeError, match="generated by irtgen"):
        Truncated(torch.distributions.Normal(0.0, 1.0), -1.0, 1.0)
    mix = MixtureSameFamily(
        torch.distributions.Categorical(logits=torch.zeros(2)),
        Normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0])),
    )
    with pytest.raises(TypeError, match="MixtureSameFamily"):
        Truncated(mix, -1.0, 1.0)


COMPILED = """
import torch
from irtgen.distributions import Normal, Truncated

def f(loc, scale, low, high):
    d = Truncated(Normal(loc, scale), low, high)
    z = d.rsample((64,))
    return (z * d.log_prob(z)).sum()

args = [torch.tensor([0.0, 8.0], dtype=torch.float64, requires_grad=True),
        torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True),
        torch.tensor([-1.0, 8.5], dtype=torch.float64, requires_grad=True),
        torch.tensor([2.0, float("inf")], dtype=torch.float64, requires_grad=True)]
torch.manual_seed(0)
eager = f(*args)
ge = torch.autograd.grad(eager, args)
g = torch.compile(f, fullgraph=True)
torch.manual_seed(0)
out = g(*args)
gc = torch.autograd.grad(out, args)
torch.testing.assert_close(out, eager, rtol=1e-13, atol=0)
for a, b in zip(gc, ge):
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
print("compiled ok")
"""


def test_rsample_and_log_prob_compile_in_one_fullgraph():
    out = subprocess.run(
        [sys.executable, "-c", COMPILED], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "compiled ok" in out.stdout


if __name__ == "__main__":  # the accuracy table of the README
    gomp = irtgen.load(SPECS / "gompertz.py").Gompertz
    print("| case | dtype | max rel. error | per input (θ..., low, high) |")
    print("|---|---|---|---|")
    for case in CASES:
        per_input, worst = measured_errors(case, gomp)
        cells = ", ".join(f"{e:.1e}" for e in per_input)
        print(f"| {case[0]} | {str(case[6])[6:]} | {worst:.1e} | {cells} |")


@pytest.mark.parametrize(
    ("base", "low", "high"),
    [("normal", 8.0, 9.0), ("normal", -6.0, -5.0), ("gamma", 20.0, 20.5)],
    ids=["normal-8-9", "normal-6-5", "gamma-20-20.5"],
)
def test_the_triton_backend_gives_the_cpu_values(monkeypatch, base, low, high):
    """Every formula of Truncated goes through ops.evaluate, which runs the family's Triton
    kernels on CUDA tensors; with IRTGEN_BACKEND=triton on the CPU (Triton's interpreter) icdf,
    log_prob, cdf and the gradients to the parameters and both bounds are the numba values."""
    u = torch.tensor([1e-6, 0.01, 0.5, 0.99, 1 - 1e-6], dtype=torch.float64)

    def run(backend):
        monkeypatch.setenv("IRTGEN_BACKEND", backend)
        if base == "normal":
            theta = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.0, 1.0)]
            dist = Normal(*theta)
        else:
            theta = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (3.0, 1.0)]
            dist = Gamma(*theta)
        ends = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (low, high)]
        d = Truncated(dist, *ends)
        z = d.icdf(u).detach()
        grads = torch.autograd.grad(d.reparameterize(z).sum(), [*theta, *ends])
        return [z, d.log_prob(z).detach(), d.cdf(z).detach(), *grads]

    for got, want in zip(run("triton"), run("numba"), strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-13, atol=0)
