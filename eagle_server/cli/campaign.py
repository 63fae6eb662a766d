"""``eagle campaign submit|status|cancel|list``: queue NB201 models for a device through the REST API."""

from __future__ import annotations

import argparse
import time
from typing import Any

from eagle_server.cli import add_client_options, client_for, subcommands
from latbench.cli import CLIError, emit

POLL_S = 1.0
FINAL_STATES = ("done", "cancelled")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("campaign", help="queue NB201 models for a device and follow them (REST client)")
    commands = subcommands(parser, "campaign")

    submit = commands.add_parser("submit", help="queue a campaign")
    submit.add_argument("--device", required=True, help="device name (see GET /v1/devices), e.g. local")
    models = submit.add_mutually_exclusive_group(required=True)
    models.add_argument("--indices", metavar="I,J,...", help="NB201 indices, comma-separated")
    models.add_argument("--arch-str", action="append", metavar="S", help="an NB201 arch string (repeatable)")
    models.add_argument("--all", action="store_true", help="every valid NB201 cell")
    models.add_argument("--random", type=int, metavar="N", help="N distinct valid cells drawn at random")
    models.add_argument("--unmeasured", action="store_true", help="valid cells with no measurement on the device")
    submit.add_argument("--seed", type=int, help="seed of the --random draw (default: the server picks one)")
    submit.add_argument("--runtime", default="litert", help="runtime the agents must offer (default litert)")
    submit.add_argument("--precision", help="precision (default: the device's, else fp32)")
    submit.add_argument("--runs", type=int, help="timed runs (default: 1000, 10 on phones)")
    submit.add_argument("--warmup", type=int, help="untimed runs first (default 10)")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    submit.add_argument("--name", help="a name for the campaign")
    submit.add_argument("--no-dedupe", action="store_true", help="time every cell, even equivalent ones")
    submit.add_argument("--wait", action="store_true", help="follow the campaign until it ends (progress bar)")
    add_client_options(submit)
    submit.set_defaults(func=run_submit)

    status = commands.add_parser("status", help="a campaign's progress")
    status.add_argument("campaign_id", type=int, metavar="ID")
    add_client_options(status)
    status.set_defaults(func=run_status)

    cancel = commands.add_parser("cancel", help="cancel a campaign's queued and running jobs")
    cancel.add_argument("campaign_id", type=int, metavar="ID")
    add_client_options(cancel)
    cancel.set_defaults(func=run_cancel)

    listing = commands.add_parser("list", help="recent campaigns")
    listing.add_argument("--state", choices=("queued", "running", "done", "cancelled"))
    listing.add_argument("--device")
    listing.add_argument("--limit", type=int, default=20)
    add_client_options(listing)
    listing.set_defaults(func=run_list)


def parse_indices(text: str) -> list[int]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise CLIError("--indices needs at least one NB201 index, e.g. --indices 1,2,3")
    try:
        return [int(item) for item in items]
    except ValueError:
        bad = next(item for item in items if not item.lstrip("-").isdigit())
        raise CLIError(f"--indices: {bad!r} is not an integer (give indices like 1,2,3)") from None


def campaign_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /v1/campaigns body for the submit options."""
    models: Any
    if args.indices is not None:
        models = {"indices": parse_indices(args.indices)}
    elif args.arch_str:
        models = {"arch_strs": list(args.arch_str)}
    elif args.all:
        models = "all"
    elif args.random is not None:
        models = {"random": args.random, "seed": args.seed}
    else:
        models = "unmeasured"
    if args.seed is not None and args.random is None:
        raise CLIError("--seed only goes with --random")
    protocol = {k: v for k, v in {"runs": args.runs, "warmup": args.warmup}.items() if v is not None}
    body: dict[str, Any] = {
        "device": args.device,
        "models": models,
        "runtime": args.runtime,
        "protocol": protocol,
        "priority": args.priority,
        "dedupe": not args.no_dedupe,
    }
    if args.precision:
        body["precision"] = args.precision
    if args.name:
        body["name"] = args.name
    return body


def describe(p: dict[str, Any]) -> str:
    counts = p["counts"]
    eta = p.get("eta_s")
    eta_text = "" if eta is None or p["state"] in FINAL_STATES else f", ETA {_duration(eta)}"
    name = f" {p['name']!r}" if p.get("name") else ""
    return (
        f"campaign {p['campaign_id']}{name}: {p['state']}, device {p['device']}, "
        f"{p['runtime']}:{p['precision']}, {p['protocol'].get('runs')} runs\n"
        f"  {p['total']} jobs: {counts['done']} done, {counts['queued']} queued, {counts['leased']} running, "
        f"{counts['failed']} failed, {counts['cancelled']} cancelled ({p['done_fraction']:.0%} done{eta_text})"
    )


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    return f"{whole / 3600:.1f} h"


def wait_for(client: Any, campaign_id: int, show_bar: bool, poll_s: float = POLL_S) -> dict[str, Any]:
    """Poll the campaign until it is done or cancelled; a Rich progress bar on stderr when ``show_bar``."""
    progress = client.campaign(campaign_id)
    if not show_bar:
        while progress["state"] not in FINAL_STATES:
            time.sleep(poll_s)
            progress = client.campaign(campaign_id)
        return dict(progress)

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]campaign {task.fields[cid]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("jobs", total=progress["total"], cid=campaign_id, detail="")
        while True:
            counts = progress["counts"]
            eta = progress.get("eta_s")
            detail = f"{counts['leased']} running, {counts['failed']} failed" + (
                f", ETA {_duration(eta)}" if eta else ""
            )
            finished = counts["done"] + counts["failed"] + counts["cancelled"]
            bar.update(task, completed=finished, detail=detail)
            if progress["state"] in FINAL_STATES:
                return dict(progress)
            time.sleep(poll_s)
            progress = client.campaign(campaign_id)


def run_submit(args: argparse.Namespace) -> int:
    body = campaign_body(args)
    with client_for(args) as client:
        created = client.submit_campaign(body)
        if not args.wait:
            emit(created, args.json, describe)
            return 0
        if not args.json:
            print(describe(created), flush=True)
        final = wait_for(client, created["campaign_id"], show_bar=not args.json)
    emit(final, args.json, describe)
    # Non-zero when not every job was measured, so scripts notice failures.
    return 0 if final["state"] == "done" and final["counts"]["failed"] == 0 else 1


def run_status(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        emit(client.campaign(args.campaign_id), args.json, describe)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        result = client.cancel_campaign(args.campaign_id)
    emit(
        result,
        args.json,
        lambda r: f"campaign {r['campaign_id']}: {r['state']} ({r['cancelled_jobs']} job(s) cancelled)",
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        page = client.campaigns(state=args.state, device=args.device, limit=args.limit)
    emit(
        page,
        args.json,
        lambda p: "\n".join(describe(item) for item in p["items"]) or "no campaigns",
    )
    return 0
