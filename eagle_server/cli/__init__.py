"""``eagle`` subcommands of the server package: ``serve`` and the REST clients ``campaign``, ``agents`` and
``latbench``. Each module's ``register(subparsers)`` is an ``eagle.commands`` entry point (pyproject.toml).

Server modules are imported inside the command functions, so ``eagle --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from latbench.cli import CLIError

if TYPE_CHECKING:
    from eagle_server.client import EagleClient


def add_client_options(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    """``--server`` and ``--api-key`` (and ``--json``) for a command that talks to the REST API."""
    parser.add_argument(
        "--server", metavar="URL", help="Eagle server (default: $EAGLE_SERVER_URL or http://127.0.0.1:8000)"
    )
    parser.add_argument(
        "--api-key", metavar="KEY", help="API key for writes (default: $EAGLE_API_KEY or the local server's)"
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print one JSON object")


@contextmanager
def client_for(args: argparse.Namespace) -> Iterator[EagleClient]:
    """A client for the command's server; the server's refusals become one-line CLI errors."""
    from eagle_server.client import ApiError, EagleClient

    client = EagleClient(server=args.server, api_key=args.api_key)
    try:
        yield client
    except ApiError as exc:
        where = f" ({exc.status})" if exc.status else ""
        raise CLIError(f"{exc.detail}{where}") from None
    finally:
        client.close()


def subcommands(parser: argparse.ArgumentParser, title: str) -> Any:
    """A required sub-subcommand group (``eagle campaign submit`` ...); without one, help is printed."""
    sub = parser.add_subparsers(dest=f"{title}_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=_help_of(parser))
    return sub


def _help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show
