"""The `faceedit` command: run the local stack, call it, benchmark it, evaluate it."""

from __future__ import annotations

import argparse
import sys

import grpc

from faceedit.cli import benchmarks, commands, demo, evaluate, gpu, up
from faceedit.cli.argtypes import UsageError
from faceedit.core.errors import FaceEditError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceedit", description="Region-aware facial attribute editing over gRPC (faceedit.v1.FaceEditor)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (up, commands, demo, benchmarks, evaluate, gpu):
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (UsageError, FaceEditError) as exc:
        print(f"faceedit: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:  # a call outside a command's own handling, e.g. bench's ParseFace probe
        return commands.fail(exc, args)
    except OSError as exc:  # writing an output: a full disk, a read-only directory
        print(f"faceedit: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
