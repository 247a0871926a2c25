"""``emoji-styles``: Iconify sets -> identities x styles, renders, re-ID splits (tiny generated sets).

The last tests (marked slow) check the real prepared data: `gssf data prepare emoji-styles`.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import pytest
from PIL import Image

from gssf import data
from gssf.data import iconify as ic
from gssf.data import prepare as prep
from gssf.data.splits import assign_split
from gssf.errors import GssfError, MissingExtraError

NAMES = [f"emoji-{i:02d}" for i in range(30)]
THREE = ("twemoji", "noto", "emojione")


def _rect(seed: int, fill: str = "") -> str:
    """A distinct picture per seed: a coloured bar at a seed-dependent place."""
    colour = fill or f"#{(seed * 7919) % 0xFFFFFF:06x}"
    return f'<rect x="{seed % 9}" y="{(seed // 9) % 9}" width="7" height="5" fill="{colour}"/>'


def icon_sets(styles: Sequence[str] = THREE, n: int = len(NAMES)) -> Dict[str, Dict[str, Any]]:
    """``icons.json`` contents: every style draws ``n`` NAMES, plus the edge cases of the first three."""
    sets: Dict[str, Dict[str, Any]] = {}
    for k, s in enumerate(styles):
        icons = {name: {"body": _rect(100 * k + i)} for i, name in enumerate(NAMES[:n])}
        sets[s] = {"prefix": s, "width": 16, "height": 16, "icons": icons, "aliases": {}}
    tw, no, eo = (sets[s] for s in THREE)
    # synonyms: emojione calls emoji-03 by an older name, twemoji aliases the old name
    eo["icons"]["old-name-03"] = eo["icons"].pop("emoji-03")
    tw["aliases"]["old-name-03"] = {"parent": "emoji-03"}
    # a "same picture" alias between two distinct emoji: noto and emojione draw both
    for k, d in enumerate((tw, no, eo)):
        d["icons"]["flag-a"] = {"body": _rect(500 + k)}
        if d is not tw:
            d["icons"]["flag-b"] = {"body": _rect(510 + k)}
    tw["aliases"]["flag-b"] = {"parent": "flag-a"}
    # one picture under two names (emojione): used for neither
    eo["icons"]["dup-1"] = eo["icons"]["dup-2"] = {"body": _rect(600)}
    tw["icons"]["dup-1"] = {"body": _rect(601)}
    no["icons"]["dup-1"] = {"body": _rect(602)}
    # a flipped alias is a picture of its own; a monochrome icon; a non-square one
    for d in (tw, no, eo):
        d["icons"]["hand-right"] = {"body": '<path d="M0 0h16v4H0z" fill="#f00"/>'}
        d["aliases"]["hand-left"] = {"parent": "hand-right", "hFlip": True}
    eo["icons"]["emoji-05"] = {"body": '<path d="M0 0h8v16H0z" fill="currentColor"/>'}
    no["icons"]["emoji-06"] = {"body": '<rect width="32" height="16" fill="#00f"/>', "width": 32, "height": 16}
    # names that must never become file names
    tw["icons"]["../escape"] = {"body": _rect(700)}
    tw["icons"]["Upper"] = {"body": _rect(701)}
    return sets


def write_packages(root: Path, sets: Dict[str, Dict[str, Any]]) -> Dict[str, Path]:
    out = {}
    for s, content in sets.items():
        folder = root / s
        folder.mkdir(parents=True)
        (folder / "icons.json").write_text(json.dumps(content))
        (folder / "info.json").write_text(json.dumps({"name": s, "license": {"spdx": ic.LICENCES[s]}}))
        (folder / "package.json").write_text(json.dumps({"version": ic.NPM_VERSIONS[s]}))
        out[s] = folder
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("iconify")
    out = tmp / "emoji-styles"
    ic.build(write_packages(tmp / "pkgs", icon_sets()), out, workers=1)
    return out


def _load(root: Path, split: str, **kw: Any) -> Any:
    return ic.load_emoji_styles(root, split, styles=kw.pop("styles", THREE), min_styles=kw.pop("min_styles", 3), **kw)


# --------------------------------------------------------------------------- icon sets


def test_icon_svg_flips_recolours_and_centres() -> None:
    right = ic.icon_svg('<path d="M0 0h8v16H0z" fill="currentColor"/>', (0, 0, 16, 16))
    left = ic.icon_svg('<path d="M0 0h8v16H0z" fill="currentColor"/>', (0, 0, 16, 16), h_flip=True)
    assert "currentColor" not in right and "#000000" in right
    a = np.asarray(Image.open(io.BytesIO(ic.render_png(right, 32))))
    b = np.asarray(Image.open(io.BytesIO(ic.render_png(left, 32))))
    assert a.shape == (32, 32, 3)
    assert a[16, 4].tolist() == [0, 0, 0] and a[16, 28].tolist() == [255, 255, 255]  # black left half on white
    assert np.array_equal(b, a[:, ::-1])  # the flip mirrors the picture
    quarter = np.asarray(Image.open(io.BytesIO(ic.render_png(
        ic.icon_svg('<path d="M0 0h8v16H0z"/>', (0, 0, 16, 16), rotate=1), 32))))  # fmt: skip
    assert quarter[4, 16].tolist() == [0, 0, 0] and quarter[28, 16].tolist() == [255, 255, 255]
    # a 2:1 box is centred in the square: white bands above and below
    wide = np.asarray(Image.open(io.BytesIO(ic.render_png(
        ic.icon_svg('<rect width="32" height="16" fill="#00f"/>', (0, 0, 32, 16)), 32))))  # fmt: skip
    assert wide[2, 16].tolist() == [255, 255, 255] and wide[16, 16].tolist() == [0, 0, 255]


def test_read_icon_set_refuses_bad_names_duplicates_and_dangling_aliases(tmp_path: Path) -> None:
    content = icon_sets()["emojione"]
    content["aliases"]["ghost"] = {"parent": "missing"}
    content["icons"]["broken"] = {"body": 3}
    content["icons"]["sized"] = {"body": "<g/>", "width": "wide"}
    path = tmp_path / "icons.json"
    path.write_text(json.dumps(content))
    s = ic.read_icon_set(path, "emojione")
    assert {"dup-1", "dup-2", "ghost", "broken", "sized"} <= set(s.skipped)
    assert "hand-left" in s.drawings and "hand-left" not in s.aliases  # flipped alias = own drawing
    assert 'scale(-1 1)' in s.drawings["hand-left"]
    tw = tmp_path / "tw.json"
    tw.write_text(json.dumps(icon_sets()["twemoji"]))
    t = ic.read_icon_set(tw, "twemoji")
    assert "../escape" in t.skipped and "Upper" in t.skipped and t.aliases["old-name-03"] == "emoji-03"
    path.write_text('{"icons": []}')
    with pytest.raises(ValueError, match=r"icons.json is not an Iconify icon set"):
        ic.read_icon_set(path, "emojione")
    with pytest.raises(FileNotFoundError, match=r"expected icons.json of @iconify-json/noto"):
        ic.read_icon_set(tmp_path / "nope.json", "noto")


def _sets(tmp_path: Path, styles: Sequence[str] = THREE) -> Dict[str, ic.IconSet]:
    pk = write_packages(tmp_path, icon_sets(styles))
    return {s: ic.read_icon_set(pk[s] / "icons.json", s) for s in styles}


def test_identities_join_synonyms_and_refuse_same_picture_aliases(tmp_path: Path) -> None:
    ids = {i.name: i for i in ic.group_identities(_sets(tmp_path))}
    # synonym: emojione's old name joins emoji-03 (its drawing is that style's picture)
    assert ids["emoji-03"].drawings == {"twemoji": "emoji-03", "noto": "emoji-03", "emojione": "old-name-03"}
    assert ids["emoji-03"].members == ["old-name-03"] and "old-name-03" not in ids
    # twemoji's flag-b -> flag-a would give one identity two noto pictures: refused
    assert ids["flag-a"].drawings == {s: "flag-a" for s in THREE}
    assert ids["flag-b"].drawings == {"noto": "flag-b", "emojione": "flag-b"}
    # the duplicated emojione picture belongs to nobody
    assert ids["dup-1"].drawings == {"twemoji": "dup-1", "noto": "dup-1"} and "dup-2" not in ids
    assert ids["hand-left"].drawings == {s: "hand-left" for s in THREE}
    # every drawing is used at most once per style
    for s in THREE:
        used = [i.drawings[s] for i in ids.values() if s in i.drawings]
        assert len(used) == len(set(used))


def test_share_alike_sets_attach_without_changing_default_identities(tmp_path: Path) -> None:
    styles = THREE + ("openmoji",)
    sets = _sets(tmp_path, styles)
    om = sets["openmoji"]
    # openmoji draws flag-a and aliases flag-b to it (the picture stays flag-a's); it renamed
    # emoji-09 and aliases the old name to the new drawing (which then joins emoji-09)
    om.drawings["flag-a"] = ic.icon_svg(_rect(900), (0, 0, 16, 16))
    om.drawings["new-name-09"] = om.drawings.pop("emoji-09")
    om.aliases.update({"flag-b": "flag-a", "emoji-09": "new-name-09", "emoji-10": "emoji-11"})
    with_sa = {i.name: i for i in ic.group_identities(sets)}
    without = {i.name: i for i in ic.group_identities({s: sets[s] for s in THREE})}
    assert set(with_sa) == set(without)
    for name, ident in without.items():
        assert {s: d for s, d in with_sa[name].drawings.items() if s != "openmoji"} == ident.drawings
    assert with_sa["flag-a"].drawings["openmoji"] == "flag-a" and "openmoji" not in with_sa["flag-b"].drawings
    assert with_sa["emoji-09"].drawings["openmoji"] == "new-name-09"
    assert with_sa["emoji-10"].drawings["openmoji"] == "emoji-10"  # its own drawing, not emoji-11's
    assert with_sa["emoji-11"].drawings["openmoji"] == "emoji-11"


# --------------------------------------------------------------------------- build + load


def test_build_renders_each_identity_once_and_deterministically(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = json.loads((built / "index.json").read_text())
    names = {e["name"] for e in index["identities"]}
    assert "flag-b" not in names and "dup-1" not in names  # fewer than 3 styles: not rendered
    assert {"flag-a", "hand-left", "emoji-03"} <= names and index["styles"] == list(THREE)
    pngs = sorted(built.rglob("*.png"))
    assert len(pngs) == sum(len(e["images"]) for e in index["identities"]) == 3 * len(names)
    assert not (built.parent / "escape.png").exists() and not list(built.rglob("*Upper*"))
    img = Image.open(built / "emojione" / "emoji-05.png")
    assert img.size == (ic.RENDER_SIDE, ic.RENDER_SIDE) and img.mode == "RGB"
    px = np.asarray(img)
    assert px[48, 20].tolist() == [0, 0, 0] and px[48, 80].tolist() == [255, 255, 255]
    assert json.loads((built / "noto" / "info.json").read_text())["license"]["spdx"] == "Apache-2.0"
    # the same input gives byte-identical files, rendered in one process or in several
    again = tmp_path / "again"
    monkeypatch.setattr(ic, "POOL_MIN_JOBS", 1)  # render in two worker processes this time
    ic.build(write_packages(tmp_path / "pkgs", icon_sets()), again, workers=2)
    digest = {p.relative_to(built).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in pngs}
    assert {k: hashlib.sha1((again / k).read_bytes()).hexdigest() for k in digest} == digest


def test_reid_splits_query_one_style_against_the_others(built: Path) -> None:
    splits = {s: _load(built, s) for s in ic.REID_SPLITS}
    ids = {s: set(splits[s].labels.tolist()) for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    index = json.loads((built / "index.json").read_text())
    assert sum(map(len, ids.values())) == len(index["identities"])
    for sub, full in (("query", "test"), ("val-query", "val")):
        q, g = splits[sub], splits[sub.replace("query", "gallery")]
        assert len(q) + len(g) == len(splits[full])
        assert sorted(q.labels.tolist()) == sorted(ids[full])  # ONE query image per identity
        assert np.bincount(g.labels)[q.labels].tolist() == [2] * len(q)  # its other two styles
        for label, cam in zip(q.labels, q.cams):
            assert cam not in g.cams[g.labels == label]  # the gallery holds only the other styles
    # the query style is a fixed function of the name, and every style gets to query
    names = [e["name"] for e in index["identities"]]
    assert {ic.query_style(n, THREE) for n in names} == set(THREE)
    q = splits["query"]
    assert [r.id.split("/")[0] for r in q.images] == [ic.query_style(q.label_names[int(l)], THREE) for l in q.labels]
    assert all(assign_split(f"emoji-styles:{n}") == "test" for n in q.label_names.values())
    # labels index the sorted names: the same identity has the same label in every split
    train = splits["train"]
    assert [train.label_names[int(l)] for l in train.labels] == [r.id.split("/", 1)[1] for r in train.images]
    assert set(train.categories) == set(THREE) and train.cams.tolist() == [ic.STYLES.index(c) for c in train.categories]
    assert train.image(0).size == (ic.RENDER_SIDE, ic.RENDER_SIDE)


def test_loader_options_and_errors(built: Path, tmp_path: Path) -> None:
    with pytest.raises(GssfError, match=r"min_styles must be an integer >= 3"):
        _load(built, "train", min_styles=2)
    with pytest.raises(FileNotFoundError, match=r"openmoji are not prepared here; the share-alike styles are in"):
        _load(built, "train", styles=THREE + ("openmoji",))
    with pytest.raises(GssfError, match=r"unknown emoji style\(s\) nope"):
        _load(built, "train", styles=("nope", "noto"))
    with pytest.raises(GssfError, match="unknown split 'dev'"):
        _load(built, "dev")
    with pytest.raises(FileNotFoundError, match=r"index.json; expected layout: ROOT/index.json"):
        _load(tmp_path, "train")
    (tmp_path / "index.json").write_text('{"format": 99}')
    with pytest.raises(GssfError, match=r"not a valid emoji-styles index.*--force"):
        _load(tmp_path, "train")


def test_rendering_without_cairosvg_is_a_named_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # import cairosvg -> ImportError
    with pytest.raises(MissingExtraError, match=r"rendering SVG needs the optional dependency 'cairosvg'"):
        ic.render_all([(ic.icon_svg("<g/>", (0, 0, 16, 16)), tmp_path / "a.png")], workers=1)
    assert not (tmp_path / "a.png").exists()


def test_min_styles_is_counted_over_the_chosen_styles(built: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is empty"):  # no identity has 3 of 2 styles
        _load(built, "train", styles=("twemoji", "noto"), min_styles=3)
    full = _load(built, "train")
    # an identity that loses one style falls below min_styles=3 and leaves the split
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    index = json.loads((copy / "index.json").read_text())
    victim = next(e for e in index["identities"] if e["name"] == full.label_names[int(full.labels[0])])
    del victim["images"]["noto"]
    (copy / "index.json").write_text(json.dumps(index))
    fewer = _load(copy, "train")
    assert set(fewer.label_names.values()) == set(full.label_names.values()) - {victim["name"]}
    assert len(fewer) == len(full) - 3


# --------------------------------------------------------------------------- prepare hook


def _fake_npm(sets: Dict[str, Dict[str, Any]], calls: List[List[str]]):
    def install(packages, prefix: Path, cache: Path, log, progress) -> Path:
        calls.append([n for n, _ in packages])
        for name, version in packages:
            style = name.split("/", 1)[1]
            write_packages(prefix / "node_modules" / "@iconify-json", {style: sets[style]})
        return prefix / "node_modules"

    return install


def test_prepare_emoji_styles_and_the_share_alike_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sets = icon_sets(ic.STYLES, n=12)  # small: rendered in-process
    calls: List[List[str]] = []
    monkeypatch.setattr(prep, "_npm_install", _fake_npm(sets, calls))
    home = tmp_path / "home"
    res = prep.prepare("emoji-styles", home=home, log=lambda m: None, progress=False)
    assert calls[-1] == [f"@iconify-json/{s}" for s in ic.DEFAULT_STYLES]
    assert [s["licence"] for s in res.details["sources"]] == [ic.LICENCES[s] for s in ic.DEFAULT_STYLES]
    assert not list(home.glob(".downloads/*")) and not list(home.glob(".emoji-styles*"))
    # the registry route with the defaults: nine styles, >= 5 of them
    ds = data.load("emoji-styles", split="test-gallery", home=home)
    assert ds.meta["styles"] == list(ic.DEFAULT_STYLES) and set(ds.cams.tolist()) <= set(range(9))
    with pytest.raises(FileNotFoundError, match=r"openmoji, emojione-v1 are not prepared here; .*dataset emoji-styles-sa"):
        data.load("emoji-styles", split="train", home=home, styles=ic.STYLES)
    with pytest.raises(FileNotFoundError, match=r"run `gssf data prepare emoji-styles-sa` first"):
        data.load("emoji-styles-sa", split="train", home=home)
    # the share-alike sets go to their own folder; the default one stays as it was
    sa = prep.prepare("emoji-styles-sa", home=home, log=lambda m: None, progress=False)
    assert sa.path == home / "emoji-styles-sa" and calls[-1][-2:] == ["@iconify-json/openmoji", "@iconify-json/emojione-v1"]
    assert set(data.load("emoji-styles-sa", split="train", home=home).cams.tolist()) == set(range(11))
    assert prep.prepare("emoji-styles", home=home, log=lambda m: None, progress=False).skipped
    # the nine styles' identities do not change with the share-alike sets
    nine = data.load("emoji-styles-sa", split="test-gallery", home=home, styles=ic.DEFAULT_STYLES)
    assert [r.id for r in nine.images] == [r.id for r in ds.images]
    with pytest.raises(ValueError, match="--deb applies to the Debian datasets"):
        prep.prepare("emoji-styles", home=home, force=True, deb=tmp_path / "x.deb", log=lambda m: None)
    assert prep.expand_names(["all"]) == ["tux", "emoji", "fashion-mnist"]


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real() -> Path:
    return prep.prepare("emoji-styles", log=lambda m: None, progress=False).path


def _digest(ds) -> str:
    return hashlib.sha1("\n".join(r.id for r in ds.images).encode()).hexdigest()[:12]


# (images, identities, sha1 of the ordered image ids) per split, as documented in docs/data.md
REAL: Dict[str, tuple] = {
    "train": (6821, 947, "01c1bf819e20"), "val": (1132, 151, "4c7637d21f87"), "test": (3607, 488, "1bccdc6f0674"),
    "query": (488, 488, "8e17f91f1719"), "gallery": (3119, 488, "b8952beb09ed"),
    "val-query": (151, 151, "c86b63d39ab5"), "val-gallery": (981, 151, "f450884b1665"),
}  # fmt: skip


@pytest.mark.slow
def test_real_emoji_styles_counts_and_splits(real: Path) -> None:
    marker = json.loads((real / "prepared.json").read_text())
    assert marker["items"]["styles"][: len(ic.DEFAULT_STYLES)] == list(ic.DEFAULT_STYLES)
    splits = {s: data.load("emoji-styles", split=s) for s in ic.REID_SPLITS}
    got = {s: (len(d), d.num_classes, _digest(d)) for s, d in splits.items()}
    assert got == REAL, got
    ids = {s: set(splits[s].labels.tolist()) for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    q, g = splits["query"], splits["gallery"]
    assert set(q.cams.tolist()) == set(range(9))  # every style is a query camera
    counts = np.bincount(g.labels)[q.labels]
    assert counts.min() >= 4 and counts.max() <= 8  # 5 to 9 styles, one of them the query
    img = q.image(0)
    assert img.size == (96, 96) and img.mode == "RGB"
