"""Paths named by annotation files stay inside their dataset root, in every loader."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import gssf_data_trees as trees
from gssf import data
from gssf.data.emoji import identity_split, load_emoji_captions, read_emoji_index
from gssf.data.paths import ContainedRoot, contained_path
from gssf.errors import GssfError, UnsafeInputError


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the dataset root holding a file nobody may read through a dataset."""
    folder = tmp_path / "outside"
    folder.mkdir()
    trees.write_image(folder / "secret.jpg", 99)
    return folder


def test_contained_root(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "link").symlink_to(outside)
    (root / "inner").symlink_to(root / "a")  # a link that stays inside is fine
    (root / "a" / "file.jpg").symlink_to(outside / "secret.jpg")
    c = ContainedRoot(root)
    assert c.path("a/x.jpg", "w") == root / "a" / "x.jpg"
    assert c.path("a/../b.jpg", "w") == root / "a" / ".." / "b.jpg"  # ".." that stays inside is allowed
    assert c.path("inner/x.jpg", "w") == root / "inner" / "x.jpg"  # returned as written
    for bad, why in [
        ("/etc/passwd", "absolute path '/etc/passwd' is not allowed"),
        ("../outside/secret.jpg", "leaves its root"),
        ("a/../../x", "leaves its root"),
        ("a\\..\\..\\x", "leaves its root"),
        ("link/secret.jpg", "leads outside its root .* through a symlink"),
        ("a/file.jpg", "leads outside its root"),
        ("", "invalid path"),
        ("a\0b", "invalid path"),
        (".", "names no file"),
    ]:
        with pytest.raises(UnsafeInputError, match=rf"^list\.txt:7: .*{why}"):
            c.path(bad, "list.txt:7")
    with pytest.raises(GssfError, match="list.txt:7: a path must be a string, got int 5"):
        contained_path(root, 5, "list.txt:7")


def _jsonl(root: Path, rows: list) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    trees.write_image(root / "ok.jpg", 0)
    (root / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.parametrize("image", ["/etc/passwd", "../outside/secret.jpg", "link/secret.jpg"])
def test_captions_jsonl_paths_stay_inside(tmp_path: Path, outside: Path, image: str) -> None:
    root = _jsonl(tmp_path / "ds", [{"image": "ok.jpg", "caption": "fine", "split": "test"},
                                    {"image": image, "caption": "sneaky", "split": "test"}])  # fmt: skip
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafeInputError, match=rf"captions\.jsonl:2: .*{image!r}"):
        data.load("captions-jsonl", root=root, split="test")


@pytest.mark.parametrize(
    "row, key",
    [({"image": 5, "caption": "x", "split": "test"}, "image"), ({"image": "ok.jpg", "caption": None, "split": "test"}, "caption"),
     ({"image": "ok.jpg", "caption": ["a"], "split": "test"}, "caption")],
)  # fmt: skip
def test_captions_jsonl_values_must_be_strings(tmp_path: Path, row: dict, key: str) -> None:
    root = _jsonl(tmp_path / "ds", [row])
    with pytest.raises(GssfError, match=rf"captions\.jsonl:1: '{key}' must be a string"):
        data.load("captions-jsonl", root=root, split="test")


@pytest.mark.parametrize("name, field, value", [("flickr30k", "filename", "../../outside/secret.jpg"),
                                                ("coco", "filepath", "/etc")])  # fmt: skip
def test_karpathy_paths_stay_inside(tmp_path: Path, name: str, field: str, value: str) -> None:
    root = trees.karpathy_tree(tmp_path / "ds", name)
    js = root / f"dataset_{name}.json"
    doc = json.loads(js.read_text())
    doc["images"][5][field] = value  # the first test image
    js.write_text(json.dumps(doc))
    with pytest.raises(UnsafeInputError, match=rf"dataset_{name}\.json images\[5\]: "):
        data.load(name, root=root, split="test")


def test_karpathy_malformed_entries_are_named(tmp_path: Path) -> None:
    root = trees.karpathy_tree(tmp_path / "ds", "flickr30k")
    js = root / "dataset_flickr30k.json"
    doc = json.loads(js.read_text())
    doc["images"][5]["sentences"][1] = {"raw": 7}
    js.write_text(json.dumps(doc))
    with pytest.raises(GssfError, match=r"images\[5\]: sentences\[1\]\.raw must be a string, got 7"):
        data.load("flickr30k", root=root, split="test")
    doc["images"][5] = "not an object"
    js.write_text(json.dumps(doc))
    with pytest.raises(GssfError, match=r"images\[5\] is str, not an object"):
        data.load("flickr30k", root=root, split="test")


def test_fine_grained_paths_stay_inside(tmp_path: Path, outside: Path) -> None:
    cub = trees.cub_tree(tmp_path / "cub")
    (cub / "images.txt").write_text((cub / "images.txt").read_text().replace("101.Bird_101/img_4.jpg", "../../outside/secret.jpg"))
    with pytest.raises(UnsafeInputError, match=r"images\.txt: image id 4: path '\.\./\.\./outside/secret\.jpg' leaves"):
        data.load("cub", root=cub, split="test")
    sop = trees.sop_tree(tmp_path / "sop")
    (sop / "Ebay_train.txt").write_text("image_id class_id super_class_id path\n1 1 1 /etc/passwd\n")
    with pytest.raises(UnsafeInputError, match=r"Ebay_train\.txt:2: absolute path '/etc/passwd'"):
        data.load("sop", root=sop, split="train")


def test_cars196_paths_stay_inside(tmp_path: Path) -> None:
    from scipy.io import savemat

    root = trees.cars_tree(tmp_path / "cars")
    annos = np.zeros((1, 1), dtype=[("relative_im_path", "O"), ("class", "O")])
    annos[0, 0] = ("../outside/secret.jpg", np.array([[3]], dtype=np.uint8))
    savemat(str(root / "cars_annos.mat"), {"annotations": annos})
    with pytest.raises(UnsafeInputError, match=r"cars_annos\.mat: annotation '\.\./outside/secret\.jpg'"):
        data.load("cars196", root=root, split="train")


def test_reid_symlinked_image_is_refused(tmp_path: Path, outside: Path) -> None:
    root = trees.market_tree(tmp_path / "market")
    (root / "query" / "0009_c1s1_000009_00.jpg").symlink_to(outside / "secret.jpg")
    with pytest.raises(UnsafeInputError, match=r"market1501 query folder .*0009_c1s1_000009_00\.jpg.*leads outside"):
        data.load("market1501", root=root, split="query")


def test_emoji_metadata_paths_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "emoji"
    root.mkdir()
    entry = {"unified": "1F600", "image": "../../outside/secret.png", "has_img_google": True, "has_img_twitter": True}
    (root / "emoji.json").write_text(json.dumps([entry]))
    (root / "openmoji.json").write_text(json.dumps([{"hexcode": "1F600", "annotation": "grinning face"}]))
    split = identity_split(read_emoji_index(root / "emoji.json", root / "openmoji.json")[0])
    with pytest.raises(UnsafeInputError, match=r"emoji\.json: emoji 1F600: path 'google/\.\./\.\./outside/secret\.png'"):
        load_emoji_captions(root, split)
    (root / "emoji.json").write_text(json.dumps([{**entry, "unified": None}, 3]))  # not a code; not an object
    with pytest.raises(GssfError, match=r"emoji metadata .*emoji\.json .* is malformed"):
        read_emoji_index(root / "emoji.json", root / "openmoji.json")


def test_tux_symlinked_stamp_is_refused(tmp_path: Path, outside: Path) -> None:
    stamps = tmp_path / "tux" / "stamps" / "animals"
    stamps.mkdir(parents=True)
    (stamps / "cat.txt").write_text("A cat.\n")
    os.symlink(outside / "secret.jpg", stamps / "cat.png")
    with pytest.raises(UnsafeInputError, match=r"Tux Paint stamps folder .*cat\.png.*leads outside"):
        data.load("tux", root=tmp_path / "tux", split="train")
