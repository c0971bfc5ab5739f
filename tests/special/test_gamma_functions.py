"""Incomplete gamma functions, the Gamma log density and the implicit-gradient ratio
(irtgen.runtime.torch_gamma and irtgen.runtime.triton_gamma) against mpmath at 40 digits.

Grid: a log-spaced in [1e-3, 1e5] (4 per decade); x at the Gamma(a, 1) quantiles QUANTILES
(solved with mpmath), at 1e-300, 1e-20 and 1e3 (a + 1). The torch path runs on the whole grid,
the Triton interpreter on a subset that still reaches every regime. The reference ratio is
mpmath's derivative in a of whichever of P, Q is smaller, over the exact density.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy import special as sps

from irtgen.runtime import torch_gamma as tg

ROOT = Path(__file__).resolve().parents[2]
QUANTILES = (1e-10, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6, 1 - 1e-10)
A_GRID = tuple(10.0 ** (k / 4) for k in range(-12, 21))
TRITON_A = A_GRID[::3]  # 1e-3, 0.0056, 0.032, ..., 1e5: every regime, 11 values
FUNCTIONS = ("gammainc", "gammaincc", "log_gamma_density", "gammainc_da_ratio")
TOL = {torch.float64: 1e-13, torch.float32: 1.2e-7}  # float32: the float64 result rounded
SMALLEST = {torch.float64: 1e-300, torch.float32: 1.2e-38}  # below: not compared (denormal)

INF, NAN = math.inf, math.nan
# (a, x, P, Q, ratio, log density)
EDGES = [
    (1.0, 0.0, 0.0, 1.0, 0.0, 0.0),
    (0.5, 0.0, 0.0, 1.0, 0.0, INF),
    (2.0, 0.0, 0.0, 1.0, 0.0, -INF),
    (2.0, INF, 1.0, 0.0, -INF, -INF),
    (0.0, 1.0, NAN, NAN, NAN, NAN),
    (-1.0, 1.0, NAN, NAN, NAN, NAN),
    (INF, 1.0, NAN, NAN, NAN, NAN),
    (NAN, 1.0, NAN, NAN, NAN, NAN),
    (1.0, NAN, NAN, NAN, NAN, NAN),
    (1.0, -1.0, NAN, NAN, NAN, NAN),
    (3.0, -INF, NAN, NAN, NAN, NAN),
]

EDGE_COLUMNS = ("gammainc", "gammaincc", "gammainc_da_ratio", "log_gamma_density")

# -- mpmath references ------------------------------------------------------------------------


def _lower(a, x):
    return mp.gammainc(a, 0, x, regularized=True)


def _upper(a, x):
    return mp.gammainc(a, x, mp.inf, regularized=True)


def _p(a, x):
    return 1 - _upper(a, x) if x > a else _lower(a, x)


def _q(a, x):
    return _upper(a, x) if x > a else 1 - _lower(a, x)


def _log_density(a, x):
    return (a - 1) * mp.log(x) - x - mp.loggamma(a)


def _reference(a: float, x: float) -> tuple[float, float, float, float]:
    """(P, Q, log density, ratio) at 40 digits, rounded to float64."""
    with mp.workdps(40):
        a, x = mp.mpf(a), mp.mpf(x)
        p, q, logf = _p(a, x), _q(a, x), _log_density(a, x)
        if p < q:
            dp = mp.diff(lambda s: _p(s, x), a)
        else:
            dp = -mp.diff(lambda s: _q(s, x), a)
        return float(p), float(q), float(logf), float(dp / mp.exp(logf))


def _quantile(a: float, level: float) -> float:
    """x with P(a, x) = level: Newton's method in log x on log P (or log Q above the median)."""
    with mp.workdps(40):
        am = mp.mpf(a)
        lower = level <= 0.5
        start = sps.gammaincinv(a, level) if lower else sps.gammainccinv(a, 1 - level)
        if start > 0:
            u = mp.log(start)
        else:  # tiny a: P ~ x^a / Gamma(a + 1)
            u = (mp.log(level) + mp.loggamma(am + 1)) / am
        target = mp.log(level) if lower else mp.log(1 - mp.mpf(level))
        for _ in range(50):
            x = mp.exp(u)
            value = _p(am, x) if lower else _q(am, x)
            slope = x * mp.exp(_log_density(am, x)) / value
            step = (mp.log(value) - target) / (slope if lower else -slope)
            u -= max(min(step, 2), -2)
            if abs(step) < 1e-25:
                break
        return float(mp.exp(u))


def _grid_points(a_values) -> list[tuple[float, float]]:
    points = []
    for a in a_values:
        xs = [_quantile(a, q) for q in QUANTILES] + [1e-300, 1e-20, 1e3 * (a + 1)]
        points += [(a, x) for x in xs if 0 < x < INF]  # tiny-a lower quantiles underflow
    return points


@functools.cache
def _grid(dtype: torch.dtype, subset: bool = False):
    """(a, x, {function: reference}) on the grid, inputs rounded to dtype."""
    if dtype == torch.float32:
        a64, x64, _ = _grid(torch.float64, subset)
        a, x = a64.to(torch.float32), x64.to(torch.float32)
        keep = x >= SMALLEST[torch.float32]
        points = sorted(set(zip(a[keep].tolist(), x[keep].tolist(), strict=True)))
    else:
        points = _grid_points(TRITON_A if subset else A_GRID)
    refs = np.array([_reference(a, x) for a, x in points])
    a = torch.tensor([p[0] for p in points], dtype=dtype)
    x = torch.tensor([p[1] for p in points], dtype=dtype)
    names = ("gammainc", "gammaincc", "log_gamma_density", "gammainc_da_ratio")
    return a, x, {n: torch.tensor(refs[:, i]) for i, n in enumerate(names)}


def _errors(name: str, value: torch.Tensor, ref: torch.Tensor, dtype) -> torch.Tensor:
    """Relative errors (log density: relative to max(1, |ref|)) where the reference is a normal
    number of dtype; NaN or inf where a finite value was expected counts as inf."""
    value = value.to(torch.float64)
    limit = torch.finfo(dtype).max
    if name == "log_gamma_density":
        scale = ref.abs().clamp_min(1.0)
        keep = ref.abs() < limit
    else:
        scale = ref.abs()
        keep = (scale >= SMALLEST[dtype]) & (scale < limit)
    err = ((value - ref).abs() / scale)[keep]
    return torch.where(torch.isfinite(err), err, INF)


def _max_error(name, value, ref, dtype) -> float:
    return _errors(name, value, ref, dtype).max().item()


# -- torch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_torch_against_mpmath(name, dtype):
    a, x, refs = _grid(dtype)
    out = getattr(tg, name)(a, x)
    assert out.dtype == dtype and out.shape == a.shape
    worst = _max_error(name, out, refs[name], dtype)
    assert worst <= TOL[dtype], f"{name} {dtype}: max relative error {worst:.2e}"


def test_grid_reaches_every_regime():
    for subset, least in ((False, 8), (True, 4)):
        a, x, _ = _grid(torch.float64, subset)
        temme, series, cf, small_q = tg._regimes(a, x)
        counts = {
            "temme": temme.sum().item(),
            "series for P": (series & ~small_q).sum().item(),
            "small-a Q": small_q.sum().item(),
            "continued fraction": cf.sum().item(),
            "a <= 1e-3": (a <= 1e-3).sum().item(),
            "x <= 1e-20": (x <= 1e-20).sum().item(),
            "x = 1e3 (a + 1)": (x == 1e3 * (a + 1)).sum().item(),
        }
        assert min(counts.values()) >= least, (subset, counts)


def test_torch_broadcasts_and_keeps_dtype():
    a = torch.tensor([[0.5], [30.0]], dtype=torch.float32)
    x = torch.tensor([0.25, 31.0, 80.0], dtype=torch.float32)
    for name in FUNCTIONS:
        out = getattr(tg, name)(a, x)
        assert out.shape == (2, 3) and out.dtype == torch.float32
        full = getattr(tg, name)(a.double().expand(2, 3), x.double().expand(2, 3))
        assert torch.equal(out, full.float())


def test_torch_edge_values():
    a = torch.tensor([e[0] for e in EDGES], dtype=torch.float64)
    x = torch.tensor([e[1] for e in EDGES], dtype=torch.float64)
    for column, name in zip((2, 3, 4, 5), EDGE_COLUMNS, strict=True):
        expected = torch.tensor([e[column] for e in EDGES], dtype=torch.float64)
        out = getattr(tg, name)(a, x)
        torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True, msg=name)


def test_torch_non_convergence_gives_nan(monkeypatch):
    a = torch.tensor([5.0, 2.0, 0.01], dtype=torch.float64)  # series, fraction, small-a Q
    x = torch.tensor([4.5, 5.0, 0.9], dtype=torch.float64)
    for name in ("gammainc", "gammaincc", "gammainc_da_ratio"):
        assert torch.isfinite(getattr(tg, name)(a, x)).all()
    monkeypatch.setattr(tg, "MAX_ITER", 3)
    for name in ("gammainc", "gammaincc"):
        assert torch.isnan(getattr(tg, name)(a, x)).all(), name
    assert torch.isnan(tg.gammainc_da_ratio(a, x)).all()


# lgamma / digamma test points: both sides of the zeros of lgamma (1, 2) and digamma (1.4616...),
# small, large, and negative non-integers
_ROOT = 1.4616321449683622
_STEPS = np.logspace(-15, -1, 8)
GAMMA_X = np.r_[
    np.logspace(-300, -1, 12),
    np.linspace(0.05, 12.0, 60),
    np.logspace(1, 305, 12),
    1 + _STEPS,
    1 - _STEPS,
    2 + _STEPS,
    2 - _STEPS,
    _ROOT * (1 + _STEPS),
    _ROOT * (1 - _STEPS),
    -np.linspace(0.05, 30.5, 24) + 1e-3,
]


@functools.cache
def _gamma_references():
    with mp.workdps(40):
        xs = [mp.mpf(float(v)) for v in GAMMA_X]
        lg = [float(mp.log(abs(mp.gamma(v)))) for v in xs]
        dg = [float(mp.digamma(v)) for v in xs]
    return torch.tensor(lg, dtype=torch.float64), torch.tensor(dg, dtype=torch.float64)


def _gamma_errors(value, ref, x):
    """Relative error for x > 0; relative to max(1, |ref|) for x < 0 (lgamma and digamma have
    zeros there that no reflection formula resolves in relative terms)."""
    value = value.to(torch.float64)
    scale = torch.where(x > 0, ref.abs(), ref.abs().clamp_min(1.0))
    err = torch.where(value == ref, 0.0, (value - ref).abs() / scale)
    return torch.where(torch.isfinite(err), err, INF)


def test_torch_digamma_and_lgamma1p():
    x = torch.tensor(GAMMA_X[GAMMA_X > 0], dtype=torch.float64)
    _, dg = _gamma_references()
    err = _gamma_errors(tg._digamma(x), dg[torch.tensor(GAMMA_X > 0)], x)
    assert err.max() <= 1e-15
    a = torch.tensor(np.r_[np.logspace(-300, 0, 30), np.linspace(0.0, 3.0, 31)[1:]])
    with mp.workdps(400):  # 1 + a exactly
        ref = torch.tensor([float(mp.loggamma(1 + mp.mpf(v))) for v in a.tolist()], dtype=a.dtype)
    keep = ref != 0
    err = ((tg._lgamma1p(a) - ref).abs() / ref.abs())[keep]
    assert err.max() <= 1e-15


# -- Triton (interpreter) ------------------------------------------------------------------------


@functools.cache
def _triton_incomplete(dtype):
    from tests.special import gamma_kernel

    a, x, _ = _grid(dtype, subset=True)
    edge_a = torch.tensor([e[0] for e in EDGES], dtype=dtype)
    edge_x = torch.tensor([e[1] for e in EDGES], dtype=dtype)
    out = gamma_kernel.incomplete_gamma(torch.cat([a, edge_a]), torch.cat([x, edge_x]))
    n = len(a)
    return {k: v[:n] for k, v in out.items()}, {k: v[n:] for k, v in out.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_triton_against_mpmath(dtype):
    a, x, refs = _grid(dtype, subset=True)
    assert len(a) + len(EDGES) <= 200
    out, _ = _triton_incomplete(dtype)
    for name in FUNCTIONS:
        assert out[name].dtype == dtype
        worst = _max_error(name, out[name], refs[name], dtype)
        assert worst <= TOL[dtype], f"triton {name} {dtype}: max relative error {worst:.2e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_triton_agrees_with_torch(dtype):
    a, x, _ = _grid(dtype, subset=True)
    out, _ = _triton_incomplete(dtype)
    for name in FUNCTIONS:
        theirs = getattr(tg, name)(a, x)
        if dtype == torch.float32:
            assert torch.equal(out[name], theirs), name  # the same float64 value, rounded once
            continue
        scale = theirs.abs()
        if name == "log_gamma_density":
            scale = scale.clamp_min(1.0)
        keep = scale >= SMALLEST[dtype]
        diff = ((out[name] - theirs).abs() / scale)[keep].max().item()
        assert diff <= 1e-14, f"{name}: torch and Triton differ by {diff:.2e}"


def _sweep(n_a, n_x):
    a = torch.logspace(-4, 5, n_a, dtype=torch.float64)[:, None]
    x = torch.logspace(-300, 300, n_x, dtype=torch.float64)[None, :]
    return torch.broadcast_tensors(a, x)


def test_torch_finite_everywhere():
    # every (a, x) with a in [1e-4, 1e5], x in [1e-300, 1e300]: no NaN (a Lentz factor that
    # settled one ulp below 1 once made x ~ 1e30 never converge)
    a, x = _sweep(40, 601)
    for name in FUNCTIONS:
        v = getattr(tg, name)(a, x)
        assert not torch.isnan(v).any(), (name, a[torch.isnan(v)][:3], x[torch.isnan(v)][:3])
        bounded = name in ("gammainc", "gammaincc")
        assert not bounded or ((v >= 0) & (v <= 1)).all(), name


def test_triton_finite_everywhere():
    from tests.special import gamma_kernel

    a, x = _sweep(8, 61)
    out = gamma_kernel.incomplete_gamma(a, x)
    for name, v in out.items():
        assert not torch.isnan(v).any(), (name, a[torch.isnan(v)][:3], x[torch.isnan(v)][:3])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_triton_edge_values(dtype):
    _, edges = _triton_incomplete(dtype)
    for column, name in zip((2, 3, 4, 5), EDGE_COLUMNS, strict=True):
        expected = torch.tensor([e[column] for e in EDGES], dtype=dtype)
        torch.testing.assert_close(edges[name], expected, rtol=0, atol=0, equal_nan=True, msg=name)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_triton_lgamma_digamma(dtype):
    from tests.special import gamma_kernel

    x = torch.tensor(GAMMA_X, dtype=dtype)
    x64 = x.to(torch.float64)
    if dtype == torch.float32:  # references at the rounded inputs, where they are normal
        keep = (x64.abs() > 1e-37) & (x64.abs() < 1e35)
        lg, dg = torch.full_like(x64, NAN), torch.full_like(x64, NAN)
        with mp.workdps(40):
            for i in torch.nonzero(keep).flatten().tolist():
                v = mp.mpf(x64[i].item())
                lg[i], dg[i] = float(mp.log(abs(mp.gamma(v)))), float(mp.digamma(v))
    else:
        lg, dg = _gamma_references()
        keep = torch.ones_like(x64, dtype=torch.bool)
    out = gamma_kernel.gamma_functions(x)
    tol_pos, tol_neg = (1e-15, 4e-15) if dtype == torch.float64 else (1.2e-7, 1.2e-7)
    for name, ref in (("lgamma", lg), ("digamma", dg)):
        assert out[name].dtype == dtype
        err = _gamma_errors(out[name][keep], ref[keep], x64[keep])
        pos = x64[keep] > 0
        assert err[pos].max() <= tol_pos, (name, err[pos].max().item())
        assert err[~pos].max() <= tol_neg, (name, err[~pos].max().item())
    poles = gamma_kernel.gamma_functions(torch.tensor([0.0, -1.0, -3.0, INF], dtype=dtype))
    assert poles["lgamma"].tolist() == [INF, INF, INF, INF]
    assert torch.isnan(poles["digamma"][:3]).all() and poles["digamma"][3] == INF


# -- GPU compilation and generated tables ------------------------------------------------------

COMPILE = textwrap.dedent(
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from tests.special import gamma_kernel as K

    target = GPUTarget("cuda", 90, 32)
    for dt in ("fp32", "fp64"):
        kernels = (
            (K.incomplete_gamma_kernel, ("a_ptr", "x_ptr", "p_ptr", "q_ptr", "r_ptr", "d_ptr"),
             {"BLOCK": 256, "ROWS": 16}),
            (K.gamma_function_kernel, ("x_ptr", "lg_ptr", "dg_ptr"), {"BLOCK": 256}),
        )
        for fn, ptrs, constexprs in kernels:
            signature = {p: "*" + dt for p in ptrs}
            signature["n"] = "i32"
            signature.update({c: "constexpr" for c in constexprs})
            src = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
            ptx = triton.compile(src, target=target).asm["ptx"]
            assert ".target sm_90" in ptx and ("f64" in ptx), dt
            print(fn.__name__, dt, len(ptx))
    """
)


def test_device_functions_compile_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.strip().splitlines()) == 4, proc.stdout


def test_coefficient_module_is_generated():
    spec = importlib.util.spec_from_file_location("fit_temme", ROOT / "tools" / "fit_temme.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.OUT.read_text() == tool.render(), "rerun tools/fit_temme.py"
