"""Laplace(loc, scale), torch's parameter names. The CDF has a kink at loc."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)

Laplace = irtgen.Distribution(
    name="Laplace",
    variable=z,
    params={loc: "real", scale: "positive"},
    support=sp.Interval(-sp.oo, sp.oo),
    cdf=sp.Rational(1, 2) + sp.sign(z - loc) * (1 - sp.exp(-sp.Abs(z - loc) / scale)) / 2,
    icdf=sp.Lambda(
        u,
        sp.Piecewise(
            (loc + scale * sp.log(2 * u), u < sp.Rational(1, 2)),
            (loc - scale * sp.log(2 - 2 * u), True),
        ),
    ),
    mean=loc,
    mode=loc,
    variance=2 * scale**2,
    entropy=1 + sp.log(2 * scale),
    doc="Laplace (double exponential) distribution with location loc and scale scale.",
)
