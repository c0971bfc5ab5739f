"""Gamma(concentration, rate), torch's parameter names: F = P(concentration, rate z)."""

import sympy as sp

import irtgen
from irtgen.variates import standard_gamma

z = sp.Symbol("z", real=True)
concentration, rate = sp.symbols("concentration rate", positive=True)

Gamma = irtgen.Distribution(
    name="Gamma",
    variable=z,
    params={concentration: "positive", rate: "positive"},
    support=sp.Interval(0, sp.oo),  # closed at 0, as torch declares it (GreaterThanEq(0))
    cdf=sp.lowergamma(concentration, rate * z) / sp.gamma(concentration),
    sampler=standard_gamma(concentration) / rate,
    mean=concentration / rate,
    variance=concentration / rate**2,
    entropy=concentration
    - sp.log(rate)
    + sp.loggamma(concentration)
    + (1 - concentration) * sp.polygamma(0, concentration),
    doc="Gamma distribution with shape concentration and inverse scale rate.",
)
