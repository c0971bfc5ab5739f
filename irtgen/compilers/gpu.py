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

from irtgen.compilers import bind


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


def compile_kernel(kernel, signature: dict, constexprs: dict, arch: int = 90):
    """``triton.compile`` of a jit kernel for ``sm_<arch>`` (needs no GPU; not under the
    interpreter)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32))


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
    outside the support (INSIDE) and where g = 0."""
    cols = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cmask = cols < NB
    ps = ()
    for k in tl.static_range(len(p_ptrs)):
        p = tl.load(p_ptrs[k] + cols, mask=cmask, other=1.0)[None, :]
        if WIDE:
            p = p.to(tl.float64)
        ps = ps + (p,)
    accs = ()
    for _k in tl.static_range(len(p_ptrs)):
        accs = accs + (tl.zeros([BLOCK_M, BLOCK_B], dtype=tl.float64),)
    m0 = tl.program_id(1) * M_PER_SPLIT
    m1 = tl.minimum(m0 + M_PER_SPLIT, M)
    for start in range(m0, m1, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)
        mask = (rows < m1)[:, None] & cmask[None, :]
        idx = rows.to(tl.int64)[:, None] * NB + cols[None, :]
        x = tl.load(x_ptr + idx, mask=mask, other=1.0)
        if WIDE:
            x = x.to(tl.float64)
        g = tl.load(g_ptr + idx, mask=mask, other=0.0).to(tl.float64)
        r = emap(FN, x, *ps)
        ok = mask & (g != 0.0) & (emap(INSIDE, x, *ps) != 0)
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


def _block(n: int) -> int:
    if interpreting():  # the interpreter pays per program, not per element
        return max(16, min(triton.next_power_of_2(max(n, 1)), 1 << 16))
    return 512


def run_family_map(sf, x, params, wide: bool):
    """sf(x[i], *params[i % NB]) for flat contiguous ``x`` and NB-vectors ``params``."""
    import torch

    out = torch.empty_like(x)
    n = x.numel()
    if n:
        nb = max(params[0].numel(), 1)
        block = _block(n)
        family_map_kernel[(triton.cdiv(n, block),)](
            x, tuple(params), out, n, nb, FN=sf.triton(), WIDE=wide, BLOCK=block
        )
    return out


def run_family_sample(sf, params, n: int, seed: int, dtype, wide: bool):
    """sf(seed, i, *params[i % NB]) for i < n."""
    import torch

    out = torch.empty(n, dtype=dtype, device=params[0].device)
    if n:
        nb = max(params[0].numel(), 1)
        block = _block(n)
        family_sample_kernel[(triton.cdiv(n, block),)](
            tuple(params), out, n, nb, seed, FN=sf.triton(), WIDE=wide, BLOCK=block
        )
    return out


def run_family_backward(grad_sf, inside_sf, x, g, params, needs, wide: bool):
    """(value gradient or None, [parameter gradients (NB,) or None]) of Σ g grad_sf(x, θ)."""
    import torch

    nb = max(params[0].numel(), 1)
    M = x.numel() // nb
    # 512 elements a program (4 a thread) keeps the accumulators of every parameter in registers
    total = 1 << 12 if interpreting() else 512
    block_b = min(triton.next_power_of_2(nb), total)
    block_m = max(total // block_b, 1)
    col_blocks = triton.cdiv(nb, block_b)
    programs = (
        2
        if interpreting()
        else 4 * torch.cuda.get_device_properties(x.device).multi_processor_count
    )
    splits = max(1, min(programs // col_blocks, triton.cdiv(max(M, 1), block_m)))
    m_per_split = triton.cdiv(triton.cdiv(max(M, 1), splits), block_m) * block_m
    splits = max(1, triton.cdiv(max(M, 1), m_per_split))
    need_value, need_params = needs[0], tuple(bool(n) for n in needs[1:])
    gvalue = torch.empty_like(x, dtype=torch.float64) if need_value else x
    partials = tuple(
        torch.zeros((splits, nb), dtype=torch.float64, device=x.device) for _ in params
    )
    family_backward_kernel[(col_blocks, splits)](
        x, g, tuple(params), gvalue, partials, M, nb, m_per_split,
        FN=grad_sf.triton(), INSIDE=inside_sf.triton(), NEED_VALUE=bool(need_value),
        NEEDS=need_params, WIDE=wide, BLOCK_M=block_m, BLOCK_B=block_b,
    )  # fmt: skip
    grads = [p.sum(dim=0) if n else None for p, n in zip(partials, need_params, strict=True)]
    return (gvalue if need_value else None), grads


def family_kernel_resources(module, n_params: int, dtype: str, wide: bool, arch: int = 90):
    """{kernel: {'registers', 'stack'}} of the family kernels specialised on a scalar-formula
    module (its implicit_grad, log_prob_grad, log_prob and sample), compiled for sm_<arch>."""
    ptr = "*" + dtype
    ps = (ptr,) * n_params
    out = {}
    sig = {"x_ptr": ptr, "p_ptrs": ps, "out_ptr": ptr, "N": "i64", "NB": "i64"}
    for name in ("log_prob", "cdf", "icdf"):
        cx = {"FN": getattr(module, name).triton(), "WIDE": wide, "BLOCK": 512}
        c = compile_kernel(family_map_kernel, {**sig, **dict.fromkeys(cx, "constexpr")}, cx, arch)
        out[f"{name} map"] = resource_usage(c)
    sig = {"p_ptrs": ps, "out_ptr": ptr, "N": "i64", "NB": "i64", "seed": "i64"}
    cx = {"FN": module.sample.triton(), "WIDE": wide, "BLOCK": 512}
    c = compile_kernel(family_sample_kernel, {**sig, **dict.fromkeys(cx, "constexpr")}, cx, arch)
    out["sample"] = resource_usage(c)
    for name in ("implicit_grad", "log_prob_grad"):
        sig = {"x_ptr": ptr, "g_ptr": ptr, "p_ptrs": ps, "gvalue_ptr": "*fp64"}
        sig.update({"partial_ptrs": ("*fp64",) * n_params, "M": "i64", "NB": "i64"})
        sig["M_PER_SPLIT"] = "i64"
        cx = {"FN": getattr(module, name).triton(), "INSIDE": module.in_support.triton()}
        cx.update({"NEED_VALUE": True, "NEEDS": (True,) * n_params, "WIDE": wide})
        cx.update({"BLOCK_M": 4, "BLOCK_B": 128})  # run_family_backward's tile for NB >= 128
        c = compile_kernel(
            family_backward_kernel, {**sig, **dict.fromkeys(cx, "constexpr")}, cx, arch
        )
        out[f"{name.replace('_grad', '')} backward"] = resource_usage(c)
    return out
