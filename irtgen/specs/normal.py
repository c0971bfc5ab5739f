"""Normal(loc, scale), torch's parameter names."""

import sympy as sp

import irtgen
from irtgen.variates import standard_normal

z, u = sp.symbols("z u", real=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)

Normal = irtgen.Distribution(
    name="Normal",
    variable=z,
    params={loc: "real", scale: "positive"},
    support=sp.Interval(-sp.oo, sp.oo),
    cdf=(1 + sp.erf((z - loc) / (scale * sp.sqrt(2)))) / 2,
    icdf=sp.Lambda(u, loc + scale * sp.sqrt(2) * sp.erfinv(2 * u - 1)),
    # draws: torch.randn / Box-Muller is several times faster than ndtri(uniform)
    sampler=loc + scale * standard_normal(),
    mean=loc,
    variance=scale**2,
    entropy=sp.log(scale) + sp.log(2 * sp.pi * sp.E) / 2,
    doc="Normal (Gaussian) distribution with mean loc and standard deviation scale.",
)
