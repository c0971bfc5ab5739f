"""Bad: F = z + c z (1 - z) on [0, 1] is a CDF only for -1 <= c <= 1, but c is declared real."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
c = sp.Symbol("c", real=True)

Tilted = irtgen.Distribution(
    name="Tilted",
    variable=z,
    params={c: "real"},  # should be "interval(-1, 1)"
    support=sp.Interval(0, 1),
    cdf=z + c * z * (1 - z),
)
