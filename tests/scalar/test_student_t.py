"""irtgen.scalar.student_t: student_t_ddf_ratio against mpmath on a grid of df from 0.05 to 1e7
and |t| from 1e-8 to 1e3, both sides of the switches at df = 50 (incomplete beta to quadrature)
and |t| = 3 (Gauss-Legendre to Gauss-Laguerre), in float64 and as the float64 result rounded to
float32; student_t_cdf, log_ndtr and the psi series against mpmath; the Triton form in the
interpreter against the numba form; the quadrature rules and the rendered sums; and compilation
for sm_90 within the register and stack limits."""

from __future__ import annotations

import functools
import importlib.util
import math

import mpmath
import numpy as np
import pytest
import torch
import triton
import triton.language as tl

from irtgen import functions as F
from irtgen.scalar import student_t as S
from tests.scalar.helpers import ROOT, check_resources, compile_resources, numba_map

# df below, at and above the switch to quadrature (50); |t| around the Legendre/Laguerre split (3)
DFS = (0.05, 0.3, 1.0, 3.0, 10.0, 30.0, 49.9, 50.0, 70.0, 300.0, 1e3, 1e4, 1e5, 1e6, 1e7)
TS = (1e-8, 0.3, 1.0, 1.55, 2.9999, 3.0, 3.0001, 4.75, 6.0, 30.0, 1e3)
POINTS = [
    (df, sign * t)
    for df in DFS
    for t in TS
    if not (df >= 1e7 and t >= 1e3)  # mpmath's incomplete beta does not converge there
    for sign in (1.0, -1.0)
]


@functools.cache
def _reference(df: float, t: float) -> float:
    with mpmath.workdps(60):  # the df-derivative of the half-CDF: 40 digits are not enough at 1e7
        return float(F.student_t_ddf_ratio._mp(mpmath.mpf(df), mpmath.mpf(t)))


def _cdf_reference(df: float, t: float) -> float:
    with mpmath.workdps(40):
        x = mpmath.mpf(df) / (df + mpmath.mpf(t) ** 2)
        half = mpmath.betainc(mpmath.mpf(df) / 2, 0.5, 0, x, regularized=True) / 2
        return float(half if t < 0 else 1 - half)


DF = np.array([p[0] for p in POINTS])
T = np.array([p[1] for p in POINTS])


@triton.jit
def _one_element_kernel(a_ptr, b_ptr, out_ptr, FN: tl.constexpr, NP: tl.constexpr):
    """FN's Triton form on the 0-d values of element program_id: the interpreter then runs its
    real if/else and while per element (tl.map_elementwise it cannot run)."""
    i = tl.program_id(0)
    if NP == 1:
        r = FN(tl.load(a_ptr + i))
    else:
        r = FN(tl.load(a_ptr + i), tl.load(b_ptr + i))
    tl.store(out_ptr + i, r)


def _rel(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(got - want) / np.abs(want)
    return np.where(got == want, 0.0, np.nan_to_num(rel, nan=math.inf))


def test_ddf_ratio_matches_mpmath():
    got = numba_map(S.student_t_ddf_ratio, DF, T)
    err = _rel(got, [_reference(*p) for p in POINTS])
    small = DF < 50
    # below df = 50 the incomplete-beta form loses ~log10(df) digits to cancellation: 2.02e-14
    # at (49.9, 0.3) (as the block-form Triton code and its torch twin did)
    assert err[small].max() <= 2.05e-14, POINTS[int(np.argmax(np.where(small, err, 0)))]
    # the quadratures: a few ulp
    assert err[~small].max() <= 1.9e-15, POINTS[int(np.argmax(np.where(small, 0, err)))]


def test_float32_is_finite_and_the_rounded_float64_result():
    # no NaN or inf gradient for df in [0.05, 1e6] in float32: the float64 ratio (the CPU
    # kernels, and the Triton kernels' special functions) at the float32 arguments, rounded once
    df = np.array([0.05, 0.5, 5.0, 49.0, 50.0, 500.0, 1e4, 1e6], dtype=np.float32)
    t = np.array([-3e4, -5.0, -0.01, 0.0, 2.0, 3.0, 8.0, 1e3], dtype=np.float32)
    df, t = np.meshgrid(df, t)
    got = numba_map(S.student_t_ddf_ratio, df, t).astype(np.float32)
    assert np.isfinite(got).all()


def test_cdf_matches_mpmath():
    pts = [(0.3, -30.0), (1.0, 0.5), (3.0, -4.75), (10.0, 1.55), (49.9, -3.0), (1e3, -6.0)]
    pts += [(1e6, 2.0), (2.5, 0.0)]
    got = [S.student_t_cdf(df, t) for df, t in pts]
    assert _rel(got, [_cdf_reference(df, t) for df, t in pts]).max() <= 1e-14
    # the grid (every df and |t|, both signs): relative to max(1, |log F|), as exp turns an ulp
    # of log F into |log F| ulp (8.5e-14 at F = 1e-189)
    got = numba_map(S.student_t_cdf, DF, T)
    want = np.array([_cdf_reference(*p) for p in POINTS])
    scale = np.maximum(1.0, np.abs(np.log(np.maximum(want, np.finfo(np.float64).tiny))))
    assert (_rel(got, want) / scale).max() <= 1e-14


def test_cdf_far_tail_where_t_squared_overflows():
    """|t| > 1e150: t² overflows and x = df/(df + t²) underflows, while F does not (df = 0.01:
    F(-4e268) = 1e-3). Relative to max(1, |log F|) as above (the exponent a log x carries the
    rounding of log|t|)."""
    pts = [(0.01, -3.96e268), (0.01, 3.96e268), (0.01, -1e151), (0.3, -1e200), (1.0, -1e160)]
    pts += [(2.0, 1e300), (0.05, -1.7e308), (0.01, -1e149)]
    got = np.array([S.student_t_cdf(df, t) for df, t in pts])
    with mpmath.workdps(60):
        want = []
        for df, t in pts:
            df, t = mpmath.mpf(df), mpmath.mpf(t)
            x = df / (df + t**2)
            half = mpmath.betainc(df / 2, 0.5, 0, x, regularized=True) / 2
            want.append(float(half if t < 0 else 1 - half))
    want = np.array(want)
    assert (got > 0).all() and np.isfinite(got).all()
    scale = np.maximum(1.0, np.abs(np.log(want)))
    assert (_rel(got, want) / scale).max() <= 1e-15


def test_ddf_ratio_is_odd_zero_at_zero_and_continuous():
    for df in (0.5, 20.0, 50.0, 1e4, 1e6):
        for t in (0.7, 2.5, 3.5, 40.0):
            assert S.student_t_ddf_ratio(df, -t) == -S.student_t_ddf_ratio(df, t)
        assert S.student_t_ddf_ratio(df, 0.0) == 0.0
        assert S.student_t_ddf_ratio(df, -0.0) == 0.0
    # df = 50 changes the algorithm, |t| = 3 the quadrature rule: no step at either
    for t in (0.4, 1.7, 2.9, 5.0, 60.0):
        lo = S.student_t_ddf_ratio(math.nextafter(50.0, 0.0), t)
        hi = S.student_t_ddf_ratio(50.0, t)
        assert abs(lo - hi) <= 1e-13 * abs(hi)
    for df in (50.0, 400.0, 1e5):
        lo = S.student_t_ddf_ratio(df, 3.0)
        hi = S.student_t_ddf_ratio(df, math.nextafter(3.0, 4.0))
        assert abs(lo - hi) <= 1e-14 * abs(hi)
    assert math.isnan(S.student_t_ddf_ratio(math.nan, 1.0))
    assert math.isnan(S.student_t_ddf_ratio(60.0, math.nan))


def test_log_ndtr_matches_mpmath():
    x = np.concatenate(
        [-np.logspace(-3, 2.5, 60), np.logspace(-3, 1.5, 40), [0.0, -1.0, np.nextafter(-1.0, 0)]]
    )
    x = np.concatenate([x, [38.0, -1e5, 1e3]])

    def ref(v):
        v = mpmath.mpf(v)
        return mpmath.log(mpmath.ncdf(v)) if v < 0 else mpmath.log1p(-mpmath.ncdf(-v))

    with mpmath.workdps(40):
        want = [float(ref(v)) for v in x]
    got = numba_map(S.log_ndtr, x)
    assert _rel(got, want).max() <= 5e-16
    assert np.isnan(S.log_ndtr(math.nan)) and S.log_ndtr(-math.inf) == -math.inf


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(
    ("name", "tol"), [("log_ndtr", 5e-16), ("student_t_cdf", 5e-16), ("student_t_ddf_ratio", 2e-15)]
)
def test_triton_form_in_the_interpreter_matches_numba(name, tol):
    # the same source bound to triton.language, per element in the interpreter (numpy's exp and
    # log for libm's: a few ulp, amplified by the quadrature's cancellation for the ratio)
    sf = getattr(S, name)
    df, t = DF[::3], T[::3]
    args = [t] if name == "log_ndtr" else [df, t]
    out = torch.empty(len(t), dtype=torch.float64)
    _one_element_kernel[(len(t),)](
        torch.tensor(args[0]), torch.tensor(t), out, FN=sf.triton(), NP=len(args)
    )
    assert _rel(out.numpy(), numba_map(sf, *args)).max() <= tol


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_log_ndtr_diff_triton_form_in_the_interpreter_matches_numba():
    """log_ndtr_diff and ndtr_diff in every regime (narrow windows, either tail, straddling 0)."""
    y = np.array([-0.3, 0.2, -40.0, 39.0, -6.0, 5.0, 5.5, -1.0, -8.0, 3.0, 0.5, -2.0])
    d = np.array([0.5, 1e-9, 0.04, 0.03, 1.0, 1.0, 0.1, 2.0, 16.0, 30.0, 0.0, -1.5])
    for sf, dd in ((S.log_ndtr_diff, np.abs(d)), (S.ndtr_diff, d)):
        out = torch.empty(len(y), dtype=torch.float64)
        _one_element_kernel[(len(y),)](torch.tensor(y), torch.tensor(dd), out, FN=sf.triton(), NP=2)
        want = numba_map(sf, y, dd)
        same = (out.numpy() == want) | (_rel(out.numpy(), want) <= 1e-15)
        assert same.all(), (out, want)


def test_psi_half_series():
    # c(df) = [psi((df+1)/2) - psi(df/2) - 1/df]/2 from its asymptotic series, for df >= 50
    df = [50.0, 77.0, 1e3, 1e6]
    got = numba_map(S._ddf_c, df)
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
    spec = importlib.util.spec_from_file_location(
        "render", ROOT / "tools/render_student_t_quadrature.py"
    )
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    return render


def test_quadrature_rules_are_gauss_rules():
    # an n-point Gauss rule integrates polynomials of degree <= 2n - 1 exactly
    render = _render()
    p, wp = render.legendre_unit()
    r, wr = render.laguerre()
    assert len(p) == len(wp) == len(r) == len(wr) == 16
    for k in range(2 * len(p)):
        leg = math.fsum(w * x**k for x, w in zip(p, wp, strict=True))
        assert leg == pytest.approx(1.0 / (k + 1), rel=1e-14), k
        lag = math.fsum(w * x**k for x, w in zip(r, wr, strict=True))
        assert lag == pytest.approx(math.factorial(k), rel=1e-12), k


def test_sums_are_the_rendered_rules():
    # the sums and rules are what tools/render_student_t_quadrature.py computes with mpmath
    render = _render()
    assert render.render_scalar() in (ROOT / "irtgen/scalar/student_t.py").read_text()


@pytest.mark.slow
def test_student_t_functions_compile_for_sm90_within_limits(tmp_path):
    # ~10 s on one core (the quadratures loop over their points; unrolled they took ~40 s)
    specs = [
        ("irtgen.scalar.student_t", "log_ndtr", 1, 1),
        ("irtgen.scalar.student_t", "log_ndtr_diff", 2, 1),
        ("irtgen.scalar.student_t", "ndtr_diff", 2, 1),
        ("irtgen.scalar.student_t", "student_t_cdf", 2, 1),
        ("irtgen.scalar.student_t", "student_t_ddf_ratio", 2, 1),
    ]
    usage = compile_resources(specs, tmp_path)
    assert len(usage) == 10
    # no local memory: the block form kept its quadrature in 8,064 bytes of stack
    assert not check_resources(usage), usage
