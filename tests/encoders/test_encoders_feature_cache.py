"""The feature cache cannot lie: content keys, damaged files, per-root folders, skipped images.

Fast stand-in encoders (mean colour of each image, character counts of each caption) make
every extraction cheap and let the tests count how often an encoder actually runs.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import pytest
import torch
from PIL import Image

from gssf import data, features
from gssf.encoders import registry
from gssf.encoders.base import Encoder
from gssf.errors import BadImageError
from gssf.features import get_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import gssf_data_trees as trees  # noqa: E402

CALLS: Dict[str, int] = {}


class MeanColour(Encoder):
    """(B, 3): the mean RGB of each image, in [0, 1]."""

    name = "test-mean-colour"
    modalities = ("image",)
    dim = 3

    def __init__(self, device: Any = "cpu", resolution: int = 8) -> None:
        super().__init__(device)
        self.resolution = resolution
        self.module = torch.nn.Identity()

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        from gssf.data.images import load_rgb

        arrays = [np.asarray(load_rgb(im).resize((self.resolution, self.resolution)), dtype=np.float32) for im in images]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        CALLS["image"] = CALLS.get("image", 0) + len(pixels)
        return pixels.mean(dim=(2, 3))


class CharCounts(Encoder):
    """(B, 4): counts of a, e, i, o in each caption."""

    name = "test-char-counts"
    modalities = ("text",)
    dim = 4

    def __init__(self, device: Any = "cpu") -> None:
        super().__init__(device)
        self.module = torch.nn.Identity()

    def tokenize(self, texts: Sequence[str]) -> Mapping[str, Any]:
        return {"x": torch.tensor([[t.count(c) for c in "aeio"] for t in texts], dtype=torch.float32)}

    def forward_texts(self, tokens: Mapping[str, Any]) -> torch.Tensor:
        CALLS["text"] = CALLS.get("text", 0) + len(tokens["x"])
        return tokens["x"]


@pytest.fixture(autouse=True)
def fake_encoders(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.get_encoder_info("minilm")  # load the built-ins first, so ours are only added
    for cls in (MeanColour, CharCounts):
        info = registry.EncoderInfo(cls.name, cls, cls.modalities, "test stand-in")
        monkeypatch.setitem(registry._REGISTRY, cls.name, info)  # removed again after each test
    monkeypatch.setattr(features, "_ENCODERS", {})
    CALLS.clear()


ROWS = [
    {"image": "a.bmp", "caption": "a red thing", "split": "test"},
    {"image": "a.bmp", "caption": "something red", "split": "test"},
    {"image": "b.bmp", "caption": "a blue thing", "split": "test"},
    {"image": "c.bmp", "caption": "a green thing", "split": "test"},
    {"image": "d.bmp", "caption": "a grey one", "split": "test"},
]


def _solid(path: Path, colour: tuple) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), colour).save(path, format="BMP")  # BMP: same size whatever the pixels
    return path


def _tree(root: Path, colours: Sequence[tuple] = ((255, 0, 0), (0, 0, 255), (0, 255, 0), (128, 128, 128))) -> Path:
    for name, colour in zip("abcd", colours):
        _solid(root / f"{name}.bmp", colour)
    root.mkdir(parents=True, exist_ok=True)
    (root / "captions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return root


def _get(root: Path, home: Path, **kw: Any) -> features.FeatureSet:
    return get_features("captions-jsonl", "test", root=root, data_home=home, image_encoder="test-mean-colour",
                        text_encoder="test-char-counts", resolution=8, progress=False, **kw)  # fmt: skip


def test_an_edited_image_is_encoded_again(tmp_path: Path) -> None:
    root, home = _tree(tmp_path / "ds"), tmp_path / "home"
    first = _get(root, home)
    np.testing.assert_allclose(first.image[1], [0, 0, 1], atol=1e-6)
    assert CALLS == {"image": 4, "text": 5} and not first.meta["image"]["cached"]
    again = _get(root, home)
    assert again.meta["image"]["cached"] and CALLS == {"image": 4, "text": 5}

    b = root / "b.bmp"
    st = b.stat()
    _solid(b, (255, 255, 0))  # same name, same size ...
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and even the old mtime
    assert b.stat().st_size == st.st_size and b.stat().st_mtime_ns == st.st_mtime_ns
    edited = _get(root, home)
    assert not edited.meta["image"]["cached"] and CALLS["image"] == 8
    np.testing.assert_allclose(edited.image[1], [1, 1, 0], atol=1e-6)  # the new pixels
    np.testing.assert_allclose(edited.image[[0, 2, 3]], first.image[[0, 2, 3]])
    assert edited.meta["image"]["cache"] != first.meta["image"]["cache"]
    assert edited.meta["text"]["cached"]  # captions did not change


@pytest.mark.parametrize("damage", ["truncate", "zero", "empty", "garbage", "folder"])
def test_a_damaged_cache_file_is_recomputed(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture) -> None:
    root, home = _tree(tmp_path / "ds"), tmp_path / "home"
    first = _get(root, home)
    for modality in ("image", "text"):
        path = Path(first.meta[modality]["cache"])
        raw = path.read_bytes()
        if damage == "folder":
            path.unlink()
            path.mkdir()
        else:
            path.write_bytes({"truncate": raw[: len(raw) // 2], "zero": bytes(len(raw)), "empty": b"",
                              "garbage": b"PK\x03\x04 not really a zip"}[damage])  # fmt: skip
    capsys.readouterr()
    second = _get(root, home)
    assert not second.meta["image"]["cached"] and not second.meta["text"]["cached"]
    np.testing.assert_array_equal(second.image, first.image)
    np.testing.assert_array_equal(second.text, first.text)
    err = capsys.readouterr().err
    assert err.count("is damaged") == 2 and "recomputing" in err
    if damage != "folder":  # the fresh result replaced the damaged file
        assert _get(root, home).meta["image"]["cached"]


def test_two_roots_never_share_a_cache_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    one = _tree(tmp_path / "one")
    two = _tree(tmp_path / "two", colours=[(0, 0, 0)] * 4)  # same file names, other pixels
    f1, f2 = _get(one, home), _get(two, home)
    np.testing.assert_allclose(f1.image[0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(f2.image[0], [0, 0, 0], atol=1e-6)
    d1, d2 = (Path(f.meta["image"]["cache"]).parent for f in (f1, f2))
    assert d1 != d2 and d1.parent.parent == d2.parent.parent == home / "features" / "captions-jsonl"
    assert {p.parent for p in (Path(f1.meta["text"]["cache"]), Path(f2.meta["text"]["cache"]))} == {d1, d2}
    # the data home's own datasets keep the plain layout
    assert features.root_tag(data.load("captions-jsonl", root=one, split="test"), home) is not None
    inside = _tree(home / "mine")
    assert features.root_tag(data.load("captions-jsonl", root=inside, split="test"), home) is None


def _break_images(root: Path) -> None:
    (root / "b.bmp").write_bytes(b"BM not really a bitmap")
    (root / "c.bmp").write_bytes(b"")


def test_bad_images_raise_by_name_unless_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, home = _tree(tmp_path / "ds"), tmp_path / "home"
    _break_images(root)
    with pytest.raises(BadImageError, match=r"cannot read image .*b\.bmp"):
        _get(root, home)
    capsys.readouterr()
    fs = _get(root, home, skip_bad_images=True)
    assert fs.num_images == 2 and fs.image_ids == ["a.bmp", "d.bmp"]
    assert fs.captions == ["a red thing", "something red", "a grey one"] and fs.txt2img.tolist() == [0, 0, 1]
    np.testing.assert_allclose(fs.text[2], [1, 2, 0, 1])  # "a grey one" (of d), not "a blue thing" (of b)
    np.testing.assert_allclose(fs.image[1], [128 / 255] * 3, atol=1e-6)
    skipped = fs.meta["skipped_images"]
    assert [Path(s["path"]).name for s in skipped] == ["b.bmp", "c.bmp"] and all(s["reason"] for s in skipped)
    err = capsys.readouterr().err.splitlines()
    assert [ln for ln in err if "skipped" in ln] == [
        f"gssf: skipped 2 of 4 images of captions-jsonl/test that cannot be read (first: {skipped[0]['path']}: "
        f"{skipped[0]['reason']})"
    ]
    # the cache remembers what was skipped: a skipping run is cached, a strict one still refuses
    assert _get(root, home, skip_bad_images=True).meta["image"]["cached"]
    with pytest.raises(BadImageError, match=r"b\.bmp"):
        _get(root, home)
    # a repaired image comes back (its content is part of the key)
    _solid(root / "b.bmp", (0, 0, 255))
    assert _get(root, home, skip_bad_images=True).image_ids == ["a.bmp", "b.bmp", "d.bmp"]


def test_skipping_keeps_labels_and_cameras_aligned(tmp_path: Path) -> None:
    root = trees.market_tree(tmp_path / "market")
    ds = data.load("market1501", root=root, split="gallery")
    ds.images[1].path.write_bytes(b"\xff\xd8 truncated jpeg")
    fs = get_features(ds, image_encoder="test-mean-colour", resolution=8, data_home=tmp_path / "home",
                      progress=False, skip_bad_images=True)  # fmt: skip
    keep = [0, 2, 3, 4]
    assert fs.labels.tolist() == ds.labels[keep].tolist() and fs.cams.tolist() == ds.cams[keep].tolist()
    assert fs.image_ids == [ds.images[i].id for i in keep] and len(fs.meta["skipped_images"]) == 1


def test_every_image_bad_is_a_named_error(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ds")
    for name in "abcd":
        (root / f"{name}.bmp").write_bytes(b"x")
    with pytest.raises(BadImageError, match=r"none of the 4 images of captions-jsonl/test can be read; first: .*a\.bmp"):
        _get(root, tmp_path / "home", skip_bad_images=True)


def test_missing_or_unreadable_files_are_named(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ds")
    ds = data.load("captions-jsonl", root=root, split="test")
    (root / "c.bmp").unlink()
    with pytest.raises(FileNotFoundError, match=r"image not found at .*c\.bmp"):
        get_features(ds, image_encoder="test-mean-colour", text_encoder="test-char-counts", data_home=tmp_path / "h",
                     progress=False)  # fmt: skip
    fs = get_features(ds, image_encoder="test-mean-colour", text_encoder="test-char-counts", data_home=tmp_path / "h",
                      progress=False, skip_bad_images=True)  # fmt: skip
    assert fs.image_ids == ["a.bmp", "b.bmp", "d.bmp"] and "c.bmp" in fs.meta["skipped_images"][0]["path"]


def test_progress_off_a_terminal_is_one_line_per_stage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _tree(tmp_path / "ds")
    for skip in (False, True):
        get_features("captions-jsonl", "test", root=root, data_home=tmp_path / f"home{skip}", resolution=8,
                     image_encoder="test-mean-colour", text_encoder="test-char-counts", skip_bad_images=skip)  # fmt: skip
        err = capsys.readouterr().err
        assert "\r" not in err
        assert err.splitlines() == ["test-mean-colour: images: 4 item", "test-char-counts: texts: 5 item"]


@pytest.mark.slow
def test_model_loading_prints_no_bars_off_a_terminal(capfd: pytest.CaptureFixture) -> None:
    from gssf import encoders

    encoders.create("minilm")
    assert "\r" not in capfd.readouterr().err  # e.g. transformers' "Loading weights" bar


def test_content_index_tracks_files(tmp_path: Path) -> None:
    from gssf.data.base import ImageRecord
    from gssf.data.content import image_digests

    a = _solid(tmp_path / "a.bmp", (1, 2, 3))
    index = tmp_path / "index.json"
    recs: List[ImageRecord] = [ImageRecord("a", path=a), ImageRecord("arr", array=np.zeros((2, 2), np.uint8))]
    first = image_digests(recs, index)
    assert image_digests(recs, index) == first and json.loads(index.read_text())["files"][str(a)][-1] == first[0]
    index.write_text("{damaged")
    assert image_digests(recs, index) == first  # a damaged index is rebuilt
    _solid(a, (3, 2, 1))
    assert image_digests(recs, index)[0] != first[0]
    assert image_digests([ImageRecord("gone", path=tmp_path / "gone.bmp")], index, strict=False) == ["unreadable:FileNotFoundError"]


def test_set_features_are_cached_without_their_padding_and_read_back_exactly(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    from gssf.features import _Cached, _read_cache, _write_cache

    rng = np.random.default_rng(0)
    lengths = [32, 5, 1, 0, 12]  # a caption of 0 tokens: all padding
    sets = np.zeros((5, 32, 6), dtype=np.float32)
    for i, n in enumerate(lengths):
        sets[i, :n] = rng.standard_normal((n, 6))
    sets[1, 2] = 0.0  # an all-zero element inside a set is kept: only trailing padding goes
    rows = sets.reshape(5, -1)
    ids = [f"c{i}" for i in range(5)]
    entry = _Cached(rows, np.arange(5), [])
    compact, padded = tmp_path / "compact.npz", tmp_path / "padded.npz"
    _write_cache(compact, entry, ids, {}, element_dim=6)
    _write_cache(padded, entry, ids, {})
    with np.load(compact) as z:
        assert "features" not in z.files and z["lengths"].tolist() == lengths and z["elements"].shape == (50, 6)
    assert compact.stat().st_size < padded.stat().st_size  # 50 of 160 elements stored
    for path in (compact, padded):
        back = _read_cache(path, ids)
        assert back is not None and back.features.dtype == np.float32 and np.array_equal(back.features, rows)
    # lengths that do not fit the stored elements: reported, recomputed
    with np.load(compact) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["lengths"] = arrays["lengths"] + 1
    np.savez(compact, **arrays)
    assert _read_cache(compact, ids) is None
    assert "damaged" in capsys.readouterr().err
