"""Beta(concentration1, concentration0), torch's parameter names: F = I_z(c1, c0)."""

import sympy as sp

import irtgen
from irtgen.variates import beta_variate

z = sp.Symbol("z", real=True)
c1, c0 = sp.symbols("concentration1 concentration0", positive=True)

Beta = irtgen.Distribution(
    name="Beta",
    variable=z,
    params={c1: "positive", c0: "positive"},
    support=sp.Interval(0, 1),
    cdf=sp.betainc_regularized(c1, c0, 0, z),
    sampler=beta_variate(c1, c0),
    mean=c1 / (c1 + c0),
    # torch's convention: (a - 1)+ / ((a - 1)+ + (b - 1)+), NaN at a = b = 1 and where one is 1
    # and the other below; 1 where both are below 1 (the density is infinite at both ends)
    mode=sp.Piecewise(
        (1, (c1 < 1) & (c0 < 1)),
        (sp.Max(c1 - 1, 0) / (sp.Max(c1 - 1, 0) + sp.Max(c0 - 1, 0)), True),
    ),
    variance=c1 * c0 / ((c1 + c0) ** 2 * (c1 + c0 + 1)),
    entropy=sp.log(sp.beta(c1, c0))
    - (c1 - 1) * sp.polygamma(0, c1)
    - (c0 - 1) * sp.polygamma(0, c0)
    + (c1 + c0 - 2) * sp.polygamma(0, c1 + c0),
    doc="Beta distribution with shapes concentration1 (alpha) and concentration0 (beta).",
)
