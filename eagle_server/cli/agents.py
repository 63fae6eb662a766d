"""``eagle agents list`` and ``eagle agents token create``: the server's agents, through the REST API."""

from __future__ import annotations

import argparse
from typing import Any

from eagle_server.cli import add_client_options, client_for, subcommands
from latbench.cli import emit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("agents", help="list the server's agents, create agent tokens (REST client)")
    commands = subcommands(parser, "agents")

    listing = commands.add_parser("list", help="agents with their device, state and last heartbeat")
    add_client_options(listing)
    listing.set_defaults(func=run_list)

    token = commands.add_parser("token", help="agent tokens")
    token_commands = subcommands(token, "token")
    create = token_commands.add_parser("create", help="create an agent token (shown once)")
    create.add_argument("--note", default="", help="what the token is for, e.g. the lab machine")
    add_client_options(create)
    create.set_defaults(func=run_token_create)


def _check_text(check: dict[str, Any]) -> str:
    """The backend's own check, as the agent reported it at registration (what is missing, and the fix)."""
    if not check:
        return ""
    if check.get("ok", True):
        return "  backend check ok"
    missing = check.get("missing") or {}
    return "  backend check FAILED: " + "; ".join(f"{part}: {fix}" for part, fix in missing.items())


def _agents_table(payload: dict[str, Any]) -> str:
    agents = payload["agents"]
    if not agents:
        return "no agents have registered (start one: eagle-agent --server HOST:PORT --token T)"
    lines = []
    for a in agents:
        check_text = _check_text(a.get("backend_check") or {})
        lines.append(
            f"{a['id']}  {a['state']:<7}  {a['device']}  on {a['hostname'] or '?'}  "
            f"[{', '.join(a['capabilities'])}]  last heartbeat {a['last_heartbeat']}  "
            f"{a['leased_jobs']} job(s){check_text}"
        )
    return "\n".join(lines)


def run_list(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        agents = client.agents()
    online = sum(1 for a in agents if a["state"] == "online")
    emit({"agents": agents, "online": online}, args.json, _agents_table)
    return 0


def run_token_create(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        created = client.create_token(args.note)
    emit(
        created,
        args.json,
        lambda c: f"{c['token']}\n(shown once: start an agent with --token or EAGLE_AGENT_TOKEN)",
    )
    return 0
