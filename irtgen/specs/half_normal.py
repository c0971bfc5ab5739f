"""HalfNormal(scale), torch's parameter name: |x| for x ~ Normal(0, scale)."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
scale = sp.Symbol("scale", positive=True)

HalfNormal = irtgen.Distribution(
    name="HalfNormal",
    variable=z,
    params={scale: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=sp.erf(z / (scale * sp.sqrt(2))),
    icdf=sp.Lambda(u, scale * sp.sqrt(2) * sp.erfinv(u)),
    mean=scale * sp.sqrt(2 / sp.pi),
    variance=scale**2 * (1 - 2 / sp.pi),
    entropy=sp.log(scale * sp.sqrt(sp.pi / 2)) + sp.Rational(1, 2),
    doc="Half-normal distribution: the absolute value of a Normal(0, scale) variable.",
)
