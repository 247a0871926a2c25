"""``gssf data`` and ``gssf features``, called in-process."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gssf.cli.main import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import gssf_data_trees as trees  # noqa: E402


def test_data_list(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["data", "--home", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"data home: {tmp_path}"
    for name in ("tux", "emoji", "emoji-reid", "emoji-fine-grained", "fashion-mnist", "flickr30k", "coco", "precomp",
                 "captions-jsonl", "market1501", "dukemtmc", "cub", "cars196", "sop", "features"):  # fmt: skip
        assert any(line.split()[0] == name for line in out.splitlines()[1:]), name
    assert "run: gssf data prepare tux" in out  # nothing prepared in an empty home
    assert main(["data", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["embedded"] for r in rows}["cub"] is False


def test_data_info_on_a_generated_tree(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    root = trees.market_tree(tmp_path / "market")
    assert main(["data", "info", "market1501", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "expected layout: ROOT/bounding_box_train/" in out
    assert [ln.split()[:2] for ln in out.splitlines() if ln.strip().startswith(("train", "query", "gallery"))] == [
        ["train", "4"], ["query", "2"], ["gallery", "5"]
    ]  # fmt: skip


def test_data_errors_are_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["data", "info", "cub", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found at" in err and "expected layout:" in err
    assert main(["data", "info", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert main(["data", "prepare", "coco"]) == 2
    assert "cannot prepare 'coco'" in capsys.readouterr().err
    assert main(["data", "--home", str(tmp_path), "info", "tux"]) == 1
    assert "gssf data prepare tux" in capsys.readouterr().out


def test_data_prepare_local_deb(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    files = {"usr/share/tuxpaint/stamps/animals/cat.txt": b"A cat.\n",
             "usr/share/tuxpaint/stamps/animals/cat.png": trees.png_bytes((1, 2, 3, 255))}  # fmt: skip
    deb = trees.fake_tux_deb(tmp_path / "tuxpaint-stamps-default_2022.06.04-1_all.deb", files)
    home = tmp_path / "home"
    assert main(["data", "--home", str(home), "prepare", "tux", "--deb", str(deb), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("tux: prepared in ")
    assert main(["data", "--home", str(home), "prepare", "tux", "--deb", str(deb)]) == 0
    assert capsys.readouterr().out.startswith("tux: already prepared; 2 files")
    assert main(["data", "--home", str(home), "prepare", "all", "--deb", str(deb)]) == 2
    assert "--deb applies to exactly one dataset" in capsys.readouterr().err


@pytest.mark.slow
def test_prepare_all_then_info(capsys: pytest.CaptureFixture) -> None:
    """The real datasets, as `make test` prepares them (a no-op when already done)."""
    assert main(["data", "prepare", "tux", "emoji", "fashion-mnist", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in out] == ["tux", "emoji", "fashion-mnist"]
    assert main(["data", "info", "tux"]) == 0
    out = capsys.readouterr().out
    assert "tuxpaint-stamps-default 2022.06.04-1 (debian)" in out
    assert "train            488 images      488 captions" in out and "test             229 images" in out


@pytest.mark.slow
def test_features_extract_and_reuse(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    rows = [{"image": f"{c}.jpg", "caption": f"a {c} square", "split": s}
            for c, s in (("red", "train"), ("blue", "train"), ("green", "test"))]  # fmt: skip
    root = trees.jsonl_tree(tmp_path / "ds", rows)
    args = ["features", "extract", "--dataset", "captions-jsonl", "--root", str(root), "--split", "train,test",
            "--resolution", "64", "--home", str(tmp_path / "home"), "--no-progress", "--output", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "captions-jsonl/train: cross-modal, image (2, 1280), text (2, 384); image extracted, text extracted" in out
    assert out.strip().splitlines()[-1] == "total: 3 images, 3 captions"
    assert main(args) == 0
    assert "image cached, text cached" in capsys.readouterr().out
    assert main(["features", "info", str(tmp_path / "out" / "test" / "features.npz")]) == 0
    assert capsys.readouterr().out.startswith("captions-jsonl/test: cross-modal, image (1, 1280), text (1, 384)")
    # the written folder is itself a dataset: `features` with ROOT/<split>/features.npz
    from gssf import data

    ds = data.load("features", root=tmp_path / "out", split="train")
    assert ds.num_images == 2 and ds.captions == ["a red square", "a blue square"]
    np.testing.assert_array_equal(ds.txt2img, [0, 1])


def test_features_errors(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["features", "extract", "--dataset", "sop", "--root", str(tmp_path), "--split", "test"]) == 2
    assert "not found at" in capsys.readouterr().err
    assert main(["features", "info", str(tmp_path / "none.npz")]) == 2
    assert "features file not found" in capsys.readouterr().err
