"""The command line entry point, called in-process."""
from __future__ import annotations

import json

import pytest

import gssf
from gssf.cli.main import main


def test_version(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"gssf {gssf.__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 0
    assert "similarities" in capsys.readouterr().out


def test_similarities_table_lists_registry_with_parameter_counts(capsys: pytest.CaptureFixture) -> None:
    assert main(["similarities", "--dim", "64"]) == 0
    out = capsys.readouterr().out
    for name in gssf.list_similarities():
        assert name in out
    line = next(ln for ln in out.splitlines() if ln.startswith("bilinear"))
    assert "4,096" in line  # 64 x 64 dense matrix


def test_similarities_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["similarities", "--dim", "32", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["cosine"]["params"] == 0
    assert rows["diagonal"]["params"] == 32
    assert rows["gssf"]["params"] == 32 + 2 * 16 * 16  # default blocks of 16 channels
    assert rows["gssf_dynamic"]["static"] is False
