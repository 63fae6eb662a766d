"""Fixtures of the hardware-backend tests: the fake tools on PATH, injected faults, a shared artifact
cache (converted models are reused across tests, as an agent reuses them across jobs), jobs, and
failed jobs."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eagle_agent.backends import Backend, BackendError, ErrorClass, JobSpec
from eagle_agent.worker import measure_job
from latbench.nb201 import Arch

FAKE_TOOLS = Path(__file__).resolve().parents[1] / "fake_tools"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOOLS = (
    "adb", "edgetpu_compiler", "nvidia-smi", "scp", "snpe-diagview", "snpe-dlc-quantize", "snpe-onnx-to-dlc",
    "snpe-tflite-to-dlc", "ssh", "trtexec",
)  # fmt: skip
SMALL_ARCHS = (3, 40, 45)  # identity cell; avg-pool (+skip); conv1x1 (+skip): distinct graphs, quick to build


def install_tool(name: str, bin_dir: Path) -> Path:
    """A wrapper in ``bin_dir`` that runs fake tool ``name`` with this interpreter (no shebang guessing)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_TOOLS / name}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture(scope="session")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bin_dir = tmp_path_factory.mktemp("fake-bin")
    for name in TOOLS:
        install_tool(name, bin_dir)
    return bin_dir


@dataclass
class FakeTools:
    bin: Path
    faults_file: Path
    calls_file: Path

    def fault(self, tool: str, *kinds: str) -> None:
        """Make the next calls of ``tool`` misbehave, in order (crash, hang, garbage, fail, ...)."""
        faults = json.loads(self.faults_file.read_text()) if self.faults_file.exists() else {}
        faults.setdefault(tool, []).extend(kinds)
        self.faults_file.write_text(json.dumps(faults))

    def pending_faults(self) -> dict[str, list[str]]:
        faults = json.loads(self.faults_file.read_text()) if self.faults_file.exists() else {}
        return {k: v for k, v in faults.items() if v}

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        if not self.calls_file.exists():
            return []
        rows = [json.loads(line) for line in self.calls_file.read_text().splitlines() if line]
        return [r for r in rows if tool is None or r["tool"] == tool]


@pytest.fixture
def tools(fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """The fake tools first on PATH; faults and calls recorded in this test's folder."""
    fake = FakeTools(fake_bin, tmp_path / "faults.json", tmp_path / "calls.jsonl")
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("EAGLE_FAKE_FAULTS", str(fake.faults_file))
    monkeypatch.setenv("EAGLE_FAKE_CALLS", str(fake.calls_file))
    return fake


@pytest.fixture(scope="session")
def artifacts_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A workdir whose ``artifacts/`` cache is shared by the tests of this session."""
    yield tmp_path_factory.mktemp("hw-workdir")


def make_job(
    arch_index: int = 3,
    runtime: str = "tensorrt",
    precision: str = "fp32",
    runs: int = 20,
    warmup: int = 2,
    group_size: int = 10,
    job_id: int = 1,
) -> JobSpec:
    arch = Arch.from_index(arch_index)
    return JobSpec(
        job_id=job_id,
        lease_id=f"lease-{job_id}",
        arch_index=arch_index,
        arch_str=arch.arch_str,
        runtime=runtime,
        precision=precision,
        runs=runs,
        warmup=warmup,
        group_size=group_size,
    )


def job_failure(backend: Backend, job: JobSpec, workdir: Path, error_class: ErrorClass, words: str) -> BackendError:
    """Measure ``job`` as the worker does; it must fail as ``error_class`` with ``words`` in the message."""
    with pytest.raises(BackendError) as exc:
        measure_job(backend, job, workdir)
    assert exc.value.error_class == error_class, exc.value.message
    assert words in exc.value.message
    return exc.value
