"""``eagle serve --measure SPEC``: the one-command job on the embedded default.

Start the server with its local agent, queue one campaign for device ``local``, wait for it, print the
measured latencies (and write a LatBench CSV of the local device when asked), then shut down. The same
code paths as a lab deployment: the campaign goes through the store's queue and the agent leases it over
gRPC, builds, converts and times each model in its worker process.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from latbench import graph, nb201
from latbench.store.models import Job, JobState, Measurement
from latbench.store.queue import campaign_progress, submit_campaign
from latbench.store.releases import export_release

SPEC_HELP = "'random:N' (N random valid cells), or NB201 indices '0,17,42'"


@dataclass(frozen=True)
class MeasureRequest:
    indices: tuple[int, ...]
    runs: int = 200
    export: Path | None = None


def parse_measure_spec(spec: str, seed: int = 0) -> tuple[int, ...]:
    """``random:N`` or a comma-separated list of NB201 indices; invalid cells are refused by name."""
    text = spec.strip()
    if text.startswith("random:"):
        count_text = text.removeprefix("random:")
        if not count_text.isdigit() or int(count_text) < 1:
            raise ValueError(f"--measure random:N needs a positive N, got {spec!r}")
        valid = [a.index for a in nb201.all_archs() if graph.nb201_cell(a).valid]
        return tuple(sorted(random.Random(seed).sample(valid, min(int(count_text), len(valid)))))
    indices: list[int] = []
    for item in text.split(","):
        arch = nb201.parse_arch(item.strip())
        if not graph.nb201_cell(arch).valid:
            raise ValueError(f"NB201 index {arch.index} has no input->output path: nothing to measure")
        indices.append(arch.index)
    if not indices:
        raise ValueError(f"--measure needs {SPEC_HELP}")
    return tuple(indices)


def run_campaign(
    factory: sessionmaker[Session],
    device: str,
    request: MeasureRequest,
    runtime: str,
    stop: threading.Event,
    out: TextIO,
) -> int:
    """Queue, wait (printing progress), report. Returns 0 when every job was measured."""
    with factory() as session:
        campaign = submit_campaign(
            session,
            device,
            list(request.indices),
            runtime=runtime,
            protocol={"runs": request.runs},
            name="eagle serve --measure",
        )
        campaign_id = campaign.id
    print(
        f"queued campaign {campaign_id}: {len(request.indices)} models for device {device!r} "
        f"({runtime}, {request.runs} runs each)",
        file=out,
        flush=True,
    )
    last = ""
    progress: dict[str, Any] = {}
    while not stop.wait(1.0):
        with factory() as session:
            progress = campaign_progress(session, campaign_id)
        counts = progress["counts"]
        line = f"  done {counts['done']}/{progress['total']}  failed {counts['failed']}  leased {counts['leased']}"
        if line != last:
            print(line, file=out, flush=True)
            last = line
        if progress["finished_fraction"] >= 1.0:
            break
    if stop.is_set():
        print("interrupted before the campaign finished; it stays queued in the store", file=out)
        return 1
    with factory() as session:
        rows = session.execute(
            select(Measurement.arch_index, Measurement.latency_ms, Measurement.stats)
            .join(Job, Job.id == Measurement.job_id)
            .where(Job.campaign_id == campaign_id)
            .order_by(Measurement.arch_index)
        ).all()
        failed = session.execute(
            select(Job.arch_index, Job.error_class, Job.last_error).where(
                Job.campaign_id == campaign_id, Job.state != JobState.DONE.value
            )
        ).all()
        print(f"\n{'index':>6}  {'latency ms':>10}  {'IQR ms':>8}  arch", file=out)
        for index, latency, stats in rows:
            iqr = (stats or {}).get("iqr_ms", float("nan"))
            print(f"{index:>6}  {latency:>10.3f}  {iqr:>8.3f}  {nb201.Arch.from_index(index).arch_str}", file=out)
        for index, error_class, message in failed:
            print(f"{index:>6}  FAILED ({error_class}): {message}", file=out)
        if request.export is not None:
            request.export.parent.mkdir(parents=True, exist_ok=True)
            with request.export.open("w", encoding="utf-8", newline="") as f:
                export_release(session, f, devices=[device], record=False)
            print(f"\nLatBench CSV of device {device!r}: {request.export}", file=out)
    print(
        f"campaign {campaign_id}: {len(rows)} measured, {len(failed)} failed ({time.strftime('%H:%M:%S')})",
        file=out,
        flush=True,
    )
    return 0 if not failed else 1
