"""Chi2(df), torch's parameter name: F = P(df/2, z/2)."""

import sympy as sp

import irtgen
from irtgen.variates import standard_gamma

z = sp.Symbol("z", real=True)
df = sp.Symbol("df", positive=True)

Chi2 = irtgen.Distribution(
    name="Chi2",
    variable=z,
    params={df: "positive"},
    support=sp.Interval(0, sp.oo),  # closed at 0, as torch declares it (GreaterThanEq(0))
    cdf=sp.lowergamma(df / 2, z / 2) / sp.gamma(df / 2),
    sampler=2 * standard_gamma(df / 2),
    mean=df,
    variance=2 * df,
    entropy=df / 2 + sp.log(2) + sp.loggamma(df / 2) + (1 - df / 2) * sp.polygamma(0, df / 2),
    parent=("Gamma", {"concentration": df / 2, "rate": sp.Rational(1, 2)}),  # as torch's Chi2
    doc="Chi-squared distribution with df degrees of freedom.",
)
