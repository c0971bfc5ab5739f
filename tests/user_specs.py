"""Loading a user spec written by a test, as a user's project would: ``irtgen.load`` of a spec
file, with its own kernel cache folder."""

from __future__ import annotations

import pytest

import irtgen


def load_spec_text(tmp_path_factory, name: str, text: str):
    """Generator for a module-scoped fixture: the spec ``text`` written to ``<tmp>/<name>.py``
    and loaded, with IRTGEN_CACHE_DIR in the same folder while the fixture lives."""
    root = tmp_path_factory.mktemp(name)
    spec = root / f"{name}.py"
    spec.write_text(text)
    patch = pytest.MonkeyPatch()
    patch.setenv("IRTGEN_CACHE_DIR", str(root / "cache"))
    try:
        yield irtgen.load(spec)
    finally:
        patch.undo()
