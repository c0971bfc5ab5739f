"""Bad: the icdf -log(u)/rate inverts the survival function, not the CDF 1 - exp(-rate z)."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
rate = sp.Symbol("rate", positive=True)

Flipped = irtgen.Distribution(
    name="Flipped",
    variable=z,
    params={rate: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=1 - sp.exp(-rate * z),
    icdf=sp.Lambda(u, -sp.log(u) / rate),  # should be -log(1 - u)/rate
)
