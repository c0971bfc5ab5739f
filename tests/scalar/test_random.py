"""irtgen.scalar.random: the numba Philox against Triton's bit for bit, the uniforms from Triton's
words, the Triton form of every variate in the interpreter against the numba form (same seed and
offsets), goodness of fit of numba draws, the counter layout, and compilation for sm_90 within
the register and stack limits. tests/scalar/test_variates.py tests the variates' distributions
across their shapes and dtypes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.stats as st
import torch
import triton
import triton.language as tl

from irtgen.compilers import numba_tl
from irtgen.compilers.gpu import emap
from irtgen.scalar import random as R
from tests.scalar.helpers import ROOT, check_resources

SEEDS = (0, 1, 12345, 2**31, 2**32 + 7, 0x1234_5678_9ABC, 2**62 - 1)
OFFSETS = (0, 1, 2, 2**31, 2**32 - 1, 2**32, 2**32 + 5, 2**40 + 3, 2**62 + 17, 2**63 - 1)
PARAMS = {  # number of float parameters before (seed, offset[, stream])
    "uniform": 0,
    "uniform32": 0,
    "standard_normal": 0,
    "standard_gamma": 1,
    "log_standard_gamma": 1,
    "beta_variate": 2,
    "student_t_variate": 1,
}


# -- kernels -------------------------------------------------------------------------------------


@triton.jit
def _philox_kernel(seed, off_ptr, c2_ptr, c3_ptr, out_ptr, N: tl.constexpr):
    """Triton's own tl.philox and tl.randint4x on blocks: eight words per element."""
    i = tl.arange(0, N)
    off = tl.load(off_ptr + i)
    c2 = tl.load(c2_ptr + i).to(tl.uint32)
    c3 = tl.load(c3_ptr + i).to(tl.uint32)
    r0, r1, r2, r3 = tl.philox(seed, off.to(tl.uint32), (off >> 32).to(tl.uint32), c2, c3)
    q0, q1, q2, q3 = tl.randint4x(seed, off)
    words = (r0, r1, r2, r3, q0, q1, q2, q3)
    for k in tl.static_range(8):
        tl.store(out_ptr + 8 * i + k, words[k].to(tl.int64) & 0xFFFFFFFF)


@triton.jit
def draw_kernel(
    p_ptrs,
    out_ptr,
    N,
    seed,
    base,
    stream,
    FN: tl.constexpr,
    STREAM: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """out[i] = FN(*params[i], seed, base + i[, stream]), the parameters in float64 (compiled for
    sm_90 below; the variates compute in float64 for every parameter dtype)."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < N
    xs = ()
    for i in tl.static_range(len(p_ptrs)):
        xs = xs + (tl.load(p_ptrs[i] + idx, mask=mask, other=1.0).to(tl.float64),)
    xs = xs + (seed, base + idx)
    if STREAM:
        xs = xs + (stream,)
    tl.store(out_ptr + idx, emap(FN, *xs), mask=mask)


@triton.jit
def _one_element_kernel(
    a_ptr, b_ptr, out_ptr, seed, base, stream, FN: tl.constexpr, NP: tl.constexpr
):
    """FN's Triton form on the 0-d values of element program_id: the interpreter then runs its
    real if/else and while per element, with Triton's own tl.philox and tl.cast."""
    i = tl.program_id(0)
    off = base + i.to(tl.int64)
    if NP == -1:
        r = FN(seed, off)
    elif NP == 0:
        r = FN(seed, off, stream)
    elif NP == 1:
        r = FN(tl.load(a_ptr + i), seed, off, stream)
    else:
        r = FN(tl.load(a_ptr + i), tl.load(b_ptr + i), seed, off, stream)
    tl.store(out_ptr + i, r)


# -- Philox --------------------------------------------------------------------------------------


def test_numba_philox_is_tritons_bit_for_bit():
    n = 16
    offs = torch.tensor(OFFSETS + (12345, 99_999_999_999, 7, 8, 9, 10), dtype=torch.int64)
    c2 = torch.arange(n, dtype=torch.int64) * 4 + 1
    c3 = torch.tensor([0, 1, 2, 3, 127, 128, 2**31, 2**32 - 1] * 2, dtype=torch.int64)
    for seed in SEEDS:
        out = torch.zeros(8 * n, dtype=torch.int64)
        _philox_kernel[(1,)](seed, offs, c2, c3, out, N=n)
        want = out.reshape(n, 8).tolist()
        for j in range(n):
            o, a, b = int(offs[j]), int(c2[j]), int(c3[j])
            words = numba_tl.philox(seed, o & 0xFFFFFFFF, o >> 32, a, b)
            words += numba_tl.randint4x(seed, o)
            assert [int(w) for w in words] == want[j], (seed, o, a, b)
            # the scalar source's counter (casts of int64 offset words included)
            assert [int(w) for w in R._philox(seed, o, a, b)] == want[j][:4], (seed, o, a, b)


def test_uniforms_from_tritons_words():
    # Triton's words (numba_tl.randint4x is Triton's bit for bit, above): (k + 1/2) 2^-52 with k
    # the top 26 bits of the first two words, and (k + 1/2) 2^-23 with k the top 23 of the first
    n, seed, base = 64, 0x1234_5678_9ABC, 2**32 - 20
    u64 = [R.uniform(seed, base + i) for i in range(n)]
    u32 = [R.uniform32(seed, base + i) for i in range(n)]
    for i in range(n):
        r0, r1, _r2, _r3 = (int(w) for w in numba_tl.randint4x(seed, base + i))
        assert u64[i] == math.ldexp(((r0 >> 6) << 26) + (r1 >> 6) + 0.5, -52)
        assert u32[i] == math.ldexp((r0 >> 9) + 0.5, -23)  # exact in float32 (24 bits)
    assert all(0.0 < u < 1.0 for u in u64 + u32)


def _numba_draws(name, params, n, seed, base, stream):
    f = getattr(R, name)
    cols = [p.tolist() for p in params]
    return np.array([f(*[c[i] for c in cols], seed, base + i, stream) for i in range(n)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", list(PARAMS))
def test_triton_form_in_the_interpreter_matches_numba(name):
    # the same source bound to triton.language (tl.philox, tl.cast), per element in the
    # interpreter: the same words, the same rejections, values within the libraries' ulp
    rng = np.random.default_rng(11)
    n = 48
    a = np.concatenate([10 ** rng.uniform(-3, 4, n - 4), [1e-300, 0.999999, 1.0, -1.0]])
    b = 10 ** rng.uniform(-3, 4, n)
    seed, base, stream = 2**62 - 12345, 2**32 - 20, 2
    sf = getattr(R, name)
    uniform = name.startswith("uniform")
    out = torch.empty(n, dtype=torch.float64)
    np_ = -1 if uniform else PARAMS[name]
    _one_element_kernel[(n,)](
        torch.tensor(a), torch.tensor(b), out, seed, base, stream, FN=sf.triton(), NP=np_
    )
    got = out.numpy()
    if uniform:
        want = np.array([sf(seed, base + i) for i in range(n)])
    else:
        want = _numba_draws(name, [a, b][: PARAMS[name]], n, seed, base, stream)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    assert np.all(same | (np.abs(got - want) <= 4 * np.spacing(np.abs(want)))), name
    assert same.mean() > 0.9


# -- goodness of fit -----------------------------------------------------------------------------

N_FIT = 4000


@pytest.mark.parametrize(
    ("name", "params", "dist"),
    [
        ("standard_normal", (), st.norm()),
        ("standard_gamma", (0.01,), st.gamma(0.01)),
        ("standard_gamma", (0.5,), st.gamma(0.5)),
        ("standard_gamma", (3.0,), st.gamma(3.0)),
        ("standard_gamma", (1e3,), st.gamma(1e3)),
        ("log_standard_gamma", (0.01,), st.loggamma(0.01)),
        ("beta_variate", (0.5, 2.0), st.beta(0.5, 2.0)),
        ("beta_variate", (30.0, 4.0), st.beta(30.0, 4.0)),
        ("student_t_variate", (0.7,), st.t(0.7)),
        ("student_t_variate", (5.0,), st.t(5.0)),
    ],
)
def test_numba_draws_fit(name, params, dist):
    f = getattr(R, name)
    seed = 20240521 + len(params)
    x = np.array([f(*params, seed, 2**33 + i, 1) for i in range(N_FIT)])
    assert np.isfinite(x).all()
    assert st.kstest(x, dist.cdf).pvalue > 1e-3


def test_counter_layout_of_streams_and_parts():
    from irtgen.scalar import elementary as el

    seed, off = 99, 2**35 + 5
    assert len({R.standard_normal(seed, off, s) for s in range(4)}) == 4
    assert R.standard_normal(seed, off, 2) == R._normal(seed, off, 8)
    # a Beta's gammas are parts 0 and 1 of its stream, a Student-t's gamma and normal too
    lx, ly = R._log_gamma(2.5, seed, off, 4), R._log_gamma(1.5, seed, off, 5)
    assert R.beta_variate(2.5, 1.5, seed, off, 1) == math.exp(-el.softplus(ly - lx))
    assert R.log_standard_gamma(2.5, seed, off, 1) == lx
    lg, z = R._log_gamma(1.5, seed, off, 4), R._normal(seed, off, 5)
    assert R.student_t_variate(3.0, seed, off, 1) == z * math.exp(0.5 * (math.log(1.5) - lg))


def test_invalid_shapes_give_nan_and_tiny_shapes_finite_logs():
    for a in (-1.0, np.nan, np.inf):
        assert np.isnan(R.standard_gamma(a, 1, 2, 0))
        assert np.isnan(R.log_standard_gamma(a, 1, 2, 0))
    lg = R.log_standard_gamma(1e-300, 1, 2, 0)
    assert np.isfinite(lg) and lg < -1e290
    assert R.standard_gamma(1e-300, 1, 2, 0) == 0.0


# -- sm_90 ---------------------------------------------------------------------------------------

_COMPILE = textwrap.dedent(
    """
    import json
    from irtgen.compilers import gpu
    from irtgen.scalar import random as R
    from tests.scalar.test_random import PARAMS, draw_kernel

    out = {}
    for name, n in PARAMS.items():
        for dtype in ("fp32", "fp64"):
            sig = {"p_ptrs": ("*" + dtype,) * n, "out_ptr": "*" + dtype, "N": "i64",
                   "seed": "i64", "base": "i64", "stream": "i32"}
            sig.update(FN="constexpr", STREAM="constexpr", BLOCK="constexpr")
            const = {"FN": getattr(R, name).triton(), "STREAM": not name.startswith("uniform"),
                     "BLOCK": 256}
            out[f"{name} {dtype}"] = gpu.resource_usage(gpu.compile_kernel(draw_kernel, sig, const))
    print(json.dumps(out))
    """
)


def test_variates_compile_for_sm90_within_limits(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run(
        [sys.executable, "-c", _COMPILE],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(usage) == 2 * len(PARAMS)
    # Box-Muller's cos keeps its argument reduction on the stack (SINCOS_STACK bytes)
    normal = {"standard_normal", "standard_gamma", "log_standard_gamma"}
    normal |= {"beta_variate", "student_t_variate"}
    assert not check_resources(usage, stack_ok=normal), usage
