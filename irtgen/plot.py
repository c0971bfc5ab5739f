"""``irtgen plot``: one figure of a distribution's density, CDF and implicit gradients.

``plot_spec(path, {"a": "2", "b": "3"}, output="fig.png")`` builds the spec with ``irtgen.load``
and evaluates the generated formulas (``pdf``, ``cdf``, ``implicit_grad``, run by the CPU kernels)
in float64 over the support, so the curves are what the library computes. Panels: the density q
with a histogram of the family's own samples, the CDF F, and dz/dθ for every parameter with
central differences of the family's inverse CDF at fixed u, z(u; θ ± h), as points.

The plotting range is the support where it is finite, else the quantiles ``TAIL`` and
``1 - TAIL`` found by numeric inversion of the CDF at the given parameter values.

Needs matplotlib (``pip install "irtgen[plot]"``); the figure is drawn with the Agg backend.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import sympy as sp

from irtgen.build import load, load_spec_file
from irtgen.show import interval_text, select
from irtgen.spec import Distribution

TAIL = 1e-3  # probability left out on an infinite side of the support
GRID = 600  # points per curve
CHECKS = 13  # finite-difference points per gradient panel
SAMPLES = 20_000  # draws in the histogram


class PlotError(Exception):
    """Bad ``--param`` values, a missing matplotlib, or a range that cannot be found."""


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise PlotError(
            'irtgen plot needs matplotlib, which is not installed: pip install "irtgen[plot]"'
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# -- parameters ----------------------------------------------------------------------------------


def _interval_text(interval: sp.Interval) -> str:
    i = interval
    return interval_text(i.start, i.end, i.left_open, i.right_open, infinity="inf")


def parse_params(dist: Distribution, assignments) -> dict[str, float]:
    """Parameter values from ``NAME=VALUE`` strings (or a ``{name: value}`` dict), in the spec's
    order, defaults filled in. PlotError names the parameter and its constraint when a value is
    missing, unknown, not a number or outside its constraint."""
    if isinstance(assignments, dict):
        pairs = [(str(k), v) for k, v in assignments.items()]
    else:
        pairs = []
        for text in assignments or ():
            name, sep, value = str(text).partition("=")
            if not sep or not name.strip():
                raise PlotError(f"--param {text!r}: expected NAME=VALUE, e.g. --param a=2")
            pairs.append((name.strip(), value.strip()))
    by_name = {s.name: s for s in dist.params}
    described = ", ".join(f"{s.name} ({dist.constraints[s].name})" for s in dist.params)
    given: dict[str, float] = {}
    for name, value in pairs:
        if name not in by_name:
            raise PlotError(
                f"{dist.name} has no parameter {name!r}; its parameters are {described}"
            )
        if name in given:
            raise PlotError(f"parameter {name} given twice")
        constraint = dist.constraints[by_name[name]]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PlotError(
                f"parameter {name}={value!r} is not a number ({name} is {constraint.name})"
            ) from None
        if not math.isfinite(number) or not constraint.interval.contains(sp.Float(number)):
            raise PlotError(
                f"parameter {name}={value} violates its constraint {constraint.name}: "
                f"{name} must lie in {_interval_text(constraint.interval)}"
            )
        given[name] = number
    defaults = {s.name: v for s, v in (dist.defaults or {}).items()}
    missing = [s for s in dist.params if s.name not in given and s.name not in defaults]
    if missing:
        need = ", ".join(f"{s.name} ({dist.constraints[s].name})" for s in missing)
        example = " ".join(f"--param {s.name}=VALUE" for s in missing)
        raise PlotError(f"{dist.name} needs a value for {need}: give {example}")
    return {s.name: given.get(s.name, defaults.get(s.name)) for s in dist.params}


# -- evaluation ------------------------------------------------------------------------------------


def _tensors(values: dict[str, float]):
    import torch

    return [torch.tensor(v, dtype=torch.float64) for v in values.values()]


def plot_range(module, values: dict[str, float]) -> tuple[float, float]:
    """(lo, hi): finite support ends as they are at ``values``; an infinite end replaced by the
    quantile TAIL (or 1 - TAIL), found by numeric inversion of the generated CDF."""
    import torch

    family = module.FAMILY
    params = _tensors(values)
    lo, hi = (float(e) for e in family.evaluate("support", *params))
    if not lo < hi:
        raise PlotError(f"the support [{lo:g}, {hi:g}] is empty at these parameter values")
    ends = [lo, hi]
    for i, (end, u) in enumerate(((lo, TAIL), (hi, 1 - TAIL))):
        if math.isfinite(end):
            continue
        q = family.evaluate("icdf", torch.tensor([u], dtype=torch.float64), *params)
        ends[i] = float(q[0])
    lo, hi = ends
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise PlotError(
            f"could not find a plotting range (quantiles {TAIL:g} and {1 - TAIL:g} of the CDF "
            f"gave [{lo:g}, {hi:g}])"
        )
    return lo, hi


def evaluate(module, values: dict[str, float], lo: float, hi: float, n: int = GRID) -> dict:
    """The curves: z (n points strictly inside [lo, hi]), q, F and dz/dθ per parameter, all from
    the generated torch formulas in float64; non-finite values become NaN (gaps in a curve)."""
    import torch

    params = _tensors(values)
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    z = lo + (hi - lo) * t

    def full(x):
        x = torch.broadcast_to(torch.as_tensor(x, dtype=torch.float64), z.shape)
        return torch.where(torch.isfinite(x), x, torch.nan).numpy().copy()

    family = module.FAMILY
    grads = family.evaluate("implicit_grad", z, *params)[1:]  # (1/q, dz/dθ_1, ...)
    return {
        "z": z.numpy().copy(),
        "pdf": full(family.evaluate("pdf", z, *params)),
        "cdf": full(family.evaluate("cdf", z, *params)),
        "grads": {name: full(g) for name, g in zip(values, grads, strict=True)},
    }


def finite_differences(
    module, dist: Distribution, values: dict[str, float], z_points
) -> dict[str, list]:
    """dz/dθ at fixed u = F(z) by central differences of the generated icdf: a check of the
    implicit gradient against the library's own inverse CDF. Points where a step would leave the
    parameter's constraint, or where the inverse is not finite, are left out."""
    import torch

    params = _tensors(values)
    z = torch.as_tensor(z_points, dtype=torch.float64)
    family = module.FAMILY
    u = family.evaluate("cdf", z, *params)
    keep = (u > 1e-9) & (u < 1 - 1e-9)
    z, u = z[keep], u[keep]
    out = {}
    for i, sym in enumerate(dist.params):
        theta = values[sym.name]
        h = 1e-5 * max(abs(theta), 1e-3)
        interval = dist.constraints[sym].interval
        if not all(interval.contains(sp.Float(theta + s * h)) for s in (-1, 1)):
            out[sym.name] = ([], [])
            continue
        zs = []
        for s in (1, -1):
            shifted = list(params)
            shifted[i] = params[i] + s * h
            zs.append(family.evaluate("icdf", u, *shifted))
        fd = (zs[0] - zs[1]) / (2 * h)
        ok = torch.isfinite(fd)
        out[sym.name] = (z[ok].tolist(), fd[ok].tolist())
    return out


def _robust_ylim(ax, ys):
    """Leave autoscaling alone unless a curve shoots off (a density or gradient diverging at a
    support end): then show the central 98% of its values with a margin."""
    import numpy as np

    y = np.concatenate([np.asarray(v, dtype=float).ravel() for v in ys])
    y = y[np.isfinite(y)]
    if y.size < 10:
        return
    lo, hi = np.percentile(y, [1, 99])
    span = max(hi - lo, 1e-300)
    if y.min() < lo - 3 * span or y.max() > hi + 3 * span:
        ax.set_ylim(min(lo - 0.15 * span, 0 if lo >= 0 else lo), hi + 0.3 * span)


# -- the figure ------------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def make_figure(
    module, cls, dist: Distribution, values: dict[str, float], samples: int = SAMPLES, label=None
):
    """The matplotlib Figure (Agg) of one distribution at ``values``."""
    import numpy as np
    import torch

    plt = _matplotlib()
    lo, hi = plot_range(module, values)
    curves = evaluate(module, values, lo, hi)
    z, var = curves["z"], dist.variable.name
    names = list(values)
    n_panels = 2 + len(names)
    ncols = 2 if n_panels <= 4 else 3
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(5.4 * ncols, 3.7 * nrows), squeeze=False, layout="constrained"
    )
    axes = list(axes.ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)

    title = f"{dist.name}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()) + ")"
    if label:
        title += f"   [{label}]"
    fig.suptitle(title, fontsize=13)

    # density, with the family's own samples
    ax = axes[0]
    if samples > 0:
        gen = torch.Generator().manual_seed(0)
        draws = cls(*_tensors(values)).sample((samples,), generator=gen).numpy()
        inside = draws[(draws >= lo) & (draws <= hi)]
        bins = np.linspace(lo, hi, 61)
        weight = 1.0 / (samples * (bins[1] - bins[0]))  # density of all draws, not of the shown
        ax.hist(
            inside,
            bins=bins,
            weights=np.full(inside.shape, weight),
            color="0.8",
            edgecolor="0.65",
            linewidth=0.5,
            label=f"{samples:,} samples (sample())",
        )
    ax.plot(z, curves["pdf"], color="C0", lw=2, label=f"q({var}) = ∂F/∂{var}  (pdf)")
    _robust_ylim(ax, [curves["pdf"]])
    ax.set_title("density")
    ax.set_ylabel(f"q({var})")

    ax = axes[1]
    ax.plot(z, curves["cdf"], color="C1", lw=2, label=f"F({var})  (cdf)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("CDF")
    ax.set_ylabel(f"F({var})")

    checks = finite_differences(
        module, dist, values, np.linspace(z[0], z[-1], CHECKS + 2)[1:-1].tolist()
    )
    for k, name in enumerate(names):
        ax = axes[2 + k]
        ax.axhline(0.0, color="0.75", lw=0.8, zorder=0)
        ax.plot(
            z,
            curves["grads"][name],
            color=f"C{2 + k}",
            lw=2,
            label=f"d{var}/d{name} = −(∂F/∂{name})/q  (implicit_grad)",
        )
        zs, fd = checks[name]
        if zs:
            ax.plot(
                zs,
                fd,
                "o",
                ms=5,
                mfc="none",
                mec="k",
                label=f"central difference of icdf at fixed u, step in {name}",
            )
        _robust_ylim(ax, [curves["grads"][name]])
        ax.set_title(f"implicit gradient d{var}/d{name}")
        ax.set_ylabel(f"d{var}/d{name}")

    for ax in axes[:n_panels]:
        ax.set_xlabel(var)
        ax.set_xlim(lo, hi)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return fig


def _pick(dists: list[Distribution], name: str | None, path) -> Distribution:
    if name is not None:
        return select(dists, name, path)[0]
    if len(dists) > 1:
        known = ", ".join(d.name for d in dists)
        raise PlotError(f"{path} defines {known}: choose one with --name")
    return dists[0]


def plot_spec(
    path: str | os.PathLike,
    params,
    output: str | os.PathLike | None = None,
    name: str | None = None,
    samples: int = SAMPLES,
) -> Path:
    """Plot one distribution of a spec file at the given parameter values (``NAME=VALUE``
    strings or a dict) into ``output`` (default ``<snake_name>.png``); returns the path.
    Errors: PlotError (parameters, matplotlib) and irtgen.BuildError (the spec)."""
    dist = _pick(load_spec_file(path), name, path)
    values = parse_params(dist, params)  # before the build: a typo fails fast
    out = Path(output) if output is not None else Path(f"{dist.snake_name}.png")
    if not out.parent.is_dir():  # as any tool that writes a file: no folder is created
        raise PlotError(f"cannot write {out}: no folder {out.parent}")
    _matplotlib()
    cls = getattr(load(path), dist.name)
    fig = make_figure(cls.family.module, cls, dist, values, samples=samples, label=str(path))
    try:
        fig.savefig(out, dpi=110)
    except (OSError, ValueError) as err:
        raise PlotError(f"cannot write {out}: {err}") from err
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out


__all__ = ["PlotError", "plot_spec", "parse_params", "plot_range", "evaluate", "make_figure"]
