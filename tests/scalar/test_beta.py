"""irtgen.scalar.beta: the numba form against mpmath (the grids and references of
tests/scalar/beta_references.py, and 2000 random points), in float64 and as the float64 result
rounded to float32; the Triton form run per element in the interpreter against mpmath and the
numba form; the Triton interpreter's map kernel (gpu.map_scalar) against the numba form; every
public function compiled for sm_90 within the register budget and without a stack; and the
Temme sums as tools/render_beta_temme.py renders them."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import textwrap

import mpmath as mp
import numpy as np
import pytest
import torch

from irtgen.scalar import beta as B
from irtgen.scalar.source import scalar
from tests.scalar import beta_references as R
from tests.scalar.helpers import (
    ROOT,
    check_resources,
    compile_resources,
    numba_map,
    triton_per_element,
)

F64 = torch.float64
F32 = torch.float32
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
# between two evaluations of the same formulas with different elementary functions (the torch
# and Triton paths once, the Triton and numba forms now), and on random points against mpmath
AGREE = 5e-14


def _numba(name: str, a, b, x, y) -> np.ndarray:
    """The numba form of `name` on float64 columns (the ratios from betainc_ratios)."""
    if name == "betaln":
        return numba_map(B.betaln, a, b)
    if name.startswith("betainc_d"):
        ra, rb = numba_map(B.betainc_ratios, a, b, x, y, n_out=2)
        return ra if name == "betainc_da_ratio" else rb
    return numba_map(getattr(B, name), a, b, x, y)


def _triton(cols, dtype=F64) -> dict:
    """{name: values} of the Triton form, per element in the interpreter."""
    out = {n: triton_per_element(getattr(B, n), *cols, dtype=dtype) for n in R.FUNCTIONS[:4:3]}
    ra, rb = triton_per_element(B.betainc_ratios, *cols, dtype=dtype, n_out=2)
    out.update(betainc_da_ratio=ra, betainc_db_ratio=rb)
    out["betaln"] = triton_per_element(B.betaln, *cols[:2], dtype=dtype)
    return out


# -- the references themselves ---------------------------------------------------------------


@pytest.mark.parametrize("a,b,x", [(2.5, 3.5, 0.3), (0.7, 12.0, 0.02), (40.0, 25.0, 0.66)])
def test_reference_matches_mpmath_betainc(a, b, x):
    exact = mp.mpf(x)
    ref = R.reference(a, b, exact)
    value = mp.betainc(a, b, 0, exact, regularized=True)
    density = mp.exp(ref["log_beta_density"])
    da = mp.diff(lambda t: mp.betainc(t, b, 0, exact, regularized=True), a) / density
    db = mp.diff(lambda t: mp.betainc(a, t, 0, exact, regularized=True), b) / density
    for got, want in ((ref["betainc"], value), (ref["betainc_da_ratio"], da)):
        assert abs(got / want - 1) < 1e-30
    assert abs(ref["betainc_db_ratio"] / db - 1) < 1e-30


# -- numba form, float64 and float32 ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["grid", "student"])
def test_numba_against_mpmath(kind):
    pts, refs = R.points(kind)
    if kind == "grid":
        assert all(_regimes_hit(pts))
    cols = [t.numpy() for t in R.inputs(pts, F64)]
    for name in R.FUNCTIONS:
        got = torch.tensor(_numba(name, *cols))
        errs = R.errors(name, got, refs, F64)
        assert errs.max() <= LIMITS[name], R.worst(name, errs, pts)
        if name == "betainc":
            big = np.array([float(r[name]) >= 1e-75 for r in refs])
            assert errs[big].max() <= LIMIT_BETAINC_ABOVE_1E_75
    # I_x(a, b) + I_y(b, a) = 1 and ratio_a(a, b, x, y) = -ratio_b(b, a, y, x)
    a, b, x, y = cols
    total = _numba("betainc", a, b, x, y) + _numba("betainc", b, a, y, x)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=4e-15)
    ra = _numba("betainc_da_ratio", a, b, x, y)
    np.testing.assert_allclose(ra, -_numba("betainc_db_ratio", b, a, y, x), rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", R.FUNCTIONS)
def test_float32_is_the_rounded_float64_result(name):
    # float32 arguments: computed in float64 (the CPU kernels, and the Triton kernels' special
    # functions) and rounded once; against mpmath at the rounded arguments
    pts, refs = R.points("grid32")
    cols = [t.double().numpy() for t in R.inputs(pts, F32)]
    out = torch.tensor(_numba(name, *cols)).to(F32)
    errs = R.errors(name, out, refs, F32)
    assert errs.max() <= R.TOL32, R.worst(name, errs, pts)


def _random_points(n: int):
    """a, b in [10^-3.5, 10^5.5] and the smaller of x, y in [1e-30, 1/2] (seed 7)."""
    rng = np.random.default_rng(7)
    a = 10 ** rng.uniform(-3.5, 5.5, n)
    b = 10 ** rng.uniform(-3.5, 5.5, n)
    small = 10 ** rng.uniform(-30, 0, n) * 0.5
    flip = rng.random(n) < 0.5
    return a, b, np.where(flip, 1 - small, small), np.where(flip, small, 1 - small)


def test_numba_on_random_points():
    """2000 random points: finite everywhere (every element converges) and within AGREE of
    mpmath (of log I for I, where exp turns an ulp of log I into |log I| ulp)."""
    a, b, x, y = _random_points(2000)
    refs = []
    for av, bv, xv, yv in zip(a.tolist(), b.tolist(), x.tolist(), y.tolist(), strict=True):
        exact = mp.mpf(xv) if xv <= yv else mp.fsub(1, mp.mpf(yv), exact=True)
        refs.append(R.reference(av, bv, exact))
    for name in R.FUNCTIONS:
        got = _numba(name, a, b, x, y)
        assert np.isfinite(got).all(), name
        errs = R.errors(name, torch.tensor(got), refs, F64)
        if name == "betainc":
            value = np.array([float(r[name]) for r in refs])
            errs = errs / np.maximum(1.0, np.abs(np.log(np.maximum(value, 1e-308))))
        assert errs.max() <= AGREE, (name, errs.max())


BOUNDED = textwrap.dedent(
    """
    import numpy as np
    from irtgen.scalar import beta as B

    B.MAX_ITER = 120  # read when the numba forms are compiled (a fresh cache folder)
    rng = np.random.default_rng(7)
    n = 20000
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
    """Every element of 20000 random points converges within 120 terms: the cap (300) only
    guards against bugs."""
    env = dict(os.environ, IRTGEN_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", BOUNDED], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["0"]


def test_edge_values():
    cols = [np.array(c) for c in zip(*[e[0] for e in R.EDGES], strict=True)]
    got = {name: torch.tensor(_numba(name, *cols)) for name in R.FUNCTIONS[:4]}
    R.edge_check(got, F64)
    for (ea, eb), want in R.BETALN_EDGES:
        v = B.betaln(ea, eb)
        assert (math.isnan(want) and math.isnan(v)) or v == want


# -- regimes ---------------------------------------------------------------------------------


@scalar
def _regime(a, b, x, y):
    """2 * method + swap of B._inner's branch (method 0 Temme, 1 series, 2 continued fraction;
    swap: the method runs on I_y(b, a)), for 0 < a, b < inf and 0 < x, y < 1."""
    if x <= y:
        y = 1.0 - x
    else:
        x = 1.0 - y
    d = B._deviation(a, b, x, y)
    r = a + b
    rho = a * b / r
    _u, _v, _lx, _ly, _lxm, _lym, e = B._exponent(a, b, x, y, d)
    if (rho >= 2000.0) and (-2.0 * e <= 0.01 * rho):
        code = 0.0
        if d > 0.0:
            code = 1.0
    elif (x <= 0.7) and ((b * x <= 1.0) or ((a <= 0.5) and (b * x <= 1.5))):
        code = 2.0
    elif (y <= 0.7) and ((a * y <= 1.0) or ((b <= 0.5) and (a * y <= 1.5))):
        code = 3.0
    else:
        code = 4.0
        if x * (r + 2.0) > a + 1.0:
            code = 5.0
    return code


def _regimes_hit(pts) -> list[bool]:
    """Whether pts contain a point of each method: Temme, series (direct, mirrored with the
    expm1 complement, mirrored plain), continued fraction (direct, mirrored)."""
    a, b, x, y = (t.numpy() for t in R.inputs(pts, F64))
    code = numba_map(_regime, a, b, x, y)
    temme, series, fraction = code <= 1, (code == 2) | (code == 3), code >= 4
    swap = code % 2 == 1
    masks = (
        temme,
        series & ~swap,
        series & swap & (b <= 0.5),
        series & swap & (b > 0.5),
        fraction & ~swap,
        fraction & swap,
    )
    return [bool(m.any()) for m in masks]


def test_grid_covers_every_regime():
    assert all(_regimes_hit(R.points("grid")[0]))


# -- Triton: the Triton form in the interpreter, the map kernel, sm_90 -------------------------


def _triton_points():
    """<= 150 points: every third grid point (each regime), every third Student-t point, and
    the edge values (the latter without references)."""
    grid, grid_refs = R.points("grid")
    stud, stud_refs = R.points("student")
    pts = grid[::3] + stud[::3]
    refs = grid_refs[::3] + stud_refs[::3]
    assert len(pts) + len(R.EDGES) <= 150
    return pts, refs


@pytest.mark.slow
def test_triton_form_against_mpmath_and_numba():
    # the source bound to triton.language, per element (real if/else and while), as the
    # block-form Triton functions were tested (~15 s)
    pts, refs = _triton_points()
    assert all(_regimes_hit(pts))
    cols = [
        torch.cat([c, torch.tensor(e, dtype=F64)])
        for c, e in zip(R.inputs(pts, F64), zip(*[e[0] for e in R.EDGES], strict=True), strict=True)
    ]
    got = _triton(cols)
    n = len(pts)
    for name in R.FUNCTIONS:
        errs = R.errors(name, got[name][:n], refs, F64)
        assert errs.max() <= R.TOL64, "triton " + R.worst(name, errs, pts)
        want = torch.tensor(_numba(name, *(c[:n].numpy() for c in cols)))
        scale = want.abs() if name.startswith("betainc") else want.abs().clamp_min(1.0)
        diff = torch.where(got[name][:n] == want, 0.0, (got[name][:n] - want).abs() / scale)
        assert diff.max().item() <= AGREE, (name, diff.max().item())
    R.edge_check({name: got[name][n:] for name in R.FUNCTIONS[:4]}, F64)


@pytest.mark.parametrize("dtype", [F64, F32], ids=["f64", "f32"])
def test_interpreter_matches_numba(dtype):
    from irtgen.compilers import gpu

    assert gpu.interpreting()
    pts, _ = R.points("grid")
    rows = [p[:4] for p in pts[::4]] + [e[0] for e in R.EDGES]
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


# -- Temme's tables and sums -----------------------------------------------------------------


def _render_tool():
    spec = importlib.util.spec_from_file_location("render", ROOT / "tools/render_beta_temme.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_temme_tables_solve_the_defining_equation():
    # h = xi/V and l = h log(1 + (1 - mu) V), with x = mu + mu (1 - mu) V solving
    # mu log(x/mu) + (1 - mu) log((1 - x)/(1 - mu)) = -mu (1 - mu) xi^2/2: the tables' series
    # against V found by mpmath, at |xi| <= 0.1 where the expansion is used
    h_exact, l_exact = _render_tool().exact_tables(11)
    with mp.workdps(40):
        for mu in (mp.mpf("0.1"), mp.mpf("0.5"), mp.mpf("0.83")):
            nu = 1 - 2 * mu
            for xi in (mp.mpf("-0.1"), mp.mpf("0.03"), mp.mpf("0.1")):

                def eq(v, mu=mu, xi=xi):
                    x = mu + mu * (1 - mu) * v
                    lhs = mu * mp.log(x / mu) + (1 - mu) * mp.log((1 - x) / (1 - mu))
                    return lhs + mu * (1 - mu) * xi**2 / 2

                v = mp.findroot(eq, xi)
                h = xi / v
                ell = h * mp.log(1 + (1 - mu) * v)
                for exact, want in ((h_exact, h), (l_exact, ell)):
                    series = sum(
                        mp.polyval([mp.mpf(c.numerator) / c.denominator for c in reversed(p)], nu)
                        * xi**n
                        if p
                        else 0
                        for n, p in enumerate(exact)
                    )
                    assert abs(series - want) <= 1e-13 * abs(want), (mu, xi)


def _temme_sums_from_tables(xi, nu, z, tool):
    """The Temme sums evaluated by loops over the tables (the form of the rendered sums)."""
    h_table, l_table = tool.tables()

    def horner(c, v):
        p = np.zeros_like(v)
        for coeff in reversed(c):
            p = p * v + coeff
        return p

    nu2 = nu * nu
    h = [horner(c[n % 2 :: 2], nu2) * (nu if n % 2 else 1.0) for n, c in enumerate(h_table)]
    sg = np.zeros_like(xi)
    for k in range(len(tool.TEMME_G_TERMS) - 1, -1, -1):
        sk = np.zeros_like(xi)
        for j in range(tool.TEMME_G_TERMS[k] - 1, -1, -1):
            sk = sk * xi + tool.mult(k, j) * h[j + 1 + 2 * k]
        sg = (sg + sk) * z
    sa, sb = np.zeros_like(xi), np.zeros_like(xi)
    for k in range(len(tool.TEMME_L_TERMS) - 1, 0, -1):
        ta, tb = np.zeros_like(xi), np.zeros_like(xi)
        for j in range(tool.TEMME_L_TERMS[k] - 1, -1, -1):
            c = l_table[j + 1 + 2 * k]
            even, odd = horner(c[0::2], nu2), nu * horner(c[1::2], nu2)
            m = tool.mult(k, j)
            ta = ta * xi + m * (even + odd)
            tb = tb * xi - m * (even - odd) * (-1.0) ** j
        sa, sb = (sa + ta) * z, (sb + tb) * z
    return sg, sa, sb


def test_temme_sums_match_the_tables():
    """The unrolled sums against loops over the tables, at |xi| up to 1 where every kept
    coefficient shows (the expansion itself uses |xi| <= 0.1)."""
    rng = np.random.default_rng(11)
    xi, nu, z = rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200), rng.uniform(0, 0.5, 200)
    g = numba_map(B._temme_g, xi, nu, z)
    la, lb = numba_map(B._temme_l, xi, nu, z, n_out=2)
    for got, want in zip(
        (g, la, lb), _temme_sums_from_tables(xi, nu, z, _render_tool()), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-16 * np.abs(want).max())


def test_temme_sums_are_the_rendered_tables():
    # the Temme sums are tools/render_beta_temme.py's output (no hand edits, no drift)
    tool = _render_tool()
    source = (ROOT / "irtgen/scalar/beta.py").read_text()
    assert tool.render().strip() in source
    assert B._temme_g.__module__ == "irtgen.scalar.beta"
    assert tool.TEMME_G_TERMS == (10, 8, 6, 3)
