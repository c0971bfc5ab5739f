"""The benchmark scripts, run as a user would, in subprocesses.

``benchmarks/run.py --quick`` on a subset of the cases (one per kind: an explicit family with a
compiled baseline, Logistic through torch's TransformedDistribution, a Gamma-like family with
torch's accuracy measured, the Dirichlet, a mixture with the jacobian baseline), both layouts,
accuracy included: it finishes, writes the raw results with the environment it ran in, and
prints the targets table last. The timings themselves are not checked.

``benchmarks/startup.py``: its child (one fresh process timing the first rsample + backward)
reports every phase; the parent rejects unknown families. The full cold/warm run compiles
every family in empty caches and is left to the benchmark runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CASES = {"Normal", "Logistic", "Gamma", "Dirichlet(K=8)", "Mixture(K=8) of Normal"}
MIXTURES = {"Mixture(K=8) of Normal"}
LAYOUTS = {"broadcast", "batch"}
IMPLS = {"irtgen", "torch", "compiled", "jacobian"}
STATUSES = {"ok", "err", "n/a", "skip", "none"}
TARGET_HEADER = [
    "case",
    "op",
    "layout",
    "thr",
    "irtgen ms",
    "torch ms",
    "irtgen/torch",
    "target",
    "met",
    "irtgen err",
    "torch err",
]


def _env():
    env = dict(os.environ)
    env.pop("IRTGEN_BACKEND", None)
    env.pop("TRITON_INTERPRET", None)  # CPU tensors: the numba kernels
    return env


def test_quick_run(tmp_path):
    cmd = [sys.executable, "benchmarks/run.py", "--quick", "--threads", "1"]
    cmd += ["--cases", *sorted(CASES), "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    (path,) = tmp_path.glob("cpu-*-quick.json")
    report = json.loads(path.read_text())
    for key in ("device", "versions", "git_commit", "settings", "results", "ratios", "targets"):
        assert key in report, key
    assert report["device"]["name"] and report["device"]["torch_threads"] == [1]
    assert set(report["versions"]) >= {"python", "torch", "triton", "numba", "irtgen"}
    assert report["settings"]["sizes"] == [1024]
    assert set(report["settings"]["layouts"]) == LAYOUTS

    results = report["results"]
    assert {r["case"] for r in results} == CASES
    assert {r["impl"] for r in results} == IMPLS
    assert {r["op"] for r in results} == {"rsample", "log_prob"}
    assert {r["status"] for r in results} <= STATUSES
    for case in CASES:
        layouts = {r["layout"] for r in results if r["case"] == case}
        assert layouts == ({"broadcast"} if case in MIXTURES else LAYOUTS), case
    by_key = {(r["case"], r["op"], r["layout"], r["impl"]): r for r in results}
    for r in results:
        if r["impl"] in ("irtgen", "torch") and r["op"] == "log_prob":
            assert r["status"] == "ok", r  # both have every log_prob
            assert len(r["times_s"]) == 1 and r["times_s"][0] > 0
        if r["status"] == "ok":
            assert r["threads"] == 1 and r["threads_after"] == 1, r
    batch = by_key[("Normal", "rsample", "batch", "irtgen")]
    assert batch["batch_shape"] == [32] and batch["sample_shape"] == [32]
    broadcast = by_key[("Normal", "rsample", "broadcast", "irtgen")]
    assert broadcast["batch_shape"] == [] and broadcast["sample_shape"] == [1024]
    assert by_key[("Logistic", "rsample", "broadcast", "torch")]["status"] == "ok"
    assert by_key[("Logistic", "rsample", "broadcast", "compiled")]["status"] == "none"
    assert by_key[("Mixture(K=8) of Normal", "rsample", "broadcast", "torch")]["status"] == "n/a"
    assert by_key[("Normal", "rsample", "broadcast", "jacobian")]["status"] == "none"

    # ratios are irtgen / baseline
    ratio = next(
        r
        for r in report["ratios"]
        if (r["case"], r["op"], r["layout"], r["baseline"])
        == ("Gamma", "log_prob", "batch", "torch")
    )
    irt, base = (by_key[("Gamma", "log_prob", "batch", i)]["time_s"] for i in ("irtgen", "torch"))
    assert abs(ratio["ratio"] - irt / base) <= 1e-12 * ratio["ratio"]

    targets = {(t["case"], t["op"], t["layout"]): t for t in report["targets"]}
    assert len(targets) == 2 * (2 * (len(CASES) - len(MIXTURES)) + len(MIXTURES))
    assert (
        targets[("Gamma", "rsample", "batch")]["must"],
        targets[("Gamma", "rsample", "batch")]["goal"],
    ) == (2.0, 1.0)
    assert targets[("Normal", "log_prob", "broadcast")]["must"] == 1.5
    mixture = targets[("Mixture(K=8) of Normal", "rsample", "broadcast")]
    assert mixture["baseline"] == "jacobian" and mixture["must"] == 1 / 20
    assert {t["met"] for t in targets.values()} <= {"goal", "must", "no", None}

    accuracy = report["accuracy"]
    assert accuracy["Normal"]["status"] == "ok" and accuracy["Normal"]["points"] >= 10
    assert accuracy["Normal"]["torch_gradient"] == "explicit"
    assert accuracy["Gamma"]["torch_gradient"] == "measured" and "torch_max" in accuracy["Gamma"]
    assert accuracy["Dirichlet(K=8)"]["status"] == "none"

    lines = proc.stdout.strip().split("\n\n")[-1].splitlines()
    assert lines[0].startswith("Targets"), proc.stdout[-2000:]
    assert [c.strip() for c in lines[1].split("  ") if c.strip()] == TARGET_HEADER
    rows = lines[3 : 3 + len(targets)]  # title, header, rule, one row per target, notes
    assert all(any(row.startswith(case) for case in CASES) for row in rows), rows
    assert lines[3 + len(targets)].startswith("Mixture rsample rows")


def test_startup_child():
    """One fresh process: import irtgen, first rsample((1000,)) + backward, timed by phase."""
    cmd = [sys.executable, "benchmarks/startup.py", "--child", "Normal", "--threads", "1"]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    phases = ("import_irtgen", "construct", "import_numba", "rsample", "backward")
    assert all(out[p] >= 0 for p in phases)
    assert abs(out["total"] - sum(out[p] for p in phases)) < 1e-6
    assert out["finite"] and out["second_call"] > 0 and out["source_hash"]


def test_startup_rejects_unknown_family():
    cmd = [sys.executable, "benchmarks/startup.py", "NoSuchFamily"]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown families" in proc.stderr
