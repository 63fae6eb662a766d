"""GPU check: time NB201 models through the agent's desktop-GPU backends (``gpu_tf`` and ``torch_gpu``)
exactly as an agent does (``measure_job``: build, protocol, raw timings), several times each, and report
the latencies and how repeatable they are.

For ``--models`` seeded random valid NB201 cells (distinct pruned graphs) and each framework, every model
is measured ``--repeats`` times (each repeat: a fresh model and runner, the protocol's ``--warmup`` +
``--runs`` runs); the repeat CV is the sample std / mean of the repeats' latencies, in %. The summary
gives per framework the median latency, the median and worst CV, and the rank correlation between the
two frameworks' latencies. A framework that cannot see a GPU is reported as unavailable (the
``tensorflow-cpu`` wheel of the ``models`` extra never sees one: install ``tensorflow[and-cuda]``).

``--budget-s`` stops starting new models once that much time has passed, so the whole check stays
within the lease it was given (benchmarks/gpu_check.sh runs it under a 5-minute limit).

    python benchmarks/gpu_check.py                       # 20 models x 2 frameworks x 3 repeats, on the GPU
    python benchmarks/gpu_check.py --cpu                 # the same code path on the CPU, tiny runs
    python benchmarks/gpu_check.py --frameworks torch --models 5 --runs 100

Output: a table on stdout and ``benchmarks/results/gpu_check[_cpu].json``. Exit status 0 when every
requested framework measured every model it started, 1 when a framework was unavailable or failed.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from eagle_agent.backends import Backend, BackendError, JobSpec, create_backend  # noqa: E402
from eagle_agent.worker import measure_job  # noqa: E402
from latbench.graph import nb201_cell  # noqa: E402
from latbench.nb201 import Arch  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
FRAMEWORKS = {"tf": ("gpu_tf", "tf"), "torch": ("torch_gpu", "torch")}


def pick_archs(count: int, seed: int) -> list[Arch]:
    """``count`` valid cells with distinct pruned graphs, in a seeded random order."""
    rng = np.random.default_rng(seed)
    chosen: list[Arch] = []
    keys: set[str] = set()
    for index in rng.permutation(15625):
        cell = nb201_cell(Arch.from_index(int(index)))
        if cell.valid and cell.canonical_key not in keys:
            keys.add(cell.canonical_key)
            chosen.append(Arch.from_index(int(index)))
            if len(chosen) == count:
                break
    return chosen


def make_backend(framework: str, cpu: bool) -> Backend:
    name, _ = FRAMEWORKS[framework]
    device = ("cpu" if cpu else "gpu") if framework == "tf" else ("cpu" if cpu else "cuda")
    backend = create_backend(name, {"device": device})
    backend.load()  # raises when the framework sees no GPU
    return backend


def job_for(arch: Arch, framework: str, args: argparse.Namespace, job_id: int) -> JobSpec:
    return JobSpec(
        job_id=job_id, lease_id="gpu-check", arch_index=arch.index, arch_str=arch.arch_str,
        runtime=FRAMEWORKS[framework][1], precision="fp32", runs=args.runs, warmup=args.warmup, group_size=10,
    )  # fmt: skip


def cv_pct(values: list[float]) -> float:
    return 100.0 * statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0


def spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3:
        return None
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.monotonic()
    archs = pick_archs(args.models, args.seed)
    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "frameworks": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    for framework in args.frameworks:
        entry: dict[str, Any] = {"models": []}
        report["frameworks"][framework] = entry
        try:
            backend = make_backend(framework, args.cpu)
        except Exception as exc:  # the framework cannot run here: say why, go on with the other one
            entry["unavailable"] = f"{type(exc).__name__}: {exc}"
            print(f"{framework}: unavailable: {entry['unavailable']}", flush=True)
            continue
        entry["hardware"] = backend.hardware()
        entry["versions"] = backend.versions()
        versions = ", ".join(f"{k} {v}" for k, v in entry["versions"].items())
        print(f"\n== {framework} on {entry['hardware']}  ({versions})")
        print(f"{'index':>6} {'latency ms (repeats)':<36} {'CV %':>6}", flush=True)
        for n, arch in enumerate(archs):
            if time.monotonic() - start > args.budget_s:
                entry["stopped"] = f"time budget of {args.budget_s:g} s spent after {n} models"
                print(f"   ... {entry['stopped']}", flush=True)
                break
            latencies: list[float] = []
            try:
                for r in range(args.repeats):
                    result = measure_job(backend, job_for(arch, framework, args, n * 100 + r), workdir)
                    latencies.append(float(result["latency_ms"]))
            except BackendError as exc:
                entry.setdefault("errors", []).append({"index": arch.index, "error": exc.message})
                print(f"{arch.index:>6} failed ({exc.error_class}): {exc.message}", flush=True)
                continue
            row = {"index": arch.index, "arch_str": arch.arch_str, "latency_ms": latencies, "cv_pct": cv_pct(latencies)}
            entry["models"].append(row)
            shown = " ".join(f"{v:.3f}" for v in latencies)
            print(f"{arch.index:>6} {shown:<36} {row['cv_pct']:>6.2f}", flush=True)
        rows = entry["models"]
        if rows:
            cvs = [r["cv_pct"] for r in rows]
            entry["summary"] = {
                "models": len(rows),
                "median_latency_ms": statistics.median(statistics.fmean(r["latency_ms"]) for r in rows),
                "median_cv_pct": statistics.median(cvs),
                "max_cv_pct": max(cvs),
            }
    measured = {f: {r["index"]: statistics.fmean(r["latency_ms"]) for r in e["models"]}
                for f, e in report["frameworks"].items()}  # fmt: skip
    if len(measured) == 2:
        common = sorted(set.intersection(*(set(m) for m in measured.values())))
        a, b = ([measured[f][i] for i in common] for f in measured)
        report["tf_torch_spearman"] = spearman(a, b)
    report["elapsed_s"] = time.monotonic() - start
    return report


def print_summary(report: dict[str, Any]) -> None:
    print("\n== summary")
    for framework, entry in report["frameworks"].items():
        if "summary" in entry:
            s = entry["summary"]
            print(
                f"{framework:>6}: {s['models']} models, median latency {s['median_latency_ms']:.3f} ms, "
                f"repeat CV median {s['median_cv_pct']:.2f} % (max {s['max_cv_pct']:.2f} %)"
            )
        else:
            print(f"{framework:>6}: {entry.get('unavailable') or 'no model measured'}")
    if report.get("tf_torch_spearman") is not None:
        print(f"TF vs PyTorch latency rank correlation (Spearman): {report['tf_torch_spearman']:.3f}")
    print(f"elapsed {report['elapsed_s']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="run the same code path on the CPU (tiny defaults)")
    p.add_argument("--frameworks", default="tf,torch", help="comma-separated: tf, torch (default both)")
    p.add_argument("--models", type=int, help="models to measure (default 20; 3 with --cpu)")
    p.add_argument("--runs", type=int, help="timed runs per repeat (default 200; 20 with --cpu)")
    p.add_argument("--warmup", type=int, help="untimed runs first (default 20; 2 with --cpu)")
    p.add_argument("--repeats", type=int, help="repeats per model for the CV (default 3; 2 with --cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget-s", type=float, default=270.0, help="start no new model after this (default 270)")
    p.add_argument("--out", help="JSON report (default benchmarks/results/gpu_check[_cpu].json)")
    args = p.parse_args(argv)
    defaults = {"models": (20, 3), "runs": (200, 20), "warmup": (20, 2), "repeats": (3, 2)}
    for key, (gpu_value, cpu_value) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, cpu_value if args.cpu else gpu_value)
    args.frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in args.frameworks if f not in FRAMEWORKS]
    if unknown or not args.frameworks:
        p.error(f"unknown framework(s) {unknown}; choose from {', '.join(FRAMEWORKS)}")
    if min(args.models, args.runs, args.repeats) < 1 or args.warmup < 0:
        p.error("--models, --runs and --repeats must be >= 1 and --warmup >= 0")
    report = run(args)
    print_summary(report)
    out = Path(args.out) if args.out else RESULTS / ("gpu_check_cpu.json" if args.cpu else "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"report: {out}")
    ok = all(e.get("models") and not e.get("errors") and "unavailable" not in e
             for e in report["frameworks"].values())  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
