"""Test points and mpmath references (40 digits) of the gamma-function special functions, for
tests/scalar/test_gamma.py.

Grid: a log-spaced in [1e-3, 1e5] (4 per decade); x at the Gamma(a, 1) quantiles QUANTILES
(solved with mpmath), at 1e-300, 1e-20 and 1e3 (a + 1). The subset (every third a) still
reaches every regime. The reference ratio is mpmath's derivative in a of whichever of P, Q is
smaller, over the exact density.
"""

from __future__ import annotations

import functools
import math

import mpmath as mp
import numpy as np
import torch
from scipy import special as sps

QUANTILES = (1e-10, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6, 1 - 1e-10)
A_GRID = tuple(10.0 ** (k / 4) for k in range(-12, 21))
SUBSET_A = A_GRID[::3]  # 1e-3, 0.0056, 0.032, ..., 1e5: every regime, 11 values
FUNCTIONS = ("gammainc", "gammaincc", "log_gamma_density", "gammainc_da_ratio")
SMALLEST = {torch.float64: 1e-300, torch.float32: 1.2e-38}  # below: not compared (denormal)

INF, NAN = math.inf, math.nan
# (a, x, P, Q, ratio, log density)
EDGES = [
    (1.0, 0.0, 0.0, 1.0, 0.0, 0.0),
    (0.5, 0.0, 0.0, 1.0, 0.0, INF),
    (2.0, 0.0, 0.0, 1.0, 0.0, -INF),
    (2.0, INF, 1.0, 0.0, -INF, -INF),
    (0.0, 1.0, NAN, NAN, NAN, NAN),
    (-1.0, 1.0, NAN, NAN, NAN, NAN),
    (INF, 1.0, NAN, NAN, NAN, NAN),
    (NAN, 1.0, NAN, NAN, NAN, NAN),
    (1.0, NAN, NAN, NAN, NAN, NAN),
    (1.0, -1.0, NAN, NAN, NAN, NAN),
    (3.0, -INF, NAN, NAN, NAN, NAN),
]

EDGE_COLUMNS = ("gammainc", "gammaincc", "gammainc_da_ratio", "log_gamma_density")

# -- mpmath references ------------------------------------------------------------------------


def _lower(a, x):
    return mp.gammainc(a, 0, x, regularized=True)


def _upper(a, x):
    return mp.gammainc(a, x, mp.inf, regularized=True)


def _p(a, x):
    return 1 - _upper(a, x) if x > a else _lower(a, x)


def _q(a, x):
    return _upper(a, x) if x > a else 1 - _lower(a, x)


def _log_density(a, x):
    return (a - 1) * mp.log(x) - x - mp.loggamma(a)


def _reference(a: float, x: float) -> tuple[float, float, float, float]:
    """(P, Q, log density, ratio) at 40 digits, rounded to float64."""
    with mp.workdps(40):
        a, x = mp.mpf(a), mp.mpf(x)
        p, q, logf = _p(a, x), _q(a, x), _log_density(a, x)
        if p < q:
            dp = mp.diff(lambda s: _p(s, x), a)
        else:
            dp = -mp.diff(lambda s: _q(s, x), a)
        return float(p), float(q), float(logf), float(dp / mp.exp(logf))


def _quantile(a: float, level: float) -> float:
    """x with P(a, x) = level: Newton's method in log x on log P (or log Q above the median)."""
    with mp.workdps(40):
        am = mp.mpf(a)
        lower = level <= 0.5
        start = sps.gammaincinv(a, level) if lower else sps.gammainccinv(a, 1 - level)
        if start > 0:
            u = mp.log(start)
        else:  # tiny a: P ~ x^a / Gamma(a + 1)
            u = (mp.log(level) + mp.loggamma(am + 1)) / am
        target = mp.log(level) if lower else mp.log(1 - mp.mpf(level))
        for _ in range(50):
            x = mp.exp(u)
            value = _p(am, x) if lower else _q(am, x)
            slope = x * mp.exp(_log_density(am, x)) / value
            step = (mp.log(value) - target) / (slope if lower else -slope)
            u -= max(min(step, 2), -2)
            if abs(step) < 1e-25:
                break
        return float(mp.exp(u))


def _grid_points(a_values) -> list[tuple[float, float]]:
    points = []
    for a in a_values:
        xs = [_quantile(a, q) for q in QUANTILES] + [1e-300, 1e-20, 1e3 * (a + 1)]
        points += [(a, x) for x in xs if 0 < x < INF]  # tiny-a lower quantiles underflow
    return points


@functools.cache
def grid(dtype: torch.dtype, subset: bool = False):
    """(a, x, {function: reference}) on the grid, inputs rounded to dtype (float32: the
    references at the rounded inputs, x below float32's smallest normal number left out)."""
    if dtype == torch.float32:
        a64, x64, _ = grid(torch.float64, subset)
        a, x = a64.to(torch.float32), x64.to(torch.float32)
        keep = x >= SMALLEST[torch.float32]
        points = sorted(set(zip(a[keep].tolist(), x[keep].tolist(), strict=True)))
    else:
        points = _grid_points(SUBSET_A if subset else A_GRID)
    refs = np.array([_reference(a, x) for a, x in points])
    a = torch.tensor([p[0] for p in points], dtype=dtype)
    x = torch.tensor([p[1] for p in points], dtype=dtype)
    names = ("gammainc", "gammaincc", "log_gamma_density", "gammainc_da_ratio")
    return a, x, {n: torch.tensor(refs[:, i]) for i, n in enumerate(names)}


def errors(name: str, value: torch.Tensor, ref: torch.Tensor, dtype) -> torch.Tensor:
    """Relative errors (log density: relative to max(1, |ref|)) where the reference is a normal
    number of dtype; NaN or inf where a finite value was expected counts as inf."""
    value = value.to(torch.float64)
    limit = torch.finfo(dtype).max
    if name == "log_gamma_density":
        scale = ref.abs().clamp_min(1.0)
        keep = ref.abs() < limit
    else:
        scale = ref.abs()
        keep = (scale >= SMALLEST[dtype]) & (scale < limit)
    err = ((value - ref).abs() / scale)[keep]
    return torch.where(torch.isfinite(err), err, INF)


def max_error(name, value, ref, dtype) -> float:
    return errors(name, value, ref, dtype).max().item()


def sweep(n_a, n_x):
    """a log-spaced in [1e-4, 1e5] times x log-spaced in [1e-300, 1e300], broadcast."""
    a = torch.logspace(-4, 5, n_a, dtype=torch.float64)[:, None]
    x = torch.logspace(-300, 300, n_x, dtype=torch.float64)[None, :]
    return torch.broadcast_tensors(a, x)


# lgamma / digamma test points: both sides of the zeros of lgamma (1, 2) and digamma (1.4616...),
# small, large, and negative non-integers
_ROOT = 1.4616321449683622
_STEPS = np.logspace(-15, -1, 8)
GAMMA_X = np.r_[
    np.logspace(-300, -1, 12),
    np.linspace(0.05, 12.0, 60),
    np.logspace(1, 305, 12),
    1 + _STEPS,
    1 - _STEPS,
    2 + _STEPS,
    2 - _STEPS,
    _ROOT * (1 + _STEPS),
    _ROOT * (1 - _STEPS),
    -np.linspace(0.05, 30.5, 24) + 1e-3,
]


@functools.cache
def gamma_references():
    """(lgamma, digamma) at GAMMA_X, float64 tensors."""
    with mp.workdps(40):
        xs = [mp.mpf(float(v)) for v in GAMMA_X]
        lg = [float(mp.log(abs(mp.gamma(v)))) for v in xs]
        dg = [float(mp.digamma(v)) for v in xs]
    return torch.tensor(lg, dtype=torch.float64), torch.tensor(dg, dtype=torch.float64)


def gamma_errors(value, ref, x):
    """Relative error for x > 0; relative to max(1, |ref|) for x < 0 (lgamma and digamma have
    zeros there that no reflection formula resolves in relative terms)."""
    value = value.to(torch.float64)
    scale = torch.where(x > 0, ref.abs(), ref.abs().clamp_min(1.0))
    err = torch.where(value == ref, 0.0, (value - ref).abs() / scale)
    return torch.where(torch.isfinite(err), err, INF)
