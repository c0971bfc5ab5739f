"""Logistic(loc, scale) (torch has no Logistic distribution)."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)

Logistic = irtgen.Distribution(
    name="Logistic",
    variable=z,
    params={loc: "real", scale: "positive"},
    support=sp.Interval(-sp.oo, sp.oo),
    cdf=1 / (1 + sp.exp(-(z - loc) / scale)),
    icdf=sp.Lambda(u, loc + scale * (sp.log(u) - sp.log(1 - u))),
    mean=loc,
    mode=loc,
    variance=scale**2 * sp.pi**2 / 3,
    entropy=sp.log(scale) + 2,
    doc="Logistic distribution with location loc and scale scale.",
)
