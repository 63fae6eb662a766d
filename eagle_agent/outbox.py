"""The agent's outbox: finished reports kept on disk until the server has answered them.

Every result or failure goes into the outbox (fsync'd) before the agent tries to deliver it, so a
server restart, a network cut or a crash of the agent between "measured" and "recorded" loses nothing.
A report leaves the outbox when the server answers ACCEPTED, DUPLICATE (recorded before: a previous
delivery got through but its answer was lost) or STALE_LEASE (refused for good).

File format: JSON lines in ``<workdir>/outbox.jsonl``, append-only, each line
``{"op": "add", "id": ..., "report": {...}}`` or ``{"op": "done", "id": ...}``. The id is
``"<job_id>:<lease_id>"``, the server's idempotency key. A torn last line (the agent died mid-write)
is ignored. When nothing is pending the file is emptied; otherwise it is compacted (rewritten with only
the pending entries, atomically) once enough "done" lines have piled up.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.jsonl"
COMPACT_AFTER = 64  # "done" lines before a rewrite


class OutboxError(RuntimeError):
    pass


def report_id(report: dict[str, Any]) -> str:
    try:
        return f"{int(report['job_id'])}:{report['lease_id']}"
    except (KeyError, TypeError, ValueError) as exc:
        raise OutboxError(f"a report needs job_id and lease_id, got keys {sorted(report)}") from exc


class Outbox:
    """Pending reports, in the order they were added."""

    def __init__(self, workdir: Path) -> None:
        self.path = Path(workdir) / OUTBOX_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._done_lines = 0
        self._load()

    # -- reading -----------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            return
        text = self.path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                op, entry_id = entry["op"], entry["id"]
            except (ValueError, KeyError, TypeError):
                if number == len(lines):  # torn write of the last line: the agent died mid-append
                    log.warning("outbox %s: ignoring a torn last line", self.path)
                    continue
                raise OutboxError(f"outbox {self.path} line {number} is corrupt: {line[:80]!r}") from None
            if op == "add":
                self._pending[entry_id] = entry["report"]
            elif op == "done":
                self._pending.pop(entry_id, None)
                self._done_lines += 1
        if text and not text.endswith("\n"):
            self._rewrite()  # drop a torn line so later appends start on a fresh line

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._pending.items())

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self.pending())

    # -- writing -----------------------------------------------------------------------------------
    def add(self, report: dict[str, Any]) -> str:
        """Keep a report (durably) until :meth:`done`; adding the same job and lease again is a no-op."""
        entry_id = report_id(report)
        with self._lock:
            if entry_id in self._pending:
                return entry_id
            self._append({"op": "add", "id": entry_id, "report": report})
            self._pending[entry_id] = report
        return entry_id

    def done(self, entry_id: str) -> None:
        """The server answered this report; forget it."""
        with self._lock:
            if entry_id not in self._pending:
                return
            del self._pending[entry_id]
            if not self._pending:
                self._rewrite()
            else:
                self._append({"op": "done", "id": entry_id})
                self._done_lines += 1
                if self._done_lines >= COMPACT_AFTER:
                    self._rewrite()

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n"
        new = not self.path.exists()
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        if new:
            _fsync_dir(self.path.parent)

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for entry_id, report in self._pending.items():
                f.write(json.dumps({"op": "add", "id": entry_id, "report": report}, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._done_lines = 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
