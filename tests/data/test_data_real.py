"""The embedded real datasets: sizes, disjoint and machine-independent splits, views.

These prepare the data themselves when needed (idempotent; `make test` prepares first).
The pinned sizes and digests are the ones documented in docs/data.md.
"""
from __future__ import annotations

import hashlib
from typing import Dict

import numpy as np
import pytest

from gssf import data
from gssf.data.prepare import prepare_many
from gssf.data.splits import assign_split, hash_unit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def prepared() -> None:
    prepare_many(["all"], log=lambda m: None, progress=False)


def _digest(ds) -> str:
    return hashlib.sha1("\n".join(r.id for r in ds.images).encode()).hexdigest()[:12]


# (images, sha1 of the ordered image ids) per split: identical on every machine.
EXPECTED: Dict[str, Dict[str, tuple]] = {
    "tux": {"train": (488, "042d002ebda4"), "val": (75, "bce28ed39881"), "test": (229, "465e07004f3a")},
    "emoji": {"train": (1130, "e60dc862dee1"), "val": (204, "914c0b06b4f4"), "test": (572, "0b44fca5d158")},
    "emoji-reid": {
        "train": (3390, "af089ca27601"), "val": (612, "cd7846b640ac"), "test": (1716, "c358ba6a1795"),
        "query": (572, "0b44fca5d158"), "gallery": (1144, "1ad0757d3ddc"),
        "val-query": (204, "914c0b06b4f4"), "val-gallery": (408, "10435164039f"),
    },
    "emoji-fine-grained": {"train": (3390, "af089ca27601"), "val": (612, "cd7846b640ac"), "test": (1716, "c358ba6a1795")},
    "fashion-mnist": {"train": (30000, "b5337df68a5c"), "val": (5000, "83eaac374eb1"), "test": (5000, "1f0a4e63c044")},
}  # fmt: skip


def test_hash_split_is_a_fixed_function_of_the_name() -> None:
    # Pinned values: any change to the hashing would reshuffle every published split.
    assert hash_unit("tux:animals/mammals/pig") == pytest.approx(0.3020842583284318, abs=1e-15)
    assert assign_split("tux:animals/mammals/pig") == "train"
    fracs = [assign_split(f"k{i}") for i in range(20000)]
    assert abs(fracs.count("train") / 20000 - 0.6) < 0.02 and abs(fracs.count("val") / 20000 - 0.1) < 0.01


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_split_sizes_and_digests(name: str) -> None:
    for split, (n, digest) in EXPECTED[name].items():
        ds = data.load(name, split=split)
        assert (len(ds.images), _digest(ds)) == (n, digest), f"{name}/{split}"
        # loading again gives the same order (no dependence on file-system order)
        assert _digest(data.load(name, split=split)) == digest


def test_tux_splits_are_disjoint_and_cover_all_stamps() -> None:
    splits = {s: data.load("tux", split=s) for s in ("train", "val", "test")}
    keys = [{r.id for r in d.images} for d in splits.values()]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert sum(map(len, keys)) == 792
    assert not any(k.startswith("symbols/alphabets/") for ks in keys for k in ks)
    test = splits["test"]
    assert test.txt2img.tolist() == list(range(test.num_images))
    assert all(c and not c.startswith(("xx.utf8", "\ufeff")) for c in test.captions)
    assert all(r.path.suffix == ".png" and r.path.is_file() for r in test.images)
    assert set(test.categories) <= {"animals", "clothes", "food", "hobbies", "household", "medical", "military",
                                    "naturalforces", "people", "plants", "seasonal", "space", "sports", "symbols",
                                    "town", "vehicles"}  # fmt: skip
    with_letters = sum(data.load("tux", split=s, include_alphabets=True).num_images for s in ("train", "val", "test"))
    assert with_letters == 950


def test_emoji_views_share_identity_splits() -> None:
    caps = {s: data.load("emoji", split=s) for s in ("train", "val", "test")}
    reid = {s: data.load("emoji-reid", split=s) for s in ("train", "val", "test", "query", "gallery")}
    ids = {s: set(reid[s].labels.tolist()) for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert sum(map(len, ids.values())) == 1906
    # query = Google (camera 0) of the test identities; gallery = Twitter + OpenMoji, same identities
    q, g = reid["query"], reid["gallery"]
    assert set(q.cams.tolist()) == {0} and set(g.cams.tolist()) == {1, 2}
    assert set(q.labels.tolist()) == set(g.labels.tolist()) == ids["test"]
    assert np.bincount(g.labels, minlength=1906)[q.labels].tolist() == [2] * len(q)
    # the caption view uses the same identities, captions "CLDR name: keywords"
    assert [r.id.split("/")[1] for r in caps["test"].images] == [r.id.split("/")[1] for r in q.images]
    feather = [c for c in caps["train"].captions + caps["val"].captions + caps["test"].captions if c.startswith("feather:")]
    assert feather == ["feather: bird, flight, light, plumage"]
    fg = data.load("emoji-fine-grained", split="test")
    assert np.bincount(fg.labels)[np.unique(fg.labels)].tolist() == [3] * 572
    img = g.image(0)
    assert img.size == (64, 64) and img.mode == "RGB"


def test_fashion_mnist_class_disjoint() -> None:
    train, val, test = (data.load("fashion-mnist", split=s) for s in ("train", "val", "test"))
    assert set(train.labels.tolist()) == set(val.labels.tolist()) == {0, 1, 2, 3, 4}
    assert set(test.labels.tolist()) == {5, 6, 7, 8, 9}
    assert np.bincount(test.labels, minlength=10)[5:].tolist() == [1000] * 5
    assert not ({r.id for r in val.images} & {r.id for r in test.images})
    assert train.image(0).size == (28, 28) and train.categories[0] in ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
