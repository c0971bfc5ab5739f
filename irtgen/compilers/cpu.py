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

Reductions are deterministic: the backward sums rows in fixed chunks (``ROWS_PER_CHUNK`` depends
only on the shape), each chunk sequentially into its own partial sums, and the partials are then
added in chunk order. The result does not depend on the thread count.
"""

from __future__ import annotations

import threading
import types

import numba
import numpy as np
from numba.np.unsafe.ndarray import to_fixed_tuple

from irtgen.compilers import MIXTURE_FORMULAS, bind

prange = numba.prange

# numba's own thread pool, not OpenMP: with the omp layer, setting numba's thread count changed
# torch's (one OpenMP runtime), and idle OpenMP threads of two runtimes spun against each other.
# The workqueue pool runs one parallel kernel at a time, so launches are serialised (_RUN_LOCK).
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

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


def _tiles(n):
    """Number of tasks of an elementwise kernel over n elements: TILE_ELEMENTS a task."""
    return -(-n // TILE_ELEMENTS)


_tiles = bind.njit(_tiles)


def _uniform52(u):
    """(floor(2^52 u) + 1/2) 2^-52: a uniform u in [0, 1) (torch.rand's float64, a multiple of
    2^-53) turned into one strictly inside (0, 1), as irtgen.scalar.random's uniforms are."""
    return (np.floor(u * 4503599627370496.0) + 0.5) * 2.220446049250313e-16


_uniform52 = bind.njit(_uniform52)


def _widen(x):
    return np.float64(x)


_widen = bind.njit(_widen)


# Every elementwise skeleton below runs tiles of TILE_ELEMENTS consecutive elements in parallel
# and, inside a tile, tracks the column j = i mod NB by counting (no division per element). A
# broadcast parameter row (NB = 1) is read once per tile. Each skeleton calls FN at one place,
# so a large formula is compiled into it once; LLVM may still specialise the loop of a small
# one on NB = 1 and vectorize it.


def map_values(out, x, P):
    """out[i] = FN(LOAD(x[i]), *P[i % NB]); LOAD widens to float64 (``_widen``) or, for
    uniforms from torch.rand, is ``_uniform52`` (an icdf never sees 0 or 1)."""
    NB = P.shape[0]
    for t in prange(_tiles(x.size)):
        i0 = t * TILE_ELEMENTS
        j = i0 % NB
        p0 = to_fixed_tuple(P[0], NP)
        for i in range(i0, min(x.size, i0 + TILE_ELEMENTS)):
            p = p0 if NB == 1 else to_fixed_tuple(P[j], NP)
            out[i] = FN(LOAD(x[i]), *p)
            j = j + 1 if j + 1 < NB else 0


def count_outside(x, P):
    """Number of i with not FN(x[i], *P[i % NB]) (FN: a support test)."""
    NB = P.shape[0]
    n = 0
    for t in prange(_tiles(x.size)):
        i0 = t * TILE_ELEMENTS
        j = i0 % NB
        p0 = to_fixed_tuple(P[0], NP)
        for i in range(i0, min(x.size, i0 + TILE_ELEMENTS)):
            p = p0 if NB == 1 else to_fixed_tuple(P[j], NP)
            if not FN(np.float64(x[i]), *p):
                n += 1
            j = j + 1 if j + 1 < NB else 0
    return n


def map_values_multi(out, x, P):
    """out[k, i] = FN(x[i], *P[i % NB])[k] for k < NOUT."""
    NB = P.shape[0]
    for t in prange(_tiles(x.size)):
        i0 = t * TILE_ELEMENTS
        j = i0 % NB
        p0 = to_fixed_tuple(P[0], NP)
        for i in range(i0, min(x.size, i0 + TILE_ELEMENTS)):
            p = p0 if NB == 1 else to_fixed_tuple(P[j], NP)
            r = FN(np.float64(x[i]), *p)
            for k in range(NOUT):
                out[k, i] = r[k]
            j = j + 1 if j + 1 < NB else 0


def map_params(out, P):
    """out[k, j] = FN(*P[j])[k]: functions of the parameters alone (the support's ends, the
    parameter terms of a formula)."""
    for j in prange(P.shape[0]):
        r = FN(*to_fixed_tuple(P[j], NP))
        for k in range(NOUT):
            out[k, j] = r[k]


def map_params_one(out, P):
    """out[0, j] = FN(*P[j]) for a function of the parameters with one output."""
    for j in prange(P.shape[0]):
        out[0, j] = FN(*to_fixed_tuple(P[j], NP))


def sample(out, P, seed):
    """out[i] = FN(seed, i, *P[i % NB]): draws keyed by (seed, element index)."""
    NB = P.shape[0]
    for t in prange(_tiles(out.size)):
        i0 = t * TILE_ELEMENTS
        j = i0 % NB
        p0 = to_fixed_tuple(P[0], NP)
        for i in range(i0, min(out.size, i0 + TILE_ELEMENTS)):
            p = p0 if NB == 1 else to_fixed_tuple(P[j], NP)
            out[i] = FN(seed, i, *p)
            j = j + 1 if j + 1 < NB else 0


def backward(gvalue, partials, x, g, P, rows_per_chunk):
    """Fused backward: r = FN(x, θ, terms) = (d/dx, d/dθ_1, ..., d/dθ_NG); gvalue[i] = g r_0
    and partials[c, k, j] = Σ over the rows of chunk c of g r_(k+1) (in row order), zero outside
    the support (INSIDE(x, θ)). P's row j holds θ then the parameter terms of FN (if any). With
    one row (NB = 1) the sum runs in four interleaved accumulators (element i into lane i mod 4,
    the lanes then added as (l0 + l1) + (l2 + l3)): four independent chains of additions rather
    than one, in an order fixed by the shape alone."""
    NB = P.shape[0]
    M = x.size // NB
    for c in prange(partials.shape[0]):
        m0 = c * rows_per_chunk
        m1 = min(M, m0 + rows_per_chunk)
        p0 = to_fixed_tuple(P[0], NP)
        pin0 = to_fixed_tuple(P[0, 0:NG], NG)
        acc = np.zeros((NG, 4))
        j = 0
        for i in range(m0 * NB, m1 * NB):
            if NB == 1:
                p = p0
                pin = pin0
            else:
                p = to_fixed_tuple(P[j], NP)
                pin = to_fixed_tuple(P[j, 0:NG], NG)
            gi = np.float64(g[i])
            xi = np.float64(x[i])
            if gi != 0.0 and INSIDE(xi, *pin):
                r = FN(xi, *p)
                if NEED_VALUE:
                    gvalue[i] = gi * r[0]
                for k in range(NG):
                    if NB == 1:
                        acc[k, i & 3] += gi * r[k + 1]
                    else:
                        partials[c, k, j] += gi * r[k + 1]
            elif NEED_VALUE:
                gvalue[i] = 0.0
            j = j + 1 if j + 1 < NB else 0
        if NB == 1:
            for k in range(NG):
                partials[c, k, 0] = (acc[k, 0] + acc[k, 1]) + (acc[k, 2] + acc[k, 3])


def backward_light(gvalue, partials, x, g, P, rows_per_chunk):
    """``backward`` for small formulas (no special function): the same sums in the same
    order, with the loop of a broadcast row (NB = 1) written apart so that LLVM keeps it tight.
    FN is called at two places, which a large formula would make twice as slow to compile."""
    NB = P.shape[0]
    M = x.size // NB
    for c in prange(partials.shape[0]):
        m0 = c * rows_per_chunk
        m1 = min(M, m0 + rows_per_chunk)
        if NB == 1:
            p = to_fixed_tuple(P[0], NP)
            pin = to_fixed_tuple(P[0, 0:NG], NG)
            acc = np.zeros((NG, 4))
            for i in range(m0, m1):
                gi = np.float64(g[i])
                xi = np.float64(x[i])
                if gi == 0.0 or not INSIDE(xi, *pin):
                    if NEED_VALUE:
                        gvalue[i] = 0.0
                    continue
                r = FN(xi, *p)
                if NEED_VALUE:
                    gvalue[i] = gi * r[0]
                lane = i & 3
                for k in range(NG):
                    acc[k, lane] += gi * r[k + 1]
            for k in range(NG):
                partials[c, k, 0] = (acc[k, 0] + acc[k, 1]) + (acc[k, 2] + acc[k, 3])
        else:
            for m in range(m0, m1):
                for j in range(NB):
                    i = m * NB + j
                    gi = np.float64(g[i])
                    xi = np.float64(x[i])
                    if gi == 0.0 or not INSIDE(xi, *to_fixed_tuple(P[j, 0:NG], NG)):
                        if NEED_VALUE:
                            gvalue[i] = 0.0
                        continue
                    r = FN(xi, *to_fixed_tuple(P[j], NP))
                    if NEED_VALUE:
                        gvalue[i] = gi * r[0]
                    for k in range(NG):
                        partials[c, k, j] += gi * r[k + 1]


def mixture_backward(g_logits, g_params, z, g, logw, P, need_logits, needs, rows_per_chunk):
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
    chunks = g_logits.shape[0]
    any_need = False
    for i in range(NP):
        any_need = any_need or needs[i]
    for task in prange(chunks * NB):
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


# -- instances ---------------------------------------------------------------------------------

_INSTANCES: dict[tuple, object] = {}
_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()


class _Serialised:
    """A compiled kernel whose calls hold _RUN_LOCK (one parallel kernel at a time)."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    @property
    def stats(self):
        return self.dispatcher.stats

    def __call__(self, *args):
        with _RUN_LOCK:
            return self.dispatcher(*args)


def instance(skeleton, tag: str, **bound):
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
            kernel = _INSTANCES[key] = _Serialised(bind.njit(fn, parallel=True))
        return kernel


def set_threads(n: int) -> None:
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)


def rows_per_chunk(NB: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(NB, 1))


def empty_partials(M: int, NB: int, NP: int) -> np.ndarray:
    rows = rows_per_chunk(NB)
    chunks = max(1, -(-M // rows))
    return np.zeros((chunks, NP, NB), dtype=np.float64)


# -- launchers (numpy float64 arrays in and out) ------------------------------------------------


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
        kernel(out, x, P)
    return out


def run_uniforms(sf, u: np.ndarray, P: np.ndarray, dtype) -> np.ndarray:
    """sf(v_i, *P[i % NB]) for float64 uniforms u in [0, 1), v_i = _uniform52(u_i), rounded
    to ``dtype``."""
    NP = P.shape[1]
    out = np.empty(u.size, dtype=dtype)
    if u.size:
        kernel = instance(map_values, _tag(sf, f"uniforms{NP}"), FN=sf, NP=NP, LOAD=_uniform52)
        kernel(out, u, P)
    return out


def run_count_outside(inside_sf, x: np.ndarray, P: np.ndarray) -> int:
    """How many x[i] the support test ``inside_sf(x[i], *P[i % NB])`` rejects."""
    NP = P.shape[1]
    if not x.size:
        return 0
    kernel = instance(count_outside, _tag(inside_sf, f"outside{NP}"), FN=inside_sf, NP=NP)
    return int(kernel(x, P))


def run_params(sf, P: np.ndarray, n_out: int) -> np.ndarray:
    """sf(*P[j]) -> (n_out, NB)."""
    NP = P.shape[1]
    out = np.empty((n_out, P.shape[0]), dtype=np.float64)
    if n_out == 1:
        kernel = instance(map_params_one, _tag(sf, f"params{NP}.1"), FN=sf, NP=NP)
    else:
        kernel = instance(map_params, _tag(sf, f"params{NP}.{n_out}"), FN=sf, NP=NP, NOUT=n_out)
    if P.shape[0]:
        kernel(out, P)
    return out


def run_sample(sf, P: np.ndarray, n: int, seed: int, dtype=np.float64) -> np.ndarray:
    """sf(seed, i, *P[i % NB]) for i < n, rounded to ``dtype`` (float32 or float64)."""
    NP = P.shape[1]
    out = np.empty(n, dtype=dtype)
    if n:
        instance(sample, _tag(sf, f"sample{NP}"), FN=sf, NP=NP)(out, P, np.int64(seed))
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
        kernel(gvalue, partials, x, g, P, rows_per_chunk(NB))
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
        kernel(g_logits, g_params, zf, gf, logw, P, need_logits, need_params, rows)
    # chunks are added in chunk order: the sum does not depend on the thread count
    out_logits = g_logits[0].copy() if need_logits else None
    out_params = g_params[0].copy()
    for c in range(1, chunks):
        if need_logits:
            out_logits += g_logits[c]
        if need_params.any():
            out_params += g_params[c]
    return out_logits, [out_params[i] if need_params[i] else None for i in range(NP)]
