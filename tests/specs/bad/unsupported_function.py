"""Bad (for irtgen): a valid CDF through Lambert's W, which irtgen cannot compute (no torch or
Triton implementation in irtgen.codegen.functions)."""

import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
rate = sp.Symbol("rate", positive=True)

Lambert = irtgen.Distribution(
    name="Lambert",
    variable=z,
    params={rate: "positive"},
    support=sp.Interval(0, sp.oo),
    cdf=1 - sp.exp(-sp.LambertW(rate * z)),
)
