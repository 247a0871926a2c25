"""``wesnoth``: WML preprocessing and parsing, frame lists, the .deb route (generated package), splits.

The last test (marked slow) checks the real prepared data: `gssf data prepare wesnoth`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

import gssf_data_trees as trees
from gssf import data
from gssf.data import prepare as prep
from gssf.data import wesnoth as wn
from gssf.errors import GssfError

CORE = wn.DATA_PREFIX

MACROS_CFG = """#textdomain wesnoth-units
# Standard frames of a unit: a defence reaction and a standing loop.
#define DEFENSE_ANIM REACTION_IMAGE BASE_IMAGE HIT_SOUND
    [defend]
        [frame]
            image={BASE_IMAGE}:1,{REACTION_IMAGE}:250,{BASE_IMAGE}:1
        [/frame]
        sound={HIT_SOUND}
    [/defend]
#enddef

#define STANDING_ANIM NAME
#arg SUFFIX
-idle#endarg
    [standing_anim]
        [frame]
            image="units/{NAME}{SUFFIX}-[1~3].png:100"
        [/frame]
    [/standing_anim]
#enddef

#define SOUND_LIST:HIT
hit-[1~3].ogg#enddef
"""

UNITS_A = """#textdomain wesnoth-units
#define PATH_TEMP
units/elves/#enddef

[unit_type]
    id=Elvish Archer
    name= _ "Elvish Archer"
    race=elf
    image="{PATH_TEMP}archer.png"
    description= _ "Elves learn archery young. # not a comment
They say ""aim twice""." + _ "

Second paragraph."
    {DEFENSE_ANIM "{PATH_TEMP}archer-defend.png" "{PATH_TEMP}archer.png" {SOUND_LIST:HIT} }
    {STANDING_ANIM elves/archer}
    [attack_anim]
        [frame]
            image="{PATH_TEMP}archer-bow-[1~4].png~RC(magenta>red):100,{PATH_TEMP}archer-melee[1,2].png:[50*2]"
        [/frame]
        [missile_frame]
            image="projectiles/arrow.png"
        [/missile_frame]
    [/attack_anim]
    [female]
        image="{PATH_TEMP}archer+female.png"
    [/female]
#ifdef NEVER_DEFINED
    [death]
        image="{PATH_TEMP}archer-secret.png"
    [/death]
#else
    [death]
        image="{PATH_TEMP}archer-die.png"
    [/death]
#endif
[/unit_type]

[unit_type]
    id=Elvish Shaman
    name= _ "Elvish Shaman"
    race=elf
    image="{PATH_TEMP}shaman.png~CHAN(if(red > green, red, blue), green, blue)"
    description= _ "Shamans heal."
    {STANDING_ANIM elves/shaman SUFFIX=-still}
    {DEFENSE_ANIM {PATH_TEMP}shaman-defend.png {PATH_TEMP}shaman.png {SOUND_LIST:HIT}}
    [variation]
        variation_id=ghostly
        image="{PATH_TEMP}shaman-ghost.png"
    [/variation]
[/unit_type]
#undef PATH_TEMP
"""

UNITS_B = """#textdomain wesnoth-units
[unit_type]
    id=Wolf Rider
    name= _ "Wolf Rider"
    race=goblin
    image="units/goblins/rider.png"
    description= _ "Goblins on wolves."
    {STANDING_ANIM goblins/rider}
    [defend]
        [frame]
            image="units/goblins/rider-defend-[01~02].png:100,units/elves/archer-die.png:100"
        [/frame]
    [/defend]
[/unit_type]
[unit_type]
    id=Fog Clearer
    hide_help=yes
    image="units/fake/fog-idle-1.png"
    {STANDING_ANIM fake/fog}
    {STANDING_ANIM fake/mist}
[/unit_type]
"""

ARCHER = ["archer.png", "archer-defend.png", "archer-idle-1.png", "archer-idle-2.png", "archer-idle-3.png",
          "archer-bow-1.png", "archer-bow-2.png", "archer-bow-3.png", "archer-bow-4.png", "archer-melee1.png",
          "archer-melee2.png", "archer+female.png"]  # fmt: skip
SHAMAN = ["shaman.png", "shaman-defend.png", "shaman-still-1.png", "shaman-still-2.png", "shaman-still-3.png"]
RIDER = ["rider.png", "rider-defend-01.png", "rider-defend-02.png", "rider-idle-1.png", "rider-idle-2.png",
         "rider-idle-3.png"]  # fmt: skip


def _mo(messages: Dict[str, str]) -> bytes:
    """A GNU gettext catalogue (``.mo``, little-endian) holding ``messages`` and a UTF-8 header."""
    import struct

    messages = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    keys = sorted(messages, key=lambda k: k.encode())
    ids = strs = b""
    entries = []
    for k in keys:
        kb, vb = k.encode(), messages[k].encode()
        entries.append((len(ids), len(kb), len(strs), len(vb)))
        ids, strs = ids + kb + b"\0", strs + vb + b"\0"
    n = len(keys)
    key_start = 28 + 16 * n
    value_start = key_start + len(ids)
    table = b"".join(struct.pack("<2I", lk, ok + key_start) for ok, lk, _, _ in entries)
    table += b"".join(struct.pack("<2I", lv, ov + value_start) for _, _, ov, lv in entries)
    return struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0) + table + ids + strs


LOCALE = "usr/share/games/wesnoth/1.16/locale/"
ARCHER_TEXT = 'Elves learn archery young. # not a comment\nThey say "aim twice".\n\nSecond paragraph.'


def _files() -> Dict[str, bytes]:
    files: Dict[str, bytes] = {
        LOCALE + "de/LC_MESSAGES/wesnoth-units.mo": _mo({"Goblins on wolves.": "Goblins auf Wölfen.",
                                                         ARCHER_TEXT: "Elfen lernen früh.", "Other.": "Anders."}),
        LOCALE + "fr/LC_MESSAGES/wesnoth-units.mo": _mo({"Goblins on wolves.": "Gobelins sur des loups.",
                                                         "Shamans heal.": "Shamans heal."}),  # same as English: dropped
        LOCALE + "en@shaw/LC_MESSAGES/wesnoth-units.mo": _mo({"Goblins on wolves.": "\U00010450"}),  # not read
        LOCALE + "de/LC_MESSAGES/wesnoth-lib.mo": _mo({"Goblins on wolves.": "wrong domain"}),  # not read
        CORE + "macros/animation-utils.cfg": MACROS_CFG.encode(),
        CORE + "units/elves/Elves.cfg": UNITS_A.encode(),
        CORE + "units/goblins/Rider.cfg": UNITS_B.encode(),
        CORE + "units/elves/README.txt": b"not a cfg",
        "usr/share/games/wesnoth/1.16/data/core/music/theme.ogg": b"music",
        "usr/share/games/wesnoth/1.16/data/core/images/portraits/elf.png": trees.png_bytes((1, 2, 3, 255)),
        wn.COPYRIGHT: b"GPL-2+",
    }
    for i, name in enumerate(ARCHER + SHAMAN + ["archer-die.png", "shaman-ghost.png", "archer-secret.png"]):
        files[CORE + "images/units/elves/" + name] = trees.png_bytes((i * 9, 80, 120, 255), size=(72, 72))
    for i, name in enumerate(RIDER):
        files[CORE + "images/units/goblins/" + name] = trees.png_bytes((200, i * 20, 10, 255), size=(72, 72))
    for name in ("fog-idle-1.png", "fog-idle-2.png", "fog-idle-3.png", "mist-idle-1.png", "mist-idle-2.png"):
        files[CORE + "images/units/fake/" + name] = trees.png_bytes((0, 0, 0, 0), size=(72, 72))
    return files


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wesnoth")
    deb = trees.fake_tux_deb(tmp / "wesnoth-1.16-data_1%3a1.16.9-1_all.deb", _files())
    h = tmp / "home"
    res = prep.prepare("wesnoth", home=h, deb=deb, log=lambda m: None, progress=False)
    assert not res.skipped and res.details["sources"][0]["version"] == "1:1.16.9-1"
    return h


# --------------------------------------------------------------------------- WML


def test_preprocessor_expands_macros_in_order() -> None:
    macros: Dict[str, wn.Macro] = {}
    wn.preprocess(MACROS_CFG, macros)
    assert set(macros) == {"DEFENSE_ANIM", "STANDING_ANIM", "SOUND_LIST:HIT"}
    assert macros["STANDING_ANIM"].defaults == {"SUFFIX": "-idle"}
    out = wn.preprocess(UNITS_A, dict(macros))
    assert 'image="units/elves/archer.png"' in out  # the local #define, used before its #undef
    assert 'image="units/elves/archer.png":1,"units/elves/archer-defend.png":250' in out  # quoted args kept
    assert 'image="units/elves/shaman-still-[1~3].png:100"' in out  # NAME=value sets an #arg
    assert "sound=hit-[1~3].ogg" in out  # a macro passed as an argument
    assert "archer-secret" not in out and "archer-die" in out  # #ifdef on an undefined symbol
    assert "# not a comment" in out and "#textdomain" not in out and "{" not in out
    # unknown macros and file inclusions expand to nothing; a runaway recursion stops
    assert wn.expand("a{NOPE x}b{~add-ons/foo}c", {}) == "abc"
    loop = {"X": wn.Macro(params=[], body="x{X}")}
    assert wn.expand("{X}", loop).startswith("xxx") and len(wn.expand("{X}", loop)) < 100


def test_parser_reads_multiline_translatable_strings() -> None:
    macros: Dict[str, wn.Macro] = {}
    wn.preprocess(MACROS_CFG, macros)
    tree = wn.parse_wml(wn.preprocess(UNITS_A, macros))
    archer, shaman = [n for n in tree.walk() if n.tag == "unit_type"]
    assert archer.attrs["id"] == "Elvish Archer" and archer.attrs["name"] == "Elvish Archer"
    assert archer.attrs["description"] == (
        'Elves learn archery young. # not a comment\nThey say "aim twice".\n\nSecond paragraph.'
    )
    assert [c.tag for c in archer.children] == ["defend", "standing_anim", "attack_anim", "female", "death"]
    assert wn.parse_wml('image=units/monsters/wolf-great+red.png\n').attrs["image"] == "units/monsters/wolf-great+red.png"
    assert wn.parse_wml('[a]\nx = "1" +\n  "2"\n[/a]').children[0].attrs["x"] == "12"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("units/a.png", ["units/a.png"]),
        ("units/a-[1~3].png:100", ["units/a-1.png", "units/a-2.png", "units/a-3.png"]),
        ("units/a-[3~1,5].png:[100*3,50]", ["units/a-3.png", "units/a-2.png", "units/a-1.png", "units/a-5.png"]),
        ("units/a-[08~10].png", ["units/a-08.png", "units/a-09.png", "units/a-10.png"]),
        ("units/[a,b]-[1,2].png", ["units/a-1.png", "units/b-2.png"]),  # parallel, not a product
        ("units/x-[1~2].png~RC(magenta>red):100,units/y.png~CHAN(if(red>1, red, 0), green, blue):60",
         ["units/x-1.png", "units/x-2.png", "units/y.png"]),
        ('"units/q.png":1,"units/r.png":250', ["units/q.png", "units/r.png"]),
    ],
)  # fmt: skip
def test_frame_lists_unroll_like_the_game(value: str, expected: list) -> None:
    assert wn.expand_image_list(value) == expected


# --------------------------------------------------------------------------- prepare + load


def test_prepare_extracts_only_units_and_writes_the_manifest(home: Path) -> None:
    root = home / "wesnoth"
    assert (root / "COPYRIGHT").read_text() == "GPL-2+"
    assert (root / "cfg" / "units" / "elves" / "Elves.cfg").is_file() and (root / "cfg" / "macros").is_dir()
    assert not list(root.rglob("*.ogg")) and not list(root.rglob("portraits")) and not list(root.rglob("*.txt"))
    manifest = json.loads((root / "manifest.json").read_text())
    units = {u["id"]: u for u in manifest["units"]}
    assert sorted(units) == ["Elvish Archer", "Elvish Shaman", "Fog Clearer", "Wolf Rider"]
    archer = units["Elvish Archer"]
    # archer-die.png is referenced by two unit types: it belongs to neither
    assert archer["frames"] == sorted(f"units/elves/{f}" for f in ARCHER) and archer["shared_frames"] == 1
    assert "units/elves/shaman-ghost.png" not in units["Elvish Shaman"]["frames"]  # [variation] left out
    assert units["Elvish Shaman"]["image"] == "units/elves/shaman.png"
    assert units["Wolf Rider"]["frames"] == sorted(f"units/goblins/{f}" for f in RIDER)
    assert units["Fog Clearer"]["hidden"] and units["Wolf Rider"]["description"] == "Goblins on wolves."
    marker = json.loads((root / "prepared.json").read_text())
    assert marker["items"] == {"unit_types": 4, "classes": 3, "frames": 23, "with_description": 3}


def test_load_is_class_disjoint_with_descriptions(home: Path) -> None:
    splits = {s: data.load("wesnoth", split=s, home=home) if _has(home, s) else None for s in ("train", "val", "test")}
    loaded = [d for d in splits.values() if d is not None]
    names = [set(d.label_names.values()) for d in loaded]
    assert sorted(n for ns in names for n in ns) == ["Elvish Archer", "Elvish Shaman", "Wolf Rider"]
    for d in loaded:
        assert set(d.meta["descriptions"]) == set(d.label_names) == set(d.labels.tolist())
        assert d.cams is None and d.image(0).size == (72, 72)
        for label, unit_id in d.meta["unit_ids"].items():
            assert wn.class_split(unit_id) == d.split
            assert d.categories[int(np.flatnonzero(d.labels == label)[0])] in ("elf", "goblin")
    every = {n: d for d in loaded for n in d.label_names.values()}
    shaman = every["Elvish Shaman"]
    label = next(k for k, v in shaman.label_names.items() if v == "Elvish Shaman")
    assert shaman.meta["descriptions"][label] == "Shamans heal." and int((shaman.labels == label).sum()) == 5
    # labels index the sorted ids of the kept units: Archer 0, Shaman 1, Rider 2
    assert {v: k for d in loaded for k, v in d.label_names.items()} == {"Elvish Archer": 0, "Elvish Shaman": 1, "Wolf Rider": 2}
    # a stricter min_frames drops the 5-frame shaman and renumbers
    strict = [wn.load_wesnoth(home / "wesnoth", s, min_frames=6) for s in ("train", "val", "test") if _has(home, s, 6)]
    assert sorted(n for d in strict for n in d.label_names.values()) == ["Elvish Archer", "Wolf Rider"]


def _has(home: Path, split: str, min_frames: int = 5) -> bool:
    units = json.loads((home / "wesnoth" / "manifest.json").read_text())["units"]
    return any(wn.class_split(u["id"]) == split and not u["hidden"] and len(u["frames"]) >= min_frames for u in units)


def test_loader_errors(home: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest.json; expected layout: ROOT/manifest.json"):
        wn.load_wesnoth(tmp_path, "train")
    (tmp_path / "manifest.json").write_text('{"format": 0}')
    with pytest.raises(GssfError, match=r"not a valid wesnoth manifest.*prepare wesnoth --force"):
        wn.load_wesnoth(tmp_path, "train")
    with pytest.raises(GssfError, match="unknown split 'query'"):
        wn.load_wesnoth(home / "wesnoth", "query")
    with pytest.raises(GssfError, match="min_frames must be a positive integer"):
        wn.load_wesnoth(home / "wesnoth", "train", min_frames=0)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"format": 1, "units": [{"id": "X", "name": "X", "race": "", "description": "", "hidden": False,
                                 "frames": ["../../etc/passwd"] * 5}]}))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="wesnoth sprite not found"):
        for s in ("train", "val", "test"):
            wn.load_wesnoth(tmp_path, s)
    with pytest.raises(FileNotFoundError, match=r"cfg/units"):
        wn.read_units(tmp_path / "cfg")


# --------------------------------------------------------------------------- real data


def _digest(ds) -> str:
    return hashlib.sha1("\n".join(r.id for r in ds.images).encode()).hexdigest()[:12]


# (images, classes, sha1 of the ordered image ids) per split, as documented in docs/data.md
REAL: Dict[str, tuple] = {
    "train": (3269, 130, "63bb3052a6af"), "val": (365, 22, "ccc7bbee2892"), "test": (1443, 62, "e87c5b22dbeb"),
}  # fmt: skip


@pytest.mark.slow
def test_real_wesnoth_counts_and_splits() -> None:
    res = prep.prepare("wesnoth", log=lambda m: None, progress=False)
    assert res.details["items"]["classes"] == 214
    splits = {s: data.load("wesnoth", split=s) for s in ("train", "val", "test")}
    got = {s: (len(d), d.num_classes, _digest(d)) for s, d in splits.items()}
    assert got == REAL, got
    test = splits["test"]
    assert all(test.meta["descriptions"].values()) and set(test.categories) >= {"human", "elf", "undead"}
    # a unit with its frames unrolled from macros and bracket lists (see test_frame_lists_unroll_like_the_game)
    every = {v: (d, k) for d in splits.values() for k, v in d.label_names.items()}
    ds, label = every["Drake Clasher"]
    frames = [r.id for r, lab in zip(ds.images, ds.labels) if lab == label]
    assert len(frames) == 23 and "units/drakes/clasher-spear-s-6.png" in frames
    img = test.image(0)
    assert img.mode == "RGB" and img.size[0] >= 72


def test_translations_come_from_the_units_catalogues(home: Path, tmp_path: Path) -> None:
    root = home / "wesnoth"
    assert not (root / "locale").exists()  # the catalogues are read at prepare time, then dropped
    doc = json.loads((root / "translations.json").read_text())
    got = {u["id"]: u["descriptions"] for u in doc["units"]}
    assert got == {"Wolf Rider": {"de": "Goblins auf Wölfen.", "fr": "Gobelins sur des loups."},
                   "Elvish Archer": {"de": "Elfen lernen früh."}}  # fmt: skip
    loaded = [wn.load_wesnoth_descriptions_multilingual(root, s) for s in ("train", "val", "test") if _has(home, s)]
    captions = {ds.meta["names"][int(g)]: [] for ds in loaded for g in ds.text_groups}
    for ds in loaded:
        assert ds.name == "wesnoth-descriptions-multilingual" and ds.meta["images_of"] == "wesnoth"
        for g, c in zip(ds.text_groups.tolist(), ds.captions):
            captions[ds.meta["names"][g]].append(c)
    assert captions["Wolf Rider"] == ["Goblins on wolves.", "Goblins auf Wölfen.", "Gobelins sur des loups."]
    assert captions["Elvish Shaman"] == ["Shamans heal."]
    assert captions["Elvish Archer"][1] == "Elfen lernen früh."
    one = [wn.load_wesnoth_descriptions(root, s, languages=["fr"]) for s in ("train", "val", "test") if _has(home, s)]
    assert sum(len(d.captions) for d in one) == 4
    with pytest.raises(GssfError, match="unknown language"):
        wn.load_wesnoth_descriptions(root, "train", languages=["xx"])
    # a damaged catalogue or translations file is refused by name
    (tmp_path / "de.mo").write_bytes(b"not a catalogue at all")
    with pytest.raises(GssfError, match="de.mo is not a readable gettext catalogue"):
        wn.build_translations([{"id": "X", "description": "x"}], tmp_path)
    (tmp_path / "translations.json").write_text(json.dumps({"format": 1, "units": [{"id": 3, "descriptions": {}}]}))
    with pytest.raises(GssfError, match="unit entry 0"):
        wn._read_translations(tmp_path)
