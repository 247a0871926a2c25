"""Entry point of the ``gssf`` command.

Each subcommand lives in its own module ``gssf.cli.<name>`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser``; the parser it returns sets
``func`` (a callable taking the parsed namespace and returning an exit code).
Tests call :func:`main` in-process with an argv list.

Every failure goes through :func:`main`'s one handler: a problem the user can fix prints
one line ``gssf <cmd>: error: ...`` and exits 2; Ctrl-C prints one line and exits 130; a
closed stdout (``gssf data list | head -1``) ends quietly; anything else is an internal
error (exit 1). ``--debug``, before or after the subcommand, prints the traceback too.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from typing import Iterator, NoReturn, Optional, Sequence

import gssf
from gssf.cli.common import add_option_everywhere, is_decode_error
from gssf.errors import CLIError, GssfError, MissingExtraError
from gssf.utils.optional import extra_for

__all__ = ["CLIError", "SUBCOMMANDS", "build_parser", "error_message", "main", "parse_args"]

# Order is the order shown by ``gssf --help``.
SUBCOMMANDS = (
    "similarities",
    "evaluate",
    "data",
    "features",
    "train",
    "eval",
    "export",
    "index",
    "search",
    "serve",
    "demo",
)

#: Subcommands that read the data home and so take ``--home`` (at every level below them).
HOME_COMMANDS = ("data", "features", "train", "eval", "demo")

#: The extra that provides numpy depends on what the command does (numpy is in several).
_NUMPY_EXTRA = {"data": "data", "features": "data", "demo": "data"}

# The value of gssf.data.home.ENV_VAR; repeated here because importing gssf.data needs numpy,
# which a core install lacks (tests/cli check that the two agree).
DATA_HOME_ENV = "GSSF_DATA"

EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 2, 1, 130, 141


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        cmd = module.add_parser(sub)
        if name in HOME_COMMANDS:
            add_option_everywhere(cmd, "--home", default=None, metavar="DIR",
                                  help=f"data home (default: ${DATA_HOME_ENV} or ~/.cache/gssf)")  # fmt: skip
    add_option_everywhere(parser, "--debug", action="store_true", default=False,
                          help="show the full traceback of an error")  # fmt: skip
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@contextlib.contextmanager
def _data_home(home: Optional[str]) -> Iterator[None]:
    """Point the data home at ``home`` for the duration of one command (``--home``)."""
    if home is None:
        yield
        return
    old = os.environ.get(DATA_HOME_ENV)
    os.environ[DATA_HOME_ENV] = str(home)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(DATA_HOME_ENV, None)
        else:
            os.environ[DATA_HOME_ENV] = old


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def error_message(exc: BaseException, command: str) -> Optional[str]:
    """The one-line message for an error the user can fix, or None for an internal error."""
    if isinstance(exc, GssfError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        if not top or top == "gssf":  # a module of gssf itself is missing: a broken install
            return None
        extra = _NUMPY_EXTRA.get(command, "train") if top == "numpy" else extra_for(top)
        if extra is None:
            return f"gssf {command} needs the module {top!r}, which is not installed ({exc})"
        return str(MissingExtraError(f"gssf {command}", extra, top))
    if isinstance(exc, ImportError):
        return str(exc)  # gssf's own import errors say what to install
    if isinstance(exc, OSError) and exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {os.fsdecode(exc.filename2)}"
        return f"{where}: {exc.strerror or exc}"
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else ""
        # gssf raises KeyError with a sentence; a bare key comes from a dict lookup on user data.
        return key if isinstance(key, str) and " " in key else f"missing key {key!r}"
    if is_decode_error(exc):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (ValueError, OSError)):
        return str(exc) or type(exc).__name__
    if isinstance(exc, (RuntimeError, AssertionError)) and any(w in str(exc) for w in ("CUDA", "NVIDIA driver")):
        return str(exc)  # torch on a machine without the requested GPU
    return None


def _report(exc: BaseException, command: str, debug: bool) -> int:
    """Print the error of one command and return its exit status."""
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        print(f"gssf {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    message = error_message(exc, command)
    if message is None:
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"gssf {command}: internal error: {type(exc).__name__}: {_one_line(str(exc))}{hint}", file=sys.stderr)
        return EXIT_INTERNAL
    print(f"gssf {command}: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_USAGE


def _quiet_stdout() -> None:
    """After a closed pipe: send what is left in stdout's buffer (flushed at exit) to devnull."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured or replaced stdout: nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _dispatch(argv: Optional[Sequence[str]]) -> int:
    args = parse_args(argv)
    if not getattr(args, "func", None):
        build_parser().print_help()
        return 0
    try:
        with _data_home(getattr(args, "home", None)):
            return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        return _report(exc, args.command, args.debug)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``gssf`` with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not as a warning at interpreter exit
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as a SIGPIPE would
        _quiet_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    # Run as ``python -m gssf.cli.main`` (torchrun), this file is the module ``__main__``; call
    # the one imported as ``gssf.cli.main`` so that there is a single copy of its state.
    from gssf.cli.main import main as _main

    sys.exit(_main())
