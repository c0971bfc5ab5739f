"""Student-t functions of the torch and Triton paths against mpmath: student_t_ddf_ratio (the ratio
behind dz/ddf) across df from 0.05 to 1e7, on both sides of the switch from the incomplete beta to
quadrature at df = 50 and of the switch from Gauss-Legendre to Gauss-Laguerre at |t| = 3;
the quadrature tables; the rendered Triton sums; compilation for sm_90."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mpmath
import pytest
import torch

from irtgen import functions as F
from irtgen.runtime import torch_special as ts

ROOT = Path(__file__).resolve().parents[2]

# df below, at and above the switch to quadrature (50); |t| around the Legendre/Laguerre split (3)
DFS = (0.05, 0.3, 1.0, 3.0, 10.0, 30.0, 49.9, 50.0, 70.0, 300.0, 1e3, 1e4, 1e5, 1e6, 1e7)
TS = (1e-8, 0.3, 1.0, 1.55, 2.9999, 3.0, 3.0001, 4.75, 6.0, 30.0, 1e3)


def _points():
    out = []
    for df in DFS:
        for t in TS:
            if df >= 1e7 and t >= 1e3:
                continue  # mpmath's incomplete beta does not converge there
            out += [(df, t), (df, -t)]
    return out


POINTS = _points()


@functools.cache
def _reference(df: float, t: float) -> float:
    with mpmath.workdps(60):  # the df-derivative of the half-CDF: 40 digits are not enough at 1e7
        return float(F.student_t_ddf_ratio._mp(mpmath.mpf(df), mpmath.mpf(t)))


def _rel(got: torch.Tensor, want: list[float]) -> torch.Tensor:
    want_t = torch.tensor(want, dtype=torch.float64)
    rel = ((got.double() - want_t).abs() / want_t.abs()).nan_to_num(nan=math.inf)
    return torch.where(got.double() == want_t, 0.0, rel)  # exact (also both 0) counts as exact


def _args(points, dtype=torch.float64):
    df = torch.tensor([p[0] for p in points], dtype=dtype)
    t = torch.tensor([p[1] for p in points], dtype=dtype)
    return df, t


def test_torch_ddf_ratio_float64_matches_mpmath():
    df, t = _args(POINTS)
    got = ts.student_t_ddf_ratio(df, t)
    err = _rel(got, [_reference(*p) for p in POINTS])
    worst = int(err.argmax())
    assert err.max() <= 1e-13, (POINTS[worst], err.max().item())
    # the quadrature (df >= 50) is good to a few ulp
    large = df >= 50
    assert err[large].max() <= 5e-15, err[large].max().item()


def test_torch_ddf_ratio_is_odd_and_zero_at_zero():
    df = torch.tensor([0.5, 20.0, 50.0, 1e4, 1e6], dtype=torch.float64)
    for t in (0.7, 2.5, 3.5, 40.0):
        tt = torch.full_like(df, t)
        assert torch.equal(ts.student_t_ddf_ratio(df, -tt), -ts.student_t_ddf_ratio(df, tt))
    assert torch.equal(ts.student_t_ddf_ratio(df, torch.zeros_like(df)), torch.zeros_like(df))


def test_torch_ddf_ratio_is_continuous_across_the_switches():
    # df = 50 changes the algorithm, |t| = 3 the quadrature rule: no step at either
    below, above = ts.student_t_ddf_ratio, ts.student_t_ddf_ratio
    t = torch.tensor([0.4, 1.7, 2.9, 5.0, 60.0], dtype=torch.float64)
    lo = below(torch.full_like(t, math.nextafter(50.0, 0.0)), t)
    hi = above(torch.full_like(t, 50.0), t)
    assert ((lo - hi).abs() / hi.abs()).max() <= 1e-13
    df = torch.tensor([50.0, 400.0, 1e5], dtype=torch.float64)
    lo = ts.student_t_ddf_ratio(df, torch.full_like(df, 3.0))
    hi = ts.student_t_ddf_ratio(df, torch.full_like(df, math.nextafter(3.0, 4.0)))
    assert ((lo - hi).abs() / hi.abs()).max() <= 1e-14


def test_torch_float32_is_finite_and_the_rounded_float64_result():
    # issue target: no NaN or inf gradient for df in [0.05, 1e6] in float32
    df = torch.tensor([0.05, 0.5, 5.0, 49.0, 50.0, 500.0, 1e4, 1e6], dtype=torch.float32)
    t = torch.tensor([-3e4, -5.0, -0.01, 0.0, 2.0, 3.0, 8.0, 1e3], dtype=torch.float32)
    df, t = (v.reshape(-1, 1) for v in (df, t))
    df, t = torch.broadcast_tensors(df, t.T)
    got = ts.student_t_ddf_ratio(df, t)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert torch.equal(got, ts.student_t_ddf_ratio(df.double(), t.double()).float())


def test_quadrature_tables_are_gauss_rules():
    # an n-point Gauss rule integrates polynomials of degree <= 2n - 1 exactly
    n = len(ts._LEGENDRE_P)
    assert n == len(ts._LEGENDRE_W) == len(ts._LAGUERRE_R) == len(ts._LAGUERRE_W) == 16
    for k in range(2 * n):
        leg = math.fsum(w * p**k for p, w in zip(ts._LEGENDRE_P, ts._LEGENDRE_W, strict=True))
        assert leg == pytest.approx(1.0 / (k + 1), rel=1e-14), k
        lag = math.fsum(w * r**k for r, w in zip(ts._LAGUERRE_R, ts._LAGUERRE_W, strict=True))
        assert lag == pytest.approx(math.factorial(k), rel=1e-12), k


def test_psi_half_series():
    # c(df) = [psi((df+1)/2) - psi(df/2) - 1/df]/2 from its asymptotic series, for df >= 50
    df = [50.0, 77.0, 1e3, 1e6]
    got = ts._ddf_c(torch.tensor(df, dtype=torch.float64))
    with mpmath.workdps(40):
        want = [
            float(
                (
                    mpmath.digamma((mpmath.mpf(d) + 1) / 2)
                    - mpmath.digamma(mpmath.mpf(d) / 2)
                    - 1 / mpmath.mpf(d)
                )
                / 2
            )
            for d in df
        ]
    assert _rel(got, want).max() <= 4e-16


def _render():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "render", ROOT / "tools/render_student_t_quadrature.py"
    )
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    return render


def test_tables_and_triton_sums_are_the_rendered_rules():
    # the tables and the unrolled Triton sums are what tools/render_student_t_quadrature.py
    # computes with mpmath (no hand edits, no drift between the backends)
    render = _render()
    assert render.render_tables() in (ROOT / "irtgen/runtime/torch_special.py").read_text()
    assert render.render_triton() in (ROOT / "irtgen/runtime/triton_special.py").read_text()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_triton_matches_mpmath_and_torch(dtype):
    from tests.special.student_t_kernel import student_t_functions

    points = [p for p in POINTS if p[0] in (0.3, 10.0, 49.9, 50.0, 1e3, 1e6)]
    df, t = _args(points, dtype)
    cdf, ratio = student_t_functions(df, t)
    want = ts.student_t_ddf_ratio(df, t)
    assert ratio.dtype == dtype
    if dtype == torch.float64:
        assert _rel(ratio, [_reference(*p) for p in points]).max() <= 1e-13
        assert _rel(ratio, want.tolist()).max() <= 1e-14
        assert _rel(cdf, ts.student_t_cdf(df, t).tolist()).max() <= 1e-14
    else:
        # both round the same float64 value, up to a few float64 ulp that may straddle a rounding
        assert _rel(ratio, want.tolist()).max() <= 1.2e-7


COMPILE = textwrap.dedent(
    """
    import json
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from tests.special import student_t_kernel as K

    sizes = {}
    for dtype in ("fp32", "fp64"):
        sig = {p: "*" + dtype for p in K.student_t_kernel.arg_names if p.endswith("_ptr")}
        sig.update(n="i32", BLOCK="constexpr", ROWS="constexpr")
        src = ASTSource(fn=K.student_t_kernel, signature=sig, constexprs={"BLOCK": 32, "ROWS": 4})
        compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 1})
        sizes[dtype] = len(compiled.asm["ptx"])
    print(json.dumps(sizes))
    """
)


def test_student_t_device_functions_compile_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = proc.stdout.strip().splitlines()[-1]
    assert '"fp32"' in sizes and '"fp64"' in sizes
