"""Bad: a triangular CDF whose first piece is divided by c^2 instead of c, so that it reaches 1
before the mode c and then drops: each piece increases, the whole does not."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
c = sp.Symbol("c", real=True)

Triangle = irtgen.Distribution(
    name="Triangle",
    variable=z,
    params={c: "interval(0, 1)"},
    support=sp.Interval(0, 1),
    cdf=sp.Piecewise((z**2 / c**2, z < c), (1 - (1 - z) ** 2 / (1 - c), True)),  # z**2 / c
)
