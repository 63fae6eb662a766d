"""``eagle space stats|show``: facts about the NB201 search space and one of its cells."""

from __future__ import annotations

import argparse
from typing import Any

from latbench import graph, nb201
from latbench.cli import CLIError, emit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("space", help="NB201 search-space facts: stats, one cell's graph and cost")
    space_sub = parser.add_subparsers(dest="space_command", metavar="SUBCOMMAND", required=True)

    stats = space_sub.add_parser("stats", help="number of archs, invalid cells and unique pruned graphs")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(func=run_stats)

    show = space_sub.add_parser("show", help="one cell: arch string, op code, validity, FLOPs, params, GCN input")
    show.add_argument("arch", help="NB201 index (0..15624), arch string, or op:<6-digit op code>")
    show.add_argument("--classes", type=int, default=10, help="classifier outputs for FLOPs/params (default 10)")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(func=run_show)


def space_stats() -> dict[str, int]:
    cells = [graph.nb201_cell(arch) for arch in nb201.all_archs()]
    valid = [cell for cell in cells if cell.valid]
    return {
        "archs": len(cells),
        "invalid": len(cells) - len(valid),
        "unique_graphs": len({cell.canonical_key for cell in valid}),
    }


def run_stats(args: argparse.Namespace) -> int:
    emit(
        space_stats(),
        args.json,
        lambda p: (
            f"{p['archs']} archs, {p['invalid']} invalid (output unreachable), "
            f"{p['unique_graphs']} unique pruned graphs"
        ),
    )
    return 0


def describe_arch(arch: nb201.Arch, num_classes: int = 10) -> dict[str, Any]:
    from latbench.cost import network_cost

    cell = graph.nb201_cell(arch)
    adjacency, features = graph.encode(cell)
    payload: dict[str, Any] = {
        "index": arch.index,
        "arch_str": arch.arch_str,
        "op_code": arch.op_code,
        "valid": cell.valid,
        "canonical_key": cell.canonical_key if cell.valid else None,
        "flops": None,
        "params": None,
    }
    if cell.valid:
        cost = network_cost(cell, num_classes=num_classes)
        payload["flops"] = cost.flops
        payload["params"] = cost.params
    payload["adjacency"] = adjacency.astype(int).tolist()
    payload["features"] = features.astype(int).tolist()
    payload["feature_names"] = list(graph.FEATURES)
    payload["node_names"] = ["input", *(f"edge{src}{dst}" for src, dst in nb201.EDGES), "output", "global"]
    return payload


def _human_show(p: dict[str, Any]) -> str:
    lines = [
        f"index      {p['index']}",
        f"arch       {p['arch_str']}",
        f"op code    {p['op_code']}",
        f"valid      {p['valid']}" + ("" if p["valid"] else "  (no input->output path: nothing to build or time)"),
    ]
    if p["valid"]:
        lines += [
            f"graph key  {p['canonical_key']}",
            f"FLOPs      {p['flops'] / 1e6:.2f} M (multiply-adds)",
            f"params     {p['params'] / 1e6:.6f} M",
        ]
    lines.append("adjacency (row gathers from columns; last = global)")
    lines += ["  " + " ".join(str(v) for v in row) for row in p["adjacency"]]
    return "\n".join(lines)


def run_show(args: argparse.Namespace) -> int:
    try:
        arch = nb201.parse_arch(args.arch)
    except nb201.ArchError as exc:
        raise CLIError(str(exc)) from exc
    if args.classes < 1:
        raise CLIError(f"--classes must be at least 1, got {args.classes}")
    emit(describe_arch(arch, args.classes), args.json, _human_show)
    return 0
