"""Grouped image-text datasets (many images per caption): the container, emoji-captions, wesnoth-descriptions.

The emoji-captions tests build a tiny emoji-styles tree and fake emojibase files; the last
tests (marked slow) read the real prepared data.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

from gssf import data
from gssf.data import emoji_captions as ec
from gssf.data import iconify as ic
from gssf.data import prepare as prep
from gssf.data.base import CrossModalDataset, ImageRecord
from gssf.errors import GssfError
from gssf.features import FeatureSet, load_features_file

from test_data_iconify import icon_sets, write_packages  # noqa: E402  (the tiny Iconify sets)

# --------------------------------------------------------------------------- the container


def _grouped(**kw: Any) -> CrossModalDataset:
    args: Dict[str, Any] = dict(
        name="g", split="test", images=[ImageRecord(id=f"i{k}") for k in range(5)],
        captions=["a", "b", "c"], txt2img=[0, 2, 4],
        image_groups=[7, 7, 8, 8, 9], text_groups=[7, 8, 9],
    )  # fmt: skip
    args.update(kw)
    return CrossModalDataset(**args)


def test_groups_are_checked() -> None:
    ds = _grouped()
    assert ds.grouped and ds.groups()[1].tolist() == [7, 8, 9]
    plain = CrossModalDataset(name="p", split="test", images=[ImageRecord(id="x"), ImageRecord(id="y")],
                              captions=["a", "b", "c"], txt2img=[0, 0, 1])  # fmt: skip
    assert not plain.grouped and [g.tolist() for g in plain.groups()] == [[0, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match="image_groups and text_groups go together"):
        _grouped(text_groups=None)
    with pytest.raises(ValueError, match="4 image_groups for 5 images"):
        _grouped(image_groups=[7, 7, 8, 8])
    with pytest.raises(ValueError, match="text_groups must hold integers"):
        _grouped(text_groups=[7.0, 8.0, 9.0])
    with pytest.raises(ValueError, match="1 caption group.s. have no image, e.g. group 10"):
        _grouped(text_groups=[7, 8, 10], txt2img=[0, 2, 4])
    with pytest.raises(ValueError, match="txt2img of caption 1 points at an image of another group"):
        _grouped(txt2img=[0, 1, 4])


def test_take_images_keeps_a_caption_while_its_group_has_an_image() -> None:
    ds = _grouped()
    sub, rows = ds.take_images(np.asarray([1, 3]))  # one image of group 7, one of 8; group 9 loses its only one
    assert rows.tolist() == [0, 1] and sub.captions == ["a", "b"]
    assert sub.image_groups.tolist() == [7, 8] and sub.text_groups.tolist() == [7, 8] and sub.txt2img.tolist() == [0, 1]
    # without groups a caption goes with its own image
    plain = CrossModalDataset(name="p", split="test", images=[ImageRecord(id=f"i{k}") for k in range(3)],
                              captions=["a", "b", "c"], txt2img=[0, 1, 2])  # fmt: skip
    sub, rows = plain.take_images(np.asarray([0, 2]))
    assert sub.captions == ["a", "c"] and sub.txt2img.tolist() == [0, 1] and rows.tolist() == [0, 2]
    assert ds.subset(3).text_groups.tolist() == [7, 8]
    # the groups enter the caption fingerprint (the text cache key)
    other = _grouped(image_groups=[1, 1, 2, 2, 3], text_groups=[1, 2, 3])
    assert ds.fingerprint()["captions"] != other.fingerprint()["captions"]


def test_feature_files_carry_the_groups(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fs = FeatureSet(image=rng.normal(size=(5, 4)).astype(np.float32), text=rng.normal(size=(3, 4)).astype(np.float32),
                    txt2img=[0, 2, 4], image_groups=[7, 7, 8, 8, 9], text_groups=[7, 8, 9])  # fmt: skip
    back = load_features_file(fs.save(tmp_path / "f.npz"))
    assert back.image_groups.tolist() == [7, 7, 8, 8, 9] and back.text_groups.tolist() == [7, 8, 9]
    np.savez(tmp_path / "bad.npz", image=fs.image, text=fs.text, txt2img=fs.txt2img, image_groups=fs.image_groups)
    with pytest.raises(GssfError, match="image_groups and text_groups go together"):
        load_features_file(tmp_path / "bad.npz")


# --------------------------------------------------------------------------- emoji-captions (tiny)

# code points of the tiny sets' names; emoji-03 is reached only through its old name
CHARS = {f"1f6{k:02x}": f"emoji-{k:02d}" for k in range(30) if k != 3}
CHARS.update({"1f603-fe0f": "old-name-03", "1f6ff": "flag-a"})


def _entries(locale: str) -> List[Dict[str, Any]]:
    out = [{"hexcode": f"1F6{k:02X}", "label": f"{locale} label {k}", "tags": [f"tag{k}", f"{locale} label {k}"]}
           for k in range(30) if k != 7]  # emoji-07 has no caption  # fmt: skip
    out.append({"hexcode": "1F603", "label": f"{locale} three", "tags": []})  # reached through the alias, FE0F ignored
    return out


def _tiny_styles(root: Path) -> Path:
    out = root / "emoji-styles"
    ic.build(write_packages(root / "pkgs", icon_sets()), out, workers=1)
    for s in ("twemoji", "noto", "emojione"):
        (out / s / "chars.json").write_text(json.dumps(CHARS))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("captions")
    _tiny_styles(home)
    folder = home / "emoji-captions"
    folder.mkdir()
    for loc in ("en", "de"):
        (folder / f"{loc}.json").write_text(json.dumps({"format": ec.FORMAT, "locale": loc, "entries": _entries(loc)}))
    return folder


def _load(root: Path, split: str, **kw: Any) -> CrossModalDataset:
    return ec.load_emoji_captions(root, split, styles=("twemoji", "noto", "emojione"), min_styles=3, **kw)


def test_emoji_captions_are_grouped_by_identity(tiny: Path) -> None:
    splits = {s: _load(tiny, s) for s in ec.SPLITS}
    seen: Dict[str, str] = {}
    for split, ds in splits.items():
        uni = ic.load_emoji_styles(tiny.parent / "emoji-styles", split, styles=("twemoji", "noto", "emojione"),
                                   min_styles=3)  # fmt: skip
        names = ds.meta["names"]
        # the same identities and splits as emoji-styles, less the uncaptioned ones
        assert set(names.values()) <= set(uni.label_names.values())
        assert set(uni.label_names.values()) - set(names.values()) <= {"emoji-07", "flag-a", "hand-right", "hand-left", "dup-1"}
        for j, g in enumerate(ds.text_groups.tolist()):
            assert ds.image_groups[ds.txt2img[j]] == g
            assert ic.identity_split(names[g]) == split
            seen[names[g]] = ds.captions[j]
        # every image of a captioned identity is kept, each style once
        for g in set(ds.text_groups.tolist()):
            assert int((ds.image_groups == g).sum()) == int((uni.labels == g).sum()) == 3
    assert seen["emoji-12"] == "en label 12: tag12"  # the label is not repeated among the tags
    assert seen["emoji-03"] == "en three"  # joined through an alias and a code point with FE0F
    assert "emoji-07" not in seen


def test_emoji_captions_locales_and_errors(tiny: Path, tmp_path: Path) -> None:
    both = _load(tiny, "train", locale=["en", "de"])
    en = _load(tiny, "train")
    assert both.num_captions == 2 * en.num_captions and both.num_images == en.num_images
    assert both.captions[1].startswith("de label") and both.text_groups[0] == both.text_groups[1]
    assert _load(tiny, "train", locale=["en", "en"]).captions == en.captions  # the same caption twice is one caption
    with pytest.raises(GssfError, match="unknown locale.s. xx; choose from bn, da"):
        _load(tiny, "train", locale="xx")
    with pytest.raises(FileNotFoundError, match=r"fr.json"):
        _load(tiny, "train", locale="fr")
    with pytest.raises(GssfError, match="unknown split 'query' for emoji-captions"):
        _load(tiny, "query")
    bad = tmp_path / "emoji-captions"
    bad.mkdir()
    (bad / "en.json").write_text(json.dumps({"format": ec.FORMAT, "locale": "en",
                                             "entries": [{"hexcode": "../../x", "label": "x"}]}))  # fmt: skip
    with pytest.raises(GssfError, match="entry 0 has no valid hexcode"):
        ec.load_emoji_captions(bad, "train", styles_root=tiny.parent / "emoji-styles", min_styles=3,
                               styles=("twemoji", "noto", "emojione"))  # fmt: skip


def test_prepare_emoji_captions_prepares_the_styles_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sets = icon_sets(ic.STYLES, n=12)
    calls: List[List[str]] = []

    def install(packages, prefix: Path, cache: Path, log, progress) -> Path:
        calls.append([n for n, _ in packages])
        for name, version in packages:
            if name == ec.NPM_PACKAGE:
                pkg = prefix / "node_modules" / name
                for loc in ec.LOCALES:
                    (pkg / loc).mkdir(parents=True)
                    (pkg / loc / "data.json").write_text(json.dumps(_entries(loc)))
                (pkg / "LICENSE").write_text("MIT")
            else:
                write_packages(prefix / "node_modules" / "@iconify-json", {name.split("/", 1)[1]: sets[name.split("/", 1)[1]]})
        return prefix / "node_modules"

    monkeypatch.setattr(prep, "_npm_install", install)
    home = tmp_path / "home"
    res = prep.prepare("emoji-captions", home=home, log=lambda m: None, progress=False)
    assert calls[0][0].startswith("@iconify-json/") and calls[-1] == [ec.NPM_PACKAGE]
    assert res.details["items"]["entries_per_locale"]["ja"] == 30 and (home / "emoji-captions" / "LICENSE").is_file()
    assert prep.read_marker("emoji-styles", home) is not None
    assert not list(home.glob(".emoji-*")) and not list(home.glob(".downloads/*"))
    for s in ic.DEFAULT_STYLES:
        (home / "emoji-styles" / s / "chars.json").write_text(json.dumps(CHARS))
    ds = data.load("emoji-captions", split="train", home=home, min_styles=3)
    assert ds.grouped and ds.num_captions >= 1 and ds.categories[0] in ic.STYLES
    # a package whose data is malformed is refused, naming the entry
    calls.clear()
    sets_bad = _entries("en")
    sets_bad[2]["tags"] = "not a list"

    def bad_install(packages, prefix: Path, cache: Path, log, progress) -> Path:
        pkg = prefix / "node_modules" / ec.NPM_PACKAGE
        for loc in ec.LOCALES:
            (pkg / loc).mkdir(parents=True)
            (pkg / loc / "data.json").write_text(json.dumps(sets_bad))
        return prefix / "node_modules"

    monkeypatch.setattr(prep, "_npm_install", bad_install)
    with pytest.raises(GssfError, match=r"emojibase-data/bn/data.json: entry 2 \(1F602\) has malformed tags"):
        prep.prepare("emoji-captions", home=home, force=True, log=lambda m: None, progress=False)
    assert data.load("emoji-captions", split="train", home=home, min_styles=3).num_images == ds.num_images  # kept


# --------------------------------------------------------------------------- wesnoth-descriptions (tiny)


def test_wesnoth_descriptions_group_the_frames_of_a_unit(tmp_path_factory: pytest.TempPathFactory) -> None:
    from test_data_wesnoth import _files  # the tiny unit tree

    import gssf_data_trees as trees

    tmp = tmp_path_factory.mktemp("wesnoth-desc")
    deb = trees.fake_tux_deb(tmp / "wesnoth-1.16-data_1%3a1.16.9-1_all.deb", _files())
    home = tmp / "home"
    prep.prepare("wesnoth", home=home, deb=deb, log=lambda m: None, progress=False)
    found = 0
    for split in ("train", "val", "test"):
        try:
            uni = data.load("wesnoth", split=split, home=home)
        except ValueError:  # an empty split of the three-unit tree
            continue
        ds = data.load("wesnoth-descriptions", split=split, home=home)
        named = data.load("wesnoth-descriptions", split=split, home=home, with_name=True)
        assert [r.id for r in ds.images] == [r.id for r in uni.images] and ds.image_groups.tolist() == uni.labels.tolist()
        for j, g in enumerate(ds.text_groups.tolist()):
            assert ds.captions[j] == " ".join(uni.meta["descriptions"][g].split())  # one line
            assert named.captions[j] == f"{uni.label_names[g]}: {ds.captions[j]}"
            found += 1
    assert found == 3


# --------------------------------------------------------------------------- real data


def _digest(items: List[str]) -> str:
    return hashlib.sha1("\n".join(items).encode()).hexdigest()[:12]


# (images, captions, sha1 of the ordered captions) per split, as documented in docs/data.md
REAL_EMOJI = {"train": (6821, 947, "9b07a875327a"), "val": (1132, 151, "b62b7dbf32ae"), "test": (3607, 488, "aef10988a9b1")}
REAL_WESNOTH = {"train": (3269, 130), "val": (365, 22), "test": (1443, 62)}


@pytest.mark.slow
def test_real_emoji_captions_counts() -> None:
    prep.prepare("emoji-captions", log=lambda m: None, progress=False)
    got = {}
    for split in ec.SPLITS:
        ds = data.load("emoji-captions", split=split)
        styles = data.load("emoji-styles", split=split)
        assert [r.id for r in ds.images] == [r.id for r in styles.images]  # every identity has a caption
        got[split] = (ds.num_images, ds.num_captions, _digest(ds.captions))
    assert got == REAL_EMOJI, got
    test = data.load("emoji-captions", split="test", locale="all")
    multi = data.load("emoji-captions-multilingual", split="test")
    assert multi.captions == test.captions and multi.name == "emoji-captions-multilingual"
    per_group = np.bincount(multi.text_groups)
    # 28 locales, a caption that two locales spell alike (en / en-gb) counted once
    assert multi.num_captions == 12884 and per_group.max() == len(ec.LOCALES) and per_group[per_group > 0].min() >= 20
    assert multi.meta["images_of"] == "emoji-styles" and multi.num_images == REAL_EMOJI["test"][0]


@pytest.mark.slow
def test_real_wesnoth_descriptions_counts() -> None:
    prep.prepare("wesnoth", log=lambda m: None, progress=False)
    got = {s: (d.num_images, d.num_captions) for s in ("train", "val", "test")
           for d in [data.load("wesnoth-descriptions", split=s)]}  # fmt: skip
    assert got == REAL_WESNOTH, got
    multi = {s: (d.num_images, d.num_captions, len(set(d.text_groups.tolist()))) for s in ("train", "val", "test")
             for d in [data.load("wesnoth-descriptions-multilingual", split=s)]}  # fmt: skip
    assert multi == {"train": (3269, 3288, 130), "val": (365, 530, 22), "test": (1443, 1451, 62)}, multi
