"""Samplers of irtgen.runtime.torch_variates and irtgen.runtime.triton_variates: goodness of fit
(Kolmogorov-Smirnov against the exact CDF), finiteness, reproducibility, Philox offsets and
streams (Triton, in the interpreter), and compilation for sm_90.

Samples are mapped to uniforms by the randomized probability integral transform: u = F(x), except
that a value standing for a whole rounding cell with visible probability -- 0 for an underflowed
variate, 1 for a Beta variate within half an ulp of 1, inf for an overflowed Student-t -- gets a
uniform point of the cell's CDF range. For correctly rounded samples u is then exactly uniform, so
the KS test checks the rounding at the extremes as well as the bulk. Seeds are fixed and were
chosen once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.special as sc
import scipy.stats as st
import torch

from irtgen.runtime import rng
from irtgen.runtime import torch_variates as tv
from tests.special import variates_kernel as K

P_MIN = 1e-3
N_TORCH = 20000
N_TRITON = 2000
DTYPES = [torch.float64, torch.float32]
DTYPE_IDS = ["f64", "f32"]


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
    fi = np.finfo(np.float32 if dtype == torch.float32 else np.float64)
    params = [np.broadcast_to(np.asarray(p, dtype=np.float64), x.shape) for p in params]
    v = np.random.default_rng(seed).uniform(size=x.shape)
    pinf, ninf = x == np.inf, x == -np.inf
    u = np.full(x.shape, np.nan)

    def at(mask):
        return [p[mask] for p in params]

    if dtype == torch.float32:
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


# -- torch ------------------------------------------------------------------------------------

GAMMA_SHAPES = [1e-3, 0.01, 0.5, 1.0, 3.7, 1e3, 1e5]
LOG_GAMMA_SHAPES = [1e-4, 1e-3, 0.01, 3.7]
BETA_SHAPES = [(1e-3, 1e-3), (0.5, 0.5), (2.0, 5.0), (1e-3, 1e4), (1e4, 1e-3), (1e4, 1e4)]
T_DFS = [0.05, 1.0, 3.0, 1e6]


def _draw_torch(name, params, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    ps = [torch.full((N_TORCH,), p, dtype=dtype) for p in params]
    if name == "standard_normal":
        return tv.standard_normal((N_TORCH,), dtype, "cpu", generator=gen)
    return getattr(tv, name)(*ps, generator=gen)


TORCH_CASES = (
    [("standard_normal", Normal, ())]
    + [("standard_gamma", Gamma, (a,)) for a in GAMMA_SHAPES]
    + [("log_standard_gamma", LogGamma, (a,)) for a in LOG_GAMMA_SHAPES]
    + [("beta_variate", Beta, ab) for ab in BETA_SHAPES]
    + [("student_t_variate", StudentT, (df,)) for df in T_DFS]
)


def _case_id(case):
    return case[0] + "-" + "-".join(f"{p:g}" for p in case[2])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", TORCH_CASES, ids=[_case_id(c) for c in TORCH_CASES])
def test_torch_goodness_of_fit(case, dtype):
    name, dist, params = case
    x = _draw_torch(name, params, dtype, seed=20240611)
    assert x.dtype == dtype and x.shape == (N_TORCH,)
    assert not torch.isnan(x).any()
    if not (name == "student_t_variate" and dtype == torch.float32):
        # Every true value here is representable: no overflow (float32 Student-t: see below).
        assert torch.isfinite(x).all()
    p = ks_pvalue(pit(x.double().numpy(), dtype, dist, params))
    assert p > P_MIN, f"KS p-value {p:.2e}"


@pytest.mark.parametrize("order", ["shuffled", "ascending", "descending"])
def test_torch_gamma_varying_shapes(order, monkeypatch):
    """Per-element shapes from 1e-3 to 1e4 in one call, over several chunks of the first pass:
    elements finish in different passes, and chunks with and without shapes < 1 mix."""
    monkeypatch.setattr(tv, "_CHUNK", 256)  # times the thread count: several chunks
    a = torch.logspace(-3, 4, N_TORCH, dtype=torch.float64)
    if order == "shuffled":
        a = a[torch.randperm(N_TORCH, generator=torch.Generator().manual_seed(1))]
    elif order == "descending":
        a = a.flip(0)
    x = tv.standard_gamma(a, generator=torch.Generator().manual_seed(2))
    assert torch.isfinite(x).all()
    assert ks_pvalue(pit(x.numpy(), torch.float64, Gamma, (a.numpy(),))) > P_MIN
    lx = tv.log_standard_gamma(a, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(torch.exp(lx), x, rtol=1e-12, atol=0)


@pytest.mark.parametrize("df", [0.05, 0.1])
def test_torch_student_t_float32_overflow_rate(df):
    """|t| > float32 max has probability 1.06% at df = 0.05 (1.2e-4 at 0.1, 1.5e-8 at 0.2); those
    samples are inf, the correctly rounded value, and no others."""
    expected = 2 * st.t.sf(float(np.finfo(np.float32).max), df)
    gen = torch.Generator().manual_seed(3)
    n = 200000
    x = tv.student_t_variate(torch.full((n,), df, dtype=torch.float32), generator=gen)
    rate = torch.isinf(x).double().mean().item()
    assert abs(rate - expected) < 5 * np.sqrt(expected / n), (rate, expected)
    assert not torch.isnan(x).any()


def test_torch_tiny_shapes_never_nan():
    gen = torch.Generator().manual_seed(4)
    a = torch.tensor([0.0, 1e-300, 1e-100, 1e-10, 1e-4] * 1000, dtype=torch.float64)
    g = tv.standard_gamma(a, generator=gen)
    lg = tv.log_standard_gamma(a, generator=gen)
    assert not torch.isnan(g).any() and not torch.isnan(lg).any()
    assert (g[a > 0] >= 0).all() and torch.isfinite(lg[a > 0]).all()
    assert (g[a == 0] == 0).all() and (lg[a == 0] == -np.inf).all()
    b = tv.beta_variate(a[a > 0], a[a > 0].flip(0), generator=gen)
    assert torch.isfinite(b).all() and ((b >= 0) & (b <= 1)).all()


def test_torch_invalid_shapes_give_nan():
    a = torch.tensor([-1.0, float("nan"), -1e-3, float("inf")] * 50, dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    assert torch.isnan(tv.standard_gamma(a, generator=gen)).all()
    assert torch.isnan(tv.log_standard_gamma(a, generator=gen)).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
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
def test_torch_reproducible(name, params, dtype):
    first = _draw_torch(name, params, dtype, seed=7)
    again = _draw_torch(name, params, dtype, seed=7)
    other = _draw_torch(name, params, dtype, seed=8)
    assert torch.equal(first, again)
    assert (first != other).float().mean() > 0.99
    torch.manual_seed(9)
    ps = [torch.full((100,), p, dtype=dtype) for p in params]
    draw = (
        (lambda: tv.standard_normal((100,), dtype, "cpu"))
        if name == "standard_normal"
        else (lambda: getattr(tv, name)(*ps))
    )
    x = draw()
    torch.manual_seed(9)
    assert torch.equal(x, draw())


# -- Triton (interpreter) ---------------------------------------------------------------------

SEED = rng.philox_seed(torch.device("cpu"), torch.Generator().manual_seed(11))
BASE = (1 << 33) - N_TRITON // 2  # offsets cross 2^33: both 32-bit words of the counter vary

TRITON_CASES = [
    ("standard_normal", Normal, (), torch.float64),
    ("standard_normal", Normal, (), torch.float32),
    ("standard_gamma", Gamma, (0.5,), torch.float64),
    ("standard_gamma", Gamma, (3.7,), torch.float32),
    ("standard_gamma", Gamma, (1e5,), torch.float64),
    ("standard_gamma", Gamma, (1e-3,), torch.float32),
    ("log_standard_gamma", LogGamma, (1e-3,), torch.float64),
    ("beta_variate", Beta, (0.5, 0.5), torch.float64),
    ("beta_variate", Beta, (2.0, 5.0), torch.float32),
    ("beta_variate", Beta, (1e-3, 1e-3), torch.float64),
    ("student_t_variate", StudentT, (3.0,), torch.float64),
    ("student_t_variate", StudentT, (0.05,), torch.float32),
]


@pytest.mark.parametrize(
    "case",
    TRITON_CASES,
    ids=[_case_id(c) + ("-f64" if c[3] == torch.float64 else "-f32") for c in TRITON_CASES],
)
def test_triton_goodness_of_fit(case):
    name, dist, params, dtype = case
    like = torch.zeros(N_TRITON, dtype=dtype)  # the normal's dtype carrier
    ps = [torch.full((N_TRITON,), p, dtype=dtype) for p in params] or [like]
    x = K.draw(name, *ps, seed=SEED, base=BASE)
    assert x.dtype == dtype
    assert not torch.isnan(x).any()
    if not (name == "student_t_variate" and dtype == torch.float32):
        assert torch.isfinite(x).all()
    p = ks_pvalue(pit(x.double().numpy(), dtype, dist, params))
    assert p > P_MIN, f"KS p-value {p:.2e}"


def test_triton_gamma_varying_shapes():
    a = torch.logspace(-3, 4, N_TRITON, dtype=torch.float64)
    a = a[torch.randperm(N_TRITON, generator=torch.Generator().manual_seed(12))]
    x = K.draw("standard_gamma", a, seed=SEED, base=3)
    assert torch.isfinite(x).all()
    assert ks_pvalue(pit(x.numpy(), torch.float64, Gamma, (a.numpy(),))) > P_MIN
    lx = K.draw("log_standard_gamma", a, seed=SEED, base=3)
    assert torch.allclose(torch.exp(lx), x, rtol=1e-12, atol=0)


def test_triton_offsets_and_streams():
    """Same (seed, offset, stream): same values. Another stream, seed, or an offset 2^32 away
    (the high counter word): values uncorrelated with the first."""
    z = torch.zeros(N_TRITON, dtype=torch.float64)
    first = K.draw("standard_normal", z, seed=SEED, base=BASE)
    assert torch.equal(first, K.draw("standard_normal", z, seed=SEED, base=BASE))
    others = [
        K.draw("standard_normal", z, seed=SEED, base=BASE, stream=1),
        K.draw("standard_normal", z, seed=SEED + 1, base=BASE),
        K.draw("standard_normal", z, seed=SEED, base=BASE + (1 << 32)),
        K.draw("standard_normal", z, seed=SEED, base=BASE - (1 << 32)),
        K.draw("standard_normal", z, seed=SEED, base=BASE + 1),
    ]
    for other in others:
        assert not torch.isclose(first, other).any()
        r = np.corrcoef(first.numpy(), other.numpy())[0, 1]
        assert abs(r) < 4 / np.sqrt(N_TRITON), r


def test_triton_gamma_streams_independent():
    """Two streams of one gamma: a smooth dependence would show in a rank correlation."""
    a = torch.full((N_TRITON,), 1.5, dtype=torch.float32)
    x0 = K.draw("standard_gamma", a, seed=SEED, base=0, stream=0)
    x1 = K.draw("standard_gamma", a, seed=SEED, base=0, stream=1)
    assert abs(st.spearmanr(x0.numpy(), x1.numpy())[0]) < 4 / np.sqrt(N_TRITON)


def test_triton_float32_is_the_float64_variate_rounded():
    """Both dtypes compute in float64 from the same 52-bit uniforms."""
    a = torch.tensor([0.5, 3.75, 2.0**-10, 1e5] * 50, dtype=torch.float64)
    for name in ("standard_gamma", "beta_variate", "student_t_variate"):
        x64 = K.draw(name, a, a.flip(0), seed=SEED, base=BASE)
        x32 = K.draw(name, a.float(), a.flip(0).float(), seed=SEED, base=BASE)
        assert torch.equal(x32, x64.float()), name


def test_triton_invalid_and_zero_shapes():
    a = torch.tensor([-1.0, float("nan"), float("inf"), 0.0, 1e-300, 1e-4], dtype=torch.float64)
    g = K.draw("standard_gamma", a, seed=SEED)
    lg = K.draw("log_standard_gamma", a, seed=SEED)
    assert torch.isnan(g[:3]).all() and torch.isnan(lg[:3]).all()
    assert g[3] == 0 and lg[3] == -np.inf
    assert (g[4:] >= 0).all() and torch.isfinite(lg[4:]).all()


# -- compilation for a real GPU ---------------------------------------------------------------

COMPILE = textwrap.dedent(
    """
    import json
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from tests.special import variates_kernel as K

    sizes = {}
    for fn, name in enumerate(K.NAMES):
        for dt in ("fp32", "fp64"):
            sig = {"a_ptr": "*" + dt, "b_ptr": "*" + dt, "o_ptr": "*" + dt, "n": "i32",
                   "seed": "i64", "base": "i64", "stream": "i32",
                   "FN": "constexpr", "BLOCK": "constexpr"}
            src = ASTSource(fn=K._draw_kernel, signature=sig, constexprs={"FN": fn, "BLOCK": 256})
            compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32))
            sizes[name + "-" + dt] = len(compiled.asm["ptx"])
    print(json.dumps(sizes))
    """
)


def test_primitives_compile_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
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
    for name in K.NAMES:
        for dt in ("fp32", "fp64"):
            assert f'"{name}-{dt}"' in sizes
