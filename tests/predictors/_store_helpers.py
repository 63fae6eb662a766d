"""Helpers for tests that put measurements in a store and train small predictors on them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from latbench.graph import encode_all_nb201
from latbench.store.archs import architecture_rows, ensure_architectures
from latbench.store.devices import ensure_device
from latbench.store.models import Measurement, utcnow
from predictors.service import TrainOptions

# A tiny GCN and a short schedule: seconds per training, still learns the synthetic latency below.
TINY = TrainOptions(train_size=48, epochs=6, layers=2, hidden=16, batch_size=16)


def synthetic_ms(indices: Sequence[int]) -> np.ndarray:
    """A latency that depends on the cell's ops, so a GCN can learn it."""
    f = encode_all_nb201().features[np.asarray(indices)]
    return 1.0 + 0.5 * f[:, :, 0].sum(1) + 2.0 * f[:, :, 1].sum(1) + 0.8 * f[:, :, 2].sum(1)


def add_measurements(
    factory: sessionmaker[Session],
    device: str,
    indices: Sequence[int],
    values: Sequence[float] | np.ndarray,
    age_s: float = 0.0,
) -> None:
    """Insert measurements (measured ``age_s`` seconds ago), creating the device if needed."""
    keys = [r["canonical_key"] for r in architecture_rows()]
    with factory() as s:
        ensure_architectures(s)
        dev = ensure_device(s, device)
        when = utcnow() - timedelta(seconds=age_s)
        rows = [
            {
                "device_id": dev.id,
                "arch_index": int(i),
                "canonical_key": keys[int(i)],
                "latency_ms": float(v),
                "provenance": "test",
                "measured_at": when,
            }
            for i, v in zip(indices, values, strict=True)
        ]
        if rows:
            s.execute(insert(Measurement), rows)
        s.commit()
