"""The table of built-in families the tests run over.

Each case has an *independent* mpmath CDF (written here, not taken from the spec), an mpmath
quantile function to place test points at chosen probabilities, parameter grids that include
small and large shapes, and torch's own class where torch has the family.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import mpmath as mp
import torch
from scipy import stats
from torch.distributions import constraints

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
    # the targets for families whose CDF needs incomplete gamma/beta functions
    special: bool = False
    # tolerances {dtype: max relative error} where the family cannot meet the table's
    tol: dict | None = None
    # points where dz/dθ is ill-conditioned in z itself (a root of the gradient that the binary
    # z only approximates): no relative accuracy is possible there, so they are left out
    ill_conditioned: callable | None = None

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


def _ppf(dist):
    """A quantile function from scipy (it only places test points; references are mpmath)."""
    return lambda u, *p: mp.mpf(float(dist(float(u), *map(float, p))))


def _ibeta_lower(a, b, x):
    """I_x(a, b) = x^a (1-x)^b/(a B(a, b)) 2F1(a+b, 1; a+1; x): positive terms, so it converges
    where mpmath.betainc's own series gives up (a, b ~ 1e4 near the mode)."""
    log_front = (
        a * mp.log(x) + b * mp.log1p(-x) - mp.log(a) - mp.loggamma(a) - mp.loggamma(b)
    ) + mp.loggamma(a + b)
    return mp.exp(log_front) * mp.hyp2f1(a + b, 1, a + 1, x, maxterms=10**6)


def mp_betainc(a, b, x, y=None):
    """Regularized incomplete beta I_x(a, b) at 40 digits, from the side where it is small;
    y = 1 - x if given (formed without cancellation by the caller)."""
    y = 1 - x if y is None else y
    if x <= 0:
        return mp.mpf(0)
    if y <= 0:
        return mp.mpf(1)
    if x <= a / (a + b):
        return _ibeta_lower(a, b, x)
    return 1 - _ibeta_lower(b, a, y)


def _student_t_cdf(z, df, loc, scale):
    t = (z - loc) / scale
    t2 = t * t
    # x = df/(df + t²) and 1 - x = t²/(df + t²), each formed without cancellation
    half = mp_betainc(df / 2, mp.mpf(1) / 2, df / (df + t2), t2 / (df + t2)) / 2
    return half if t < 0 else 1 - half


CASES += [
    Case(
        "Gamma",
        D.Gamma,
        lambda z, a, rate: mp.gammainc(a, 0, rate * z, regularized=True),
        _ppf(lambda u, a, rate: stats.gamma.ppf(u, a, scale=1 / rate)),
        [(1.0, 1.0), (0.01, 1.0), (0.3, 2.0), (4.5, 0.5), (100.0, 3.0), (1e4, 1.0)],
        torch.distributions.Gamma,
        special=True,
    ),
    Case(
        "Chi2",
        D.Chi2,
        lambda z, df: mp.gammainc(df / 2, 0, z / 2, regularized=True),
        _ppf(lambda u, df: stats.chi2.ppf(u, df)),
        [(1.0,), (0.02,), (7.0,), (3000.0,)],
        torch.distributions.Chi2,
        special=True,
    ),
    Case(
        "Beta",
        D.Beta,
        lambda z, a, b: mp_betainc(a, b, z),
        _ppf(lambda u, a, b: stats.beta.ppf(u, a, b)),
        [
            (2.0, 5.0),
            (0.5, 0.5),
            (0.01, 0.01),
            (0.01, 1e4),
            (1e4, 0.01),
            (300.0, 200.0),
            (1e4, 1e4),
        ],
        torch.distributions.Beta,
        special=True,
    ),
    Case(
        "StudentT",
        D.StudentT,
        _student_t_cdf,
        _ppf(lambda u, df, loc, scale: stats.t.ppf(u, df, loc=loc, scale=scale)),
        [
            (1.0, 0.0, 1.0),
            (0.5, 1.0, 2.0),
            (0.05, 0.0, 1.0),
            (4.0, -2.0, 0.5),
            (100.0, 0.0, 1.0),
            (1e4, 3.0, 10.0),
        ],
        torch.distributions.StudentT,
        special=True,
    ),
    Case(
        "LogNormal",
        D.LogNormal,
        lambda z, loc, scale: mp.ncdf((mp.log(z) - loc) / scale),
        lambda u, loc, scale: mp.exp(_normal_q(u, loc, scale)),
        # grid[1] (the backend-agreement and sampler tests) has a moderate scale: at scale 0.05
        # the float32 loc-gradient of log_prob sums ±40-sized terms to ~2, and that sum's
        # rounding, not either backend, decides its last digits
        [(0.0, 1.0), (-1.0, 3.0), (2.0, 0.05)],
        torch.distributions.LogNormal,
        # dz/dscale = z (log z - loc)/scale: at the median log z - loc is the rounding of z
        # (no other grid point is within 1e-6 of it)
        ill_conditioned=lambda z, loc, scale: abs(mp.log(z) - loc) < 1e-6 * max(1, abs(loc)),
    ),
    Case(
        "HalfNormal",
        D.HalfNormal,
        lambda z, scale: mp.erf(z / (scale * mp.sqrt(2))),
        lambda u, scale: scale * mp.sqrt(2) * mp.erfinv(u),
        [(1.0,), (0.01,), (300.0,)],
        torch.distributions.HalfNormal,
    ),
    Case(
        "InverseGamma",
        D.InverseGamma,
        lambda z, a, rate: mp.gammainc(a, rate / z, mp.inf, regularized=True),
        _ppf(lambda u, a, rate: stats.invgamma.ppf(u, a, scale=rate)),
        [(3.0, 1.0), (0.5, 2.0), (0.05, 1.0), (1e3, 5.0)],
        torch.distributions.InverseGamma,
        special=True,
    ),
]

IDS = [c.name for c in CASES]
UNIT_SUPPORT = {"Kumaraswamy", "Beta"}
POSITIVE_SUPPORT = {
    "Weibull",
    "Exponential",
    "Gamma",
    "Chi2",
    "LogNormal",
    "HalfNormal",
    "InverseGamma",
}


def derivative(f, x):
    """f'(x) by mpmath, through log|x| (a step relative to x): tiny arguments (z = 1e-200 in a
    Gamma tail) are not stepped across 0, and huge ones (t = -1e120 for Student-t with df =
    0.05) get a step that changes f."""
    if x > 0:
        return mp.diff(lambda s: f(mp.exp(s)), mp.log(x)) / x
    if x < 0:
        return mp.diff(lambda s: f(-mp.exp(s)), mp.log(-x)) / x
    return mp.diff(f, x)


def reference_implicit(case: Case, z, params):
    """dz/dθ_i = -(∂F/∂θ_i)/(∂F/∂z) by mpmath differentiation at the exact binary inputs
    (cached: the backends and tests share points, and incomplete-beta references are slow)."""
    return list(_reference_implicit(case.name, float(z), tuple(float(p) for p in params)))


@functools.cache
def _reference_implicit(name: str, z: float, params: tuple):
    case = next(c for c in CASES if c.name == name)
    with mp.workdps(40):
        return tuple(_implicit(case, z, params))


def _implicit(case, z, params):
    z = mp.mpf(z)
    params = [mp.mpf(p) for p in params]
    q = derivative(lambda t: case.cdf(t, *params), z)
    out = []
    for i in range(len(params)):

        def f(t, i=i):
            p = list(params)
            p[i] = t
            return case.cdf(z, *p)

        name = case.param_names[i]
        if case.cls.arg_constraints[name] is constraints.real:
            # a location: F changes on the scale of |z - loc|, not of |loc| (which may be 0)
            h = max(1, abs(z), abs(params[i]))
            d = mp.diff(lambda s, f=f, i=i, h=h: f(params[i] + h * s), 0) / h
        else:
            d = derivative(f, params[i])
        out.append(-d / q)
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
                if abs(z) == float("inf"):
                    continue  # outside the dtype's range
                if case.name in UNIT_SUPPORT and not (0 < z < 1):
                    continue  # rounded onto an end of the support
                if case.name in POSITIVE_SUPPORT and not z > 0:
                    continue
                if case.ill_conditioned is not None and case.ill_conditioned(mp.mpf(z), *p_dt):
                    continue
                out.append((z, p_dt))
            if case.kink is not None:
                out.append((float(case.kink(*p_dt)), p_dt))
    return out
