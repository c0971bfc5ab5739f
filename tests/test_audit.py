"""The build's accuracy audit (irtgen.audit): what it measures, where it fails a build, where its
figures appear, and that they are the kernels' own."""

from __future__ import annotations

import importlib
import re
import textwrap

import numpy as np
import pytest
import sympy as sp

import irtgen
from irtgen import cli
from irtgen.audit import audit, parse_tolerance
from irtgen.build import BuildError, builtin_spec_dir, load_spec_file, module_from_source
from irtgen.codegen.module import render_module
from irtgen.derive import derive
from irtgen.spec import SpecError

# F(z) = sqrt(1 + rate z) - 1 on [0, 3/rate]: the difference cancels where rate z is small, and
# the icdf ((1 + u)^2 - 1)/rate where u is; no rewrite rule of the build removes either
SQRT_RISE = textwrap.dedent(
    """
    import sympy as sp

    import irtgen

    z = sp.Symbol("z", positive=True)
    rate = sp.Symbol("rate", positive=True)

    SqrtRise = irtgen.Distribution(
        name="SqrtRise",
        variable=z,
        params={rate: "positive"},
        support=sp.Interval(0, 3 / rate),
        cdf=sp.sqrt(1 + rate * z) - 1,
        icdf=sp.Lambda(sp.Symbol("u"), ((1 + sp.Symbol("u")) ** 2 - 1) / rate),
        MAX_ERROR
    )
    """
)


def _spec(tmp_path, max_error: str = "") -> str:
    path = tmp_path / "sqrt_rise.py"
    path.write_text(SQRT_RISE.replace("MAX_ERROR", max_error))
    return str(path)


def _builtin_report(name: str):
    d = derive(load_spec_file(builtin_spec_dir() / f"{name}.py")[0])
    return audit(d, importlib.import_module(f"irtgen.generated.{name}"))


def test_parse_tolerance():
    assert parse_tolerance(None) == {}
    assert parse_tolerance(1e-10) == {"float64": 1e-10}
    assert parse_tolerance("1e-10,1e-4") == {"float64": 1e-10, "float32": 1e-4}
    assert parse_tolerance((1e-10, 1e-4)) == {"float64": 1e-10, "float32": 1e-4}
    assert parse_tolerance({"float32": 1e-5}) == {"float32": 1e-5}
    for bad in ("x", "1,2,3", -1.0, 0, {"float16": 1e-3}, (1e-3, "a"), True):
        with pytest.raises(ValueError):
            parse_tolerance(bad)


def test_spec_max_error_is_validated():
    z, a = sp.symbols("z a", positive=True)
    with pytest.raises(SpecError, match="max_error"):
        irtgen.Distribution(
            name="E",
            variable=z,
            params={a: "positive"},
            support=sp.Interval(0, sp.oo),
            cdf=1 - sp.exp(-a * z),
            max_error="tiny",
        )


def test_the_audit_measures_a_cancelling_formula(tmp_path, capsys):
    assert cli.main(["build", _spec(tmp_path), "-o", str(tmp_path / "out")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "audit:" in x)
    m = re.search(r"float64 ([\d.e+-]+) \((\w+) at rate = ([\d.e+-]+), z = ([\d.e+-]+)\)", line)
    assert m, line
    # sqrt(1 + x) - 1 at x = 2e-12 keeps about 4 of 16 digits
    assert float(m.group(1)) > 1e-6 and m.group(2) in ("cdf", "sf", "icdf")
    source = (tmp_path / "out" / "sqrt_rise.py").read_text()
    assert "Accuracy, as the build's audit measured it" in source
    row = next(x for x in source.splitlines() if x.strip().startswith("cdf "))
    assert float(row.split()[1]) > 1e-6


def test_the_build_fails_past_max_error_naming_formula_parameters_and_value(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.main(["build", _spec(tmp_path), "-o", out, "--max-error", "1e-10"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    assert re.search(
        r"SqrtRise: cdf has relative error [\d.e+-]+ in float64 \(tolerance 1\.0e-10\) at "
        r"rate = [\d.e+-]+, z = [\d.e+-]+: got [\d.e+-]+, mpmath gives [\d.e+-]+",
        err,
    ), err
    assert not (tmp_path / "out" / "sqrt_rise.py").exists()
    # a float32 tolerance alone: float64 is not judged
    assert cli.main(["build", _spec(tmp_path), "-o", out, "--max-error", "1,1e-9"]) == 2
    assert "in float32" in capsys.readouterr().err
    assert cli.main(["build", _spec(tmp_path), "-o", out, "--max-error", "one"]) == 2
    assert "--max-error takes numbers" in capsys.readouterr().err


# an exponential whose icdf is written through acosh: log(1/(1 - u)) = acosh(y) with
# y = (1/(1 - u) + (1 - u))/2, exact, but y rounds to 1 for u below 1e-8 (no rule knows acosh)
EXP_ACOSH = textwrap.dedent(
    """
    import sympy as sp

    import irtgen

    z = sp.Symbol("z", positive=True)
    rate = sp.Symbol("rate", positive=True)
    u = sp.Symbol("u")

    ExpAcosh = irtgen.Distribution(
        name="ExpAcosh",
        variable=z,
        params={rate: "positive"},
        support=sp.Interval(0, sp.oo),
        cdf=1 - sp.exp(-rate * z),
        icdf=sp.Lambda(u, sp.acosh((1 / (1 - u) + (1 - u)) / 2) / rate),
        MAX_ERROR
    )
    """
)


def test_the_search_keeps_a_more_accurate_form(tmp_path, capsys):
    path = tmp_path / "exp_acosh.py"
    out = tmp_path / "out"
    # without a tolerance the closed form is kept, and the audit shows what it costs
    path.write_text(EXP_ACOSH.replace("MAX_ERROR", ""))
    assert cli.main(["build", str(path), "-o", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "audit:" in x)
    assert re.search(r"float64 ([\d.e+-]+) \(icdf at", line), line
    assert float(re.search(r"float64 ([\d.e+-]+)", line).group(1)) > 1e-3
    assert "search:" not in line
    # past the tolerance the search replaces it by the numeric inversion, and the build passes
    path.write_text(EXP_ACOSH.replace("MAX_ERROR", "max_error=1e-12,"))
    assert cli.main(["build", str(path), "-o", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "audit:" in x)
    assert "search: icdf from the numeric inversion" in line, line
    assert float(re.search(r"float64 ([\d.e+-]+)", line).group(1)) <= 1e-12
    source = (out / "exp_acosh.py").read_text()
    assert "icdf: numeric inversion of the CDF" in source
    row = next(x for x in source.splitlines() if x.strip().startswith("icdf "))
    assert float(row.split()[1]) <= 1e-12


def test_an_unchanged_module_reuses_its_audit(tmp_path, capsys, monkeypatch):
    """The report is a function of the generated source and of the toolchain: a second build of
    the same spec takes it from the cache, and the tolerance still applies to it."""
    monkeypatch.setenv("IRTGEN_CACHE_DIR", str(tmp_path / "cache"))
    out = str(tmp_path / "out")

    def audit_line():
        return next(x for x in capsys.readouterr().out.splitlines() if "audit:" in x)

    assert cli.main(["build", _spec(tmp_path), "-o", out]) == 0
    first = audit_line()
    assert not first.endswith("cached")
    assert len(list((tmp_path / "cache" / "audit").glob("*.pickle"))) == 1
    assert cli.main(["build", _spec(tmp_path), "-o", out]) == 0
    second = audit_line()
    assert second.endswith("points, cached")
    assert second.rsplit(";", 1)[0] == first.rsplit(";", 1)[0]  # the same figures
    assert cli.main(["build", _spec(tmp_path), "-o", out, "--max-error", "1e-10"]) == 2
    assert "cdf has relative error" in capsys.readouterr().err
    # another module (here a tolerance in the spec changes nothing generated, a new icdf does)
    path = tmp_path / "other.py"
    path.write_text(SQRT_RISE.replace("MAX_ERROR", "").replace("** 2 - 1", "** 2 - 1.0"))
    assert cli.main(["build", str(path), "-o", out]) == 0
    assert not audit_line().endswith("cached")
    # switched off
    monkeypatch.setenv("IRTGEN_AUDIT_CACHE", "0")
    assert cli.main(["build", _spec(tmp_path), "-o", out]) == 0
    assert not audit_line().endswith("cached")


def test_a_spec_sets_its_own_tolerance(tmp_path, monkeypatch):
    monkeypatch.setenv("IRTGEN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BuildError, match=r"SqrtRise: (cdf|sf|icdf) has relative error"):
        irtgen.load(_spec(tmp_path, "max_error=(1e-10, 1e-4),"))
    # a loose tolerance builds; the command line's is stricter and wins
    path = _spec(tmp_path, "max_error=1.0,")
    assert irtgen.load(path).SqrtRise.__name__ == "SqrtRise"
    with pytest.raises(BuildError, match="tolerance 1.0e-10"):
        irtgen.load(path, max_error=1e-10)


def test_show_prints_the_accuracy_table_and_reports_a_formula_past_the_tolerance(tmp_path, capsys):
    assert cli.main(["show", _spec(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy (the build's audit" in out
    assert re.search(r"dz/drate +[\d.e+-]+ / [\d.e+-]+ +[\d.e+-]+ / ", out)
    assert cli.main(["show", _spec(tmp_path, "max_error=1e-10,")]) == 2
    assert "cdf has relative error" in capsys.readouterr().err


def test_builtin_modules_carry_their_audit_table():
    import irtgen.generated.gamma as gamma

    report = _builtin_report("gamma")
    doc = gamma.__doc__
    for row in report.table():
        assert row in doc
    # the targets of the special functions hold on the audit's grid too
    for name in ("dz/dconcentration", "dz/drate"):
        assert report.formulas[name].max("float64") <= 1e-12
        assert report.formulas[name].max("float32") <= 1e-5


def test_errors_next_to_a_zero_crossing_are_measured_against_the_inputs_rounding():
    # LogNormal dz/dscale = z (log z - loc)/scale is 0 at z = exp(loc), and log z there is
    # rounded: relative to |f| alone the error would be 1 at such a point
    report = _builtin_report("log_normal")
    assert report.formulas["dz/dscale"].max("float64") < 1e-14
    assert report.points >= 100


def test_the_audit_evaluates_what_the_cpu_kernels_compute():
    """The audit runs the scalar sources in the interpreter (irtgen.compilers.python_tl): in
    float64 its values are the numba-compiled ones, bit for bit."""
    from irtgen.compilers import bind

    mod = importlib.import_module("irtgen.generated.weibull")
    fam = mod.FAMILY
    rng = np.random.default_rng(7)
    compared = 0
    with np.errstate(all="ignore"):
        for op in ("cdf", "sf", "log_prob", "implicit_grad", "log_prob_grad", "icdf"):
            py, nb = bind.python_function(fam.fn(op)), fam.fn(op).numba()
            for _ in range(40):
                theta = [float(np.exp(rng.normal(0, 2))) for _ in fam.param_names]
                x = float(rng.uniform(1e-6, 1 - 1e-6))
                if op != "icdf":
                    x = float(fam.fn("icdf").numba()(x, *theta))
                a = py(np.float64(x), *map(np.float64, theta))
                b = nb(x, *theta)
                for u, v in zip(np.atleast_1d(a), np.atleast_1d(b), strict=True):
                    assert float(u) == float(v) or (np.isnan(u) and np.isnan(v)), (op, x, theta)
                    compared += 1
    assert compared >= 300


def test_float32_is_audited_as_a_gpu_computes_it():
    # Normal is computed in float32 on a GPU: its float32 errors exceed the rounding of the
    # result (6e-8) in the tails; Gamma's formulas are computed in float64 and rounded
    normal, gamma = _builtin_report("normal"), _builtin_report("gamma")
    assert normal.formulas["cdf"].max("float32") > 1e-7
    assert all(f.max("float32") <= 6.0e-8 for f in gamma.formulas.values())


def test_module_from_source_runs_a_generated_module_without_importing_it():
    spec = load_spec_file(builtin_spec_dir() / "exponential.py")[0]
    d = derive(spec)
    module = module_from_source(render_module(d, "x.py", "test"), "exponential")
    assert module.FAMILY.name == "Exponential"
    assert module.__name__ not in __import__("sys").modules


def test_the_accuracy_report_shows_the_audits_figures():
    """tools/accuracy_report.py evaluates the CPU kernels at the audit's points: their float64
    errors are the audit's, value for value."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "accuracy_report.py"
    spec = importlib.util.spec_from_file_location("accuracy_report", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    d, _, report = tool.builtin_audit(builtin_spec_dir() / "laplace.py")
    cpu = tool.kernel_errors(report, d.name, "float64")
    assert len(cpu) >= 100
    assert sorted(cpu) == sorted(tool.audit_errors(report, "float64"))
