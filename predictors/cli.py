"""``eagle train``, ``eagle predict`` and ``eagle trainer``.

* ``eagle train latency --device D`` trains one latency predictor from the store's measurements with a
  progress bar and registers it (``--few-shot``: adapt the shipped predictors with a few measurements).
* ``eagle train accuracy`` trains a device-free accuracy predictor on NB201 CIFAR-100 accuracies of a few
  models (Table 2's recipes) and registers it.
* ``eagle trainer`` is the trainer service (see ``predictors/service.py``); ``--once`` makes one pass.
* ``eagle predict --device D ARCH...`` asks a server's ``/v1/predict``.

``train`` and ``trainer`` open the store directly: ``--db`` or ``EAGLE_DB_URL`` (or ``eagle.env``), else
the SQLite file ``<workdir>/eagle.db`` that ``eagle serve`` uses, workdir from ``--workdir`` or
``EAGLE_WORKDIR`` (default ``./var``). Artifacts go under ``<workdir>/predictors/``. Heavy modules are
imported inside the command functions so that ``eagle --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from latbench.cli import CLIError, emit


# -- shared options ---------------------------------------------------------------------------------------
def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="database URL (default: $EAGLE_DB_URL, else <workdir>/eagle.db)")
    parser.add_argument("--workdir", help="where artifacts go, as for eagle serve (default: $EAGLE_WORKDIR or ./var)")


def _settings(args: argparse.Namespace) -> tuple[str, Path]:
    """(database URL, workdir) from the options, then the EAGLE_* settings, then eagle serve's defaults."""
    from pydantic import ValidationError

    from eagle_server.app import database_url
    from eagle_server.settings import Settings, get_settings

    overrides = {k: v for k, v in {"db_url": args.db, "workdir": args.workdir}.items() if v is not None}
    try:
        settings = Settings(**{**get_settings().model_dump(), **overrides})
    except ValidationError as exc:
        raise CLIError(f"bad setting: {exc.errors()[0]['msg']}") from None
    return database_url(settings), Path(settings.workdir)


@contextlib.contextmanager
def _store(url: str) -> Iterator[Any]:
    """A session factory on the migrated store; database problems become one-line errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from latbench.store.db import make_engine, session_factory, upgrade

    try:
        engine = make_engine(url)
        upgrade(engine)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        raise CLIError(f"cannot open the database {_masked(url)}: {exc}") from None
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def _masked(url: str) -> str:
    from sqlalchemy import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def _positive(name: str, value: int | float | None) -> None:
    if value is not None and value <= 0:
        raise CLIError(f"{name} must be positive, got {value}")


# -- eagle train ------------------------------------------------------------------------------------------
def register_train(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="train a predictor from the store and register it")
    kinds = parser.add_subparsers(dest="train_kind", metavar="KIND")
    parser.set_defaults(func=lambda _a: (parser.print_help(), 2)[1])
    latency = kinds.add_parser(
        "latency",
        help="a GCN latency predictor for one device (paper recipe), or --few-shot from 10-50 measurements",
        description="Train a latency predictor for DEVICE on its measurements in the store: the paper's GCN "
        "(900 training / 100 validation models, the rest held out for the metrics), or with --few-shot an "
        "adaptation of the shipped LatBench predictors to a handful of measurements. Registers the version; "
        "a running server serves it within seconds.",
    )
    latency.add_argument("--device", required=True, help="device name, e.g. desktop_gpu_gtx_1080ti_fp32 or local")
    latency.add_argument("--train-size", type=int, default=900, help="training models (default 900)")
    latency.add_argument("--epochs", type=int, default=250, help="maximum epochs (default 250, early stopping)")
    latency.add_argument("--seed", type=int, default=0, help="split and initialisation seed (default 0)")
    latency.add_argument("--layers", type=int, default=4, help="graph layers (default 4)")
    latency.add_argument("--hidden", type=int, default=600, help="hidden units per layer (default 600)")
    latency.add_argument("--batch-size", type=int, default=10, help="batch size (default 10)")
    latency.add_argument(
        "--few-shot", action="store_true", help="adapt the pretrained predictors to the device's few measurements"
    )
    latency.add_argument("--shots", type=int, help="few-shot: use at most this many measurements (default all)")
    _store_options(latency)
    latency.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    latency.set_defaults(func=run_train_latency)
    accuracy = kinds.add_parser(
        "accuracy",
        help="a GCN accuracy predictor (CIFAR-100, NB201) from a few trained models",
        description="Train an accuracy predictor on the CIFAR-100 validation accuracy (seed 888, as BRP-NAS) of "
        "--samples NB201 models drawn at random (or of --indices, the models you have trained); every other valid "
        "cell is held out for the metrics (shares within ±1/5/10%, Spearman, Kendall, true ranks of the predicted "
        "top 1 and top 10). Recipes (Table 2, ±5% share with 100 models): distilled 87.1 (default, not in the "
        "paper: pretrained on a structural predictor's labels of every NB201 graph, then fine-tuned), robust "
        "(the paper's GCN with a Huber loss), paper (Table S1 as is). Registers a device-free version.",
    )
    accuracy.add_argument("--samples", type=int, default=100, help="models with known accuracy (default 100)")
    accuracy.add_argument("--indices", help="comma-separated NB201 indices to train on instead of a random draw")
    accuracy.add_argument("--recipe", choices=("distilled", "robust", "paper"), default="distilled")
    accuracy.add_argument("--seed", type=int, default=0, help="draw and initialisation seed (default 0)")
    accuracy.add_argument("--epochs", type=int, help="maximum epochs on the labelled models (default 250)")
    accuracy.add_argument("--pretrain-epochs", type=int, default=30, help="distilled: epochs on the labels (30)")
    accuracy.add_argument("--layers", type=int, default=4, help="graph layers (default 4)")
    accuracy.add_argument("--hidden", type=int, default=600, help="hidden units per layer (default 600)")
    _store_options(accuracy)
    accuracy.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    accuracy.set_defaults(func=run_train_accuracy)
    suggest = kinds.add_parser(
        "suggest",
        help="which NB201 models to measure first on a new device (for --few-shot)",
        description="Pick COUNT distinct valid NB201 models spread over the space's latency range (strata of "
        "the shipped LatBench predictors' main axis), the measurements a few-shot predictor learns most from. "
        "Prints the indices and the eagle campaign submit line that queues them.",
    )
    suggest.add_argument(
        "--device", required=True, help="the new device's name (a LatBench device's own predictor is left out)"
    )
    suggest.add_argument("--count", type=int, default=20, help="models to measure (default 20)")
    suggest.add_argument("--seed", type=int, default=0, help="draw within the strata (default 0)")
    suggest.add_argument("--json", action="store_true", help="print one JSON object")
    suggest.set_defaults(func=run_train_suggest)


def _version_payload(row: Any, seconds: float | None = None) -> dict[str, Any]:
    from predictors.registry import device_name

    out = {
        "id": row.id,
        "device": device_name(row),
        "kind": row.kind,
        "version": row.version,
        "state": row.state,
        "method": row.method,
        "train_count": row.train_count,
        "metrics": row.metrics,
        "hyperparameters": row.hyperparameters,
        "artifact": row.artifact,
    }
    if seconds is not None:
        out["seconds"] = round(seconds, 1)
    return out


def _human_version(p: dict[str, Any]) -> str:
    m = p.get("metrics") or {}

    def pct(key: str) -> str:
        return f"{m[key]:.1f}%" if key in m else "-"

    lines = [
        f"{p['device'] + ' ' if p['device'] else ''}{p['kind']} version {p['version']} ({p['method']}): {p['state']}"
        + (f" in {p['seconds']:.0f} s" if "seconds" in p else ""),
        f"  trained on {p['train_count']} models; held-out: within ±1% {pct('within_1pct')}, ±5% "
        f"{pct('within_5pct')}, ±10% {pct('within_10pct')}, Spearman {m.get('spearman', float('nan')):.3f} "
        f"({m.get('n_test', 0)} models)",
        f"  artifact {p['artifact']}",
    ]
    return "\n".join(lines)


def run_train_latency(args: argparse.Namespace) -> int:
    from latbench.store.devices import UnknownDevice
    from predictors.service import TrainingError, TrainOptions, train_latency

    for name in ("train_size", "epochs", "layers", "hidden", "batch_size", "shots"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))

    def options() -> TrainOptions:
        return TrainOptions(
            train_size=args.train_size,
            epochs=args.epochs,
            seed=args.seed,
            layers=args.layers,
            hidden=args.hidden,
            batch_size=args.batch_size,
            few_shot=args.few_shot,
            shots=args.shots,
        )

    return _run_training(
        args,
        args.device,
        options,
        lambda factory, workdir, opts, progress: train_latency(factory, args.device, workdir, opts, progress),
        (TrainingError, UnknownDevice),
        _human_version,
    )


def _run_training(
    args: argparse.Namespace,
    label: str,
    options: Callable[[], Any],
    train: Callable[[Any, Path, Any, Any], Any],
    errors: tuple[type[Exception], ...],
    human: Callable[[dict[str, Any]], str],
) -> int:
    """One ``eagle train`` command: options checked, the store opened, a progress bar unless --json, the trained
    version printed; the listed errors (and registry errors) become one-line CLI errors."""
    import time

    from predictors.registry import RegistryError
    from predictors.service import TrainingError

    url, workdir = _settings(args)
    try:
        opts = options()
    except TrainingError as exc:
        raise CLIError(str(exc)) from None
    started = time.monotonic()
    with _store(url) as factory, _progress(enabled=not args.json, device=label) as on_progress:
        try:
            # Keras prints to stdout; keep stdout for the one result.
            with contextlib.redirect_stdout(sys.stderr):
                row = train(factory, workdir, opts, on_progress)
        except (*errors, RegistryError) as exc:
            raise CLIError(str(exc)) from None
    emit(_version_payload(row, time.monotonic() - started), args.json, human)
    return 0


def _indices(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise CLIError(f"--indices takes comma-separated NB201 indices, got {text!r}") from None


def run_train_accuracy(args: argparse.Namespace) -> int:
    from predictors.service import AccuracyOptions, TrainingError, train_accuracy

    for name in ("samples", "epochs", "pretrain_epochs", "layers", "hidden"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))

    def options() -> AccuracyOptions:
        return AccuracyOptions(
            samples=args.samples,
            seed=args.seed,
            recipe=args.recipe,
            indices=_indices(args.indices),
            epochs=args.epochs,
            pretrain_epochs=args.pretrain_epochs,
            layers=args.layers,
            hidden=args.hidden,
        )

    return _run_training(args, "accuracy", options, train_accuracy, (TrainingError,), _human_accuracy)


def _human_accuracy(p: dict[str, Any]) -> str:
    m = p.get("metrics") or {}
    ranks = m.get("top10_true_ranks") or []
    return "\n".join(
        [
            _human_version(p),
            f"  Kendall {m.get('kendall', float('nan')):.3f}; true rank of the predicted best "
            f"{(m.get('top1_true_ranks') or ['-'])[0]}, of the predicted top 10: {', '.join(map(str, ranks))}",
        ]
    )


def run_train_suggest(args: argparse.Namespace) -> int:
    from predictors.fewshot import TrainingError, shipped_bases, suggest_models

    _positive("--count", args.count)
    bases = shipped_bases(exclude=args.device)
    if not bases:
        raise CLIError("no shipped pretrained predictors are installed: cannot suggest models")
    try:
        indices = suggest_models(args.count, bases, seed=args.seed)
    except TrainingError as exc:
        raise CLIError(str(exc)) from None
    command = f"eagle campaign submit --device {args.device} --indices {','.join(map(str, indices))}"
    payload = {"device": args.device, "count": len(indices), "seed": args.seed, "indices": indices, "submit": command}
    emit(payload, args.json, lambda p: f"measure these {p['count']} models on {p['device']}:\n  {p['submit']}")
    return 0


@contextlib.contextmanager
def _progress(enabled: bool, device: str) -> Iterator[Any]:
    """A Rich progress bar over epochs (on stderr), fed by the training's progress dicts."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    task = progress.add_task(f"training {device}", total=None, info="")

    def update(p: dict[str, Any]) -> None:
        if p.get("epochs"):
            losses = "  ".join(f"{k} {p[k]:.4f}" for k in ("loss", "val_loss") if k in p)
            progress.update(task, total=p["epochs"], completed=p.get("epoch", 0), info=losses)
        elif p.get("phase"):
            progress.update(task, info=str(p["phase"]))

    with progress:
        yield update


# -- eagle trainer ----------------------------------------------------------------------------------------
def register_trainer(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "trainer",
        help="the trainer service: trains a new predictor when a device has enough new measurements",
        description="Watch the store; when a device has --min-new measurements more than its newest predictor "
        "was trained with (or --min-total and no predictor), train and register a new latency version, one "
        "device at a time. Devices with fewer than --gcn-min measured models get a few-shot version. Stop with "
        "SIGTERM / Ctrl-C (a training in progress is abandoned and marked failed).",
    )
    _store_options(parser)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--min-new", type=int, default=100, help="new measurements that trigger a version (100)")
    parser.add_argument("--min-total", type=int, default=20, help="measurements before a first version (20)")
    parser.add_argument("--gcn-min", type=int, default=300, help="below this, versions are few-shot (300)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between passes (60)")
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="serve every new version (default: one whose held-out ±10%% share is over 1 point below the served "
        "version's is recorded as failed)",
    )
    parser.add_argument("--train-size", type=int, default=900, help="GCN training models (900)")
    parser.add_argument("--epochs", type=int, default=250, help="maximum epochs (250)")
    parser.add_argument("--layers", type=int, default=4, help="graph layers (4)")
    parser.add_argument("--hidden", type=int, default=600, help="hidden units (600)")
    parser.add_argument("--json", action="store_true", help="with --once: print one JSON object")
    parser.set_defaults(func=run_trainer)


def run_trainer(args: argparse.Namespace) -> int:
    import logging

    from predictors.service import Trainer, TrainerConfig, TrainingError, TrainOptions

    for name in ("min_new", "min_total", "gcn_min", "interval", "train_size", "epochs", "layers", "hidden"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    url, workdir = _settings(args)
    try:
        config = TrainerConfig(
            min_new=args.min_new,
            min_total=args.min_total,
            gcn_min=args.gcn_min,
            interval_s=args.interval,
            gate_tolerance=None if args.no_gate else 1.0,
            options=TrainOptions(
                train_size=args.train_size, epochs=args.epochs, layers=args.layers, hidden=args.hidden
            ),
        )
    except TrainingError as exc:
        raise CLIError(str(exc)) from None
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet = args.json and args.once

    def say(text: str) -> None:
        if not quiet:
            print(f"eagle trainer: {text}", file=sys.stderr if args.json else sys.stdout, flush=True)

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _store(url) as factory:
            trainer = Trainer(factory, workdir, config, say=say, stop=stop)
            say(f"watching {_masked(url)} (artifacts under {workdir / 'predictors'})")
            if args.once:
                with contextlib.redirect_stdout(sys.stderr):
                    results = trainer.run_once()
                emit({"trained": results}, args.json, lambda p: f"{len(p['trained'])} device(s) handled")
                return 1 if any(r["state"] == "failed" for r in results) else 0
            with contextlib.redirect_stdout(sys.stderr):
                trainer.run()
            say("stopped")
            return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- eagle predict ----------------------------------------------------------------------------------------
def register_predict(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("predict", help="predicted latency of NB201 models on a device (asks the server)")
    parser.add_argument("archs", nargs="+", metavar="ARCH", help="NB201 index or arch string (several allowed)")
    parser.add_argument("--device", required=True, help="device name (see eagle predict's 404 for the list)")
    parser.add_argument(
        "--server", metavar="URL", help="Eagle server (default: $EAGLE_SERVER_URL or http://127.0.0.1:8000)"
    )
    parser.add_argument(
        "--accuracy", action="store_true", help="also the predicted CIFAR-100 accuracy (needs eagle train accuracy)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_predict)


def _human_predictions(p: dict[str, Any]) -> str:
    info = p["predictor"]
    lines = [f"{p['device']}: {p['kind']} predictor version {p['predictor_version']} ({info['method']})"]
    if p.get("accuracy_predictor"):
        acc = p["accuracy_predictor"]
        lines[0] += f"; accuracy predictor version {acc['version']} ({acc['method']})"
    for item in p["predictions"]:
        if item["latency_ms"] is None:
            value = f"invalid: {item.get('reason', 'no latency')}"
        else:
            value = f"{item['latency_ms']:.4f} ms predicted"
            if item.get("measured_ms") is not None:
                value += f", {item['measured_ms']:.4f} ms measured"
            if item.get("accuracy") is not None:
                value += f", accuracy {item['accuracy']:.2f}% predicted"
        lines.append(f"  {item['index']:>5}  {item['arch_str']}  {value}")
    return "\n".join(lines)


def run_predict(args: argparse.Namespace) -> int:
    from eagle_server.client import ApiError, EagleClient

    archs: list[int | str] = [int(a) if a.strip().isdigit() else a for a in args.archs]
    client = EagleClient(server=args.server)
    try:
        body = {"device": args.device, "archs": archs, "accuracy": args.accuracy}
        payload = client.request("POST", "/predict", json=body).json()
    except ApiError as exc:
        where = f" ({exc.status})" if exc.status else ""
        raise CLIError(f"{exc.detail}{where}") from None
    finally:
        client.close()
    emit(payload, args.json, _human_predictions)
    return 0
