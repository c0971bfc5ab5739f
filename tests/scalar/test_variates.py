"""The distributions of irtgen.scalar.random's variates (numba form): goodness of fit
(Kolmogorov-Smirnov against the exact CDF) across shapes from 1e-4 to 1e5 in float64 and float32
(the float64 variate rounded, as the kernels store it), per-element shapes in one call,
Student-t's float32 overflow rate, tiny and invalid shapes, reproducibility, and independence
across offsets, streams and seeds. The Triton form gives the numba form's draws
(tests/scalar/test_random.py).

Samples are mapped to uniforms by the randomized probability integral transform: u = F(x), except
that a value standing for a whole rounding cell with visible probability -- 0 for an underflowed
variate, 1 for a Beta variate within half an ulp of 1, inf for an overflowed Student-t -- gets a
uniform point of the cell's CDF range. For correctly rounded samples u is then exactly uniform, so
the KS test checks the rounding at the extremes as well as the bulk. Seeds are fixed and were
chosen once.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sc
import scipy.stats as st

from irtgen.scalar import random as R

P_MIN = 1e-3
N = 20000
SEED = 0x2024_0611_5EED
BASE = (1 << 33) - N // 2  # offsets cross 2^33: both 32-bit words of the counter vary
F64, F32 = np.float64, np.float32
DTYPES = [F64, F32]
DTYPE_IDS = ["f64", "f32"]


def draw(name, *params, n=N, seed=SEED, base=BASE, stream=0, dtype=F64):
    """n variates of primitive ``name`` at offsets base + i (per-element or scalar params), in
    float64, rounded once to dtype."""
    f = getattr(R, name)
    cols = [np.broadcast_to(np.asarray(p, dtype=np.float64), (n,)).tolist() for p in params]
    if name == "standard_normal":
        out = [f(seed, base + i, stream) for i in range(n)]
    else:
        out = [f(*[c[i] for c in cols], seed, base + i, stream) for i in range(n)]
    with np.errstate(over="ignore"):  # float32: an overflowing Student-t rounds to inf
        return np.array(out, dtype=np.float64).astype(dtype)


# -- exact CDFs (scipy) and the randomized probability integral transform ---------------------


class Normal:
    positive = False

    @staticmethod
    def cdf(x):
        return sc.ndtr(x)

    @staticmethod
    def sf(x):
        return sc.ndtr(-x)


class Gamma:
    positive = True

    @staticmethod
    def cdf(x, a):
        return sc.gammainc(a, x)

    @staticmethod
    def log_cdf_tiny(log_x, a):
        # P(a, x) = x^a / Gamma(a + 1) (1 + O(x)), for the cell of 0 (x < 1e-45).
        return a * log_x - sc.gammaln(a + 1.0)


class LogGamma:
    """log G for G ~ Gamma(a, 1): P(log G <= y) = P(a, e^y), through the series where e^y
    underflows."""

    positive = False

    @staticmethod
    def cdf(y, a):
        tiny = y < -50.0
        return np.where(
            tiny, np.exp(a * y - sc.gammaln(a + 1.0)), sc.gammainc(a, np.exp(np.maximum(y, -50)))
        )


class Beta:
    positive = True

    @staticmethod
    def cdf(x, a, b):
        return sc.betainc(a, b, x)

    @staticmethod
    def log_cdf_tiny(log_x, a, b):
        # I_x(a, b) = x^a / (a B(a, b)) (1 + O(x)).
        return a * log_x - np.log(a) - sc.betaln(a, b)

    @staticmethod
    def sf_gap(g, a, b):
        """P(X > 1 - g) = I_g(b, a)."""
        return sc.betainc(b, a, g)


class StudentT:
    positive = False

    @staticmethod
    def cdf(x, df):
        return st.t.cdf(x, df)

    @staticmethod
    def sf(x, df):
        return st.t.sf(x, df)


def pit(x, dtype, dist, params, seed=0):
    """Randomized probability integral transform of samples ``x`` (float64 numpy array of
    values of ``dtype``) under ``dist`` with per-element ``params``.

    float32 cells [midpoint to the next value below, midpoint to the next above] are exact in
    float64 and every sample is spread over its cell's CDF range (float32 subnormal cells carry
    visible mass for small shapes). float64 cells are spread only where they carry mass:
    0, 1 (Beta) and +-inf; elsewhere u = F(x).
    """
    fi = np.finfo(dtype)
    params = [np.broadcast_to(np.asarray(p, dtype=np.float64), x.shape) for p in params]
    v = np.random.default_rng(seed).uniform(size=x.shape)
    pinf, ninf = x == np.inf, x == -np.inf
    u = np.full(x.shape, np.nan)

    def at(mask):
        return [p[mask] for p in params]

    if dtype == F32:
        fin = ~(pinf | ninf)
        x32 = x[fin].astype(np.float32)
        lo = 0.5 * (x[fin] + np.nextafter(x32, np.float32(-np.inf)).astype(np.float64))
        hi = 0.5 * (x[fin] + np.nextafter(x32, np.float32(np.inf)).astype(np.float64))
        if dist.positive:
            lo = np.maximum(lo, 0.0)
        if dist is Beta:
            hi = np.minimum(hi, 1.0)
        f_lo = dist.cdf(lo, *at(fin))
        u[fin] = f_lo + v[fin] * (dist.cdf(hi, *at(fin)) - f_lo)
    else:
        zero = (x == 0.0) if dist.positive else np.zeros(x.shape, bool)
        one = (x == 1.0) if dist is Beta else np.zeros(x.shape, bool)
        reg = ~(zero | one | pinf | ninf)
        u[reg] = dist.cdf(x[reg], *at(reg))
        if zero.any():  # cell [0, smallest subnormal / 2]
            log_t0 = np.log(float(fi.smallest_subnormal)) - np.log(2.0)
            u[zero] = v[zero] * np.exp(dist.log_cdf_tiny(log_t0, *at(zero)))
        if one.any():  # cell [1 - eps/4, 1]
            u[one] = 1.0 - v[one] * dist.sf_gap(float(fi.eps) / 4, *at(one))
    if pinf.any():  # cell [max, inf]
        u[pinf] = 1.0 - v[pinf] * dist.sf(float(fi.max), *at(pinf))
    if ninf.any():
        u[ninf] = v[ninf] * dist.cdf(-float(fi.max), *at(ninf))
    assert not np.isnan(u).any()
    return u


def ks_pvalue(u):
    return st.kstest(u, "uniform").pvalue


# -- goodness of fit ---------------------------------------------------------------------------

GAMMA_SHAPES = [1e-3, 0.01, 0.5, 1.0, 3.7, 1e3, 1e5]
LOG_GAMMA_SHAPES = [1e-4, 1e-3, 0.01, 3.7]
BETA_SHAPES = [(1e-3, 1e-3), (0.5, 0.5), (2.0, 5.0), (1e-3, 1e4), (1e4, 1e-3), (1e4, 1e4)]
T_DFS = [0.05, 1.0, 3.0, 1e6]

CASES = (
    [("standard_normal", Normal, ())]
    + [("standard_gamma", Gamma, (a,)) for a in GAMMA_SHAPES]
    + [("log_standard_gamma", LogGamma, (a,)) for a in LOG_GAMMA_SHAPES]
    + [("beta_variate", Beta, ab) for ab in BETA_SHAPES]
    + [("student_t_variate", StudentT, (df,)) for df in T_DFS]
)


def _case_id(case):
    return case[0] + "-" + "-".join(f"{p:g}" for p in case[2])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_goodness_of_fit(case, dtype):
    name, dist, params = case
    x = draw(name, *params, dtype=dtype)
    assert not np.isnan(x).any()
    if not (name == "student_t_variate" and dtype == F32):
        # Every true value here is representable: no overflow (float32 Student-t: see below).
        assert np.isfinite(x).all()
    p = ks_pvalue(pit(x.astype(np.float64), dtype, dist, params))
    assert p > P_MIN, f"KS p-value {p:.2e}"


def test_gamma_varying_shapes():
    """Per-element shapes from 1e-3 to 1e4 in one call, shuffled: each element draws with its
    own shape (rejection loops of different lengths side by side)."""
    a = np.logspace(-3, 4, N)[np.random.default_rng(1).permutation(N)]
    x = draw("standard_gamma", a, seed=SEED + 2)
    assert np.isfinite(x).all()
    assert ks_pvalue(pit(x, F64, Gamma, (a,))) > P_MIN
    lx = draw("log_standard_gamma", a, seed=SEED + 2)
    np.testing.assert_allclose(np.exp(lx), x, rtol=1e-12, atol=0)


@pytest.mark.parametrize("df", [0.05, 0.1])
def test_student_t_float32_overflow_rate(df):
    """|t| > float32 max has probability 1.06% at df = 0.05 (1.2e-4 at 0.1, 1.5e-8 at 0.2); those
    samples are inf, the correctly rounded value, and no others."""
    expected = 2 * st.t.sf(float(np.finfo(np.float32).max), df)
    n = 200000
    x = draw("student_t_variate", df, n=n, seed=SEED + 3, base=0, dtype=F32)
    rate = np.isinf(x).mean()
    assert abs(rate - expected) < 5 * np.sqrt(expected / n), (rate, expected)
    assert not np.isnan(x).any()


def test_tiny_shapes_never_nan():
    a = np.array([0.0, 1e-300, 1e-100, 1e-10, 1e-4] * 1000)
    n = a.size
    g = draw("standard_gamma", a, n=n, seed=SEED + 4)
    lg = draw("log_standard_gamma", a, n=n, seed=SEED + 4, stream=1)
    assert not np.isnan(g).any() and not np.isnan(lg).any()
    assert (g[a > 0] >= 0).all() and np.isfinite(lg[a > 0]).all()
    assert (g[a == 0] == 0).all() and (lg[a == 0] == -np.inf).all()
    pos = a[a > 0]
    b = draw("beta_variate", pos, pos[::-1], n=pos.size, seed=SEED + 4, stream=2)
    assert np.isfinite(b).all() and ((b >= 0) & (b <= 1)).all()


def test_invalid_shapes_give_nan():
    a = np.array([-1.0, np.nan, -1e-3, np.inf] * 50)
    assert np.isnan(draw("standard_gamma", a, n=a.size, seed=SEED + 5)).all()
    assert np.isnan(draw("log_standard_gamma", a, n=a.size, seed=SEED + 5)).all()


@pytest.mark.parametrize(
    "name,params",
    [
        ("standard_normal", ()),
        ("standard_gamma", (0.3,)),
        ("log_standard_gamma", (2.0,)),
        ("beta_variate", (0.5, 2.0)),
        ("student_t_variate", (4.0,)),
    ],
)
def test_reproducible(name, params):
    first = draw(name, *params, n=2000, seed=7)
    assert np.array_equal(first, draw(name, *params, n=2000, seed=7))
    assert (first != draw(name, *params, n=2000, seed=8)).mean() > 0.99


# -- offsets, streams and seeds ----------------------------------------------------------------

N_IND = 2000


def test_offsets_and_streams():
    """Same (seed, offset, stream): same values. Another stream, seed, or an offset 2^32 away
    (the high counter word): values uncorrelated with the first."""
    first = draw("standard_normal", n=N_IND)
    assert np.array_equal(first, draw("standard_normal", n=N_IND))
    others = [
        draw("standard_normal", n=N_IND, stream=1),
        draw("standard_normal", n=N_IND, seed=SEED + 1),
        draw("standard_normal", n=N_IND, base=BASE + (1 << 32)),
        draw("standard_normal", n=N_IND, base=BASE - (1 << 32)),
        draw("standard_normal", n=N_IND, base=BASE + 1),
    ]
    for other in others:
        assert not np.isclose(first, other).any()
        r = np.corrcoef(first, other)[0, 1]
        assert abs(r) < 4 / np.sqrt(N_IND), r


def test_gamma_streams_independent():
    """Two streams of one gamma: a smooth dependence would show in a rank correlation."""
    x0 = draw("standard_gamma", 1.5, n=N_IND, base=0, stream=0)
    x1 = draw("standard_gamma", 1.5, n=N_IND, base=0, stream=1)
    assert abs(st.spearmanr(x0, x1)[0]) < 4 / np.sqrt(N_IND)
