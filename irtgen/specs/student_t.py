"""StudentT(df, loc, scale), torch's parameter names."""

import sympy as sp

import irtgen
from irtgen.functions import betaln, student_t_cdf
from irtgen.variates import student_t_variate

z = sp.Symbol("z", real=True)
df = sp.Symbol("df", positive=True)
loc = sp.Symbol("loc", real=True)
scale = sp.Symbol("scale", positive=True)

StudentT = irtgen.Distribution(
    name="StudentT",
    variable=z,
    params={df: "positive", loc: "real", scale: "positive"},
    support=sp.Interval(-sp.oo, sp.oo),
    cdf=student_t_cdf(df, (z - loc) / scale),
    sampler=loc + scale * student_t_variate(df),
    defaults={loc: 0.0, scale: 1.0},
    mean=sp.Piecewise((loc, df > 1), (sp.nan, True)),
    mode=loc,
    variance=sp.Piecewise((scale**2 * df / (df - 2), df > 2), (sp.oo, df > 1), (sp.nan, True)),
    entropy=(df + 1) / 2 * (sp.polygamma(0, (df + 1) / 2) - sp.polygamma(0, df / 2))
    + sp.log(df) / 2
    + betaln(df / 2, sp.S.Half)
    + sp.log(scale),
    doc="Student's t distribution with df degrees of freedom, location loc and scale scale.",
)
