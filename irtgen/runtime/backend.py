"""Which compiler's kernels run an op: numba's on CPU tensors, Triton's on CUDA tensors.

``IRTGEN_BACKEND=numba`` or ``=triton`` forces one; it is read at every call. Triton kernels on
CPU tensors need ``TRITON_INTERPRET=1`` (set before the first kernel launch). Both run the same
scalar source (irtgen.scalar).
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
