"""Every family kernel, specialised on every built-in family's formulas and on user families,
compiles for sm_90 in float32 and float64 on this CPU-only machine, within the register and
stack targets (tools/kernel_resources.py). Runs in a subprocess: compiling needs Triton without
the interpreter, which the rest of the suite uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.families.test_user_families import SPEC

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from tools.kernel_resources import families, rows

    fams = families() + families(spec=sys.argv[2])
    print(json.dumps([list(r) for r in rows(fams)]))
    """
)


@pytest.mark.slow
def test_every_kernel_compiles_for_sm90_within_targets(tmp_path):
    spec = tmp_path / "user.py"
    spec.write_text(SPEC)
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "IRTGEN_BACKEND")}
    env["IRTGEN_CACHE_DIR"] = str(tmp_path / "cache")
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT), str(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = json.loads(proc.stdout.strip().splitlines()[-1])
    names = {row[0] for row in table}
    assert {"Normal", "Gamma", "Beta", "StudentT", "Pareto", "TwoSidedExponential"} <= names
    assert len(names) == 15 + 5  # the built-ins and the five families of the user spec
    kernels = {(row[0], row[1], row[2]) for row in table}
    assert len(kernels) == 20 * 8 * 2  # 4 maps, sample, 3 backwards; fp32 and fp64
    over = [row for row in table if not row[5]]
    assert not over, f"kernels over the register or stack target: {over}"
