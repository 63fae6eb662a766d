"""A backend without a model: fake timings and scripted misbehaviour, for tests and queue benchmarks.

It exercises everything around a measurement (worker process, heartbeats, reports, outbox) in
milliseconds. Options (all optional; TOML-friendly):

* ``runtime`` (str, default "tf") and the precisions given to the constructor: what it claims to run;
* ``latency_ms`` (float, default 1.0): the base of the fake timings (each arch gets its own multiple);
* ``sleep_s`` (float, default 0): how long "timing" takes;
* ``crash_archs`` / ``hang_archs`` / ``raise_archs`` (lists of arch indices): abort the worker process,
  sleep forever, or raise a plain exception in ``run`` (the worker classifies it as runtime);
* ``fail_archs`` (table arch index -> error class name): raise that classified failure in ``prepare``;
* ``misbehave_attempts`` (int, default 1): misbehave only while the job's attempt number is at most
  this, so a retried job succeeds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eagle_agent.backends import Backend, BackendError, CheckResult, ErrorClass, JobSpec, Prepared
from latbench.protocol import ProtocolParams, ProtocolResult


class DebugBackend(Backend):
    name = "debug"
    runtime = "tf"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, options: Mapping[str, Any] | None = None, precisions: Sequence[str] | None = None) -> None:
        super().__init__(options, precisions or ("fp32",))
        self.runtime = str(self.options.get("runtime", "tf"))
        self.latency_ms = float(self.options.get("latency_ms", 1.0))
        self.sleep_s = float(self.options.get("sleep_s", 0.0))
        self.misbehave_attempts = int(self.options.get("misbehave_attempts", 1))
        self.crash_archs = {int(i) for i in self.options.get("crash_archs", ())}
        self.hang_archs = {int(i) for i in self.options.get("hang_archs", ())}
        self.raise_archs = {int(i) for i in self.options.get("raise_archs", ())}
        self.fail_archs = {int(k): ErrorClass(v) for k, v in dict(self.options.get("fail_archs", {})).items()}

    def check(self) -> CheckResult:
        return CheckResult({"debug": "fake timings"}, {})

    def versions(self) -> dict[str, str]:
        return {"debug": "1"}

    def _misbehaves(self, job: JobSpec, archs: set[int] | dict[int, ErrorClass]) -> bool:
        return job.arch_index in archs and job.attempt <= self.misbehave_attempts

    def prepare(self, job: JobSpec, workdir: Path) -> Prepared:
        self.ensure_supported(job)
        job.arch()  # index and arch string must agree, as for real backends
        if self._misbehaves(job, self.fail_archs):
            cls = self.fail_archs[job.arch_index]
            raise BackendError(cls, f"debug backend: scripted {cls.value} failure for arch {job.arch_index}")
        return Prepared(job, artifact=None)

    def run(self, prepared: Prepared, params: ProtocolParams) -> ProtocolResult | Sequence[float]:
        job = prepared.job
        if self._misbehaves(job, self.crash_archs):
            os.abort()  # a native crash: SIGABRT kills the worker process
        if self._misbehaves(job, self.hang_archs):
            while True:
                time.sleep(3600)
        if self._misbehaves(job, self.raise_archs):
            raise RuntimeError(f"debug backend: scripted runtime error for arch {job.arch_index}")
        if self.sleep_s:
            time.sleep(self.sleep_s)
        base = self.latency_ms * (1.0 + (job.arch_index % 7) / 10.0)
        # Deterministic jitter so the protocol's quartile filters have something to do.
        return [base * (1.0 + 0.01 * ((i * 7919) % 11 - 5) / 5) for i in range(params.runs)]
