"""Foundation benchmark: what building, converting and timing NB201 models costs on this machine,
and how repeatable the timing protocol is.

For ``--models`` random valid NB201 architectures (seeded), one model each:

* build time (Keras, including BatchNorm calibration) and conversion time to TFLite at fp32, fp16, int8;
* latency with the paper's protocol (``--runs`` timed runs, groups of 10) for TF and LiteRT fp32, each
  ``--repeats`` times (repeats interleaved TF, LiteRT, TF, ... with a fresh runner and fresh inputs
  each, so slow drift on the machine shows up as spread), and once for LiteRT fp16 and int8;
* the spread of the protocol: coefficient of variation (sample std / mean, in %) of the repeats'
  ``latency_ms`` per model; the summary reports its median over models (target: <= 3 % for LiteRT fp32).

Threads: ``--threads`` (default 1) applies to TF intra/inter-op pools and to the LiteRT interpreter.
One thread keeps timings independent of what else runs on the other cores of a shared machine.

Output: ``benchmarks/results/foundation.json`` (machine facts, config, per-model rows, medians) and a
Markdown table in ``foundation.md``. The JSON is rewritten after every model, and a rerun skips the models
it already holds (same config required; ``--fresh`` starts over).

    python benchmarks/foundation.py                 # full run (20 models x 1000 runs)
    python benchmarks/foundation.py --runs 50 --models 3 --out /tmp/quick.json   # quick check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from latbench.graph import nb201_cell
from latbench.measure import build_model, clear_session, convert_model, input_factory, make_runner, valid_cell
from latbench.nb201 import Arch, all_archs
from latbench.protocol import ProtocolParams, time_callable
from latbench.runtimes import runtime_versions

RESULTS = Path(__file__).resolve().parent / "results"
PRECISIONS = ("fp32", "fp16", "int8")
CV_TARGET_PCT = 3.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(threads: int) -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": runtime_versions(),
    }


def pick_archs(count: int, seed: int) -> list[Arch]:
    """``count`` distinct valid architectures, drawn uniformly (seeded), in draw order."""
    valid = [arch for arch in all_archs() if nb201_cell(arch).valid]
    if not 0 < count <= len(valid):
        raise SystemExit(f"--models must be in 1..{len(valid)}, got {count}")
    picks = np.random.default_rng(seed).choice(len(valid), size=count, replace=False)
    return [valid[int(k)] for k in picks]


def cv_pct(values: list[float]) -> float:
    """Coefficient of variation in % (sample std, ddof=1)."""
    return 100.0 * statistics.stdev(values) / statistics.fmean(values)


def measure_model(arch: Arch, params: ProtocolParams, repeats: int, threads: int) -> dict[str, Any]:
    cell = valid_cell(arch)
    row: dict[str, Any] = {
        "index": arch.index,
        "arch_str": arch.arch_str,
        "op_code": arch.op_code,
        "canonical_key": cell.canonical_key,
        # 1-minute load average when the model started: on a shared machine it explains outlying CVs
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    try:
        model, row["build_s"] = build_model(cell, seed=0)
        tflite: dict[str, bytes] = {}
        row["convert_s"], row["tflite_bytes"] = {}, {}
        for precision in PRECISIONS:
            tflite[precision], row["convert_s"][precision] = convert_model(model, precision)
            row["tflite_bytes"][precision] = len(tflite[precision])
        tf_runs: list[dict[str, float]] = []
        lite_runs: list[dict[str, float]] = []
        for repeat in range(repeats):
            for runtime, runs in (("tf", tf_runs), ("litert", lite_runs)):
                run = make_runner(runtime, model=model, tflite=tflite["fp32"], num_threads=threads)
                result = time_callable(run, input_factory(seed=1000 + repeat), params)
                runs.append({"latency_ms": result.latency_ms, "median_ms": result.median_ms, "iqr_ms": result.iqr_ms})
        others = {}
        for precision in ("fp16", "int8"):
            run = make_runner("litert", tflite=tflite[precision], num_threads=threads)
            others[precision] = time_callable(run, input_factory(seed=2000), params).latency_ms
    finally:
        clear_session()
    tf_lat = [r["latency_ms"] for r in tf_runs]
    lite_lat = [r["latency_ms"] for r in lite_runs]
    row.update(
        {
            "tf_fp32_repeats": tf_runs,
            "litert_fp32_repeats": lite_runs,
            "tf_fp32_ms": statistics.median(tf_lat),
            "litert_fp32_ms": statistics.median(lite_lat),
            "litert_fp16_ms": others["fp16"],
            "litert_int8_ms": others["int8"],
            "tf_fp32_cv_pct": cv_pct(tf_lat) if repeats > 1 else None,
            "litert_fp32_cv_pct": cv_pct(lite_lat) if repeats > 1 else None,
        }
    )
    return row


def medians(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str, sub: str | None = None) -> float | None:
        values = [r[key][sub] if sub else r[key] for r in rows]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    lite_cvs = [r["litert_fp32_cv_pct"] for r in rows if r["litert_fp32_cv_pct"] is not None]
    return {
        "models": len(rows),
        "build_s": med("build_s"),
        **{f"convert_{p}_s": med("convert_s", p) for p in PRECISIONS},
        "tf_fp32_ms": med("tf_fp32_ms"),
        "litert_fp32_ms": med("litert_fp32_ms"),
        "litert_fp16_ms": med("litert_fp16_ms"),
        "litert_int8_ms": med("litert_int8_ms"),
        "tf_fp32_cv_pct": med("tf_fp32_cv_pct"),
        "litert_fp32_cv_pct": med("litert_fp32_cv_pct"),
        "litert_fp32_cv_max_pct": max(lite_cvs) if lite_cvs else None,
        "litert_models_within_cv_target": sum(cv <= CV_TARGET_PCT for cv in lite_cvs),
        "cv_target_pct": CV_TARGET_PCT,
        "load_avg_1m": med("load_avg_1m") if all("load_avg_1m" in r for r in rows) else None,
    }


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(doc: dict[str, Any]) -> str:
    m, cfg, mach = doc["medians"], doc["config"], doc["machine"]
    lines = [
        "# Foundation benchmark",
        "",
        f"Machine: {mach['cpu_model']}, {mach['cpus_usable']} usable CPUs, {cfg['threads']} thread(s); "
        f"TF {mach['versions']['tensorflow']}, Keras {mach['versions']['keras']}, "
        f"LiteRT {mach['versions']['litert']}.",
        f"Protocol: {cfg['runs']} runs (groups of {cfg['group_size']}, {cfg['warmup']} warm-up), "
        f"{cfg['repeats']} repeats per model for TF and LiteRT fp32; "
        f"{m['models']} models (seed {cfg['seed']}).",
        "",
        "| index | op code | build s | conv fp32 s | conv fp16 s | conv int8 s | TF ms | LiteRT fp32 ms "
        "| LiteRT fp16 ms | LiteRT int8 ms | CV TF % | CV LiteRT % | load |",
        "|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        c = r["convert_s"]
        lines.append(
            f"| {r['index']} | {r['op_code']} | {_f(r['build_s'])} | {_f(c['fp32'])} | {_f(c['fp16'])} "
            f"| {_f(c['int8'])} | {_f(r['tf_fp32_ms'], 3)} | {_f(r['litert_fp32_ms'], 3)} "
            f"| {_f(r['litert_fp16_ms'], 3)} | {_f(r['litert_int8_ms'], 3)} "
            f"| {_f(r['tf_fp32_cv_pct'])} | {_f(r['litert_fp32_cv_pct'])} | {_f(r.get('load_avg_1m'), 1)} |"
        )
    lines.append(
        f"| **median** | | {_f(m['build_s'])} | {_f(m['convert_fp32_s'])} | {_f(m['convert_fp16_s'])} "
        f"| {_f(m['convert_int8_s'])} | {_f(m['tf_fp32_ms'], 3)} | {_f(m['litert_fp32_ms'], 3)} "
        f"| {_f(m['litert_fp16_ms'], 3)} | {_f(m['litert_int8_ms'], 3)} "
        f"| {_f(m['tf_fp32_cv_pct'])} | {_f(m['litert_fp32_cv_pct'])} | {_f(m['load_avg_1m'], 1)} |"
    )
    lines += [
        "",
        f"Repeat CV (sample std / mean of the protocol's latency over {cfg['repeats']} repeats): median "
        f"{_f(m['tf_fp32_cv_pct'])} % TF, {_f(m['litert_fp32_cv_pct'])} % LiteRT fp32 "
        f"(max {_f(m['litert_fp32_cv_max_pct'])} %; "
        f"{m['litert_models_within_cv_target']}/{m['models']} models "
        f"within the {m['cv_target_pct']:g} % target). `load`: 1-minute load average of the machine when the "
        "model started (the machine is shared; CVs rise with it).",
    ]
    return "\n".join(lines) + "\n"


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: an interrupted run leaves the last complete file


def _configure_tf_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=20, help="random valid archs (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arch draw (default 0)")
    parser.add_argument("--runs", type=int, default=1000, help="timed runs per protocol (default 1000)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up runs (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="protocol repeats per model (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="TF and LiteRT threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS / "foundation.json", help="JSON output")
    parser.add_argument("--fresh", action="store_true", help="ignore models already in --out")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    params = ProtocolParams(runs=args.runs, warmup=args.warmup)
    config = {**params.to_dict(), "models": args.models, "seed": args.seed, "repeats": args.repeats}
    config["threads"] = args.threads
    _configure_tf_threads(args.threads)

    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if out.exists() and not args.fresh:
        old = json.loads(out.read_text(encoding="utf-8"))
        if old.get("config") != config:
            raise SystemExit(f"{out} was made with {old.get('config')}, not {config}; pass --fresh to start over")
        rows = old["rows"]
    done = {row["index"] for row in rows}
    doc: dict[str, Any] = {"machine": machine_facts(args.threads), "config": config, "rows": rows}

    archs = pick_archs(args.models, args.seed)
    for k, arch in enumerate(archs, start=1):
        if arch.index in done:
            continue
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # Keras export prints; stdout is for the table
            row = measure_model(arch, params, args.repeats, args.threads)
        rows.append(row)
        doc["medians"] = medians(rows)
        _write_json(out, doc)
        print(
            f"[{k}/{len(archs)}] index {arch.index} ({arch.op_code}): TF {row['tf_fp32_ms']:.3f} ms "
            f"(CV {_f(row['tf_fp32_cv_pct'])} %), LiteRT {row['litert_fp32_ms']:.3f} ms "
            f"(CV {_f(row['litert_fp32_cv_pct'])} %) in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
    order = {arch.index: k for k, arch in enumerate(archs)}
    rows.sort(key=lambda r: order.get(r["index"], len(order)))
    doc["medians"] = medians(rows)
    _write_json(out, doc)
    table = markdown(doc)
    out.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
