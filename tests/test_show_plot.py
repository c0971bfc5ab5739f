"""``irtgen show`` and ``irtgen plot``: the derived formulas as text/LaTeX, and the figure.

Most cases call ``irtgen.cli.main`` in this process (SymPy and torch imported once); one
subprocess per command checks the real command line (exit code 2, one error line, no traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sympy as sp
import torch

from irtgen import cli
from irtgen.build import load_spec_file
from irtgen.derive import derive
from irtgen.show import describe, sampler_kind

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "irtgen" / "specs"
GAMMA = SPECS / "gamma.py"
NORMAL = SPECS / "normal.py"
KUMARASWAMY = SPECS / "kumaraswamy.py"
STUDENT_T = SPECS / "student_t.py"
GOMPERTZ = REPO / "tests" / "specs" / "gompertz.py"
TWO = REPO / "tests" / "specs" / "frechet_loglogistic.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A support that depends on a parameter: z >= m.
PARETO_SPEC = """\
import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
m, alpha = sp.symbols("m alpha", positive=True)

Pareto = irtgen.Distribution(
    name="Pareto",
    variable=z,
    params={m: "positive", alpha: "positive"},
    support=sp.Interval(m, sp.oo),
    cdf=1 - (m / z) ** alpha,
)
"""

BAD_SPEC = """\
import sympy as sp

import irtgen

z = sp.Symbol("z", real=True)
rate, q = sp.symbols("rate q", positive=True)

Broken = irtgen.Distribution(
    name="Broken", variable=z, params={rate: "positive"},
    support=sp.Interval(0, sp.oo), cdf=1 - sp.exp(-rate * q * z),
)
"""


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    """irtgen.load builds into a private cache; formulas wrap at a fixed width."""
    cache = tmp_path_factory.getbasetemp() / "irtgen-cache"
    monkeypatch.setenv("IRTGEN_CACHE_DIR", str(cache))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("IRTGEN_BACKEND", raising=False)


@pytest.fixture(scope="module")
def pareto(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pareto") / "pareto.py"
    path.write_text(PARETO_SPEC)
    return path


def run_main(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def run_cli(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("IRTGEN_BACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", "irtgen.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def block(text: str, header: str) -> list[str]:
    """The lines under the first line starting with ``header``, up to the next blank line."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(header)]
    assert starts, f"no section {header!r} in:\n{text}"
    out = []
    for line in lines[starts[0] + 1 :]:
        if not line.strip():
            break
        out.append(line)
    return out


# -- irtgen show ----------------------------------------------------------------------------------


def test_show_gamma_prints_derived_formulas(capsys):
    rc, out, err = run_main(capsys, "show", GAMMA)
    assert rc == 0, err
    assert out.startswith("Gamma")
    assert block(out, "support") == ["    z ∈ [0, ∞)"]  # closed at 0, as torch declares it
    assert block(out, "parameters") == [
        "    concentration  positive  (0, ∞)",
        "    rate           positive  (0, ∞)",
    ]
    # density and log-density as derived (after irtgen's rewrites)
    assert "log_gamma_density(concentration, rate⋅z)" in "\n".join(block(out, "density  q"))
    assert block(out, "log-density") == ["    log(rate) + log_gamma_density(concentration, rate⋅z)"]
    # dz/drate = -z/rate, dz/dconcentration through the incomplete-gamma ratio
    assert [s.strip() for s in block(out, "implicit gradient  dz/drate")] == ["-z", "────", "rate"]
    grad_a = "\n".join(block(out, "implicit gradient  dz/dconcentration"))
    assert "-gammainc_da_ratio(concentration, rate⋅z)" in grad_a
    # the functions used are explained
    assert "gammainc_da_ratio(a, x)" in out and "log_gamma_density(a, x)" in out


def test_show_normal_gradients_are_one_and_standardized_value(capsys):
    rc, out, _ = run_main(capsys, "show", NORMAL)
    assert rc == 0
    assert block(out, "implicit gradient  dz/dloc") == ["    1"]
    assert [s.strip() for s in block(out, "implicit gradient  dz/dscale")] == [
        "-loc + z",
        "────────",
        "scale",
    ]
    rc, tex, _ = run_main(capsys, "show", NORMAL, "--latex")
    assert rc == 0
    assert r"\frac{\partial z}{\partial \mathit{loc}} = 1" in tex
    assert (
        r"\frac{\partial z}{\partial \mathit{scale}} = \frac{- \mathit{loc} + z}{\mathit{scale}}"
        in tex
    )


def test_show_formulas_match_the_derivation():
    """What show prints is the derivation's own expressions (checked for a user spec)."""
    (dist,) = load_spec_file(GOMPERTZ)
    d = derive(dist)
    eta, b = d.params
    assert sp.simplify(d.implicit[1] - (-d.z / b)) == 0
    text = describe(d, width=100)
    assert [s.strip() for s in block(text, "implicit gradient  dz/db")] == ["-z", "───", "b"]
    assert "b⋅η⋅ℯ" in "\n".join(block(text, "density  q"))  # q = b η exp(b z − η expm1(b z))
    assert block(text, "log-density") == ["    b⋅z - η⋅expm1(b⋅z) + log(b) + log(η)"]
    assert "expm1(x)  exp(x) - 1" in text
    latex = describe(d, latex=True)
    assert r"\operatorname{expm1}" in latex and "⋅" not in latex


def test_show_user_spec_from_the_command_line(capsys):
    rc, out, err = run_main(capsys, "show", GOMPERTZ)
    assert rc == 0, err
    assert out.startswith("Gompertz  (")
    for header in ("density  q = ∂F/∂z", "log-density  log q", "implicit gradient  dz/deta"):
        assert header in out
    assert block(out, "implicit gradient  dz/deta")  # a formula under it
    assert "eta  positive  (0, ∞)" in out


def test_show_latex(capsys):
    rc, out, _ = run_main(capsys, "show", GAMMA, "--latex")
    assert rc == 0
    assert r"\frac" in out
    assert r"\operatorname{gammainc\_da\_ratio}" in out
    assert r"q(z; \mathit{concentration}, \mathit{rate}) = " in out
    grads = block(out, "implicit gradient  dz/drate")
    assert grads == [r"    \frac{\partial z}{\partial \mathit{rate}} = - \frac{z}{\mathit{rate}}"]
    assert "─" not in out  # no pretty-printed pictures


@pytest.mark.parametrize(
    ("spec", "kind", "draw", "icdf"),
    [
        (GAMMA, "sampler", "sampler formula z = standard_gamma(concentration)/rate", "numeric"),
        (NORMAL, "sampler", "sampler formula z = loc + scale*standard_normal()", "closed form"),
        (KUMARASWAMY, "icdf", "closed-form inverse CDF applied to uniforms", "closed form"),
        (GOMPERTZ, "numeric", "numeric inversion of the CDF", "the same numeric inversion"),
    ],
)
def test_show_reports_the_sampler(capsys, spec, kind, draw, icdf):
    (dist,) = load_spec_file(spec)
    assert sampler_kind(dist) == kind
    rc, out, _ = run_main(capsys, "show", spec)
    assert rc == 0
    lines = block(out, "samples")
    text = " ".join(" ".join(lines).split())
    assert lines[0].startswith("    sample/rsample  ")
    assert draw in text, text
    icdf_line = [line for line in lines if line.startswith("    icdf ")]
    assert icdf_line and icdf in icdf_line[0], lines
    if kind != "numeric":
        assert "numeric inversion of the CDF" not in lines[0]


def test_show_name_selects_one_distribution(capsys):
    rc, out, _ = run_main(capsys, "show", TWO)
    assert rc == 0
    assert out.startswith("Frechet") and "\nLogLogistic  (" in out
    rc, out, _ = run_main(capsys, "show", TWO, "--name", "LogLogistic")
    assert rc == 0
    assert out.startswith("LogLogistic") and "Frechet" not in out
    rc, out, err = run_main(capsys, "show", TWO, "--name", "Weibull")
    assert rc == 2 and out == ""
    assert err.startswith("irtgen: error: ") and "no distribution named 'Weibull'" in err
    assert "Frechet, LogLogistic" in err


def test_show_errors_go_through_the_build_error_path(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text(BAD_SPEC)
    result = run_cli("show", bad)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("irtgen: error: ") and "Broken" in lines[0] and "q" in lines[0]
    assert "Traceback" not in result.stderr
    missing = run_cli("show", tmp_path / "nope.py", "--debug")
    assert missing.returncode == 2
    assert "Traceback" in missing.stderr  # --debug shows it
    assert (
        missing.stderr.strip().splitlines()[-1]
        == f"irtgen: error: {tmp_path / 'nope.py'}: no such spec file"
    )


# -- irtgen plot ----------------------------------------------------------------------------------


def assert_png(path: Path, min_kb: int = 20) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:16]
    assert len(data) > min_kb * 1024, len(data)


def test_plot_gamma_writes_png(capsys, tmp_path):
    out = tmp_path / "gamma.png"
    rc, stdout, err = run_main(
        capsys, "plot", GAMMA, "--param", "concentration=2", "--param", "rate=3", "-o", out
    )
    assert rc == 0, err
    assert f"wrote {out}" in stdout
    assert_png(out)


def test_plot_parameter_dependent_support(capsys, tmp_path, pareto):
    out = tmp_path / "pareto.png"
    rc, _, err = run_main(
        capsys,
        "plot",
        pareto,
        "--param",
        "m=1.5",
        "--param",
        "alpha=3",
        "-o",
        out,
        "--samples",
        "0",
    )
    assert rc == 0, err
    assert_png(out)


def test_plot_values_are_the_library_values(pareto):
    """Range from the support and the CDF's quantiles; curves equal the distribution's own
    log_prob/cdf/implicit gradient (through reparameterize) in float64."""
    import irtgen
    from irtgen.plot import TAIL, evaluate, plot_range

    pareto_cls = irtgen.load(pareto).Pareto
    module = pareto_cls.family.module
    lo, hi = plot_range(module, {"m": 1.5, "alpha": 3.0})
    assert lo == 1.5  # the finite end, where the parameter puts it
    assert hi == pytest.approx(1.5 * TAIL ** (-1 / 3), rel=1e-10)  # F(hi) = 1 - TAIL

    gamma = irtgen.load(GAMMA).Gamma
    values = {"concentration": 2.0, "rate": 3.0}
    lo, hi = plot_range(gamma.family.module, values)
    assert lo == 0.0
    from scipy import stats

    assert hi == pytest.approx(stats.gamma.ppf(1 - TAIL, 2.0, scale=1 / 3), rel=1e-9)
    curves = evaluate(gamma.family.module, values, lo, hi, n=50)
    z = torch.tensor(curves["z"], dtype=torch.float64)
    a = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    dist = gamma(a, b)
    pdf = dist.log_prob(z).exp().detach().numpy()
    assert abs(pdf - curves["pdf"]).max() < 1e-13
    assert abs(dist.cdf(z).detach().numpy() - curves["cdf"]).max() < 1e-15
    dist.reparameterize(z).sum().backward()
    assert float(a.grad) == pytest.approx(curves["grads"]["concentration"].sum(), rel=1e-12)
    assert float(b.grad) == pytest.approx(curves["grads"]["rate"].sum(), rel=1e-12)
    assert float(b.grad) == pytest.approx(float(-(z / 3).sum()), rel=1e-12)  # dz/drate = -z/rate

    normal = irtgen.load(NORMAL).Normal.family.module
    lo, hi = plot_range(normal, {"loc": 1.0, "scale": 2.0})
    assert (lo, hi) == pytest.approx(
        (1 + 2 * stats.norm.ppf(TAIL), 1 + 2 * stats.norm.ppf(1 - TAIL))
    )


def test_plot_parameters_with_defaults_may_be_omitted():
    from irtgen.plot import parse_params

    (t,) = load_spec_file(STUDENT_T)
    assert parse_params(t, ["df=3"]) == {"df": 3.0, "loc": 0.0, "scale": 1.0}
    assert parse_params(t, ["scale=2", "df=0.5"]) == {"df": 0.5, "loc": 0.0, "scale": 2.0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["concentration=2"], "needs a value for rate (positive)"),
        (["concentration=2", "rate=-1"], "rate=-1 violates its constraint positive"),
        (["concentration=0", "rate=1"], "concentration=0 violates its constraint positive"),
        (["concentration=2", "rate=abc"], "rate='abc' is not a number (rate is positive)"),
        (["concentration=2", "rate=1", "shape=1"], "Gamma has no parameter 'shape'"),
        (["concentration=2", "rate"], "--param 'rate': expected NAME=VALUE"),
        (["concentration=2", "rate=1", "rate=2"], "parameter rate given twice"),
        (["concentration=nan", "rate=1"], "concentration=nan violates its constraint positive"),
    ],
)
def test_plot_bad_params_exit_2(capsys, tmp_path, params, message):
    out = tmp_path / "x.png"
    args = [a for p in params for a in ("--param", p)]
    rc, stdout, err = run_main(capsys, "plot", GAMMA, *args, "-o", out)
    assert rc == 2
    assert err.startswith("irtgen: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_plot_bad_param_from_the_command_line(tmp_path):
    result = run_cli(
        "plot", GAMMA, "--param", "concentration=2", "--param", "rate=-3", "-o", tmp_path / "g.png"
    )
    assert result.returncode == 2
    assert result.stderr == (
        "irtgen: error: parameter rate=-3 violates its constraint positive: "
        "rate must lie in (0, inf)\n"
    )
    assert not (tmp_path / "g.png").exists()


def test_plot_several_distributions_need_name(capsys, tmp_path):
    rc, _, err = run_main(capsys, "plot", TWO, "--param", "lam=1", "--param", "k=2")
    assert rc == 2 and "choose one with --name" in err
    out = tmp_path / "ll.png"
    rc, _, err = run_main(
        capsys, "plot", TWO, "--name", "LogLogistic", "--param", "lam=1", "--param", "k=4",
        "--samples", "0", "-o", out,
    )  # fmt: skip
    assert rc == 0, err
    assert_png(out)


def test_plot_without_matplotlib(capsys, monkeypatch, tmp_path):
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    out = tmp_path / "g.png"
    rc, _, err = run_main(
        capsys, "plot", GAMMA, "--param", "concentration=2", "--param", "rate=3", "-o", out
    )
    assert rc == 2
    assert err == textwrap.dedent(
        """\
        irtgen: error: irtgen plot needs matplotlib, which is not installed: pip install "irtgen[plot]"
        """
    )
    assert not out.exists()


def test_plot_into_a_missing_folder_fails_and_creates_nothing(capsys, tmp_path):
    out = tmp_path / "nonexistent" / "dir" / "gamma.png"
    rc, _, err = run_main(
        capsys, "plot", GAMMA, "--param", "concentration=2", "--param", "rate=3", "-o", out
    )
    assert rc == 2
    assert f"no folder {out.parent}" in err and "Traceback" not in err
    assert not (tmp_path / "nonexistent").exists()


NOT_MONOTONE = REPO / "tests" / "specs" / "bad" / "not_monotone.py"


def test_show_reports_what_build_refuses(capsys):
    """A CDF that is not monotone: show prints the formulas, then the error that build gives,
    and exits 2 as build does."""
    rc_build, _, err_build = run_main(capsys, "build", NOT_MONOTONE, "--check")
    rc, out, err = run_main(capsys, "show", NOT_MONOTONE)
    assert rc == rc_build == 2
    assert "CDF" in out
    build_message = err_build.strip().splitlines()[-1].removeprefix("irtgen: error: ")
    assert build_message in err and "irtgen build refuses this spec" in err
