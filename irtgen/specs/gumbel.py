"""Gumbel(loc, scale), torch's parameter names."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)

Gumbel = irtgen.Distribution(
    name="Gumbel",
    variable=z,
    params={loc: "real", scale: "positive"},
    support=sp.Interval(-sp.oo, sp.oo),
    cdf=sp.exp(-sp.exp(-(z - loc) / scale)),
    icdf=sp.Lambda(u, loc - scale * sp.log(-sp.log(u))),
    mean=loc + scale * sp.EulerGamma,
    mode=loc,
    variance=sp.pi**2 * scale**2 / 6,
    entropy=sp.log(scale) + sp.EulerGamma + 1,
    doc="Gumbel (type-I extreme value) distribution with location loc and scale scale.",
)
