"""Pointwise implicit gradients of every built-in against mpmath, both backends, both dtypes.

For each test point (quantiles 1e-6 ... 1 - 1e-6 on parameter grids with small and large
scales/shapes, plus the kink of piecewise CDFs), the reference dz/dθ = -(∂F/∂θ)/(∂F/∂z) is
computed by mpmath differentiation of an independent CDF at 40 digits, at the exact binary
values of the inputs. Each point gets its own parameters, so the gradient of
sum(reparameterize(z)) is dz/dθ elementwise.
"""

from __future__ import annotations

import mpmath as mp
import pytest
import torch

from tests.families.cases import CASES, IDS, points, reference_implicit

# Families with elementary CDFs; measured maxima (both backends): 5.4e-15 (float64), 7.7e-7
# (float32).
TOL = {torch.float64: 1e-13, torch.float32: 4e-6}
# Families whose CDF needs incomplete gamma/beta functions: the targets of their issue.
TOL_SPECIAL = {torch.float64: 1e-12, torch.float32: 1e-5}


def relative_errors(case, dtype):
    pts = points(case, dtype)
    n = len(case.param_names)
    z = torch.tensor([p[0] for p in pts], dtype=dtype)
    params = [
        torch.tensor([p[1][i] for p in pts], dtype=dtype, requires_grad=True) for i in range(n)
    ]
    case.cls(*params).reparameterize(z).sum().backward()
    errors = []
    tiny = torch.finfo(dtype).tiny
    with mp.workdps(40):
        for k, (zv, pv) in enumerate(pts):
            ref = reference_implicit(case, zv, pv)
            for i in range(n):
                g = params[i].grad[k].item()
                r = ref[i]
                # a subnormal reference has fewer significant bits than the dtype: judged
                # against the smallest normal number instead
                err = float(abs(g - r) / max(abs(r), tiny)) if r != 0 else abs(g)
                errors.append((err, case.param_names[i], zv, pv, g, float(r)))
    return errors


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_implicit_gradient_matches_mpmath(case, dtype, backend):
    errors = relative_errors(case, dtype)
    assert len(errors) >= 10
    worst = max(errors, key=lambda e: e[0])
    tol = (case.tol or {}).get(dtype, (TOL_SPECIAL if case.special else TOL)[dtype])
    assert worst[0] <= tol, f"worst point (err, param, z, params, got, ref): {worst}"


@pytest.mark.parametrize("case", [c for c in CASES if c.kink is not None], ids=lambda c: c.name)
def test_gradient_finite_at_kink(case, backend):
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in case.grid[0]]
    z = torch.tensor(float(case.kink(*case.grid[0])), dtype=torch.float64)
    out = case.cls(*params).reparameterize(z)
    grads = torch.autograd.grad(out, params)
    assert all(torch.isfinite(g) for g in grads)
