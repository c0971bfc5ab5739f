"""irtgen.scalar.beta: the numba form against mpmath (the grids and references of
tests/special/test_beta_functions.py) and against the torch path, the Triton interpreter
(gpu.map_scalar) against the numba form, and every public function compiled for sm_90 within
the register budget and without a stack."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from irtgen.runtime import torch_beta as tb
from irtgen.scalar import beta as B
from tests.scalar.helpers import ROOT, check_resources, compile_resources, numba_map
from tests.special import test_beta_functions as T

# max relative error against mpmath (absolute over max(1, |ref|) for the two logs) of the
# block-form functions, which the scalar ones must keep; the figures these reach are in the
# comments (grid / Student-t points)
LIMITS = {
    "betainc": 7.1e-14,  # 1.9e-14 / 2.8e-14
    "betainc_da_ratio": 2.6e-14,  # 2.9e-15 / 3.2e-16
    "betainc_db_ratio": 9.3e-15,  # 3.1e-15 / 3.3e-16
    "log_beta_density": 1e-14,  # 7.6e-15 / 1.1e-15
    "betaln": 4.4e-16,  # 1.6e-16 / 1.2e-16
}
LIMIT_BETAINC_ABOVE_1E_75 = 1.9e-14  # 1.9e-14 / 1.8e-14
AGREE = T.AGREE  # with the torch path: same formulas, different elementary functions


def _numba(name: str, a, b, x, y) -> np.ndarray:
    """The numba form of `name` on float64 columns (the ratios from betainc_ratios)."""
    if name == "betaln":
        return numba_map(B.betaln, a, b)
    if name.startswith("betainc_d"):
        ra, rb = numba_map(B.betainc_ratios, a, b, x, y, n_out=2)
        return ra if name == "betainc_da_ratio" else rb
    return numba_map(getattr(B, name), a, b, x, y)


# -- numba form, float64 ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["grid", "student"])
def test_numba_against_mpmath_and_torch(kind):
    pts, refs = T._points(kind)
    if kind == "grid":
        assert all(T._regimes_hit(pts))
    inputs = T._inputs(pts, torch.float64)
    cols = [t.numpy() for t in inputs]
    for name in T.FUNCTIONS:
        got = torch.tensor(_numba(name, *cols))
        errs = T._errors(name, got, refs, torch.float64)
        assert errs.max() <= LIMITS[name], T._worst(name, errs, pts)
        if name == "betainc":
            big = np.array([float(r[name]) >= 1e-75 for r in refs])
            assert errs[big].max() <= LIMIT_BETAINC_ABOVE_1E_75
        want = T._torch_values(name, *inputs)
        scale = want.abs() if name.startswith("betainc") else want.abs().clamp_min(1.0)
        diff = torch.where(got == want, 0.0, (got - want).abs() / scale).max().item()
        assert diff <= AGREE, (name, diff)
    # I_x(a, b) + I_y(b, a) = 1 and ratio_a(a, b, x, y) = -ratio_b(b, a, y, x)
    a, b, x, y = cols
    total = _numba("betainc", a, b, x, y) + _numba("betainc", b, a, y, x)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=4e-15)
    ra = _numba("betainc_da_ratio", a, b, x, y)
    np.testing.assert_allclose(ra, -_numba("betainc_db_ratio", b, a, y, x), rtol=1e-13, atol=0)


def test_numba_agrees_with_torch_on_random_points():
    """2000 points with a, b in [10^-3.5, 10^5.5] and the smaller of x, y in [1e-30, 1/2]:
    finite everywhere (every element converges) and within a few ulp of the torch path (of
    log I for I, where exp turns an ulp of log I into |log I| ulp)."""
    rng = np.random.default_rng(7)
    n = 2000
    a = 10 ** rng.uniform(-3.5, 5.5, n)
    b = 10 ** rng.uniform(-3.5, 5.5, n)
    small = 10 ** rng.uniform(-30, 0, n) * 0.5
    flip = rng.random(n) < 0.5
    x, y = np.where(flip, 1 - small, small), np.where(flip, small, 1 - small)
    inputs = [torch.tensor(c) for c in (a, b, x, y)]
    for name in T.FUNCTIONS:
        got = _numba(name, a, b, x, y)
        want = T._torch_values(name, *inputs).numpy()
        assert np.isfinite(got).all(), name
        if name == "betainc":
            log_i = np.log(np.maximum(want, np.finfo(np.float64).tiny))
            scale = np.abs(want) * np.maximum(1.0, np.abs(log_i))
        elif name.startswith("betainc"):
            scale = np.abs(want)
        else:
            scale = np.maximum(np.abs(want), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = np.where(got == want, 0.0, np.abs(got - want) / scale)
        assert not np.isnan(diff).any() and diff.max() <= AGREE, (name, diff.max())


BOUNDED = textwrap.dedent(
    """
    import numpy as np
    from irtgen.scalar import beta as B

    B.MAX_ITER = 120  # read when the numba forms are compiled (a fresh cache folder)
    rng = np.random.default_rng(7)
    n = 5000
    a, b = 10 ** rng.uniform(-3.5, 5.5, n), 10 ** rng.uniform(-3.5, 5.5, n)
    small = 10 ** rng.uniform(-30, 0, n) * 0.5
    flip = rng.random(n) < 0.5
    x, y = np.where(flip, 1 - small, small), np.where(flip, small, 1 - small)
    bad = 0
    for args in zip(a.tolist(), b.tolist(), x.tolist(), y.tolist()):
        bad += not np.isfinite([B.betainc(*args), *B.betainc_ratios(*args)]).all()
    print(bad)
    """
)


def test_iterations_stay_bounded(tmp_path):
    """Every element converges within 120 terms: the cap (300) only guards against bugs."""
    env = dict(os.environ, IRTGEN_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", BOUNDED], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["0"]


def test_edge_values():
    cols = [np.array(c) for c in zip(*[e[0] for e in T.EDGES], strict=True)]
    got = {name: torch.tensor(_numba(name, *cols)) for name in T.FUNCTIONS[:4]}
    T._edge_check(got, torch.float64)
    for (ea, eb), want in T.BETALN_EDGES:
        v = B.betaln(ea, eb)
        assert (math.isnan(want) and math.isnan(v)) or v == want


# -- Triton: interpreter and sm_90 -----------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_interpreter_matches_numba(dtype):
    from irtgen.compilers import gpu

    assert gpu.interpreting()
    pts, _ = T._points("grid")
    rows = [p[:4] for p in pts[::4]] + [e[0] for e in T.EDGES]
    assert len(rows) <= 100
    a, b, x, y = (torch.tensor(c, dtype=dtype) for c in zip(*rows, strict=True))
    cols = [t.double().numpy() for t in (a, b, x, y)]
    for name in ("betainc", "log_beta_density"):
        got = gpu.map_scalar(getattr(B, name), [a, b, x, y])
        want = torch.tensor(_numba(name, *cols)).to(dtype)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=name)
    got = gpu.map_scalar(B.betainc_ratios, [a, b, x, y], n_out=2)
    for name, g in zip(("betainc_da_ratio", "betainc_db_ratio"), got, strict=True):
        want = torch.tensor(_numba(name, *cols)).to(dtype)
        torch.testing.assert_close(g, want, rtol=0, atol=0, equal_nan=True, msg=name)
        single = gpu.map_scalar(getattr(B, name), [a, b, x, y])
        torch.testing.assert_close(single, want, rtol=0, atol=0, equal_nan=True, msg=name)
    got = gpu.map_scalar(B.betaln, [a, b])
    want = torch.tensor(_numba("betaln", *cols)).to(dtype)
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg="betaln")


PUBLIC = [  # (name, inputs, outputs)
    ("betainc", 4, 1),
    ("betainc_ratios", 4, 2),
    ("betainc_da_ratio", 4, 1),
    ("betainc_db_ratio", 4, 1),
    ("betaln", 2, 1),
    ("log_beta_density", 4, 1),
]


def test_public_functions_compile_for_sm90(tmp_path):
    """Registers per thread (stack 0 for all), Triton 3.9, sm_90: betainc 40 (fp32) / 80 (fp64),
    betainc_ratios and the single ratios 64 / 140, betaln 28 / 62, log_beta_density 32 / 62
    (the block-form backward kernel: 255 and 152 bytes of spills)."""
    specs = [("irtgen.scalar.beta", name, n_in, n_out) for name, n_in, n_out in PUBLIC]
    usage = compile_resources(specs, tmp_path)
    assert len(usage) == 2 * len(specs)
    assert not check_resources(usage)


def test_temme_sums_are_the_rendered_tables():
    # the Temme sums are tools/render_beta_temme.py's output from torch_beta's tables, as
    # scalar functions (no hand edits, no drift)
    import importlib.util

    spec = importlib.util.spec_from_file_location("render", ROOT / "tools/render_beta_temme.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    source = (ROOT / "irtgen/scalar/beta.py").read_text()
    assert render.render().replace("@triton.jit", "@scalar").strip() in source
    assert B._temme_g.__module__ == "irtgen.scalar.beta"
    assert tb.TEMME_G_TERMS == (10, 8, 6, 3)
