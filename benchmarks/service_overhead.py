"""Service overhead: measuring 20 NB201 models through ``eagle serve`` + ``eagle-agent`` versus directly.

The same 20 models (seeded draw of valid cells with distinct pruned graphs), the same runtime (LiteRT
fp32, one interpreter thread) and the same protocol (``--runs`` timed runs, warmup 10, groups of 10),
measured two ways, model by model, alternating which way goes first (ABBA), so that the load of the
shared machine drifting over the minutes hits both alike:

* ``direct``: the ``eagle measure <index> --runtime litert --threads 1 --json`` command run in one
  long-lived process (``latbench.cli.main``), TensorFlow imported once: a loop without process starts;
* ``service``: ``eagle serve`` (SQLite store) and one ``eagle-agent --runtime litert`` (worker warm);
  each model is a one-model campaign, timed from POST /v1/campaigns to the campaign's ``finished_at``
  (the server's clock, this machine's). The benchmark waits by reading the SQLite file, not by polling
  the server, whose answers would take CPU from the measurement. One campaign per model costs the
  service a submit and a lease per model: if anything, this overstates its overhead.

Both paths measure a warm-up model first (not timed). ``--cli`` adds a third, separate phase: a loop of
``eagle measure`` processes, one per model, as a person would type it (each pays the TensorFlow import).

Reported: wall times (sum over models), ``ratio = service / direct`` (target <= 1.05), and the per-model
latency agreement ``median |latency_service / latency_direct - 1|`` (target <= 3 %), with build and
conversion seconds (the bulk of the time, the same work on both paths) and the load average.

    nice -n 10 python benchmarks/service_overhead.py                 # 20 models x 1000 runs
    python benchmarks/service_overhead.py --models 3 --runs 100 --out-name /tmp/quick
    python benchmarks/service_overhead.py --markdown-from benchmarks/results/service_overhead.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
EAGLE = [sys.executable, "-c", "import sys; from latbench.cli import main; sys.exit(main())"]
DEVICE = "desktop_cpu_overhead_bench_fp32"
API_KEY = "eak_overhead-benchmark-key"
RATIO_TARGET, AGREEMENT_TARGET = 1.05, 0.03


def pick_models(n: int, seed: int) -> tuple[list[int], int]:
    """``n`` valid cells with distinct pruned graphs, and one more for the warm-up."""
    from latbench.store.archs import architecture_rows

    first: dict[str, int] = {}
    for row in architecture_rows():
        if row["valid"]:
            first.setdefault(row["canonical_key"], row["index"])
    drawn = random.Random(seed).sample(sorted(first.values()), n + 1)
    return drawn[1:], drawn[0]


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (Linux /proc); 0 if gone."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


# -- direct: `eagle measure` in one long-lived process ---------------------------------------------------------
def measure_argv(index: int, runs: int) -> list[str]:
    return [
        "measure",
        str(index),
        "--runtime",
        "litert",
        "--runs",
        str(runs),
        "--warmup",
        "10",
        "--threads",
        "1",
        "--json",
    ]


def direct_worker(runs: int) -> int:
    """(child process) For each index read on stdin, run ``eagle measure`` here; one JSON line back."""
    import io

    from latbench.cli import main as eagle

    for line in sys.stdin:
        index = int(line)
        captured = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(captured):
            code = eagle(measure_argv(index, runs))
        wall = time.perf_counter() - start
        if code != 0:
            print(json.dumps({"error": f"eagle measure {index} exited with {code}"}), flush=True)
            return 1
        print(json.dumps({"wall_s": wall, "result": json.loads(captured.getvalue())}), flush=True)
    return 0


class Direct:
    def __init__(self, runs: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "_direct", str(runs)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def measure(self, index: int) -> tuple[float, dict[str, Any]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{index}\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline() or '{"error": "the direct worker died"}')
        if "error" in answer:
            raise SystemExit(answer["error"])
        result = answer["result"]
        return answer["wall_s"], {
            "latency_ms": result["latency_ms"],
            "build_s": result["build_s"],
            "convert_s": result["convert_s"],
        }

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- cli: one `eagle measure` process per model --------------------------------------------------------------
def run_cli(indices: list[int], runs: int) -> dict[str, Any]:
    """One ``eagle measure`` process per model; wall time of the whole loop."""
    models: dict[int, dict[str, Any]] = {}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    for index in indices:
        done = subprocess.run([*EAGLE, *measure_argv(index, runs)], cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"eagle measure {index} failed:\n{done.stderr[-4000:]}")
        out = json.loads(done.stdout)
        models[index] = {"latency_ms": out["latency_ms"], "build_s": out["build_s"], "convert_s": out["convert_s"]}
    wall = time.perf_counter() - start
    return {"wall_s": wall, "models": models, "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]}


# -- service: eagle serve + eagle-agent --------------------------------------------------------------------
class Service:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.serve: subprocess.Popen[str] | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.rest = ""

    def start(self) -> None:
        import httpx

        env = {k: v for k, v in os.environ.items() if k not in ("EAGLE_DB_URL", "EAGLE_API_KEY", "EAGLE_SETTINGS_FILE")}
        argv = [
            *EAGLE,
            "serve",
            "--db",
            f"sqlite:///{self.tmp / 'eagle.db'}",
            "--no-import",
            "--api-key",
            API_KEY,
            "--workdir",
            str(self.tmp / "server"),
            "--port",
            "0",
            "--grpc",
            "127.0.0.1:0",
        ]
        self.serve = subprocess.Popen(
            argv,
            cwd=self.tmp,
            env=dict(env, PYTHONUNBUFFERED="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.serve.stdout is not None
        banner = ""
        for line in self.serve.stdout:
            banner += line
            if "API key" in line:
                break
        rest = re.search(r"REST\s+(http://\S+)/v1", banner)
        grpc_ = re.search(r"gRPC\s+(\S+)\s", banner)
        if not rest or not grpc_:
            raise SystemExit(f"eagle serve did not start: {banner}")
        self.rest = rest.group(1) + "/v1"
        threading.Thread(target=lambda: [None for _ in self.serve.stdout or []], daemon=True).start()
        token = httpx.post(f"{self.rest}/agents/tokens", json={}, headers={"X-API-Key": API_KEY}).json()["token"]
        config = self.tmp / "agent.toml"
        config.write_text(
            f'device = "{DEVICE}"\nruntime = "litert"\nlease_wait_s = 5.0\n[backend_options]\nnum_threads = 1\n'
        )
        log = (self.tmp / "agent.log").open("wb")
        self.agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eagle_agent.main",
                "--server",
                grpc_.group(1),
                "--config",
                str(config),
                "--workdir",
                str(self.tmp / "agent"),
            ],
            cwd=REPO,
            env=dict(env, EAGLE_AGENT_TOKEN=token),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while not any(a["device"] == DEVICE for a in httpx.get(f"{self.rest}/agents").json()):
            if time.monotonic() > deadline or self.agent.poll() is not None:
                raise SystemExit(f"the agent did not register:\n{(self.tmp / 'agent.log').read_text()[-4000:]}")
            time.sleep(0.2)

    def campaign(self, indices: list[int], runs: int) -> tuple[float, dict[int, dict[str, Any]]]:
        """Submit, wait until done; (seconds from POST to done, measurement per index)."""
        import httpx

        body = {
            "device": DEVICE,
            "models": {"indices": indices},
            "runtime": "litert",
            "precision": "fp32",
            "protocol": {"runs": runs, "warmup": 10, "group_size": 10},
            "dedupe": False,
        }
        start = datetime.now(UTC)
        reply = httpx.post(f"{self.rest}/campaigns", json=body, headers={"X-API-Key": API_KEY}, timeout=60)
        if reply.status_code != 201:
            raise SystemExit(f"campaign refused: {reply.text}")
        cid = reply.json()["campaign_id"]
        # Wait by reading the store's file, not by asking the server: answering polls would cost the
        # server CPU while the model is timed. The time is the campaign's finished_at (same clock).
        while not self._finished(cid):
            if self.agent is not None and self.agent.poll() is not None:
                raise SystemExit(f"the agent exited:\n{(self.tmp / 'agent.log').read_text()[-4000:]}")
            time.sleep(0.5)
        progress = httpx.get(f"{self.rest}/campaigns/{cid}", timeout=60).json()
        wall = (datetime.fromisoformat(progress["finished_at"].replace("Z", "+00:00")) - start).total_seconds()
        if progress["counts"]["done"] != len(indices):
            log = (self.tmp / "agent.log").read_text()[-4000:]
            raise SystemExit(f"campaign ended with {progress['counts']}:\n{log}")
        page = httpx.get(f"{self.rest}/measurements", params={"campaign": cid, "limit": 500}, timeout=60).json()
        return wall, {m["arch_index"]: m for m in page["items"]}

    def _finished(self, campaign_id: int) -> bool:
        with contextlib.closing(sqlite3.connect(f"file:{self.tmp / 'eagle.db'}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT state FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        return row is not None and row[0] in ("done", "cancelled")

    def pids(self) -> list[int]:
        return [proc.pid for proc in (self.serve, self.agent) if proc is not None]

    def stop(self) -> None:
        for proc in (self.agent, self.serve):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()


# -- the run ---------------------------------------------------------------------------------------------
def interleaved(indices: list[int], warmup_index: int, runs: int, tmp: Path) -> list[dict[str, Any]]:
    """Each model on both paths, the first path alternating (ABBA); one row per model."""
    direct, service = Direct(runs), Service(tmp)
    rows = []
    try:
        service.start()
        direct.measure(warmup_index)  # TensorFlow imported, the first conversion's one-off costs paid
        service.campaign([warmup_index], runs)
        for k, index in enumerate(indices):
            row: dict[str, Any] = {"index": index, "loadavg": os.getloadavg()[0]}
            order = ("direct", "service") if k % 4 in (0, 3) else ("service", "direct")
            for path in order:
                # CPU seconds of every process of the path (the server and the agent with its worker):
                # a measure of the work done that the machine's other load inflates less than wall time.
                pids = [direct.proc.pid] if path == "direct" else service.pids()
                cpu0 = sum(tree_cpu_s(pid) for pid in pids)
                if path == "direct":
                    wall, out = direct.measure(index)
                else:
                    wall, measured = service.campaign([index], runs)
                    m = measured[index]
                    out = {
                        "latency_ms": m["latency_ms"],
                        "build_s": m["stats"]["build_s"],
                        "convert_s": m["stats"]["convert_s"],
                    }
                row[path] = {"wall_s": wall, "cpu_s": sum(tree_cpu_s(pid) for pid in pids) - cpu0, **out}
            row["latency_ratio"] = row["service"]["latency_ms"] / row["direct"]["latency_ms"]
            rows.append(row)
            print(
                f"model {k + 1}/{len(indices)} (index {index}): direct {row['direct']['wall_s']:.1f} s, "
                f"service {row['service']['wall_s']:.1f} s, latency ratio {row['latency_ratio']:.3f}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        direct.stop()
        service.stop()
    return rows


def summarize(rows: list[dict[str, Any]], cli: dict[str, Any] | None) -> dict[str, Any]:
    def total(path: str, key: str) -> float:
        return sum(r[path][key] for r in rows)

    deviations = sorted(abs(r["latency_ratio"] - 1) for r in rows)
    out: dict[str, Any] = {
        "direct_wall_s": total("direct", "wall_s"),
        "service_wall_s": total("service", "wall_s"),
        "ratio": total("service", "wall_s") / total("direct", "wall_s"),
        "direct_cpu_s": total("direct", "cpu_s"),
        "service_cpu_s": total("service", "cpu_s"),
        "cpu_ratio": total("service", "cpu_s") / total("direct", "cpu_s"),
        "agreement_median_abs_dev": statistics.median(deviations),
        "agreement_max_abs_dev": deviations[-1],
        "models_within_3pct": sum(d <= AGREEMENT_TARGET for d in deviations),
        "direct_build_convert_s": total("direct", "build_s") + total("direct", "convert_s"),
        "service_build_convert_s": total("service", "build_s") + total("service", "convert_s"),
        "ratio_target": RATIO_TARGET,
        "agreement_target": AGREEMENT_TARGET,
    }
    # The service's own cost: its wall time beyond the build + convert work both paths do.
    out["service_overhead_s"] = out["service_wall_s"] - out["service_build_convert_s"]
    out["direct_overhead_s"] = out["direct_wall_s"] - out["direct_build_convert_s"]
    if cli is not None:
        out["cli_wall_s"] = cli["wall_s"]
        out["ratio_vs_cli"] = out["service_wall_s"] / cli["wall_s"]
        cli_dev = [abs(r["service"]["latency_ms"] / cli["models"][r["index"]]["latency_ms"] - 1) for r in rows]
        out["agreement_vs_cli"] = statistics.median(cli_dev)
    return out


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    cfg, s = report["config"], report["summary"]
    loads = [r["loadavg"] for r in report["models"]]
    lines = [
        "# Service overhead: eagle serve + agent vs direct eagle measure",
        "",
        f"{cfg['models']} NB201 models, LiteRT fp32, 1 thread, {cfg['runs']} runs (warmup 10, groups of 10), "
        f"each model on both paths in turn (ABBA). Machine: {report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, shared (load average {min(loads):.1f}-{max(loads):.1f}).",
        "",
        "| path | wall s | build + convert s | rest s | CPU s (all its processes) |",
        "|---|---:|---:|---:|---:|",
        f"| direct (`eagle measure` loop, one process) | {s['direct_wall_s']:.1f} | "
        f"{s['direct_build_convert_s']:.1f} | {s['direct_overhead_s']:.1f} | {s['direct_cpu_s']:.1f} |",
        f"| service (`eagle serve` + `eagle-agent`) | {s['service_wall_s']:.1f} | "
        f"{s['service_build_convert_s']:.1f} | {s['service_overhead_s']:.1f} | {s['service_cpu_s']:.1f} |",
    ]
    cli = report.get("cli")
    if cli:
        lines.append(f"| `eagle measure` processes, one per model (*) | {cli['wall_s']:.1f} | | | |")
    lines += [
        "",
        f"- ratio service / direct: **{s['ratio']:.3f}** (target <= {RATIO_TARGET}); in CPU seconds "
        f"{s['cpu_ratio']:.3f}",
        f"- latency agreement, median |service / direct - 1|: **{100 * s['agreement_median_abs_dev']:.2f} %** "
        f"(target <= {100 * AGREEMENT_TARGET:.0f} %); max {100 * s['agreement_max_abs_dev']:.2f} %; "
        f"{s['models_within_3pct']} of {cfg['models']} models within 3 %",
    ]
    if cli:
        load = (
            f"load average {cli['loadavg_before']:.1f} -> {cli['loadavg_after']:.1f}"
            if "loadavg_before" in cli
            else "load average not recorded"
        )
        lines += [
            f"- against the one-process-per-model loop: ratio {s['ratio_vs_cli']:.3f}, "
            f"agreement {100 * s['agreement_vs_cli']:.2f} %",
            "",
            f"(*) a separate phase after the interleaved one ({load}): the machine's load differs, so its wall "
            "time is not comparable with the two rows above; it is there to show what a person's loop costs.",
        ]
    lines += ["", f"Command: `{report['command']}`"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_direct"]:
        return direct_worker(int(argv[1]))
    if argv[:1] == ["--markdown-from"]:  # re-render the table of a saved JSON report
        source = Path(argv[1])
        write_markdown(source.with_suffix(".md"), json.loads(source.read_text()))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=20)
    p.add_argument("--runs", type=int, default=1000, help="timed runs per model (paper: 1000 on desktop)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model draw")
    p.add_argument("--cli", action="store_true", help="also time a loop of eagle measure processes")
    p.add_argument("--out-name", default="service_overhead", help="results file stem (or path without suffix)")
    args = p.parse_args(argv)
    if args.models < 1 or args.runs < 10:
        p.error("--models must be >= 1 and --runs >= 10")
    indices, warmup_index = pick_models(args.models, args.seed)
    with tempfile.TemporaryDirectory(prefix="eagle_overhead_") as tmp:
        rows = interleaved(indices, warmup_index, args.runs, Path(tmp))
    cli = run_cli(indices, args.runs) if args.cli else None
    summary = summarize(rows, cli)
    report = {
        "benchmark": "service_overhead",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "config": {
            "models": args.models,
            "runs": args.runs,
            "seed": args.seed,
            "indices": indices,
            "warmup_index": warmup_index,
            "runtime": "litert",
            "precision": "fp32",
            "threads": 1,
        },
        "command": " ".join(["python benchmarks/service_overhead.py", *argv]),
        "summary": summary,
        "models": rows,
        "cli": cli,
    }
    out = Path(args.out_name)
    stem = out if out.parent != Path(".") else RESULTS / out
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(stem.with_suffix(".md"), report)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
