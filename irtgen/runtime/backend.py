"""Which compiler's kernels run an op: numba's on CPU tensors, Triton's on CUDA tensors.

``IRTGEN_BACKEND=numba`` or ``=triton`` forces one; it is read at every call. Triton kernels on
CPU tensors need ``TRITON_INTERPRET=1`` (set before the first kernel launch). Both run the same
scalar source (irtgen.scalar).

``IRTGEN_CPU_DRAWS`` (read at every draw) chooses where numba's kernels take the randomness of
families whose draw transforms one uniform or one normal: ``torch`` (the default) draws those
from torch's generator, as torch.distributions does, and the kernel applies the transform;
``philox`` keys every draw by (Philox seed, element index) as Triton's kernels do, so the same
seed gives the same draws on the CPU and on a GPU. Rejection samplers (Gamma, Beta, Student-t,
Dirichlet) and mixtures draw from the Philox stream either way.
"""

from __future__ import annotations

import os

import torch

BACKENDS = ("numba", "triton")


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def select_backend(device: torch.device) -> str:
    """ "triton" or "numba" for tensors on ``device``, honouring IRTGEN_BACKEND."""
    forced = os.environ.get("IRTGEN_BACKEND", "").strip().lower()
    if forced in ("", "auto"):
        return "triton" if device.type == "cuda" else "numba"
    if forced == "numba":
        if device.type != "cpu":
            raise RuntimeError("IRTGEN_BACKEND=numba runs on CPU tensors only")
        return "numba"
    if forced == "triton":
        if device.type != "cuda" and not interpreting():
            raise RuntimeError(
                "IRTGEN_BACKEND=triton with tensors on the CPU needs TRITON_INTERPRET=1 "
                "(Triton's interpreter); set it before the first kernel launch"
            )
        return "triton"
    raise ValueError(f"IRTGEN_BACKEND must be 'numba', 'triton' or unset, got {forced!r}")


CPU_DRAWS = ("torch", "philox")


def cpu_draws() -> str:
    """ "torch" or "philox": IRTGEN_CPU_DRAWS, default "torch"."""
    mode = os.environ.get("IRTGEN_CPU_DRAWS", "").strip().lower() or "torch"
    if mode not in CPU_DRAWS:
        raise ValueError(f"IRTGEN_CPU_DRAWS must be 'torch', 'philox' or unset, got {mode!r}")
    return mode
