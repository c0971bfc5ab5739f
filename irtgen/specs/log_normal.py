"""LogNormal(loc, scale), torch's parameter names: log z ~ Normal(loc, scale)."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)

LogNormal = irtgen.Distribution(
    name="LogNormal",
    variable=z,
    params={loc: "real", scale: "positive"},
    support=sp.Interval.open(0, sp.oo),
    cdf=(1 + sp.erf((sp.log(z) - loc) / (scale * sp.sqrt(2)))) / 2,
    icdf=sp.Lambda(u, sp.exp(loc + scale * sp.sqrt(2) * sp.erfinv(2 * u - 1))),
    mean=sp.exp(loc + scale**2 / 2),
    mode=sp.exp(loc - scale**2),
    variance=(sp.exp(scale**2) - 1) * sp.exp(2 * loc + scale**2),
    entropy=loc + sp.log(scale) + sp.log(2 * sp.pi * sp.E) / 2,
    doc="Log-normal distribution: the exponential of a Normal(loc, scale) variable.",
)
