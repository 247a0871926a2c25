"""Entry point of the ``gssf`` command.

Each subcommand lives in its own module ``gssf.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser``; the parser it returns sets
``func`` (a callable taking the parsed namespace and returning an exit code).
Tests call :func:`main` in-process with an argv list.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

import gssf

# Order is the order shown by ``gssf --help``.
SUBCOMMANDS = (
    "similarities",
    "evaluate",
    "data",
    "features",
    "train",
    "eval",
    "demo",
)


class CLIError(Exception):
    """An error the CLI reports as one line on stderr with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gssf",
        description="GSSF: learnable structured-sparse similarities for retrieval and metric learning.",
    )
    parser.add_argument("--version", action="version", version=f"gssf {gssf.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module_name = f"gssf.cli.{name.replace('-', '_')}_cmd"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a subcommand whose module is not part of this build
            if exc.name != module_name:
                raise
            continue
        module.add_parser(sub)
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not getattr(args, "func", None):
        build_parser().print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"gssf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, KeyError) as exc:
        # Library errors are written to be read by a person: show them without a traceback.
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"gssf {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
