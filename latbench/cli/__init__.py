"""The ``eagle`` command line.

Subcommands are contributed by the packages that own them through the ``eagle.commands`` entry-point
group (see pyproject.toml): each entry is a ``register(subparsers)`` function that adds its parser and
sets ``func`` (a callable taking the parsed namespace and returning an exit code). An install without
the server extra simply has fewer commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from latbench import __version__


class CLIError(Exception):
    """A problem the user can fix; printed as one line (or a JSON object with --json), exit code 2."""


def emit(payload: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str] | None = None) -> None:
    """Print one JSON object (``--json``) or a human rendering of it."""
    if as_json:
        print(json.dumps(payload, sort_keys=False))
    else:
        print(human(payload) if human else json.dumps(payload, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eagle", description="Eagle: latency measurement, prediction and NAS")
    parser.add_argument("--version", action="version", version=f"eagle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group="eagle.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as exc:  # a role's extra is not installed: say so when the command is used
            reason = f"unavailable: {exc.name or exc} is not installed in this environment"
            stub = sub.add_parser(ep.name, help=f"({reason})", description=reason)
            stub.set_defaults(func=_unavailable(ep.name, reason))
            continue
        register(sub)
    return parser


def _unavailable(name: str, reason: str) -> Callable[[argparse.Namespace], int]:
    def run(_: argparse.Namespace) -> int:
        raise CLIError(f"'{name}' is {reason} (install the extra that provides it: pip install 'eagle-latbench[all]')")

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except CLIError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc)}))
        else:
            print(f"eagle {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
