"""CPU side of the one source: numba kernels written once, specialised on scalar functions.

Each skeleton below is an ordinary Python function over flat float64 arrays that calls the
globals ``FN`` (and ``INSIDE``, the family's support test) with the number of parameters ``NP``
and of outputs ``NOUT`` as constants. ``instance(skeleton, **globals)`` binds those globals to
numba-compiled scalar functions and compiles one parallel kernel per binding, cached on disk
(irtgen.compilers.bind.njit). Layout (irtgen.runtime.launch): values flat ``M * NB``,
parameters ``(NB, NP)`` (row j holds the parameters of batch column j), element i uses row
``i % NB``.

Every scalar function runs in float64: the launchers hand float64 arrays in and round the results
to the caller's dtype once.

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

from irtgen.compilers import bind

prange = numba.prange

# bound per instance
FN = None
INSIDE = None
NP = 0
NOUT = 1
CHUNK_ELEMENTS = 1 << 14  # elements per reduction chunk (of whole rows)


# -- skeletons ---------------------------------------------------------------------------------


def map_values(out, x, P):
    """out[i] = FN(x[i], *P[i % NB])."""
    NB = P.shape[0]
    for i in prange(x.size):
        out[i] = FN(x[i], *to_fixed_tuple(P[i % NB], NP))


def map_values_multi(out, x, P):
    """out[k, i] = FN(x[i], *P[i % NB])[k] for k < NOUT."""
    NB = P.shape[0]
    for i in prange(x.size):
        r = FN(x[i], *to_fixed_tuple(P[i % NB], NP))
        for k in range(NOUT):
            out[k, i] = r[k]


def map_params(out, P):
    """out[k, j] = FN(*P[j])[k]: functions of the parameters alone (the support's ends)."""
    for j in prange(P.shape[0]):
        r = FN(*to_fixed_tuple(P[j], NP))
        for k in range(NOUT):
            out[k, j] = r[k]


def sample(out, P, seed):
    """out[i] = FN(seed, i, *P[i % NB]): draws keyed by (seed, element index)."""
    NB = P.shape[0]
    for i in prange(out.size):
        out[i] = FN(seed, i, *to_fixed_tuple(P[i % NB], NP))


def backward(gvalue, partials, x, g, P, need_value, rows_per_chunk):
    """Fused backward: r = FN(x, θ) = (d/dx, d/dθ_1, ...); gvalue[i] = g r_0 and
    partials[c, k, j] = Σ over the rows of chunk c of g r_(k+1), zero outside the support
    (INSIDE)."""
    NB = P.shape[0]
    M = x.size // NB
    for c in prange(partials.shape[0]):
        m0 = c * rows_per_chunk
        m1 = min(M, m0 + rows_per_chunk)
        for m in range(m0, m1):
            for j in range(NB):
                i = m * NB + j
                p = to_fixed_tuple(P[j], NP)
                gi = g[i]
                if gi == 0.0 or not INSIDE(x[i], *p):
                    if need_value:
                        gvalue[i] = 0.0
                    continue
                r = FN(x[i], *p)
                if need_value:
                    gvalue[i] = gi * r[0]
                for k in range(NP):
                    partials[c, k, j] += gi * r[k + 1]


# -- instances ---------------------------------------------------------------------------------

_INSTANCES: dict[tuple, object] = {}
_LOCK = threading.Lock()


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
            kernel = _INSTANCES[key] = bind.njit(fn, parallel=True)
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
    """sf(x[i], *P[i % NB]) for flat float64 ``x`` and ``P`` of shape (NB, NP); (N,) or
    (n_out, N)."""
    NP = P.shape[1]
    if n_out == 1:
        out = np.empty(x.size, dtype=np.float64)
        kernel = instance(map_values, _tag(sf, f"map{NP}"), FN=sf, NP=NP)
    else:
        out = np.empty((n_out, x.size), dtype=np.float64)
        kernel = instance(map_values_multi, _tag(sf, f"mapm{NP}.{n_out}"), FN=sf, NP=NP, NOUT=n_out)
    if x.size:
        kernel(out, x, P)
    return out


def run_params(sf, P: np.ndarray, n_out: int) -> np.ndarray:
    """sf(*P[j]) -> (n_out, NB)."""
    NP = P.shape[1]
    out = np.empty((n_out, P.shape[0]), dtype=np.float64)
    kernel = instance(map_params, _tag(sf, f"params{NP}.{n_out}"), FN=sf, NP=NP, NOUT=n_out)
    if P.shape[0]:
        kernel(out, P)
    return out


def run_sample(sf, P: np.ndarray, n: int, seed: int) -> np.ndarray:
    """sf(seed, i, *P[i % NB]) for i < n."""
    NP = P.shape[1]
    out = np.empty(n, dtype=np.float64)
    if n:
        instance(sample, _tag(sf, f"sample{NP}"), FN=sf, NP=NP)(out, P, np.int64(seed))
    return out


def run_backward(grad_sf, inside_sf, x, g, P, need_value: bool):
    """(gvalue (N,) or None, parameter gradients (NP, NB)) of Σ g * grad_sf(x, θ); see
    ``backward``."""
    NB, NP = P.shape
    M = x.size // max(NB, 1)
    partials = empty_partials(M, NB, NP)
    gvalue = np.empty(x.size if need_value else 0, dtype=np.float64)
    tag = f"{_tag(grad_sf, f'backward{NP}')}.{_tag(inside_sf, '')}"
    kernel = instance(backward, tag, FN=grad_sf, INSIDE=inside_sf, NP=NP)
    if x.size:
        kernel(gvalue, partials, x, g, P, bool(need_value), rows_per_chunk(NB))
    # chunks are added in chunk order: the sum does not depend on the thread count
    grads = partials[0].copy()
    for c in range(1, partials.shape[0]):
        grads += partials[c]
    return (gvalue if need_value else None), grads
