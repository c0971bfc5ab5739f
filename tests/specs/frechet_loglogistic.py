"""Two distributions in one spec file, both declared by their CDF only."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
alpha = sp.Symbol("alpha", positive=True)
s = sp.Symbol("s", positive=True)
lam = sp.Symbol("lam", positive=True)
k = sp.Symbol("k", positive=True)

Frechet = irtgen.Distribution(
    name="Frechet",
    variable=z,
    params={alpha: "positive", s: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=sp.exp(-((z / s) ** (-alpha))),
)

LogLogistic = irtgen.Distribution(
    name="LogLogistic",
    variable=z,
    params={lam: "positive", k: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=1 / (1 + (z / lam) ** (-k)),
)
