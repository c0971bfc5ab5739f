"""``tl`` for numba: the Triton-language primitives that scalar code uses, as numba functions.

``bind`` gives a scalar function this module (a real module object: numba types a module's
attributes, not a namespace's) in place of ``triton.language``. Each primitive has Triton's
meaning on one element.
"""

from __future__ import annotations

import math as _m
import types

import numba
import numpy as np
from llvmlite import ir as llvmir
from numba.core import types as nbtypes
from numba.extending import intrinsic
from numba.extending import overload as _overload

# IEEE division (x/0 is inf or NaN, as on the GPU), never a ZeroDivisionError; that check would
# also be a branch that keeps LLVM from vectorizing a loop
_jit = numba.njit(cache=True, error_model="numpy")


@_jit
def exp(x):
    return _m.exp(x)


@_jit
def log(x):
    return _m.log(x) if x > 0.0 else (-_m.inf if x == 0.0 else _m.nan)


@_jit
def sqrt(x):
    return _m.sqrt(x) if x >= 0.0 else _m.nan


@_jit
def rsqrt(x):
    return 1.0 / _m.sqrt(x) if x >= 0.0 else _m.nan


@_jit
def sin(x):
    return _m.sin(x)


@_jit
def cos(x):
    return _m.cos(x)


@_jit
def abs(x):  # noqa: A001 - Triton's name
    return x if x >= 0 else -x


@_jit
def floor(x):
    return np.floor(x)  # a float, as Triton's (math.floor is an int64: wrong beyond 2^63)


@_jit
def ceil(x):
    return np.ceil(x)


@intrinsic
def _fma_f64(typingctx, a, b, c):
    """llvm.fma.f64: a * b + c with one rounding, as tl.fma on the GPU."""
    sig = nbtypes.float64(nbtypes.float64, nbtypes.float64, nbtypes.float64)

    def codegen(context, builder, signature, args):
        dbl = llvmir.DoubleType()
        fnty = llvmir.FunctionType(dbl, [dbl, dbl, dbl])
        fn = builder.module.declare_intrinsic("llvm.fma", [dbl], fnty)
        return builder.call(fn, args)

    return sig, codegen


@_jit
def fma(a, b, c):
    return _fma_f64(np.float64(a), np.float64(b), np.float64(c))


@_jit
def maximum(a, b):
    # Triton's maximum propagates NaN from either side
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@_jit
def minimum(a, b):
    if a != a or b != b:
        return a + b
    return a if a <= b else b


@_jit
def where(c, a, b):
    return a if c else b


@_jit
def umulhi(a, b):
    """High 32 bits of the 64-bit product of two uint32."""
    return np.uint32((np.uint64(a) * np.uint64(b)) >> np.uint64(32))


@_jit
def erf(x):
    return _m.erf(x)


# -- integer casts and Philox, for the random variates of irtgen.scalar.random --------------------


def cast(x, dtype):
    """``tl.cast(x, dtype)``: a value cast to a numba number type (``tl.uint32`` etc.); integer
    casts wrap modulo 2^bits as Triton's do (``tl.cast(offset, tl.uint32)`` is offset's low
    word). Scalar code casts only integers: Philox counters and random words to float64."""
    return dtype(x)


@_overload(cast, jit_options={"cache": True})
def _cast_overload(x, dtype):
    if isinstance(dtype, nbtypes.NumberClass):

        def impl(x, dtype):
            return dtype(x)

        return impl
    return None


_M32 = np.uint64(0xFFFFFFFF)
_PHILOX_KEY_A = np.uint64(0x9E3779B9)
_PHILOX_KEY_B = np.uint64(0xBB67AE85)
_PHILOX_ROUND_A = np.uint64(0xD2511F53)
_PHILOX_ROUND_B = np.uint64(0xCD9E8D57)


@_jit
def philox(seed, c0, c1, c2, c3):
    """``tl.philox(seed, c0, c1, c2, c3)`` for 32-bit counters: Philox4x32-10 (Salmon et al.,
    SC'11) with triton.language.random's key schedule, constants and rounds -- key (seed low
    word, seed high word), each round c0 = hi(B c2) ^ c1 ^ k0, c2 = hi(A c0) ^ c3 ^ k1,
    c1 = lo(B c2), c3 = lo(A c0), then k0 += 0x9E3779B9, k1 += 0xBB67AE85. The counters are
    taken modulo 2^32 (Triton bitcasts 32-bit ones; it runs Philox4x64 on 64-bit counters, which
    scalar code never passes). Returns four uint32."""
    s = np.uint64(seed)
    k0 = s & _M32
    k1 = s >> np.uint64(32)
    x0 = np.uint64(c0) & _M32
    x1 = np.uint64(c1) & _M32
    x2 = np.uint64(c2) & _M32
    x3 = np.uint64(c3) & _M32
    for _ in range(10):
        p0 = _PHILOX_ROUND_A * x0
        p2 = _PHILOX_ROUND_B * x2
        x0 = (p2 >> np.uint64(32)) ^ x1 ^ k0
        x2 = (p0 >> np.uint64(32)) ^ x3 ^ k1
        x1 = p2 & _M32
        x3 = p0 & _M32
        k0 = (k0 + _PHILOX_KEY_A) & _M32
        k1 = (k1 + _PHILOX_KEY_B) & _M32
    return np.uint32(x0), np.uint32(x1), np.uint32(x2), np.uint32(x3)


@_jit
def randint4x(seed, offset):
    """``tl.randint4x(seed, offset)`` for an int64 offset: Philox at counter (offset mod 2^32,
    offset >> 32, 0, 0)."""
    return philox(seed, offset, offset >> 32, 0, 0)


math = types.ModuleType("irtgen.compilers.numba_tl.math")
math.erf = erf
math.exp = exp
math.log = log
math.sqrt = sqrt
math.floor = floor
math.ceil = ceil
math.fma = fma

# dtypes, for the rare scalar code that builds an integer (Philox counters) or converts random
# words to float64: ``tl.cast(x, tl.uint32)``, ``tl.cast(k, tl.float64)``
uint32 = numba.uint32
uint64 = numba.uint64
int32 = numba.int32
int64 = numba.int64
float32 = numba.float32
float64 = numba.float64


def static_range(*args):  # replaced by range when bound; present for attribute lookups
    return range(*args)


@_jit
def zeros_like(x):
    return 0.0 * x if x == x and x - x == 0.0 else 0.0
