"""Shared helpers of the scalar-function tests: evaluate a scalar function's numba form on
arrays, run its Triton form per element in the interpreter, and compile scalar functions for
sm_90 (in a subprocess, without the interpreter) to read their registers and stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
import triton
import triton.language as tl

ROOT = Path(__file__).resolve().parents[2]

# what one map_kernel instance may use: registers per thread, stack bytes
MAX_REGISTERS = {"fp32": 128, "fp64": 168}
SINCOS_STACK = 40  # libdevice sin/cos keep their Payne-Hanek reduction table on the stack


def numba_map(sf, *columns, n_out: int = 1):
    """sf's numba form applied elementwise (float64 columns, broadcast); arrays out."""
    f = sf.numba()
    cols = np.broadcast_arrays(*[np.asarray(c, dtype=np.float64) for c in columns])
    results = [f(*vals) for vals in zip(*(c.ravel().tolist() for c in cols), strict=True)]
    if n_out == 1:
        return np.array(results, dtype=np.float64).reshape(cols[0].shape)
    return tuple(
        np.array([r[k] for r in results], dtype=np.float64).reshape(cols[0].shape)
        for k in range(n_out)
    )


@triton.jit
def _per_element_kernel(in_ptrs, out_ptrs, FN: tl.constexpr, NOUT: tl.constexpr):
    """FN's Triton form on the 0-d values of element program_id: the interpreter then runs its
    real if/else and while per element, in the inputs' dtype (tl.map_elementwise, and so
    irtgen.compilers.gpu.map_scalar, it replaces by the numba form)."""
    i = tl.program_id(0)
    xs = ()
    for k in tl.static_range(len(in_ptrs)):
        xs = xs + (tl.load(in_ptrs[k] + i),)
    r = FN(*xs)
    if NOUT == 1:
        tl.store(out_ptrs[0] + i, r)
    else:
        for k in tl.static_range(NOUT):
            tl.store(out_ptrs[k] + i, r[k])


def triton_per_element(sf, *columns, dtype=torch.float64, n_out: int = 1):
    """sf's Triton form (bound to triton.language) applied per element in the interpreter to
    columns (broadcast, converted to dtype); tensors out."""
    from irtgen.compilers import gpu

    assert gpu.interpreting()
    cols = torch.broadcast_tensors(*[torch.as_tensor(c, dtype=dtype) for c in columns])
    flat = tuple(c.reshape(-1).contiguous() for c in cols)
    outs = tuple(torch.empty_like(flat[0]) for _ in range(n_out))
    if flat[0].numel():
        _per_element_kernel[(flat[0].numel(),)](flat, outs, FN=sf.triton(), NOUT=n_out)
    outs = [o.reshape(cols[0].shape) for o in outs]
    return outs[0] if n_out == 1 else tuple(outs)


_COMPILE = textwrap.dedent(
    """
    import importlib, json, sys
    from irtgen.compilers import gpu

    out = {}
    for module, name, n_in, n_out, block in json.loads(sys.argv[1]):
        sf = getattr(importlib.import_module(module), name)
        for dtype in ("fp32", "fp64"):
            if block is None:
                compiled = gpu.compile_scalar(sf, n_in, n_out, dtype)
            else:  # compile_scalar with another BLOCK
                ptrs = ("*" + dtype,)
                signature = {"in_ptrs": ptrs * n_in, "out_ptrs": ptrs * n_out, "N": "i64"}
                signature.update({"FN": "constexpr", "NOUT": "constexpr", "BLOCK": "constexpr"})
                constexprs = {"FN": sf.triton(), "NOUT": n_out, "BLOCK": block}
                compiled = gpu.compile_kernel(gpu.map_kernel, signature, constexprs)
            out[f"{name} {dtype}"] = gpu.resource_usage(compiled)
    print(json.dumps(out))
    """
)


def compile_resources(specs, tmp_path) -> dict[str, dict]:
    """{"name dtype": {"registers": n, "stack": bytes}} for (module, name, n_in, n_out[, block])
    specs, each compiled inside gpu.map_kernel for sm_90 in fp32 and fp64: with
    gpu.compile_scalar (BLOCK 256 on 4 warps, two elements per thread), or with the given BLOCK
    (128: one element per thread)."""
    specs = [tuple(s) + (None,) * (5 - len(s)) for s in specs]
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", _COMPILE, json.dumps(specs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_resources(usage: dict[str, dict], stack_ok: set[str] = frozenset()) -> list[str]:
    """Messages for every entry over the register limit or with a stack (names in stack_ok
    may use SINCOS_STACK bytes)."""
    bad = []
    for key, u in usage.items():
        name, dtype = key.split()
        stack = SINCOS_STACK if name in stack_ok else 0
        if u["registers"] > MAX_REGISTERS[dtype] or u["stack"] > stack:
            bad.append(f"{key}: {u}")
    return bad
