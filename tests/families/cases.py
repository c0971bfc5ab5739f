"""The table of built-in families the tests run over.

Each case has an *independent* mpmath CDF (written here, not taken from the spec), an mpmath
quantile function to place test points at chosen probabilities, parameter grids that include
small and large shapes, and torch's own class where torch has the family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mpmath as mp
import torch

import irtgen.distributions as D

QUANTILES = [1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6]


@dataclass
class Case:
    name: str
    cls: type
    cdf: callable  # mpmath F(z, *params)
    quantile: callable  # mpmath F^-1(u, *params)
    grid: list  # parameter tuples
    torch_cls: type | None = None
    kink: callable | None = None  # z of a kink, for piecewise CDFs
    extras: dict = field(default_factory=dict)

    @property
    def param_names(self):
        return self.cls.family.param_names


def _normal_q(u, loc, scale):
    return loc + scale * mp.sqrt(2) * mp.erfinv(2 * u - 1)


def _laplace_cdf(z, loc, scale):
    return mp.exp((z - loc) / scale) / 2 if z < loc else 1 - mp.exp(-(z - loc) / scale) / 2


def _laplace_q(u, loc, scale):
    return loc + scale * mp.log(2 * u) if u < 0.5 else loc - scale * mp.log(2 - 2 * u)


CASES = [
    Case(
        "Normal",
        D.Normal,
        lambda z, loc, scale: mp.ncdf((z - loc) / scale),
        _normal_q,
        [(0.0, 1.0), (-3.0, 0.01), (250.0, 40.0), (1.5, 1e-3)],
        torch.distributions.Normal,
    ),
    Case(
        "Laplace",
        D.Laplace,
        _laplace_cdf,
        _laplace_q,
        [(0.0, 1.0), (-2.0, 0.05), (10.0, 30.0)],
        torch.distributions.Laplace,
        kink=lambda loc, scale: loc,
    ),
    Case(
        "Logistic",
        D.Logistic,
        lambda z, loc, scale: 1 / (1 + mp.exp(-(z - loc) / scale)),
        lambda u, loc, scale: loc + scale * (mp.log(u) - mp.log(1 - u)),
        [(0.0, 1.0), (3.0, 0.02), (-40.0, 15.0)],
    ),
    Case(
        "Gumbel",
        D.Gumbel,
        lambda z, loc, scale: mp.exp(-mp.exp(-(z - loc) / scale)),
        lambda u, loc, scale: loc - scale * mp.log(-mp.log(u)),
        [(0.0, 1.0), (5.0, 0.1), (-20.0, 8.0)],
        torch.distributions.Gumbel,
    ),
    Case(
        "Weibull",
        D.Weibull,
        lambda z, scale, k: 1 - mp.exp(-((z / scale) ** k)),
        lambda u, scale, k: scale * (-mp.log(1 - u)) ** (1 / k),
        [(1.0, 1.0), (2.0, 0.2), (0.5, 5.0), (30.0, 30.0)],
        torch.distributions.Weibull,
    ),
    Case(
        "Exponential",
        D.Exponential,
        lambda z, rate: 1 - mp.exp(-rate * z),
        lambda u, rate: -mp.log(1 - u) / rate,
        [(1.0,), (0.01,), (300.0,)],
        torch.distributions.Exponential,
    ),
    Case(
        "Cauchy",
        D.Cauchy,
        lambda z, loc, scale: mp.mpf(1) / 2 + mp.atan((z - loc) / scale) / mp.pi,
        lambda u, loc, scale: loc + scale * mp.tan(mp.pi * (u - mp.mpf(1) / 2)),
        [(0.0, 1.0), (2.0, 0.05), (-10.0, 7.0)],
        torch.distributions.Cauchy,
    ),
    Case(
        "Kumaraswamy",
        D.Kumaraswamy,
        lambda z, a, b: 1 - (1 - z**a) ** b,
        lambda u, a, b: (1 - (1 - u) ** (1 / b)) ** (1 / a),
        [(1.0, 1.0), (0.3, 0.5), (5.0, 2.0), (2.0, 20.0), (0.5, 8.0)],
        torch.distributions.Kumaraswamy,
    ),
]

IDS = [c.name for c in CASES]


def reference_implicit(case: Case, z, params):
    """dz/dθ_i = -(∂F/∂θ_i)/(∂F/∂z) by mpmath differentiation at the exact binary inputs."""
    z = mp.mpf(z)
    params = [mp.mpf(p) for p in params]
    q = mp.diff(lambda t: case.cdf(t, *params), z)
    out = []
    for i in range(len(params)):

        def f(t, i=i):
            p = list(params)
            p[i] = t
            return case.cdf(z, *p)

        out.append(-mp.diff(f, params[i]) / q)
    return out


def points(case: Case, dtype: torch.dtype):
    """(z, params) test points at QUANTILES for every grid entry, rounded to dtype.

    Points whose z rounds onto the edge of the support (where the gradient is 0/0) are skipped.
    """
    out = []
    with mp.workdps(40):
        for params in case.grid:
            p_dt = [float(torch.tensor(p, dtype=dtype)) for p in params]
            for u in QUANTILES:
                zq = case.quantile(mp.mpf(u), *[mp.mpf(p) for p in p_dt])
                z = float(torch.tensor(float(zq), dtype=dtype))
                if case.name == "Kumaraswamy" and not (0 < z < 1):
                    continue
                if case.name in ("Weibull", "Exponential") and not z > 0:
                    continue
                out.append((z, p_dt))
            if case.kink is not None:
                out.append((float(case.kink(*p_dt)), p_dt))
    return out
