"""Test configuration: Triton kernels run in the interpreter on this CPU-only machine.

TRITON_INTERPRET must be set before the first kernel is jitted; irtgen jits lazily, so setting it
here (before any test runs) is enough. The ``backend`` fixture runs a test on the numba kernels
and on the Triton kernels (both compile the same scalar source).
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

from datetime import timedelta  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# tests/test_properties.py: a few examples per family in CI; --hypothesis-profile=thorough for
# a deeper local run. The deadline guards against a hang; the first example of a family also
# compiles its kernels (seconds).
settings.register_profile("ci", max_examples=6, deadline=timedelta(seconds=120), derandomize=True)
settings.register_profile("thorough", max_examples=300, deadline=timedelta(seconds=120))


def pytest_configure(config):
    # after hypothesis's own plugin: keep the profile it loaded from --hypothesis-profile
    settings.load_profile(config.getoption("hypothesis_profile", None) or "ci")


@pytest.fixture(params=["numba", "triton"])
def backend(request, monkeypatch):
    """Run the test once per backend (IRTGEN_BACKEND is read at every call)."""
    monkeypatch.setenv("IRTGEN_BACKEND", request.param)
    return request.param
