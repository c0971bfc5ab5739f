"""Triton kernels in generated modules, with Triton imported only when a kernel first launches.

A generated module marks its device functions and kernels with ``@lazy_triton.jit`` and keeps
``tl``/``tlm``/``tls``/``tlv`` placeholders (None); ``from __future__ import annotations`` keeps
the ``tl.constexpr`` annotations unevaluated. ``activate(module)`` imports Triton, binds ``tl``,
``tlm``, ``tls``, ``tlv`` (irtgen.runtime.triton_math, triton_special, triton_variates) and
``triton`` in the module, and replaces each marked function
by ``triton.jit(fn)`` -- in place, so kernels find their device functions as module globals.
Under ``TRITON_INTERPRET=1`` that yields interpreted functions; the mode is fixed at activation.
"""

from __future__ import annotations

import threading
from types import ModuleType

_PENDING: dict[str, list[str]] = {}
_ACTIVE: set[str] = set()
_LOCK = threading.Lock()


def jit(fn):
    """Mark ``fn`` for ``triton.jit`` at activation time; returns it unchanged until then."""
    names = _PENDING.setdefault(fn.__module__, [])
    if fn.__name__ not in names:
        names.append(fn.__name__)
    return fn


def activate(module: ModuleType) -> None:
    """Import Triton and jit every marked function of ``module`` (once)."""
    if module.__name__ in _ACTIVE:
        return
    with _LOCK:
        if module.__name__ in _ACTIVE:
            return
        import triton
        import triton.language as tl

        from irtgen.runtime import triton_math, triton_special, triton_variates

        g = vars(module)
        g["triton"] = triton
        g["tl"] = tl
        g["tlm"] = triton_math
        g["tls"] = triton_special
        g["tlv"] = triton_variates
        for name in _PENDING.get(module.__name__, []):
            fn = g[name]
            if not isinstance(fn, triton.runtime.jit.JITFunction) and not hasattr(fn, "run"):
                g[name] = triton.jit(fn)
        _ACTIVE.add(module.__name__)


def kernel_names(module: ModuleType) -> list[str]:
    """Names of the kernels (not device functions) a generated module defines."""
    return [n for n in _PENDING.get(module.__name__, []) if n.endswith("_kernel")]


def compile_for_gpu(module: ModuleType, arch: int = 90, dtypes=("fp32", "fp64"), only=None) -> dict:
    """Compile every kernel of ``module`` to PTX for ``sm_<arch>`` without a GPU.

    Must run without TRITON_INTERPRET (interpreted functions cannot be compiled). Returns
    {(kernel, dtype): PTX length}. Signatures follow the generated code's conventions: ``*_ptr``
    arguments point to the compute dtype, ``_NEED_*`` flags are compiled as True, ``_BLOCK*``
    sizes get small powers of two, every other scalar is an int64. ``only``: kernel names to
    compile (default: all).
    """
    import inspect

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    activate(module)
    target = GPUTarget("cuda", arch, 32)
    sizes = {"_BLOCK": 256, "_BLOCK_M": 16, "_BLOCK_B": 16, "_BLOCK_K": 8}
    out = {}
    for name in kernel_names(module):
        if only is not None and name not in only:
            continue
        fn = getattr(module, name)
        params = inspect.signature(fn.fn).parameters
        for dtype in dtypes:
            signature, constexprs = {}, {}
            for p, spec in params.items():
                annotation = str(spec.annotation)
                if "constexpr" in annotation:
                    signature[p] = "constexpr"
                    constexprs[p] = True if p.startswith("_NEED_") else sizes[p]
                elif p.endswith("_ptr"):
                    signature[p] = "*" + dtype
                else:
                    signature[p] = "i64"
            src = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
            compiled = triton.compile(src, target=target)
            out[(name, dtype)] = len(compiled.asm["ptx"])
    return out
