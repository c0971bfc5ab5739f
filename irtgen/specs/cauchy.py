"""Cauchy(loc, scale), torch's parameter names."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)

Cauchy = irtgen.Distribution(
    name="Cauchy",
    variable=z,
    params={loc: "real", scale: "positive"},
    support=sp.Interval(-sp.oo, sp.oo),
    cdf=sp.Rational(1, 2) + sp.atan((z - loc) / scale) / sp.pi,
    icdf=sp.Lambda(u, loc + scale * sp.tan(sp.pi * (u - sp.Rational(1, 2)))),
    mean=sp.nan,
    mode=loc,
    variance=sp.oo,
    entropy=sp.log(4 * sp.pi * scale),
    doc="Cauchy (Lorentz) distribution with location loc and scale scale; no mean or variance.",
)
