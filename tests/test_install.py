"""A regular (non-editable) install works away from the checkout.

The package maps ``irtgen.generated`` and ``irtgen.templates`` to top-level folders of the
repository; an editable install hides mistakes in that mapping (package data left out, imports
that only resolve from the checkout). This test installs the project into a fresh venv, then runs
from a folder outside the repository: the built-ins import and sample, the templates are
installed, and the venv's ``irtgen`` script builds a user spec whose module imports.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

USER_SPEC = (Path(__file__).resolve().parent / "specs" / "gompertz.py").read_text()

CHECK_SCRIPT = """\
import importlib.resources
import subprocess
import sys
from pathlib import Path

REPO = Path(sys.argv[1]).resolve()
venv = Path(sys.prefix).resolve()
assert venv != Path(sys.base_prefix).resolve(), "not running in the venv"

import irtgen

where = Path(irtgen.__file__).resolve()
assert where.is_relative_to(venv), f"irtgen imported from {where}, not from the venv {venv}"
assert not where.is_relative_to(REPO), f"irtgen imported from the checkout: {where}"

import torch
from irtgen.distributions import Kumaraswamy, Normal

for name in ("irtgen.generated.normal", "irtgen.generated.kumaraswamy", "irtgen.templates"):
    import importlib
    mod = importlib.import_module(name)
    assert Path(mod.__file__).resolve().is_relative_to(venv), (name, mod.__file__)

torch.manual_seed(0)
f64 = dict(dtype=torch.float64)
loc = torch.tensor(0.5, **f64, requires_grad=True)
scale = torch.tensor(2.0, **f64, requires_grad=True)
x = Normal(loc, scale).rsample((1000,))
x.sum().backward()
torch.testing.assert_close(loc.grad, torch.tensor(1000.0, **f64))
torch.testing.assert_close(scale.grad, ((x.detach() - 0.5) / 2.0).sum())

a = torch.tensor([0.5, 2.0], **f64, requires_grad=True)
b = torch.tensor([3.0, 0.7], **f64, requires_grad=True)
y = Kumaraswamy(a, b).rsample((1000,))
assert bool(((y > 0) & (y < 1)).all())
y.mean().backward()
assert bool(torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all())
assert bool((a.grad != 0).all() and (b.grad != 0).all())

template = importlib.resources.files("irtgen.templates").joinpath("module.py.j2")
assert template.is_file(), "module.py.j2 is not installed with irtgen.templates"

script = Path(sys.executable).parent / "irtgen"
assert script.is_file(), f"no irtgen console script in the venv: {script}"
subprocess.run([str(script), "build", "spec.py", "-o", "out"], check=True)
assert Path("out/gompertz.py").is_file()
subprocess.run([str(script), "build", "spec.py", "-o", "out", "--check", "-q"], check=True)
# the installed built-ins are what the installed specs and templates produce
subprocess.run([str(script), "build", "--builtins", "--check", "-q"], check=True)

sys.path.insert(0, "out")
from gompertz import Gompertz

eta = torch.tensor(1.5, **f64, requires_grad=True)
z = Gompertz(eta, torch.tensor(0.5, **f64)).rsample((500,))
assert bool((z >= 0).all())
z.mean().backward()
assert bool(torch.isfinite(eta.grad)) and float(eta.grad) < 0

ns = irtgen.load("spec.py")  # templates and toolchain hash from the installed package
assert ns.Gompertz.has_rsample
print("INSTALL OK")
"""


def _copy_source(dest: Path) -> Path:
    """The checkout without build products: an in-tree build writes build/ and *.egg-info into
    the source folder (and would reuse a stale build/lib), so install from a clean copy."""
    shutil.copytree(
        REPO,
        dest,
        ignore=shutil.ignore_patterns(
            ".git",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
            ".venv",
            "venv",
        ),
    )
    return dest


@pytest.mark.slow
def test_non_editable_install_in_fresh_venv(tmp_path):
    src = _copy_source(tmp_path / "src")
    venv = tmp_path / "venv"
    env = dict(os.environ)
    for var in ("PYTHONPATH", "IRTGEN_BACKEND", "PYTHONHOME", "VIRTUAL_ENV"):
        env.pop(var, None)
    env["PYTHONNOUSERSITE"] = "1"
    env["IRTGEN_CACHE_DIR"] = str(tmp_path / "cache")

    def run(cmd, cwd):
        result = subprocess.run(
            [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
        return result

    # The fresh venv sees the packages of the environment running the tests (torch, numba,
    # pip, setuptools), after its own: through a .pth file rather than --system-site-packages,
    # which would show the base interpreter's packages when the tests run in a venv themselves
    # (a user's venv: there the base has neither torch nor a setuptools that builds wheels).
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    own = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
    parent = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    parent += [p for p in site.getsitepackages() if p not in parent]
    Path(own.stdout.strip(), "_tests_parent_env.pth").write_text("\n".join(parent) + "\n")
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            src,
        ],
        tmp_path,
    )
    assert (venv / "bin" / "irtgen").is_file()

    work = tmp_path / "work"
    work.mkdir()
    (work / "spec.py").write_text(USER_SPEC)
    (work / "check_install.py").write_text(textwrap.dedent(CHECK_SCRIPT))
    result = run([python, "check_install.py", REPO], work)
    assert "INSTALL OK" in result.stdout
