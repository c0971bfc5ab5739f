"""Accuracy of irtgen's implicit gradients against mpmath, per family, dtype and backend.

    python tools/accuracy_report.py            # prints a Markdown table

Reference: dz/dθ = -(∂F/∂θ)/(∂F/∂z) by mpmath differentiation of an independent CDF at 40
digits, at the exact binary values of the inputs, on the grids of tests/families/cases.py
(quantiles 1e-6 ... 1 - 1e-6, small and large scales and shapes, kinks of piecewise CDFs).
The Triton column runs the kernels in Triton's interpreter (TRITON_INTERPRET=1) on the CPU.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from tests.families.cases import CASES  # noqa: E402
from tests.families.test_implicit_gradients import relative_errors  # noqa: E402


def main() -> int:
    rows = []
    for case in CASES:
        cells = []
        for dtype in (torch.float64, torch.float32):
            for backend in ("torch", "triton"):
                os.environ["IRTGEN_BACKEND"] = backend
                errs = [e[0] for e in relative_errors(case, dtype)]
                cells.append((max(errs), statistics.median(errs), len(errs)))
        rows.append((case.name, cells))
    print(
        "| family | gradient values | f64 torch max / median | f64 Triton max / median "
        "| f32 torch max / median | f32 Triton max / median |"
    )
    print("|---|---|---|---|---|---|")
    for name, cells in rows:
        parts = " | ".join(f"{mx:.1e} / {md:.1e}" for mx, md, _ in cells)
        print(f"| {name} | {cells[0][2]} | {parts} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
