"""The one source of every per-element computation: special functions and their parameter
derivatives, random variates, numeric inversion (this package) and each generated family's
formulas (generated modules), written once as ``@scalar`` functions and compiled by numba for
the CPU and by Triton for the GPU (irtgen.compilers). See ``irtgen.scalar.source`` for the
subset of Python they are written in."""

from irtgen.scalar.source import ScalarFunction, scalar, tl

__all__ = ["ScalarFunction", "scalar", "tl"]
