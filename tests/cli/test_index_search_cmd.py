"""gssf index / search / serve / export: the parsers load without numpy and agree with the library."""
from __future__ import annotations

from gssf.cli import index_cmd
from gssf.index import KINDS


def test_the_cli_kinds_are_the_librarys() -> None:
    assert index_cmd.KINDS == KINDS
