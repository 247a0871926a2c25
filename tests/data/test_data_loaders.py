"""Every standard loader on a tree generated here, including malformed ones."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gssf_data_trees as trees
from gssf import data
from gssf.data.base import CrossModalDataset, UniModalDataset

# --------------------------------------------------------------------------- Karpathy


@pytest.mark.parametrize("name", ["flickr30k", "coco"])
def test_karpathy_splits_and_captions(tmp_path: Path, name: str) -> None:
    root = trees.karpathy_tree(tmp_path, name)
    train = data.load(name, root=root, split="train")
    val = data.load(name, root=root, split="val")
    test = data.load(name, root=root, split="test")
    assert isinstance(test, CrossModalDataset)
    assert (train.num_images, val.num_images, test.num_images) == (4, 2, 2)  # restval joins train
    assert data.load(name, root=root, split="train", restval=False).num_images == 3
    assert test.num_captions == 10
    assert test.txt2img.tolist() == [0] * 5 + [1] * 5
    assert test.captions[5] == "image 6 caption 0"
    assert all(r.path is not None and r.path.is_file() for r in test.images)
    assert data.load(name, root=root, split="dev").num_images == 2  # alias of val
    ids = [{r.id for r in d.images} for d in (train, val, test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_karpathy_missing_json(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not found at .*dataset_flickr30k\.json; expected layout: "):
        data.load("flickr30k", root=tmp_path, split="test")


def test_karpathy_missing_image(tmp_path: Path) -> None:
    root = trees.karpathy_tree(tmp_path, "flickr30k")
    (root / "flickr30k-images" / "000005.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 flickr30k images not found, first at .*000005\.jpg"):
        data.load("flickr30k", root=root, split="test")


def test_karpathy_caption_count_mismatch(tmp_path: Path) -> None:
    root = trees.karpathy_tree(tmp_path, "coco", captions=4)
    with pytest.raises(ValueError, match="caption count mismatch.*has 4 captions; expected at least 5"):
        data.load("coco", root=root, split="test")
    assert data.load("coco", root=root, split="test", captions_per_image=None).num_captions == 8


def test_karpathy_empty_split(tmp_path: Path) -> None:
    root = trees.karpathy_tree(tmp_path, "flickr30k", per_split={"train": 2, "test": 1})
    with pytest.raises(ValueError, match="split 'val' of dataset 'flickr30k' is empty"):
        data.load("flickr30k", root=root, split="val")


def test_karpathy_malformed_json(tmp_path: Path) -> None:
    (tmp_path / "dataset_flickr30k.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a Karpathy split JSON"):
        data.load("flickr30k", root=tmp_path, split="test")


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    root = trees.karpathy_tree(tmp_path, "flickr30k")
    bad = root / "flickr30k-images" / "000006.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    ds = data.load("flickr30k", root=root, split="test")
    assert ds.image(0).mode == "RGB"  # the other test image is fine
    with pytest.raises(ValueError, match=r"cannot read image .*000006\.jpg"):
        ds.image(1)


# --------------------------------------------------------------------------- precomputed


@pytest.mark.parametrize("regions", [0, 3])
def test_precomp_layout(tmp_path: Path, regions: int) -> None:
    root = trees.precomp_tree(tmp_path, "dev", n=4, k=5, regions=regions)
    ds = data.load("precomp", root=root, split="val")  # val means dev
    assert ds.split == "dev" and ds.num_images == 4 and ds.num_captions == 20
    assert ds.image_features is not None
    assert ds.image_features.shape == ((4, 3, 8) if regions else (4, 8))
    assert ds.txt2img.tolist() == np.repeat(np.arange(4), 5).tolist()
    assert ds.meta["captions_per_image"] == 5


def test_precomp_caption_count_mismatch(tmp_path: Path) -> None:
    root = trees.precomp_tree(tmp_path, "test", n=4, k=5)
    with open(root / "test_caps.txt", "a") as fh:
        fh.write("one caption too many\n")
    with pytest.raises(ValueError, match="caption count mismatch.*21 captions for 4 images"):
        data.load("precomp", root=root, split="test")


def test_precomp_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not found at .*testall_ims\.npy; expected layout: "):
        data.load("precomp", root=tmp_path, split="testall")
    np.save(tmp_path / "test_ims.npy", np.zeros((0, 4), np.float32))
    (tmp_path / "test_caps.txt").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        data.load("precomp", root=tmp_path, split="test")


def test_precomp_ids_must_match(tmp_path: Path) -> None:
    root = trees.precomp_tree(tmp_path, "test", n=3, k=2)
    (root / "test_ids.txt").write_text("10\n11\n")
    with pytest.raises(ValueError, match="lists 2 ids for 3 images"):
        data.load("precomp", root=root, split="test")
    (root / "test_ids.txt").write_text("10\n11\n12\n")
    assert [r.id for r in data.load("precomp", root=root, split="test").images] == ["10", "11", "12"]


# --------------------------------------------------------------------------- captions.jsonl


def test_captions_jsonl(tmp_path: Path) -> None:
    rows = [
        {"image": "a/x.jpg", "caption": "x one", "split": "test"},
        {"image": "b.jpg", "caption": "b one", "split": "train"},
        {"image": "a/x.jpg", "caption": "x two", "split": "test"},
        {"image": "c.jpg", "caption": "c one", "split": "test"},
    ]
    root = trees.jsonl_tree(tmp_path, rows)
    ds = data.load("captions-jsonl", root=root, split="test")
    assert [r.id for r in ds.images] == ["a/x.jpg", "c.jpg"]
    assert ds.captions == ["x one", "x two", "c one"]
    assert ds.txt2img.tolist() == [0, 0, 1]
    assert ds.img2txt() == [[0, 1], [2]]
    assert data.load("captions-jsonl", root=root, split="train").num_images == 1
    with pytest.raises(ValueError, match="split 'val' of dataset 'captions-jsonl' is empty"):
        data.load("captions-jsonl", root=root, split="val")


def test_captions_jsonl_malformed(tmp_path: Path) -> None:
    root = trees.jsonl_tree(tmp_path, [{"image": "a.jpg", "caption": "ok", "split": "test"}])
    with open(root / "captions.jsonl", "a") as fh:
        fh.write(json.dumps({"image": "a.jpg", "split": "test"}) + "\n")
    with pytest.raises(ValueError, match=r"captions\.jsonl:2: malformed line"):
        data.load("captions-jsonl", root=root, split="test")
    (root / "captions.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"not found at .*captions\.jsonl; expected layout: "):
        data.load("captions-jsonl", root=root, split="test")


def test_captions_jsonl_missing_image(tmp_path: Path) -> None:
    root = trees.jsonl_tree(tmp_path, [{"image": "a.jpg", "caption": "ok", "split": "test"}])
    with open(root / "captions.jsonl", "a") as fh:
        fh.write(json.dumps({"image": "gone.jpg", "caption": "no file", "split": "test"}) + "\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.jpg"):
        data.load("captions-jsonl", root=root, split="test")


# --------------------------------------------------------------------------- re-ID


def test_market1501_protocol(tmp_path: Path) -> None:
    root = trees.market_tree(tmp_path)
    train = data.load("market1501", root=root, split="train")
    query = data.load("market1501", root=root, split="query")
    gallery = data.load("market1501", root=root, split="gallery")
    assert isinstance(gallery, UniModalDataset)
    assert train.labels.tolist() == [1, 1, 2, 2] and train.cams.tolist() == [1, 2, 1, 3]  # sorted by name
    assert query.labels.tolist() == [5, 6]
    # junk (-1) dropped, distractor (0) kept; files sorted by name
    assert sorted(gallery.labels.tolist()) == [0, 5, 5, 6, 7]
    assert gallery.meta == {"junk_dropped": 1, "distractors": 1}
    assert gallery.images[0].id.startswith("bounding_box_test/")
    assert data.load("market1501", root=root, split="test").split == "gallery"


def test_dukemtmc_names(tmp_path: Path) -> None:
    root = trees.market_tree(tmp_path, duke=True)
    gallery = data.load("dukemtmc", root=root, split="gallery")
    assert sorted(zip(gallery.labels.tolist(), gallery.cams.tolist())) == [(0, 4), (5, 1), (5, 2), (6, 8), (7, 6)]
    # a Market-1501 name is malformed for DukeMTMC
    trees.write_image(root / "query" / "0005_c1s1_000001_00.jpg", 1)
    with pytest.raises(ValueError, match="unexpected dukemtmc file name '0005_c1s1_000001_00.jpg'"):
        data.load("dukemtmc", root=root, split="query")


def test_reid_missing_folder_and_bad_camera(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not found at .*bounding_box_train; expected layout: "):
        data.load("market1501", root=tmp_path, split="train")
    trees.write_image(tmp_path / "query" / "0001_c9s1_000001_00.jpg", 0)
    with pytest.raises(ValueError, match="camera 9; expected 1-6"):
        data.load("market1501", root=tmp_path, split="query")


def test_reid_empty_split(tmp_path: Path) -> None:
    (tmp_path / "query").mkdir()
    with pytest.raises(ValueError, match="split 'query' of dataset 'market1501' is empty"):
        data.load("market1501", root=tmp_path, split="query")


# --------------------------------------------------------------------------- fine-grained


def test_cub_class_disjoint(tmp_path: Path) -> None:
    root = trees.cub_tree(tmp_path)
    train, test = data.load("cub", root=root, split="train"), data.load("cub", root=root, split="test")
    assert train.labels.tolist() == [1, 2, 100] and test.labels.tolist() == [101, 150, 200]
    assert train.cams is None
    assert test.images[0].path == root / "images" / "101.Bird_101" / "img_4.jpg"
    with pytest.raises(ValueError, match="unknown split 'val' for dataset 'cub'; choose from train, test"):
        data.load("cub", root=root, split="val")


def test_cub_malformed(tmp_path: Path) -> None:
    root = trees.cub_tree(tmp_path)
    (root / "image_class_labels.txt").write_text("1 1\n2 2\n")
    with pytest.raises(ValueError, match="list different ids"):
        data.load("cub", root=root, split="train")
    (root / "images.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"not found at .*images\.txt; expected layout: "):
        data.load("cub", root=root, split="train")


def test_cub_missing_image(tmp_path: Path) -> None:
    root = trees.cub_tree(tmp_path)
    (root / "images" / "150.Bird_150" / "img_5.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 cub images not found"):
        data.load("cub", root=root, split="test")
    assert len(data.load("cub", root=root, split="test", check_files=False)) == 3


def test_cars196(tmp_path: Path) -> None:
    root = trees.cars_tree(tmp_path)
    train, test = data.load("cars196", root=root, split="train"), data.load("cars196", root=root, split="test")
    assert train.labels.tolist() == [1, 98, 5] and test.labels.tolist() == [99, 196]
    assert [r.id for r in train.images] == ["car_ims/000001.jpg", "car_ims/000002.jpg", "car_ims/000005.jpg"]
    (root / "cars_annos.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="expected layout"):
        data.load("cars196", root=root, split="train")


def test_sop(tmp_path: Path) -> None:
    root = trees.sop_tree(tmp_path)
    train, test = data.load("sop", root=root, split="train"), data.load("sop", root=root, split="test")
    assert train.labels.tolist() == [1, 1, 2] and train.categories == ["1", "1", "2"]
    assert test.labels.tolist() == [3, 3]
    (root / "Ebay_test.txt").write_text("image_id class_id super_class_id path\n4 3 bicycle_final/333_0.JPG\n")
    with pytest.raises(ValueError, match=r"Ebay_test\.txt:2: expected 'image_id class_id super_class_id path'"):
        data.load("sop", root=root, split="test")


# --------------------------------------------------------------------------- user features


def test_user_features_cross_modal(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "features.npz", image=rng.standard_normal((3, 4)), text=rng.standard_normal((6, 5)),
             txt2img=np.array([0, 0, 1, 1, 2, 2]))  # fmt: skip
    ds = data.load("features", root=tmp_path, split="test")
    assert isinstance(ds, CrossModalDataset) and ds.num_images == 3 and ds.num_captions == 6
    assert ds.image_features.dtype == np.float32 and ds.text_features.shape == (6, 5)
    # a single features.npz never silently becomes the training split
    with pytest.raises(FileNotFoundError, match=r"not found at .*train/features\.npz; expected layout: "):
        data.load("features", root=tmp_path, split="train")
    (tmp_path / "train").mkdir()
    np.savez(tmp_path / "train" / "features.npz", image=np.zeros((2, 4)), labels=np.array([1, 2]), cams=np.array([0, 1]))
    uni = data.load("features", root=tmp_path, split="train")
    assert isinstance(uni, UniModalDataset) and uni.labels.tolist() == [1, 2] and uni.cams.tolist() == [0, 1]


def test_user_features_malformed(tmp_path: Path) -> None:
    np.savez(tmp_path / "features_test.npz", image=np.zeros((3, 4)), text=np.zeros((2, 4)), txt2img=np.array([0, 5]))
    with pytest.raises(ValueError, match="txt2img points outside the 3 images"):
        data.load("features", root=tmp_path, split="test")
    np.savez(tmp_path / "features_test.npz", image=np.zeros((3, 4)), text=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="has 'text' but no 'txt2img'"):
        data.load("features", root=tmp_path, split="test")


# --------------------------------------------------------------------------- registry


def test_registry_names_and_errors(tmp_path: Path) -> None:
    names = {i.name for i in data.list_datasets()}
    assert {"tux", "emoji", "emoji-reid", "emoji-fine-grained", "fashion-mnist", "flickr30k", "coco", "precomp",
            "captions-jsonl", "market1501", "dukemtmc", "cub", "cars196", "sop", "features"} <= names  # fmt: skip
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        data.load("nope")
    with pytest.raises(FileNotFoundError, match="pass root=PATH.*expected layout: ROOT/dataset_flickr30k.json"):
        data.load("flickr30k", split="test")
    with pytest.raises(FileNotFoundError, match=r"run `gssf data prepare tux`"):
        data.load("tux", split="test", home=tmp_path)
