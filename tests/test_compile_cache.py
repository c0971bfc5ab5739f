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


MODULE = """
from irtgen.scalar import scalar, tl


@scalar
def helper(x):
    return x + {shift}


@scalar
def formula(x, a):
    return a * helper(x)
"""

EDIT = """
import sys, numpy as np
sys.path.insert(0, {folder!r})
import cachedmod
from irtgen.compilers import cpu
print(float(cpu.run_map(cachedmod.formula, np.array([1.0]), np.array([[2.0]]))[0]))
"""


def test_kernels_see_an_edit_of_a_function_they_inline(tmp_path):
    """A kernel is cached under a tag of its formula's code and its module file: editing a
    helper that the formula calls (a generated module regenerated with another in_support, say)
    recompiles the kernel in the next process instead of loading one that inlined the old
    helper."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["IRTGEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(ROOT)
    folder = tmp_path / "mod"
    folder.mkdir()
    values = []
    for shift in ("1.0", "10.0"):
        (folder / "cachedmod.py").write_text(MODULE.format(shift=shift))
        out = subprocess.run(
            [sys.executable, "-c", EDIT.format(folder=str(folder))],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        values.append(float(out.stdout.split()[-1]))
    assert values == [4.0, 22.0]


LIGHT = """
import sys, torch
import irtgen.distributions as D
c = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
(D.Dirichlet(c).rsample((10,))[:, 0].sum()
 + D.MixtureSameFamily(torch.distributions.Categorical(logits=c), D.Normal(c, 1.0)).rsample((10,)).sum()
 + D.Gamma(c, 1.0).rsample((10,)).sum() + D.Gamma(c, 1.0).log_prob(torch.tensor(0.5)).sum()
).backward()
assert torch.isfinite(c.grad).all()
print(sorted(m for m in ("torch._dynamo", "sympy", "triton") if m in sys.modules))
"""


def test_eager_calls_import_neither_dynamo_nor_sympy_nor_triton(tmp_path):
    """Eager rsample, log_prob and backward (univariate families, Dirichlet, mixtures) run
    without a custom op, whose first call imports torch._dynamo (1.6 s), and without
    torch.broadcast_shapes, whose first call imports SymPy: a warm start stays under a
    second."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["IRTGEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", LIGHT], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "[]", out.stdout
