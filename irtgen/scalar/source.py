"""The ``@scalar`` marker: a per-element function written once, compiled by Triton and by numba.

A scalar function takes numbers and returns a number or a tuple of numbers. Its body is in the
subset of the Triton language that both compilers accept (irtgen.compilers.bind binds it):

* ``tl.<primitive>`` for the math primitives the numba shim provides (irtgen.compilers.numba_tl:
  exp, log, sqrt, sin, cos, abs, floor, maximum, minimum, where, fma, math.erf, philox, umulhi,
  ...); no libdevice, no ``**`` (use multiplication or ``tl.exp(b * tl.log(a))``);
* real ``if``/``else``, ``while`` loops and ``for _ in range(N)``/``tl.static_range(N)`` with a
  constant N; at most one ``return``, the last statement (Triton's rule for functions called
  from loops); a variable set in a branch is set in every branch;
* calls of other scalar functions, by name or as ``module.name`` of a module of scalar functions;
* float constants inline (the interpreter rounds a float bound to a global to float32); module
  level ``int`` constants are allowed and become ``tl.constexpr`` for Triton;
* no dtype queries or casts (``x.to``, ``x.dtype``): the kernels choose the compute dtype. CPU
  kernels compute every scalar function in float64; Triton kernels in the input dtype or, for
  special functions and numeric inversion, in float64. Loop-carried variables start from an
  expression of the inputs (``s = 0.0 * x``), so that their type is the computed one in Triton.

Decorating records the Python function and compiles nothing; importing a module of scalar
functions imports neither Triton nor numba.
"""

from __future__ import annotations

import functools


class ScalarFunction:
    """A Python function in the scalar subset; ``irtgen.compilers`` compiles it on demand."""

    def __init__(self, fn, tag: str | None = None, bindings: dict | None = None):
        self.fn = fn
        self.tag = tag  # set for a specialisation: names it in caches
        self.bindings = bindings or {}  # globals replaced in this function and its module's
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = fn.__module__
        self.__doc__ = fn.__doc__
        functools.update_wrapper(self, fn)

    def specialize(self, tag: str, bindings: dict) -> ScalarFunction:
        """This function with module globals replaced by ``bindings`` (scalar functions or
        constants), in it and in every scalar function of its own module that it calls: how code
        written once is specialised on a family's formulas (irtgen.scalar.inversion)."""
        return ScalarFunction(self.fn, tag, bindings)

    def numba(self):
        """The numba-compiled function (compiled, or loaded from the disk cache, on first use)."""
        from irtgen.compilers import bind

        return bind.numba_function(self)

    def triton(self):
        """The ``triton.jit`` function, for Triton kernels and ``tl.map_elementwise``."""
        from irtgen.compilers import bind

        return bind.triton_function(self)

    def __call__(self, *args):
        """Evaluate on numbers through the numba-compiled form (for tests and the REPL)."""
        return self.numba()(*args)

    def __repr__(self) -> str:
        return f"<scalar function {self.__module__}.{self.__qualname__}>"


def scalar(fn) -> ScalarFunction:
    """Mark ``fn`` as a scalar function of the one source (see the module docstring)."""
    return ScalarFunction(fn)


class _Unbound:
    """``tl`` in a module of scalar functions before binding: irtgen.compilers.bind replaces it
    by ``triton.language`` or by irtgen.compilers.numba_tl in each compiled function's globals."""

    def __getattr__(self, name):
        raise RuntimeError(
            f"tl.{name}: scalar functions run only compiled (ScalarFunction.numba()/.triton())"
        )


tl = _Unbound()
