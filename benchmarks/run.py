"""Benchmark irtgen against torch.distributions and hand-written baselines, side by side.

Usage (from the repository root)::

    python benchmarks/run.py                          # CPU, sizes 2^12 2^16 2^20
    python benchmarks/run.py --device cuda            # GPU, sizes 2^12 ... 2^24, do_bench timing
    python benchmarks/run.py --quick                  # smoke test: 2^10, one repetition
    python benchmarks/run.py --sizes 14 18 --dtype float64 --out /tmp/bench
    python benchmarks/run.py --threads 1              # CPU cores shared with other work

``--threads 1`` is the honest setting on a machine whose cores are busy with other processes:
there, with several OpenMP threads, each parallel torch op waits for a descheduled thread
(about 10 ms per op on two shared cores), which swamps what is measured.

Each case is timed for two operations, both ending in a backward pass:

* ``rsample``: draw z (shape: ``size`` scalar elements), then the gradient of Σ w·z with respect
  to the parameters (w fixed random weights);
* ``log_prob``: the log density of fixed values, then the gradient of Σ w·log q with respect to
  the parameters and the values.

Cases: Normal, Gamma, Beta, StudentT (one parameter set per element), Dirichlet (K = 8, size/8
draws), a univariate mixture of K = 8 Normals (size draws, shared parameters) and a mixture of
K = 8 factorized Normals in D = 16 dimensions (size/16 draws). ``size`` always counts the scalar
elements of z.

Implementations (columns):

* ``irtgen``: irtgen.distributions (torch code on the CPU, Triton kernels on CUDA);
* ``torch``: torch.distributions (no rsample for MixtureSameFamily: n/a);
* ``compiled``: ``torch.compile``'d hand-written code (benchmarks/baselines.py): the explicit
  reparameterization for the Normal; a draw with its implicit gradient attached by an
  autograd.Function for the others (``torch._standard_gamma_grad``, ``torch._dirichlet_grad``,
  the mixtures' posterior-weight formulas with back substitution); for ``log_prob`` the log
  density written out, differentiated by autograd through the compiled graph;
* ``jacobian`` (mixtures, rsample): the generic method, per-sample autograd Jacobians of the
  distributional transform (``torch.func.jacrev`` under ``vmap``), dz/dθ = −J_z⁻¹ J_θ, then the
  vector-Jacobian product. It runs on at most ``--jacobian-max`` elements and its time is scaled
  linearly to the row's size (shown with a leading ``~``).

Timing: warm-up calls first (they include compilation; ``torch.compile`` uses dynamic shapes, so
once per function), then the median of ``--reps`` calls (time.perf_counter) on the CPU; on CUDA ``triton.testing.do_bench`` (which clears the L2 cache
before every call) with about ``--reps`` × 10 timed calls. On CUDA the irtgen forward and backward
passes are also timed alone, and their achieved bandwidth (bytes that must move: every input read
once and every output written once, per pass) is reported as a fraction of a measured
device-to-device copy (``clone`` of a 1 GiB tensor).

An implementation that raises is recorded with its message (shown as ``err``); one whose
``torch.compile`` fails is ``n/a`` with the reason; one whose predicted time per call at the next
size exceeds ``--max-call-seconds`` is ``skip``. The run always continues.

``--quick`` compiles with the ``aot_eager`` backend (traced, not code-generated), so that it runs
in seconds; its times for ``compiled`` are not those of inductor.

Output: the raw results (every repetition, device, threads, versions, git commit) as JSON in
``--out`` (default benchmarks/results/<device>-<date>.json, ``-quick`` appended with --quick),
a table of median times, and last a table of ratios, baseline time / irtgen time (> 1: irtgen is
faster).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import baselines as hand  # benchmarks/baselines.py, next to this script
import torch
import torch.distributions as td

import irtgen
import irtgen.distributions as ird
from irtgen.runtime.backend import select_backend

REPO = Path(__file__).resolve().parents[1]
IMPLS = ("irtgen", "torch", "compiled", "jacobian")
BASELINES = IMPLS[1:]
OPS = ("rsample", "log_prob")
SEED = 20240611
K_MIX, D_MIX, K_DIRICHLET = 8, 16, 8


class NotAvailable(Exception):
    """The implementation lacks this operation (status "n/a", shown as n/a with the reason)."""


class NotApplicable(Exception):
    """The column is not part of this comparison (status "none", shown as —)."""


# --- cases -------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """Everything one case needs at one size; tensors are leaves."""

    params: list[torch.Tensor]
    sample_shape: tuple[int, ...]
    weights: torch.Tensor  # shape of z
    value: torch.Tensor  # a fixed sample, for log_prob (requires grad)
    value_weights: torch.Tensor  # shape of log_prob(value)


@dataclass
class Case:
    name: str
    event: int  # scalar elements per draw
    make_params: Callable[[int, Callable], list[torch.Tensor]]  # (draws, randn/rand factory)
    per_draw_params: bool  # parameters have one entry per draw (else shared, sample_shape used)
    irtgen: Callable[..., td.Distribution]
    torch: Callable[..., td.Distribution]
    torch_rsample: bool
    hand_rsample: Callable  # (inputs, compile) -> (closure computing the gradients)
    hand_log_prob: Callable  # written-out log density (value, *params) -> log q
    transform: Callable | None = None  # distributional transform, for the jacobian baseline
    flat_params: Callable | None = None  # params -> the transform's (logits, loc (K,D), scale)
    fix_value: Callable | None = None  # makes a float-rounded sample a valid log_prob value


def _grads(loss, inputs):
    return torch.autograd.grad(loss, inputs)


def _rsample_loss(z, inputs: Inputs):
    return _grads((z * inputs.weights).sum(), inputs.params)


def _normal_rsample(inp: Inputs, compile):
    loc, scale = inp.params
    fn = compile(hand.normal_rsample)

    def run():
        eps = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
        return _rsample_loss(fn(loc, scale, eps), inp)

    return run


def _implicit_rsample(draw_noise, forward_fn, backward_fn, compile_forward=True):
    def build(inp: Inputs, compile):
        fwd = compile(forward_fn) if compile_forward else forward_fn
        bwd = compile(backward_fn)

        def run():
            with torch.no_grad():
                noise = draw_noise(*[p.detach() for p in inp.params], inp.sample_shape)
            return _rsample_loss(hand.Implicit.apply(fwd, bwd, noise, *inp.params), inp)

        return run

    return build


def _student_t_noise(df, loc, scale, shape):
    eps = torch.randn(df.shape, dtype=df.dtype, device=df.device)
    return torch.stack([eps, torch._standard_gamma(0.5 * df)], -1)


def _mixture_1d_torch(logits, loc, scale):
    return td.MixtureSameFamily(td.Categorical(logits=logits), td.Normal(loc, scale))


def _mixture_1d_irtgen(logits, loc, scale):
    return ird.MixtureSameFamily(td.Categorical(logits=logits), ird.Normal(loc, scale))


def _mixture_torch(logits, loc, scale):
    components = td.Independent(td.Normal(loc, scale), 1)
    return td.MixtureSameFamily(td.Categorical(logits=logits), components)


def _mixture_irtgen(logits, loc, scale):
    components = td.Independent(ird.Normal(loc, scale), 1)
    return ird.MixtureSameFamily(td.Categorical(logits=logits), components)


def _mixture_noise(sampler):
    def draw(logits, loc, scale, shape):
        return sampler(logits, loc, scale).sample(shape)

    return draw


def _positive(n, f):
    return f("randn", n).exp()


def _off_zero(x):
    return x.clamp_min(torch.finfo(x.dtype).tiny)


def _inside_unit(x):
    return x.clamp(torch.finfo(x.dtype).tiny, 1 - torch.finfo(x.dtype).eps)


def _on_simplex(x):
    x = _off_zero(x)
    return x / x.sum(-1, keepdim=True)


CASES = [
    Case(
        name="Normal",
        event=1,
        make_params=lambda n, f: [f("randn", n), 0.5 + f("rand", n)],
        per_draw_params=True,
        irtgen=ird.Normal,
        torch=td.Normal,
        torch_rsample=True,
        hand_rsample=_normal_rsample,
        hand_log_prob=hand.normal_log_prob,
    ),
    Case(
        name="Gamma",
        event=1,
        make_params=lambda n, f: [_positive(n, f), 0.5 + f("rand", n)],
        per_draw_params=True,
        irtgen=ird.Gamma,
        torch=td.Gamma,
        torch_rsample=True,
        hand_rsample=_implicit_rsample(
            lambda conc, rate, shape: torch._standard_gamma(conc),
            hand.gamma_forward,
            hand.gamma_backward,
        ),
        hand_log_prob=hand.gamma_log_prob,
        fix_value=_off_zero,
    ),
    Case(
        name="Beta",
        event=1,
        make_params=lambda n, f: [_positive(n, f), _positive(n, f)],
        per_draw_params=True,
        irtgen=ird.Beta,
        torch=td.Beta,
        torch_rsample=True,
        hand_rsample=_implicit_rsample(
            lambda c1, c0, shape: torch._sample_dirichlet(torch.stack([c1, c0], -1)),
            hand.beta_forward,
            hand.beta_backward,
        ),
        hand_log_prob=hand.beta_log_prob,
        fix_value=_inside_unit,
    ),
    Case(
        name="StudentT",
        event=1,
        make_params=lambda n, f: [
            (f("rand", n) * math.log(30.0)).exp(),  # df from 1 to 30, log-uniform
            f("randn", n),
            0.5 + f("rand", n),
        ],
        per_draw_params=True,
        irtgen=ird.StudentT,
        torch=td.StudentT,
        torch_rsample=True,
        hand_rsample=_implicit_rsample(
            _student_t_noise, hand.student_t_forward, hand.student_t_backward
        ),
        hand_log_prob=hand.student_t_log_prob,
    ),
    Case(
        name=f"Dirichlet(K={K_DIRICHLET})",
        event=K_DIRICHLET,
        make_params=lambda n, f: [_positive((n, K_DIRICHLET), f)],
        per_draw_params=True,
        irtgen=ird.Dirichlet,
        torch=td.Dirichlet,
        torch_rsample=True,
        hand_rsample=_implicit_rsample(
            lambda conc, shape: torch._sample_dirichlet(conc),
            hand.identity,
            hand.dirichlet_backward,
            compile_forward=False,
        ),
        hand_log_prob=hand.dirichlet_log_prob,
        fix_value=_on_simplex,
    ),
    Case(
        name=f"Mixture(K={K_MIX}) of Normal",
        event=1,
        make_params=lambda n, f: [f("randn", K_MIX), 2 * f("randn", K_MIX), 0.5 + f("rand", K_MIX)],
        per_draw_params=False,
        irtgen=_mixture_1d_irtgen,
        torch=_mixture_1d_torch,
        torch_rsample=False,
        hand_rsample=_implicit_rsample(
            _mixture_noise(_mixture_1d_torch),
            hand.identity,
            hand.mixture_backward_1d,
            compile_forward=False,
        ),
        hand_log_prob=hand.mixture_log_prob_1d,
        transform=hand.mixture_transform,
        flat_params=lambda logits, loc, scale: [logits, loc.unsqueeze(-1), scale.unsqueeze(-1)],
    ),
    Case(
        name=f"Mixture(K={K_MIX}) of Independent Normal(D={D_MIX})",
        event=D_MIX,
        make_params=lambda n, f: [
            f("randn", K_MIX),
            f("randn", (K_MIX, D_MIX)),
            0.5 + f("rand", (K_MIX, D_MIX)),
        ],
        per_draw_params=False,
        irtgen=_mixture_irtgen,
        torch=_mixture_torch,
        torch_rsample=False,
        hand_rsample=_implicit_rsample(
            _mixture_noise(_mixture_torch),
            hand.identity,
            hand.mixture_backward,
            compile_forward=False,
        ),
        hand_log_prob=hand.mixture_log_prob,
        transform=hand.mixture_transform,
        flat_params=lambda logits, loc, scale: [logits, loc, scale],
    ),
]


def make_inputs(case: Case, size: int, dtype, device) -> Inputs:
    """Parameters, weights and a fixed sample for ``size`` elements, from a fixed seed."""
    draws = max(1, size // case.event)
    gen = torch.Generator(device="cpu").manual_seed(SEED)

    def factory(kind, shape):
        shape = (shape,) if isinstance(shape, int) else shape
        fn = torch.randn if kind == "randn" else torch.rand
        return fn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    params = [p.requires_grad_() for p in case.make_params(draws, factory)]
    sample_shape = () if case.per_draw_params else (draws,)
    with torch.no_grad():
        torch.manual_seed(SEED)
        value = case.torch(*params).sample(sample_shape)
        if case.fix_value is not None:
            value = case.fix_value(value)
    weights = factory("randn", tuple(value.shape))
    value_weights = factory("randn", tuple(value.shape[: value.dim() - (case.event > 1)]))
    return Inputs(params, sample_shape, weights, value.requires_grad_(), value_weights)


# --- the implementations: each returns a closure that runs the operation once ------------------


class Compiler:
    """torch.compile with one cache per function (dynamic shapes: one compilation per function)."""

    def __init__(self, backend: str):
        self.backend = backend
        self._cache: dict[Callable, Callable] = {}

    def __call__(self, fn: Callable) -> Callable:
        if fn not in self._cache:
            self._cache[fn] = torch.compile(fn, dynamic=True, fullgraph=True, backend=self.backend)
        return self._cache[fn]


def build(case: Case, op: str, impl: str, inp: Inputs, compiler: Compiler) -> Callable:
    """A closure running ``op`` with ``impl`` once (forward and backward)."""
    params = inp.params
    if impl in ("irtgen", "torch"):
        cls = case.irtgen if impl == "irtgen" else case.torch
        if op == "rsample":
            if impl == "torch" and not case.torch_rsample:
                raise NotAvailable(f"torch.distributions {case.name} has no rsample")
            return lambda: _rsample_loss(cls(*params).rsample(inp.sample_shape), inp)
        return lambda: _grads(
            (cls(*params).log_prob(inp.value) * inp.value_weights).sum(), [*params, inp.value]
        )
    if impl == "compiled":
        if op == "rsample":
            return case.hand_rsample(inp, compiler)
        log_prob = compiler(case.hand_log_prob)
        return lambda: _grads(
            (log_prob(inp.value, *params) * inp.value_weights).sum(), [*params, inp.value]
        )
    if impl == "jacobian":
        if case.transform is None:
            raise NotApplicable("the generic Jacobian baseline is run for the mixtures only")
        if op == "log_prob":
            raise NotApplicable("log_prob has no implicit gradient")
        detached = [p.detach() for p in params]
        flat = case.flat_params(*detached)

        def run():
            z = case.torch(*detached).sample(inp.sample_shape).reshape(-1, case.event)
            g = inp.weights.reshape(-1, case.event)
            return hand.jacobian_implicit_grad(case.transform, z, g, flat)

        return run
    raise ValueError(impl)


def is_compile_error(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, torch._dynamo.exc.TorchDynamoException):
            return True
        exc = exc.__cause__
    return False


# --- timing ------------------------------------------------------------------------------------


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_cpu(fn: Callable, device, reps: int, warmup: int) -> list[float]:
    """Warm-up calls, then ``reps`` timed calls; calls over 2 s get one warm-up and 3 reps."""
    last = 0.0
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        _sync(device)
        last = time.perf_counter() - start
        if last > 2.0:
            break
    if reps > 3 and last > 2.0:
        reps = 3
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def time_cuda(fn: Callable, device, reps: int, warmup: int) -> list[float]:
    """triton.testing.do_bench (L2 cleared before each call), about 10 × reps timed calls.

    Calls slower than 0.5 s, and a Triton without ``return_mode="all"``, use time_cpu's loop.
    """
    try:
        from triton.testing import do_bench
    except ImportError:
        return time_cpu(fn, device, reps, warmup)
    for _ in range(warmup):  # compilation, autotuning
        fn()
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    estimate_ms = max((time.perf_counter() - start) * 1e3, 1e-3)
    if estimate_ms > 500:
        return time_cpu(fn, device, min(reps, 3), 0)
    try:
        times_ms = do_bench(
            fn, warmup=estimate_ms * reps, rep=estimate_ms * 10 * reps, return_mode="all"
        )
    except (AssertionError, TypeError):
        return time_cpu(fn, device, reps, 0)
    return [t * 1e-3 for t in times_ms]


def measure(fn: Callable, device, reps: int, warmup: int) -> list[float]:
    if device.type == "cuda":
        return time_cuda(fn, device, reps, warmup)
    return time_cpu(fn, device, reps, warmup)


def copy_bandwidth(device, reps: int) -> dict:
    """Device-to-device copy: clone of a 1 GiB tensor, bytes read + written per second."""
    x = torch.empty(1 << 28, dtype=torch.float32, device=device)
    times = measure(lambda: x.clone(), device, reps, warmup=2)
    median = statistics.median(times)
    moved = 2 * x.numel() * x.element_size()
    return {"bytes": moved, "times_s": times, "median_s": median, "bytes_per_s": moved / median}


def _nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def irtgen_passes(case: Case, op: str, inp: Inputs) -> list[tuple[str, Callable, int]]:
    """(pass, closure, bytes that must move) for irtgen's forward and backward passes alone."""
    params = inp.params
    if op == "rsample":
        z = case.irtgen(*params).rsample(inp.sample_shape)
        fwd = (
            "forward",
            lambda: case.irtgen(*params).rsample(inp.sample_shape),
            _nbytes(*params, z),
        )
        bwd = (
            "backward",
            lambda: torch.autograd.grad(z, params, inp.weights, retain_graph=True),
            _nbytes(z, inp.weights, *params, *params),
        )
        return [fwd, bwd]
    inputs = [*params, inp.value]
    lp = case.irtgen(*params).log_prob(inp.value)
    fwd = ("forward", lambda: case.irtgen(*params).log_prob(inp.value), _nbytes(*inputs, lp))
    bwd = (
        "backward",
        lambda: torch.autograd.grad(lp, inputs, inp.value_weights, retain_graph=True),
        _nbytes(inp.value_weights, *inputs, *inputs),
    )
    return [fwd, bwd]


# --- environment -------------------------------------------------------------------------------


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def versions() -> dict:
    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": version("triton"),
        "irtgen": version("irtgen") or getattr(irtgen, "__version__", None),
    }


def irtgen_backend(device) -> str:
    try:
        return select_backend(device)
    except (RuntimeError, ValueError) as exc:  # a bad IRTGEN_BACKEND: irtgen's rows will say
        return f"error: {exc}"


# --- formatting --------------------------------------------------------------------------------


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    for limit, digits in ((100, 0), (10, 1), (1, 2), (0.01, 3)):
        if ms >= limit:
            return f"{ms:.{digits}f}"
    return f"{ms:.2g}"


def fmt_ratio(r: float) -> str:
    if r >= 100:
        return f"{r:.0f}"
    return f"{r:.3g}"


def size_label(size: int) -> str:
    log2 = math.log2(size)
    return f"2^{int(log2)}" if log2.is_integer() else str(size)


def print_table(title: str, header: list[str], rows: list[list[str]], text_columns=3) -> None:
    """A plain-text table: the first ``text_columns`` left-aligned, the numbers right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        parts = [
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    print(title)
    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def cell_time(rec: dict | None) -> str:
    """A time cell: ms, ~ms when scaled from a smaller run, or the status."""
    if rec is None or rec["status"] == "none":
        return "—"
    if rec["status"] != "ok":
        return rec["status"]
    return ("~" if rec["elements_run"] != rec["size"] else "") + fmt_ms(rec["time_s"])


def cell_ratio(ratio: dict | None, rec: dict | None, base: dict | None) -> str:
    if ratio is not None:
        return ("~" if ratio["scaled"] else "") + fmt_ratio(ratio["ratio"])
    if rec is not None and rec["status"] == "ok" and base is not None:
        return f"irtgen {cell_time(base)}"  # the baseline ran, irtgen did not
    return cell_time(rec)


# --- the run -----------------------------------------------------------------------------------


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class Runner:
    """Runs every (case, size, op, implementation) and keeps the records."""

    def __init__(self, args, device, dtype, reps, warmup, jac_max, compiler):
        self.args, self.device, self.dtype = args, device, dtype
        self.reps, self.warmup, self.jac_max, self.compiler = reps, warmup, jac_max, compiler
        self.results: list[dict] = []
        self.bandwidth: list[dict] = []
        self.copy = copy_bandwidth(device, reps) if device.type == "cuda" else None
        self._carried: dict[tuple, dict] = {}  # n/a and — carried to the larger sizes
        self._last: dict[tuple, tuple[int, float]] = {}  # (size run, median) of the last size

    def run(self, cases: list[Case], sizes: list[int]) -> None:
        total = len(cases) * len(sizes) * len(OPS) * len(IMPLS)
        for case in cases:
            for size in sizes:
                inputs: dict[int, Inputs] = {}
                for op in OPS:
                    for impl in IMPLS:
                        rec = self.run_one(case, size, op, impl, inputs)
                        self.results.append(rec)
                        self._progress(rec, total)
                        if (
                            self.device.type == "cuda"
                            and impl == "irtgen"
                            and rec["status"] == "ok"
                        ):
                            self.bandwidth += measure_bandwidth(
                                case, op, size, inputs[size], self.copy, self.reps
                            )
                inputs.clear()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def run_one(self, case: Case, size: int, op: str, impl: str, inputs: dict) -> dict:
        key = (case.name, op, impl)
        run_size = min(size, self.jac_max) if impl == "jacobian" else size
        run_size = max(run_size, case.event)
        rec = {
            "case": case.name,
            "op": op,
            "impl": impl,
            "size": size,
            "elements_run": run_size,
            "status": "ok",
            "times_s": [],
            "message": None,
        }
        if key in self._carried:
            rec.update(status=self._carried[key]["status"], message=self._carried[key]["message"])
            return rec
        if key in self._last:
            prev_size, prev_median = self._last[key]
            predicted = prev_median * run_size / prev_size
            if predicted > self.args.max_call_seconds:
                rec["status"] = "skip"
                rec["message"] = (
                    f"predicted {predicted:.0f} s per call from {prev_median:.2f} s at "
                    f"{size_label(prev_size)} (> --max-call-seconds {self.args.max_call_seconds:g})"
                )
                return rec
        try:
            if run_size not in inputs:
                inputs[run_size] = make_inputs(case, run_size, self.dtype, self.device)
            torch.manual_seed(SEED)
            fn = build(case, op, impl, inputs[run_size], self.compiler)
            rec["times_s"] = measure(fn, self.device, self.reps, self.warmup)
        except NotApplicable as exc:
            rec.update(status="none", message=str(exc))
            self._carried[key] = rec
            return rec
        except NotAvailable as exc:
            rec.update(status="n/a", message=str(exc))
            self._carried[key] = rec
            return rec
        except Exception as exc:  # noqa: BLE001 — recorded, and the run goes on
            if impl == "compiled" and is_compile_error(exc):
                rec.update(status="n/a", message=f"torch.compile failed: {_message(exc)}")
                self._carried[key] = rec
            else:
                rec.update(status="err", message=_message(exc))
                rec["traceback"] = traceback.format_exc(limit=-4)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return rec
        median = statistics.median(rec["times_s"])
        rec["median_s"] = median
        rec["time_s"] = median * size / run_size  # scaled to the row's size
        self._last[key] = (run_size, median)
        return rec

    def _progress(self, rec: dict, total: int) -> None:
        shown = cell_time(rec) + (" ms" if rec["status"] == "ok" else "")
        if rec["status"] == "ok" and rec["elements_run"] != rec["size"]:
            shown += f" (scaled from {size_label(rec['elements_run'])})"
        if rec["message"]:
            shown += f" ({rec['message']})"
        print(
            f"[{len(self.results):3d}/{total}] {rec['case']} {rec['op']} "
            f"{size_label(rec['size'])} {rec['impl']}: {shown}",
            file=sys.stderr,
            flush=True,
        )


def measure_bandwidth(case, op, size, inp, copy, reps) -> list[dict]:
    """irtgen's forward and backward passes timed alone, against the copy bandwidth."""
    head = {"case": case.name, "op": op, "size": size}
    try:
        passes = irtgen_passes(case, op, inp)
    except Exception as exc:  # noqa: BLE001
        return [{**head, "pass": "both", "status": "err", "message": _message(exc)}]
    out = []
    for name, fn, moved in passes:
        rec = {**head, "pass": name, "bytes": moved}
        try:
            times = measure(fn, inp.weights.device, reps, warmup=2)
        except Exception as exc:  # noqa: BLE001
            rec.update(status="err", message=_message(exc))
        else:
            median = statistics.median(times)
            rec.update(
                status="ok",
                times_s=times,
                median_s=median,
                bytes_per_s=moved / median,
                fraction_of_copy=moved / median / copy["bytes_per_s"],
            )
        out.append(rec)
    return out


def compute_ratios(results: list[dict]) -> list[dict]:
    """Baseline time / irtgen time for every row where both ran."""
    by_key = {(r["case"], r["op"], r["size"], r["impl"]): r for r in results}
    ratios = []
    for (case, op, size, impl), rec in by_key.items():
        base = by_key.get((case, op, size, "irtgen"))
        if impl == "irtgen" or rec["status"] != "ok" or base is None or base["status"] != "ok":
            continue
        ratios.append(
            {
                "case": case,
                "op": op,
                "size": size,
                "baseline": impl,
                "ratio": rec["time_s"] / base["time_s"],
                "scaled": rec["elements_run"] != rec["size"],
            }
        )
    return ratios


def print_report(report: dict, out_path: Path, cases: list[Case], sizes: list[int]) -> None:
    dev, ver, st = report["device"], report["versions"], report["settings"]
    print(
        f"irtgen benchmark: {dev['type']} ({dev['name']}, {dev['torch_threads']} threads), "
        f"{st['dtype']}, torch {ver['torch']}, triton {ver['triton']}, irtgen {ver['irtgen']}, "
        f"commit {report['git_commit'][:12]}"
    )
    print()
    by_key = {(r["case"], r["op"], r["size"], r["impl"]): r for r in report["results"]}
    rows = [
        [case.name, op, size_label(size)]
        + [cell_time(by_key.get((case.name, op, size, impl))) for impl in IMPLS]
        for case in cases
        for op in OPS
        for size in sizes
    ]
    print_table(
        "Median time per call, ms (rsample: draw + gradient of Σ w·z; log_prob: log density + "
        "gradient to parameters and value)",
        ["case", "op", "size", *IMPLS],
        rows,
    )
    print(
        f"size: scalar elements of z.  ~: the jacobian baseline ran at "
        f"{size_label(st['jacobian_max_elements'])} elements, its time scaled linearly to the size."
    )
    notes: dict[tuple, list[str]] = {}
    for r in report["results"]:
        if r["status"] in ("n/a", "err", "skip"):
            key = (r["status"], r["case"], r["op"], r["impl"], r["message"])
            notes.setdefault(key, []).append(size_label(r["size"]))
    if notes:
        print()
        print("Not measured:")
        for (status, case, op, impl, message), labels in notes.items():
            print(f"  {status:4s} {case} {op} {impl} [{', '.join(labels)}]: {message}")
    if report["bandwidth"]:
        print()
        copy = report["copy_bandwidth"]["bytes_per_s"]
        rows = [
            [
                b["case"],
                b["op"],
                size_label(b["size"]),
                b["pass"],
                fmt_ms(b["median_s"]) if b["status"] == "ok" else "err",
                f"{b['bytes_per_s'] / 1e9:.1f}" if b["status"] == "ok" else "",
                f"{b['fraction_of_copy']:.2f}" if b["status"] == "ok" else "",
            ]
            for b in report["bandwidth"]
        ]
        print_table(
            "irtgen passes alone: achieved bandwidth (inputs read once + outputs written once, "
            f"per pass) against a device-to-device copy at {copy / 1e9:.0f} GB/s",
            ["case", "op", "size", "pass", "ms", "GB/s", "of copy"],
            rows,
            text_columns=4,
        )
    print()
    print(f"results: {out_path}  ({report['wall_seconds']:.0f} s)")
    print()
    ratio = {(r["case"], r["op"], r["size"], r["baseline"]): r for r in report["ratios"]}
    rows = [
        [case.name, op, size_label(size)]
        + [
            cell_ratio(
                ratio.get((case.name, op, size, b)),
                by_key.get((case.name, op, size, b)),
                by_key.get((case.name, op, size, "irtgen")),
            )
            for b in BASELINES
        ]
        for case in cases
        for op in OPS
        for size in sizes
    ]
    print_table(
        "Ratios: baseline time / irtgen time (> 1: irtgen is faster)",
        ["case", "op", "size", *BASELINES],
        rows,
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        help="log2 of the number of elements of z (default: 12 16 20 on cpu, 12 16 20 24 on cuda)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: size 2^10, one repetition")
    p.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--reps", type=int, help="timed repetitions (default 5; 1 with --quick)")
    p.add_argument("--cases", nargs="+", help="substrings selecting cases (default all)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's default)")
    p.add_argument(
        "--jacobian-max",
        type=int,
        help="log2 of the largest size the jacobian baseline runs at (default 16 cpu, 20 cuda)",
    )
    p.add_argument(
        "--max-call-seconds",
        type=float,
        default=20.0,
        help="skip an implementation at a size where its predicted time per call exceeds this",
    )
    p.add_argument(
        "--compile-backend",
        help="torch.compile backend (default inductor; aot_eager with --quick)",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device available", file=sys.stderr)
        return 2
    if device.type == "cuda" and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("warning: TRITON_INTERPRET is set: Triton runs in its interpreter", file=sys.stderr)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes_log2 = args.sizes or (
        [10] if args.quick else [12, 16, 20] + [24] * (args.device == "cuda")
    )
    sizes = [1 << s for s in sizes_log2]
    reps = args.reps or (1 if args.quick else 5)
    warmup = 1 if args.quick else 2
    jac_max = 1 << (args.jacobian_max or (20 if device.type == "cuda" else 16))
    backend = args.compile_backend or ("aot_eager" if args.quick else "inductor")
    cases = [c for c in CASES if not args.cases or any(s in c.name for s in args.cases)]
    date = datetime.date.today().isoformat()
    out_dir = args.out or REPO / "benchmarks" / "results"
    out_path = out_dir / f"{args.device}-{date}{'-quick' if args.quick else ''}.json"

    torch.distributions.Distribution.set_default_validate_args(False)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    started = time.perf_counter()
    report = {
        "device": {
            "type": device.type,
            "name": device_name(device),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "irtgen_backend": irtgen_backend(device),
        },
        "versions": versions(),
        "git_commit": git_commit(),
        "environment": {k: os.environ.get(k) for k in ("IRTGEN_BACKEND", "TRITON_INTERPRET")},
        "settings": {
            "dtype": args.dtype,
            "sizes": sizes,
            "reps": reps,
            "warmup": warmup,
            "quick": args.quick,
            "compile_backend": backend,
            "jacobian_max_elements": jac_max,
            "max_call_seconds": args.max_call_seconds,
            "seed": SEED,
            "timer": "triton.testing.do_bench" if device.type == "cuda" else "time.perf_counter",
            "validate_args": False,
        },
        "command": ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)],
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    runner = Runner(
        args, device, getattr(torch, args.dtype), reps, warmup, jac_max, Compiler(backend)
    )
    runner.run(cases, sizes)
    report.update(
        copy_bandwidth=runner.copy,
        results=runner.results,
        bandwidth=runner.bandwidth,
        ratios=compute_ratios(runner.results),
        wall_seconds=time.perf_counter() - started,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    print_report(report, out_path, cases, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
