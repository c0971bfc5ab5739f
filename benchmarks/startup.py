"""Cold and warm start of irtgen's CPU kernels: the first ``rsample((1000,))`` + backward of each
built-in family, in a fresh process.

Usage (from the repository root)::

    python benchmarks/startup.py                  # every built-in family (compiles them all)
    python benchmarks/startup.py Normal Gamma     # these families only
    python benchmarks/startup.py --threads 1 --warm-runs 3 --out /tmp/startup

For each family, two kinds of fresh subprocess (``python benchmarks/startup.py --child FAMILY``),
both with ``IRTGEN_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` pointing to a new temporary folder of
that family's own:

* **cold**: the folder is empty, so numba compiles every kernel the calls need (irtgen's bound
  scalar functions and kernels, which cache under ``$IRTGEN_CACHE_DIR/numba``, and numba's
  helpers in irtgen.compilers.numba_tl, which cache under ``NUMBA_CACHE_DIR`` instead of
  irtgen/compilers/__pycache__): what a user sees on the first use after installing;
* **warm** (``--warm-runs`` processes, default 1; the table shows the median): the same folder,
  filled by the cold run, so the kernels are loaded from disk. Target: ≤ 1 s per family.

What is timed, in the child, from just after ``import torch`` (``time.perf_counter``):
``import irtgen.distributions``, building the parameters (scalar tensors with requires_grad)
and the distribution, ``import numba`` (which the first rsample would do anyway; timed apart to
show its share), ``rsample((1000,))`` and ``torch.autograd.grad(z.sum(), params)`` — ``total``
is the sum. ``import torch`` itself is timed separately (``import_torch``), and the
parent records the whole subprocess's wall time (``process``: interpreter start, imports,
timed section, exit). The child also times a second rsample + backward (``second_call``): the
steady state, for comparison. ``IRTGEN_BACKEND`` and ``TRITON_INTERPRET`` are removed from the
children's environment (CPU tensors: the numba kernels). Each child also reports torch's thread
count after its calls (``torch_threads_after``: irtgen's first kernel has been seen to change it)
and irtgen's source hash, the key of the numba cache folder: a warm run whose hash differs from
the cold run's (irtgen's sources edited in between) compiled again and is flagged ``stale``.

Output: a table, and JSON (every run's numbers, cache sizes, device, versions, git commit) in
``--out`` (default benchmarks/results/startup-cpu-<date>.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARM_TARGET_S = 1.0
DRAWS = 1000

# family -> (parameter values: numbers or lists); the broadcast points of benchmarks/run.py
FAMILIES: dict[str, tuple] = {
    "Normal": (0.3, 1.2),
    "Exponential": (1.5,),
    "Laplace": (0.3, 1.2),
    "Logistic": (0.3, 1.2),
    "Gumbel": (0.3, 1.2),
    "Cauchy": (0.3, 1.2),
    "Weibull": (1.2, 1.7),
    "HalfNormal": (1.2,),
    "LogNormal": (0.3, 1.2),
    "Kumaraswamy": (2.0, 3.0),
    "Gamma": (2.5, 1.5),
    "Chi2": (3.0,),
    "InverseGamma": (3.0, 2.0),
    "Beta": (2.0, 3.0),
    "StudentT": (4.0, 0.3, 1.2),
    "Dirichlet": ([0.5, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0],),
    # univariate mixture of 8 Normals: (logits, loc, scale)
    "MixtureSameFamily(Normal)": (
        [0.1, -0.4, 0.3, 0.0, 0.9, -1.2, 0.5, 0.2],
        [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0],
        [0.6, 0.8, 1.0, 1.2, 0.7, 0.9, 1.1, 1.3],
    ),
}


# --- the child: one fresh process, one family --------------------------------------------------


def child(family: str, threads: int | None) -> dict:
    """Times the first rsample + backward of ``family`` in this (fresh) process."""
    started = time.perf_counter()
    import torch

    out = {"import_torch": time.perf_counter() - started}
    if threads:
        torch.set_num_threads(threads)
    times = {}
    t0 = time.perf_counter()
    import irtgen.distributions as D

    t1 = time.perf_counter()
    params = [torch.tensor(v, requires_grad=True) for v in FAMILIES[family]]

    def make():
        if family == "MixtureSameFamily(Normal)":
            logits, loc, scale = params
            categorical = torch.distributions.Categorical(logits=logits)
            return D.MixtureSameFamily(categorical, D.Normal(loc, scale))
        return getattr(D, family)(*params)

    dist = make()
    t2 = time.perf_counter()
    import numba  # noqa: F401 — the first rsample would import it: timed on its own here

    t3 = time.perf_counter()
    z = dist.rsample((DRAWS,))
    t4 = time.perf_counter()
    grads = torch.autograd.grad(z.sum(), params)
    t5 = time.perf_counter()
    times.update(
        import_irtgen=t1 - t0,
        construct=t2 - t1,
        import_numba=t3 - t2,
        rsample=t4 - t3,
        backward=t5 - t4,
        total=t5 - t0,
    )
    t6 = time.perf_counter()
    torch.autograd.grad(make().rsample((DRAWS,)).sum(), params)
    times["second_call"] = time.perf_counter() - t6
    out.update(times)
    out["finite"] = bool(torch.isfinite(z).all()) and all(
        bool(torch.isfinite(g).all()) for g in grads
    )
    out["torch_threads_after"] = torch.get_num_threads()
    from irtgen.compilers.bind import source_hash

    out["source_hash"] = source_hash()  # the numba cache folder's key
    return out


# --- the parent ----------------------------------------------------------------------------------


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run_child(family: str, cache: Path, threads: int | None, timeout: float) -> dict:
    env = dict(os.environ)
    env.pop("IRTGEN_BACKEND", None)
    env.pop("TRITON_INTERPRET", None)
    env["IRTGEN_CACHE_DIR"] = str(cache)
    env["NUMBA_CACHE_DIR"] = str(cache / "numba-default")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", family]
    if threads:
        cmd += ["--threads", str(threads)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "message": f"no result in {timeout:g} s"}
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return {"status": "err", "message": tail[0], "returncode": proc.returncode}
    return {"status": "ok", "process": wall, **json.loads(lines[-1])}


def measure_family(family: str, threads, warm_runs: int, timeout: float, keep: bool) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="irtgen-startup-"))
    try:
        cold = run_child(family, cache, threads, timeout)
        cache_bytes = _folder_bytes(cache)
        warm = [run_child(family, cache, threads, timeout) for _ in range(warm_runs)]
    finally:
        if not keep:
            shutil.rmtree(cache, ignore_errors=True)
    rec = {"family": family, "cold": cold, "warm": warm, "cache_bytes": cache_bytes}
    for w in warm:  # irtgen's sources changed between the runs: the warm run compiled again
        if w["status"] == "ok" and cold["status"] == "ok":
            w["stale"] = w["source_hash"] != cold["source_hash"]
    ok = [w["total"] for w in warm if w["status"] == "ok"]
    if ok:
        rec["warm_total_median"] = statistics.median(ok)
        rec["warm_met"] = rec["warm_total_median"] <= WARM_TARGET_S
    if keep:
        rec["cache_dir"] = str(cache)
    return rec


def _cell(run: dict, key: str) -> str:
    if run["status"] != "ok":
        return run["status"]
    return f"{run[key]:.2f}"


def print_results(report: dict) -> None:
    from run import print_table  # benchmarks/run.py

    rows = []
    for rec in report["results"]:
        cold = rec["cold"]
        warm = [w for w in rec["warm"] if w["status"] == "ok"]
        mid = (
            min(warm, key=lambda w: abs(w["total"] - rec["warm_total_median"]))
            if warm
            else (rec["warm"][0] if rec["warm"] else {"status": "none"})
        )
        rows.append(
            [
                rec["family"],
                _cell(cold, "total"),
                _cell(cold, "rsample"),
                _cell(cold, "backward"),
                _cell(mid, "total"),
                _cell(mid, "import_irtgen"),
                _cell(mid, "import_numba"),
                _cell(mid, "rsample"),
                _cell(mid, "backward"),
                _cell(mid, "second_call")
                if mid["status"] != "ok"
                else f"{mid['second_call'] * 1e3:.1f}",
                _cell(mid, "process"),
                "yes" if rec.get("warm_met") else ("no" if "warm_met" in rec else "—"),
                f"{rec['cache_bytes'] / 2**20:.1f}",
            ]
        )
    st = report["settings"]
    print_table(
        f"First rsample(({DRAWS},)) + backward in a fresh process, seconds from after "
        f"`import torch` (cold: empty numba cache; warm: cache filled; median of "
        f"{st['warm_runs']} warm process(es)); threads {st['threads'] or 'default'}",
        [
            "family",
            "cold",
            "c.rsample",
            "c.backward",
            "warm",
            "w.import",
            "w.numba",
            "w.rsample",
            "w.backward",
            "2nd ms",
            "w.process",
            "warm ≤ 1 s",
            "cache MB",
        ],
        rows,
        text_columns=1,
    )
    print(
        "cold/warm: import irtgen.distributions + parameters + import numba + rsample + backward.  2nd ms: a "
        "second rsample + backward in the same process.  w.process: the whole warm subprocess "
        "(interpreter start, import torch, exit included)."
    )
    failed = [
        (rec["family"], kind, run)
        for rec in report["results"]
        for kind, run in [("cold", rec["cold"]), *(("warm", w) for w in rec["warm"])]
        if run["status"] != "ok" or not run.get("finite", True) or run.get("stale")
    ]
    for family, kind, run in failed:
        if run["status"] != "ok":
            why = f"{run['status']}: {run.get('message')}"
        elif run.get("stale"):
            why = "irtgen's sources changed after the cold run: this warm run compiled again"
        else:
            why = "non-finite sample or gradient"
        print(f"  {family} {kind}: {why}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("families", nargs="*", help=f"families (default all: {', '.join(FAMILIES)})")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in the children")
    p.add_argument("--warm-runs", type=int, default=1, help="warm processes per family")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per child process")
    p.add_argument("--out", type=Path, help="output folder (default benchmarks/results)")
    p.add_argument("--keep-cache", action="store_true", help="keep the temporary cache folders")
    p.add_argument("--child", metavar="FAMILY", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.threads)))
        return 0
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown:
        print(f"unknown families {unknown}; known: {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    families = args.families or list(FAMILIES)

    import torch
    from run import device_name, git_commit, versions  # benchmarks/run.py (imports torch)

    started = time.perf_counter()
    report = {
        "device": {
            "type": "cpu",
            "name": device_name(torch.device("cpu")),
            "cpu_count": os.cpu_count(),
        },
        "versions": versions(),
        "git_commit": git_commit(),
        "settings": {
            "draws": DRAWS,
            "threads": args.threads,
            "warm_runs": args.warm_runs,
            "warm_target_s": WARM_TARGET_S,
            "timer": "time.perf_counter from after import torch (child); process wall (parent)",
        },
        "command": ["benchmarks/startup.py", *(sys.argv[1:] if argv is None else argv)],
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "results": [],
    }
    for family in families:
        rec = measure_family(family, args.threads, args.warm_runs, args.timeout, args.keep_cache)
        report["results"].append(rec)
        cold, warm = rec["cold"], rec.get("warm_total_median")
        print(
            f"{family}: cold {_cell(cold, 'total')} s, warm "
            f"{'—' if warm is None else f'{warm:.2f}'} s",
            file=sys.stderr,
            flush=True,
        )
    report["wall_seconds"] = time.perf_counter() - started
    date = datetime.date.today().isoformat()
    out_path = (args.out or REPO / "benchmarks" / "results") / f"startup-cpu-{date}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    print_results(report)
    print(f"\nresults: {out_path}  ({report['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
