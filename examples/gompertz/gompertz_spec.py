"""A Gompertz distribution declared by its CDF alone: no sampler, no density, no gradient.

irtgen derives the density and d z/d(alpha, beta), and samples by inverting the CDF numerically.
Build with:  irtgen build examples/gompertz/gompertz_spec.py -o examples/gompertz/build
"""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
alpha, beta = sp.symbols("alpha beta", positive=True)

Gompertz = irtgen.Distribution(
    name="Gompertz",
    variable=z,
    params={alpha: "positive", beta: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=1 - sp.exp(-alpha * (sp.exp(beta * z) - 1)),
)
