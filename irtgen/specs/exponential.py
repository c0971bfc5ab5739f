"""Exponential(rate), torch's parameter name."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
rate = sp.Symbol("rate", positive=True)

Exponential = irtgen.Distribution(
    name="Exponential",
    variable=z,
    params={rate: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=1 - sp.exp(-rate * z),
    icdf=sp.Lambda(u, -sp.log(1 - u) / rate),
    mean=1 / rate,
    mode=sp.S.Zero,
    variance=1 / rate**2,
    entropy=1 - sp.log(rate),
    doc="Exponential distribution with rate rate.",
)
