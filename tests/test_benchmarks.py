"""The benchmark script, run as a user would (``benchmarks/run.py --quick``) in a subprocess.

Checks that it finishes, writes the raw results with the environment it ran in, covers every case
and implementation, and prints the ratio table last. The timings themselves are not checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "Normal",
    "Gamma",
    "Beta",
    "StudentT",
    "Dirichlet(K=8)",
    "Mixture(K=8) of Normal",
    "Mixture(K=8) of Independent Normal(D=16)",
}
IMPLS = {"irtgen", "torch", "compiled", "jacobian"}
STATUSES = {"ok", "err", "n/a", "skip", "none"}


def test_quick_run(tmp_path):
    env = dict(os.environ)
    env.pop("IRTGEN_BACKEND", None)
    env.pop("TRITON_INTERPRET", None)  # the CPU runs the generated torch code
    proc = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--threads", "1", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    (path,) = tmp_path.glob("cpu-*-quick.json")
    report = json.loads(path.read_text())
    for key in ("device", "versions", "git_commit", "settings", "results", "ratios"):
        assert key in report, key
    assert report["device"]["name"] and report["device"]["torch_threads"] == 1
    assert set(report["versions"]) >= {"python", "torch", "triton", "irtgen"}
    assert report["settings"]["sizes"] == [1024]

    results = report["results"]
    assert {r["case"] for r in results} == CASES
    assert {r["impl"] for r in results} == IMPLS
    assert {r["op"] for r in results} == {"rsample", "log_prob"}
    assert {r["status"] for r in results} <= STATUSES
    by_key = {(r["case"], r["op"], r["impl"]): r for r in results}
    for case in CASES:  # irtgen and torch.distributions both have every log_prob
        for impl in ("irtgen", "torch"):
            rec = by_key[(case, "log_prob", impl)]
            assert rec["status"] == "ok", rec
            assert len(rec["times_s"]) == 1 and rec["times_s"][0] > 0
    assert by_key[("Mixture(K=8) of Normal", "rsample", "torch")]["status"] == "n/a"
    assert by_key[("Normal", "rsample", "jacobian")]["status"] == "none"
    assert report["ratios"], "no row where irtgen and a baseline both ran"

    blocks = [b for b in proc.stdout.strip().split("\n\n") if b.strip()]
    last = blocks[-1].splitlines()
    assert last[0].startswith("Ratios"), proc.stdout[-2000:]
    assert last[1].split() == ["case", "op", "size", "torch", "compiled", "jacobian"]
    assert len(last) == 3 + len(CASES) * 2  # title, header, rule, one row per case and op
