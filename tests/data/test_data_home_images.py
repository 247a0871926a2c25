"""Data home resolution and image decoding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gssf_data_trees as trees
from gssf.data import data_home, dataset_dir, features_dir
from gssf.data.base import CrossModalDataset, ImageRecord, UniModalDataset
from gssf.data.images import load_rgb


def test_data_home_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSSF_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data_home() == Path.home() / ".cache" / "gssf"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home() == tmp_path / "xdg" / "gssf"
    monkeypatch.setenv("GSSF_DATA", str(tmp_path / "mine"))
    assert data_home() == tmp_path / "mine"
    assert data_home(tmp_path / "explicit") == tmp_path / "explicit"
    assert dataset_dir("tux") == tmp_path / "mine" / "tux"
    assert features_dir() == tmp_path / "mine" / "features"
    assert not (tmp_path / "mine").exists()  # resolving never creates folders


def test_load_rgb_modes(tmp_path: Path) -> None:
    transparent = Image.new("RGBA", (4, 3), (10, 20, 30, 0))
    assert load_rgb(transparent).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("LA", (4, 3), (0, 128))
    assert load_rgb(half).getpixel((0, 0)) == (127, 127, 127)
    gray = np.full((5, 6), 7, dtype=np.uint8)
    assert load_rgb(gray).size == (6, 5) and load_rgb(gray).getpixel((0, 0)) == (7, 7, 7)
    with pytest.raises(ValueError, match="must be uint8"):
        load_rgb(np.zeros((4, 4), dtype=np.float32))
    svg = tmp_path / "r.svg"
    svg.write_text(trees.SVG)
    img = load_rgb(svg)
    assert img.size == (384, 192) and img.getpixel((10, 10)) == (255, 0, 0)
    with pytest.raises(FileNotFoundError, match="image not found at"):
        load_rgb(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png"):
        load_rgb(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="precomputed features only"):
        ImageRecord(id="x").load()


def test_containers_validate_and_subset() -> None:
    imgs = [ImageRecord(id=str(i), array=np.zeros((2, 2), np.uint8)) for i in range(3)]
    ds = CrossModalDataset("t", "test", imgs, ["a", "b", "c", "d"], np.array([0, 2, 1, 2]))
    sub = ds.subset(2)
    assert sub.num_images == 2 and sub.captions == ["a", "c"] and sub.txt2img.tolist() == [0, 1]
    assert ds.fingerprint() != sub.fingerprint()
    assert ds.img2txt() == [[0], [2], [1, 3]]
    with pytest.raises(ValueError, match="txt2img points outside"):
        CrossModalDataset("t", "test", imgs, ["a"], np.array([3]))
    with pytest.raises(ValueError, match="2 captions but 1 txt2img"):
        CrossModalDataset("t", "test", imgs, ["a", "b"], np.array([0]))
    with pytest.raises(ValueError, match="split 'test' of dataset 't' is empty"):
        UniModalDataset("t", "test", [], np.array([]))
    uni = UniModalDataset("t", "test", imgs, np.array([1, 1, 2]), cams=np.array([0, 1, 0]))
    assert uni[2].label == 2 and uni[2].cam == 0 and uni.num_classes == 2
    with pytest.raises(ValueError, match="2 cameras for 3 images"):
        UniModalDataset("t", "test", imgs, np.array([1, 1, 2]), cams=np.array([0, 1]))
