"""The `cliprt` command. Each area registers its own subcommands; heavy imports
(onnxruntime, torch) happen inside the handlers so `cliprt --help` stays instant."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cliprt.errors import CliprtError

# Modules exposing `register(subparsers)`. A command is listed only once it works.
_COMMAND_MODULES: tuple[str, ...] = (
    "cliprt.export.cli",
    "cliprt.runtime.cli",
    "cliprt.runtime.bulk_cli",
    "cliprt.demo",
    "cliprt.bench.cli",
    "cliprt.serve.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cliprt",
        description="CLIP inference engine: export a checkpoint to ONNX, then embed, "
        "classify and search without PyTorch.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from cliprt import __version__

    return f"cliprt {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.handler(args) or 0)
    except CliprtError as exc:
        print(f"cliprt {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"cliprt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
