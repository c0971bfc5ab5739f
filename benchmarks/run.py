"""Benchmark irtgen against torch.distributions and hand-written baselines, side by side, and
check the issue's speed targets next to the accuracy of the implicit gradients.

Usage (from the repository root)::

    python benchmarks/run.py --threads 1 2        # CPU: 2^20 elements, both layouts, 1 and 2 threads
    python benchmarks/run.py --device cuda        # GPU: 2^20 and 2^24 elements, do_bench timing
    python benchmarks/run.py --quick              # smoke test: 2^10 elements, one repetition
    python benchmarks/run.py --cases Gamma Beta --layouts broadcast --no-accuracy
    python benchmarks/run.py --sizes 14 18 --dtype float64 --out /tmp/bench

``--threads 1 2`` runs everything at 1 thread, then everything again at 2 threads
(``torch.set_num_threads``; irtgen's numba kernels follow torch's thread count), in one
invocation and one JSON file; ``torch.compile``'s caches are reset between thread counts, since
inductor's CPU kernels fix their thread count when they are compiled. Without ``--threads``,
torch's default count is used. ``--threads 1`` is the honest setting on a machine whose cores
are busy with other processes: there, with several threads, each parallel op waits for a
descheduled thread (about 10 ms per op on two shared cores), which swamps what is measured.

Each case is timed for two operations, both ending in a backward pass:

* ``rsample``: draw z, then the gradient of Σ w·z with respect to the parameters (w fixed
  random weights);
* ``log_prob``: the log density of fixed values, then the gradient of Σ w·log q with respect to
  the parameters and the values.

``size`` (default 2^20 on the CPU) counts the scalar elements of z, in one of three layouts
(``--layouts``, default ``broadcast batch``):

* ``broadcast``: ONE parameter set, scalar parameters, ``sample_shape = (size,)`` (Dirichlet: a
  concentration of shape (8,), size/8 draws). The parameters are fixed, typical values
  (``Case.point``, listed in the JSON as ``params``), so that a family whose cost depends on its
  parameters (Gamma, Beta, StudentT) is timed at one representative point;
* ``batch``: a batch of ``--batch`` (default 1000; 32 with --quick) random parameter sets, each
  drawn ``ceil(size / batch)`` times: ``sample_shape = (ceil(size / batch),)``, batch shape
  (1000,); the row's element count is rounded up accordingly (2^20 → 1000 × 1049);
* ``elementwise`` (not run unless asked for): one random parameter set per element,
  ``sample_shape = ()``.

The mixtures have one parameter set by construction and run in the ``broadcast`` layout only.

Cases: Normal, Exponential, Laplace, Logistic, Gumbel, Cauchy, Weibull, Gamma, Chi2,
InverseGamma, Beta, StudentT (irtgen.distributions' built-ins with torch's parameter names),
Dirichlet (K = 8), a univariate mixture of K = 8 Normals and a mixture of K = 8 factorized
Normals in D = 16 dimensions (size/16 draws).

Implementations (columns):

* ``irtgen``: irtgen.distributions (numba kernels on the CPU, Triton kernels on CUDA);
* ``torch``: torch.distributions, same parameters. torch has no Logistic: its column is
  ``TransformedDistribution(Uniform(0, 1), [SigmoidTransform().inv, AffineTransform(loc,
  scale)])``. No rsample for MixtureSameFamily (n/a);
* ``compiled`` (Normal, Gamma, Beta, StudentT, Dirichlet and the mixtures): ``torch.compile``'d
  hand-written code (benchmarks/baselines.py): the explicit reparameterization for the Normal; a
  draw with its implicit gradient attached by an autograd.Function for the others
  (``torch._standard_gamma_grad``, ``torch._dirichlet_grad``, the mixtures' posterior-weight
  formulas with back substitution); for ``log_prob`` the log density written out,
  differentiated by autograd through the compiled graph;
* ``jacobian`` (mixtures, rsample): the generic method, per-sample autograd Jacobians of the
  distributional transform (``torch.func.jacrev`` under ``vmap``), dz/dθ = −J_z⁻¹ J_θ, then the
  vector-Jacobian product. It runs on at most ``--jacobian-max`` elements and its time is scaled
  linearly to the row's size (shown with a leading ``~``).

Ratios are irtgen time / baseline time, measured in the same process: < 1 means irtgen is
faster, and the issue's targets read directly ("≤ 1.5": irtgen at most 1.5 times torch's time).
Targets (must / goal), against torch.distributions:

* rsample + backward: Normal, Exponential, Laplace, Logistic, Gumbel, Cauchy, Weibull ≤ 1.5 /
  ≤ 0.8; Gamma, Chi2, InverseGamma ≤ 2.0 / ≤ 1.0; Beta, StudentT, Dirichlet ≤ 3.0 / ≤ 1.0;
* log_prob + backward, every case: ≤ 1.5 / ≤ 0.8;
* the mixtures' rsample + backward, against the ``jacobian`` baseline instead: at least 20
  times / 50 times faster (ratio ≤ 0.05 / ≤ 0.02).

Accuracy (rsample rows; skipped with ``--no-accuracy``): the maximum relative error of dz/dθ in
float32 over all parameters and points of the mpmath test grids (tests/families/cases.py:
quantiles 1e-6 ... 1 - 1e-6, small and large shapes), for irtgen
(tests/families/test_implicit_gradients.py ``relative_errors``, run on CPU tensors, i.e. the
numba kernels, whatever ``--device``) and for torch's own rsample gradient at the same points
(tools/accuracy_report.py ``torch_errors``: Gamma, Chi2, InverseGamma, Beta). Computed once per
case and run (a few seconds in all), kept in the JSON as ``accuracy``. torch's other gradients
are shown as ``explicit`` (an explicit reparameterization: the derivative of its own sampling
formula, not a function of a given z) or ``path`` (StudentT: through a chi-square draw). Dirichlet
and the mixtures have no mpmath grid (—).

Timing: warm-up calls first (they include compilation; ``torch.compile`` uses dynamic shapes, so
about once per function and layout), then the median of ``--reps`` calls (time.perf_counter) on
the CPU; on CUDA ``triton.testing.do_bench`` (which clears the L2 cache before every call) with
about ``--reps`` × 10 timed calls. On CUDA the irtgen forward and backward passes are also timed
alone, and their achieved bandwidth (bytes that must move: every input read once and every
output written once, per pass) is reported as a fraction of a measured device-to-device copy
(``clone`` of a 1 GiB tensor).

An implementation that raises is recorded with its message (shown as ``err``); one whose
``torch.compile`` fails is ``n/a`` with the reason; one whose predicted time per call at the next
size exceeds ``--max-call-seconds`` is ``skip``. The run always continues.

``--quick`` compiles with the ``aot_eager`` backend (traced, not code-generated), so that it runs
in seconds; its times for ``compiled`` are not those of inductor, and its 2^10-element times are
dominated by per-call overheads: it checks that everything runs, not the targets.

Output: the raw results (every repetition, layout, threads, device, versions of torch, triton
and numba, git commit, accuracy) as JSON in ``--out`` (default benchmarks/results/<device>-<date>
.json, ``-quick`` appended with --quick), a table of median times, a table of ratios irtgen /
baseline, and last the targets table: one row per (case, op, layout, threads) with irtgen's and
torch's times, their ratio, the target, whether it is met, and the accuracy of both.
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
LAYOUTS = ("broadcast", "batch", "elementwise")
SEED = 20240611
K_MIX, D_MIX, K_DIRICHLET = 8, 16, 8

# the targets, irtgen time / baseline time: (baseline, must, goal)
EXPLICIT = (1.5, 0.8)
GAMMA_LIKE = (2.0, 1.0)
HARD = (3.0, 1.0)
LOG_PROB_TARGET = ("torch", 1.5, 0.8)
MIXTURE_TARGET = ("jacobian", 1 / 20, 1 / 50)


class NotAvailable(Exception):
    """The implementation lacks this operation (status "n/a", shown as n/a with the reason)."""


class NotApplicable(Exception):
    """The column is not part of this comparison (status "none", shown as —)."""


# --- cases -------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """Everything one case needs at one size and layout; tensors are leaves."""

    params: list[torch.Tensor]
    sample_shape: tuple[int, ...]
    weights: torch.Tensor  # shape of z
    value: torch.Tensor  # a fixed sample, for log_prob (requires grad)
    value_weights: torch.Tensor  # shape of log_prob(value)


@dataclass
class Case:
    name: str
    event: int  # scalar elements per draw
    # (batch shape, randn/rand factory) -> parameters; mixtures ignore the batch shape
    make_params: Callable[[tuple, Callable], list[torch.Tensor]]
    irtgen: Callable[..., td.Distribution]
    torch: Callable[..., td.Distribution]
    rsample_target: tuple | None  # (baseline, must, goal)
    torch_rsample: bool = True
    point: tuple | None = None  # the broadcast layout's parameter values (else make_params)
    layouts: tuple[str, ...] = LAYOUTS
    hand_rsample: Callable | None = None  # (inputs, compile) -> (closure computing the gradients)
    hand_log_prob: Callable | None = None  # written-out log density (value, *params) -> log q
    transform: Callable | None = None  # distributional transform, for the jacobian baseline
    flat_params: Callable | None = None  # params -> the transform's (logits, loc (K,D), scale)
    fix_value: Callable | None = None  # makes a float-rounded sample a valid log_prob value
    accuracy: str | None = None  # the case of tests/families/cases.py (mpmath references)
    torch_gradient: str | None = None  # what torch's gradient is where it is not measured


def _grads(loss, inputs):
    return torch.autograd.grad(loss, inputs)


def _rsample_loss(z, inputs: Inputs):
    return _grads((z * inputs.weights).sum(), inputs.params)


def _expanded(params: list[torch.Tensor], sample_shape) -> list[torch.Tensor]:
    """The parameters expanded to the shape of z (as torch.distributions' broadcast_all does):
    autograd sums the per-element gradients back to each parameter's shape."""
    shape = tuple(sample_shape) + torch.broadcast_shapes(*(p.shape for p in params))
    return [p.expand(shape) for p in params]


def _normal_rsample(inp: Inputs, compile):
    fn = compile(hand.normal_rsample)

    def run():
        loc, scale = _expanded(inp.params, inp.sample_shape)
        eps = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
        return _rsample_loss(fn(loc, scale, eps), inp)

    return run


def _implicit_rsample(draw_noise, forward_fn, backward_fn, compile_forward=True, expand=True):
    """A draw (no autograd) with a hand-written implicit gradient attached. With ``expand``, the
    parameters are expanded to z's shape first and ``draw_noise(*params)`` draws one variate per
    element; otherwise ``draw_noise(*params, sample_shape)`` (the mixtures, whose backward sums
    over the samples itself)."""

    def build(inp: Inputs, compile):
        fwd = compile(forward_fn) if compile_forward else forward_fn
        bwd = compile(backward_fn)

        def run():
            if expand:
                params = _expanded(inp.params, inp.sample_shape)
                with torch.no_grad():
                    noise = draw_noise(*[p.detach() for p in params])
            else:
                params = inp.params
                with torch.no_grad():
                    noise = draw_noise(*[p.detach() for p in params], inp.sample_shape)
            return _rsample_loss(hand.Implicit.apply(fwd, bwd, noise, *params), inp)

        return run

    return build


def _student_t_noise(df, loc, scale):
    eps = torch.randn(df.shape, dtype=df.dtype, device=df.device)
    return torch.stack([eps, torch._standard_gamma(0.5 * df)], -1)


def _beta_noise(c1, c0):
    return torch._sample_dirichlet(torch.stack([c1, c0], -1))


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


def torch_logistic(loc, scale):
    """torch has no Logistic: the logistic quantile of a Uniform(0, 1), then loc + scale x."""
    shape = torch.broadcast_shapes(loc.shape, scale.shape)
    zero = torch.zeros((), dtype=loc.dtype, device=loc.device).expand(shape)
    one = torch.ones((), dtype=loc.dtype, device=loc.device).expand(shape)
    return td.TransformedDistribution(
        td.Uniform(zero, one), [td.SigmoidTransform().inv, td.AffineTransform(loc, scale)]
    )


def _positive(shape, f):
    return f("randn", shape).exp()


def _loc_scale(shape, f):
    return [f("randn", shape), 0.5 + f("rand", shape)]


def _off_zero(x):
    return x.clamp_min(torch.finfo(x.dtype).tiny)


def _positive_finite(x):
    return x.clamp(torch.finfo(x.dtype).tiny, torch.finfo(x.dtype).max)


def _finite(x):
    return x.clamp(-1e4, 1e4)  # torch's logistic maps a uniform 0 to -inf


def _inside_unit(x):
    return x.clamp(torch.finfo(x.dtype).tiny, 1 - torch.finfo(x.dtype).eps)


def _on_simplex(x):
    x = _off_zero(x)
    return x / x.sum(-1, keepdim=True)


def _location_scale(name, irtgen_cls, torch_cls, **kw) -> Case:
    return Case(
        name=name,
        event=1,
        make_params=_loc_scale,
        irtgen=irtgen_cls,
        torch=torch_cls,
        rsample_target=("torch", *EXPLICIT),
        point=(0.3, 1.2),
        accuracy=name,
        torch_gradient="explicit",
        **kw,
    )


MIXTURE_LAYOUTS = ("broadcast",)

CASES = [
    _location_scale(
        "Normal",
        ird.Normal,
        td.Normal,
        hand_rsample=_normal_rsample,
        hand_log_prob=hand.normal_log_prob,
    ),
    Case(
        name="Exponential",
        event=1,
        make_params=lambda shape, f: [_positive(shape, f)],
        irtgen=ird.Exponential,
        torch=td.Exponential,
        rsample_target=("torch", *EXPLICIT),
        point=(1.5,),
        fix_value=_off_zero,
        accuracy="Exponential",
        torch_gradient="explicit",
    ),
    _location_scale("Laplace", ird.Laplace, td.Laplace),
    _location_scale("Logistic", ird.Logistic, torch_logistic, fix_value=_finite),
    _location_scale("Gumbel", ird.Gumbel, td.Gumbel),
    _location_scale("Cauchy", ird.Cauchy, td.Cauchy),
    Case(
        name="Weibull",
        event=1,
        make_params=lambda shape, f: [0.5 + f("rand", shape), _positive(shape, f)],
        irtgen=ird.Weibull,
        torch=td.Weibull,
        rsample_target=("torch", *EXPLICIT),
        point=(1.2, 1.7),
        fix_value=_off_zero,
        accuracy="Weibull",
        torch_gradient="explicit",
    ),
    Case(
        name="Gamma",
        event=1,
        make_params=lambda shape, f: [_positive(shape, f), 0.5 + f("rand", shape)],
        irtgen=ird.Gamma,
        torch=td.Gamma,
        rsample_target=("torch", *GAMMA_LIKE),
        point=(2.5, 1.5),
        hand_rsample=_implicit_rsample(
            lambda conc, rate: torch._standard_gamma(conc),
            hand.gamma_forward,
            hand.gamma_backward,
        ),
        hand_log_prob=hand.gamma_log_prob,
        fix_value=_off_zero,
        accuracy="Gamma",
    ),
    Case(
        name="Chi2",
        event=1,
        make_params=lambda shape, f: [2 * _positive(shape, f)],
        irtgen=ird.Chi2,
        torch=td.Chi2,
        rsample_target=("torch", *GAMMA_LIKE),
        point=(3.0,),
        fix_value=_off_zero,
        accuracy="Chi2",
    ),
    Case(
        name="InverseGamma",
        event=1,
        make_params=lambda shape, f: [_positive(shape, f), 0.5 + f("rand", shape)],
        irtgen=ird.InverseGamma,
        torch=td.InverseGamma,
        rsample_target=("torch", *GAMMA_LIKE),
        point=(3.0, 2.0),
        fix_value=_positive_finite,
        accuracy="InverseGamma",
    ),
    Case(
        name="Beta",
        event=1,
        make_params=lambda shape, f: [_positive(shape, f), _positive(shape, f)],
        irtgen=ird.Beta,
        torch=td.Beta,
        rsample_target=("torch", *HARD),
        point=(2.0, 3.0),
        hand_rsample=_implicit_rsample(_beta_noise, hand.beta_forward, hand.beta_backward),
        hand_log_prob=hand.beta_log_prob,
        fix_value=_inside_unit,
        accuracy="Beta",
    ),
    Case(
        name="StudentT",
        event=1,
        make_params=lambda shape, f: [
            (f("rand", shape) * math.log(30.0)).exp(),  # df from 1 to 30, log-uniform
            f("randn", shape),
            0.5 + f("rand", shape),
        ],
        irtgen=ird.StudentT,
        torch=td.StudentT,
        rsample_target=("torch", *HARD),
        point=(4.0, 0.3, 1.2),
        hand_rsample=_implicit_rsample(
            _student_t_noise, hand.student_t_forward, hand.student_t_backward
        ),
        hand_log_prob=hand.student_t_log_prob,
        accuracy="StudentT",
        torch_gradient="path",
    ),
    Case(
        name=f"Dirichlet(K={K_DIRICHLET})",
        event=K_DIRICHLET,
        make_params=lambda shape, f: [_positive((*shape, K_DIRICHLET), f)],
        irtgen=ird.Dirichlet,
        torch=td.Dirichlet,
        rsample_target=("torch", *HARD),
        point=([0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0],),
        hand_rsample=_implicit_rsample(
            lambda conc: torch._sample_dirichlet(conc),
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
        make_params=lambda shape, f: [
            f("randn", K_MIX),
            2 * f("randn", K_MIX),
            0.5 + f("rand", K_MIX),
        ],
        irtgen=_mixture_1d_irtgen,
        torch=_mixture_1d_torch,
        rsample_target=MIXTURE_TARGET,
        torch_rsample=False,
        layouts=MIXTURE_LAYOUTS,
        hand_rsample=_implicit_rsample(
            _mixture_noise(_mixture_1d_torch),
            hand.identity,
            hand.mixture_backward_1d,
            compile_forward=False,
            expand=False,
        ),
        hand_log_prob=hand.mixture_log_prob_1d,
        transform=hand.mixture_transform,
        flat_params=lambda logits, loc, scale: [logits, loc.unsqueeze(-1), scale.unsqueeze(-1)],
    ),
    Case(
        name=f"Mixture(K={K_MIX}) of Independent Normal(D={D_MIX})",
        event=D_MIX,
        make_params=lambda shape, f: [
            f("randn", K_MIX),
            f("randn", (K_MIX, D_MIX)),
            0.5 + f("rand", (K_MIX, D_MIX)),
        ],
        irtgen=_mixture_irtgen,
        torch=_mixture_torch,
        rsample_target=MIXTURE_TARGET,
        torch_rsample=False,
        layouts=MIXTURE_LAYOUTS,
        hand_rsample=_implicit_rsample(
            _mixture_noise(_mixture_torch),
            hand.identity,
            hand.mixture_backward,
            compile_forward=False,
            expand=False,
        ),
        hand_log_prob=hand.mixture_log_prob,
        transform=hand.mixture_transform,
        flat_params=lambda logits, loc, scale: [logits, loc, scale],
    ),
]


def target(case: Case, op: str) -> tuple | None:
    """(baseline, must, goal) of the issue for this case and op, or None."""
    return LOG_PROB_TARGET if op == "log_prob" else case.rsample_target


def layout_shapes(case: Case, size: int, layout: str, batch: int) -> tuple[tuple, tuple, int]:
    """(batch shape, sample shape, scalar elements of z) for ``size`` elements in ``layout``."""
    draws = max(1, size // case.event)
    if layout == "broadcast":
        batch_shape, sample_shape = (), (draws,)
    elif layout == "batch":
        b = min(batch, draws)
        batch_shape, sample_shape = (b,), (math.ceil(draws / b),)
    elif layout == "elementwise":
        batch_shape, sample_shape = (draws,), ()
    else:
        raise ValueError(layout)
    return batch_shape, sample_shape, math.prod(batch_shape + sample_shape) * case.event


def make_inputs(case: Case, size: int, layout: str, batch: int, dtype, device) -> Inputs:
    """Parameters, weights and a fixed sample for ``size`` elements, from a fixed seed."""
    batch_shape, sample_shape, _ = layout_shapes(case, size, layout, batch)
    gen = torch.Generator(device="cpu").manual_seed(SEED)

    def factory(kind, shape):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        fn = torch.randn if kind == "randn" else torch.rand
        return fn(shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)

    if layout == "broadcast" and case.point is not None:
        params = [torch.tensor(v, dtype=dtype, device=device) for v in case.point]
    else:
        params = case.make_params(batch_shape, factory)
    params = [p.requires_grad_() for p in params]
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
            if case.hand_rsample is None:
                raise NotApplicable(f"no hand-written rsample baseline for {case.name}")
            return case.hand_rsample(inp, compiler)
        if case.hand_log_prob is None:
            raise NotApplicable(f"no hand-written log_prob baseline for {case.name}")
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
        "numba": version("numba"),
        "irtgen": version("irtgen") or getattr(irtgen, "__version__", None),
    }


def irtgen_backend(device) -> str:
    try:
        return select_backend(device)
    except (RuntimeError, ValueError) as exc:  # a bad IRTGEN_BACKEND: irtgen's rows will say
        return f"error: {exc}"


# --- accuracy ----------------------------------------------------------------------------------


def _json_float(x: float) -> float | str:
    """A float for strict JSON: inf and nan become strings."""
    return x if math.isfinite(x) else str(x)


def _worst(errors: list[float]) -> float:
    return math.nan if any(math.isnan(e) for e in errors) else max(errors)


def measure_accuracy(cases: list[Case], dtype: torch.dtype) -> dict[str, dict]:
    """Max and median relative error of dz/dθ against mpmath, irtgen's and torch's, per case.

    irtgen: tests/families/test_implicit_gradients.py ``relative_errors`` (CPU tensors: the
    numba kernels); torch: tools/accuracy_report.py ``torch_errors``; both at the points of
    tests/families/cases.py.
    """
    saved = os.environ.get("TRITON_INTERPRET")
    sys.path.insert(0, str(REPO / "tools"))
    sys.path.insert(0, str(REPO))
    try:
        import accuracy_report  # sets TRITON_INTERPRET=1 (for its own Triton columns)

        from tests.families import cases as family_cases
    finally:
        sys.path.remove(str(REPO / "tools"))
        sys.path.remove(str(REPO))
        if saved is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = saved
    by_name = {c.name: c for c in family_cases.CASES}
    out = {}
    for case in cases:
        if case.accuracy is None:
            out[case.name] = {
                "status": "none",
                "message": "no mpmath reference grid in tests/families/cases.py",
            }
            continue
        family = by_name[case.accuracy]
        started = time.perf_counter()
        try:
            errors = [e[0] for e in accuracy_report.relative_errors(family, dtype)]
            torch_errors = accuracy_report.torch_errors_on_grid(family, dtype)
        except Exception as exc:  # noqa: BLE001 — recorded, and the run goes on
            out[case.name] = {"status": "err", "message": _message(exc)}
            continue
        rec = {
            "status": "ok",
            "dtype": str(dtype).removeprefix("torch."),
            "backend": "numba",
            "points": len(errors),
            "irtgen_max": _json_float(_worst(errors)),
            "irtgen_median": _json_float(statistics.median(errors)),
            "torch_gradient": "measured" if torch_errors else case.torch_gradient,
            "seconds": time.perf_counter() - started,
        }
        if torch_errors:
            rec["torch_max"] = _json_float(_worst(torch_errors))
            rec["torch_median"] = _json_float(statistics.median(torch_errors))
        out[case.name] = rec
        print(
            f"accuracy {case.name}: irtgen {fmt_err(rec['irtgen_max'])}, torch "
            f"{fmt_err(rec['torch_max']) if 'torch_max' in rec else rec['torch_gradient']} "
            f"({rec['points']} values, {rec['seconds']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return out


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


def fmt_err(e: float | str | None) -> str:
    if e is None:
        return "—"
    e = float(e)
    if math.isnan(e) or math.isinf(e):
        return str(e)
    # errors below 1e-30 are the 40-digit reference's own rounding: the values agree exactly
    return "0" if e < 1e-30 else f"{e:.1e}"


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
    return ("~" if rec["elements_run"] != rec["elements"] else "") + fmt_ms(rec["time_s"])


def cell_ratio(ratio: dict | None, rec: dict | None) -> str:
    """irtgen / baseline, or the baseline's status; "irtgen err" etc. when irtgen did not run."""
    if ratio is not None:
        return ("~" if ratio["scaled"] else "") + fmt_ratio(ratio["ratio"])
    if rec is not None and rec["status"] == "ok":
        return "no irtgen"  # the baseline ran, irtgen did not
    return cell_time(rec)


# --- the run -----------------------------------------------------------------------------------


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def row_key(rec: dict) -> tuple:
    """What identifies a row of the tables: (case, op, layout, threads, size)."""
    return (rec["case"], rec["op"], rec["layout"], rec["threads"], rec["size"])


class Runner:
    """Runs every (threads, case, layout, size, op, implementation) and keeps the records."""

    def __init__(self, args, device, dtype, reps, warmup, jac_max, batch, backend):
        self.args, self.device, self.dtype = args, device, dtype
        self.reps, self.warmup, self.jac_max, self.batch = reps, warmup, jac_max, batch
        self.backend = backend
        self.compiler = Compiler(backend)
        self.results: list[dict] = []
        self.bandwidth: list[dict] = []
        self.copy = copy_bandwidth(device, reps) if device.type == "cuda" else None
        self._carried: dict[tuple, dict] = {}  # n/a and — carried to the larger sizes
        self._last: dict[tuple, tuple[int, float]] = {}  # (elements run, median) at the last size

    def run(self, cases: list[Case], sizes: list[int], layouts: list[str], threads: list[int]):
        plan = [
            (t, case, layout, size)
            for t in threads
            for case in cases
            for layout in layouts
            if layout in case.layouts
            for size in sizes
        ]
        total = len(plan) * len(OPS) * len(IMPLS)
        current = None
        for t, case, layout, size in plan:
            if t != current:
                if current is not None:
                    # inductor's CPU kernels keep the thread count they were compiled with
                    torch._dynamo.reset()
                    self.compiler = Compiler(self.backend)
                torch.set_num_threads(t)
                current = t
            inputs: dict[int, Inputs] = {}
            for op in OPS:
                for impl in IMPLS:
                    rec = self.run_one(case, size, layout, t, op, impl, inputs)
                    self.results.append(rec)
                    self._progress(rec, total)
                    if self.device.type == "cuda" and impl == "irtgen" and rec["status"] == "ok":
                        for b in measure_bandwidth(
                            case, op, size, inputs[size], self.copy, self.reps
                        ):
                            self.bandwidth.append({**b, "layout": layout, "threads": t})
            inputs.clear()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def run_one(self, case, size, layout, threads, op, impl, inputs) -> dict:
        key = (case.name, op, impl, layout, threads)
        batch_shape, sample_shape, elements = layout_shapes(case, size, layout, self.batch)
        run_size = min(size, self.jac_max) if impl == "jacobian" else size
        run_size = max(run_size, case.event)
        elements_run = layout_shapes(case, run_size, layout, self.batch)[2]
        rec = {
            "case": case.name,
            "op": op,
            "impl": impl,
            "layout": layout,
            "threads": threads,
            "size": size,
            "elements": elements,
            "elements_run": elements_run,
            "batch_shape": list(batch_shape),
            "sample_shape": list(sample_shape),
            "status": "ok",
            "times_s": [],
            "message": None,
        }
        if key in self._carried:
            rec.update(status=self._carried[key]["status"], message=self._carried[key]["message"])
            return rec
        if key in self._last:
            prev_elements, prev_median = self._last[key]
            predicted = prev_median * elements_run / prev_elements
            if predicted > self.args.max_call_seconds:
                rec["status"] = "skip"
                rec["message"] = (
                    f"predicted {predicted:.0f} s per call from {prev_median:.2f} s at "
                    f"{prev_elements} elements (> --max-call-seconds "
                    f"{self.args.max_call_seconds:g})"
                )
                return rec
        try:
            if run_size not in inputs:
                inputs[run_size] = make_inputs(
                    case, run_size, layout, self.batch, self.dtype, self.device
                )
            torch.manual_seed(SEED)
            fn = build(case, op, impl, inputs[run_size], self.compiler)
            torch.set_num_threads(threads)  # see start_numba_threads
            rec["times_s"] = measure(fn, self.device, self.reps, self.warmup)
            rec["threads_after"] = torch.get_num_threads()
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
        rec["time_s"] = median * elements / elements_run  # scaled to the row's size
        self._last[key] = (elements_run, median)
        return rec

    def _progress(self, rec: dict, total: int) -> None:
        shown = cell_time(rec) + (" ms" if rec["status"] == "ok" else "")
        if rec["status"] == "ok" and rec["elements_run"] != rec["elements"]:
            shown += f" (scaled from {rec['elements_run']} elements)"
        if rec["message"]:
            shown += f" ({rec['message']})"
        print(
            f"[{len(self.results):3d}/{total}] {rec['case']} {rec['op']} {rec['layout']} "
            f"{size_label(rec['size'])} {rec['threads']}t {rec['impl']}: {shown}",
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
    """irtgen time / baseline time for every row where both ran (< 1: irtgen is faster)."""
    by_key = {(*row_key(r), r["impl"]): r for r in results}
    ratios = []
    for (*row, impl), rec in by_key.items():
        irt = by_key.get((*row, "irtgen"))
        if impl == "irtgen" or rec["status"] != "ok" or irt is None or irt["status"] != "ok":
            continue
        case, op, layout, threads, size = row
        ratios.append(
            {
                "case": case,
                "op": op,
                "layout": layout,
                "threads": threads,
                "size": size,
                "baseline": impl,
                "ratio": irt["time_s"] / rec["time_s"],
                "scaled": rec["elements_run"] != rec["elements"],
            }
        )
    return ratios


def compute_targets(results: list[dict], ratios: list[dict], cases: list[Case]) -> list[dict]:
    """One record per (case, op, layout, threads, size): the issue's target and whether it is
    met ("goal", "must", "no"; None where irtgen or the baseline did not run)."""
    by_case = {c.name: c for c in cases}
    ratio = {(*row_key(r), r["baseline"]): r for r in ratios}
    out = []
    for rec in results:
        if rec["impl"] != "irtgen":
            continue
        goal_of = target(by_case[rec["case"]], rec["op"])
        if goal_of is None:
            continue
        baseline, must, goal = goal_of
        r = ratio.get((*row_key(rec), baseline))
        met = None
        if r is not None:
            met = "goal" if r["ratio"] <= goal else "must" if r["ratio"] <= must else "no"
        out.append(
            {
                **dict(zip(("case", "op", "layout", "threads", "size"), row_key(rec), strict=True)),
                "baseline": baseline,
                "must": must,
                "goal": goal,
                "ratio": r["ratio"] if r else None,
                "scaled": r["scaled"] if r else False,
                "met": met,
            }
        )
    return out


def fmt_target(must: float, goal: float) -> str:
    if must < 1:  # a speed-up: 1/20 shown as 0.05
        return f"{must:.2g}/{goal:.2g} ({1 / must:.0f}x/{1 / goal:.0f}x)"
    return f"{must:g}/{goal:g}"


def accuracy_cells(acc: dict | None, op: str) -> list[str]:
    if op != "rsample":
        return ["", ""]
    if acc is None:
        return ["off", "off"]
    if acc["status"] != "ok":
        return ["—", "—"] if acc["status"] == "none" else ["err", "err"]
    torch_cell = fmt_err(acc["torch_max"]) if "torch_max" in acc else (acc["torch_gradient"] or "—")
    return [fmt_err(acc["irtgen_max"]), torch_cell]


def print_report(report: dict, out_path: Path, cases: list[Case]) -> None:
    dev, ver, st = report["device"], report["versions"], report["settings"]
    print(
        f"irtgen benchmark: {dev['type']} ({dev['name']}, {dev['cpu_count']} CPUs, threads "
        f"{', '.join(map(str, st['threads']))}), {st['dtype']}, torch {ver['torch']}, "
        f"triton {ver['triton']}, numba {ver['numba']}, irtgen {ver['irtgen']}, "
        f"commit {report['git_commit'][:12]}"
    )
    omp_libs = [lib for lib in dev.get("openmp_libraries", []) if "omp" in Path(lib).name]
    if (
        dev.get("numba_threading_layer") == "omp"
        and len(omp_libs) > 1
        and not report["environment"].get("OMP_WAIT_POLICY")
    ):
        print(
            f"note: numba's threading layer is omp and {len(omp_libs)} OpenMP runtimes are "
            "loaded, OMP_WAIT_POLICY unset: idle OpenMP threads spin, which slows both columns "
            "on busy cores (compare with OMP_WAIT_POLICY=PASSIVE)"
        )
    print()
    show_size = len(st["sizes"]) > 1
    label_header = ["case", "op", "layout", "thr"] + ["size"] * show_size

    def labels(row) -> list[str]:
        case, op, layout, threads, size = row
        return [case, op, layout, str(threads)] + [size_label(size)] * show_size

    rows_keys = []  # the rows in run order
    for r in report["results"]:
        if row_key(r) not in rows_keys:
            rows_keys.append(row_key(r))
    by_key = {(*row_key(r), r["impl"]): r for r in report["results"]}
    print_table(
        "Median time per call, ms (rsample: draw + gradient of Σ w·z; log_prob: log density + "
        "gradient to parameters and value)",
        [*label_header, *IMPLS],
        [labels(k) + [cell_time(by_key.get((*k, impl))) for impl in IMPLS] for k in rows_keys],
        text_columns=len(label_header),
    )
    print(
        f"layouts: broadcast = one parameter set, sample_shape (size,); batch = "
        f"{st['batch']} parameter sets, sample_shape (ceil(size/{st['batch']}),); elementwise = "
        f"one set per element.  ~: the jacobian baseline ran at "
        f"{size_label(st['jacobian_max_elements'])} elements, its time scaled linearly."
    )
    notes: dict[tuple, list[str]] = {}
    for r in report["results"]:
        if r["status"] in ("n/a", "err", "skip"):
            key = (r["status"], r["case"], r["op"], r["impl"], r["message"])
            notes.setdefault(key, []).append(
                f"{r['layout']} {size_label(r['size'])} {r['threads']}t"
            )
    if notes:
        print()
        print("Not measured:")
        for (status, case, op, impl, message), where in notes.items():
            print(f"  {status:4s} {case} {op} {impl} [{', '.join(where)}]: {message}")
    if report["bandwidth"]:
        print()
        copy = report["copy_bandwidth"]["bytes_per_s"]
        rows = [
            [
                b["case"],
                b["op"],
                b["layout"],
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
            ["case", "op", "layout", "size", "pass", "ms", "GB/s", "of copy"],
            rows,
            text_columns=5,
        )
    print()
    ratio = {(*row_key(r), r["baseline"]): r for r in report["ratios"]}
    print_table(
        "Ratios: irtgen time / baseline time (< 1: irtgen is faster)",
        [*label_header, *(f"/{b}" for b in BASELINES)],
        [
            labels(k) + [cell_ratio(ratio.get((*k, b)), by_key.get((*k, b))) for b in BASELINES]
            for k in rows_keys
        ],
        text_columns=len(label_header),
    )
    print()
    print(f"results: {out_path}  ({report['wall_seconds']:.0f} s)")
    print()
    accuracy = report.get("accuracy") or {}
    rows = []
    for t in report["targets"]:
        k = row_key(t)
        irt, base = by_key.get((*k, "irtgen")), by_key.get((*k, t["baseline"]))
        base_cell = cell_time(base)
        if t["baseline"] != "torch":
            base_cell = f"{t['baseline'][:3]} {base_cell}"
        rows.append(
            labels(k)
            + [
                cell_time(irt),
                base_cell,
                "" if t["ratio"] is None else ("~" if t["scaled"] else "") + fmt_ratio(t["ratio"]),
                fmt_target(t["must"], t["goal"]),
                t["met"] or "—",
            ]
            + accuracy_cells(accuracy.get(t["case"]) if accuracy else None, t["op"])
        )
    print_table(
        f"Targets: irtgen time / torch time, same op and process ({st['dtype']}, "
        "must/goal: met if ratio ≤ target)",
        [
            *label_header,
            "irtgen ms",
            "torch ms",
            "irtgen/torch",
            "target",
            "met",
            "irtgen err",
            "torch err",
        ],
        rows,
        text_columns=len(label_header),
    )
    print(
        "Mixture rsample rows: against the generic autograd-Jacobian path (jac), target "
        "20x/50x faster.\nerr: max relative error of dz/dθ against mpmath (rsample rows; "
        f"{st['dtype']}, tests/families/cases.py grids; explicit: torch's gradient is an explicit "
        "reparameterization, path: through a chi-square draw; off: --no-accuracy)."
    )


def select_cases(patterns: list[str] | None) -> list[Case]:
    """Every case, or those named by a pattern: its exact name, else a substring of names
    ("Gamma" is the Gamma alone, "Mixture" both mixtures)."""
    if not patterns:
        return list(CASES)
    names = {c.name for c in CASES}
    return [c for c in CASES if any(c.name == s if s in names else s in c.name for s in patterns)]


def start_numba_threads() -> str | None:
    """Launch numba's thread pool before anything is timed, with one small irtgen call.

    Launching it (irtgen's first CPU kernel) can change torch's thread count (seen: 1 → 2
    with numba's omp layer, whose libgomp is not torch's); the runner sets torch's count again
    before each measurement and records the count after it (``threads_after``)."""
    before = torch.get_num_threads()
    try:
        loc = torch.zeros((), requires_grad=True)
        z = ird.Normal(loc, torch.ones(())).rsample((64,))
        torch.autograd.grad(z.sum(), [loc])
    except Exception as exc:  # noqa: BLE001 — irtgen's rows will say what is wrong
        return f"error: {_message(exc)}"
    after = torch.get_num_threads()
    torch.set_num_threads(before)
    return None if after == before else f"torch threads changed {before} -> {after}"


def openmp_state() -> dict:
    """The OpenMP (and TBB) runtimes loaded in this process: torch's. irtgen's CPU kernels use
    no threading layer of numba's; they run serially in the calling thread and in irtgen's
    own pool of Python threads (irtgen.compilers.cpu)."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        maps = []
    libs = sorted(
        {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
        | {line.split()[-1] for line in maps if "libtbb" in line}
    )
    return {"openmp_libraries": libs}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        help="log2 of the number of elements of z (default: 20 on cpu, 20 24 on cuda)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: size 2^10, one repetition")
    p.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--reps", type=int, help="timed repetitions (default 5; 1 with --quick)")
    p.add_argument("--cases", nargs="+", help="case names, else substrings of them (default all)")
    p.add_argument(
        "--layouts",
        nargs="+",
        choices=LAYOUTS,
        default=["broadcast", "batch"],
        help="parameter layouts (default: broadcast batch)",
    )
    p.add_argument(
        "--batch", type=int, help="parameter sets in the batch layout (default 1000; 32 --quick)"
    )
    p.add_argument(
        "--threads",
        nargs="+",
        type=int,
        help="torch.set_num_threads, one full run per value (default: torch's default)",
    )
    p.add_argument(
        "--no-accuracy",
        action="store_true",
        help="skip the mpmath accuracy columns (max relative error of dz/dθ)",
    )
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
    threads = args.threads or [torch.get_num_threads()]
    sizes_log2 = args.sizes or ([10] if args.quick else [20] + [24] * (args.device == "cuda"))
    sizes = [1 << s for s in sizes_log2]
    reps = args.reps or (1 if args.quick else 5)
    warmup = 1 if args.quick else 2
    batch = args.batch or (32 if args.quick else 1000)
    jac_max = 1 << (args.jacobian_max or (20 if device.type == "cuda" else 16))
    backend = args.compile_backend or ("aot_eager" if args.quick else "inductor")
    cases = select_cases(args.cases)
    dtype = getattr(torch, args.dtype)
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
            "torch_threads": threads,
            "cpu_count": os.cpu_count(),
            "irtgen_backend": irtgen_backend(device),
        },
        "versions": versions(),
        "git_commit": git_commit(),
        "environment": {
            k: os.environ.get(k)
            for k in (
                "IRTGEN_BACKEND",
                "TRITON_INTERPRET",
                "IRTGEN_CACHE_DIR",
                "OMP_NUM_THREADS",
                "OMP_WAIT_POLICY",
                "GOMP_SPINCOUNT",
            )
        },
        "settings": {
            "dtype": args.dtype,
            "sizes": sizes,
            "layouts": args.layouts,
            "batch": batch,
            "threads": threads,
            "reps": reps,
            "warmup": warmup,
            "quick": args.quick,
            "compile_backend": backend,
            "jacobian_max_elements": jac_max,
            "max_call_seconds": args.max_call_seconds,
            "seed": SEED,
            "timer": "triton.testing.do_bench" if device.type == "cuda" else "time.perf_counter",
            "validate_args": False,
            "accuracy": not args.no_accuracy,
        },
        "cases": {
            c.name: {
                "layouts": [la for la in args.layouts if la in c.layouts],
                "broadcast_params": c.point,
                "rsample_target": c.rsample_target,
                "log_prob_target": LOG_PROB_TARGET,
            }
            for c in cases
        },
        "command": ["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)],
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if device.type == "cpu":
        report["device"]["numba_launch"] = start_numba_threads()
    runner = Runner(args, device, dtype, reps, warmup, jac_max, batch, backend)
    runner.run(cases, sizes, args.layouts, threads)
    accuracy = None if args.no_accuracy else measure_accuracy(cases, dtype)
    ratios = compute_ratios(runner.results)
    report["device"].update(openmp_state())
    report.update(
        copy_bandwidth=runner.copy,
        results=runner.results,
        bandwidth=runner.bandwidth,
        ratios=ratios,
        targets=compute_targets(runner.results, ratios, cases),
        accuracy=accuracy,
        wall_seconds=time.perf_counter() - started,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    print_report(report, out_path, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
