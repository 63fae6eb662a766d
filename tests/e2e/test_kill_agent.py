"""kill -9 agents at random points of a campaign, many times: every job ends measured exactly once.

A real ``eagle serve`` (SQLite store, short leases) and three ``eagle-agent`` processes with the debug
backend (fake timings after 0.3 s). Eighteen times, one agent chosen at random is killed with SIGKILL
after a random delay (while starting, registering, long-polling, measuring, or delivering a result) and
started again on the same workdir, so its outbox (a result it had not delivered yet) goes out on the
next start. Jobs whose agent died come back when their lease expires. At the end the store must hold
exactly one measurement per job, from the lease that finished it, and the campaign must be done.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests._helpers import distinct_valid

from .procs import AgentProc, Serve, assert_measured_exactly_once, wait_for

KILLS = 18
AGENTS = 3
JOBS = 300  # enough work (about 40 s for three agents) that every kill lands mid-campaign


def test_agents_killed_at_random_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    rng = random.Random(20250105)
    db_url = f"sqlite:///{tmp_path / 'eagle.db'}"
    serve = Serve(db_url, tmp_path / "server", lease_s=3.0, heartbeat_s=0.5).start()
    agents: list[AgentProc] = []
    try:
        token = serve.token()
        agents = [
            AgentProc(f"agent{i}", serve.grpc_target, token, tmp_path / "agents", sleep_s=0.3).start()
            for i in range(AGENTS)
        ]
        # The device exists once an agent has registered; then the campaign can name it.
        wait_for(lambda: any(a["device"] for a in serve.get("/agents").json()), 60, "an agent to register")
        indices = distinct_valid(JOBS, skip=50)
        campaign = serve.submit(indices, max_attempts=50)  # kills must not fail jobs for good
        cid = campaign["campaign_id"]

        for _ in range(KILLS):
            victim = rng.choice(agents)
            time.sleep(rng.uniform(0.1, 2.0))
            progress = wait_for(lambda: serve.progress(cid), 10, "the server to answer")
            assert progress["state"] != "done", f"the campaign finished before the kills were over: {progress}"
            assert victim.alive(), f"{victim.name} exited by itself:\n{victim.log()}"
            victim.kill9()
            victim.start()

        final = wait_for(
            lambda: (p := serve.progress(cid)) and p["state"] in ("done", "cancelled") and p,
            180,
            "the campaign to finish",
            every_s=0.5,
        )
        assert final["state"] == "done" and final["counts"]["done"] == JOBS, final
        assert all(a.alive() for a in agents), "an agent died by itself"
    finally:
        for agent in agents:
            agent.cleanup()
        serve.kill()

    jobs = assert_measured_exactly_once(db_url, cid, indices)
    # The kills did hit agents in the middle of jobs: some jobs needed more than one lease.
    retried = [j for j in jobs if j["attempts"] > 1]
    assert retried, "no job was leased twice: the kills missed every job"
    assert all(j["error_class"] == "lease_expired" for j in retried)  # what a killed agent leaves behind
    assert sum(a.starts for a in agents) == AGENTS + KILLS
