"""``tl`` for plain Python: the scalar sources evaluated one element at a time on NumPy scalars.

The build's accuracy audit (irtgen.audit) runs a generated family's formulas at a few hundred
points, in float64 and in float32, without compiling a kernel: bound to this module, a scalar
function runs in the interpreter on ``numpy.float64`` or ``numpy.float32`` values. Arithmetic
keeps the dtype of its operands (NumPy's rule for a Python float constant next to a float32 is
Triton's: the constant is float32), and every primitive has Triton's meaning on one element
(IEEE results, never an exception: 1/0 is inf, log(-1) is NaN). This is the same source that
numba and Triton compile. Arithmetic is NumPy's (IEEE, so identical to the kernels' in float64);
exp, log and the other elementary functions are the C library's in float64, rounded to float32
for float32 operands (at most an ulp from Triton's float32 functions).
"""

from __future__ import annotations

import math as _m

import numpy as np

float32 = np.float32
float64 = np.float64
int32 = np.int32
int64 = np.int64
uint32 = np.uint32


def _type(x):
    return type(x) if isinstance(x, np.floating) else np.float64


class math:  # noqa: N801 - ``tl.math.erf``
    @staticmethod
    def erf(x):
        return _type(x)(_m.erf(x))


# The elementary functions round the correctly rounded-or-nearly float64 result of the C
# library's (math module) to the operand's dtype: the same figures on every machine, where
# NumPy's own SIMD loops differ between processors in the last bit.


def exp(x):
    try:
        return _type(x)(_m.exp(x))
    except OverflowError:
        return _type(x)(_m.inf)


def log(x):
    if x > 0:
        return _type(x)(_m.log(x))
    return _type(x)(-_m.inf if x == 0 else _m.nan)


def sqrt(x):
    return _type(x)(_m.sqrt(x) if x >= 0 else _m.nan)


def rsqrt(x):
    return _type(x)(1.0) / sqrt(x)


def sin(x):
    return _type(x)(_m.sin(x) if _m.isfinite(x) else _m.nan)


def cos(x):
    return _type(x)(_m.cos(x) if _m.isfinite(x) else _m.nan)


def abs(x):  # noqa: A001 - Triton's name
    return -x if x < 0 else x


def floor(x):
    return _type(x)(_m.floor(x)) if _m.isfinite(x) else x


def ceil(x):
    return _type(x)(_m.ceil(x)) if _m.isfinite(x) else x


def fma(a, b, c):
    # one rounding: exact in float64 for float32 operands; for float64 through exact rationals
    if isinstance(a, np.float32) and isinstance(b, np.float32) and isinstance(c, np.float32):
        return np.float32(np.float64(a) * np.float64(b) + np.float64(c))
    from fractions import Fraction

    a, b, c = np.float64(a), np.float64(b), np.float64(c)
    if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
        return a * b + c
    return np.float64(float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))))


def maximum(a, b):
    if a != a or b != b:  # Triton's maximum propagates NaN from either side
        return a + b
    return a if a >= b else b


def minimum(a, b):
    if a != a or b != b:
        return a + b
    return a if a <= b else b


def where(c, a, b):
    return a if c else b


def zeros_like(x):
    return _type(x)(0.0)


def cast(x, dtype):
    return dtype(x)


def static_range(*args):
    return range(*args)
