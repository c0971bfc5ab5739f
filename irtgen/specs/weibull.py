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
    # 0 for concentration <= 1, where the density decreases from z = 0 (torch 2.13's formula
    # gives scale * (-1)^2 = scale at concentration 1/2)
    mode=sp.Piecewise(
        (scale * ((concentration - 1) / concentration) ** (1 / concentration), concentration > 1),
        (0, True),
    ),
    variance=scale**2 * (sp.gamma(1 + 2 / concentration) - sp.gamma(1 + 1 / concentration) ** 2),
    entropy=sp.EulerGamma * (1 - 1 / concentration) + sp.log(scale / concentration) + 1,
    doc="Weibull distribution with scale scale and shape concentration.",
)
