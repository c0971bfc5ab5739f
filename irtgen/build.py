"""Build spec files into generated modules; check for drift; build-and-import for notebooks.

``build_spec(path, out_dir)`` runs a spec file, collects every ``irtgen.Distribution`` at its top
level, derives and renders each, and writes ``out_dir/<snake_name>.py``. ``load(path)`` does the
same into a cache keyed by the content hash of the spec and of irtgen itself, then imports.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.util
import multiprocessing
import os
import runpy
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

from irtgen import __version__
from irtgen.codegen.functions import UnsupportedFunctionError
from irtgen.spec import Distribution, SpecError


class BuildError(Exception):
    """A spec could not be built; the message names the file, the distribution and the problem."""


@dataclass
class FamilyResult:
    name: str
    path: Path
    status: str  # "written", "unchanged", "stale" (check mode), "missing" (check mode)
    seconds: dict = field(default_factory=dict)  # derive / generate / check / audit / write
    audit: object = None  # irtgen.audit.AuditReport


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def builtin_spec_dir() -> Path:
    return package_dir() / "specs"


def generated_dir() -> Path:
    """Folder of the committed built-in modules (the package ``irtgen.generated``)."""
    spec = importlib.util.find_spec("irtgen.generated")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("cannot locate the irtgen.generated package")
    return Path(list(spec.submodule_search_locations)[0])


def load_spec_file(path: str | os.PathLike) -> list[Distribution]:
    """Run a spec file and return its top-level distributions, in definition order."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"{path}: no such spec file")
    try:
        namespace = runpy.run_path(str(path), run_name="__irtgen_spec__")
    except SpecError as err:
        raise BuildError(f"{path}: {err}") from err
    except Exception as err:  # the user's file raised: say where, keep the cause chained
        raise BuildError(f"{path}: running the spec failed: {type(err).__name__}: {err}") from err
    found: list[Distribution] = []
    for value in namespace.values():
        if isinstance(value, Distribution) and all(value is not f for f in found):
            found.append(value)
    if not found:
        raise BuildError(f"{path}: defines no irtgen.Distribution at top level")
    names = [d.name for d in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BuildError(f"{path}: more than one distribution named {', '.join(dupes)}")
    for d in found:
        d.source_file = str(path)
    return found


def generate_source(
    dist: Distribution, spec_label: str, command: str, timings=None, max_error=None
) -> str:
    """Derive, render and audit one distribution; errors become BuildError naming it.

    ``max_error`` (a tolerance as ``irtgen.audit.parse_tolerance`` takes it) overrides the
    spec's own ``max_error`` per dtype. The audit's report is in ``timings["report"]``.
    """
    return generate(dist, spec_label, command, timings, max_error)[0]


def generate(
    dist: Distribution,
    spec_label: str,
    command: str,
    timings=None,
    max_error=None,
    rewrite: bool = True,
):
    """(source, audit report) of one distribution; see generate_source. ``rewrite=False``
    leaves out the rewrite rules (irtgen.rewrite), to see what they change."""
    from irtgen.audit import AuditFailure, audit, parse_tolerance
    from irtgen.codegen.module import render_module
    from irtgen.derive import derive
    from irtgen.diagnostics import check

    prefix = f"{dist.name}: "
    t0 = time.perf_counter()
    try:
        tolerance = {**parse_tolerance(dist.max_error), **parse_tolerance(max_error, "--max-error")}
    except ValueError as err:
        raise BuildError(f"{spec_label}: {prefix}{err}") from err
    try:
        derivation = derive(dist, rewrite=rewrite)
        t1 = time.perf_counter()
        source = render_module(derivation, spec_label, command)
        t2 = time.perf_counter()
        check(derivation)  # numeric: support, monotone, limits at the ends, icdf
        t3 = time.perf_counter()
        report = _cached_audit(source, tolerance)
        if report is None:
            report = audit(derivation, module_from_source(source, dist.snake_name), tolerance)
            _store_audit(source, report)
        if report.failures():  # past the tolerance: try the alternative forms (irtgen.search)
            from irtgen.search import improve

            def audit_of(d):
                code = render_module(d, spec_label, command)
                return audit(d, module_from_source(code, dist.snake_name), tolerance)

            derivation, report, choices = improve(derivation, report, audit_of)
            report.search = choices
        source = render_module(derivation, spec_label, command, report)
        t4 = time.perf_counter()
        report.check()
    except (SpecError, UnsupportedFunctionError) as err:
        msg = str(err)
        if isinstance(err, UnsupportedFunctionError):
            msg += _supported_hint()
        raise BuildError(
            f"{spec_label}: {msg if msg.startswith(prefix) else prefix + msg}"
        ) from err
    except AuditFailure as err:
        raise BuildError(f"{spec_label}: {err} (the accuracy audit, irtgen.audit)") from err
    if timings is not None:
        timings.update(derive=t1 - t0, generate=t2 - t1, check=t3 - t2, audit=t4 - t3)
    return source, report


# -- the audit's cache: a report is a function of the generated source and of the toolchain ------


def _audit_key(source: str) -> Path | None:
    if os.environ.get("IRTGEN_AUDIT_CACHE", "1") == "0":
        return None
    import mpmath
    import numpy
    import sympy

    versions = f"{mpmath.__version__} {numpy.__version__} {sympy.__version__}"
    key = hashlib.sha256((source + toolchain_hash() + versions).encode()).hexdigest()[:24]
    return cache_root() / "audit" / f"{key}.pickle"


def _cached_audit(source: str, tolerance: dict):
    """The audit report of an identical module audited before (same source, same irtgen, same
    mpmath/numpy/sympy), with this build's tolerance; None if there is none."""
    import pickle

    path = _audit_key(source)
    if path is None or not path.is_file():
        return None
    try:
        report = pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - a damaged or foreign cache entry is audited afresh
        return None
    report.tolerance = dict(tolerance)
    report.cached = True
    return report


def _store_audit(source: str, report) -> None:
    import pickle

    path = _audit_key(source)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".audit.")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(report, fh)
        os.replace(tmp, path)
    except OSError:  # a read-only cache: the audit just runs again next time
        pass


def module_from_source(source: str, name: str) -> types.ModuleType:
    """A generated module's source executed as a module that nothing imports (for the audit)."""
    module = types.ModuleType(f"irtgen_audit_{name}")
    module.__file__ = f"<generated {name}>"
    sys.modules[module.__name__] = module  # the module refers to itself while it runs
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    finally:
        del sys.modules[module.__name__]
    return module


def _supported_hint() -> str:
    from irtgen.codegen.functions import supported_function_names

    return (
        "; the functions irtgen can compute (irtgen.codegen.functions) are "
        + ", ".join(supported_function_names())
        + "; SymPy's lowergamma, uppergamma, beta, betainc and betainc_regularized are "
        "rewritten into them, and Piecewise and Heaviside are split into pieces"
    )


def _label(path: Path) -> str:
    """How a spec path is written into generated headers: relative paths as given, else the
    file name (no machine-specific absolute paths in committed files)."""
    return path.as_posix() if not path.is_absolute() else path.name


def build_spec(
    spec_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    check: bool = False,
    spec_label: str | None = None,
    command: str | None = None,
    progress=None,
    max_error=None,
    rewrite: bool = True,
) -> list[FamilyResult]:
    """Build every distribution of a spec file into ``out_dir`` (or compare, with check).
    ``max_error``: the audit's tolerance (irtgen.audit.parse_tolerance), over the spec's own."""
    spec_path, out_dir = Path(spec_path), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(f"-o {out_dir}: a file of that name exists; -o takes a folder")
    label = spec_label or _label(spec_path)
    cmd = command or f"irtgen build {label} -o {_label(out_dir)}"
    results = []
    for dist in load_spec_file(spec_path):
        timings: dict = {}
        source, report = generate(dist, label, cmd, timings, max_error, rewrite)
        target = out_dir / f"{dist.snake_name}.py"
        old = target.read_text() if target.exists() else None
        t0 = time.perf_counter()
        if check:
            status = "unchanged" if old == source else ("missing" if old is None else "stale")
        elif old == source:
            status = "unchanged"
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, source)
            status = "written"
        timings["write"] = time.perf_counter() - t0
        result = FamilyResult(dist.name, target, status, timings, report)
        results.append(result)
        if progress:
            progress(result)
    return results


def build_builtins(
    check: bool = False, progress=None, max_error=None
) -> tuple[list[FamilyResult], list[Path]]:
    """Regenerate (or check) ``generated/`` from ``irtgen/specs/``.

    Returns the per-family results and generated files that no spec produces any more.
    """
    out_dir = generated_dir()
    specs = [p for p in sorted(builtin_spec_dir().glob("*.py")) if p.name != "__init__.py"]
    jobs = [
        dict(
            spec_path=spec,
            out_dir=out_dir,
            check=check,
            spec_label=f"irtgen/specs/{spec.name}",
            command="irtgen build --builtins",
            max_error=max_error,
        )
        for spec in specs
    ]
    results = []
    for family_results in _run_parallel(jobs):
        for r in family_results:
            if progress:
                progress(r)
        results += family_results
    produced = {r.path.name for r in results}
    orphans = [
        p
        for p in sorted(out_dir.glob("*.py"))
        if p.name not in produced and p.name != "__init__.py"
    ]
    return results, orphans


def _build_job(job: dict) -> list[FamilyResult]:
    return build_spec(**job)


def _run_parallel(jobs: list[dict]):
    """build_spec of each job, in forked worker processes (one a core): the audit of each
    family is independent of the others. Yields each job's results in order; the first error
    in that order is raised."""
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers <= 1 or multiprocessing.current_process().daemon:
        for job in jobs:
            yield _build_job(job)
        return
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [pool.submit(_build_job, job) for job in jobs]
        try:
            for f in futures:
                yield f.result()
        finally:
            for f in futures:
                f.cancel()


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- load: build into a cache and import ---------------------------------------------------------

_TOOLCHAIN_HASH: str | None = None


def toolchain_hash() -> str:
    """Hash of irtgen's own code and templates: a cached build is reused only when both match."""
    global _TOOLCHAIN_HASH
    if _TOOLCHAIN_HASH is None:
        h = hashlib.sha256(__version__.encode())
        from irtgen.codegen.module import template_environment

        roots = [package_dir(), Path(template_environment().loader.searchpath[0])]
        for root in roots:
            for f in sorted(root.rglob("*")):
                if f.suffix in (".py", ".j2") and "specs" not in f.parts:
                    h.update(f.name.encode())
                    h.update(f.read_bytes())
        _TOOLCHAIN_HASH = h.hexdigest()
    return _TOOLCHAIN_HASH


def cache_root() -> Path:
    env = os.environ.get("IRTGEN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "irtgen"


def load(spec_path: str | os.PathLike, max_error=None) -> types.SimpleNamespace:
    """Build a spec file (cached by content hash) and import it.

    Returns a namespace whose attributes are the generated classes by name, e.g.
    ``K = irtgen.load("kumaraswamy.py").Kumaraswamy``. The build audits the accuracy of every
    formula (irtgen.audit; the table is in each generated module's docstring) and fails past
    ``max_error`` or the spec's own ``max_error``.
    """
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise BuildError(f"{spec_path}: no such spec file")
    key = hashlib.sha256(
        spec_path.read_bytes() + toolchain_hash().encode() + repr(max_error).encode()
    ).hexdigest()[:20]
    target = cache_root() / key
    if not (target / "BUILT").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{key}."))
        try:
            build_spec(
                spec_path,
                tmp,
                spec_label=spec_path.name,
                command=f"irtgen.load({spec_path.name!r})",
                max_error=max_error,
            )
            (tmp / "BUILT").write_text("")
            try:
                os.replace(tmp, target)
            except OSError:  # another process finished first; use its build
                _rmtree(tmp)
        except BaseException:
            _rmtree(tmp)
            raise
    namespace = types.SimpleNamespace()
    for file in sorted(target.glob("*.py")):
        module_name = f"irtgen_loaded_{key}_{file.stem}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        cls = getattr(module, module.FAMILY.name)
        setattr(namespace, cls.__name__, cls)
    return namespace


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
