"""User specs written naively, built unchanged: a truncated normal through erf differences and a
doubly truncated exponential through differences of exponentials. irtgen's rewrites
(irtgen.rewrite) make the generated dz/dθ, log_prob and cdf accurate against mpmath at 50 digits
in float64 and float32, without inf or NaN, from the centre out to 6 standard deviations and at
quantiles 1e-6 ... 1 - 1e-6; ``show`` lists the rules that fired."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import torch

from irtgen.build import load_spec_file
from irtgen.compilers import cpu, gpu
from irtgen.derive import derive
from irtgen.show import describe
from tests.user_specs import load_spec_text

SPECS = Path(__file__).resolve().parent / "specs"
NORMAL_SPEC = SPECS / "truncnorm_naive.py"
EXPONENTIAL_SPEC = SPECS / "truncexp_naive.py"

US = [1e-6, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-4, 1 - 1e-6]
# dz/dθ relative; at a zero of dz/dθ (dz/dscale at z = loc, the median of [-1, 1]) absolute at
# this level instead
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}
ZERO = {torch.float64: 1e-15, torch.float32: 1e-7}
DENSITY_TOL = {torch.float64: 1e-12, torch.float32: 1e-6}


@pytest.fixture(scope="module")
def truncnorm(tmp_path_factory):
    yield from load_spec_text(tmp_path_factory, "truncnorm_naive", NORMAL_SPEC.read_text())


@pytest.fixture(scope="module")
def truncexp(tmp_path_factory):
    yield from load_spec_text(tmp_path_factory, "truncexp_naive", EXPONENTIAL_SPEC.read_text())


def _normal_cdf(z, loc, scale, low, width):
    if low > loc:  # upper tail: the differences of Φ(-·) keep their digits
        q = lambda t: mp.ncdf((loc - t) / scale)  # noqa: E731
        return (q(low) - q(z)) / (q(low) - q(low + width))
    p = lambda t: mp.ncdf((t - loc) / scale)  # noqa: E731
    return (p(z) - p(low)) / (p(low + width) - p(low))


def _exponential_cdf(z, rate, low, width):
    return -mp.expm1(-rate * (z - low)) / -mp.expm1(-rate * width)


def _reference(cdf, z, theta):
    """(dz/dθ for every θ, log density, cdf) at 60 digits, θ and z exactly as given."""
    with mp.workdps(60):
        z = mp.mpf(z)
        theta = [mp.mpf(t) for t in theta]
        q = mp.diff(lambda t: cdf(t, *theta), z)
        grads = []
        for k in range(len(theta)):

            def at(v, k=k):
                return cdf(z, *theta[:k], v, *theta[k + 1 :])

            grads.append(-mp.diff(at, theta[k]) / q)
        return grads, mp.log(q), cdf(z, *theta)


def _quantile(cdf, u, theta, lo, hi):
    """F^-1(u) by bisection at 60 digits (to far below float64's resolution)."""
    with mp.workdps(60):
        lo, hi = mp.mpf(lo), mp.mpf(hi)
        for _ in range(90):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid, *theta) < u else (lo, mid)
        return (lo + hi) / 2


def _check(cls, cdf, theta, lo, hi, dtype, loose=None):
    """The generated dz/dθ (through reparameterize), log_prob and cdf at the quantiles US;
    ``loose``: {parameter index: relative tolerance} where the formula keeps a cancellation."""
    params = [torch.full((len(US),), t, dtype=dtype, requires_grad=True) for t in theta]
    theta = [p[0].item() for p in params]  # as the dtype holds them
    lo, hi = lo(theta), hi(theta)
    z = torch.tensor(
        [float(_quantile(cdf, u, [mp.mpf(t) for t in theta], lo, hi)) for u in US], dtype=dtype
    ).clamp(lo, hi)
    dist = cls(*params, validate_args=False)
    grads = torch.autograd.grad(dist.reparameterize(z).sum(), params)
    log_prob = dist.log_prob(z).detach()
    cdf_values = dist.cdf(z).detach()
    for i, zi in enumerate(z.tolist()):
        ref, log_q, ref_cdf = _reference(cdf, zi, theta)
        for k, g in enumerate(grads):
            got, want = g[i].item(), float(ref[k])
            assert math.isfinite(got), (k, zi)
            floor = ZERO[dtype] / TOL[dtype] if abs(want) < 1e-20 else 0.0  # a zero of dz/dθ
            tol = max(TOL[dtype], (loose or {}).get(k, 0.0))
            assert abs(got - want) <= tol * max(abs(want), floor), (theta, k, zi, got, want)
        for got, want in ((log_prob[i].item(), log_q), (cdf_values[i].item(), ref_cdf)):
            assert abs(got - float(want)) <= DENSITY_TOL[dtype] * max(abs(float(want)), 1e-300)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("low", "up"), [(-1, 1), (2, 3), (5, 6), (-6, -5), (0, 6), (5.5, 5.6)], ids=str
)
def test_truncated_normal_against_mpmath(truncnorm, low, up, dtype):
    _check(
        truncnorm.TruncNormal,
        _normal_cdf,
        [0.0, 1.0, float(low), float(up - low)],
        lambda t: t[2],
        lambda t: t[2] + t[3],
        dtype,
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    ("rate", "low", "width"),
    [(0.5, -2.0, 3.0), (3.0, 800.0, 1.0), (1e-3, 1.0, 2.0), (30.0, 10.0, 30.0)],
    ids=str,
)
def test_truncated_exponential_against_mpmath(truncexp, rate, low, width, dtype):
    # low = 800: the spec's e^(-rate low) underflows (0/0 as written); rate*width = 900: the
    # expm1(rate width) of the derived forms overflows (ratios of expm1 rewritten); rate = 1e-3: its
    # differences of exponentials cancel (cdf, density, dz/dwidth are exact after the rewrites).
    # dz/drate = (width expm1(rate (z - low))/expm1(rate width) - (z - low))/rate keeps a
    # cancellation of its own, ~1/(rate (width - (z - low))): 1e-6 there, not 1e-10
    _check(
        truncexp.TruncExponential,
        _exponential_cdf,
        [rate, low, width],
        lambda t: t[1],
        lambda t: t[1] + t[2],
        dtype,
        loose={0: 1e-6} if rate < 0.01 else None,
    )


@pytest.mark.parametrize(
    ("path", "rules"),
    [
        (NORMAL_SPEC, {"ndtr_difference", "window_survival", "exp_product", "exp_difference"}),
        (EXPONENTIAL_SPEC, {"exp_difference", "exp_product", "exp_expm1", "collect"}),
    ],
    ids=["truncnorm", "truncexp"],
)
def test_show_lists_the_rules_that_fired(path, rules):
    d = derive(load_spec_file(path)[0])
    assert rules <= set(d.rewrites)
    (line,) = [x for x in describe(d, width=100).splitlines() if x.startswith("rewrites: ")]
    assert line == "rewrites: " + ", ".join(d.rewrites)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["truncnorm", "truncexp"])
def test_triton_kernels_give_the_cpu_values(which, request):
    """The GPU backend on the rewritten formulas: the Triton family kernels (interpreter) against
    the numba kernels, at points 5 to 6 standard deviations out (truncnorm) and at rate·width =
    900 (truncexp, where the draws lie within 1 of low), in float64: log_prob, and the value and
    parameter gradients of the fused backward of dz/dθ."""
    built = request.getfixturevalue(which)
    cls = built.TruncNormal if which == "truncnorm" else built.TruncExponential
    module = sys.modules[cls.__module__]
    if which == "truncnorm":
        params = [0.0, 1.0, 5.0, 1.0]
        z = [5.0 + 1e-9, 5.001, 5.1, 5.5, 5.9, 6.0 - 1e-9]
    else:
        params = [30.0, 10.0, 30.0]
        z = [10.0 + 1e-12, 10.01, 10.1, 10.5, 12.0, 20.0]
    x = torch.tensor(z, dtype=torch.float64)
    tp = [torch.tensor([p], dtype=torch.float64) for p in params]
    P = np.array([params])
    log_prob = gpu.run_family_map(module.log_prob, x, tp, wide=True).numpy()
    want = cpu.run_map(module.log_prob, x.numpy(), P)
    assert np.isfinite(log_prob).all()
    np.testing.assert_array_equal(log_prob, want)
    g = torch.linspace(-1.0, 2.0, x.numel(), dtype=torch.float64)
    needs = (True,) * (1 + len(params))
    gv, gps = gpu.run_family_backward(
        module.implicit_grad, module.in_support, x, g, tp, needs, True
    )
    ref_v, ref_p = cpu.run_backward(
        module.implicit_grad, module.in_support, x.numpy(), g.numpy(), P, True
    )
    assert np.isfinite(gv.numpy()).all()
    np.testing.assert_array_equal(gv.numpy(), ref_v)
    for k, gp in enumerate(gps):
        assert math.isfinite(float(gp[0]))
        assert abs(float(gp[0]) - ref_p[k, 0]) <= 1e-13 * abs(ref_p[k, 0]) + 1e-300, k
