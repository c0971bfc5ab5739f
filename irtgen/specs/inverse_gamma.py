"""InverseGamma(concentration, rate), torch's parameter names: 1/z ~ Gamma(concentration, rate),
F = Q(concentration, rate/z)."""

import sympy as sp

import irtgen
from irtgen.variates import standard_gamma

z = sp.Symbol("z", real=True)
concentration, rate = sp.symbols("concentration rate", positive=True)

InverseGamma = irtgen.Distribution(
    name="InverseGamma",
    variable=z,
    params={concentration: "positive", rate: "positive"},
    support=sp.Interval.open(0, sp.oo),
    cdf=sp.uppergamma(concentration, rate / z) / sp.gamma(concentration),
    sampler=rate / standard_gamma(concentration),
    mean=sp.Piecewise((rate / (concentration - 1), concentration > 1), (sp.oo, True)),
    variance=sp.Piecewise(
        (rate**2 / ((concentration - 1) ** 2 * (concentration - 2)), concentration > 2),
        (sp.oo, True),
    ),
    entropy=concentration
    + sp.log(rate)
    + sp.loggamma(concentration)
    - (1 + concentration) * sp.polygamma(0, concentration),
    doc="Inverse-gamma distribution: 1/z is Gamma(concentration, rate).",
)
