"""Accuracy of irtgen's implicit gradients against mpmath, per family, dtype and backend, next to
torch's own rsample gradient where torch has one that can be evaluated at a given sample.

    python tools/accuracy_report.py            # prints a Markdown table
    python tools/accuracy_report.py Gamma Beta # only these families

Reference: dz/dθ = -(∂F/∂θ)/(∂F/∂z) by mpmath differentiation of an independent CDF at 40
digits, at the exact binary values of the inputs, on the grids of tests/families/cases.py
(quantiles 1e-6 ... 1 - 1e-6, small and large scales and shapes, kinks of piecewise CDFs).
The Triton columns run the kernels in Triton's interpreter (TRITON_INTERPRET=1) on the CPU.

torch's columns: torch.distributions' own rsample gradient, as its backward computes it,
evaluated at the same points (Gamma, Chi2, InverseGamma through torch._standard_gamma_grad;
Beta through torch._dirichlet_grad and the Dirichlet backward). StudentT's torch gradient goes
through a chi-square draw (path-dependent, not a function of z); the other families' torch
gradients are explicit reparameterizations.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tests.families.cases import CASES, points, reference_implicit  # noqa: E402
from tests.families.test_implicit_gradients import relative_errors  # noqa: E402


def torch_gradient(name, z, params):
    """torch.distributions' rsample gradient dz/dθ at samples z, as torch's backward computes it
    (None where torch's gradient is not a function of z alone, or is exact)."""
    g = torch._standard_gamma_grad
    if name == "Gamma":  # z = G/rate
        a, rate = params
        return [g(a, rate * z) / rate, -z / rate]
    if name == "Chi2":  # z = 2 G(df/2)
        (df,) = params
        return [g(df / 2, z / 2)]
    if name == "InverseGamma":  # z = rate/G
        a, rate = params
        return [-z * z / rate * g(a, rate / z), z / rate]
    if name == "Beta":  # Dirichlet((c1, c0)) backward, first coordinate
        c1, c0 = params
        x = torch.stack([z, 1 - z], -1)
        alpha = torch.stack([c1, c0], -1)
        d = torch._dirichlet_grad(x, alpha, alpha.sum(-1, keepdim=True).expand_as(alpha))
        return [d[..., 0] * (1 - z), -d[..., 1] * z]
    return None


def torch_errors(case, dtype):
    """Relative errors of torch's gradient at the same points as irtgen's."""
    pts = points(case, dtype)
    n = len(case.param_names)
    z = torch.tensor([p[0] for p in pts], dtype=dtype)
    params = [torch.tensor([p[1][i] for p in pts], dtype=dtype) for i in range(n)]
    got = torch_gradient(case.name, z, params)
    if got is None:
        return None
    errors = []
    for k, (zv, pv) in enumerate(pts):
        for i, r in enumerate(reference_implicit(case, zv, pv)):
            g = got[i][k].item()
            errors.append(float(abs(g - r) / abs(r)) if r != 0 else abs(g))
    return errors


def _fmt(e):
    # errors below 1e-30 are the 40-digit reference's own rounding: the values agree exactly
    return "0" if e < 1e-30 else f"{e:.1e}"


def _cell(errs):
    return f"{_fmt(max(errs))} / {_fmt(statistics.median(errs))}"


def main(argv: list[str]) -> int:
    wanted = set(argv)
    print(
        "| family | points | f64 numba | f64 Triton | f32 numba | f32 Triton "
        "| torch.distributions f32 | torch.distributions f64 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in CASES:
        if wanted and case.name not in wanted:
            continue
        cells = []
        count = 0
        for dtype in (torch.float64, torch.float32):
            for backend in ("numba", "triton"):
                os.environ["IRTGEN_BACKEND"] = backend
                errs = [e[0] for e in relative_errors(case, dtype)]
                count = len(errs)
                cells.append(_cell(errs))
        for dtype in (torch.float32, torch.float64):
            errs = torch_errors(case, dtype)
            cells.append(_cell(errs) if errs else "–")
        print(f"| {case.name} | {count} | " + " | ".join(cells) + " |", flush=True)
    print("\nCells: max / median relative error of dz/dθ over all parameters and points.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
