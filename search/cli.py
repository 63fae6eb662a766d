"""``eagle search``: run one NAS on NB201 CIFAR-100 with a latency limit on a device.

Where latencies come from:

* the search filters candidates with ``--server URL`` (the REST batch prediction endpoint), or
  ``--predictor DIR`` (a saved ``predictors.latency.LatencyPredictor``, in process), or, with neither,
  the measured LatBench latencies;
* a model counts as found only if its *measured* latency is under the limit: the shipped LatBench
  table, or the newest measurements in the SQL store with ``--db URL``.

Prints the chosen model (the found model with the best validation accuracy seen; its test accuracy is
the reported figure) and the best test accuracy among the trained models, and writes every trained
model in order to ``--trace FILE`` (``.csv`` or JSON).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from latbench.cli import CLIError, emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="NAS on NB201 under a latency limit: BRP-NAS, aging evolution, REINFORCE, random")
    p.add_argument("--algo", required=True, choices=("brp", "ae", "reinforce", "random"), help="search algorithm")
    p.add_argument("--device", help="LatBench device name, e.g. desktop_gpu_gtx_1080ti_fp32 (needed with a limit)")
    p.add_argument("--latency-limit", type=float, metavar="MS", help="latency limit in ms (default: none)")
    d = _defaults()  # the same defaults as the benchmarks (search.runner.SearchOptions)
    p.add_argument(
        "--budget",
        type=int,
        default=d["budget"],
        metavar="K",
        help=f"BRP-NAS predictor-training budget K ({d['budget']})",
    )
    p.add_argument("--total", type=int, required=True, metavar="M", help="models trained in all (the search budget)")
    p.add_argument(
        "--iterations",
        type=int,
        default=d["iterations"],
        metavar="I",
        help=f"BRP-NAS predictor iterations I ({d['iterations']})",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=d["alpha"],
        help=f"BRP-NAS share of top-ranked picks per iteration ({d['alpha']})",
    )
    p.add_argument(
        "--relation",
        choices=_relations(),
        default="gcn",
        help="BRP-NAS binary predictor: gcn (the paper's), onehot, kernel or linear (structural descriptors; "
        "not the paper's)",
    )
    p.add_argument(
        "--length-scale",
        type=float,
        default=d["length_scale"],
        help=f"kernel relation predictor: RBF length scale ({d['length_scale']})",
    )
    p.add_argument(
        "--l2", type=float, default=d["l2"], help="kernel / linear relation predictor: regularisation (0.01 / 0.1)"
    )
    p.add_argument(
        "--optimism",
        type=float,
        default=d["optimism"],
        help=f"linear relation predictor: weight of the score's uncertainty in the ranking ({d['optimism']})",
    )
    p.add_argument("--hidden", type=int, default=d["hidden"], help=f"GCN relation predictor width ({d['hidden']})")
    p.add_argument(
        "--steps", type=int, default=d["steps"], help=f"GCN relation predictor training steps per fit ({d['steps']})"
    )
    p.add_argument(
        "--ensemble", type=int, default=d["ensemble"], help=f"GCN relation predictor members ({d['ensemble']})"
    )
    p.add_argument(
        "--target",
        choices=("soft", "hard"),
        default=d["target"],
        help=f"BRP-NAS pair targets: soft = sigmoid(accuracy difference / temperature), hard = 0/1 ({d['target']})",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=d["temperature"],
        help="soft-target temperature in accuracy points (default: min-max normalised accuracies)",
    )
    p.add_argument(
        "--refit-every",
        type=int,
        default=d["refit_every"],
        metavar="N",
        help="BRP-NAS, not in the paper: retrain the predictor after every N models of the final phase (0: never)",
    )
    p.add_argument(
        "--refit-until",
        type=int,
        default=d["refit_until"],
        metavar="T",
        help="with --refit-every: stop refitting once T models are trained (default: all M)",
    )
    p.add_argument("--transfer", action="store_true", help="BRP-NAS: start the predictor from --predictor's trunk")
    p.add_argument("--server", metavar="URL", help="filter with the server's predictions (POST URL/v1/predict)")
    p.add_argument("--predictor", metavar="DIR", help="filter with a saved latency predictor (in process)")
    p.add_argument("--db", metavar="URL", help="measured latencies from this LatBench store (default: shipped table)")
    p.add_argument(
        "--noise",
        choices=("random", "888"),
        default="random",
        help="validation accuracy of a random seed per training (random) or always seed 888",
    )
    p.add_argument("--no-cache", action="store_true", help="re-train (and pay for) models already trained")
    p.add_argument("--seed", type=int, help="random seed (default: fresh entropy)")
    p.add_argument("--trace", metavar="FILE", help="write every trained model in order (.csv, else JSON)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _relations() -> tuple[str, ...]:
    from search.runner import RELATIONS

    return RELATIONS


def _defaults() -> dict[str, Any]:
    from dataclasses import fields

    from search.runner import SearchOptions

    return {f.name: f.default for f in fields(SearchOptions)}


def _sources(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(predicted source or None, measured source or None, predictor for transfer or None)."""
    from search.latency import (
        LatencySource,
        LatencySourceError,
        PredictorLatency,
        RestLatency,
        StoreLatency,
        TableLatency,
    )

    if args.server and args.predictor:
        raise CLIError("give --server or --predictor, not both")
    if args.device is None:
        if args.latency_limit is not None or args.server or args.predictor:
            raise CLIError("--device is needed with --latency-limit, --server or --predictor")
        return None, None, None
    regressor = None
    measured: LatencySource
    predicted: LatencySource
    try:
        if args.db:
            from latbench.store import open_store

            measured = StoreLatency(open_store(args.db, migrate=False), args.device)
        else:
            measured = TableLatency(args.device)
        if args.server:
            predicted = RestLatency(args.server, args.device)
        elif args.predictor:
            from predictors.latency import LatencyPredictor

            try:
                regressor = LatencyPredictor.load(args.predictor)
            except (OSError, ValueError) as exc:
                raise CLIError(f"cannot load the latency predictor: {exc}") from None
            predicted = PredictorLatency(regressor, name=f"predictor:{args.predictor}")
        else:
            predicted = measured
    except LatencySourceError as exc:
        raise CLIError(str(exc)) from None
    return predicted, measured, regressor


def run(args: argparse.Namespace) -> int:
    from search.latency import LatencySourceError
    from search.oracle import AccuracyOracle
    from search.problem import Problem
    from search.runner import SearchOptions, make_relation_model, run_search

    if args.latency_limit is not None and args.latency_limit <= 0:
        raise CLIError(f"--latency-limit must be a positive number of ms, got {args.latency_limit}")
    try:
        options = SearchOptions(
            algorithm=args.algo,
            total=args.total,
            budget=args.budget,
            iterations=args.iterations,
            alpha=args.alpha,
            relation=args.relation,
            hidden=args.hidden,
            steps=args.steps,
            target=args.target,
            temperature=args.temperature,
            ensemble=args.ensemble,
            refit_every=args.refit_every,
            refit_until=args.refit_until,
            length_scale=args.length_scale,
            l2=args.l2,
            optimism=args.optimism,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.transfer and not args.predictor:
        raise CLIError("--transfer needs --predictor DIR (the latency predictor whose trunk starts the search's)")
    predicted, measured, regressor = _sources(args)
    accuracy = AccuracyOracle(fixed_seed=None if args.noise == "random" else 888)
    with _progress(args) as progress:
        problem = Problem.build(
            args.latency_limit,
            predicted=predicted,
            measured=measured,
            accuracy=accuracy,
            cache=not args.no_cache,
            progress=progress,
        )
        try:
            model = None
            if options.algorithm == "brp":
                model = make_relation_model(options, transfer=regressor if args.transfer else None)
            result = run_search(problem, options, seed=args.seed, relation_model=model)
        except LatencySourceError as exc:
            raise CLIError(str(exc)) from None
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    payload = result.to_dict()
    payload["device"] = args.device
    payload["latency_source"] = getattr(predicted, "name", None)
    payload["measured_source"] = getattr(measured, "name", None)
    if args.trace:
        payload["trace_file"] = str(_write_trace(Path(args.trace), result))
    emit(payload, args.json, _human)
    return 0


class _progress:
    """A Rich progress bar on stderr (only on a terminal); the callable updates it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.enabled = not args.no_progress and sys.stderr.isatty()
        self.total = args.total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("trained models"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("search", total=self.total)
        return self.update

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _write_trace(path: Path, result: Any) -> Path:
    rows = [entry.to_dict() for entry in result.trace]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".csv":
            with path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
                writer.writeheader()
                writer.writerows(rows)
        else:
            path.write_text(json.dumps({"run": result.to_dict(), "trace": rows}, indent=1))
    except OSError as exc:
        raise CLIError(f"cannot write the trace to {path}: {exc.strerror or exc}") from None
    return path


def _human(p: dict[str, Any]) -> str:
    def model(entry: dict[str, Any] | None) -> str:
        if entry is None:
            return "none found"
        lat = ""
        if entry["measured_ms"] is not None:
            pred = entry["predicted_ms"]
            lat = f", latency {entry['measured_ms']:.3f} ms measured" + (f" / {pred:.3f} ms predicted" if pred else "")
        return (
            f"#{entry['index']} {entry['arch_str']}: test {entry['test_acc']:.2f}% "
            f"(validation seen {entry['valid_acc']:.2f}%, seed {entry['seed']}){lat}"
        )

    limit = f" under {p['limit_ms']} ms on {p['device']}" if p["limit_ms"] is not None else ""
    lines = [
        f"{p['algorithm']}: trained {p['trained']}/{p['total']} models{limit}, {p['found']} found, "
        f"{p['cache_hits']} cache hits",
        f"selected (best validation seen): {model(p['selected'])}",
        f"best test among trained:         {model(p['max_test'])}",
    ]
    if "trace_file" in p:
        lines.append(f"trace: {p['trace_file']}")
    return "\n".join(lines)
