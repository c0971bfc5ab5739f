"""Bind a ``@scalar`` function to a compiler: the same code object, new globals.

For numba, ``tl`` becomes irtgen.compilers.numba_tl and the function is ``numba.njit``-ed with
an on-disk cache; for Triton, ``tl`` becomes ``triton.language`` and the function is
``triton.jit``-ed. In both, every global that is a scalar function becomes its compiled form,
every global module that holds scalar functions becomes a module of compiled forms, and (for
Triton) every module-level int becomes a ``tl.constexpr``. Nothing is copied or rewritten: one
source, two compilations. A third binding, ``torch_function``, runs a straight-line formula on
whole tensors through torch's operators (irtgen.compilers.torch_tl), for second derivatives.

The numba cache lives in ``$IRTGEN_CACHE_DIR/numba/<hash>`` (default ``~/.cache/irtgen``), where
the hash covers irtgen's scalar sources and compilers: numba tracks the stamp of a function's own
file only, so a change to a callee in another file must change the folder.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import types
from pathlib import Path

from irtgen.scalar.source import ScalarFunction

_LOCK = threading.RLock()
# (compiler, function, tag) -> compiled function. Keyed by the function object itself, which the
# key keeps alive: an id() could be reused by a later function once the first is collected (a
# test's local function), and that one would then be given the stale compiled form
_COMPILED: dict[tuple, object] = {}
_PROXIES: dict[tuple[str, str], types.ModuleType] = {}
_ORIGIN: dict[int, ScalarFunction] = {}  # id(bound Python function) -> its scalar function


def is_scalar_module(module: types.ModuleType) -> bool:
    return any(isinstance(v, ScalarFunction) for v in vars(module).values())


def _bound_globals(fn, compiler: str, spec: ScalarFunction | None = None) -> dict:
    g = dict(fn.__globals__)
    g["tl"] = _tl(compiler)
    if spec is not None:
        g.update(spec.bindings)
    for name in _names(fn.__code__):
        value = g.get(name)
        if isinstance(value, ScalarFunction):
            if spec is not None and value.fn.__module__ == fn.__module__ and not value.tag:
                value = ScalarFunction(value.fn, spec.tag, spec.bindings)
            g[name] = _compile(value, compiler)
        elif isinstance(value, types.ModuleType) and is_scalar_module(value):
            g[name] = _proxy(value, compiler)
        elif compiler == "triton" and type(value) is int:
            import triton.language as tl

            g[name] = tl.constexpr(value)
    return g


def _names(code) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names(c)
    return names


def _tl(compiler: str):
    if compiler == "numba":
        from irtgen.compilers import numba_tl

        return numba_tl
    if compiler == "python":
        from irtgen.compilers import python_tl

        return python_tl
    import triton.language as tl

    return tl


def _proxy(module: types.ModuleType, compiler: str) -> types.ModuleType:
    key = (compiler, module.__name__)
    proxy = _PROXIES.get(key)
    if proxy is None:
        proxy = _PROXIES[key] = types.ModuleType(f"{module.__name__}<{compiler}>")
        for name, value in vars(module).items():
            if isinstance(value, ScalarFunction):
                setattr(proxy, name, _compile(value, compiler))
            elif compiler == "triton" and type(value) is int:
                import triton.language as tl

                setattr(proxy, name, tl.constexpr(value))
            elif not name.startswith("__"):
                setattr(proxy, name, value)
    return proxy


def _rebuilt(sf: ScalarFunction, compiler: str):
    fn = sf.fn
    spec = sf if sf.tag else None
    new = types.FunctionType(
        fn.__code__,
        _bound_globals(fn, compiler, spec),
        fn.__name__,
        fn.__defaults__,
        fn.__closure__,
    )
    new.__qualname__ = fn.__qualname__ if spec is None else f"{fn.__qualname__}__{safe(sf.tag)}"
    new.__module__ = fn.__module__
    new.__doc__ = fn.__doc__
    new.__irtgen__ = True  # the numba cache locator below takes these
    return new


def origin(fn) -> ScalarFunction:
    """The scalar function that a bound Python function (``JITFunction.fn``) was made from."""
    return _ORIGIN[id(fn)]


def _compile(sf: ScalarFunction, compiler: str):
    key = (compiler, sf.fn, sf.tag)
    with _LOCK:
        out = _COMPILED.get(key)
        if out is None:
            if compiler == "numba":
                out = _COMPILED[key] = njit(_rebuilt(sf, "numba"))
            elif compiler == "python":
                out = _COMPILED[key] = _rebuilt(sf, "python")
            else:
                import triton

                rebuilt = _rebuilt(sf, "triton")
                _ORIGIN[id(rebuilt)] = sf
                out = _COMPILED[key] = triton.jit(rebuilt)
        return out


def safe(tag: str) -> str:
    """``tag`` as part of an identifier: readable head, hash tail."""
    digest = hashlib.sha256(tag.encode()).hexdigest()[:10]
    head = "".join(c if c.isalnum() else "_" for c in tag)[:40]
    return f"{head}_{digest}"


def code_hash(*fns) -> str:
    """Hash of functions' code (bytecode and constants) and of the source file of each one's
    module, for tags of specialisations and kernels. A kernel compiled around a function
    inlines the functions it calls too; the file's hash covers those in the same module (a
    generated module's ``in_support``, say), which numba's cache of the kernel cannot see.
    Modules under irtgen.scalar and irtgen.compilers are covered by the cache folder's hash."""
    h = hashlib.sha256()
    for f in fns:
        f = getattr(f, "fn", f)
        h.update(f.__code__.co_code)
        h.update(repr(f.__code__.co_consts).encode())
        h.update(repr(f.__code__.co_names).encode())
        h.update(_file_hash(f.__code__.co_filename).encode())
    return h.hexdigest()[:12]


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_hash(path: str) -> str:
    """sha256 of a source file's bytes ('' where there is no file), cached by its stamp."""
    try:
        st = os.stat(path)
    except OSError:
        return ""
    key = (path, st.st_mtime_ns, st.st_size)
    digest = _FILE_HASHES.get(key)
    if digest is None:
        digest = _FILE_HASHES[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digest


def numba_function(sf: ScalarFunction):
    return _compile(sf, "numba")


def python_function(sf: ScalarFunction):
    """``sf`` run by the Python interpreter on NumPy scalars (irtgen.compilers.python_tl): no
    compilation, one element a call; the build's accuracy audit evaluates formulas this way."""
    return _compile(sf, "python")


def triton_function(sf: ScalarFunction):
    return _compile(sf, "triton")


# -- numba: compile with an on-disk cache under irtgen's cache folder --------------------------


def njit(fn):
    """``numba.njit(cache=True, nogil=True)`` with irtgen's cache location (``fn.__irtgen__``
    set)."""
    import numba

    _install_locator()
    fn.__irtgen__ = True
    return numba.njit(cache=True, error_model="numpy", nogil=True)(fn)


def source_hash() -> str:
    """Hash of the sources every compiled function may depend on: irtgen.scalar and
    irtgen.compilers (generated modules are covered by numba's own stamp of their file)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in ("scalar", "compilers"):
        for path in sorted((root / sub).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    import numba

    h.update(numba.__version__.encode())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("IRTGEN_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "irtgen"
    )
    return Path(base) / "numba" / source_hash()


_LOCATOR_INSTALLED = False


def _install_locator() -> None:
    global _LOCATOR_INSTALLED
    if _LOCATOR_INSTALLED:
        return
    from numba.core import caching

    class IrtgenLocator(caching.UserProvidedCacheLocator):
        """Functions bound by irtgen cache under cache_root(), per source folder."""

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            parent = hashlib.sha256(os.path.dirname(os.path.abspath(py_file)).encode())
            self._cache_path = str(cache_root() / parent.hexdigest()[:12])

        @classmethod
        def from_function(cls, py_func, py_file):
            if not getattr(py_func, "__irtgen__", False) or not os.path.exists(py_file):
                return None
            self = cls(py_func, py_file)
            try:
                self.ensure_cache_path()
            except OSError:
                return None
            return self

    caching.CacheImpl._locator_classes.insert(0, IrtgenLocator)
    _LOCATOR_INSTALLED = True


def loaded_modules() -> list[str]:
    """Names of the heavy modules imported so far (for the import-lightness tests)."""
    return [m for m in ("numba", "triton", "sympy") if m in sys.modules]


# -- torch: straight-line formulas on tensors, for second derivatives -------------------------


def _straight_line(fn) -> bool:
    """Whether ``fn``'s body has no branch or loop (statements or conditional expressions)."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError):
        return False
    return not any(isinstance(n, ast.If | ast.While | ast.For | ast.IfExp) for n in ast.walk(tree))


def torch_function(sf: ScalarFunction):
    """``sf`` with ``tl`` bound to irtgen.compilers.torch_tl: elementwise on tensors, through
    torch's differentiable operators (a function of irtgen.scalar.elementary becomes its torch
    form, torch_tl.TORCH_FORMS). Where ``sf`` or a scalar function that it calls branches or
    loops, calling the result raises torch_tl.SecondOrderUnavailable, naming that function."""
    from irtgen.compilers import torch_tl

    key = ("torch", sf.fn, sf.tag)
    with _LOCK:
        out = _COMPILED.get(key)
        if out is not None:
            return out
        fn = sf.fn
        form = torch_tl.TORCH_FORMS.get(f"{fn.__module__}.{fn.__qualname__}")
        if form is not None:
            out = form
        elif _straight_line(fn):
            g = dict(fn.__globals__)
            g["tl"] = torch_tl
            g.update(sf.bindings)
            for name in _names(fn.__code__):
                value = g.get(name)
                if isinstance(value, ScalarFunction):
                    g[name] = torch_function(value)
                elif isinstance(value, types.ModuleType) and is_scalar_module(value):
                    g[name] = _torch_proxy(value)
            out = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
        else:
            name = f"{fn.__module__}.{fn.__qualname__}"

            def out(*args, _name=name):
                raise torch_tl.SecondOrderUnavailable(
                    f"{_name} chooses a regime per element (a branch or a loop), so autograd "
                    "cannot differentiate it once more"
                )

        _COMPILED[key] = out
        return out


def _torch_proxy(module: types.ModuleType) -> types.SimpleNamespace:
    """A module of scalar functions as seen by torch_function: each function bound on first
    use (binding one that branches costs nothing until it is called)."""
    key = ("torch", module.__name__)
    proxy = _PROXIES.get(key)
    if proxy is None:

        class _Lazy(types.SimpleNamespace):
            def __getattr__(self, name):
                value = getattr(module, name)
                if isinstance(value, ScalarFunction):
                    value = torch_function(value)
                setattr(self, name, value)
                return value

        proxy = _PROXIES[key] = _Lazy()
    return proxy
