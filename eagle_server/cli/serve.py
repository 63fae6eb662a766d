"""``eagle serve``: REST + gRPC (+ an optional local agent) in one process; see eagle_server/serve.py."""

from __future__ import annotations

import argparse

from latbench.cli import CLIError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the Eagle server: REST API, gRPC agent service, optional local agent",
        description="Run the REST API (uvicorn) and the agent service (gRPC) on one store; settings come "
        "from EAGLE_* variables or eagle.env, and these options override them.",
    )
    parser.add_argument("--db", metavar="URL", help="database URL (default: SQLite file <workdir>/eagle.db)")
    parser.add_argument("--host", help="REST address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="REST port (default 8000; 0: any free port)")
    parser.add_argument("--grpc", metavar="HOST:PORT", help="gRPC address for agents (default 127.0.0.1:50051)")
    parser.add_argument(
        "--grpc-workers",
        type=int,
        metavar="N",
        help="processes for the agent service, sharing the gRPC port (default: 1 on SQLite, one per CPU core, "
        "at most 4, on PostgreSQL)",
    )
    parser.add_argument("--api-key", metavar="KEY", help="key for REST writes (default: generated, kept in workdir)")
    parser.add_argument("--workdir", help="where the server keeps its files (default ./var)")
    parser.add_argument(
        "--local-agent", action="store_true", help="also start a desktop-CPU agent here, for device 'local'"
    )
    parser.add_argument(
        "--agent-runtime", choices=("litert", "tf"), default="litert", help="the local agent's runtime (litert)"
    )
    parser.add_argument(
        "--no-import", action="store_true", help="do not load the shipped LatBench 2020 release into an empty store"
    )
    parser.add_argument(
        "--measure",
        metavar="SPEC",
        help="one-shot: measure these models on the local agent, print the latencies and exit "
        "(implies --local-agent); SPEC is 'random:N' or indices '0,17,42'",
    )
    parser.add_argument("--runs", type=int, default=200, help="timed runs per model for --measure (default 200)")
    parser.add_argument("--export", metavar="FILE", help="with --measure: write the local device's LatBench CSV")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning")
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from eagle_server.serve import ServeError, run
    from eagle_server.settings import Settings, get_settings

    overrides = {
        key: value
        for key, value in {
            "db_url": args.db,
            "http_host": args.host,
            "http_port": args.port,
            "grpc_address": args.grpc,
            "grpc_workers": args.grpc_workers,
            "api_key": args.api_key,
            "workdir": args.workdir,
            "import_latbench_on_start": False if args.no_import else None,
        }.items()
        if value is not None
    }
    if args.grpc_workers is not None and args.grpc_workers < 1:
        raise CLIError(f"--grpc-workers must be at least 1, got {args.grpc_workers}")
    if args.port is not None and not 0 <= args.port < 65536:
        raise CLIError(f"--port must be 0-65535, got {args.port}")
    try:
        settings = Settings(**{**get_settings().model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CLIError(f"bad setting: {problems}") from None
    measure = None
    if args.measure is not None:
        from pathlib import Path

        from eagle_server.oneshot import MeasureRequest, parse_measure_spec

        if args.runs < 1:
            raise CLIError(f"--runs must be at least 1, got {args.runs}")
        try:
            indices = parse_measure_spec(args.measure)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        measure = MeasureRequest(indices, runs=args.runs, export=Path(args.export) if args.export else None)
    elif args.export:
        raise CLIError("--export goes with --measure")
    try:
        return run(
            settings,
            local_agent=args.local_agent or measure is not None,
            agent_runtime=args.agent_runtime,
            log_level=args.log_level,
            measure=measure,
        )
    except ServeError as exc:
        raise CLIError(str(exc)) from None
