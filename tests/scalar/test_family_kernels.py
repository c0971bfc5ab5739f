"""The CPU kernels of irtgen.compilers.cpu on every built-in family's generated formulas: the
fused backward against per-element evaluation, a reduction that does not depend on the thread
count, icdf against cdf, and the Triton family kernels (interpreter) against numba."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from irtgen.compilers import cpu
from tests.families.cases import CASES, QUANTILES

CASE_IDS = [c.name for c in CASES]


def _module(case):
    return importlib.import_module(case.cls.family.key)


def _points(case, n_params: int = 3):
    """(z, params) float64 arrays: grid points at each quantile."""
    zs, ps = [], []
    grid = case.grid[:: max(1, len(case.grid) // n_params)][:n_params]
    for params in grid:
        for u in QUANTILES:
            zs.append(float(case.quantile(u, *params)))
            ps.append([float(p) for p in params])
    return np.array(zs), np.array(ps)


def _close(new, ref, rtol, atol=0.0, zero_atol=0.0):
    new, ref = np.asarray(new, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    both_nan = np.isnan(new) & np.isnan(ref)
    same_inf = np.isinf(ref) & (new == ref)
    err = np.abs(new - ref)
    ok = both_nan | same_inf | (err <= atol + rtol * np.abs(ref))
    # a root at 0 (the Student-t median) is found to within the solver's absolute step
    ok |= (ref == 0.0) & (err <= zero_atol)
    assert ok.all(), f"max rel. error {np.max(err / np.maximum(np.abs(ref), 1e-300)):.3g}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_icdf_inverts_cdf(case):
    S = _module(case)
    z, P = _points(case)
    u = cpu.run_map(S.cdf, z, P)
    back = cpu.run_map(S.icdf, u, P)
    ok = (u > 0) & (u < 1)
    _close(back[ok], z[ok], rtol=1e-9, atol=1e-300, zero_atol=1e-12)
    lo, hi = cpu.run_params(S.support, P, 2)
    ends = cpu.run_map(S.icdf, np.array([0.0, 1.0, -0.5, 1.5] * len(P)), np.repeat(P, 4, axis=0))
    assert np.array_equal(ends[0::4], lo) and np.array_equal(ends[1::4], hi)
    assert np.isnan(ends[2::4]).all() and np.isnan(ends[3::4]).all()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fused_backward_matches_elementwise(case):
    """The fused implicit backward (value gradient per element, parameter gradients summed over
    rows in fixed chunks, zero outside the support and where g = 0) against the per-element
    derivatives summed in float64; rows span several chunks and columns several parameters."""
    S = _module(case)
    z, P = _points(case)
    NB = P.shape[0]
    rows = cpu.CHUNK_ELEMENTS // NB * 2 + 3  # more than two chunks
    x = np.tile(z, rows)  # element m * NB + j uses parameter row j
    g = np.sin(np.arange(x.size) * 0.7)
    g[::5] = 0.0
    gvalue, grads = cpu.run_backward(S.implicit_grad, S.in_support, x, g, P, True)
    per = cpu.run_map(S.implicit_grad, x, np.tile(P, (rows, 1)), 1 + P.shape[1])
    inside = cpu.run_map(S.in_support, x, np.tile(P, (rows, 1))) != 0
    take = inside & (g != 0)
    _close(gvalue, np.where(take, g * per[0], 0.0), rtol=0.0)
    for k in range(P.shape[1]):
        terms = np.where(take, g * per[1 + k], 0.0).reshape(rows, NB)
        scale = np.abs(terms).sum(axis=0)
        assert np.all(np.abs(grads[k] - terms.sum(axis=0)) <= 1e-13 * scale + 1e-300)


def test_reduction_does_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr(cpu, "PARALLEL_MIN_SECONDS", 0.0)  # split whatever the size
    S = importlib.import_module("irtgen.generated.gamma")
    P = np.array([[0.7, 1.3], [40.0, 0.5]])
    x = np.abs(np.sin(np.arange(300_000) * 0.37)) * 5 + 1e-3
    g = np.cos(np.arange(x.size) * 0.11)
    results = []
    for threads in (1, 2, 3):
        cpu.set_threads(threads)
        results.append(cpu.run_backward(S.implicit_grad, S.in_support, x, g, P, True))
    cpu.set_threads(torch.get_num_threads())
    for gv, gp in results[1:]:
        assert np.array_equal(gv, results[0][0]) and np.array_equal(gp, results[0][1])


TRITON_CASES = [c for c in CASES if c.cls.__name__ in ("Normal", "Gamma", "Beta", "StudentT")]


@pytest.mark.slow
@pytest.mark.parametrize("case", TRITON_CASES, ids=[c.name for c in TRITON_CASES])
def test_triton_kernels_match_numba(case):
    """The Triton family kernels (interpreter) give the numba kernels' values, fused reductions
    and draws: the kernels' loads, broadcasting, masks and reductions under test."""
    from irtgen.compilers import gpu

    S = _module(case)
    z, P = _points(case, n_params=1)
    params = P[:1]
    x = torch.tensor(np.tile(z, 3))
    tp = [torch.tensor(params[:, k]) for k in range(params.shape[1])]
    new = gpu.run_family_map(S.log_prob, x, tp, wide=True).numpy()
    _close(new, cpu.run_map(S.log_prob, x.numpy(), params), rtol=0.0)
    g = torch.linspace(-1.0, 2.0, x.numel(), dtype=torch.float64)
    needs = (True,) + (True,) * params.shape[1]
    gv, gps = gpu.run_family_backward(S.implicit_grad, S.in_support, x, g, tp, needs, True)
    ref_v, ref_p = cpu.run_backward(
        S.implicit_grad, S.in_support, x.numpy(), g.numpy(), params, True
    )
    _close(gv.numpy(), ref_v, rtol=0.0)
    for k, gp in enumerate(gps):
        assert abs(float(gp[0]) - ref_p[k, 0]) <= 1e-13 * np.abs(ref_p[k, 0]) + 1e-300
    draws = gpu.run_family_sample(S.sample, tp, 64, 7, torch.float64, True).numpy()
    _close(draws, cpu.run_sample(S.sample, params, 64, 7), rtol=0.0)
