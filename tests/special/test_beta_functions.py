"""irtgen's incomplete beta function, its implicit-gradient ratios, log B and the Beta log
density (torch_beta and, in the interpreter, triton_beta) against mpmath at 40 digits.

Test points sit at quantiles 1e-10 ... 1 - 1e-10 of Beta(a, b) for a, b log-spaced in
[1e-3, 1e5], and at the Student-t arguments a = df/2, b = 1/2, x = df/(df + t^2),
y = t^2/(df + t^2). The smaller of x and y is the exact input and the other its complement,
as the functions assume; the reference is evaluated there. References: I_x(a, b) from DLMF
8.17.8 (all terms positive) or, next to x = 1, from the complement's series 8.17.7 at raised
precision; dI/da and dI/db by mp.diff of that function, divided by the exact density.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest
import scipy.special as sc
import torch

from irtgen.runtime import torch_beta as tb
from tests.special import beta_kernel as K

FUNCTIONS = ("betainc", "betainc_da_ratio", "betainc_db_ratio", "log_beta_density", "betaln")
SHAPES = (1e-3, 0.1, 1.0, 10.0, 1e3, 1e5)
# the grid, plus pairs in Temme's regime (ab/(a+b) >= 2000) and one moderate pair
PAIRS = [(a, b) for a in SHAPES for b in SHAPES] + [(1e4, 1e4), (3e3, 1e5), (1e5, 3e3), (2.5, 3.5)]
QUANTILES = (1e-10, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6, 1 - 1e-10)
QUANTILES_32 = (1e-6, 0.5, 1 - 1e-6)
STUDENT_DF = (0.05, 0.5, 3.0, 30.0, 1e3, 1e6)
STUDENT_T = (1e-8, 1e-3, 0.5, 2.0, 10.0, 1e3, 1e10, 1e30)
TOL64 = 1e-13  # relative (log B and the log density: relative to max(1, |value|))
TOL32 = 1.2e-7
AGREE = 5e-14  # torch vs Triton, float64: the same formulas, different elementary functions

# -- references ------------------------------------------------------------------------------

mp.mp.dps = 40


def _fixed(v, p: int) -> int:
    return int(mp.floor(mp.ldexp(v, p)))


def _positive_series(a, b, x):
    """sum_n (a+b)_n/(a+1)_n x^n (DLMF 8.17.8, every term > 0), in fixed point for speed."""
    p = mp.mp.prec + 64
    one = 1 << p
    ai, bi, xi = _fixed(a, p), _fixed(b, p), _fixed(x, p)
    t = s = one
    stop = one >> (mp.mp.prec + 8)
    while t > stop:
        t = t * (ai + bi) // (ai + one) * xi >> p
        s += t
        ai += one
    return mp.ldexp(mp.mpf(s), -p)


def _alternating(a, b, x):
    """I_x(a, b) = x^a/B(a, b) sum_n (1-b)_n x^n/(n! (a+n)) (DLMF 8.17.7) with the precision
    raised by its cancellation (terms up to ~e^(bx), sum ~e^(-bx))."""
    with mp.extradps(int(0.87 * b * x) + 15):
        t = mp.mpf(1)
        s = 1 / a
        n = 0
        while True:
            n += 1
            t *= (n - b) * x / n
            s += t / (a + n)
            if n > b * x and abs(t / (a + n)) < abs(s) * mp.mpf(10) ** (-mp.mp.dps):
                break
        log_beta = mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)
        return mp.exp(a * mp.log(x) - log_beta) * s


def _lower(a, b, x, y):
    """I_x(a, b) for x <= a/(a + b)."""
    if (a + b) * x / (a + 1) > 0.9 and y <= 0.5 and a * y <= 100:
        return 1 - _alternating(b, a, y)  # the positive series would need many terms
    log_beta = mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)
    return mp.exp(a * mp.log(x) + b * mp.log(y) - log_beta) * _positive_series(a, b, x) / a


def _reference(a: float, b: float, x_exact) -> dict:
    """{function name: mpf} at (a, b, x_exact, 1 - x_exact)."""
    a, b = mp.mpf(a), mp.mpf(b)
    x = x_exact
    y = mp.fsub(1, x, exact=True)
    log_beta = mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)
    log_f = (a - 1) * mp.log(x) + (b - 1) * mp.log(y) - log_beta
    f = mp.exp(log_f)
    if x * (a + b) <= a:
        value = _lower(a, b, x, y)
        da = mp.diff(lambda t: _lower(t, b, x, y), a)
        db = mp.diff(lambda t: _lower(a, t, x, y), b)
    else:
        value = 1 - _lower(b, a, y, x)
        da = -mp.diff(lambda t: _lower(b, t, y, x), a)
        db = -mp.diff(lambda t: _lower(t, a, y, x), b)
    return {
        "betainc": value,
        "betainc_da_ratio": da / f,
        "betainc_db_ratio": db / f,
        "log_beta_density": log_f,
        "betaln": log_beta,
    }


def _round(v: float, dtype) -> float:
    return float(np.float32(v)) if dtype == torch.float32 else float(v)


def _split(small_is_x: bool, small: float, dtype):
    """(x, y, exact x) with the smaller coordinate exact in dtype and the other its rounded
    complement."""
    s = mp.mpf(_round(small, dtype))
    other = _round(float(mp.fsub(1, s, exact=True)), dtype)
    return (float(s), other, s) if small_is_x else (other, float(s), mp.fsub(1, s, exact=True))


def _quantile_point(a: float, b: float, q: float, dtype):
    """(a, b, x, y, exact x) near the q-quantile of Beta(a, b) (scipy places it), or None where
    the smaller coordinate is not a normal number of dtype."""
    a, b = _round(a, dtype), _round(b, dtype)
    if q <= 0.5:
        x = float(sc.betaincinv(a, b, q))
        small_is_x, small = x <= 0.5, min(x, 1.0 - x)
    else:
        y = float(sc.betaincinv(b, a, 1.0 - q))
        small_is_x, small = y > 0.5, min(y, 1.0 - y)
    if not small > torch.finfo(dtype).tiny * 1e6:
        return None
    return (a, b, *_split(small_is_x, small, dtype))


def _student_point(df: float, t: float):
    """The caller's x = df/(df + t^2), y = t^2/(df + t^2), each rounded; exact is the smaller."""
    x, y = 1.0 / (1.0 + t * t / df), 1.0 / (1.0 + df / (t * t))
    exact = mp.mpf(x) if x <= y else mp.fsub(1, mp.mpf(y), exact=True)
    return (df / 2, 0.5, x, y, exact)


@functools.cache
def _points(kind: str):
    """Test points and their references: kind is "grid", "student" or "grid32" (float32)."""
    if kind == "grid":
        raw = [_quantile_point(a, b, q, torch.float64) for a, b in PAIRS for q in QUANTILES]
    elif kind == "grid32":
        raw = [_quantile_point(a, b, q, torch.float32) for a, b in PAIRS for q in QUANTILES_32]
    else:
        raw = [_student_point(df, t) for df in STUDENT_DF for t in STUDENT_T]
    pts = [p for p in raw if p is not None]
    return pts, [_reference(a, b, exact) for a, b, _x, _y, exact in pts]


def _inputs(pts, dtype):
    cols = list(zip(*[p[:4] for p in pts], strict=True))
    return [torch.tensor(c, dtype=dtype) for c in cols]


def _torch_values(name, a, b, x, y):
    fn = getattr(tb, name)
    return fn(a, b) if name == "betaln" else fn(a, b, x, y)


def _errors(name: str, values: torch.Tensor, refs, dtype) -> np.ndarray:
    """Relative errors (absolute over max(1, |ref|) for the two log functions); a reference
    below dtype's smallest normal number only asks for a result that small as well."""
    tiny = torch.finfo(dtype).tiny
    out = []
    for v, r in zip(values.tolist(), refs, strict=True):
        ref = r[name]
        if name in ("betaln", "log_beta_density"):
            out.append(float(abs(v - ref) / max(1, abs(ref))))
        elif abs(ref) < tiny:
            out.append(0.0 if abs(v) <= tiny else math.inf)
        else:
            out.append(float(abs((v - ref) / ref)) if v == v else math.inf)
    return np.array(out)


def _worst(name, errs, pts) -> str:
    i = int(np.argmax(errs))
    a, b, x, y, _ = pts[i]
    return f"{name}: max error {errs[i]:.2e} at a={a:.4g}, b={b:.4g}, x={x:.6g}, y={y:.6g}"


# -- the references themselves ---------------------------------------------------------------


@pytest.mark.parametrize("a,b,x", [(2.5, 3.5, 0.3), (0.7, 12.0, 0.02), (40.0, 25.0, 0.66)])
def test_reference_matches_mpmath_betainc(a, b, x):
    exact = mp.mpf(x)
    ref = _reference(a, b, exact)
    value = mp.betainc(a, b, 0, exact, regularized=True)
    density = mp.exp(ref["log_beta_density"])
    da = mp.diff(lambda t: mp.betainc(t, b, 0, exact, regularized=True), a) / density
    db = mp.diff(lambda t: mp.betainc(a, t, 0, exact, regularized=True), b) / density
    for got, want in ((ref["betainc"], value), (ref["betainc_da_ratio"], da)):
        assert abs(got / want - 1) < 1e-30
    assert abs(ref["betainc_db_ratio"] / db - 1) < 1e-30


# -- torch, float64 and float32 --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["grid", "student"])
@pytest.mark.parametrize("name", FUNCTIONS)
def test_torch_float64(name, kind):
    pts, refs = _points(kind)
    out = _torch_values(name, *_inputs(pts, torch.float64))
    assert out.dtype == torch.float64
    errs = _errors(name, out, refs, torch.float64)
    assert errs.max() <= TOL64, _worst(name, errs, pts)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_torch_float32_is_the_rounded_float64_result(name):
    pts, refs = _points("grid32")
    inputs = _inputs(pts, torch.float32)
    out = _torch_values(name, *inputs)
    assert out.dtype == torch.float32
    wide = _torch_values(name, *(t.double() for t in inputs))
    assert torch.equal(out, wide.float())
    errs = _errors(name, out, refs, torch.float32)
    assert errs.max() <= TOL32, _worst(name, errs, pts)


def _regimes_hit(pts) -> list[bool]:
    """Whether pts contain a point of each method: Temme, series (direct, mirrored with the
    expm1 complement, mirrored plain), continued fraction (direct, mirrored)."""
    a, b, x, y = _inputs(pts, torch.float64)
    small_x = x <= y
    x, y = torch.where(small_x, x, 1 - y), torch.where(small_x, 1 - x, y)
    temme, series, fraction, swap = tb._regimes(a, b, x, y)
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
    assert all(_regimes_hit(_points("grid")[0]))


def test_torch_symmetry_and_broadcasting():
    pts, _ = _points("grid")
    a, b, x, y = _inputs(pts, torch.float64)
    total = tb.betainc(a, b, x, y) + tb.betainc(b, a, y, x)
    assert torch.allclose(total, torch.ones_like(total), rtol=0, atol=4e-15)
    ra = tb.betainc_da_ratio(a, b, x, y)
    mirrored = -tb.betainc_db_ratio(b, a, y, x)
    assert torch.allclose(ra, mirrored, rtol=TOL64, atol=0)
    # broadcasting and Python scalars
    grid = tb.betainc(2.5, torch.tensor([[1.0], [4.0]]), torch.tensor([0.2, 0.5, 0.9]), 0.5)
    assert grid.shape == (2, 3)
    col = tb.betainc(
        2.5,
        torch.tensor([[1.0], [4.0]]),
        torch.tensor([0.2, 0.5, 0.9]),
        1 - torch.tensor([0.2, 0.5, 0.9]),
    )
    assert torch.equal(grid[:, 0], col[:, 0])


def test_torch_iterations_stay_bounded(monkeypatch):
    """Every lane converges within 120 terms: the cap only guards against bugs."""
    monkeypatch.setattr(tb, "MAX_ITER", 120)
    rng = np.random.default_rng(7)
    n = 20000
    a = torch.tensor(10 ** rng.uniform(-3.5, 5.5, n))
    b = torch.tensor(10 ** rng.uniform(-3.5, 5.5, n))
    small = torch.tensor(10 ** rng.uniform(-30, 0, n) * 0.5)
    flip = torch.tensor(rng.random(n) < 0.5)
    x, y = torch.where(flip, 1 - small, small), torch.where(flip, small, 1 - small)
    for name in ("betainc", "betainc_da_ratio", "betainc_db_ratio"):
        out = getattr(tb, name)(a, b, x, y)
        assert bool(torch.isfinite(out).all()), name


# -- edge values -----------------------------------------------------------------------------

NAN = math.nan
INF = math.inf
# (a, b, x, y) -> betainc, da ratio, db ratio, log density; betaln(a, b) is checked separately
EDGES = [
    ((2.0, 3.0, 0.0, 1.0), (0.0, 0.0, 0.0, -INF)),
    ((0.5, 3.0, 0.0, 1.0), (0.0, 0.0, 0.0, INF)),
    ((1.0, 3.0, 0.0, 1.0), (0.0, 0.0, 0.0, math.log(3.0))),
    ((2.0, 3.0, 1.0, 0.0), (1.0, 0.0, 0.0, -INF)),
    ((2.0, 0.5, 1.0, 0.0), (1.0, 0.0, 0.0, INF)),
    ((2.0, 1.0, 1.0, 0.0), (1.0, 0.0, 0.0, math.log(2.0))),
    ((1e-3, 1e4, 0.0, 1.0), (0.0, 0.0, 0.0, INF)),
    ((0.0, 3.0, 0.5, 0.5), (NAN, NAN, NAN, NAN)),
    ((2.0, -1.0, 0.5, 0.5), (NAN, NAN, NAN, NAN)),
    ((INF, 3.0, 0.5, 0.5), (NAN, NAN, NAN, NAN)),
    ((NAN, 3.0, 0.5, 0.5), (NAN, NAN, NAN, NAN)),
    ((2.0, 3.0, NAN, 0.5), (NAN, NAN, NAN, NAN)),
    ((2.0, 3.0, -0.1, 1.1), (NAN, NAN, NAN, NAN)),
    ((2.0, 3.0, 1.1, -0.1), (NAN, NAN, NAN, NAN)),
]
BETALN_EDGES = [((0.0, 1.0), NAN), ((-1.0, 1.0), NAN), ((NAN, 1.0), NAN), ((INF, 2.0), -INF)]


def _edge_check(got: dict, dtype):
    for i, (_args, want) in enumerate(EDGES):
        for name, w in zip(FUNCTIONS[:4], want, strict=True):
            v = got[name][i].item()
            assert (math.isnan(w) and math.isnan(v)) or v == pytest.approx(w, rel=1e-6), (
                name,
                EDGES[i][0],
                v,
            )
    assert all(got[name].dtype == dtype for name in FUNCTIONS[:4])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_torch_edge_values(dtype):
    a, b, x, y = (torch.tensor(c, dtype=dtype) for c in zip(*[e[0] for e in EDGES], strict=True))
    _edge_check({name: _torch_values(name, a, b, x, y) for name in FUNCTIONS[:4]}, dtype)
    for (ea, eb), want in BETALN_EDGES:
        v = tb.betaln(torch.tensor(ea, dtype=dtype), torch.tensor(eb, dtype=dtype)).item()
        assert (math.isnan(want) and math.isnan(v)) or v == want


# -- Triton (interpreter), one launch per dtype ----------------------------------------------


def _triton_points(dtype):
    """<= 150 points: every third grid point (each regime), the Student-t points at a few t,
    and the edge values (the latter without references)."""
    if dtype == torch.float64:
        grid, grid_refs = _points("grid")
        stud, stud_refs = _points("student")
        keep = [i for i in range(len(stud)) if i % 3 == 0]
        pts = grid[::3] + [stud[i] for i in keep]
        refs = grid_refs[::3] + [stud_refs[i] for i in keep]
    else:
        pts, refs = _points("grid32")
    assert len(pts) + len(EDGES) <= 150
    return pts, refs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_triton_matches_mpmath_and_torch(dtype):
    pts, refs = _triton_points(dtype)
    inputs = [
        torch.cat([c, torch.tensor(e, dtype=dtype)])
        for c, e in zip(_inputs(pts, dtype), zip(*[e[0] for e in EDGES], strict=True), strict=True)
    ]
    assert all(_regimes_hit(pts))
    got = K.beta_functions(*inputs)
    n = len(pts)
    tol = TOL64 if dtype == torch.float64 else TOL32
    for name in FUNCTIONS:
        assert got[name].dtype == dtype
        errs = _errors(name, got[name][:n], refs, dtype)
        assert errs.max() <= tol, "triton " + _worst(name, errs, pts)
        want = _torch_values(name, *(t[:n] for t in inputs))
        if dtype == torch.float64:
            scale = want.abs() if name.startswith("betainc") else want.abs().clamp_min(1.0)
            diff = (got[name][:n] - want).abs() / scale
            diff = torch.where(got[name][:n] == want, 0.0, diff).max().item()
            assert diff <= AGREE, (name, diff)
    _edge_check({name: got[name][n:] for name in FUNCTIONS[:4]}, dtype)


# -- Temme tables ----------------------------------------------------------------------------


def _exact_temme_tables(n_max: int):
    """Maclaurin coefficients (polynomials in nu, lowest power first) of h = xi/V and
    l = h log(1 + (1 - mu) V), where V V' = xi (1 + nu V - mu (1 - mu) V^2), V ~ xi, derived
    in exact rational arithmetic."""

    def add(p, q):
        r = [Fraction(0)] * max(len(p), len(q))
        for i, c in enumerate(p):
            r[i] += c
        for i, c in enumerate(q):
            r[i] += c
        return r

    def mul(p, q):
        r = [Fraction(0)] * (len(p) + len(q) - 1) if p and q else []
        for i, c in enumerate(p):
            for j, e in enumerate(q):
                r[i + j] += c * e
        return r

    def scale(p, c):
        return [c * e for e in p]

    def series_mul(s, t):
        r = [[] for _ in range(n_max + 1)]
        for i, c in enumerate(s[: n_max + 1]):
            for j, e in enumerate(t[: n_max + 1 - i]):
                r[i + j] = add(r[i + j], mul(c, e))
        return r

    nu, s2 = [Fraction(0), Fraction(1)], [Fraction(1, 4), Fraction(0), Fraction(-1, 4)]
    q = [[], [Fraction(1)]]  # V = sum q_j xi^j
    for n in range(2, n_max + 3):
        acc = mul(nu, q[n - 1])
        for i in range(1, n - 1):
            acc = add(acc, scale(mul(s2, mul(q[i], q[n - 1 - i])), Fraction(-1)))
        for i in range(2, n):
            acc = add(acc, scale(mul(q[i], q[n + 1 - i]), Fraction(-(n + 1 - i))))
        q.append(scale(acc, Fraction(1, n + 1)))
    h = [[Fraction(1)]]  # 1 / sum_j q_(j+1) xi^j
    for n in range(1, n_max + 1):
        acc = []
        for j in range(1, n + 1):
            acc = add(acc, mul(q[j + 1], h[n - j]))
        h.append(scale(acc, Fraction(-1)))
    u = [[]] + [mul([Fraction(1, 2), Fraction(1, 2)], c) for c in q[1 : n_max + 1]]
    log_series, power = [[] for _ in range(n_max + 1)], [[Fraction(1)]] + [[]] * n_max
    for k in range(1, n_max + 1):
        power = series_mul(power, u)
        log_series = [
            add(p, scale(c, Fraction((-1) ** (k + 1), k)))
            for p, c in zip(log_series, power, strict=True)
        ]
    return h, series_mul(h, log_series)


def test_temme_tables_match_the_exact_recurrence():
    h_exact, l_exact = _exact_temme_tables(len(tb._TEMME_H) - 1)
    for table, exact in ((tb._TEMME_H, h_exact), (tb._TEMME_L, l_exact)):
        for n, coeffs in enumerate(table):
            want = [float(c) for c in exact[n]]
            while want and want[-1] == 0.0:
                want.pop()
            assert list(coeffs) == want, n


def test_triton_temme_sums_match_the_tables():
    """The unrolled sums in triton_beta against torch_beta's tables, at |xi| up to 1 where
    every kept coefficient shows (the expansion itself uses |xi| <= 0.1)."""
    rng = np.random.default_rng(11)
    xi = torch.tensor(rng.uniform(-1, 1, 200))
    nu = torch.tensor(rng.uniform(-1, 1, 200))
    z = torch.tensor(rng.uniform(0, 0.5, 200))
    g, la, lb = K.temme_sums(xi, nu, z)
    want_g = tb._temme_g(xi, nu, z)
    want_la, want_lb = tb._temme_l(xi, nu, z)
    for got, want in ((g, want_g), (la, want_la), (lb, want_lb)):
        assert torch.allclose(got, want, rtol=1e-14, atol=1e-16 * want.abs().max().item())


# -- PTX for a real GPU ----------------------------------------------------------------------

COMPILE = textwrap.dedent(
    """
    import json
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from tests.special import beta_kernel as K

    sizes = {}
    for dtype in ("fp32", "fp64"):
        sig = {p: "*" + dtype for p in K.beta_kernel.arg_names if p.endswith("_ptr")}
        sig.update(n="i32", BLOCK="constexpr", ROWS="constexpr")
        src = ASTSource(fn=K.beta_kernel, signature=sig, constexprs={"BLOCK": 32, "ROWS": 4})
        compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": 1})
        sizes[dtype] = len(compiled.asm["ptx"])
    print(json.dumps(sizes))
    """
)


def test_beta_device_functions_compile_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", COMPILE],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = proc.stdout.strip().splitlines()[-1]
    assert '"fp32"' in sizes and '"fp64"' in sizes


def test_triton_temme_sums_are_the_rendered_tables():
    # triton_beta writes the Temme sums out with inline literals; they must be what
    # tools/render_beta_temme.py renders from torch_beta's tables (no hand edits, no drift)
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("render", root / "tools/render_beta_temme.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    source = (root / "irtgen/runtime/triton_beta.py").read_text()
    assert render.render().strip() in source
