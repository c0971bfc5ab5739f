"""Weibull(scale, concentration), torch's parameter names and order."""

import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
scale, concentration = sp.symbols("scale concentration", positive=True)

Weibull = irtgen.Distribution(
    name="Weibull",
    variable=z,
    params={scale: "positive", concentration: "positive"},
    support=sp.Interval.open(0, sp.oo),
    cdf=1 - sp.exp(-((z / scale) ** concentration)),
    icdf=sp.Lambda(u, scale * (-sp.log(1 - u)) ** (1 / concentration)),
    mean=scale * sp.gamma(1 + 1 / concentration),
    variance=scale**2 * (sp.gamma(1 + 2 / concentration) - sp.gamma(1 + 1 / concentration) ** 2),
    entropy=sp.EulerGamma * (1 - 1 / concentration) + sp.log(scale / concentration) + 1,
    doc="Weibull distribution with scale scale and shape concentration.",
)
