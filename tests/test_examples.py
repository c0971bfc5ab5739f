"""Smoke tests of the examples: each runs as a user would run it, with few steps."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ELBO_LINE = re.compile(r"^step\s+(\d+)\s+held-out ELBO\s+(\S+)\s+\(\s*([\d.]+) s\)$")


def test_vae_example_trains():
    steps, every = 60, 20
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "vae" / "train_vae.py"),
            "--steps",
            str(steps),
            "--eval-every",
            str(every),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    rows = [m.groups() for m in map(ELBO_LINE.match, lines) if m]
    assert [int(step) for step, _, _ in rows] == list(range(0, steps + 1, every)), result.stdout
    elbos = [float(elbo) for _, elbo, _ in rows]
    assert all(math.isfinite(e) for e in elbos), elbos
    assert elbos[-1] > elbos[0], elbos
    assert any(line.startswith("posterior mean E[z | x] vs the true latent t") for line in lines)
