"""Test points and mpmath references (40 digits) of irtgen's incomplete beta function, its
implicit-gradient ratios, log B and the Beta log density, for tests/scalar/test_beta.py.

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

import mpmath as mp
import numpy as np
import pytest
import scipy.special as sc
import torch

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


def reference(a: float, b: float, x_exact) -> dict:
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
def points(kind: str):
    """Test points and their references: kind is "grid", "student" or "grid32" (float32)."""
    if kind == "grid":
        raw = [_quantile_point(a, b, q, torch.float64) for a, b in PAIRS for q in QUANTILES]
    elif kind == "grid32":
        raw = [_quantile_point(a, b, q, torch.float32) for a, b in PAIRS for q in QUANTILES_32]
    else:
        raw = [_student_point(df, t) for df in STUDENT_DF for t in STUDENT_T]
    pts = [p for p in raw if p is not None]
    return pts, [reference(a, b, exact) for a, b, _x, _y, exact in pts]


def inputs(pts, dtype):
    cols = list(zip(*[p[:4] for p in pts], strict=True))
    return [torch.tensor(c, dtype=dtype) for c in cols]


def errors(name: str, values: torch.Tensor, refs, dtype) -> np.ndarray:
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


def worst(name, errs, pts) -> str:
    i = int(np.argmax(errs))
    a, b, x, y, _ = pts[i]
    return f"{name}: max error {errs[i]:.2e} at a={a:.4g}, b={b:.4g}, x={x:.6g}, y={y:.6g}"


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


def edge_check(got: dict, dtype):
    for i, (_args, want) in enumerate(EDGES):
        for name, w in zip(FUNCTIONS[:4], want, strict=True):
            v = got[name][i].item()
            assert (math.isnan(w) and math.isnan(v)) or v == pytest.approx(w, rel=1e-6), (
                name,
                EDGES[i][0],
                v,
            )
    assert all(got[name].dtype == dtype for name in FUNCTIONS[:4])
