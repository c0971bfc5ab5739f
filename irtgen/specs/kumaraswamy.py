"""Kumaraswamy(concentration1, concentration0), torch's parameter names and order."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
a = sp.Symbol("concentration1", positive=True)
b = sp.Symbol("concentration0", positive=True)


def _moment(n):  # E[z^n] = b B(1 + n/a, b)
    return b * sp.gamma(1 + n / a) * sp.gamma(b) / sp.gamma(1 + n / a + b)


Kumaraswamy = irtgen.Distribution(
    name="Kumaraswamy",
    variable=z,
    params={a: "positive", b: "positive"},
    support=sp.Interval(0, 1),
    cdf=1 - (1 - z**a) ** b,
    icdf=sp.Lambda(u, (1 - (1 - u) ** (1 / b)) ** (1 / a)),
    mean=_moment(1),
    # NaN where either shape is below 1 (the density is infinite at an end), as torch intends;
    # torch 2.13's formula gives NaN for every shape
    mode=sp.Piecewise((sp.nan, (a < 1) | (b < 1)), (((a - 1) / (a * b - 1)) ** (1 / a), True)),
    variance=_moment(2) - _moment(1) ** 2,
    entropy=(1 - 1 / b) + (1 - 1 / a) * (sp.polygamma(0, b + 1) + sp.EulerGamma) - sp.log(a * b),
    doc="Kumaraswamy distribution on [0, 1] with shapes concentration1 (a) and concentration0 (b).",
)
