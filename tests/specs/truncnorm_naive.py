"""A truncated normal as a user writes it: (Φ(z) - Φ(low))/(Φ(low + width) - Φ(low)) with Φ
through erf (tests/test_naive_specs.py: irtgen's rewrites make it accurate as written)."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)
low = sp.Symbol("low", real=True)
width = sp.Symbol("width", positive=True)


def Phi(x):
    return (1 + sp.erf((x - loc) / (scale * sp.sqrt(2)))) / 2


TruncNormal = irtgen.Distribution(
    name="TruncNormal",
    variable=z,
    params={loc: "real", scale: "positive", low: "real", width: "positive"},
    support=sp.Interval(low, low + width),
    cdf=(Phi(z) - Phi(low)) / (Phi(low + width) - Phi(low)),
)
