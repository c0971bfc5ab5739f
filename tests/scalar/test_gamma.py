"""irtgen.scalar.gamma: the numba form against mpmath at 40 digits (tests/scalar/gamma_references.py:
a from 1e-3 to 1e5, x at quantiles 1e-10 ... 1 - 1e-10 and beyond), in float64 and as the
float64 result rounded to float32; the Triton form run per element in the interpreter against
mpmath and the numba form; the Triton interpreter's map kernel (gpu.map_scalar) against the
numba form; every public function compiled for sm_90 within the register budget and without a
stack (sin/cos aside); and the coefficient tables as tools/fit_temme.py renders them."""

from __future__ import annotations

import importlib.util
import inspect
import math

import mpmath as mp
import numpy as np
import pytest
import torch

from irtgen.scalar import ScalarFunction
from irtgen.scalar import gamma as G
from irtgen.scalar import gamma_tables as gt
from tests.scalar import gamma_references as R
from tests.scalar.helpers import (
    ROOT,
    check_resources,
    compile_resources,
    numba_map,
    triton_per_element,
)

F64 = torch.float64
F32 = torch.float32
# max relative error against mpmath on the full grid (a from 1e-3 to 1e5): the figures of the
# torch path and the block-form Triton functions, which the numba forms reach exactly
# (gammainc 5.54e-14, gammaincc 7.2e-15, log density 6.4e-16, ratio 6.9e-15)
MAX_ERROR = {
    "gammainc": 5.55e-14,
    "gammaincc": 7.6e-15,
    "log_gamma_density": 1e-15,
    "gammainc_da_ratio": 7.9e-15,
}
TOL64 = 1e-13  # the Triton form on the subset (as the block-form Triton functions were held to)
TOL32 = 1.2e-7  # float32: the float64 result rounded
AGREE = 1e-14  # the Triton form against the numba form: the same source, other libm


def _numba(name, a, x):
    return torch.tensor(numba_map(getattr(G, name), np.asarray(a), np.asarray(x)))


@pytest.mark.parametrize("name", R.FUNCTIONS)
def test_against_mpmath(name):
    a, x, refs = R.grid(F64)
    worst = R.max_error(name, _numba(name, a, x), refs[name], F64)
    assert worst <= MAX_ERROR[name], f"{name}: max relative error {worst:.2e}"


@pytest.mark.parametrize("name", R.FUNCTIONS)
def test_float32_is_the_rounded_float64_result(name):
    # float32 arguments: computed in float64 (the CPU kernels, and the Triton kernels' special
    # functions) and rounded once; against mpmath at the rounded arguments
    a, x, refs = R.grid(F32)
    out = _numba(name, a.double(), x.double()).to(F32)
    worst = R.max_error(name, out, refs[name], F32)
    assert worst <= TOL32, f"{name} float32: max relative error {worst:.2e}"


def _regimes(a, x):
    """Boolean masks (temme, series, cf, small_q) of G._igamma_inner's branches, for a > 0 and
    finite x > 0 (20.0 is tools/fit_temme.py's TEMME_A_MIN)."""
    temme = (a > 20.0) & ((x - a).abs() <= 0.4 * a)
    small_x = x < 1.1
    series = ~temme & (small_x | (x - 1.0 / (3.0 * x) < a))
    cf = ~temme & ~series
    limit = torch.where(x < 0.5, -0.4 / torch.log(x), 0.75 * x)
    small_q = small_x & (a <= limit)
    return temme, series, cf, small_q


def test_grid_reaches_every_regime():
    for subset, least in ((False, 8), (True, 4)):
        a, x, _ = R.grid(F64, subset)
        temme, series, cf, small_q = _regimes(a, x)
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


def test_edge_values():
    a = np.array([e[0] for e in R.EDGES])
    x = np.array([e[1] for e in R.EDGES])
    for column, name in zip((2, 3, 4, 5), R.EDGE_COLUMNS, strict=True):
        expected = np.array([e[column] for e in R.EDGES])
        np.testing.assert_array_equal(numba_map(getattr(G, name), a, x), expected, err_msg=name)


def test_non_convergence_gives_nan():
    a = [5.0, 2.0, 0.01]  # series, continued fraction, small-a Q
    x = [4.5, 5.0, 0.9]
    for want in (0, 1, 2):
        for n_max, finite in ((G.MAX_ITER, True), (3, False)):
            for av, xv in zip(a, x, strict=True):
                v = G._igamma(av, xv, want, n_max)
                assert math.isfinite(v) == finite, (want, n_max, av, xv, v)


def test_finite_everywhere():
    # every (a, x) with a in [1e-4, 1e5], x in [1e-300, 1e300]: no NaN, P and Q in [0, 1] (a
    # Lentz factor that settled one ulp below 1 once made x ~ 1e30 never converge)
    a, x = (t.numpy() for t in R.sweep(40, 601))
    for name in R.FUNCTIONS:
        v = numba_map(getattr(G, name), a, x)
        assert not np.isnan(v).any(), (name, a[np.isnan(v)][:3], x[np.isnan(v)][:3])
        assert name not in ("gammainc", "gammaincc") or ((v >= 0) & (v <= 1)).all(), name


def _lgamma_digamma_check(out: dict, dtype):
    """lgamma and digamma at GAMMA_X rounded to dtype against mpmath at the rounded points
    (where those are normal numbers of dtype)."""
    x64 = torch.tensor(R.GAMMA_X, dtype=dtype).double()
    if dtype == F32:
        keep = (x64.abs() > 1e-37) & (x64.abs() < 1e35)
        lg, dg = torch.full_like(x64, math.nan), torch.full_like(x64, math.nan)
        with mp.workdps(40):
            for i in torch.nonzero(keep).flatten().tolist():
                v = mp.mpf(x64[i].item())
                lg[i], dg[i] = float(mp.log(abs(mp.gamma(v)))), float(mp.digamma(v))
        tol_pos, tol_neg = TOL32, TOL32
    else:
        lg, dg = R.gamma_references()
        keep = torch.ones_like(x64, dtype=torch.bool)
        tol_pos, tol_neg = 1e-15, 4e-15
    for name, ref in (("lgamma", lg), ("digamma", dg)):
        err = R.gamma_errors(out[name][keep], ref[keep], x64[keep])
        pos = x64[keep] > 0
        assert err[pos].max() <= tol_pos, (name, dtype, err[pos].max().item())
        assert err[~pos].max() <= tol_neg, (name, dtype, err[~pos].max().item())


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
def test_lgamma_digamma(dtype):
    x = torch.tensor(R.GAMMA_X, dtype=dtype).double().numpy()
    out = {n: torch.tensor(numba_map(getattr(G, n), x)).to(dtype) for n in ("lgamma", "digamma")}
    _lgamma_digamma_check(out, dtype)
    assert numba_map(G.lgamma, [0.0, -1.0, -3.0, math.inf, -math.inf]).tolist() == [math.inf] * 5
    dg_poles = numba_map(G.digamma, [0.0, -1.0, -3.0, math.inf])
    assert np.isnan(dg_poles[:3]).all() and dg_poles[3] == math.inf


def test_digamma_pos_and_lgamma1p():
    pos = R.GAMMA_X > 0
    _, dg = R.gamma_references()
    x = torch.tensor(R.GAMMA_X[pos])
    err = R.gamma_errors(torch.tensor(numba_map(G.digamma_pos, x.numpy())), dg[pos], x)
    assert err.max() <= 1e-15
    a = np.r_[np.logspace(-300, 0, 30), np.linspace(0.0, 3.0, 31)[1:]]
    with mp.workdps(400):  # 1 + a exactly
        ref = np.array([float(mp.loggamma(1 + mp.mpf(v))) for v in a.tolist()])
    keep = ref != 0
    err = np.abs(numba_map(G.lgamma1p, a) - ref)[keep] / np.abs(ref)[keep]
    assert err.max() <= 1e-15


# -- Triton: the Triton form in the interpreter, the map kernel, sm_90 ----------------------------


def _subset_with_edges(dtype=F64):
    a, x, refs = R.grid(F64, subset=True)
    ea = torch.tensor([e[0] for e in R.EDGES], dtype=F64)
    ex = torch.tensor([e[1] for e in R.EDGES], dtype=F64)
    return torch.cat([a, ea]).to(dtype), torch.cat([x, ex]).to(dtype), refs, len(a)


def test_triton_form_against_mpmath_and_numba():
    # the source bound to triton.language, per element (real if/else and while): every regime,
    # both tails and the edge values, as the block-form Triton functions were tested
    a, x, refs, n = _subset_with_edges()
    for name in R.FUNCTIONS:
        got = triton_per_element(getattr(G, name), a, x)
        worst = R.max_error(name, got[:n], refs[name], F64)
        assert worst <= TOL64, f"triton {name}: max relative error {worst:.2e}"
        want = _numba(name, a[:n], x[:n])
        scale = want.abs().clamp_min(1.0) if name == "log_gamma_density" else want.abs()
        keep = scale >= R.SMALLEST[F64]
        diff = torch.where(got[:n] == want, 0.0, (got[:n] - want).abs() / scale)[keep].max()
        assert diff <= AGREE, f"{name}: Triton and numba forms differ by {diff:.2e}"
        column = 2 + R.EDGE_COLUMNS.index(name)
        expected = torch.tensor([e[column] for e in R.EDGES], dtype=F64)
        torch.testing.assert_close(got[n:], expected, rtol=0, atol=0, equal_nan=True, msg=name)
    x = torch.tensor(R.GAMMA_X)
    out = {n: triton_per_element(getattr(G, n), x) for n in ("lgamma", "digamma")}
    _lgamma_digamma_check(out, F64)
    poles = torch.tensor([0.0, -1.0, -3.0, math.inf], dtype=F64)
    assert triton_per_element(G.lgamma, poles).tolist() == [math.inf] * 4
    dg = triton_per_element(G.digamma, poles)
    assert torch.isnan(dg[:3]).all() and dg[3] == math.inf


def test_triton_form_finite_everywhere():
    a, x = R.sweep(8, 61)
    for name in R.FUNCTIONS:
        v = triton_per_element(getattr(G, name), a, x)
        assert not torch.isnan(v).any(), (name, a[torch.isnan(v)][:3], x[torch.isnan(v)][:3])


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
def test_interpreter_matches_numba(dtype):
    from irtgen.compilers import gpu

    assert gpu.interpreting()
    a, x, _ = R.grid(F64, subset=True)
    pick = torch.arange(0, len(a), 2)[:70]  # every regime, both tails
    a = torch.cat([a[pick], torch.tensor([e[0] for e in R.EDGES], dtype=F64)]).to(dtype)
    x = torch.cat([x[pick], torch.tensor([e[1] for e in R.EDGES], dtype=F64)]).to(dtype)
    assert len(a) <= 100
    for name in R.FUNCTIONS:
        got = gpu.map_scalar(getattr(G, name), [a, x])
        want = torch.tensor(numba_map(getattr(G, name), a.double(), x.double())).to(dtype)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=name)
    z = torch.tensor([-2.5, -0.3, 1e-5, 1.4616, 3.3, 50.0], dtype=dtype)
    for name in ("lgamma", "digamma"):
        got = gpu.map_scalar(getattr(G, name), [z])
        want = torch.tensor(numba_map(getattr(G, name), z.double())).to(dtype)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=name)


# (module, name, inputs, outputs, BLOCK) of every public scalar function of gamma and
# gamma_tables. temme_sum alone is 12 independent Horner chains of straight-line code: with two
# elements per thread (compile_scalar's BLOCK 256 on 4 warps) ptxas interleaves the two
# elements' chains and spills (255 registers); one element per thread takes 28, and inlined in
# the incomplete gamma functions (branches between elements) it costs them nothing like that.
_OUTPUTS = {"stirling_parts": 2, "temme_sum": 3}
_BLOCK = {"temme_sum": 128}
PUBLIC = [
    (
        m.__name__,
        name,
        len(inspect.signature(v.fn).parameters),
        _OUTPUTS.get(name, 1),
        _BLOCK.get(name),
    )
    for m in (G, gt)
    for name, v in vars(m).items()
    if isinstance(v, ScalarFunction) and not name.startswith("_")
]


def test_public_functions_compile_for_sm90(tmp_path):
    usage = compile_resources(PUBLIC, tmp_path)
    assert len(usage) == 2 * len(PUBLIC)
    sincos = {"lgamma", "digamma"}  # fp64 sin/cos: the stack of their argument reduction
    assert not check_resources(usage, stack_ok=sincos)


def test_tables_module_is_rendered():
    # irtgen/scalar/gamma_tables.py is what tools/fit_temme.py computes (about a second)
    spec = importlib.util.spec_from_file_location("fit_temme", ROOT / "tools" / "fit_temme.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.OUT == ROOT / "irtgen" / "scalar" / "gamma_tables.py"
    assert tool.OUT.read_text() == tool.render(), "rerun tools/fit_temme.py"
