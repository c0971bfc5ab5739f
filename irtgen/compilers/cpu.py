"""CPU side of the one source: numba kernels written once, specialised on scalar functions.

Each skeleton below is an ordinary Python function over flat float64 arrays that calls the
globals ``FN`` (and ``INSIDE``, the family's support test) with the number of parameters ``NP``
and of outputs ``NOUT`` as constants. ``instance(skeleton, **globals)`` binds those globals to
numba-compiled scalar functions and compiles one parallel kernel per binding, cached on disk
(irtgen.compilers.bind.njit). Layout (irtgen.runtime.launch): values flat ``M * NB``,
parameters ``(NB, NP)`` (row j holds the parameters of batch column j), element i uses row
``i % NB``.

Every scalar function runs in float64. Values, incoming gradients and outputs are float32 or
float64 arrays (numba compiles one kernel per dtype): each element is widened to float64 when it
is loaded and rounded to the output's dtype when it is stored, so no float64 copy of a large
array is ever made. Parameters and reductions are float64.

Each kernel is a serial loop over a range of tasks ``[t0, t1)`` (tiles of elements, or chunks of
rows), compiled without the GIL. ``_Kernel.run`` splits the tasks into contiguous parts, one per
thread (``set_threads``, torch's thread count), runs one part in the calling thread and the others
in a small pool of Python threads. A call too small to gain from threads (estimated from the
kernel's earlier calls) runs in the calling thread alone: a thread handoff costs about 0.1 ms,
numba's parallel launch about as much even with one thread, and a serial kernel compiles about 4x
faster than a ``parallel=True`` one.

Reductions are deterministic: the backward sums rows in fixed chunks (``ROWS_PER_CHUNK`` depends
only on the shape), each chunk sequentially into its own partial sums, and the partials are then
added in chunk order. The result does not depend on the thread count.
"""

from __future__ import annotations

import os
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba.extending import overload
from numba.np.unsafe.ndarray import to_fixed_tuple

from irtgen.compilers import MIXTURE_FORMULAS, bind

# bound per instance
FN = None
INSIDE = None
NP = 0  # parameter columns FN takes
NG = 0  # of which the first NG are the family's parameters (the backward's gradients, INSIDE's)
NOUT = 1
LOAD = None  # map_values: how a value is read (_widen or _uniform52)
NEED_VALUE = False  # the backward writes g r_0 (a constant: r_0 is not computed otherwise)
LOG_PROB = CDF = SF = LOG_PROB_GRAD = IMPLICIT_GRAD = None  # the mixture backward's formulas
CHUNK_ELEMENTS = 1 << 14  # elements per reduction chunk (of whole rows)
TILE_ELEMENTS = 1 << 13  # elements per task of the elementwise kernels


# -- skeletons ---------------------------------------------------------------------------------


def _row(P, j, n):
    """(P[j, 0], ..., P[j, n - 1]) for a literal n: a row of parameters read as scalars (a
    tuple from a slice, to_fixed_tuple(P[j], n), costs a reference-counted view per element)."""
    raise NotImplementedError("compiled only (numba overload)")


@overload(_row)
def _row_numba(P, j, n):
    if not isinstance(n, numba.types.IntegerLiteral):
        return None
    items = "".join(f"P[j, {q}], " for q in range(n.literal_value))
    namespace = {}
    exec(f"def row(P, j, n):\n    return ({items})\n", namespace)
    return namespace["row"]


def _uniform52(u):
    """(floor(2^52 u) + 1/2) 2^-52: a uniform u in [0, 1) (torch.rand's float64, a multiple of
    2^-53) turned into one strictly inside (0, 1), as irtgen.scalar.random's uniforms are."""
    return (np.floor(u * 4503599627370496.0) + 0.5) * 2.220446049250313e-16


_uniform52 = bind.njit(_uniform52)


def _widen(x):
    return np.float64(x)


_widen = bind.njit(_widen)


# Every elementwise skeleton below runs the tiles t0 <= t < t1 of TILE_ELEMENTS consecutive
# elements (a kernel's tasks, split across threads by _Kernel.run) and, inside a tile, tracks
# the column j = i mod NB by counting (no division per element). A tile is taken as slices
# indexed from 0, so LLVM sees a plain counted loop (no negative-index wraparound), and a
# broadcast parameter row (NB = 1) is read once: the loop of a small formula vectorizes. Each
# skeleton calls FN at one place, so a large formula is compiled into it once.


def map_values(out, x, P, t0, t1):
    """out[i] = FN(LOAD(x[i]), *P[i % NB]); LOAD widens to float64 (``_widen``) or, for
    uniforms from torch.rand, is ``_uniform52`` (an icdf never sees 0 or 1)."""
    NB = P.shape[0]
    n = x.size
    p0 = _row(P, 0, NP)
    for t in range(t0, t1):
        i0 = t * TILE_ELEMENTS
        m = min(n - i0, TILE_ELEMENTS)
        xs = x[i0 : i0 + m]
        os = out[i0 : i0 + m]
        j = i0 % NB
        for k in range(m):
            p = p0 if NB == 1 else _row(P, j, NP)
            os[k] = FN(LOAD(xs[k]), *p)
            j = j + 1 if j + 1 < NB else 0


def count_outside(x, P, t0, t1):
    """Number of i in tiles [t0, t1) with not FN(x[i], *P[i % NB]) (FN: a support test)."""
    NB = P.shape[0]
    n = x.size
    p0 = _row(P, 0, NP)
    count = 0
    for t in range(t0, t1):
        i0 = t * TILE_ELEMENTS
        m = min(n - i0, TILE_ELEMENTS)
        xs = x[i0 : i0 + m]
        j = i0 % NB
        for k in range(m):
            p = p0 if NB == 1 else _row(P, j, NP)
            if not FN(np.float64(xs[k]), *p):
                count += 1
            j = j + 1 if j + 1 < NB else 0
    return count


def map_values_multi(out, x, P, t0, t1):
    """out[k, i] = FN(x[i], *P[i % NB])[k] for k < NOUT."""
    NB = P.shape[0]
    n = x.size
    p0 = _row(P, 0, NP)
    for t in range(t0, t1):
        i0 = t * TILE_ELEMENTS
        m = min(n - i0, TILE_ELEMENTS)
        xs = x[i0 : i0 + m]
        j = i0 % NB
        for k in range(m):
            p = p0 if NB == 1 else _row(P, j, NP)
            r = FN(np.float64(xs[k]), *p)
            for q in range(NOUT):
                out[q, i0 + k] = r[q]
            j = j + 1 if j + 1 < NB else 0


def map_params(out, P, t0, t1):
    """out[k, j] = FN(*P[j])[k] for rows t0 <= j < t1: functions of the parameters alone (the
    support's ends, the parameter terms of a formula)."""
    for j in range(t0, t1):
        r = FN(*_row(P, j, NP))
        for k in range(NOUT):
            out[k, j] = r[k]


def map_params_one(out, P, t0, t1):
    """out[0, j] = FN(*P[j]) for a function of the parameters with one output."""
    for j in range(t0, t1):
        out[0, j] = FN(*_row(P, j, NP))


def sample(out, P, seed, t0, t1):
    """out[i] = FN(seed, i, *P[i % NB]): draws keyed by (seed, element index)."""
    NB = P.shape[0]
    n = out.size
    p0 = _row(P, 0, NP)
    for t in range(t0, t1):
        i0 = t * TILE_ELEMENTS
        m = min(n - i0, TILE_ELEMENTS)
        os = out[i0 : i0 + m]
        j = i0 % NB
        for k in range(m):
            p = p0 if NB == 1 else _row(P, j, NP)
            os[k] = FN(seed, i0 + k, *p)
            j = j + 1 if j + 1 < NB else 0


def _chunk(gvalue, x, g, c, rows_per_chunk, NB):
    """The elements of row chunk c: slices of x, g and gvalue (gvalue is empty where the
    kernel does not write it; its slice is then empty too). A chunk starts at a multiple of
    rows_per_chunk * NB elements."""
    i0 = c * rows_per_chunk * NB
    i1 = min(x.size // NB, (c + 1) * rows_per_chunk) * NB
    return x[i0:i1], g[i0:i1], gvalue[i0:i1]


_chunk = bind.njit(_chunk)


def backward(gvalue, partials, x, g, P, rows_per_chunk, c0, c1):
    """Fused backward over the row chunks c0 <= c < c1: r = FN(x, θ, terms) = (d/dx, d/dθ_1,
    ..., d/dθ_NG); gvalue[i] = g r_0 and partials[c, k, j] = Σ over the rows of chunk c of
    g r_(k+1) (in row order), zero outside the support (INSIDE(x, θ)). P's row j holds θ then
    the parameter terms of FN (if any). With one row (NB = 1) the sum runs in four interleaved
    accumulators (element i into lane i mod 4, the lanes then added as (l0 + l1) + (l2 + l3)):
    four independent chains of additions rather than one, in an order fixed by the shape
    alone."""
    NB = P.shape[0]
    p0 = _row(P, 0, NP)
    pin0 = _row(P, 0, NG)
    for c in range(c0, c1):
        xs, gs, gv = _chunk(gvalue, x, g, c, rows_per_chunk, NB)
        acc = np.zeros((NG, 4))
        j = 0
        for k in range(xs.size):
            if NB == 1:
                p = p0
                pin = pin0
            else:
                p = _row(P, j, NP)
                pin = _row(P, j, NG)
            gi = np.float64(gs[k])
            xi = np.float64(xs[k])
            if gi != 0.0 and INSIDE(xi, *pin):
                r = FN(xi, *p)
                if NEED_VALUE:
                    gv[k] = gi * r[0]
                for q in range(NG):
                    if NB == 1:
                        acc[q, k & 3] += gi * r[q + 1]  # i0 is a multiple of 4: i & 3 == k & 3
                    else:
                        partials[c, q, j] += gi * r[q + 1]
            elif NEED_VALUE:
                gv[k] = 0.0
            j = j + 1 if j + 1 < NB else 0
        if NB == 1:
            for q in range(NG):
                partials[c, q, 0] = (acc[q, 0] + acc[q, 1]) + (acc[q, 2] + acc[q, 3])


def backward_light(gvalue, partials, x, g, P, rows_per_chunk, c0, c1):
    """``backward`` for small formulas (no special function): the same sums in the same
    order, with the loop of a broadcast row (NB = 1) written apart so that LLVM keeps it tight.
    FN is called at two places, which a large formula would make twice as slow to compile."""
    NB = P.shape[0]
    for c in range(c0, c1):
        xs, gs, gv = _chunk(gvalue, x, g, c, rows_per_chunk, NB)
        if NB == 1:
            p = _row(P, 0, NP)
            pin = _row(P, 0, NG)
            acc = np.zeros((NG, 4))
            for k in range(xs.size):
                gi = np.float64(gs[k])
                xi = np.float64(xs[k])
                if gi == 0.0 or not INSIDE(xi, *pin):
                    if NEED_VALUE:
                        gv[k] = 0.0
                    continue
                r = FN(xi, *p)
                if NEED_VALUE:
                    gv[k] = gi * r[0]
                lane = k & 3  # i0 is a multiple of 4: i & 3 == k & 3
                for q in range(NG):
                    acc[q, lane] += gi * r[q + 1]
            for q in range(NG):
                partials[c, q, 0] = (acc[q, 0] + acc[q, 1]) + (acc[q, 2] + acc[q, 3])
        else:
            for m in range(xs.size // NB):
                for j in range(NB):
                    k = m * NB + j
                    gi = np.float64(gs[k])
                    xi = np.float64(xs[k])
                    if gi == 0.0 or not INSIDE(xi, *_row(P, j, NG)):
                        if NEED_VALUE:
                            gv[k] = 0.0
                        continue
                    r = FN(xi, *_row(P, j, NP))
                    if NEED_VALUE:
                        gv[k] = gi * r[0]
                    for q in range(NG):
                        partials[c, q, j] += gi * r[q + 1]


def mixture_backward(g_logits, g_params, z, g, logw, P, need_logits, needs, rows_per_chunk, t0, t1):
    """The whole implicit backward of a mixture of K components of one family, each a product
    over D dimensions (irtgen.composite.mixture; the structure of irtgen.compilers.gpu's
    ``mixture_backward_kernel``). z, g: flat (M, NB, D); logw: (NB, K) log weights; P:
    (NB, K, D, NP) parameters. Task (chunk c, column b) adds the rows of chunk c of column b
    into its own partials g_logits[c, b, k] and g_params[c, i, b, k, d].

    Per row, with A_kd = log w_k + Σ_(j<d) log q_kj (prefix sums), r = softmax_k(A), E_kd =
    r_kd (F_kd - Fbar_d)/p_d, rho_kd = r_kd q_kd/p_d and W_kd = Σ_(d'>d) mu_d' E_kd', back
    substitution over d = D-1, ..., 0: mu_d = g_d - Σ_k s_kd W_kd,

        grad logit_k += -mu_d E_kd,   grad θ_kd += mu_d rho_kd dz_kd/dθ - W_kd ∂log q_kd/∂θ,

    zero outside the support (INSIDE); a term whose weight (mu rho or W) is 0 adds exactly 0
    and its formula is not evaluated."""
    NB, K, D = P.shape[0], P.shape[1], P.shape[2]
    M = z.size // max(NB * D, 1)
    any_need = False
    for i in range(NP):
        any_need = any_need or needs[i]
    for task in range(t0, t1):  # tasks (c, b), c * NB + b < chunks * NB
        c = task // NB
        b = task % NB
        lq = np.empty((K, D))
        pre = np.empty((K, D))
        inside = np.empty(K, dtype=np.bool_)
        F = np.empty(K)
        S = np.empty(K)
        L = np.empty(K)
        W = np.empty(K)
        E = np.empty(K)
        rho = np.empty(K)
        gl = np.empty((K, NP + 1))
        m0 = c * rows_per_chunk
        m1 = min(M, m0 + rows_per_chunk)
        for m in range(m0, m1):
            base = (m * NB + b) * D
            for k in range(K):
                acc = logw[b, k]
                for d in range(D):
                    pre[k, d] = acc
                    lq[k, d] = LOG_PROB(z[base + d], *to_fixed_tuple(P[b, k, d], NP))
                    acc += lq[k, d]
                W[k] = 0.0
            for dd in range(D):
                d = D - 1 - dd
                x = z[base + d]
                amax = -np.inf
                lmax = -np.inf
                for k in range(K):
                    p = to_fixed_tuple(P[b, k, d], NP)
                    inside[k] = INSIDE(x, *p)
                    L[k] = pre[k, d] + (lq[k, d] if inside[k] else -np.inf)
                    amax = max(amax, pre[k, d])
                    lmax = max(lmax, L[k])
                    F[k] = CDF(x, *p)
                    S[k] = SF(x, *p)
                sa = 0.0
                sl = 0.0
                for k in range(K):
                    sa += np.exp(pre[k, d] - amax)
                    sl += np.exp(L[k] - lmax)
                lse_a = amax + np.log(sa)
                lse_l = lmax + np.log(sl)
                fbar = 0.0
                sbar = 0.0
                for k in range(K):
                    r = np.exp(pre[k, d] - lse_a)
                    fbar += r * F[k]
                    sbar += r * S[k]
                sw = 0.0
                for k in range(K):
                    # F_kd - Fbar_d from the survival functions where Fbar_d > 1/2
                    diff = F[k] - fbar if fbar <= 0.5 else sbar - S[k]
                    E[k] = np.exp(pre[k, d] - lse_l) * diff
                    rho[k] = np.exp(L[k] - lse_l) if inside[k] else 0.0
                    if inside[k] and W[k] != 0.0:
                        r = LOG_PROB_GRAD(x, *to_fixed_tuple(P[b, k, d], NP))
                        for i in range(NP + 1):
                            gl[k, i] = r[i]
                        sw += gl[k, 0] * W[k]
                mu = g[base + d] - sw
                for k in range(K):
                    if any_need and inside[k]:
                        w1 = mu * rho[k]
                        if w1 != 0.0:
                            ri = IMPLICIT_GRAD(x, *to_fixed_tuple(P[b, k, d], NP))
                            for i in range(NP):
                                if needs[i]:
                                    g_params[c, i, b, k, d] += w1 * ri[i + 1]
                        if W[k] != 0.0:
                            for i in range(NP):
                                if needs[i]:
                                    g_params[c, i, b, k, d] -= W[k] * gl[k, i + 1]
                    W[k] += mu * E[k]
                    if need_logits:
                        g_logits[c, b, k] -= mu * E[k]


# -- instances and threads ---------------------------------------------------------------------

_INSTANCES: dict[tuple, _Kernel] = {}
_LOCK = threading.Lock()

MAX_THREADS = max(1, os.cpu_count() or 1)
_THREADS = 1  # set_threads
# a call whose estimated serial time is below this runs in the calling thread alone: a handoff
# to a pool thread and back costs about 0.1 ms
PARALLEL_MIN_SECONDS = 4e-4
_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool)


def _pool() -> ThreadPoolExecutor:
    """The worker threads (MAX_THREADS - 1; the calling thread runs one part), made again in a
    forked child, which inherits the pool's state but not its threads."""
    global _POOL
    pid = os.getpid()
    if _POOL is None or _POOL[0] != pid:
        workers = max(1, MAX_THREADS - 1)
        _POOL = (pid, ThreadPoolExecutor(workers, thread_name_prefix="irtgen-cpu"))
    return _POOL[1]


class _Kernel:
    """A compiled skeleton whose last two arguments are a range of tasks [t0, t1). ``run``
    splits the tasks into contiguous parts, one per thread, when the call is estimated to take
    long enough (seconds per task, from the kernel's earlier calls) to gain from threads."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.seconds_per_task: float | None = None
        self.calls = 0

    @property
    def stats(self):
        return self.dispatcher.stats

    def _parts(self, tasks: int) -> int:
        parts = min(_THREADS, tasks)
        if parts <= 1:
            return 1
        est = self.seconds_per_task
        if est is None:  # first calls: split when there are several tasks a thread
            return parts if tasks >= 4 * parts else 1
        return parts if est * tasks >= PARALLEL_MIN_SECONDS else 1

    def run(self, tasks: int, *args) -> list:
        """The kernel over tasks [0, tasks): the results of the parts, in task order."""
        parts = self._parts(tasks)
        start = time.perf_counter()
        if parts == 1:
            results = [self.dispatcher(*args, 0, tasks)]
        else:
            ends = [tasks * k // parts for k in range(parts + 1)]
            pool = _pool()
            futures = [
                pool.submit(self.dispatcher, *args, ends[k], ends[k + 1]) for k in range(1, parts)
            ]
            results = [self.dispatcher(*args, ends[0], ends[1])]
            results += [f.result() for f in futures]
        # the first call may compile or load the kernel: not a measure of its speed
        if self.calls:
            per_task = (time.perf_counter() - start) * parts / tasks
            old = self.seconds_per_task
            self.seconds_per_task = per_task if old is None else 0.5 * (old + per_task)
        self.calls += 1
        return results


def instance(skeleton, tag: str, **bound) -> _Kernel:
    """The skeleton compiled with its globals bound (scalar functions -> numba forms); ``tag``
    names the binding uniquely and stably (it keys the disk cache, with the family's source
    hash)."""
    key = (skeleton.__name__, tag)
    with _LOCK:
        kernel = _INSTANCES.get(key)
        if kernel is None:
            g = dict(skeleton.__globals__)
            for name, value in bound.items():
                g[name] = value.numba() if hasattr(value, "numba") else value
            fn = types.FunctionType(skeleton.__code__, g, skeleton.__name__)
            fn.__qualname__ = f"{skeleton.__name__}__{bind.safe(tag)}"
            fn.__module__ = skeleton.__module__
            kernel = _INSTANCES[key] = _Kernel(bind.njit(fn))
        return kernel


def set_threads(n: int) -> None:
    """Threads the kernels may use (torch.get_num_threads()), at most MAX_THREADS."""
    global _THREADS
    _THREADS = max(1, min(int(n), MAX_THREADS))


def rows_per_chunk(NB: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(NB, 1))


def empty_partials(M: int, NB: int, NP: int) -> np.ndarray:
    rows = rows_per_chunk(NB)
    chunks = max(1, -(-M // rows))
    return np.zeros((chunks, NP, NB), dtype=np.float64)


# -- launchers (numpy arrays in and out) ---------------------------------------------------------


def _tiles(n: int) -> int:
    """Tasks of an elementwise kernel over n elements: TILE_ELEMENTS a task."""
    return -(-n // TILE_ELEMENTS)


def _tag(sf, what: str) -> str:
    return f"{sf.__module__}.{sf.__name__}.{sf.tag or ''}.{bind.code_hash(sf)}.{what}"


def run_map(sf, x: np.ndarray, P: np.ndarray, n_out: int = 1) -> np.ndarray:
    """sf(x[i], *P[i % NB]) for flat float32 or float64 ``x`` and float64 ``P`` of shape
    (NB, NP); (N,) or (n_out, N), of x's dtype."""
    NP = P.shape[1]
    if n_out == 1:
        out = np.empty(x.size, dtype=x.dtype)
        kernel = instance(map_values, _tag(sf, f"map{NP}"), FN=sf, NP=NP, LOAD=_widen)
    else:
        out = np.empty((n_out, x.size), dtype=x.dtype)
        kernel = instance(map_values_multi, _tag(sf, f"mapm{NP}.{n_out}"), FN=sf, NP=NP, NOUT=n_out)
    if x.size:
        kernel.run(_tiles(x.size), out, x, P)
    return out


def run_uniforms(sf, u: np.ndarray, P: np.ndarray, dtype) -> np.ndarray:
    """sf(v_i, *P[i % NB]) for float64 uniforms u in [0, 1), v_i = _uniform52(u_i), rounded
    to ``dtype``."""
    NP = P.shape[1]
    out = np.empty(u.size, dtype=dtype)
    if u.size:
        kernel = instance(map_values, _tag(sf, f"uniforms{NP}"), FN=sf, NP=NP, LOAD=_uniform52)
        kernel.run(_tiles(u.size), out, u, P)
    return out


def run_count_outside(inside_sf, x: np.ndarray, P: np.ndarray) -> int:
    """How many x[i] the support test ``inside_sf(x[i], *P[i % NB])`` rejects."""
    NP = P.shape[1]
    if not x.size:
        return 0
    kernel = instance(count_outside, _tag(inside_sf, f"outside{NP}"), FN=inside_sf, NP=NP)
    return int(sum(kernel.run(_tiles(x.size), x, P)))


def run_params(sf, P: np.ndarray, n_out: int) -> np.ndarray:
    """sf(*P[j]) -> (n_out, NB)."""
    NP = P.shape[1]
    out = np.empty((n_out, P.shape[0]), dtype=np.float64)
    if n_out == 1:
        kernel = instance(map_params_one, _tag(sf, f"params{NP}.1"), FN=sf, NP=NP)
    else:
        kernel = instance(map_params, _tag(sf, f"params{NP}.{n_out}"), FN=sf, NP=NP, NOUT=n_out)
    if P.shape[0]:
        kernel.run(P.shape[0], out, P)
    return out


def run_sample(sf, P: np.ndarray, n: int, seed: int, dtype=np.float64) -> np.ndarray:
    """sf(seed, i, *P[i % NB]) for i < n, rounded to ``dtype`` (float32 or float64)."""
    NP = P.shape[1]
    out = np.empty(n, dtype=dtype)
    if n:
        kernel = instance(sample, _tag(sf, f"sample{NP}"), FN=sf, NP=NP)
        kernel.run(_tiles(n), out, P, np.int64(seed))
    return out


def run_backward(
    grad_sf, inside_sf, x, g, P, need_value: bool, n_grads: int | None = None, light=False
):
    """(gvalue (N,) of x's dtype or None, float64 parameter gradients (n_grads, NB)) of
    Σ g * grad_sf(x, *P[j]); see ``backward``. P's first ``n_grads`` columns (default: all)
    are the family's parameters, the rest parameter terms of grad_sf."""
    NB, NP = P.shape
    NG = NP if n_grads is None else n_grads
    M = x.size // max(NB, 1)
    partials = empty_partials(M, NB, NG)
    gvalue = np.empty(x.size if need_value else 0, dtype=x.dtype)
    need_value = bool(need_value)
    skeleton = backward_light if light else backward
    tag = f"{_tag(grad_sf, f'backward{NP}.{NG}.{int(need_value)}')}.{_tag(inside_sf, '')}"
    kernel = instance(
        skeleton, tag, FN=grad_sf, INSIDE=inside_sf, NP=NP, NG=NG, NEED_VALUE=need_value
    )
    if x.size:
        kernel.run(partials.shape[0], gvalue, partials, x, g, P, rows_per_chunk(NB))
    # chunks are added in chunk order: the sum does not depend on the thread count
    grads = partials[0]
    if partials.shape[0] > 1:
        grads = grads.copy()
        for c in range(1, partials.shape[0]):
            grads += partials[c]
    return (gvalue if need_value else None), grads


MIXTURE_TASKS = 64  # (row chunk, column) tasks of the mixture backward, at least


def run_mixture_backward(fns, z, g, logw, P, needs):
    """(grad logits (NB, K) or None, [grad param (NB, K, D) or None]) of Σ g z, z held by the
    mixture's implicit map (``mixture_backward``). ``fns(name)``: the family's formula ``name``;
    z, g: float64 (M, NB, D); logw: (NB, K); P: (NB, K, D, NP); ``needs`` = (logits?,
    param_1?, ...). The row chunks depend on the shape alone: the sums do not depend on the
    thread count."""
    NB, K, D, NP = P.shape
    M = z.size // max(NB * D, 1)
    chunks = max(1, min(M, -(-MIXTURE_TASKS // max(NB, 1))))
    rows = max(1, -(-M // chunks))
    chunks = max(1, -(-M // rows))
    need_logits = bool(needs[0])
    need_params = np.array([bool(n) for n in needs[1:]], dtype=np.bool_)
    g_logits = np.zeros((chunks, NB, K))
    g_params = np.zeros((chunks if need_params.any() else 1, NP, NB, K, D))
    bound = {key: fns(name) for key, name in MIXTURE_FORMULAS.items()}
    tag = ".".join(_tag(sf, key) for key, sf in bound.items()) + f".mixture{NP}"
    kernel = instance(mixture_backward, tag, NP=NP, **bound)
    if M and NB and K:
        zf, gf = z.reshape(-1), g.reshape(-1)
        kernel.run(chunks * NB, g_logits, g_params, zf, gf, logw, P, need_logits, need_params, rows)
    # chunks are added in chunk order: the sum does not depend on the thread count
    out_logits = g_logits[0].copy() if need_logits else None
    out_params = g_params[0].copy()
    for c in range(1, chunks):
        if need_logits:
            out_logits += g_logits[c]
        if need_params.any():
            out_params += g_params[c]
    return out_logits, [out_params[i] if need_params[i] else None for i in range(NP)]
