"""The NAS-Bench-201 cell search space: arch strings, op codes and the official index order.

An NB201 cell has 4 nodes; node j sums one operation applied to every earlier node. The six edges,
in arch-string order, are (0→1), (0→2), (1→2), (0→3), (1→3), (2→3). An architecture is written
either as its arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` or as a 6-digit op code with one
digit per edge in that order (0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3, 4 avg_pool_3x3).

Indices follow the official NB201 / NATS-Bench (tss) order, which is not the op-code order; the table
ships in ``latbench/data/nb201_index_op_codes.txt.gz`` (derived from the shipped accuracy CSV).
"""

from __future__ import annotations

import gzip
import itertools
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
OP_CODE: dict[str, int] = {name: code for code, name in enumerate(OPS)}
NONE, SKIP, CONV1X1, CONV3X3, AVGPOOL = range(5)

# (source node, destination node) of each edge, in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_EDGES = len(EDGES)
NUM_ARCHS = len(OPS) ** NUM_EDGES  # 15,625

_NODE_RE = re.compile(r"^\|(.+)\|$")
INDEX_FILE = "nb201_index_op_codes.txt.gz"


class ArchError(ValueError):
    """An architecture given by the user (string, op code or index) that is not in NB201."""


@dataclass(frozen=True, slots=True)
class Arch:
    """One NB201 cell, identified by its six edge operations (codes in arch-string edge order)."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != NUM_EDGES or any(not 0 <= op < len(OPS) for op in self.ops):
            raise ArchError(f"an NB201 cell has {NUM_EDGES} edge ops with codes 0-4, got {self.ops!r}")

    # -- conversions ---------------------------------------------------------------------------
    @property
    def op_code(self) -> str:
        return "".join(str(op) for op in self.ops)

    @property
    def arch_str(self) -> str:
        names = [f"{OPS[op]}~{src}" for op, (src, _) in zip(self.ops, EDGES, strict=True)]
        return f"|{names[0]}|+|{names[1]}|{names[2]}|+|{names[3]}|{names[4]}|{names[5]}|"

    @property
    def index(self) -> int:
        return index_of_op_code()[self.op_code]

    @classmethod
    def from_op_code(cls, code: str) -> Arch:
        if len(code) != NUM_EDGES or not code.isdigit() or any(c > "4" for c in code):
            raise ArchError(f"op code must be {NUM_EDGES} digits 0-4 (one per edge), got {code!r}")
        return cls(tuple(int(c) for c in code))

    @classmethod
    def from_str(cls, arch_str: str) -> Arch:
        return cls(tuple(OP_CODE[name] for name in _parse_arch_str(arch_str)))

    @classmethod
    def from_index(cls, index: int) -> Arch:
        table = op_codes_by_index()
        if not 0 <= index < len(table):
            raise ArchError(f"NB201 index must be in 0..{len(table) - 1}, got {index}")
        return cls.from_op_code(table[index])

    def __str__(self) -> str:
        return self.arch_str


def _parse_arch_str(arch_str: str) -> list[str]:
    text = arch_str.strip()
    nodes = text.split("+")
    if len(nodes) != 3:
        raise ArchError(f"arch string must have 3 nodes separated by '+', got {arch_str!r}")
    names: list[str] = []
    for node_id, node in enumerate(nodes, start=1):
        match = _NODE_RE.match(node)
        if not match:
            raise ArchError(f"node {node_id} of {arch_str!r} must look like |op~0|...|, got {node!r}")
        inputs = match.group(1).split("|")
        if len(inputs) != node_id:
            raise ArchError(f"node {node_id} of {arch_str!r} must have {node_id} inputs, got {len(inputs)}")
        for src, item in enumerate(inputs):
            name, sep, src_text = item.partition("~")
            if not sep or src_text != str(src):
                raise ArchError(f"edge {item!r} of node {node_id} in {arch_str!r} must be 'op~{src}'")
            if name not in OP_CODE:
                raise ArchError(f"unknown op {name!r} in {arch_str!r}; known ops: {', '.join(OPS)}")
            names.append(name)
    return names


def parse_arch(text: str | int) -> Arch:
    """Parse what a user typed: an index (``"1234"``), an op code (``"op:334131"``) or an arch string.

    A bare number is an index (as in the DESIGN's CLI); prefix ``op:`` to give an op code.
    """
    if isinstance(text, int):
        return Arch.from_index(text)
    value = text.strip()
    if value.startswith("op:"):
        return Arch.from_op_code(value[3:])
    if value.lstrip("-").isdigit():
        return Arch.from_index(int(value))
    if value.startswith("|"):
        return Arch.from_str(value)
    raise ArchError(
        f"{text!r} is not an NB201 index (0..{NUM_ARCHS - 1}), an op code ('op:334131') "
        "or an arch string ('|op~0|+|op~0|op~1|+|op~0|op~1|op~2|')"
    )


@cache
def op_codes_by_index() -> tuple[str, ...]:
    """Op code of every NB201 index, in the official order."""
    path = resources.files("latbench") / "data" / INDEX_FILE
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        codes = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if len(codes) != NUM_ARCHS:
        raise RuntimeError(f"{INDEX_FILE}: expected {NUM_ARCHS} op codes, found {len(codes)}")
    for row, code in enumerate(codes):
        if len(code) != NUM_EDGES or not code.isdigit():
            raise RuntimeError(f"{INDEX_FILE}: index {row} has a malformed op code {code!r}")
    if len(set(codes)) != NUM_ARCHS:
        raise RuntimeError(f"{INDEX_FILE}: op codes are not unique")
    return tuple(codes)


@cache
def index_of_op_code() -> dict[str, int]:
    return {code: index for index, code in enumerate(op_codes_by_index())}


def all_archs() -> list[Arch]:
    """All 15,625 architectures in index order."""
    return [Arch.from_op_code(code) for code in op_codes_by_index()]


def op_code_product() -> list[tuple[int, ...]]:
    """Every op tuple in lexicographic op-code order (independent of the shipped index table)."""
    return list(itertools.product(range(len(OPS)), repeat=NUM_EDGES))
