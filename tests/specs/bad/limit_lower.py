"""Bad: an exponential CDF declared on the whole real line tends to -oo as z -> -oo."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
rate = sp.Symbol("rate", positive=True)

WholeLine = irtgen.Distribution(
    name="WholeLine",
    variable=z,
    params={rate: "positive"},
    support=sp.Interval(-sp.oo, sp.oo),  # should be Interval(0, oo)
    cdf=1 - sp.exp(-rate * z),
)
