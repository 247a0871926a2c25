"""Emoji drawn by three vendors: identities x cameras, with CLDR captions.

Sources (npm, installed by ``gssf data prepare emoji``): ``emoji-datasource-google``
(Noto images, Apache-2.0), ``emoji-datasource-twitter`` (Twemoji, CC-BY-4.0) and
``openmoji`` (CC-BY-SA-4.0). Layout in the data home::

    emoji/emoji.json              emoji-datasource metadata (unified code, image, category)
    emoji/openmoji.json           CLDR annotation and keyword tags per hexcode
    emoji/google/<image>          64x64 PNG, camera 0
    emoji/twitter/<image>         64x64 PNG, camera 1
    emoji/openmoji/<HEX>.png      64x64 PNG rendered from openmoji/svg/<HEX>.svg, camera 2

Identity = one base emoji (skin-tone variants and the "Component" category dropped):
1,906 identities. Identities go to train / val / test by the SHA-1 of their unified code
(60 / 10 / 30), shared by all three views below, so no view leaks into another.

Views (registered names):

* ``emoji``: cross-modal, Google image <-> caption ``"CLDR name: keywords"``.
* ``emoji-reid``: re-ID; ``query`` = Google images of the test identities, ``gallery`` =
  Twitter + OpenMoji images of the same identities; ``val-query`` / ``val-gallery``
  likewise for val; ``train`` / ``val`` / ``test`` = all three cameras of the split.
* ``emoji-fine-grained``: class-disjoint retrieval, three views per class; splits
  ``train`` / ``val`` / ``test``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from gssf.data.base import CrossModalDataset, ImageRecord, UniModalDataset
from gssf.data.paths import contained_path
from gssf.data.splits import DEFAULT_FRACTIONS, assign_split
from gssf.errors import GssfError

#: Camera id of each vendor (the index in this tuple).
VENDORS: Tuple[str, ...] = ("google", "twitter", "openmoji")
IMAGE_SIDE = 64
LAYOUT = (
    "ROOT/emoji.json, ROOT/openmoji.json, ROOT/google/<image>.png, ROOT/twitter/<image>.png, "
    "ROOT/openmoji/<HEXCODE>.png"
)


@dataclass(frozen=True)
class Emoji:
    """One identity: a base emoji with its three vendor images."""

    code: str  # unified code point sequence, e.g. "1F600" (stable key)
    image: str  # file name in the emoji-datasource image folders
    openmoji: str  # OpenMoji hexcode (the unified code, FE0F dropped where OpenMoji does)
    name: str  # CLDR short name, e.g. "grinning face"
    keywords: str  # CLDR keywords, comma separated
    category: str
    subcategory: str

    @property
    def caption(self) -> str:
        return f"{self.name}: {self.keywords}" if self.keywords else self.name


def read_emoji_index(datasource_json: Path, openmoji_json: Path) -> List[Emoji]:
    """Join the emoji-datasource and OpenMoji metadata; sorted by unified code."""
    for p in (datasource_json, openmoji_json):
        if not p.is_file():
            raise FileNotFoundError(f"emoji metadata not found at {p}; expected layout: {LAYOUT}")
    try:
        return _join_index(datasource_json, openmoji_json)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, GssfError):
            raise
        raise GssfError(
            f"emoji metadata {datasource_json} / {openmoji_json} is malformed ({exc!r}); expected layout: {LAYOUT}"
        ) from exc


def _join_index(datasource_json: Path, openmoji_json: Path) -> List[Emoji]:
    with open(datasource_json, encoding="utf-8") as fh:
        entries = json.load(fh)
    with open(openmoji_json, encoding="utf-8") as fh:
        om = {o["hexcode"]: o for o in json.load(fh)}
    out: List[Emoji] = []
    for e in entries:
        if e.get("category") == "Component":  # skin-tone and hair swatches, not emoji
            continue
        if not (e.get("has_img_google") and e.get("has_img_twitter")):
            continue
        code = e["unified"]
        hexcode = code if code in om else code.replace("-FE0F", "")
        o = om.get(hexcode)
        if o is None:
            continue
        out.append(
            Emoji(
                code=code,
                image=e["image"],
                openmoji=hexcode,
                name=o.get("annotation") or e.get("short_name", code),
                keywords=o.get("tags", ""),
                category=e.get("category", ""),
                subcategory=e.get("subcategory", ""),
            )
        )
    out.sort(key=lambda x: x.code)
    return out


def vendor_path(root: Path, vendor: str, e: Emoji) -> Path:
    """Path of the 64x64 PNG of emoji ``e`` by ``vendor`` (names from the metadata stay inside ``root``)."""
    name = f"openmoji/{e.openmoji}.png" if vendor == "openmoji" else f"{vendor}/{e.image}"
    return contained_path(root, name, f"{root / 'emoji.json'}: emoji {e.code}")


def _identities(root: Path) -> List[Emoji]:
    return read_emoji_index(root / "emoji.json", root / "openmoji.json")


def identity_split(e: Emoji) -> str:
    """The split of identity ``e`` (SHA-1 of its unified code)."""
    return assign_split(f"emoji:{e.code}", DEFAULT_FRACTIONS)


def _record(root: Path, vendor: str, e: Emoji) -> ImageRecord:
    path = vendor_path(root, vendor, e)
    if not path.is_file():
        raise FileNotFoundError(f"emoji image not found at {path}; expected layout: {LAYOUT}")
    return ImageRecord(id=f"{vendor}/{e.code}", path=path)


def load_emoji_captions(root: Path, split: str = "train", vendor: str = "google") -> CrossModalDataset:
    """``emoji``: one vendor's image of each identity <-> its CLDR caption."""
    if vendor not in VENDORS:
        raise ValueError(f"unknown emoji vendor {vendor!r}; choose from {', '.join(VENDORS)}")
    ids = [e for e in _identities(root) if identity_split(e) == split]
    return CrossModalDataset(
        name="emoji",
        split=split,
        images=[_record(root, vendor, e) for e in ids],
        captions=[e.caption for e in ids],
        txt2img=np.arange(len(ids)),
        categories=[e.subcategory for e in ids],
        root=root,
        meta={"vendor": vendor},
    )


def _uni(
    name: str, root: Path, split: str, id_split: str, vendors: Sequence[str], all_ids: List[Emoji]
) -> UniModalDataset:
    # Labels are global identity indices (position in the sorted index), stable across splits.
    index: Dict[str, int] = {e.code: i for i, e in enumerate(all_ids)}
    images: List[ImageRecord] = []
    labels: List[int] = []
    cams: List[int] = []
    cats: List[str] = []
    for e in all_ids:
        if identity_split(e) != id_split:
            continue
        for v in vendors:
            images.append(_record(root, v, e))
            labels.append(index[e.code])
            cams.append(VENDORS.index(v))
            cats.append(e.subcategory)
    return UniModalDataset(
        name=name,
        split=split,
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        cams=np.asarray(cams, dtype=np.int64),
        categories=cats,
        label_names={index[e.code]: e.name for e in all_ids if identity_split(e) == id_split},
        root=root,
        meta={"identity_split": id_split, "vendors": list(vendors)},
    )


#: emoji-reid split -> (identity split, vendors)
REID_SPLITS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "train": ("train", VENDORS),
    "val": ("val", VENDORS),
    "test": ("test", VENDORS),
    "query": ("test", ("google",)),
    "gallery": ("test", ("twitter", "openmoji")),
    "val-query": ("val", ("google",)),
    "val-gallery": ("val", ("twitter", "openmoji")),
}


def load_emoji_reid(root: Path, split: str = "train") -> UniModalDataset:
    """``emoji-reid``: identity = emoji, camera = vendor (0 Google, 1 Twitter, 2 OpenMoji)."""
    id_split, vendors = REID_SPLITS[split]
    return _uni("emoji-reid", root, split, id_split, vendors, _identities(root))


def load_emoji_fine_grained(root: Path, split: str = "train") -> UniModalDataset:
    """``emoji-fine-grained``: class = emoji, three views per class, class-disjoint splits."""
    return _uni("emoji-fine-grained", root, split, split, VENDORS, _identities(root))
