"""Which backend runs an op: Triton kernels for CUDA tensors, generated torch code otherwise.

``IRTGEN_BACKEND=triton`` or ``=torch`` forces one; it is read at every call. Triton kernels on CPU
tensors need ``TRITON_INTERPRET=1`` (set before the first kernel launch).
"""

from __future__ import annotations

import os

import torch

BACKENDS = ("torch", "triton")


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def select_backend(device: torch.device) -> str:
    """ "triton" or "torch" for tensors on ``device``, honouring IRTGEN_BACKEND."""
    forced = os.environ.get("IRTGEN_BACKEND", "").strip().lower()
    if forced in ("", "auto"):
        return "triton" if device.type == "cuda" else "torch"
    if forced == "torch":
        return "torch"
    if forced == "triton":
        if device.type != "cuda" and not interpreting():
            raise RuntimeError(
                "IRTGEN_BACKEND=triton with tensors on the CPU needs TRITON_INTERPRET=1 "
                "(Triton's interpreter); set it before the first kernel launch"
            )
        return "triton"
    raise ValueError(f"IRTGEN_BACKEND must be 'torch', 'triton' or unset, got {forced!r}")
