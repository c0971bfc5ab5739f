"""Accuracy of irtgen's formulas against mpmath: the build's audit (irtgen.audit) of every
built-in, the CPU kernels at the audit's points, and torch.distributions' own rsample gradient
at the same points where torch has one that can be evaluated at a given sample.

    python tools/accuracy_report.py            # prints a Markdown table
    python tools/accuracy_report.py Gamma Beta # only these families

The points and the reference are the audit's: the parameter grid of the build diagnostics,
quantiles 1e-12 ... 1 - 1e-12, mpmath at 50 digits at the exact binary values of the inputs, and
its error measure (relative error; next to a zero crossing of the result, relative to the
sensitivity of the formula to its inputs). The audit evaluates the generated scalar source in
the interpreter; the CPU columns evaluate the numba kernels through the distributions'
``reparameterize`` backward at the same points, so the float64 figures of the two must be equal
(the table says so in its last column). The audit's float32 is Triton's computation on a GPU
(float32 for the elementary families); the CPU kernels compute in float64 and round.

torch's columns: torch.distributions' own rsample gradient, as its backward computes it,
evaluated at the same points (Gamma, Chi2, InverseGamma through torch._standard_gamma_grad;
Beta through torch._dirichlet_grad and the Dirichlet backward). StudentT's torch gradient goes
through a chi-square draw (path-dependent, not a function of z); the other families' torch
gradients are explicit reparameterizations.
"""

from __future__ import annotations

import importlib
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import irtgen.distributions as D  # noqa: E402
from irtgen.audit import DTYPES, audit, error  # noqa: E402
from irtgen.build import builtin_spec_dir, load_spec_file  # noqa: E402
from irtgen.derive import derive  # noqa: E402
from tests.families.cases import points, reference_implicit  # noqa: E402
from tests.families.test_implicit_gradients import relative_errors  # noqa: E402, F401

TORCH_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def torch_errors_on_grid(case, dtype):
    """Relative errors of torch's gradient at the points of tests/families/cases.py (the grid of
    ``relative_errors``, which benchmarks/run.py reports next to its timings)."""
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


def builtin_audit(spec_file: Path):
    """(derivation, module, audit report) of one built-in."""
    spec = load_spec_file(spec_file)[0]
    d = derive(spec)
    module = importlib.import_module(f"irtgen.generated.{spec.snake_name}")
    return d, module, audit(d, module)


def _points(report, dtype: str):
    return [s for s in report.samples if s[0] == dtype]


def _dz_labels(report):
    return [k for k in report.formulas if k.startswith("dz/d")]


def kernel_errors(report, name: str, dtype: str) -> list[float]:
    """Errors of dz/dθ from the CPU kernels (reparameterize's backward) at the audit's points."""
    pts = _points(report, dtype)
    if not pts:
        return []
    tdt = TORCH_DTYPES[dtype]
    n = len(pts[0][1])
    params = [torch.tensor([p[1][i] for p in pts], dtype=tdt, requires_grad=True) for i in range(n)]
    z = torch.tensor([p[2] for p in pts], dtype=tdt)
    getattr(D, name)(*params, validate_args=False).reparameterize(z).sum().backward()
    labels = _dz_labels(report)
    out = []
    for k, (_, _, _, _, record) in enumerate(pts):
        for i, label in enumerate(labels):
            _, ref, scale = record[label]
            out.append(error(params[i].grad[k].item(), ref, dtype, scale))
    return out


def audit_errors(report, dtype: str) -> list[float]:
    return [e for label in _dz_labels(report) for e in report.formulas[label].errors[dtype]]


def torch_errors(report, name: str, dtype: str) -> list[float] | None:
    """Errors of torch's own rsample gradient at the audit's points (None: torch has none that
    is a function of the sample)."""
    pts = _points(report, dtype)
    tdt = TORCH_DTYPES[dtype]
    n = len(pts[0][1]) if pts else 0
    z = torch.tensor([p[2] for p in pts], dtype=tdt)
    params = [torch.tensor([p[1][i] for p in pts], dtype=tdt) for i in range(n)]
    got = torch_gradient(name, z, params)
    if got is None:
        return None
    labels = _dz_labels(report)
    out = []
    for k, (_, _, _, _, record) in enumerate(pts):
        for i, label in enumerate(labels):
            _, ref, scale = record[label]
            out.append(error(got[i][k].item(), ref, dtype, scale))
    return out


def _fmt(e):
    # below 1e-30 the difference is the 50-digit reference's own rounding: the values agree
    return "inf" if not np.isfinite(e) else ("0" if e < 1e-30 else f"{e:.1e}")


def _cell(errs):
    return f"{_fmt(max(errs))} / {_fmt(statistics.median(errs))}" if errs else "–"


def main(argv: list[str]) -> int:
    wanted = set(argv)
    print(
        "| family | points | dz/dθ f64 (audit) | f32 GPU (audit) | f32 CPU kernels "
        "| torch f32 | torch f64 | worst formula f64 / f32 (audit) | CPU f64 = audit |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for spec_file in sorted(builtin_spec_dir().glob("*.py")):
        if spec_file.name == "__init__.py":
            continue
        d, _, report = builtin_audit(spec_file)
        name = d.name
        if wanted and name not in wanted:
            continue
        f64 = audit_errors(report, "float64")
        cpu64 = kernel_errors(report, name, "float64")
        same = "yes" if sorted(cpu64) == sorted(f64) else "NO"
        cells = [
            _cell(f64),
            _cell(audit_errors(report, "float32")),
            _cell(kernel_errors(report, name, "float32")),
        ]
        for dtype in ("float32", "float64"):
            errs = torch_errors(report, name, dtype)
            cells.append(_cell(errs) if errs else "–")
        worst = " / ".join(
            f"{_fmt(w.error)} {w.formula}" if w else "–"
            for w in (report.worst(dt) for dt in DTYPES)
        )
        print(
            f"| {name} | {report.points} | " + " | ".join(cells) + f" | {worst} | {same} |",
            flush=True,
        )
    print(
        "\nCells: max / median relative error of dz/dθ over all parameters and points (the "
        "audit's measure); 'worst formula': the largest error of any formula (cdf, sf, log_prob, "
        "icdf, dz/dθ, ∂log q/∂θ), as in the build's audit line."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
