"""Bad: the cdf uses a symbol q that is neither the variable nor a declared parameter."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
rate = sp.Symbol("rate", positive=True)
q = sp.Symbol("q", positive=True)

Stray = irtgen.Distribution(
    name="Stray",
    variable=z,
    params={rate: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=1 - sp.exp(-rate * q * z),
)
