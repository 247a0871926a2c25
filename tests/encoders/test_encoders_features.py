"""gssf.features: the features.npz format, extraction and its cache."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gssf import data
from gssf.features import FeatureSet, get_features, load_features_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import gssf_data_trees as trees  # noqa: E402

ROWS = [
    {"image": "a.jpg", "caption": "a red thing", "split": "test"},
    {"image": "a.jpg", "caption": "something red", "split": "test"},
    {"image": "b.jpg", "caption": "a blue thing", "split": "test"},
    {"image": "c.jpg", "caption": "a green thing", "split": "test"},
]


def test_featureset_roundtrip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fs = FeatureSet(image=rng.standard_normal((3, 4)).astype(np.float32), text=rng.standard_normal((4, 2)).astype(np.float32),
                    txt2img=[0, 0, 1, 2], image_paths=["a", "b", "c"], captions=["w", "x", "y", "z"],
                    meta={"dataset": "d", "split": "test"})  # fmt: skip
    back = load_features_file(fs.save(tmp_path / "out" / "features.npz"))
    assert back.kind == "cross-modal" and back.captions == fs.captions and back.image_paths == fs.image_paths
    np.testing.assert_array_equal(back.image, fs.image)
    assert back.txt2img.dtype == np.int64 and back.txt2img.tolist() == [0, 0, 1, 2]
    assert back.meta["dataset"] == "d" and back.summary().startswith("d/test: cross-modal")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["features.npz"]  # no temporary left
    uni = FeatureSet(image=np.zeros((2, 3), np.float32), labels=[4, 5], cams=[1, 2])
    back = load_features_file(uni.save(tmp_path / "u.npz"))
    assert back.kind == "uni-modal" and back.labels.tolist() == [4, 5] and back.cams.tolist() == [1, 2]


def test_load_features_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="features file not found at .*; expected layout: "):
        load_features_file(tmp_path / "none.npz")
    np.savez(tmp_path / "a.npz", text=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="has no 'image' array"):
        load_features_file(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", image=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="neither 'text' \\+ 'txt2img' nor 'labels'"):
        load_features_file(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", image=np.zeros((2, 3)), labels=np.zeros(3))
    with pytest.raises(ValueError, match="3 labels for 2 images"):
        load_features_file(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read"):
        load_features_file(tmp_path / "d.npz")


@pytest.mark.slow
def test_extraction_cache(tmp_path: Path) -> None:
    root = trees.jsonl_tree(tmp_path / "ds", ROWS)
    home = tmp_path / "home"
    kw = dict(root=root, data_home=home, resolution=64, progress=False)
    first = get_features("captions-jsonl", "test", **kw)
    assert first.kind == "cross-modal" and first.image.shape == (3, 1280) and first.text.shape == (4, 384)
    assert first.image.dtype == np.float32 and first.txt2img.tolist() == [0, 0, 1, 2]
    assert first.captions == [r["caption"] for r in ROWS] and first.image_paths[0].endswith("a.jpg")
    assert not first.meta["image"]["cached"] and not first.meta["text"]["cached"]
    folder = Path(first.meta["image"]["cache"]).parent  # a user root: <features>/captions-jsonl/root-<hash>/test
    assert folder.parent.parent == home / "features" / "captions-jsonl" and folder.parent.name.startswith("root-")
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and files[0].startswith("image-efficientnet-lite0-64px-") and files[1].startswith("text-minilm-")

    t0 = time.perf_counter()
    second = get_features("captions-jsonl", "test", **kw)
    assert time.perf_counter() - t0 < 2.0
    assert second.meta["image"]["cached"] and second.meta["text"]["cached"]
    np.testing.assert_array_equal(second.image, first.image)
    np.testing.assert_array_equal(second.text, first.text)

    # another resolution is another cache entry; force recomputes to the same values
    other = get_features("captions-jsonl", "test", **{**kw, "resolution": 96})
    assert not other.meta["image"]["cached"] and other.meta["text"]["cached"]
    assert other.meta["image"]["cache"] != first.meta["image"]["cache"] and not np.allclose(other.image, first.image)
    forced = get_features("captions-jsonl", "test", force=True, **kw)
    assert not forced.meta["image"]["cached"]
    np.testing.assert_allclose(forced.image, first.image, atol=1e-4)

    # edited captions: text recomputed, images still cached
    rows = [dict(r) for r in ROWS]
    rows[2]["caption"] = "a very blue thing"
    trees.jsonl_tree(tmp_path / "ds", rows)
    edited = get_features("captions-jsonl", "test", **kw)
    assert edited.meta["image"]["cached"] and not edited.meta["text"]["cached"]
    assert not np.allclose(edited.text[2], first.text[2]) and np.allclose(edited.text[0], first.text[0], atol=1e-5)

    # limit keeps the first images and their captions
    small = get_features("captions-jsonl", "test", limit=1, **kw)
    assert small.image.shape == (1, 1280) and small.txt2img.tolist() == [0, 0]
    np.testing.assert_allclose(small.image[0], first.image[0], atol=1e-4)


@pytest.mark.slow
def test_precomputed_features_are_used_as_they_are(tmp_path: Path) -> None:
    root = trees.precomp_tree(tmp_path / "f30k_precomp", "test", n=3, k=2, regions=4, dim=8)
    fs = get_features("precomp", "test", root=root, data_home=tmp_path / "home", progress=False)
    assert fs.image.shape == (3, 4, 8) and fs.meta["image"]["source"] == "precomputed"
    np.testing.assert_array_equal(fs.image, np.load(root / "test_ims.npy"))
    assert fs.text.shape == (6, 384) and fs.txt2img.tolist() == [0, 0, 1, 1, 2, 2]

    user = tmp_path / "mine"
    user.mkdir()
    np.savez(user / "features.npz", image=np.ones((2, 3)), text=np.ones((4, 5)), txt2img=np.array([0, 1, 1, 0]))
    fs = get_features("features", "test", root=user, data_home=tmp_path / "home", progress=False)
    assert fs.image.shape == (2, 3) and fs.text.shape == (4, 5) and fs.meta["text"]["source"] == "precomputed"


@pytest.mark.slow
def test_uni_modal_features(tmp_path: Path) -> None:
    root = trees.market_tree(tmp_path / "market")
    ds = data.load("market1501", root=root, split="gallery")
    fs = get_features(ds, resolution=64, data_home=tmp_path / "home", progress=False)
    assert fs.kind == "uni-modal" and fs.image.shape == (5, 1280) and fs.text is None
    assert fs.labels.tolist() == ds.labels.tolist() and fs.cams.tolist() == ds.cams.tolist()
    with pytest.raises(ValueError, match="split='query' given but the dataset object is split 'gallery'"):
        get_features(ds, "query", data_home=tmp_path / "home")


@pytest.mark.slow
def test_real_tux_features() -> None:
    """Prepare tux (idempotent) and extract a small subset at 128 px; the second call reads the cache."""
    from gssf.data.prepare import prepare

    prepare("tux", log=lambda m: None, progress=False)
    fs = get_features("tux", "test", resolution=128, limit=48, progress=False)
    assert fs.image.shape == (48, 1280) and fs.text.shape == (48, 384)
    assert np.isfinite(fs.image).all() and np.isfinite(fs.text).all()
    assert len(set(map(tuple, fs.image.round(3)))) == 48  # 48 different pictures
    assert all(Path(p).is_file() for p in fs.image_paths)
    t0 = time.perf_counter()
    again = get_features("tux", "test", resolution=128, limit=48, progress=False)
    assert time.perf_counter() - t0 < 2.0 and again.meta["image"]["cached"] and again.meta["text"]["cached"]
    np.testing.assert_allclose(np.linalg.norm(again.text, axis=1), 1.0, atol=1e-5)
    assert again.captions[:2] == data.load("tux", split="test").captions[:2]
