"""numba's compiled kernels are cached on disk: a second process compiles nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import torch
from irtgen.distributions import Beta, Gamma
from irtgen.compilers import bind, cpu

a = torch.tensor([0.5, 3.0], requires_grad=True)
z = Gamma(a, torch.tensor(1.0)).rsample((100,))
(z.sum() + Beta(a, torch.tensor(2.0)).log_prob(torch.tensor(0.3)).sum()).backward()
assert torch.isfinite(a.grad).all()
compiled = [d for d in [*bind._COMPILED.values(), *cpu._INSTANCES.values()] if hasattr(d, "stats")]
misses = sum(sum(d.stats.cache_misses.values()) for d in compiled)
hits = sum(sum(d.stats.cache_hits.values()) for d in compiled)
print(misses, hits)
"""


def _run(cache_dir: Path) -> tuple[int, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["IRTGEN_CACHE_DIR"] = str(cache_dir)
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    misses, hits = out.stdout.split()
    return int(misses), int(hits)


def test_second_process_compiles_nothing(tmp_path):
    first = _run(tmp_path)
    assert first[0] > 0  # an empty cache: the kernels were compiled
    assert any((tmp_path / "numba").rglob("*.nbi"))
    misses, hits = _run(tmp_path)
    # the kernels called load from the cache (their callees are linked in and never compiled)
    assert misses == 0 and hits > 0
