"""Bad: F = 2 z^k/(z^k + 2) tends to 2 as z -> oo. At z = oo it is oo/oo, and for small k it is
far from its limit even at z = 1e24, so SymPy's limit has to decide."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
k = sp.Symbol("k", positive=True)

Doubled = irtgen.Distribution(
    name="Doubled",
    variable=z,
    params={k: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=2 * z**k / (z**k + 2),  # should be z**k / (z**k + 2)
)
