"""Regenerate the Python stubs of the agent protocol from ``protos/`` (needs the dev extra: grpcio-tools).

    python -m eagle_agent.proto.generate            # rewrite eagle_agent/proto/eagle/v1/*
    python -m eagle_agent.proto.generate --out DIR  # write into DIR/eagle/v1 instead (used by the staleness test)

protoc's gRPC plugin writes an absolute import (``from eagle.v1 import agent_pb2``) that would only work
with ``eagle_agent/proto`` on ``sys.path``; we rewrite it to a relative import so the stubs live inside
the package.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The proto sources live at the repository root (protos/), next to the package folders.
PROTO_ROOT = PACKAGE_DIR.parent.parent / "protos"
PROTO_FILES = ("eagle/v1/agent.proto",)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")

_ABS_IMPORT = re.compile(r"^from eagle\.v1 import (\w+_pb2) as", re.MULTILINE)


class GenerateError(RuntimeError):
    """protoc failed or the proto sources are missing."""


def generated_files(root: Path) -> list[Path]:
    """The stub files generated under ``root`` for every proto in :data:`PROTO_FILES`."""
    out: list[Path] = []
    for proto in PROTO_FILES:
        stem = proto.removesuffix(".proto")
        out.extend(root / f"{stem}{suffix}" for suffix in GENERATED_SUFFIXES)
    return out


def generate(out_root: Path = PACKAGE_DIR, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) on the protos; return the files written under ``out_root``."""
    if importlib.util.find_spec("grpc_tools") is None:
        raise GenerateError("grpcio-tools is not installed (pip install 'eagle-latbench[dev]')")
    if not proto_root.is_dir():
        raise GenerateError(f"proto sources not found at {proto_root} (run from a source checkout)")
    well_known = str(resources.files("grpc_tools") / "_proto")
    for proto in PROTO_FILES:
        (out_root / Path(proto).parent).mkdir(parents=True, exist_ok=True)
        # protoc runs in its own process: its bundled protobuf clashes with TensorFlow's when both are
        # loaded in one process (a segfault), e.g. in a test session that built a model first.
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            proto,
        ]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise GenerateError(f"protoc failed on {proto}: {done.stderr.strip() or done.stdout.strip()}")
    files = generated_files(out_root)
    for path in files:
        if path.name.endswith("_pb2_grpc.py"):
            # relative import (see the module docstring); the plugin's code has no type hints
            text = _ABS_IMPORT.sub(r"from . import \1 as", path.read_text())
            path.write_text("# mypy: ignore-errors\n" + text)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR, help="output root (default: the package)")
    args = parser.parse_args(argv)
    try:
        for path in generate(args.out):
            print(path)
    except GenerateError as exc:
        print(f"generate: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
