"""Bad: an exponential CDF on the support [0, 1] only reaches 1 - exp(-rate) at z = 1."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
rate = sp.Symbol("rate", positive=True)

Truncated = irtgen.Distribution(
    name="Truncated",
    variable=z,
    params={rate: "positive"},
    support=sp.Interval(0, 1),  # should be Interval(0, oo), or the cdf renormalised
    cdf=1 - sp.exp(-rate * z),
)
