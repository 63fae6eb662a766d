"""Restart the server in the middle of a campaign, politely and by crash, on SQLite and PostgreSQL: the
agents ride it out and the campaign completes with exact counts.

A real ``eagle serve`` and two ``eagle-agent`` processes (debug backend, 0.3 s per job). After a third
of the jobs the server gets SIGTERM and comes back on the same ports; after two thirds it gets SIGKILL
and comes back again. Meanwhile the agents back off, keep the results they finish in their outbox and
deliver them once the server is back (accepted, or refused as stale if the lease lapsed meanwhile, in
which case the job is measured again under a new lease). In the end: every job done, one measurement
per job, from the lease that finished it, and the agents are the same processes as at the start.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests._helpers import distinct_valid

from .procs import AgentProc, Serve, assert_measured_exactly_once, wait_for

JOBS = 60
DOWN_S = 2.0  # how long the server stays away each time


def _done(serve: Serve, campaign_id: int) -> int:
    progress = serve.progress(campaign_id)
    return int(progress["counts"]["done"]) if progress else 0


def test_campaign_survives_server_restarts(db_url: str, tmp_path: Path) -> None:
    serve = Serve(db_url, tmp_path / "server", lease_s=4.0, heartbeat_s=0.5).start()
    agents: list[AgentProc] = []
    try:
        token = serve.token()
        agents = [
            AgentProc(f"agent{i}", serve.grpc_target, token, tmp_path / "agents", sleep_s=0.3).start() for i in range(2)
        ]
        wait_for(lambda: any(a["device"] for a in serve.get("/agents").json()), 60, "an agent to register")
        indices = distinct_valid(JOBS, skip=200)
        cid = serve.submit(indices, max_attempts=20)["campaign_id"]
        ports = (serve.http_port, serve.grpc_port)

        wait_for(lambda: _done(serve, cid) >= JOBS // 3, 120, "a third of the jobs")
        assert serve.stop() == 0, serve.log()  # SIGTERM: a clean shutdown
        time.sleep(DOWN_S)
        serve.start()

        wait_for(lambda: _done(serve, cid) >= 2 * JOBS // 3, 120, "two thirds of the jobs")
        serve.kill()  # SIGKILL: a crash, with leases and reports in flight
        time.sleep(DOWN_S)
        serve.start()
        assert (serve.http_port, serve.grpc_port) == ports and serve.starts == 3

        final = wait_for(
            lambda: (p := serve.progress(cid)) and p["state"] in ("done", "cancelled") and p,
            180,
            "the campaign to finish",
            every_s=0.5,
        )
        assert final["state"] == "done" and final["total"] == JOBS, final
        assert final["counts"] == {"queued": 0, "leased": 0, "done": JOBS, "failed": 0, "cancelled": 0}, final
        page = serve.get("/measurements", campaign=cid, limit=500).json()
        assert page["total"] == JOBS and sorted(m["arch_index"] for m in page["items"]) == sorted(indices)
        for agent in agents:
            assert agent.alive() and agent.starts == 1, agent.log()
            assert "away" in agent.log(), f"{agent.name} never noticed the server was gone"
    finally:
        for agent in agents:
            agent.cleanup()
        serve.kill()
    assert_measured_exactly_once(db_url, cid, indices)
