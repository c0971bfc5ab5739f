"""Every generated Triton kernel compiles to PTX for sm_90 (float32 and float64) on this CPU-only
machine. Runs in a subprocess: compiling needs Triton without the interpreter, which the rest of
the suite uses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.families.test_user_families import SPEC

SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys
    import irtgen
    from irtgen.runtime.lazy_triton import compile_for_gpu, kernel_names

    modules = [importlib.import_module("irtgen.generated." + n) for n in sys.argv[2:]]
    user = irtgen.load(sys.argv[1])
    modules += [sys.modules[getattr(user, n).__module__] for n in ("Pareto", "TwoSidedExponential")]
    report = {}
    for m in modules:
        sizes = compile_for_gpu(m, arch=90)
        assert len(sizes) == 2 * len(kernel_names(m)) == 20, (m.__name__, sizes)
        report[m.__name__] = min(sizes.values())
    print(json.dumps(report))
    """
)

BUILTINS = [
    "normal",
    "laplace",
    "logistic",
    "gumbel",
    "weibull",
    "exponential",
    "cauchy",
    "kumaraswamy",
]


@pytest.mark.slow
def test_every_kernel_compiles_for_sm90(tmp_path):
    spec = tmp_path / "user.py"
    spec.write_text(SPEC)
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["IRTGEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(spec), *BUILTINS],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = proc.stdout.strip().splitlines()[-1]
    for name in BUILTINS:
        assert f"irtgen.generated.{name}" in report


MIXTURE_SCRIPT = textwrap.dedent(
    """
    import importlib, json
    from irtgen.runtime.lazy_triton import compile_for_gpu

    report = {}
    for name in ("gamma", "beta"):
        m = importlib.import_module("irtgen.generated." + name)
        sizes = compile_for_gpu(m, arch=90, dtypes=("fp32",), only=("mixture_sample_kernel", "mixture_backward_kernel"))
        assert len(sizes) == 2, sizes
        report[name] = min(sizes.values())
    print(json.dumps(report))
    """
)


def test_special_family_mixture_kernels_compile_for_sm90(tmp_path):
    # the fused mixture kernels inline a special-function family's device functions (incomplete
    # gamma/beta ratios, their loops): they must compile too
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    proc = subprocess.run(
        [sys.executable, "-c", MIXTURE_SCRIPT], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = proc.stdout.strip().splitlines()[-1]
    assert '"gamma"' in report and '"beta"' in report
