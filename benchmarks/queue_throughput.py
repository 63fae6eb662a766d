"""Queue benchmark: how many jobs per second the agent service hands out and records, over real gRPC.

For each database (SQLite file, PostgreSQL database created for the run and dropped after):

1. migrate a fresh store, add one device and a token, queue one campaign of ``--jobs`` NB201 models
   (distinct valid indices, no deduplication, so every job is one measurement row);
2. start the real servicer (:func:`eagle_server.grpc_service.serve_grpc`) in its own process, or
   ``--processes N`` of them on one port as ``eagle serve --grpc-workers N`` runs them
   (:mod:`eagle_server.grpc_workers`);
3. start ``--client-procs`` client processes that together run ``--agents`` simulated agents (threads,
   one gRPC channel each). A simulated agent registers, then loops LeaseJob -> ReportResult with a fake
   latency at once (its "runtime" returns immediately) until a lease comes back empty;
4. time from the moment every agent is registered (a "go" line to all clients) to the last report;
5. check the store: ``lost`` = jobs not done or done without a measurement row; ``duplicated`` =
   measurement rows beyond one per job, plus (from the agents' side) jobs whose result was ACCEPTED
   more than once.

Target (issue 5): >= 500 jobs/s on PostgreSQL, 0 lost, 0 duplicated.

    python benchmarks/queue_throughput.py                    # both databases, 10,000 jobs, 50 agents
    python benchmarks/queue_throughput.py --db postgresql --jobs 2000 --out-name /tmp/quick   # a check

Before/after in one invocation: ``--baseline DIR`` runs the server code of an older commit
(``git archive COMMIT | tar -x -C DIR``) first in every round, with one process; ``--repeat R`` interleaves
R rounds so that the machine's load swings hit every configuration alike (medians in the summary);
``--previous FILE`` keeps the figures of an earlier result file in the report.

Writes ``benchmarks/results/queue_throughput.json`` and ``.md`` (``--out-name`` changes the stem; a
name with a folder writes there). The machine's load average before and after each run is recorded:
the 2-core development machine is shared, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
DEVICE = "desktop_cpu_queue_bench_fp32"
CAPS = ["tf:fp32"]
TARGET_JOBS_S = 500.0
PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- databases ---------------------------------------------------------------------------------------
@contextmanager
def database(kind: str, pg_admin: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database URL of the given kind; PostgreSQL's is dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'queue_{uuid.uuid4().hex[:8]}.db'}"
        return
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"eagle_bench_{uuid.uuid4().hex[:12]}"
    conn = psycopg.connect(pg_admin, autocommit=True, connect_timeout=5)
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        params = conninfo_to_dict(pg_admin)
        user, host, port = params.get("user", ""), params.get("host", "127.0.0.1"), params.get("port", "5432")
        password = params.get("password")
        auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
        yield f"postgresql+psycopg://{auth}{host}:{port}/{name}"
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def prepare(url: str, jobs: int) -> tuple[str, int]:
    """Migrate, add the device, a token and one campaign of ``jobs`` distinct valid archs."""
    from latbench.store import queue
    from latbench.store.archs import architecture_rows
    from latbench.store.db import make_engine, session_factory, upgrade
    from latbench.store.devices import ensure_device
    from latbench.store.tokens import create_agent_token

    rows = architecture_rows()
    valid = [i for i, row in enumerate(rows) if row["valid"]]
    if jobs > len(valid):
        raise SystemExit(f"--jobs is at most {len(valid)} (the valid NB201 cells), got {jobs}")
    engine = make_engine(url)
    try:
        upgrade(engine)
        factory = session_factory(engine)
        with factory() as session:
            ensure_device(session, DEVICE, hardware="queue benchmark")
            session.commit()
            token = create_agent_token(session, note="queue benchmark")
            campaign = queue.submit_campaign(
                session,
                DEVICE,
                valid[:jobs],
                runtime="tf",
                precision="fp32",
                protocol={"runs": 10, "warmup": 0, "group_size": 10},
                dedupe=False,
                max_attempts=3,
            )
            return token, campaign.id
    finally:
        engine.dispose()


def check_store(url: str, campaign_id: int) -> dict[str, Any]:
    """Job states, measurement rows, lost and duplicated counts, read back from the database."""
    from sqlalchemy import func, select

    from latbench.store.db import make_engine, session_factory
    from latbench.store.models import Campaign, Job, Measurement

    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            counts = select(Job.state, func.count()).where(Job.campaign_id == campaign_id).group_by(Job.state)
            states = {state: int(n) for state, n in s.execute(counts)}
            rows = s.scalar(select(func.count()).select_from(Measurement).where(Measurement.campaign_id == campaign_id))
            distinct_jobs = s.scalar(
                select(func.count(func.distinct(Measurement.job_id))).where(Measurement.campaign_id == campaign_id)
            )
            # A done job without its measurement row would be a lost result.
            done_without = s.scalar(
                select(func.count())
                .select_from(Job)
                .outerjoin(Measurement, Measurement.job_id == Job.id)
                .where(Job.campaign_id == campaign_id, Job.state == "done", Measurement.id.is_(None))
            )
            campaign_state = s.scalar(select(Campaign.state).where(Campaign.id == campaign_id))
    finally:
        engine.dispose()
    total = sum(states.values())
    done = int(states.get("done", 0))
    return {
        "job_states": {k: int(v) for k, v in sorted(states.items())},
        "measurement_rows": int(rows or 0),
        "lost": (total - done) + int(done_without or 0),
        "duplicated_rows": int(rows or 0) - int(distinct_jobs or 0),
        "campaign_state": campaign_state,
    }


# -- the server process --------------------------------------------------------------------------------
def serve_main(url: str, port_file: Path, max_workers: int, processes: int) -> int:
    """Run the real agent service until stdin closes; write its port and the pids that serve it (for
    their CPU time) to ``port_file``. ``processes`` > 1: that many gRPC worker processes on one port,
    as ``eagle serve --grpc-workers`` runs them."""
    from eagle_server.grpc_service import AgentServiceSettings, serve_grpc
    from latbench.store.db import make_engine, session_factory

    settings = AgentServiceSettings(
        lease_s=300.0, heartbeat_s=30.0, max_wait_s=2.0, poll_s=0.05, requeue_every_s=10.0, max_workers=max_workers
    )
    if processes > 1:
        from eagle_server.grpc_workers import GrpcWorkers

        pool = GrpcWorkers(url, "127.0.0.1:0", settings, processes)
        pool.start()
        port_file.write_text(json.dumps({"port": pool.port, "pids": pool.pids}))
        sys.stdin.read()  # the parent closes our stdin to stop us
        pool.stop(grace_s=1.0)
        return 0
    engine = make_engine(url)
    server = serve_grpc(session_factory(engine), "127.0.0.1:0", settings)
    port_file.write_text(json.dumps({"port": server.port, "pids": [os.getpid()]}))
    sys.stdin.read()
    server.stop(1.0).wait(5)
    engine.dispose()
    return 0


# -- the client processes (simulated agents) ---------------------------------------------------------------
def agent_thread(port: int, token: str, go: threading.Event, out: dict[str, Any]) -> None:
    import grpc

    from eagle_agent.proto.eagle.v1 import agent_pb2 as pb
    from eagle_agent.proto.eagle.v1 import agent_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.AgentServiceStub(channel)
    reg = stub.Register(
        pb.RegisterRequest(
            token=token,
            device=DEVICE,
            hostname="bench",
            capabilities=CAPS,
            backend="instant",
            backend_check=pb.BackendCheck(ok=True),
            agent_version="bench",
        ),
        timeout=30,
    )
    out["registered"] = True
    accepted: list[int] = []
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    go.wait()
    lease_req = pb.LeaseJobRequest(agent_id=reg.agent_id, session=reg.session, device=DEVICE, capabilities=CAPS)
    empty = 0
    while empty < 2:  # the queue is empty once two leases in a row come back without a job
        try:
            reply = stub.LeaseJob(lease_req, timeout=30)
        except grpc.RpcError as exc:
            errors[f"lease:{exc.code().name}"] += 1
            time.sleep(0.01)
            continue
        if not reply.HasField("job"):
            empty += 1
            continue
        empty = 0
        job = reply.job
        report = pb.ReportResultRequest(
            agent_id=reg.agent_id,
            session=reg.session,
            job_id=job.job_id,
            lease_id=job.lease_id,
            latency_ms=1.0 + job.arch_index / 1e4,
            raw_ms=[1.0] * 10,
            versions={"bench": "1"},
            runtime=job.runtime,
            precision=job.precision,
        )
        report.stats.update({"runs": 10})
        while True:  # an agent's outbox: the same report until it is delivered
            try:
                answer = stub.ReportResult(report, timeout=30)
                break
            except grpc.RpcError as exc:
                errors[f"report:{exc.code().name}"] += 1
                time.sleep(0.01)
        outcome = pb.ReportOutcome.Name(answer.outcome)
        outcomes[outcome] += 1
        if answer.outcome == pb.REPORT_OUTCOME_ACCEPTED:
            accepted.append(job.job_id)
    out.update(accepted=accepted, outcomes=dict(outcomes), errors=dict(errors), end=time.time())
    channel.close()


def client_main(port: int, token: str, agents: int) -> int:
    """Register ``agents`` simulated agents, say "ready", wait for "go" on stdin, run, print JSON."""
    go = threading.Event()
    outs: list[dict[str, Any]] = [{} for _ in range(agents)]
    threads = [threading.Thread(target=agent_thread, args=(port, token, go, o), daemon=True) for o in outs]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while not all(o.get("registered") for o in outs):
        dead = any(not t.is_alive() and not o.get("registered") for t, o in zip(threads, outs, strict=True))
        if dead or time.monotonic() > deadline:
            print(json.dumps({"error": "agents did not register"}), flush=True)
            return 1
        time.sleep(0.01)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    start = time.time()
    go.set()
    cpu0 = time.process_time()
    for t in threads:
        t.join()
    accepted = [j for o in outs for j in o.get("accepted", [])]
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for o in outs:
        outcomes.update(o.get("outcomes", {}))
        errors.update(o.get("errors", {}))
    result = {
        "start": start,
        "end": max(o.get("end", start) for o in outs),
        "accepted": accepted,
        "outcomes": dict(outcomes),
        "errors": dict(errors),
        "cpu_s": time.process_time() - cpu0,
    }
    print(json.dumps(result), flush=True)
    return 0


# -- one run -----------------------------------------------------------------------------------------------
def _spawn(*args: str, code: Path | None = None) -> subprocess.Popen[str]:
    """This script in a child process; ``code``: a source tree whose packages it imports instead."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
    )


def _postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process on this machine (the benchmark's backends do nearly all
    of it during a run; other users' queries would count too)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip().startswith("postgres"):
                    total += _cpu_s(int(entry.name))
    return total


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(kind: str, args: argparse.Namespace, tmp: Path, processes: int, code: Path | None) -> dict[str, Any]:
    """One run on a fresh database; ``code``: serve from that source tree (the baseline) instead."""
    with database(kind, args.pg_admin, tmp) as url:
        token, campaign_id = prepare(url, args.jobs)
        port_file = tmp / f"port_{kind}_{uuid.uuid4().hex[:6]}"
        server = _spawn("_serve", url, str(port_file), str(args.server_workers), str(processes), code=code)
        clients: list[subprocess.Popen[str]] = []
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {kind} server did not start")
                time.sleep(0.05)
            served = json.loads(port_file.read_text())
            port, server_pids = str(served["port"]), [int(p) for p in served["pids"]]
            shares = [
                args.agents // args.client_procs + (i < args.agents % args.client_procs)
                for i in range(args.client_procs)
            ]
            clients = [_spawn("_client", port, token, str(n)) for n in shares if n]
            for c in clients:
                assert c.stdout is not None
                if c.stdout.readline().strip() != "ready":
                    raise SystemExit("a client process failed to register its agents")
            load_before = os.getloadavg()
            server_cpu0, pg_cpu0 = sum(_cpu_s(p) for p in server_pids), _postgres_cpu_s()
            for c in clients:
                assert c.stdin is not None
                c.stdin.write("go\n")
                c.stdin.flush()
            results = []
            for c in clients:
                assert c.stdout is not None
                results.append(json.loads(c.stdout.readline()))
                c.wait(30)
            server_cpu = sum(_cpu_s(p) for p in server_pids) - server_cpu0
            pg_cpu = _postgres_cpu_s() - pg_cpu0
            load_after = os.getloadavg()
        finally:
            for c in clients:
                if c.poll() is None:
                    c.kill()
            if server.stdin is not None:
                server.stdin.close()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        store = check_store(url, campaign_id)
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    accepted = Counter(j for r in results for j in r["accepted"])
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in results:
        outcomes.update(r["outcomes"])
        errors.update(r["errors"])
    done = store["job_states"].get("done", 0)
    return {
        "database": kind,
        "code": "baseline" if code is not None else "current",
        "server_processes": processes,
        "jobs": args.jobs,
        "agents": args.agents,
        "client_processes": len(results),
        "elapsed_s": round(elapsed, 3),
        "jobs_per_s": round(done / elapsed, 1) if elapsed > 0 else None,
        "lost": store["lost"],
        "duplicated": store["duplicated_rows"] + sum(n - 1 for n in accepted.values() if n > 1),
        "accepted_reports": sum(accepted.values()),
        "report_outcomes": dict(outcomes),
        "rpc_errors": dict(errors),
        "store": store,
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_ms_per_job": round(1000 * server_cpu / max(1, done), 3),
        "client_cpu_s": round(sum(r["cpu_s"] for r in results), 2),
        "client_cpu_ms_per_job": round(1000 * sum(r["cpu_s"] for r in results) / max(1, done), 3),
        "postgres_cpu_s": round(pg_cpu, 2) if kind == "postgresql" else None,
        "postgres_cpu_ms_per_job": round(1000 * pg_cpu / max(1, done), 3) if kind == "postgresql" else None,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def _label(run: dict[str, Any]) -> str:
    code = run.get("code", "current")
    return f"{code}, {run.get('server_processes', 1)} process{'es' if run.get('server_processes', 1) > 1 else ''}"


def summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per database and configuration: the median jobs/s and CPU per job over the repeats."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["database"], _label(r)), []).append(r)
    out = []
    for (db, label), rs in groups.items():
        out.append(
            {
                "database": db,
                "configuration": label,
                "runs": len(rs),
                "median_jobs_per_s": round(statistics.median(r["jobs_per_s"] for r in rs), 1),
                "jobs_per_s": [r["jobs_per_s"] for r in rs],
                "median_server_cpu_ms_per_job": round(statistics.median(r["server_cpu_ms_per_job"] for r in rs), 3),
                "lost": sum(r["lost"] for r in rs),
                "duplicated": sum(r["duplicated"] for r in rs),
                "meets_target": statistics.median(r["jobs_per_s"] for r in rs) >= TARGET_JOBS_S
                and not any(r["lost"] or r["duplicated"] for r in rs),
            }
        )
    return out


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    cfg = report["config"]
    lines = [
        "# Queue throughput (agent service over real gRPC)",
        "",
        f"{cfg['jobs']} jobs, {cfg['agents']} simulated agents whose runtime returns at once, "
        f"{cfg['client_procs']} client processes. Server: `serve_grpc` in one process, or N gRPC worker "
        f'processes on one port (`eagle serve --grpc-workers N`). "baseline" is the server code before this '
        f"change, run in the same invocation (interleaved, {cfg.get('repeat', 1)} round(s)) so both see the same "
        f"machine load. Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, shared with "
        "other work: the load average is in every row.",
        "",
        "## Summary (median over rounds)",
        "",
        "| database | server | jobs/s (median) | each round | server CPU ms/job | lost | duplicated "
        f"| >= {TARGET_JOBS_S:.0f} jobs/s |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for g in report.get("summary", []):
        lines.append(
            f"| {g['database']} | {g['configuration']} | {g['median_jobs_per_s']} | "
            f"{', '.join(map(str, g['jobs_per_s']))} | {g['median_server_cpu_ms_per_job']} | {g['lost']} | "
            f"{g['duplicated']} | {'yes' if g['meets_target'] else 'no'} |"
        )
    base = {g["database"]: g for g in report.get("summary", []) if g["configuration"].startswith("baseline")}
    best: dict[str, dict[str, Any]] = {}
    for g in report.get("summary", []):
        db = g["database"]
        candidate = db in base and not g["configuration"].startswith("baseline")
        if candidate and (db not in best or g["median_jobs_per_s"] > best[db]["median_jobs_per_s"]):
            best[db] = g
    if best:
        lines += ["", "Against the baseline in the same invocation:", ""]
        for db, g in best.items():
            b = base[db]
            lines.append(
                f"- {db}: {g['median_jobs_per_s'] / b['median_jobs_per_s']:.2f}x the jobs/s ({g['configuration']}), "
                f"server CPU per job {b['median_server_cpu_ms_per_job']} -> {g['median_server_cpu_ms_per_job']} ms"
            )
    if report.get("note"):
        lines += ["", report["note"]]
    lines += [
        "",
        "## Every run",
        "",
        "| database | server | jobs/s | elapsed s | lost | duplicated | RPC errors | server CPU ms/job "
        "| agents CPU ms/job | PostgreSQL CPU ms/job | load avg (1 min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        pg = r.get("postgres_cpu_ms_per_job")
        lines.append(
            f"| {r['database']} | {_label(r)} | {r['jobs_per_s']} | {r['elapsed_s']} | {r['lost']} | "
            f"{r['duplicated']} | {sum(r['rpc_errors'].values())} | {r['server_cpu_ms_per_job']} | "
            f"{r['client_cpu_ms_per_job']} | {pg if pg is not None else '-'} | "
            f"{r['loadavg_before'][0]} -> {r['loadavg_after'][0]} |"
        )
    lines += [
        "",
        f"Target (issue 5): >= {TARGET_JOBS_S:.0f} jobs/s on PostgreSQL, 0 lost, 0 duplicated.",
        "",
        "Server CPU is summed over its processes. Everything (server, simulated agents, PostgreSQL) shares the "
        "machine's cores, so with a load average above the core count the figures are a floor. lost = jobs not "
        "done or done without a measurement row; duplicated = measurement rows beyond one per job plus results "
        "the agents saw accepted twice.",
        "",
    ]
    if report.get("previous"):
        prev = report["previous"]
        lines += [
            f"Previously recorded ({prev['note']}): "
            + ", ".join(f"{db} {v} jobs/s" for db, v in prev["jobs_per_s"].items()),
            "",
        ]
    lines.append(f"Command: `{report['command']}`")
    path.write_text("\n".join(lines) + "\n")


def _command(argv: list[str]) -> str:
    """The command line, with the paths of this machine (baseline tree, files) cut to their names."""
    out, path_next = ["python benchmarks/queue_throughput.py"], False
    for arg in argv:
        out.append(f"<{Path(arg).name}>" if path_next else arg)
        path_next = arg in ("--baseline", "--previous", "--out-name")
    return " ".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        return serve_main(argv[1], Path(argv[2]), int(argv[3]), int(argv[4]))
    if argv[:1] == ["_client"]:
        return client_main(int(argv[1]), argv[2], int(argv[3]))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--client-procs", type=int, default=2, help="processes the simulated agents are spread over")
    p.add_argument("--server-workers", type=int, default=64, help="gRPC worker threads of each server process")
    p.add_argument(
        "--processes",
        default="1,2",
        help="comma-separated server process counts to run (eagle serve --grpc-workers), e.g. '1,2'",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="a source tree of an older commit (git archive ... | tar -x -C DIR): its server runs first, with one "
        "process, on each database, for a before/after under the same machine load",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs of each configuration (interleaved)")
    p.add_argument("--previous", help="an earlier result JSON whose figures to keep in this report")
    p.add_argument("--pg-admin", default=os.environ.get("EAGLE_TEST_PG_ADMIN", PG_ADMIN_DEFAULT))
    p.add_argument("--note", help="a sentence for the report (what the baseline is, what changed)")
    p.add_argument("--out-name", default="queue_throughput", help="results file stem (or path without suffix)")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.agents < 1 or args.client_procs < 1:
        p.error("--jobs, --agents and --client-procs must be >= 1")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    processes = [int(n) for n in args.processes.split(",") if n.strip()]
    baseline = args.baseline.resolve() if args.baseline else None
    configs: list[tuple[str, int, Path | None]] = []
    for kind in kinds:
        if baseline is not None:
            configs.append((kind, 1, baseline))
        configs += [(kind, n, None) for n in processes]
    runs = []
    with tempfile.TemporaryDirectory(prefix="eagle_queue_bench_") as tmp:
        for _ in range(args.repeat):  # interleaved, so that a load spike hits every configuration alike
            for kind, n, code in configs:
                result = run_one(kind, args, Path(tmp), n, code)
                print(json.dumps({k: v for k, v in result.items() if k != "store"}), flush=True)
                runs.append(result)
    report = {
        "benchmark": "queue_throughput",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "config": {
            "jobs": args.jobs,
            "agents": args.agents,
            "client_procs": args.client_procs,
            "server_workers": args.server_workers,
            "processes": processes,
            "baseline": baseline is not None,
            "repeat": args.repeat,
        },
        "command": _command(argv),
        "note": args.note,
        "target": {"postgresql_jobs_per_s": TARGET_JOBS_S, "lost": 0, "duplicated": 0},
        "summary": summary(runs),
        "runs": runs,
    }
    if args.previous:  # the figures of an earlier result file, kept for the before/after
        old = json.loads(Path(args.previous).read_text())
        report["previous"] = {
            "note": f"{old.get('date', '?')}, one server process, load avg "
            + ", ".join(f"{r['database']} {r['loadavg_before'][0]}" for r in old["runs"]),
            "jobs_per_s": {r["database"]: r["jobs_per_s"] for r in old["runs"]},
        }
    out = Path(args.out_name)
    stem = out if out.parent != Path(".") else RESULTS / out
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(stem.with_suffix(".md"), report)
    print(f"wrote {stem.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
