"""The ``irtgen build`` command line, run as a user would: in a subprocess, on spec files on disk.

Exit codes: 0 ok, 1 drift (``--check`` found a stale or missing file), 2 error (bad spec, bad
arguments). Errors are one line on stderr naming the spec file, the distribution and the problem,
with no Python traceback unless ``--debug``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SPECS = Path(__file__).resolve().parent / "specs"
GOMPERTZ_SPEC = (SPECS / "gompertz.py").read_text()

TWO_SPEC = (SPECS / "frechet_loglogistic.py").read_text()

# A spec with one distribution "Broken" whose cdf is filled in per error case.
BROKEN_SPEC = """\
import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
rate = sp.Symbol("rate", positive=True)
q = sp.Symbol("q", positive=True)

Broken = irtgen.Distribution(
    name="Broken",
    variable=z,
    params={{rate: "positive"}},
    support=sp.Interval(0, sp.oo),
    cdf={cdf},
)
"""

EXPECTED_MODULES = {"gompertz.py", "frechet.py", "log_logistic.py"}


def _env() -> dict:
    env = dict(os.environ)
    env.pop("IRTGEN_BACKEND", None)  # the default (torch on CPU tensors)
    return env


def irtgen_cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "irtgen.cli", *map(str, args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def header(path: Path) -> tuple[str, str]:
    lines = path.read_text().splitlines()
    return lines[0], lines[1]


def regenerate_command(path: Path) -> list[str]:
    _, second = header(path)
    m = re.fullmatch(r"# Regenerate with: (.+)", second)
    assert m, f"no regenerate command in the header of {path}: {second!r}"
    return shlex.split(m.group(1))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user project: two spec files built by one ``irtgen build`` call into ``out/``."""
    root = tmp_path_factory.mktemp("project")
    (root / "gompertz.py").write_text(GOMPERTZ_SPEC)
    (root / "two.py").write_text(TWO_SPEC)
    result = irtgen_cli("build", "gompertz.py", "two.py", "-o", "out", cwd=root)
    return root, result


def copy_project(project, dest: Path) -> Path:
    root, result = project
    assert result.returncode == 0, result.stderr
    shutil.copytree(root, dest)
    return dest


# -- building user specs ------------------------------------------------------------------------


def test_build_writes_one_module_per_distribution(project):
    root, result = project
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name for p in (root / "out").glob("*.py")} == EXPECTED_MODULES
    for name in ("Gompertz", "Frechet", "LogLogistic"):
        assert re.search(rf"{name}\s+written", result.stdout), result.stdout


def test_generated_header_names_spec_and_regenerate_command(project):
    root, _ = project
    cases = {
        "gompertz.py": "gompertz.py",
        "frechet.py": "two.py",
        "log_logistic.py": "two.py",
    }
    for module, spec in cases.items():
        first, second = header(root / "out" / module)
        assert first.startswith("#") and spec in first, first
        assert "do not edit" in first.lower(), first
        assert second == f"# Regenerate with: irtgen build {spec} -o out", second
        # no machine-specific paths in a file meant to be committed
        assert str(root) not in (root / "out" / module).read_text()


def test_generated_modules_import_and_sample(project):
    root, _ = project
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, "out")
        import torch
        from frechet import Frechet
        from gompertz import Gompertz
        from log_logistic import LogLogistic

        torch.manual_seed(0)
        f64 = dict(dtype=torch.float64)
        for cls in (Gompertz, Frechet, LogLogistic):
            assert issubclass(cls, torch.distributions.Distribution), cls
            assert cls.has_rsample, cls

        # Gompertz: samples are Gompertz distributed (F(x) is uniform) and the implicit gradient
        # matches the closed form dz/deta = -(e^(bz) - 1) / (eta b e^(bz)), dz/db = -z / b.
        eta = torch.tensor([0.5, 2.0], **f64, requires_grad=True)
        b = torch.tensor([1.5, 0.7], **f64, requires_grad=True)
        d = Gompertz(eta, b)
        x = d.rsample((4000,))
        assert x.shape == (4000, 2), x.shape
        assert bool((x >= 0).all()) and bool(torch.isfinite(x).all())
        u = d.cdf(x.detach())
        assert abs(float(u.mean()) - 0.5) < 0.02, float(u.mean())
        assert abs(float((u < 0.25).double().mean()) - 0.25) < 0.02
        x.sum().backward()
        xd, e, bb = x.detach(), eta.detach(), b.detach()
        want_eta = (-torch.expm1(bb * xd) / (e * bb * torch.exp(bb * xd))).sum(0)
        want_b = (-xd / bb).sum(0)
        torch.testing.assert_close(eta.grad, want_eta, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(b.grad, want_b, rtol=1e-6, atol=1e-9)

        # Frechet median s (ln 2)^(-1/alpha); LogLogistic median lam.
        alpha = torch.tensor(3.0, **f64, requires_grad=True)
        s = torch.tensor(2.0, **f64, requires_grad=True)
        y = Frechet(alpha, s).rsample((4000,))
        med = 2.0 * torch.log(torch.tensor(2.0, **f64)) ** (-1 / 3)
        assert abs(float(y.median()) / float(med) - 1) < 0.05, (float(y.median()), float(med))
        y.mean().backward()
        assert torch.isfinite(alpha.grad) and torch.isfinite(s.grad)
        assert float(s.grad) > 0  # the Frechet is a scale family in s: dz/ds = z/s > 0
        torch.testing.assert_close(s.grad, y.detach().mean() / 2.0, rtol=1e-6, atol=1e-9)

        lam = torch.tensor(4.0, **f64, requires_grad=True)
        kk = torch.tensor(5.0, **f64)
        w = LogLogistic(lam, kk).rsample((4000,))
        assert abs(float(w.median()) / 4.0 - 1) < 0.05, float(w.median())
        w.mean().backward()
        torch.testing.assert_close(lam.grad, w.detach().mean() / 4.0, rtol=1e-6, atol=1e-9)
        print("SAMPLED OK")
        """
    )
    result = run_python(code, cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SAMPLED OK" in result.stdout


def test_rebuild_reports_unchanged_and_keeps_files(project):
    root, _ = project
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (root / "out").glob("*.py")}
    result = irtgen_cli("build", "gompertz.py", "two.py", "-o", "out", cwd=root)
    assert result.returncode == 0, result.stderr
    for name in ("Gompertz", "Frechet", "LogLogistic"):
        assert re.search(rf"{name}\s+unchanged", result.stdout), result.stdout
    assert "written" not in result.stdout
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (root / "out").glob("*.py")}
    assert after == before


def test_check_up_to_date_exits_0_with_header_command(project):
    """The command written in the header, run with --check, finds the file up to date."""
    root, _ = project
    cmd = regenerate_command(root / "out" / "frechet.py")
    assert cmd[:2] == ["irtgen", "build"], cmd
    result = irtgen_cli(*cmd[1:], "--check", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout
    assert result.stderr == ""


def test_check_detects_hand_edit(project, tmp_path):
    root = copy_project(project, tmp_path / "p")
    target = root / "out" / "gompertz.py"
    original = target.read_text()
    edited = original.replace("def cdf(", "def cdf_edited_by_hand(", 1)
    assert edited != original
    target.write_text(edited)

    result = irtgen_cli("build", "gompertz.py", "-o", "out", "--check", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"Gompertz\s+stale", result.stdout), result.stdout
    assert "out of date" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == edited  # --check writes nothing

    # the regenerate command restores the file
    result = irtgen_cli(*regenerate_command(target)[1:], cwd=root)
    assert result.returncode == 0, result.stderr
    assert re.search(r"Gompertz\s+written", result.stdout), result.stdout
    assert target.read_text() == original


def test_check_detects_missing_file(project, tmp_path):
    root = copy_project(project, tmp_path / "p")
    (root / "out" / "frechet.py").unlink()
    result = irtgen_cli("build", "two.py", "-o", "out", "--check", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"Frechet\s+missing", result.stdout), result.stdout
    assert re.search(r"LogLogistic\s+unchanged", result.stdout), result.stdout
    assert "out of date" in result.stderr
    assert not (root / "out" / "frechet.py").exists()  # --check writes nothing

    result = irtgen_cli("build", "two.py", "-o", "fresh", "--check", cwd=root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (root / "fresh").exists()


def test_console_script_with_absolute_paths(tmp_path):
    bindir = str(Path(sys.executable).parent)
    script = shutil.which("irtgen", path=os.pathsep.join([bindir, os.environ.get("PATH", "")]))
    assert script, "the irtgen console script is not installed"
    spec = tmp_path / "gompertz.py"
    spec.write_text(GOMPERTZ_SPEC)
    out = tmp_path / "out"
    result = subprocess.run(
        [script, "build", str(spec), "-o", str(out), "-q"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # -q: only problems are printed
    text = (out / "gompertz.py").read_text()
    first, second = header(out / "gompertz.py")
    assert "gompertz.py" in first
    assert second.startswith("# Regenerate with: irtgen build ")
    assert str(tmp_path) not in text  # absolute paths are not written into generated files


def test_builtins_check_passes_on_committed_tree(tmp_path):
    """The drift check CI runs: generated/ matches what irtgen/specs/ produce."""
    generated = REPO / "generated"
    before = {p.name: p.stat().st_mtime_ns for p in generated.glob("*.py")}
    result = irtgen_cli("build", "--builtins", "--check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout
    assert "stale" not in result.stdout and "missing" not in result.stdout
    assert "orphan" not in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in generated.glob("*.py")} == before
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory


# -- errors -------------------------------------------------------------------------------------

ERROR_CASES = {
    # id: (spec file text or None for no file, file name, words the message must contain)
    "undeclared-symbol": (
        BROKEN_SPEC.format(cdf="1 - sp.exp(-rate * q * z)"),
        "spec.py",
        ["spec.py", "Broken", r"\bq\b", "declared"],
    ),
    "syntax-error": (
        "import sympy as sp\n\nx = (\n",
        "spec.py",
        ["spec.py", "SyntaxError", "line"],
    ),
    "spec-raises": (
        BROKEN_SPEC.format(cdf="1 - sp.exp(-rate * z) + 1 / 0"),
        "spec.py",
        ["spec.py", "ZeroDivisionError"],
    ),
    "no-distribution": (
        'import sympy as sp\n\nx = sp.Symbol("x")\n',
        "spec.py",
        ["spec.py", "no irtgen.Distribution"],
    ),
    "nonexistent-file": (None, "no_such_spec.py", ["no_such_spec.py", "no such"]),
    "unsupported-function": (
        BROKEN_SPEC.format(cdf="1 - sp.exp(-rate * z) * sp.besselj(0, z)"),
        "spec.py",
        ["spec.py", "Broken", "besselj"],
    ),
    # sp.Function("g") has no derivative: derive has an error for this ("a function without a
    # known derivative"), which must surface as a build error, not a crash.
    "opaque-function": (
        BROKEN_SPEC.format(cdf='1 - sp.exp(-rate * sp.Function("g")(z))'),
        "spec.py",
        ["spec.py", "Broken", r"\bg\b"],
    ),
    # A piecewise cdf must cover every point with a final (expr, True) piece; a single piece
    # with a condition leaves z <= 1 undefined.
    "piecewise-not-covering": (
        BROKEN_SPEC.format(cdf="sp.Piecewise((1 - sp.exp(-rate * z), z > 1))"),
        "spec.py",
        ["spec.py", "Broken", "(?i)piecewise"],
    ),
}


def write_case(case: str, tmp_path: Path) -> str:
    text, name, _ = ERROR_CASES[case]
    if text is not None:
        (tmp_path / name).write_text(text)
    return name


def assert_one_line_error(result, words):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert re.search(word, lines[0]), f"{word!r} not in {lines[0]!r}"


def lines_start(text: str, prefix: str) -> bool:
    return all(line.startswith(prefix) for line in text.strip().splitlines())


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_bad_spec_is_a_one_line_error(case, tmp_path):
    name = write_case(case, tmp_path)
    result = irtgen_cli("build", name, "-o", "out", cwd=tmp_path)
    assert_one_line_error(result, ERROR_CASES[case][2])
    assert lines_start(result.stderr, "irtgen")
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize(
    "args", [["build"], ["build", "-o", "out"], ["build", "--check"]], ids=" ".join
)
def test_build_without_specs_is_an_error(args, tmp_path):
    result = irtgen_cli(*args, cwd=tmp_path)
    assert_one_line_error(result, ["--builtins"])
    assert not (tmp_path / "out").exists()


def test_no_subcommand_is_a_usage_error(tmp_path):
    result = irtgen_cli(cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage" in result.stderr.lower()


@pytest.fixture(scope="module")
def debug_runs(tmp_path_factory):
    runs = {}
    for case in ("undeclared-symbol", "unsupported-function"):
        root = tmp_path_factory.mktemp(f"debug-{case}")
        name = write_case(case, root)
        runs[case] = irtgen_cli("build", name, "-o", "out", "--debug", cwd=root)
    return runs


@pytest.mark.parametrize("case", ["undeclared-symbol", "unsupported-function"])
def test_debug_shows_traceback(case, debug_runs):
    result = debug_runs[case]
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr, result.stderr
    assert "BuildError" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for word in ERROR_CASES[case][2]:
        assert re.search(word, last), f"{word!r} not in {last!r}"


@pytest.mark.parametrize("case", ["undeclared-symbol", "unsupported-function"])
def test_debug_keeps_error_exit_code(case, debug_runs):
    """--debug changes what is printed, not the exit code: 2 (error), never 1 (drift)."""
    assert debug_runs[case].returncode == 2, debug_runs[case].returncode
