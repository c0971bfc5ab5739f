"""Gompertz(eta, b), declared by its CDF only (no icdf: sampled by numeric inversion)."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
eta = sp.Symbol("eta", positive=True)
b = sp.Symbol("b", positive=True)

Gompertz = irtgen.Distribution(
    name="Gompertz",
    variable=z,
    params={eta: "positive", b: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=1 - sp.exp(-eta * (sp.exp(b * z) - 1)),
)
