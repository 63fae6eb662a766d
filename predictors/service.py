"""Training predictor versions from the store, and the trainer service (``eagle trainer``).

One training (:func:`train_latency`): read the device's measurements (newest per cell), split them into
training / validation / held-out test models, register a version in state *training*, fit while
reporting progress (the registry row doubles as the trainer's heartbeat), score the test models, save
the artifact under ``<workdir>/predictors/<device>/latency/v<N>`` and mark the version ready (its
files are copied into the store). Any error marks the version failed with the message.

Methods:

* ``gcn`` — the BRP-NAS GCN latency predictor (``predictors.latency``), paper defaults: 900 training and
  100 validation models, the rest held out.
* ``few-shot`` — for a device with only a handful of measurements (10-50): the shipped LatBench GCNs and
  the store's measurements of those devices, mapped onto the new device by a ridge fit
  (``predictors.fewshot``, which also suggests which models to measure first).
* ``pretrained`` — the shipped predictors themselves, registered by :func:`register_shipped` for the
  LatBench devices of a fresh store so that predictions are available at once.

Accuracy (:func:`train_accuracy`, ``eagle train accuracy``): a device-free ``accuracy`` version, the GCN
accuracy predictor fitted on the NB201 CIFAR-100 validation accuracy of a few models (Table 2's recipes,
``distilled`` by default) and scored on every other valid cell.

The service (:class:`Trainer`): every ``interval_s`` it fails versions whose trainer died (no heartbeat),
registers shipped predictors for LatBench devices that have none, and, one device at a time, trains a new
version for each device with at least ``min_new`` measurements more than its newest version was trained
with (a first version needs ``min_total``; below ``gcn_min`` measurements it is a few-shot version).
Quality gate: a new version whose held-out share within ±10% is more than ``gate_tolerance`` points below
the served version's is recorded as failed (with its metrics and the reason) rather than served: e.g. the
paper's 900-model GCN (±10% 91.0 on the GTX 1080 Ti) does not replace the shipped predictor trained on
6,000 models (98.6).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from latbench import nb201
from latbench.store.devices import require_device
from latbench.store.models import Device, Measurement, PredictorState, PredictorVersion
from predictors import registry
from predictors.fewshot import (
    MAX_SHOTS,
    MIN_FEW_SHOT,
    RIDGE_LAMBDAS,
    FewShotPredictor,
    ReferenceTable,
    TrainingError,
    shipped_bases,
)

log = logging.getLogger(__name__)

MIN_GCN = 30  # measurements a full GCN needs (fewer: use --few-shot)
ProgressFn = Callable[[dict[str, Any]], None]


class Interrupted(Exception):
    """The trainer was asked to stop during a training (the version is marked failed)."""


# -- data ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceData:
    device: str
    indices: np.ndarray  # valid NB201 cells with a measurement, ascending
    latency_ms: np.ndarray  # the newest measurement of each
    measurement_count: int  # the device's measurement rows (all of them)


def load_device_data(session: Session, device: str) -> DeviceData:
    """The device's newest measured latency per valid cell."""
    from latbench.graph import encode_all_nb201

    dev = require_device(session, device)
    rows = session.execute(
        select(Measurement.arch_index, Measurement.latency_ms)
        .where(Measurement.device_id == dev.id)
        .order_by(Measurement.measured_at, Measurement.id)
    ).all()
    values = np.full(nb201.NUM_ARCHS, np.nan)
    for index, latency in rows:  # oldest first: the newest wins
        values[index] = latency
    valid = encode_all_nb201().valid
    keep = np.flatnonzero(np.isfinite(values) & valid & (values > 0))
    return DeviceData(device, keep, values[keep], len(rows))


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # positions into DeviceData.indices
    val: np.ndarray
    test: np.ndarray


def split_data(n: int, train_size: int, seed: int) -> Split:
    """Random train / validation / test positions of ``n`` measured models.

    The paper's split is 900 / 100 / the rest; validation is a ninth of training. At least a tenth of
    the models (and 2) stay held out for testing, shrinking training when ``n`` is small.
    """
    if train_size < 1:
        raise TrainingError(f"--train-size must be positive, got {train_size}")
    if n < MIN_GCN:
        raise TrainingError(
            f"{n} measured models are too few to train a GCN (it needs at least {MIN_GCN}): measure more, "
            "or adapt the pretrained predictors with --few-shot"
        )
    test_min = max(2, math.ceil(n / 10))
    val = max(2, round(train_size / 9))
    train = train_size
    if train + val + test_min > n:
        val = max(2, round((n - test_min) / 10))
        train = n - test_min - val
    order = np.random.default_rng(seed).permutation(n)
    return Split(order[:train], order[train : train + val], order[train + val :])


# -- options ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainOptions:
    """What ``eagle train latency`` and the trainer use (defaults: the paper's Table S1)."""

    train_size: int = 900
    epochs: int = 250
    seed: int = 0
    layers: int = 4
    hidden: int = 600
    batch_size: int = 10
    few_shot: bool = False
    shots: int | None = None  # few-shot: use at most this many measurements (default: all, up to 200)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.layers < 1 or self.hidden < 1 or self.batch_size < 1:
            raise TrainingError(f"epochs, layers, hidden and batch size must be positive: {self}")
        if self.shots is not None and self.shots < MIN_FEW_SHOT:
            raise TrainingError(f"--shots must be at least {MIN_FEW_SHOT}, got {self.shots}")


# -- one training -------------------------------------------------------------------------------------------
def _metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    from predictors import metrics

    if true.shape[0] < 2:
        return {"n_test": int(true.shape[0])}
    out: dict[str, Any] = {k: round(float(v), 4) for k, v in metrics.summary(pred, true).items()}
    out["n_test"] = int(true.shape[0])
    return out


class _Heartbeat:
    """Forwards progress to a callback and, at most once a second, to the registry row."""

    def __init__(self, factory: sessionmaker[Session], version_id: int, on_progress: ProgressFn | None) -> None:
        self.factory, self.version_id, self.on_progress = factory, version_id, on_progress
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, progress: dict[str, Any], force: bool = False) -> None:
        progress = {**progress, "elapsed_s": round(time.monotonic() - self.started, 1)}
        if self.on_progress is not None:
            self.on_progress(progress)
        now = time.monotonic()
        if force or now - self._last >= 1.0:
            self._last = now
            with self.factory() as session:
                registry.update_progress(session, self.version_id, progress)

    def epoch(self, epoch: int, total: int, logs: dict[str, float]) -> None:
        elapsed = time.monotonic() - self.started
        progress = {
            "phase": "training",
            "epoch": epoch,
            "epochs": total,
            **{k: round(float(v), 6) for k, v in logs.items()},
            # the upper bound: early stopping usually ends it sooner
            "eta_s": round(elapsed / epoch * (total - epoch), 1),
        }
        self(progress, force=epoch == 1)


def train_latency(
    factory: sessionmaker[Session],
    device: str,
    workdir: str | Path,
    options: TrainOptions | None = None,
    on_progress: ProgressFn | None = None,
    min_within_10pct: float | None = None,
) -> PredictorVersion:
    """Train, evaluate and register one latency version of ``device`` (see the module docstring).

    ``min_within_10pct``: a quality gate; a version whose held-out share within ±10% is lower is marked
    failed (saying so) instead of ready, so it never replaces the version being served.
    """
    options = options or TrainOptions()
    with factory() as session:
        data = load_device_data(session, device)
    n = data.indices.shape[0]
    if options.few_shot:
        return _train_few_shot(factory, data, Path(workdir), options, on_progress, min_within_10pct)
    split = split_data(n, options.train_size, options.seed)
    from predictors.gcn import GCNConfig
    from predictors.regressor import TrainConfig

    gcn = GCNConfig(layers=options.layers, hidden=options.hidden)
    train_cfg = TrainConfig(epochs=options.epochs, batch_size=options.batch_size, seed=options.seed)
    hyper = {
        "method": "gcn",
        "gcn": gcn.to_dict(),
        "train": asdict(train_cfg),
        "split": {"train": int(split.train.size), "val": int(split.val.size), "test": int(split.test.size)},
        "seed": options.seed,
    }
    with factory() as session:
        row = registry.register_version(
            session,
            device,
            "latency",
            method="gcn",
            train_indices=data.indices[split.train].tolist(),
            hyperparameters=hyper,
            measurement_count=data.measurement_count,
        )
        version_id, version = row.id, row.version
    beat = _Heartbeat(factory, version_id, on_progress)
    with _failing_marks_version(factory, version_id):
        from latbench.graph import encode_all_nb201
        from predictors.latency import LatencyPredictor

        enc = encode_all_nb201()
        a, f, y = enc.adjacency[data.indices], enc.features[data.indices], data.latency_ms
        beat({"phase": "starting", "epoch": 0, "epochs": options.epochs}, force=True)
        predictor = LatencyPredictor(gcn, train_cfg)
        report = predictor.fit(
            a[split.train],
            f[split.train],
            y[split.train],
            val=(a[split.val], f[split.val], y[split.val]),
            progress=beat.epoch,
        )
        scores = _metrics(predictor.predict(a[split.test], f[split.test]), y[split.test])
        scores.update(
            n_train=int(split.train.size),
            n_val=int(split.val.size),
            epochs=report.epochs,
            best_epoch=report.best_epoch,
            train_seconds=round(report.seconds, 1),
        )
        done = {"phase": "done", "epoch": report.epochs, "epochs": options.epochs}
        rel = registry.artifact_dir_for(device, "latency", version)
        return _finish(factory, version_id, predictor, Path(workdir), rel, scores, done, min_within_10pct)


# -- accuracy ----------------------------------------------------------------------------------------------
ACCURACY_RECIPES = ("distilled", "robust", "paper")
TOP_K = (1, 10)  # the held-out metrics include the true ranks of the predicted best models


@dataclass(frozen=True)
class AccuracyOptions:
    """What ``eagle train accuracy`` uses. ``samples`` NB201 models drawn with ``seed`` (or the given
    ``indices``: the models a lab has trained) carry their CIFAR-100 validation accuracy (seed 888, as
    BRP-NAS); every other valid cell is held out for the metrics.

    Recipes (``benchmarks/results/table2.md``, ±5% share with 100 models): ``distilled`` (default, not in
    the paper: the GCN pretrained on a structural kernel predictor's labels of every NB201 graph, then
    fine-tuned; 87.1), ``robust`` (the paper's GCN with a Huber loss; 74-80), ``paper`` (Table S1 as is).
    """

    samples: int = 100
    seed: int = 0
    recipe: str = "distilled"
    indices: tuple[int, ...] | None = None
    epochs: int | None = None  # None: the recipe's (250, early stopping on the training loss)
    pretrain_epochs: int = 30  # distilled: epochs on the pseudo-labels
    layers: int = 4
    hidden: int = 600

    def __post_init__(self) -> None:
        if self.recipe not in ACCURACY_RECIPES:
            raise TrainingError(f"unknown recipe {self.recipe!r}; recipes: {', '.join(ACCURACY_RECIPES)}")
        sizes = (self.samples, self.pretrain_epochs, self.layers, self.hidden, self.epochs or 1)
        if min(sizes) < 1:
            raise TrainingError(f"samples, epochs, layers and hidden must be positive: {self}")


def accuracy_training_set(options: AccuracyOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training indices, held-out indices, accuracy of every NB201 cell in percent, NaN where invalid)."""
    from latbench.graph import encode_all_nb201
    from predictors.accuracy import brp_accuracy

    acc = brp_accuracy()
    valid = encode_all_nb201().valid
    usable = np.flatnonzero(np.isfinite(acc))
    if options.indices is None:
        if options.samples + 2 > usable.size:
            raise TrainingError(f"--samples {options.samples} leaves too few of {usable.size} valid models to test")
        train = np.random.default_rng(options.seed).permutation(usable)[: options.samples]
    else:
        train = np.unique(np.asarray(options.indices, dtype=np.int64))
        outside = train[(train < 0) | (train >= nb201.NUM_ARCHS)]
        if outside.size:
            raise TrainingError(f"NB201 indices are 0..{nb201.NUM_ARCHS - 1}; got {outside[:5].tolist()}")
        invalid = train[~valid[train]]
        if invalid.size:
            raise TrainingError(
                f"cells {invalid[:5].tolist()} have no input->output path (no network to train on): leave them out"
            )
        if train.size < 3:
            raise TrainingError(f"need at least 3 distinct models with accuracies, got {train.size}")
    return train, np.setdiff1d(usable, train), acc


def train_accuracy(
    factory: sessionmaker[Session],
    workdir: str | Path,
    options: AccuracyOptions | None = None,
    on_progress: ProgressFn | None = None,
) -> PredictorVersion:
    """Train, evaluate and register one accuracy version (device-free; see :class:`AccuracyOptions`)."""
    options = options or AccuracyOptions()
    train, test, acc = accuracy_training_set(options)
    from predictors.accuracy import AccuracyPredictor, DistillConfig
    from predictors.gcn import GCNConfig

    gcn = GCNConfig(layers=options.layers, hidden=options.hidden)
    base = AccuracyPredictor.default_train
    if options.recipe != "paper":
        base = replace(base, loss="huber", huber_delta=0.5)  # Table 2's `robust`, also `distilled`'s recipe
    train_cfg = replace(base, seed=options.seed, **({"epochs": options.epochs} if options.epochs else {}))
    distill = DistillConfig(pretrain_epochs=options.pretrain_epochs) if options.recipe == "distilled" else None
    hyper = {
        "method": f"gcn_{options.recipe}",
        "target": "cifar100 validation accuracy, seed 888 (percent)",
        "gcn": gcn.to_dict(),
        "train": asdict(train_cfg),
        "distill": None if distill is None else {"pretrain_epochs": distill.pretrain_epochs},
        "samples": int(train.size),
        "seed": options.seed,
        "drawn": options.indices is None,
    }
    with factory() as session:
        row = registry.register_version(
            session,
            None,
            "accuracy",
            method=f"gcn_{options.recipe}",
            train_indices=train.tolist(),
            hyperparameters=hyper,
            measurement_count=int(train.size),
        )
        version_id, version = row.id, row.version
    beat = _Heartbeat(factory, version_id, on_progress)
    with _failing_marks_version(factory, version_id):
        from latbench.graph import encode_all_nb201
        from predictors import metrics

        enc = encode_all_nb201()
        a, f = enc.adjacency, enc.features
        beat({"phase": "starting", "epoch": 0, "epochs": train_cfg.epochs}, force=True)
        predictor = AccuracyPredictor(gcn, train_cfg)
        started = time.monotonic()
        if distill is not None:
            beat({"phase": "labelling the search space", "epoch": 0, "epochs": train_cfg.epochs}, force=True)
            report = predictor.fit_distilled(a[train], f[train], acc[train], distill=distill, progress=beat.epoch)
            epochs = report.pretrain.epochs + report.finetune.epochs
        else:
            epochs = predictor.fit(a[train], f[train], acc[train], progress=beat.epoch).epochs
        pred = predictor.predict(a[test], f[test])
        scores = _metrics(pred, acc[test])
        for k in TOP_K:
            scores[f"top{k}_true_ranks"] = metrics.topk_true_ranks(pred, acc[test], k).tolist()
        scores.update(n_train=int(train.size), epochs=epochs, train_seconds=round(time.monotonic() - started, 1))
        done = {"phase": "done", "epoch": epochs, "epochs": epochs}
        rel = registry.artifact_dir_for(None, "accuracy", version)
        return _finish(factory, version_id, predictor, Path(workdir), rel, scores, done, None)


def reference_table(session: Session, devices: list[str]) -> ReferenceTable | None:
    """The store's measurements of ``devices`` (those it knows), as few-shot reference columns."""
    measured = {}
    for device in devices:
        if session.scalar(select(Device.id).where(Device.name == device)) is None:
            continue
        data = load_device_data(session, device)
        if data.indices.size:
            measured[device] = (data.indices, data.latency_ms)
    return ReferenceTable.from_measurements(measured) if measured else None


def _train_few_shot(
    factory: sessionmaker[Session],
    data: DeviceData,
    workdir: Path,
    options: TrainOptions,
    on_progress: ProgressFn | None,
    min_within_10pct: float | None,
) -> PredictorVersion:
    n = data.indices.shape[0]
    if n < MIN_FEW_SHOT:
        raise TrainingError(
            f"device {data.device!r} has {n} measured models; few-shot adaptation needs at least {MIN_FEW_SHOT} "
            "(20 give good predictions)"
        )
    shots = min(n, options.shots or MAX_SHOTS)
    order = np.random.default_rng(options.seed).permutation(n)
    adapt, rest = order[:shots], order[shots:]
    from predictors.pretrained import shipped_devices

    bases = [d for d in shipped_devices() if d != data.device]
    if not bases:
        raise TrainingError("few-shot adaptation needs the shipped pretrained predictors, and none are installed")
    hyper = {
        "method": "few-shot",
        "bases": bases,
        "features": "log predictions of the base predictors + the bases' measured log latency in the store "
        "(identical-graph medians) + op counts",
        "ridge_lambdas": list(RIDGE_LAMBDAS),
        "shots": int(shots),
        "seed": options.seed,
    }
    with factory() as session:
        row = registry.register_version(
            session,
            data.device,
            "latency",
            method="few-shot",
            train_indices=data.indices[adapt].tolist(),
            hyperparameters=hyper,
            measurement_count=data.measurement_count,
        )
        version_id, version = row.id, row.version
    beat = _Heartbeat(factory, version_id, on_progress)
    with _failing_marks_version(factory, version_id):
        from latbench.graph import encode_all_nb201

        enc = encode_all_nb201()
        a, f, y = enc.adjacency[data.indices], enc.features[data.indices], data.latency_ms
        beat({"phase": "loading base predictors", "bases": len(bases)}, force=True)
        with factory() as session:
            reference = reference_table(session, bases)
        predictor = FewShotPredictor(shipped_bases(exclude=data.device), reference)
        beat({"phase": "adapting", "shots": int(shots)}, force=True)
        info = predictor.fit(a[adapt], f[adapt], y[adapt])
        scores: dict[str, Any] = {"cv": _metrics(info["oof_ms"], y[adapt]), "lambda": info["lambda"]}
        if rest.size >= 2:  # measurements the adaptation did not use: a real held-out test
            scores.update(_metrics(predictor.predict(a[rest], f[rest]), y[rest]))
            scores["evaluation"] = "held-out measurements"
        else:
            scores.update({k: v for k, v in scores["cv"].items()})
            scores["evaluation"] = f"{info['cv']} cross-validation on the {shots} adaptation measurements"
        scores["n_train"] = int(shots)
        rel = registry.artifact_dir_for(data.device, "latency", version)
        return _finish(factory, version_id, predictor, workdir, rel, scores, {"phase": "done"}, min_within_10pct)


@contextlib.contextmanager
def _failing_marks_version(factory: sessionmaker[Session], version_id: int) -> Iterator[None]:
    """Any error of a training (an interruption included) marks its version failed, saying what happened;
    Keras state is freed either way."""
    try:
        yield
    except BaseException as exc:
        with factory() as session:
            registry.mark_failed(session, version_id, f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _clear_keras()


def _finish(
    factory: sessionmaker[Session],
    version_id: int,
    predictor: Any,
    workdir: Path,
    artifact: str,
    scores: dict[str, Any],
    progress: dict[str, Any],
    min_within_10pct: float | None,
) -> PredictorVersion:
    """Save the predictor under ``workdir / artifact`` and mark the version ready, or failed when it misses the
    quality gate (its metrics are kept)."""
    directory = workdir / artifact
    predictor.save(directory)
    with factory() as session:
        share = scores.get("within_10pct")
        if min_within_10pct is not None and share is not None and share < min_within_10pct:
            row = registry.mark_failed(
                session,
                version_id,
                f"held-out share within ±10% {share:.1f} is below the gate {min_within_10pct:.1f} (the version "
                "being served does better): not promoted",
            )
            row.metrics, row.progress, row.artifact = scores, progress, artifact  # kept for inspection
            session.commit()
            return row
        return registry.mark_ready(
            session, version_id, metrics=scores, artifact=artifact, artifact_dir=directory, progress=progress
        )


def _clear_keras() -> None:
    try:
        import keras

        keras.backend.clear_session()
    except Exception:  # pragma: no cover
        pass


# -- shipped predictors -------------------------------------------------------------------------------------
def register_shipped(session: Session) -> list[str]:
    """Register the shipped predictors as ready versions of the store's LatBench devices that have no latency
    version yet; returns the devices registered."""
    from predictors.pretrained import manifest, train_indices

    shipped = manifest()["devices"]
    if not shipped:
        return []
    counts = registry.measurement_counts(session)
    have = set(
        session.scalars(
            select(Device.name)
            .join(PredictorVersion, PredictorVersion.device_id == Device.id)
            .where(PredictorVersion.kind == "latency")
        )
    )
    done = []
    for device, entry in shipped.items():
        if device not in counts or device in have or counts[device] == 0:
            continue
        try:
            registry.register_version(
                session,
                device,
                "latency",
                method="pretrained",
                train_indices=train_indices(device).tolist(),
                hyperparameters={"method": "pretrained", **entry["hyperparameters"], "source": "LatBench 2020"},
                measurement_count=counts[device],
                state=PredictorState.READY,
                artifact=registry.PACKAGE_PREFIX + device,
                metrics=entry["metrics"],
                keep_indices=False,
                only_first=True,  # a server and a trainer starting together register it once
            )
        except registry.AlreadyRegistered:
            continue
        done.append(device)
    return done


# -- the service --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainerConfig:
    min_new: int = 100  # measurements more than the newest version was trained with
    min_total: int = 20  # before a device's first version
    gcn_min: int = 300  # below this many measured models a version is few-shot
    interval_s: float = 60.0
    stale_s: float = registry.STALE_AFTER_S
    # A new version must reach the served one's held-out ±10% share less this (points); None: no gate.
    gate_tolerance: float | None = 1.0
    options: TrainOptions = TrainOptions()

    def __post_init__(self) -> None:
        if self.min_new < 1 or self.min_total < MIN_FEW_SHOT or self.interval_s <= 0:
            raise TrainingError(
                f"need --min-new >= 1, --min-total >= {MIN_FEW_SHOT} and --interval > 0 (got {self.min_new}, "
                f"{self.min_total}, {self.interval_s})"
            )


@dataclass(frozen=True)
class Due:
    device: str
    measurements: int
    reason: str
    few_shot: bool


class Trainer:
    """The trainer loop: find devices due for a new version, train them one at a time."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        workdir: str | Path,
        config: TrainerConfig | None = None,
        say: Callable[[str], None] = print,
        stop: threading.Event | None = None,
    ) -> None:
        self.factory = factory
        self.workdir = Path(workdir)
        self.config = config or TrainerConfig()
        self.say = say
        self.stop = stop or threading.Event()

    def _check_stop(self, _progress: dict[str, Any]) -> None:
        if self.stop.is_set():
            raise Interrupted("the trainer was stopped during this training")

    def due(self, session: Session) -> list[Due]:
        cfg = self.config
        out = []
        for device, count in sorted(registry.measurement_counts(session).items()):
            if count < cfg.min_total:
                continue
            last = registry.latest(session, device, "latency")
            if last is None:
                reason = f"no predictor yet, {count} measurements"
            elif last.state == PredictorState.TRAINING.value:
                continue  # being trained (a dead trainer's row is failed by fail_stale first)
            elif count - last.measurement_count >= cfg.min_new:
                reason = f"{count - last.measurement_count} new measurements since version {last.version}"
            else:
                continue
            out.append(Due(device, count, reason, few_shot=count < cfg.gcn_min))
        return out

    def _gate(self, device: str) -> float | None:
        """The served version's held-out share within ±10%, less ``gate_tolerance``: what a new one must reach."""
        if self.config.gate_tolerance is None:
            return None
        with self.factory() as session:
            served = registry.latest_ready(session, device, "latency")
            share = (served.metrics or {}).get("within_10pct") if served is not None else None
        return None if share is None else float(share) - self.config.gate_tolerance

    def run_once(self) -> list[dict[str, Any]]:
        """One pass: housekeeping, then train every due device; returns what happened per device."""
        with self.factory() as session:
            stale = registry.fail_stale(session, self.config.stale_s)
            if stale:
                self.say(f"marked {stale} abandoned training version(s) failed")
            shipped = register_shipped(session)
            if shipped:
                self.say(f"registered shipped predictors for {len(shipped)} LatBench device(s)")
            due = self.due(session)
        results: list[dict[str, Any]] = []
        for item in due:
            if self.stop.is_set():
                break
            method = "few-shot" if item.few_shot else "gcn"
            self.say(f"{item.device}: training a {method} latency predictor ({item.reason})")
            options = TrainOptions(**{**asdict(self.config.options), "few_shot": item.few_shot})
            started = time.monotonic()
            try:
                gate = self._gate(item.device)
                row = train_latency(self.factory, item.device, self.workdir, options, self._check_stop, gate)
            except Interrupted:
                self.say(f"{item.device}: training abandoned (stopping)")
                results.append({"device": item.device, "state": "failed", "error": "interrupted"})
                break
            except Exception as exc:
                log.exception("training %s failed", item.device)
                self.say(f"{item.device}: training failed: {exc}")
                results.append({"device": item.device, "state": "failed", "error": str(exc)})
                continue
            m = row.metrics or {}
            if row.state != PredictorState.READY.value:
                self.say(f"{item.device}: version {row.version} not promoted: {row.error}")
                results.append({"device": item.device, "state": row.state, "version": row.version, "error": row.error})
                continue
            self.say(
                f"{item.device}: version {row.version} ready in {time.monotonic() - started:.0f} s "
                f"(held-out ±10% {m.get('within_10pct', float('nan')):.1f}, rho {m.get('spearman', float('nan')):.3f})"
            )
            results.append({"device": item.device, "state": row.state, "version": row.version, "metrics": m})
        return results

    def run(self, once: bool = False) -> int:
        """Loop until ``self.stop`` is set (or one pass with ``once``); returns the number of versions trained."""
        trained = 0
        while not self.stop.is_set():
            trained += sum(1 for r in self.run_once() if r["state"] == "ready")
            if once:
                break
            self.stop.wait(self.config.interval_s)
        return trained
