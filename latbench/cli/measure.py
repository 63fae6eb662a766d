"""``eagle measure``: build one NB201 model on this machine and time it with the paper's protocol."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from latbench import nb201
from latbench.cli import CLIError, emit
from latbench.measure import PRECISIONS, RUNTIMES, MeasureError, check_options, measure_arch
from latbench.protocol import DEFAULT_RUNS, DEFAULT_WARMUP, ProtocolParams


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("measure", help="build one NB201 model here and time it (paper protocol)")
    parser.add_argument("arch", help="NB201 index (0..15624), arch string, or op:<6-digit op code>")
    parser.add_argument("--runtime", choices=RUNTIMES, required=True, help="tf (Keras via tf.function) or litert")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="litert model precision")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"timed runs (default {DEFAULT_RUNS})")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help=f"untimed runs first ({DEFAULT_WARMUP})")
    parser.add_argument("--threads", type=int, default=None, help="litert interpreter threads (runtime default)")
    parser.add_argument("--seed", type=int, default=0, help="weights and inputs seed (default 0)")
    parser.add_argument("--raw", action="store_true", help="include the raw timings in the output")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_measure)


def _human(p: dict[str, Any]) -> str:
    s = p["stats"]
    convert = f", convert {p['convert_s']:.2f} s" if p["convert_s"] is not None else ""
    return "\n".join(
        [
            f"index {p['index']}  {p['arch_str']}  (op code {p['op_code']})",
            f"{p['runtime']} {p['precision']}: {p['latency_ms']:.4f} ms",
            f"  {s['runs']} runs in {s['groups']} groups, {s['kept_total']} kept; "
            f"median {s['median_ms']:.4f} ms, IQR {s['iqr_ms']:.4f}, "
            f"min {s['min_ms']:.4f}, max {s['max_ms']:.4f}",
            f"  build {p['build_s']:.2f} s{convert}",
        ]
    )


def run_measure(args: argparse.Namespace) -> int:
    try:
        params = ProtocolParams(runs=args.runs, warmup=args.warmup)
    except ValueError as exc:  # names the bad option (runs or warmup)
        raise CLIError(f"bad option: {exc}") from exc
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be at least 1, got {args.threads}")
    try:
        arch = nb201.parse_arch(args.arch)
        check_options(args.runtime, args.precision)
        # Keras/TF print progress (e.g. export paths) on stdout; keep stdout for the one result.
        with contextlib.redirect_stdout(sys.stderr):
            payload = measure_arch(
                arch,
                runtime=args.runtime,
                precision=args.precision,
                params=params,
                seed=args.seed,
                num_threads=args.threads,
                include_raw=args.raw,
            )
    except (nb201.ArchError, MeasureError) as exc:
        raise CLIError(str(exc)) from exc
    emit(payload, args.json, _human)
    return 0
