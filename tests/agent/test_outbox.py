"""The outbox keeps reports durably until the server answers them."""

from __future__ import annotations

from pathlib import Path

import pytest

from eagle_agent import outbox as outbox_mod
from eagle_agent.outbox import Outbox, OutboxError


def _report(job_id: int, lease: str = "L") -> dict[str, object]:
    return {"kind": "result", "job_id": job_id, "lease_id": f"{lease}{job_id}", "latency_ms": 1.0 + job_id}


def test_pending_survives_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    a, b, c = (box.add(_report(i)) for i in (1, 2, 3))
    assert (a, b, c) == ("1:L1", "2:L2", "3:L3")
    box.done(b)
    again = Outbox(tmp_path)
    assert [entry_id for entry_id, _ in again.pending()] == ["1:L1", "3:L3"]
    assert again.pending()[1][1]["latency_ms"] == 4.0


def test_adding_the_same_job_and_lease_twice_keeps_one(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.add(_report(1))
    box.add(_report(1))
    box.add(_report(1, lease="M"))  # another lease of the same job is another report
    assert len(Outbox(tmp_path)) == 2


def test_file_is_emptied_when_everything_is_delivered(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    ids = [box.add(_report(i)) for i in range(5)]
    for entry_id in ids:
        box.done(entry_id)
    assert box.path.read_text() == "" and len(Outbox(tmp_path)) == 0
    box.done("no-such-id")  # harmless


def test_compaction_keeps_only_pending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "COMPACT_AFTER", 3)
    box = Outbox(tmp_path)
    ids = [box.add(_report(i)) for i in range(6)]
    for entry_id in ids[:4]:
        box.done(entry_id)
    lines = box.path.read_text().splitlines()
    assert len(lines) <= 4  # rewritten once 3 "done" lines piled up
    assert [entry_id for entry_id, _ in Outbox(tmp_path).pending()] == ids[4:]


def test_a_torn_last_line_is_ignored_and_cleaned(tmp_path: Path) -> None:
    box = Outbox(tmp_path)
    box.add(_report(1))
    with box.path.open("a") as f:
        f.write('{"op": "add", "id": "2:L2", "rep')  # the agent died mid-append
    again = Outbox(tmp_path)
    assert [entry_id for entry_id, _ in again.pending()] == ["1:L1"]
    again.add(_report(3))
    assert [entry_id for entry_id, _ in Outbox(tmp_path).pending()] == ["1:L1", "3:L3"]


def test_a_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_text('garbage\n{"op": "done", "id": "x"}\n')
    with pytest.raises(OutboxError, match="line 1 is corrupt"):
        Outbox(tmp_path)


def test_a_report_needs_its_keys(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="job_id and lease_id"):
        Outbox(tmp_path).add({"kind": "result"})
