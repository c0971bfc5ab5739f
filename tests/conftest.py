"""Test configuration: Triton kernels run in the interpreter on this CPU-only machine.

TRITON_INTERPRET must be set before the first kernel is jitted; irtgen jits lazily, so setting it
here (before any test runs) is enough. The ``backend`` fixture runs a test on the numba kernels
and on the Triton kernels (both compile the same scalar source).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import pytest  # noqa: E402


@pytest.fixture(params=["numba", "triton"])
def backend(request, monkeypatch):
    """Run the test once per backend (IRTGEN_BACKEND is read at every call)."""
    monkeypatch.setenv("IRTGEN_BACKEND", request.param)
    return request.param
