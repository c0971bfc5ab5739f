"""A doubly truncated exponential as a user writes it: (e^(-λ low) - e^(-λ z))/(e^(-λ low) -
e^(-λ (low + width))), which underflows to 0/0 for λ low > 745 and cancels for small λ width
(tests/test_naive_specs.py)."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
rate = sp.Symbol("rate", positive=True)
low = sp.Symbol("low", real=True)
width = sp.Symbol("width", positive=True)

TruncExponential = irtgen.Distribution(
    name="TruncExponential",
    variable=z,
    params={rate: "positive", low: "real", width: "positive"},
    support=sp.Interval(low, low + width),
    cdf=(sp.exp(-rate * low) - sp.exp(-rate * z))
    / (sp.exp(-rate * low) - sp.exp(-rate * (low + width))),
)
