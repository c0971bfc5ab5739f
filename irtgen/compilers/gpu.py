"""Triton side of the one source: ``emap`` (``tl.map_elementwise`` on scalar functions), the
interpreter's substitute for it, and compilation of kernels for a GPU target without a GPU.

Kernels call scalar functions only through ``emap(FN, *blocks)``: compiled, that is
``tl.map_elementwise``, so each element runs its own branches and stops its own loops. Triton's
interpreter cannot run ``map_elementwise``; under ``TRITON_INTERPRET=1`` ``emap`` applies the
numba-compiled form of the same scalar function to each element on the host and hands the
result back as an interpreter block (float results in the inputs' float dtype, as Triton's
promotion gives; bool results as int1).

This module imports Triton; nothing imports it before the first kernel launch.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import triton
import triton.language as tl
from triton.language import core

from irtgen.compilers import MIXTURE_FORMULAS, bind


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@core.builtin
def _emap_compiled(fn, *args, _semantic=None, _generator=None):
    return tl.map_elementwise(
        core._unwrap_if_constexpr(fn), *args, _semantic=_semantic, _generator=_generator
    )


def _emap_interpreted(fn, *args):
    from triton.runtime.interpreter import TensorHandle

    fn = getattr(fn, "value", fn)
    sf = bind.origin(getattr(fn, "fn", fn))
    f = sf.numba()
    datas = [a.handle.data if hasattr(a, "handle") else np.asarray(a) for a in args]
    arrs = np.broadcast_arrays(*datas)
    shape = arrs[0].shape
    columns = [a.ravel().tolist() for a in arrs]
    results = [f(*vals) for vals in zip(*columns, strict=True)]
    single = not isinstance(results[0], tuple) if results else True
    if single:
        results = [(r,) for r in results]
    floats = [a.dtype for a in args if hasattr(a, "dtype") and a.dtype.is_floating()]
    fdt = tl.float64 if any(d == tl.float64 for d in floats) or not floats else tl.float32
    outs = []
    for k in range(len(results[0]) if results else 1):
        col = np.array([r[k] for r in results]).reshape(shape)
        if col.dtype == np.bool_:
            dt, npdt = tl.int1, np.bool_
        else:
            dt, npdt = fdt, (np.float64 if fdt == tl.float64 else np.float32)
        block = tl.tensor(TensorHandle(col.astype(npdt), dt), tl.block_type(dt, list(shape)))
        outs.append(block)
    return outs[0] if single else tuple(outs)


emap = _emap_interpreted if interpreting() else _emap_compiled


# -- a generic map kernel: up to 4 inputs, up to 4 outputs ------------------------------------


@triton.jit
def map_kernel(in_ptrs, out_ptrs, N, FN: tl.constexpr, NOUT: tl.constexpr, BLOCK: tl.constexpr):
    """out_k[i] = FN(in_0[i], ...)[k] over N elements (flat, contiguous, one dtype)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    xs = ()
    for i in tl.static_range(len(in_ptrs)):
        xs = xs + (tl.load(in_ptrs[i] + offs, mask=mask, other=1.0),)
    r = emap(FN, *xs)
    if NOUT == 1:
        tl.store(out_ptrs[0] + offs, r, mask=mask)
    else:
        for k in tl.static_range(NOUT):
            tl.store(out_ptrs[k] + offs, r[k], mask=mask)


def map_scalar(sf, inputs, n_out: int = 1):
    """Apply scalar function ``sf`` elementwise to equal-shaped contiguous tensors with Triton
    (on CUDA, or in the interpreter); returns one tensor or a tuple."""
    import torch

    x0 = inputs[0]
    flat = [t.contiguous().reshape(-1) for t in inputs]
    outs = [torch.empty_like(flat[0]) for _ in range(n_out)]
    n = flat[0].numel()
    if n:
        block = min(max(16, triton.next_power_of_2(n)), 1 << 16) if interpreting() else 512
        grid = (triton.cdiv(n, block),)
        map_kernel[grid](tuple(flat), tuple(outs), n, FN=sf.triton(), NOUT=n_out, BLOCK=block)
    outs = [o.reshape(x0.shape) for o in outs]
    return outs[0] if n_out == 1 else tuple(outs)


# -- compilation for a GPU target, and the resources a kernel uses ----------------------------


def compile_kernel(kernel, signature: dict, constexprs: dict, arch: int = 90, **options):
    """``triton.compile`` of a jit kernel for ``sm_<arch>`` (needs no GPU; not under the
    interpreter); ``options``: launch options such as ``num_warps``."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options or None)


def compile_scalar(sf, n_in: int, n_out: int = 1, dtype: str = "fp32", arch: int = 90):
    """``sf`` inside ``map_kernel`` compiled for ``sm_<arch>``; returns the compiled kernel."""
    ptrs = ("*" + dtype,)
    signature = {"in_ptrs": ptrs * n_in, "out_ptrs": ptrs * n_out, "N": "i64"}
    signature.update({"FN": "constexpr", "NOUT": "constexpr", "BLOCK": "constexpr"})
    constexprs = {"FN": sf.triton(), "NOUT": n_out, "BLOCK": 256}
    return compile_kernel(map_kernel, signature, constexprs, arch)


def resource_usage(compiled) -> dict:
    """{'registers': n, 'stack': bytes} of a compiled kernel, read from its cubin with the
    cuobjdump that Triton ships."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        text = subprocess.run(
            [str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True, check=True
        ).stdout
    out = {"registers": None, "stack": None}
    for token in text.replace(",", " ").split():
        if token.startswith("REG:"):
            out["registers"] = int(token[4:])
        elif token.startswith("STACK:"):
            out["stack"] = int(token[6:])
    return out


# -- family kernels: written once, specialised on a family's scalar formulas ------------------
# Layout (irtgen.runtime.launch): values flat M * NB, each parameter an NB-vector; element i
# uses parameter element i % NB. WIDE: compute in float64 (families with special functions).


@triton.jit
def _load_params(p_ptrs, j, mask, WIDE: tl.constexpr):
    ps = ()
    for k in tl.static_range(len(p_ptrs)):
        p = tl.load(p_ptrs[k] + j, mask=mask, other=1.0)
        if WIDE:
            p = p.to(tl.float64)
        ps = ps + (p,)
    return ps


@triton.jit
def family_map_kernel(
    x_ptr, p_ptrs, out_ptr, N, NB, FN: tl.constexpr, WIDE: tl.constexpr, BLOCK: tl.constexpr
):
    """out[i] = FN(x[i], *params[i % NB])."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    x = tl.load(x_ptr + offs, mask=mask, other=0.5)
    if WIDE:
        x = x.to(tl.float64)
    ps = _load_params(p_ptrs, offs % NB, mask, WIDE)
    tl.store(out_ptr + offs, emap(FN, x, *ps), mask=mask)


@triton.jit
def family_sample_kernel(
    p_ptrs, out_ptr, N, NB, seed, FN: tl.constexpr, WIDE: tl.constexpr, BLOCK: tl.constexpr
):
    """out[i] = FN(seed, i, *params[i % NB]): draws keyed by (seed, element index)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    ps = _load_params(p_ptrs, offs % NB, mask, WIDE)
    seeds = offs * 0 + seed
    tl.store(out_ptr + offs, emap(FN, seeds, offs, *ps), mask=mask)


@triton.jit
def family_backward_kernel(
    x_ptr,
    g_ptr,
    p_ptrs,
    gvalue_ptr,
    partial_ptrs,
    M,
    NB,
    M_PER_SPLIT,
    FN: tl.constexpr,
    INSIDE: tl.constexpr,
    NEED_VALUE: tl.constexpr,
    NEEDS: tl.constexpr,
    WIDE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    """r = FN(x, θ) = (d/dx, d/dθ_1, ...): gvalue = g r_0 per element; g r_(k+1) summed over
    this program's rows into one partial per column (program (column block, row split)); zero
    outside the support (INSIDE) and where g = 0.

    WIDE: the parameters are loaded again for every row tile (under the tile's mask, so the
    compiler cannot hoist them): hoisted, the parameter-only parts of a special-function
    formula (log B(df/2, 1/2), ...) stay live across the whole row loop (StudentT's implicit
    backward: 197 registers instead of 162)."""
    cols = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cmask = cols < NB
    ps = ()
    if not WIDE:
        for k in tl.static_range(len(p_ptrs)):
            ps = ps + (tl.load(p_ptrs[k] + cols, mask=cmask, other=1.0)[None, :],)
    accs = ()
    for _k in tl.static_range(len(p_ptrs)):
        accs = accs + (tl.zeros([BLOCK_M, BLOCK_B], dtype=tl.float64),)
    m0 = tl.program_id(1) * M_PER_SPLIT
    m1 = tl.minimum(m0 + M_PER_SPLIT, M)
    for start in range(m0, m1, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        mask = (rows < m1)[:, None] & cmask[None, :]
        if WIDE:
            qs = _load_params(p_ptrs, cols[None, :], mask, WIDE)
        else:
            qs = ps
        idx = rows.to(tl.int64)[:, None] * NB + cols[None, :]
        x = tl.load(x_ptr + idx, mask=mask, other=1.0)
        if WIDE:
            x = x.to(tl.float64)
        g = tl.load(g_ptr + idx, mask=mask, other=0.0).to(tl.float64)
        r = emap(FN, x, *qs)
        ok = mask & (g != 0.0) & (emap(INSIDE, x, *qs) != 0)
        if NEED_VALUE:
            tl.store(gvalue_ptr + idx, tl.where(ok, g * r[0].to(tl.float64), 0.0), mask=mask)
        new = ()
        for k in tl.static_range(len(p_ptrs)):
            new = new + (accs[k] + tl.where(ok, g * r[k + 1].to(tl.float64), 0.0),)
        accs = new
    out = tl.program_id(1) * NB + cols
    for k in tl.static_range(len(p_ptrs)):
        if NEEDS[k]:
            tl.store(partial_ptrs[k] + out, tl.sum(accs[k], axis=0), mask=cmask)


# -- launchers --------------------------------------------------------------------------------


def _block(n: int, wide: bool = False, fp64: bool = False) -> int:
    """Elements a program. On a GPU (4 warps, 128 threads a program): one element a thread for
    float64 computations (the special-function (wide) formulas, or float64 data), whose
    per-element code would otherwise be interleaved for several elements and spill; four for
    float32 ones."""
    if interpreting():  # the interpreter pays per program, not per element
        return max(16, min(triton.next_power_of_2(max(n, 1)), 1 << 16))
    return 128 if wide or fp64 else 512


# registers a thread may use in a float64 computation (tools/kernel_resources.py's target)
MAX_REGISTERS_FP64 = 168


def _family_options(wide: bool, fp64: bool) -> dict:
    """Launch options of the family kernels for a computation in float64 (wide, or float64
    data) or float32; the interpreter takes none. A float64 computation gets its register
    budget as maxnreg: told nothing, ptxas keeps some at 64 registers and spills (Beta's
    log_prob backward: 64 registers and 8 to 112 bytes of stack, 70 and none with the budget).
    Float32 ones get none: there the budget only lets ptxas take more registers (Normal's sample:
    70 -> 96), which costs occupancy."""
    if interpreting() or not (wide or fp64):
        return {}
    return {"maxnreg": MAX_REGISTERS_FP64}


def run_family_map(sf, x, params, wide: bool):
    """sf(x[i], *params[i % NB]) for flat contiguous ``x`` and NB-vectors ``params``."""
    import torch

    out = torch.empty_like(x)
    n = x.numel()
    if n:
        nb = max(params[0].numel(), 1)
        fp64 = x.dtype == torch.float64
        block = _block(n, wide, fp64)
        family_map_kernel[(triton.cdiv(n, block),)](
            x, tuple(params), out, n, nb, FN=sf.triton(), WIDE=wide, BLOCK=block,
            **_family_options(wide, fp64),
        )  # fmt: skip
    return out


def run_family_sample(sf, params, n: int, seed: int, dtype, wide: bool):
    """sf(seed, i, *params[i % NB]) for i < n."""
    import torch

    out = torch.empty(n, dtype=dtype, device=params[0].device)
    if n:
        nb = max(params[0].numel(), 1)
        fp64 = dtype == torch.float64
        block = _block(n, wide, fp64)
        family_sample_kernel[(triton.cdiv(n, block),)](
            tuple(params), out, n, nb, seed, FN=sf.triton(), WIDE=wide, BLOCK=block,
            **_family_options(wide, fp64),
        )  # fmt: skip
    return out


def _row_splits(M: int, block_m: int, col_blocks: int, device) -> tuple[int, int]:
    """(splits, rows a split) for a reducing kernel over M rows: about four programs per
    multiprocessor in all (two in the interpreter), each split a whole number of row tiles;
    deterministic in M, the tile and the device."""
    import torch

    if interpreting():
        programs = 2
    else:
        programs = 4 * torch.cuda.get_device_properties(device).multi_processor_count
    rows = max(M, 1)
    splits = max(1, min(programs // col_blocks, triton.cdiv(rows, block_m)))
    m_per_split = triton.cdiv(triton.cdiv(rows, splits), block_m) * block_m
    return max(1, triton.cdiv(rows, m_per_split)), m_per_split


def run_family_backward(grad_sf, inside_sf, x, g, params, needs, wide: bool):
    """(value gradient or None, [parameter gradients (NB,) or None]) of Σ g grad_sf(x, θ)."""
    import torch

    nb = max(params[0].numel(), 1)
    M = x.numel() // nb
    fp64 = x.dtype == torch.float64
    total = 1 << 12 if interpreting() else _block(0, wide, fp64)
    block_b = min(triton.next_power_of_2(nb), total)
    block_m = max(total // block_b, 1)
    col_blocks = triton.cdiv(nb, block_b)
    splits, m_per_split = _row_splits(M, block_m, col_blocks, x.device)
    need_value, need_params = needs[0], tuple(bool(n) for n in needs[1:])
    gvalue = torch.empty_like(x, dtype=torch.float64) if need_value else x
    partials = tuple(
        torch.zeros((splits, nb), dtype=torch.float64, device=x.device) for _ in params
    )
    family_backward_kernel[(col_blocks, splits)](
        x, g, tuple(params), gvalue, partials, M, nb, m_per_split,
        FN=grad_sf.triton(), INSIDE=inside_sf.triton(), NEED_VALUE=bool(need_value),
        NEEDS=need_params, WIDE=wide, BLOCK_M=block_m, BLOCK_B=block_b,
        **_family_options(wide, fp64),
    )  # fmt: skip
    grads = [p.sum(dim=0) if n else None for p, n in zip(partials, need_params, strict=True)]
    return (gvalue if need_value else None), grads


def family_kernel_resources(family, dtype: str, arch: int = 90) -> dict:
    """{kernel: {'registers', 'stack'}} of the family kernels specialised on ``family``'s
    formulas (irtgen.runtime.family.Family), compiled for sm_<arch> with the tiles and options
    the launchers use on a GPU."""
    m = family.module
    ptr = "*" + dtype
    ps = (ptr,) * len(family.param_names)
    fp64 = dtype == "fp64"
    out = {}

    def compiled(kernel, sig, cx, wide):
        sig = {**sig, **dict.fromkeys(cx, "constexpr")}
        return resource_usage(compile_kernel(kernel, sig, cx, arch, **_family_options(wide, fp64)))

    sig = {"x_ptr": ptr, "p_ptrs": ps, "out_ptr": ptr, "N": "i64", "NB": "i64"}
    for name in ("log_prob", "cdf", "sf", "icdf"):
        wide = family.wide(name)
        cx = {"FN": getattr(m, name).triton(), "WIDE": wide, "BLOCK": _block(0, wide, fp64)}
        out[f"{name} map"] = compiled(family_map_kernel, sig, cx, wide)
    sig = {"p_ptrs": ps, "out_ptr": ptr, "N": "i64", "NB": "i64", "seed": "i64"}
    wide = family.wide("sample")
    cx = {"FN": m.sample.triton(), "WIDE": wide, "BLOCK": _block(0, wide, fp64)}
    out["sample"] = compiled(family_sample_kernel, sig, cx, wide)
    for name in ("implicit", "log_prob", "cdf"):
        wide = family.wide(name)
        sig = {"x_ptr": ptr, "g_ptr": ptr, "p_ptrs": ps, "gvalue_ptr": "*fp64"}
        sig.update({"partial_ptrs": ("*fp64",) * len(ps), "M": "i64", "NB": "i64"})
        sig["M_PER_SPLIT"] = "i64"
        cx = {"FN": getattr(m, f"{name}_grad").triton(), "INSIDE": m.in_support.triton()}
        cx.update({"NEED_VALUE": True, "NEEDS": (True,) * len(ps), "WIDE": wide})
        # run_family_backward's tile for NB >= 128
        cx.update({"BLOCK_M": _block(0, wide, fp64) // 128, "BLOCK_B": 128})
        out[f"{name} backward"] = compiled(family_backward_kernel, sig, cx, wide)
    return out


# -- mixture kernels (irtgen.composite.mixture): written once, specialised on a family -------
# K components of one family per batch column, each a product over D dimensions (D = 1: a
# univariate mixture). Layouts: values (M, NB, D), cumulative weights and log-weights (NB, K),
# parameters (NB, K, D), all contiguous.


@triton.jit
def mixture_sample_kernel(
    cum_ptr,
    p_ptrs,
    out_ptr,
    N,
    NB,
    K,
    D,
    seed_pick,
    seed,
    PICK: tl.constexpr,
    SAMPLE: tl.constexpr,
    WIDE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Mixture draws: component k = #{j < K - 1 : u > cum_j} for u = PICK(seed_pick, draw index)
    (float64), then dimension d of the draw from component k: SAMPLE(seed, draw index * D + d,
    *params_kd), the element index the family's own sampler would use for a draw of shape
    (N, D)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    b = offs % NB
    u = emap(PICK, offs * 0 + seed_pick, offs)
    k = tl.zeros([BLOCK], dtype=tl.int64)
    for i in range(K - 1):
        c = tl.load(cum_ptr + b * K + i, mask=mask, other=1.0)
        k += (u > c).to(tl.int64)
    for d in range(D):
        ps = _load_params(p_ptrs, (b * K + k) * D + d, mask, WIDE)
        sub = offs * D + d
        tl.store(out_ptr + sub, emap(SAMPLE, sub * 0 + seed, sub, *ps), mask=mask)


@triton.jit
def _load_component_row(p_ptrs, j, kmask):
    """The parameters of the K components at flat indices ``j`` ([BLOCK_K]), as [1, BLOCK_K]."""
    ps = ()
    for i in tl.static_range(len(p_ptrs)):
        ps = ps + (tl.load(p_ptrs[i] + j, mask=kmask, other=1.0)[None, :],)
    return ps


@triton.jit
def mixture_backward_kernel(
    z_ptr,
    g_ptr,
    logw_ptr,
    p_ptrs,
    dlogits_ptr,
    dp_ptrs,
    M,
    NB,
    K,
    D,
    M_PER_SPLIT,
    LOG_PROB: tl.constexpr,
    CDF: tl.constexpr,
    SF: tl.constexpr,
    LOG_PROB_GRAD: tl.constexpr,
    IMPLICIT_GRAD: tl.constexpr,
    INSIDE: tl.constexpr,
    NEED_LOGITS: tl.constexpr,
    NEEDS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """The whole mixture backward for one batch column and a range of samples.

    Distributional transform u_d = sum_k r_kd F_kd(z_d), r_kd = softmax_k(A_kd),
    A_kd = log w_k + sum_(j<d) log q_kj(z_j). With E_kd = r_kd (F_kd - Fbar_d)/p_d,
    rho_kd = r_kd q_kd/p_d and W_kd = sum_(d'>d) mu_d' E_kd', back substitution over
    d = D-1, ..., 0 gives mu_d = g_d - sum_k s_kd W_kd (s = ∂log q/∂z) and

        grad logit_k += -mu_d E_kd,
        grad θ_kd    += mu_d rho_kd dz_kd/dθ - W_kd ∂log q_kd/∂θ.

    A_kd comes from the total over d minus the later terms (float64, with a count of zero
    densities); mixture sums run in float64. A term whose weight (mu rho or W) is 0 contributes
    exactly 0, as in the family's own backward. Parameter gradients are accumulated per (k, d)
    in this program's own slice of the (split, NB, K, D) partials (zeroed by the host): no
    atomics.
    """
    b = tl.program_id(0).to(tl.int64)
    ks = tl.arange(0, BLOCK_K)
    kmask = ks < K
    logw = tl.load(logw_ptr + b * K + ks, mask=kmask, other=-float("inf")).to(tl.float64)
    acc_logits = tl.zeros([BLOCK_K], dtype=tl.float64)
    m0 = tl.program_id(1) * M_PER_SPLIT
    m1 = tl.minimum(m0 + M_PER_SPLIT, M)
    for start in range(m0, m1, BLOCK_M):
        rows = (start + tl.arange(0, BLOCK_M)).to(tl.int64)
        rmask = rows < m1
        mask = rmask[:, None] & kmask[None, :]
        # pass 1: sum_d log q_kd over the finite terms, and how many are zero densities
        tot = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float64)
        nzero = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.int32)
        for d in range(D):
            ps = _load_component_row(p_ptrs, (b * K + ks) * D + d, kmask)
            z = tl.load(z_ptr + (rows * NB + b) * D + d, mask=rmask, other=1.0)[:, None]
            lq = emap(LOG_PROB, z, *ps).to(tl.float64)
            zero = lq == -float("inf")
            tot += tl.where(zero, 0.0, lq)
            nzero += zero.to(tl.int32)
        # pass 2: d = D-1, ..., 0
        W = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.float64)
        for dd in range(D):
            d = D - 1 - dd
            ps = _load_component_row(p_ptrs, (b * K + ks) * D + d, kmask)
            at = (rows * NB + b) * D + d
            z = tl.load(z_ptr + at, mask=rmask, other=1.0)[:, None]
            g = tl.load(g_ptr + at, mask=rmask, other=0.0).to(tl.float64)
            # the derivative formulas first, while few tile values are live: the heavy ones of
            # the special-function families then run without spilling the tile to local memory
            gi = emap(IMPLICIT_GRAD, z, *ps)
            gl = emap(LOG_PROB_GRAD, z, *ps)
            inside = (emap(INSIDE, z, *ps) != 0) & mask
            lq = tl.where(inside, emap(LOG_PROB, z, *ps).to(tl.float64), -float("inf"))
            F = emap(CDF, z, *ps).to(tl.float64)
            S = emap(SF, z, *ps).to(tl.float64)
            zero = lq == -float("inf")
            tot -= tl.where(zero, 0.0, lq)
            nzero -= zero.to(tl.int32)
            A = tl.where((nzero > 0) | ~mask, -float("inf"), tot + logw[None, :])
            L = A + lq
            amax = tl.max(A, axis=1)[:, None]
            lse_a = amax + tl.log(tl.sum(tl.exp(A - amax), axis=1))[:, None]
            lmax = tl.max(L, axis=1)[:, None]
            lse_l = lmax + tl.log(tl.sum(tl.exp(L - lmax), axis=1))[:, None]
            r = tl.where(mask, tl.exp(A - lse_a), 0.0)
            rho = tl.where(inside, tl.exp(L - lse_l), 0.0)
            r_over_p = tl.where(mask, tl.exp(A - lse_l), 0.0)
            Fbar = tl.sum(r * F, axis=1)[:, None]
            Sbar = tl.sum(r * S, axis=1)[:, None]
            # F_kd - Fbar_d from the survival functions where Fbar_d > 1/2
            E = r_over_p * tl.where(Fbar <= 0.5, F - Fbar, Sbar - S)
            sW = tl.where(inside & (W != 0.0), gl[0].to(tl.float64) * W, 0.0)
            mu = tl.where(rmask, g - tl.sum(sW, axis=1), 0.0)[:, None]
            out = ((tl.program_id(1) * NB + b) * K + ks) * D + d
            if len(p_ptrs) > 0:
                weight = mu * rho
                for i in tl.static_range(len(p_ptrs)):
                    if NEEDS[i]:
                        t = tl.where(weight != 0.0, weight * gi[i + 1].to(tl.float64), 0.0)
                        t -= tl.where(W != 0.0, W * gl[i + 1].to(tl.float64), 0.0)
                        t = tl.where(inside, t, 0.0)
                        prev = tl.load(dp_ptrs[i] + out, mask=kmask, other=0.0)
                        tl.store(dp_ptrs[i] + out, prev + tl.sum(t, axis=0), mask=kmask)
            W += mu * E
            if NEED_LOGITS:
                acc_logits += tl.sum(-mu * E, axis=0)
    if NEED_LOGITS:
        tl.store(dlogits_ptr + (tl.program_id(1) * NB + b) * K + ks, acc_logits, mask=kmask)


def run_mixture_sample(pick_sf, sample_sf, cum, params, N: int, NB, K, D, seeds, dtype, wide):
    """Mixture draws (N, D) in ``dtype``: ``cum`` float64 (NB, K) cumulative weights, ``params``
    each (NB, K, D) contiguous; ``seeds`` = (seed of the pick, seed of the draws)."""
    import torch

    out = torch.empty((N, D), dtype=dtype, device=cum.device)
    if N:
        block = _block(N, wide)
        mixture_sample_kernel[(triton.cdiv(N, block),)](
            cum, tuple(params), out, N, NB, K, D, seeds[0], seeds[1],
            PICK=pick_sf.triton(), SAMPLE=sample_sf.triton(), WIDE=wide, BLOCK=block,
        )  # fmt: skip
    return out


def _mixture_tile(wide: bool) -> int:
    """Tile elements (BLOCK_M x BLOCK_K) of one program of the mixture backward. On a GPU (4
    warps): two elements a thread, one for the special-function (wide) families, whose
    per-element code would otherwise be interleaved for several elements and spill."""
    if interpreting():  # the interpreter pays per program, not per element
        return 1 << 14
    return 128 if wide else 256


def mixture_backward_fits(K: int, wide: bool) -> bool:
    """Whether ``mixture_backward_kernel`` takes K components in one tile."""
    return triton.next_power_of_2(K) <= _mixture_tile(wide)


def _mixture_formulas(fns) -> dict:
    """The backward kernel's constexpr scalar functions from an object with the family's
    formulas as attributes (a generated module) or a callable ``fns(name)``."""
    get = fns if callable(fns) else lambda name: getattr(fns, name)
    return {key: get(name).triton() for key, name in MIXTURE_FORMULAS.items()}


def run_mixture_backward(fns, z, g, logw, params, M, NB, K, D, needs, wide: bool):
    """(grad logits (NB, K) float64 or None, [grad param (NB, K, D) float64 or None]) of
    Σ g z, z held by the mixture's implicit map. ``fns``: the family's formulas (a generated
    module, or ``Family.fn``); ``z``, ``g``: (M, NB, D);
    ``logw``: float64 (NB, K) log weights; ``params``: each (NB, K, D); all contiguous; ``wide``:
    a special-function family (z and the parameters in float64)."""
    import torch

    tile = _mixture_tile(wide)
    block_k = triton.next_power_of_2(K)
    block_m = max(1, min(triton.next_power_of_2(max(M, 1)), tile // block_k))
    splits, m_per_split = _row_splits(M, block_m, NB, z.device)
    need_logits, need_params = bool(needs[0]), tuple(bool(n) for n in needs[1:])
    f64, dev = torch.float64, z.device
    g_logits = torch.zeros((splits, NB, K), dtype=f64, device=dev)
    g_params = tuple(
        torch.zeros((splits, NB, K, D), dtype=f64, device=dev) if need else g_logits
        for need in need_params
    )
    if M > 0:
        mixture_backward_kernel[(NB, splits)](
            z, g, logw, tuple(params), g_logits, g_params, M, NB, K, D, m_per_split,
            **_mixture_formulas(fns), NEED_LOGITS=need_logits, NEEDS=need_params,
            BLOCK_M=block_m, BLOCK_K=block_k,
        )  # fmt: skip
    out_logits = g_logits.sum(dim=0) if need_logits else None
    out_params = [
        p.sum(dim=0) if need else None for p, need in zip(g_params, need_params, strict=True)
    ]
    return out_logits, out_params


def mixture_kernel_resources(family, dtype: str, K: int = 8, arch: int = 90) -> dict:
    """{kernel: {'registers', 'stack'}} of the mixture kernels specialised on ``family``'s
    formulas (irtgen.runtime.family.Family), compiled for sm_<arch> with the tiles the launchers
    use on a GPU (the backward's for K components)."""
    from irtgen.scalar import random as rnd

    m = family.module
    ptr = "*" + dtype
    ps = (ptr,) * len(family.param_names)
    out = {}
    sig = {"cum_ptr": "*fp64", "p_ptrs": ps, "out_ptr": ptr, "N": "i64", "NB": "i64"}
    sig.update({"K": "i64", "D": "i64", "seed_pick": "i64", "seed": "i64"})
    wide = family.wide("sample")
    cx = {"PICK": rnd.uniform.triton(), "SAMPLE": m.sample.triton(), "WIDE": wide}
    cx["BLOCK"] = _block(0, wide)
    c = compile_kernel(mixture_sample_kernel, {**sig, **dict.fromkeys(cx, "constexpr")}, cx, arch)
    out["mixture sample"] = resource_usage(c)
    if family.wide_gradients:  # run_mixture_backward computes these families in float64
        ptr = "*fp64"
        ps = (ptr,) * len(family.param_names)
    sig = {"z_ptr": ptr, "g_ptr": ptr, "logw_ptr": "*fp64", "p_ptrs": ps}
    sig.update({"dlogits_ptr": "*fp64", "dp_ptrs": ("*fp64",) * len(ps)})
    sig.update(dict.fromkeys(("M", "NB", "K", "D", "M_PER_SPLIT"), "i64"))
    cx = _mixture_formulas(m)
    block_k = triton.next_power_of_2(K)
    cx.update({"NEED_LOGITS": True, "NEEDS": (True,) * len(ps)})
    cx["BLOCK_M"] = max(1, _mixture_tile(family.wide_gradients) // block_k)
    cx["BLOCK_K"] = block_k
    c = compile_kernel(mixture_backward_kernel, {**sig, **dict.fromkeys(cx, "constexpr")}, cx, arch)
    out["mixture backward"] = resource_usage(c)
    return out
