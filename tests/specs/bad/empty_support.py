"""Bad: Uniform(low, high) with both ends "real" allows low >= high (an empty support)."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
low = sp.Symbol("low", real=True)
high = sp.Symbol("high", real=True)

Uniform = irtgen.Distribution(
    name="Uniform",
    variable=z,
    params={low: "real", high: "real"},
    support=sp.Interval(low, high),  # write Interval(low, low + width), width positive
    cdf=(z - low) / (high - low),
)
