"""Prediction serving speed: batch scoring of all of NB201, single predictions under load, fresh install.

1. Batch (in process, through ``predictors.serving``): all 15,625 NB201 archs scored by a loaded predictor
   (invalid cells skipped, identical graphs scored once: 5,256 distinct graphs). Two predictors: the shipped
   one of the GTX 1080 Ti (GCN 4 x 128) and a paper-size GCN (4 x 600; random weights, the same
   arithmetic as a trained one), saved and loaded through the registry's artifact path. Reported: load,
   first scoring, then the median of repeated scorings (the batch figure; target <= 1.5 s), and the time
   ``PredictionService.predict`` takes to answer a request for all 15,625 from the loaded table.
2. Fresh install (a real ``eagle serve`` process on an empty SQLite store): time from starting the
   process to the first successful ``GET /v1/predict`` for a shipped LatBench device (the server imports
   LatBench 2020, registers the shipped predictors, loads one on the first request).
3. Under load (the same server, loopback): single ``GET /v1/predict`` requests, open loop at 100 requests
   per second (request i is sent at t0 + i / rate by a pool of client threads) for a bounded count;
   latency percentiles (target p99 <= 10 ms), and ``POST /v1/predict`` with all 15,625 archs over HTTP.

4. Few-shot adaptation (``eagle train latency --few-shot``), leave one device out over the 13 LatBench
   devices: the target's own shipped predictor is left out of the bank, 10 and 20 measured models of the
   target adapt the others (the service's code: ``FewShotPredictor.fit_features``), every other measured
   model of the target is the test set; mean over 5 draws per device; three methods side by side (bank
   only with random models; with the other devices' measured latencies as reference columns; and with
   the models ``eagle train suggest`` picks). Written to ``predict_fewshot.{json,md}``.

The machine is shared (2 cores): the load average is recorded with the results.

Run from the repo root::

    nice -n 10 python benchmarks/predict_latency.py            # writes benchmarks/results/predict_*.{json,md}
    python benchmarks/predict_latency.py --parts serving --requests 300 --no-write   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from latbench.graph import group_medians

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DEVICE = "desktop_gpu_gtx_1080ti_fp32"
EAGLE = [sys.executable, "-c", "import sys; from latbench.cli import main; sys.exit(main())"]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- 1. batch scoring -----------------------------------------------------------------------------------
def _store(tmp: Path, name: str) -> Any:
    from latbench.store.db import make_engine, session_factory, upgrade
    from latbench.store.devices import ensure_device

    engine = make_engine(f"sqlite:///{tmp / name}")
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as s:
        ensure_device(s, DEVICE)
        s.commit()
    return factory


def batch_scoring(tmp: Path, repeats: int) -> dict[str, Any]:
    from predictors import registry
    from predictors.gcn import GCNConfig, build_gcn, unique_graphs
    from predictors.latency import LatencyPredictor
    from predictors.pretrained import shipped_dir
    from predictors.regressor import TargetTransform
    from predictors.serving import PredictionService, load_predictor, score_space

    big = LatencyPredictor(GCNConfig(layers=4, hidden=600))
    big.model = build_gcn(big.gcn)
    big.transform = TargetTransform("log", mean=1.0, std=0.5)
    paper_dir = big.save(tmp / "gcn_4x600")
    out: dict[str, Any] = {}
    for label, directory in (("shipped_4x128", shipped_dir(DEVICE)), ("paper_4x600", paper_dir)):
        started = time.perf_counter()
        predictor = load_predictor(directory)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        table = score_space(predictor)
        first_s = time.perf_counter() - started
        runs, cpu = [], []
        for _ in range(repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            again = score_space(predictor)
            runs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        assert np.array_equal(np.isnan(table), np.isnan(again))
        # Through the service: registered version -> served table -> a request for every index.
        factory = _store(tmp, f"{label}.db")
        with factory() as s:
            row = registry.register_version(
                s, DEVICE, "latency", method="bench", train_indices=[0], hyperparameters={}, measurement_count=0
            )
            registry.mark_ready(s, row.id, metrics={}, artifact=f"a/{label}", artifact_dir=Path(directory))
        service = PredictionService(factory, tmp / f"workdir_{label}")
        started = time.perf_counter()
        service.served(DEVICE)
        served_first_s = time.perf_counter() - started
        everything = list(range(15625))
        answer_runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            payload = service.predict(DEVICE, everything)
            answer_runs.append(time.perf_counter() - t0)
        assert len(payload["predictions"]) == 15625
        out[label] = {
            "params": int(predictor.model.count_params()),
            "load_s": round(load_s, 3),
            "first_scoring_s": round(first_s, 3),
            "scoring_s_median": round(statistics.median(runs), 3),
            "scoring_s_min": round(min(runs), 3),
            "scoring_cpu_s_median": round(statistics.median(cpu), 3),
            "service_first_request_s": round(served_first_s, 3),
            "service_predict_all_s_median": round(statistics.median(answer_runs), 3),
        }
        print(f"batch {label}: {out[label]}", flush=True)
    from latbench.graph import encode_all_nb201

    enc = encode_all_nb201()
    a, _f, _ = unique_graphs(enc.adjacency[enc.valid], enc.features[enc.valid])
    out["valid_cells"] = int(enc.valid.sum())
    out["distinct_graphs"] = int(a.shape[0])
    return out


# -- 2 and 3: the real server ---------------------------------------------------------------------------------
class Serve:
    """``eagle serve`` on an empty SQLite store (LatBench imported at start), free ports."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log = (tmp / "serve.log").open("w")
        self.started = time.perf_counter()
        argv = [
            *EAGLE, "serve", "--db", f"sqlite:///{tmp / 'fresh.db'}", "--workdir", str(tmp / "workdir"),
            "--port", "0", "--grpc", "127.0.0.1:0", "--api-key", "bench-key",
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.url = self._read_url(timeout_s=600)

    def _read_url(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"eagle serve exited ({self.proc.poll()}); see {self.tmp / 'serve.log'}")
            if line.strip().startswith("REST"):
                return line.split()[1].removesuffix("/v1")
        raise RuntimeError("eagle serve printed no REST address")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def first_prediction(server: Serve) -> dict[str, Any]:
    import httpx

    banner_s = time.perf_counter() - server.started
    with httpx.Client(base_url=server.url, timeout=120) as client:
        while True:
            r = client.get("/v1/predict", params={"device": DEVICE, "arch": 1234})
            if r.status_code == 200:
                break
            if r.status_code != 503:
                raise RuntimeError(f"GET /v1/predict answered {r.status_code}: {r.text}")
            time.sleep(0.2)
        ready_s = time.perf_counter() - server.started
        body = r.json()
    return {
        "server_up_s": round(banner_s, 1),
        "first_prediction_s": round(ready_s, 1),
        "predictor": body["predictor"]["method"],
        "predictor_version": body["predictor_version"],
    }


def load_test(url: str, requests: int, rate: float, threads: int, seed: int) -> dict[str, Any]:
    import httpx

    from latbench.store.archs import architecture_rows

    rows = architecture_rows()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, 15625, size=requests)
    # Half the requests name the arch by index, half by arch string (both parse paths).
    archs = [str(int(i)) if k % 2 else rows[int(i)]["arch_str"] for k, i in enumerate(picks)]
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=30)
            local.client.get("/v1/health")
        return local.client

    t0 = time.perf_counter() + 0.5
    lateness: list[float] = []

    def one(k: int) -> float:
        due = t0 + k / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        start = time.perf_counter()
        lateness.append(start - due)
        r = client().get("/v1/predict", params={"device": DEVICE, "arch": archs[k]})
        elapsed = time.perf_counter() - start
        if r.status_code != 200:
            raise RuntimeError(f"request {k} answered {r.status_code}: {r.text[:200]}")
        return elapsed

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _k: client(), range(threads)))  # connect every thread first
        t0 = time.perf_counter() + 0.5
        latencies = np.array(list(pool.map(one, range(requests)))) * 1000.0
    span = time.perf_counter() - t0
    return {
        "requests": requests,
        "target_rate_per_s": rate,
        "achieved_rate_per_s": round(requests / span, 1),
        "client_threads": threads,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p90_ms": round(float(np.percentile(latencies, 90)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "max_ms": round(float(latencies.max()), 2),
        "send_lateness_p99_ms": round(float(np.percentile(lateness, 99)) * 1000.0, 2),
    }


def post_everything(url: str, repeats: int) -> dict[str, Any]:
    import httpx

    body = {"device": DEVICE, "archs": list(range(15625))}
    times = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = client.post("/v1/predict", json=body)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and len(r.json()["predictions"]) == 15625
            size = len(r.content)
    return {"post_all_s_median": round(statistics.median(times), 3), "response_bytes": size}


def _ceiling(y: np.ndarray, keys: np.ndarray, tolerance: float) -> float:
    """LatBench's noise floor: % of measured models within ±tolerance of their identical-graph group's median."""
    idx = np.flatnonzero(np.isfinite(y))
    _, group = np.unique(keys[idx], return_inverse=True)
    medians = group_medians(y[idx], group)
    return float(100.0 * np.mean(np.abs(y[idx] / medians[group] - 1.0) <= tolerance + 1e-12))


# -- 4. few-shot ---------------------------------------------------------------------------------------------
# (name, reference columns from the other devices' measurements, how the adaptation models are chosen)
FEW_SHOT_METHODS = (
    ("bank", False, "random"),
    ("bank+reference", True, "random"),
    ("bank+reference, suggested", True, "suggested"),
)
RECOMMENDED = "bank+reference, suggested"


def few_shot(shots_list: tuple[int, ...] = (10, 20), draws: int = 5) -> dict[str, Any]:
    from latbench.data import PAPER_DEVICES, load_latency
    from latbench.graph import encode_all_nb201
    from latbench.store.archs import architecture_rows
    from predictors import metrics
    from predictors.fewshot import FewShotPredictor, ReferenceTable, op_counts, spread_selection
    from predictors.latency import LatencyPredictor
    from predictors.pretrained import shipped_devices, shipped_dir

    enc = encode_all_nb201()
    names = shipped_devices()
    started = time.perf_counter()
    logs = {d: np.log(LatencyPredictor.load(shipped_dir(d)).predict_nb201()) for d in names}
    counts = op_counts(enc.features, enc.adjacency)
    table = load_latency()
    columns = {d: np.asarray(table.column(d), dtype=np.float64) for d in names}
    rows = architecture_rows()
    keys = np.array([row["canonical_key"] for row in rows])
    # LatBench measured every device on (nearly) every cell: the reference a lab's store holds.
    measured_by = {d: np.flatnonzero(np.isfinite(columns[d]) & enc.valid) for d in names}
    reference = ReferenceTable.from_measurements({d: (measured_by[d], columns[d][measured_by[d]]) for d in names})
    ref_logs = dict(zip(reference.devices, reference.log_ms, strict=True))
    results: dict[str, Any] = {}
    for method, use_reference, choice in FEW_SHOT_METHODS:
        per_device: dict[str, Any] = {}
        for target in names:
            others = [d for d in names if d != target]
            bank = np.stack([logs[d] for d in others], axis=1)
            blocks = [bank]
            if use_reference:  # as FewShotPredictor.features: the bank's value where a reference lacks one
                blocks.append(np.stack([np.where(np.isfinite(ref_logs[d]), ref_logs[d], logs[d]) for d in others], 1))
            x_all = np.concatenate([*blocks, counts], axis=1)
            y = columns[target]
            measured = measured_by[target]
            per_device[target] = {"ceiling_within_10pct": round(_ceiling(y, keys, 0.10), 2)}
            for shots in shots_list:
                scores = []
                for draw in range(draws):
                    rng_seed = 1000 * draw + shots
                    if choice == "random":
                        adapt = np.random.default_rng(rng_seed).choice(measured, shots, replace=False)
                    else:  # eagle train suggest: cells spread over the bank's main latency axis, no graph twice
                        adapt = spread_selection(bank.T, measured, shots, seed=rng_seed, graph_keys=keys)
                    test = np.setdiff1d(measured, adapt)
                    model = FewShotPredictor(dict.fromkeys(others))
                    model.fit_features(x_all[adapt], y[adapt])
                    scores.append(metrics.summary(model.predict_features(x_all[test]), y[test]))
                per_device[target][str(shots)] = {
                    k: round(float(np.mean([sc[k] for sc in scores])), 4)
                    for k in ("within_5pct", "within_10pct", "spearman")
                }
            print(f"few-shot [{method}] {target}: {per_device[target]}", flush=True)
        summary = {}
        for shots in shots_list:
            key = str(shots)
            summary[key] = {
                metric: round(float(np.mean([per_device[d][key][metric] for d in names])), 4)
                for metric in ("within_5pct", "within_10pct", "spearman")
            }
            summary[key]["ceiling_within_10pct"] = round(
                float(np.mean([per_device[d]["ceiling_within_10pct"] for d in names])), 2
            )
            summary[key]["paper_devices_within_10pct"] = round(
                float(np.mean([per_device[d][key]["within_10pct"] for d in names if d in PAPER_DEVICES])), 4
            )
        results[method] = {"reference": use_reference, "choice": choice, "summary": summary, "devices": per_device}
    return {
        "method": "ridge map of the other devices' shipped-predictor log latencies (+ their measured, "
        "identical-graph-median log latencies: 'reference') + op counts (predictors/fewshot.py)",
        "recommended": RECOMMENDED,
        "draws": draws,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average": list(os.getloadavg()),
        "methods": results,
        # the recommended method's figures at the top level, as before
        "summary": results[RECOMMENDED]["summary"],
        "devices": results[RECOMMENDED]["devices"],
    }


def few_shot_markdown(res: dict[str, Any]) -> str:
    shots = list(res["summary"])
    lines = [
        "# Few-shot latency prediction for a new device (`eagle train latency --few-shot`)",
        "",
        "Leave one device out over the 13 LatBench devices: the other 12 shipped predictors are the bank, "
        f"N measured models of the held-out device adapt it, the rest are the test set (mean of {res['draws']} "
        "draws per device). Targets (issue 6, 20 measurements): Spearman >= 0.95, ±10% >= 80.",
        "",
        "Methods: `bank` — ridge map of the bank's log predictions + op counts, N random models; "
        "`bank+reference` — plus the other devices' *measured* log latencies (median over identical graphs; "
        "a lab's store holds LatBench 2020 for every NB201 cell), N random models; `bank+reference, "
        "suggested` — the same, with the N models chosen by `eagle train suggest` (one cell per stratum of "
        "the bank's main latency axis, no graph twice; no label of the held-out device is used to choose).",
        "",
        f"Produced by `nice -n 10 python benchmarks/predict_latency.py --parts fewshot` in {res['seconds']} s "
        f"(load average {', '.join(f'{v:.1f}' for v in res.get('load_average', []))}).",
        "",
        "| method | " + " | ".join(f"N={n} ±5% | N={n} ±10% | N={n} ρ" for n in shots) + " |",
        "|---|" + "---|" * (3 * len(shots)),
    ]
    for method, entry in res.get("methods", {"bank": res}).items():
        cells = " | ".join(
            f"{entry['summary'][n]['within_5pct']:.1f} | {entry['summary'][n]['within_10pct']:.1f} | "
            f"{entry['summary'][n]['spearman']:.3f}"
            for n in shots
        )
        lines.append(f"| {method} | {cells} |")
    lines += [
        "",
        f"Per device, `{res.get('recommended', 'bank')}`. The ceiling is LatBench's noise floor: the share of "
        "measured models within ±10% of the median of their identical-graph group (no predictor of the graph "
        "can beat it).",
        "",
        "| device | ceiling ±10% | " + " | ".join(f"N={n} ±5% | N={n} ±10% | N={n} ρ" for n in shots) + " |",
        "|---|---|" + "---|" * (3 * len(shots)),
    ]
    for device, row in res["devices"].items():
        cells = " | ".join(
            f"{row[n]['within_5pct']:.1f} | {row[n]['within_10pct']:.1f} | {row[n]['spearman']:.3f}" for n in shots
        )
        lines.append(f"| {device} | {row['ceiling_within_10pct']:.1f} | {cells} |")
    cells = " | ".join(
        f"**{res['summary'][n]['within_5pct']:.1f}** | **{res['summary'][n]['within_10pct']:.1f}** | "
        f"**{res['summary'][n]['spearman']:.3f}**"
        for n in shots
    )
    ceiling = res["summary"][shots[0]]["ceiling_within_10pct"]
    lines += [f"| mean | {ceiling:.1f} | {cells} |", ""]
    return "\n".join(lines)


# -- report -------------------------------------------------------------------------------------------------
def markdown(res: dict[str, Any]) -> str:
    b, f, h, p = res["batch"], res["fresh_install"], res["single_under_load"], res["http_batch"]
    lines = [
        "# Prediction serving speed (`benchmarks/predict_latency.py`)",
        "",
        f"Machine: {res['machine']['cpus']} CPUs, load average {res['machine']['load_before']} before / "
        f"{res['machine']['load_after']} after (shared machine). {res['date']}.",
        "",
        "## Batch scoring of all 15,625 NB201 archs (serving layer, in process)",
        "",
        f"{b['valid_cells']} valid cells, {b['distinct_graphs']} distinct graphs scored. Target: <= 1.5 s.",
        "",
        "| predictor | params | load s | first scoring s | scoring s (median) | CPU s | request for all 15,625 from "
        "the table s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in ("shipped_4x128", "paper_4x600"):
        x = b[label]
        lines.append(
            f"| {label} | {x['params']:,} | {x['load_s']} | {x['first_scoring_s']} | **{x['scoring_s_median']}** "
            f"| {x['scoring_cpu_s_median']} | {x['service_predict_all_s_median']} |"
        )
    lines += [
        "",
        "## Fresh install (real `eagle serve`, empty SQLite store)",
        "",
        f"Server up (LatBench 2020 imported, shipped predictors registered) after {f['server_up_s']} s; first "
        f"prediction for {DEVICE} after **{f['first_prediction_s']} s** (version {f['predictor_version']}, "
        f"{f['predictor']}).",
        "",
        "## Single predictions under load (real server, loopback)",
        "",
        f"`GET /v1/predict`, open loop at {h['target_rate_per_s']:.0f} requests/s (achieved "
        f"{h['achieved_rate_per_s']}), {h['requests']} requests, {h['client_threads']} client threads. "
        "Target: p99 <= 10 ms.",
        "",
        "| p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---|---|---|",
        f"| {h['p50_ms']} | {h['p90_ms']} | **{h['p99_ms']}** | {h['max_ms']} |",
        "",
        f"`POST /v1/predict` with all 15,625 archs over HTTP: {p['post_all_s_median']} s "
        f"({p['response_bytes'] / 1e6:.1f} MB of JSON).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="single requests in the load test (1000)")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second (100)")
    parser.add_argument("--threads", type=int, default=16, help="client threads (16)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the batch measurements (5)")
    parser.add_argument("--parts", default="serving,fewshot", help="serving and/or fewshot (default both)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"serving", "fewshot"}:
        parser.error(f"--parts takes serving and/or fewshot, got {args.parts!r}")
    if "fewshot" in parts:
        fs = few_shot()
        if not args.no_write:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "predict_fewshot.json").write_text(json.dumps(fs, indent=2) + "\n")
            (RESULTS / "predict_fewshot.md").write_text(few_shot_markdown(fs))
        if "serving" not in parts:
            return 0
    if args.requests < 1 or args.rate <= 0 or args.threads < 1 or args.repeats < 1:
        parser.error("--requests, --rate, --threads and --repeats must be positive")
    res: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": _load()},
    }
    with tempfile.TemporaryDirectory(prefix="eagle-bench-") as tmp_name:
        tmp = Path(tmp_name)
        res["batch"] = batch_scoring(tmp, args.repeats)
        server = Serve(tmp)
        try:
            res["fresh_install"] = first_prediction(server)
            print(f"fresh install: {res['fresh_install']}", flush=True)
            res["single_under_load"] = load_test(server.url, args.requests, args.rate, args.threads, seed=0)
            print(f"under load: {res['single_under_load']}", flush=True)
            res["http_batch"] = post_everything(server.url, args.repeats)
            print(f"http batch: {res['http_batch']}", flush=True)
        finally:
            server.stop()
    res["machine"]["load_after"] = _load()
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "predict_latency.json").write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "predict_latency.md").write_text(markdown(res))
        print(f"wrote {RESULTS / 'predict_latency.json'} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
