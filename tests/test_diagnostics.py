"""Build-time diagnostics of a spec, seen from the command line.

Every file in tests/specs/bad/ is a small spec with one mistake. ``irtgen build`` on it must exit
2 with one line on stderr that names the spec file, the distribution and the problem (with the
offending values where there are some), without a Python traceback unless ``--debug``. Specs that
differ from the bad ones only by the fix must build: the numeric checks do not cry wolf.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sympy as sp

import irtgen
from irtgen import cli, diagnostics
from irtgen.build import BuildError, builtin_spec_dir, load_spec_file
from irtgen.derive import derive

REPO = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "specs" / "bad"

# file -> (distribution, regular expressions the one-line message must match)
BAD_SPECS = {
    "not_monotone.py": (
        "Tilted",
        [
            r"density dF/dz is negative \(-\d",
            r"at z = [\d.e+-]+ for c = -?\d",
            r"constraints allow \(c: real\)",
        ],
    ),
    "decreasing_jump.py": (
        "Triangle",
        [
            r"cdf decreases from 0\.\d+ at z = [\d.e-]+ to [\d.e-]+ at z = [\d.e-]+",
            r"for c = 0\.\d+",
            r"its pieces do not join into a CDF",
        ],
    ),
    "limit_upper.py": (
        "Truncated",
        [r"cdf tends to 0\.\d+ at the upper end", r"z -> 1\)", r"not 1", r"rate = [\d.]+"],
    ),
    "limit_lower.py": (
        "WholeLine",
        [r"cdf tends to -oo at the lower end", r"z -> -oo\)", r"not 0", r"rate = [\d.]+"],
    ),
    "limit_symbolic.py": (
        "Doubled",
        [r"cdf tends to 2 at the upper end", r"z -> oo\)", r"not 1", r"k = [\d.]+"],
    ),
    "wrong_icdf.py": (
        "Flipped",
        [
            r"icdf does not invert the cdf",
            r"u = 0\.\d+",
            r"rate = [\d.]+",
            r"icdf\(u\) = [\d.]+",
            r"F\(icdf\(u\)\) = 0\.\d+",
        ],
    ),
    "empty_support.py": (
        "Uniform",
        [
            r"support Interval\(low, high\) is empty",
            r"for low = (-?[\d.]+), high = (-?[\d.]+)",
            r"non-empty interval for every allowed parameter value",
        ],
    ),
    "stray_symbol.py": ("Stray", [r"\bq\b", r"cdf", r"neither the variable nor declared"]),
    "unsupported_function.py": (
        "Lambert",
        [r"function LambertW", r"irtgen\.codegen\.functions", r"gammainc, ", r"erf, "],
    ),
}


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(err: str, spec: str, dist: str, patterns) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"irtgen: error: {spec}: {dist}: "), line
    for pattern in patterns:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    return line


@pytest.mark.parametrize("name", sorted(BAD_SPECS))
def test_bad_spec_fails_the_build_with_one_line(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = f"tests/specs/bad/{name}"  # relative: the message repeats it as given
    dist, patterns = BAD_SPECS[name]
    code, out, err = run_cli(capsys, "build", spec, "-o", tmp_path / "out")
    assert code == 2, (code, out, err)
    line = assert_one_line(err, spec, dist, patterns)
    assert not (tmp_path / "out").exists()  # nothing written
    if name == "empty_support.py":  # the values it names do give an empty support
        low, high = map(float, re.search(r"low = (\S+), high = ([^\s(]+)", line).groups())
        assert low >= high, line


def test_every_bad_spec_is_tested():
    assert {p.name for p in BAD.glob("*.py")} == set(BAD_SPECS)


def test_named_values_reproduce_the_problem(capsys, tmp_path):
    """The negative density and the wrong icdf are really there at the values the message
    names (checked here independently, with SymPy)."""
    code, _, err = run_cli(capsys, "build", BAD / "not_monotone.py", "-o", tmp_path)
    assert code == 2
    m = re.search(r"negative \((\S+)\) at z = (\S+) for c = (\S+),", err)
    q, zv, cv = map(float, m.groups())
    z, c = sp.symbols("z c", real=True)
    pdf = sp.diff(z + c * z * (1 - z), z)
    assert float(pdf.subs({z: zv, c: cv})) == pytest.approx(q, rel=1e-4)
    assert q < 0

    code, _, err = run_cli(capsys, "build", BAD / "wrong_icdf.py", "-o", tmp_path)
    assert code == 2
    m = re.search(r"u = (\S+) for rate = (\S+), icdf\(u\) = (\S+) and F\(icdf\(u\)\) = (\S+),", err)
    u, rate, x, f = map(float, m.groups())
    assert x == pytest.approx(-float(sp.log(u)) / rate, rel=1e-5)
    assert f == pytest.approx(1 - u, rel=1e-5)
    assert abs(f - u) > 0.1


def test_debug_shows_the_traceback(capsys, tmp_path):
    code, _, err = run_cli(capsys, "build", BAD / "not_monotone.py", "-o", tmp_path, "--debug")
    assert code == 2
    assert "Traceback (most recent call last)" in err
    assert "diagnostics.py" in err  # where the problem was found
    assert err.strip().splitlines()[-1].startswith("irtgen: error: not_monotone.py: Tilted: ")


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    """As a user runs it: a separate process, a relative path to the spec."""
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "irtgen.cli", "build", "tests/specs/bad/wrong_icdf.py", "-o", out],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert_one_line(
        result.stderr, "tests/specs/bad/wrong_icdf.py", "Flipped", ["icdf does not invert"]
    )
    assert not out.exists()


def test_load_reports_the_same_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("IRTGEN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BuildError) as info:
        irtgen.load(BAD / "limit_upper.py")
    message = str(info.value)
    assert message.startswith("limit_upper.py: Truncated: the cdf tends to 0.")
    assert not [p for p in (tmp_path / "cache").rglob("*.py")]  # nothing cached


# -- fixed versions of the bad specs build ---------------------------------------------------------

HEADER = """\
import sympy as sp

import irtgen

z, u = sp.symbols("z u", real=True)
"""

GOOD_SPECS = {
    # not_monotone.py with the constraint that makes it a CDF
    "tilted": """
c = sp.Symbol("c", real=True)
Tilted = irtgen.Distribution(
    name="Tilted", variable=z, params={c: "interval(-1, 1)"}, support=sp.Interval(0, 1),
    cdf=z + c * z * (1 - z),
)
""",
    # empty_support.py written with a positive width
    "uniform": """
low = sp.Symbol("low", real=True)
width = sp.Symbol("width", positive=True)
Uniform = irtgen.Distribution(
    name="Uniform", variable=z, params={low: "real", width: "positive"},
    support=sp.Interval(low, low + width), cdf=(z - low) / width,
    icdf=sp.Lambda(u, low + u * width),
)
""",
    # wrong_icdf.py with the right icdf; support closed at a parameter (Pareto)
    "pareto": """
m, a = sp.symbols("m a", positive=True)
Pareto = irtgen.Distribution(
    name="Pareto", variable=z, params={m: "positive", a: "positive"},
    support=sp.Interval(m, sp.oo), cdf=1 - (m / z) ** a,
    icdf=sp.Lambda(u, m * (1 - u) ** (-1 / a)),
)
""",
    # limit_symbolic.py without the factor 2: F(oo) is oo/oo numerically, 1 for SymPy
    "ratio": """
k = sp.Symbol("k", positive=True)
PowerRatio = irtgen.Distribution(
    name="PowerRatio", variable=z, params={k: "positive"}, support=sp.Interval(0, sp.oo),
    cdf=z**k / (z**k + 2),
)
""",
    # decreasing_jump.py with the right first piece
    "triangle": """
c = sp.Symbol("c", real=True)
Triangle = irtgen.Distribution(
    name="Triangle", variable=z, params={c: "interval(0, 1)"}, support=sp.Interval(0, 1),
    cdf=sp.Piecewise((z**2 / c, z < c), (1 - (1 - z) ** 2 / (1 - c), True)),
)
""",
    # a support (-oo, hi] that ends at a parameter constrained to an interval
    "negexp": """
hi = sp.Symbol("hi", real=True)
rate = sp.Symbol("rate", positive=True)
NegExp = irtgen.Distribution(
    name="NegExp", variable=z, params={hi: "interval(-2, 3)", rate: "positive"},
    support=sp.Interval(-sp.oo, hi), cdf=sp.exp(rate * (z - hi)),
    icdf=sp.Lambda(u, hi + sp.log(u) / rate),
)
""",
}


@pytest.mark.parametrize("key", sorted(GOOD_SPECS))
def test_fixed_spec_builds(key, capsys, tmp_path):
    spec = tmp_path / f"{key}.py"
    spec.write_text(HEADER + textwrap.dedent(GOOD_SPECS[key]))
    code, out, err = run_cli(capsys, "build", spec, "-o", tmp_path / "out", "-q")
    assert code == 0, err
    assert err == "" and out == ""
    assert len(list((tmp_path / "out").glob("*.py"))) == 1


def test_symbolic_limit_decides_where_numbers_cannot(monkeypatch):
    """z^k/(z^k + 2) at z = oo is oo/oo, and for k = 0.01 still 0.47 at z = 1e24: only the
    (time-boxed) SymPy limit tells 1 from 2."""
    calls = []
    original = diagnostics._Checker._symbolic_limit

    def spy(self, which):
        result = original(self, which)
        calls.append((which, result))
        return result

    monkeypatch.setattr(diagnostics._Checker, "_symbolic_limit", spy)
    (good,) = load_spec_file_from_text(GOOD_SPECS["ratio"])
    diagnostics.check(derive(good))
    assert ("upper", sp.S.One) in calls

    calls.clear()
    (bad,) = load_spec_file(BAD / "limit_symbolic.py")
    with pytest.raises(irtgen.SpecError, match="tends to 2 at the upper end"):
        diagnostics.check(derive(bad))
    assert ("upper", sp.Integer(2)) in calls


def load_spec_file_from_text(body: str, _cache={}):  # noqa: B006 - a small memo
    if body not in _cache:
        namespace: dict = {}
        exec(HEADER + textwrap.dedent(body), namespace)  # noqa: S102 - test specs
        _cache[body] = [v for v in namespace.values() if isinstance(v, irtgen.Distribution)]
    return _cache[body]


GOOD_FILES = [
    *sorted(p for p in builtin_spec_dir().glob("*.py") if p.name != "__init__.py"),
    *sorted((REPO / "tests" / "specs").glob("*.py")),
    REPO / "examples" / "gompertz" / "gompertz_spec.py",
]


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda p: p.name)
def test_shipped_specs_pass_the_checks(path):
    for dist in load_spec_file(path):
        diagnostics.check(derive(dist))


# -- the parameter grid and the time box (irtgen.timelimit: tests/test_timelimit.py) -------------------------------------------------------


def test_constraint_points_lie_inside_the_constraint():
    from irtgen.constraints import parse_constraint

    for name in [
        "real",
        "positive",
        "nonnegative",
        "unit_interval",
        "greater_than(1)",
        "greater_than_eq(-2)",
        "less_than(3)",
        "interval(-1, 4)",
        "half_open_interval(0, 2)",
    ]:
        interval = parse_constraint(name).interval
        inner = diagnostics.constraint_points(interval)
        assert len(inner) == 5 and len(set(inner)) == 5, name
        assert all(interval.contains(sp.Float(x)) for x in inner), name
        ends = diagnostics.constraint_points(interval, closed_ends=True)
        closed = [e for e in (interval.start, interval.end) if e.is_finite and e in interval]
        assert set(ends) - set(inner) == {float(e) for e in closed}, name


def test_checks_stop_without_verdict_when_out_of_time(monkeypatch):
    """A check that runs past CHECK_SECONDS is abandoned and the build goes on."""
    (good,) = load_spec_file_from_text(GOOD_SPECS["tilted"])
    derivation = derive(good)

    def slow(self):
        time.sleep(5)
        raise AssertionError("not interrupted")

    monkeypatch.setattr(diagnostics, "CHECK_SECONDS", 0.2)
    monkeypatch.setattr(diagnostics._Checker, "check_density", slow)
    start = time.monotonic()
    diagnostics.check(derivation)
    assert time.monotonic() - start < 2


def test_nan_arguments_do_not_reach_mpmath():
    """mpmath's betainc never returns for a NaN argument: the checks' functions give NaN."""
    import mpmath

    betainc = diagnostics._namespace()["betainc"]
    start = time.monotonic()
    assert mpmath.isnan(betainc(mpmath.mpf(0.5), mpmath.mpf(0.5), mpmath.mpf(0), mpmath.nan))
    assert time.monotonic() - start < 1
    assert betainc(mpmath.mpf(1), mpmath.mpf(1), mpmath.mpf(0.25), mpmath.mpf(0.75)) == 0.25


def test_build_into_a_file_is_an_error_not_a_traceback(capsys, tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code, _, err = run_cli(
        capsys, "build", Path(__file__).parent / "specs" / "gompertz.py", "-o", target
    )
    assert code == 2
    assert "a file of that name exists" in err and "Traceback" not in err
    assert target.read_text() == "not a folder"
