"""Tux Paint stamps: real image <-> English caption pairs (Debian ``tuxpaint-stamps-default``).

Layout in the data home (written by ``gssf data prepare tux``)::

    tux/stamps/<category>/<sub>/<name>.txt   line 1: the English caption
    tux/stamps/<category>/<sub>/<name>.png   or <name>.svg
    tux/rendered/<category>/<sub>/<name>.png SVG-only stamps, rendered at prepare time

An item is a ``.txt`` with an image next to it (PNG preferred when both exist). Its
stable key is the path without extension (``animals/mammals/pig``); the split is the
SHA-1 bucket of that key (60 / 10 / 30 for train / val / test).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from gssf.data.base import CrossModalDataset, ImageRecord
from gssf.data.paths import ContainedRoot
from gssf.data.splits import DEFAULT_FRACTIONS, assign_split

STAMPS = "stamps"
RENDERED = "rendered"
ALPHABETS = "symbols/alphabets/"
#: Longer side, in pixels, of SVG stamps rendered at prepare time (PNG stamps: median 150).
RENDER_SIDE = 384
LAYOUT = (
    "ROOT/stamps/<category>/.../<name>.txt (line 1 = English caption) next to <name>.png or <name>.svg, "
    "ROOT/rendered/.../<name>.png for SVG-only stamps"
)


@dataclass(frozen=True)
class Stamp:
    """One captioned stamp of the package tree."""

    key: str  # path relative to stamps/, without extension
    caption: str
    source: Path  # the .png or .svg shipped by the package
    category: str  # first folder (animals, food, vehicles, ...)

    @property
    def is_svg(self) -> bool:
        return self.source.suffix == ".svg"


def read_caption(txt: Path) -> str:
    """Line 1 of a stamp description (the English caption); later lines are translations."""
    with open(txt, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    return first.lstrip("\ufeff").strip()


def scan_stamps(stamps_dir: Path) -> List[Stamp]:
    """Every captioned stamp under ``stamps_dir``, sorted by key (not file-system order)."""
    if not stamps_dir.is_dir():
        raise FileNotFoundError(f"Tux Paint stamps not found at {stamps_dir}; expected layout: {LAYOUT}")
    out: List[Stamp] = []
    contained = ContainedRoot(stamps_dir)
    for txt in stamps_dir.rglob("*.txt"):
        png, svg = txt.with_suffix(".png"), txt.with_suffix(".svg")
        # PNG first: it is what DATA.md's measurements used; SVG-only stamps are rendered.
        source = png if png.is_file() else svg if svg.is_file() else None
        if source is None:
            continue  # a few descriptions ship without an image (e.g. christmas/gift)
        contained.check(source, f"Tux Paint stamps folder {stamps_dir}")  # a symlink may point anywhere
        caption = read_caption(txt)
        if not caption:
            continue
        key = txt.relative_to(stamps_dir).with_suffix("").as_posix()
        out.append(Stamp(key=key, caption=caption, source=source, category=key.split("/", 1)[0]))
    out.sort(key=lambda s: s.key)
    return out


def rendered_path(root: Path, key: str) -> Path:
    """Where the PNG rendering of SVG stamp ``key`` lives."""
    return root / RENDERED / f"{key}.png"


def load_tux(
    root: Path,
    split: str = "train",
    include_alphabets: bool = False,
    categories: Optional[List[str]] = None,
) -> CrossModalDataset:
    """Tux Paint stamps as a cross-modal dataset (one caption per image).

    Args:
        root: the prepared folder (``<data home>/tux``).
        split: ``train``, ``val`` or ``test`` (SHA-1 of the stamp key, 60/10/30).
        include_alphabets: keep the 158 letter stamps of ``symbols/alphabets`` (excluded by
            default: their captions are single letters and dominate nothing but noise).
        categories: keep only these top-level folders.
    """
    stamps = scan_stamps(root / STAMPS)
    images: List[ImageRecord] = []
    captions: List[str] = []
    cats: List[str] = []
    for s in stamps:
        if not include_alphabets and s.key.startswith(ALPHABETS):
            continue
        if categories is not None and s.category not in categories:
            continue
        if assign_split(f"tux:{s.key}", DEFAULT_FRACTIONS) != split:
            continue
        path = rendered_path(root, s.key) if s.is_svg else s.source
        if not path.is_file():
            raise FileNotFoundError(
                f"rendered stamp not found at {path}; run `gssf data prepare tux --force`; expected layout: {LAYOUT}"
            )
        images.append(ImageRecord(id=s.key, path=path))
        captions.append(s.caption)
        cats.append(s.category)
    return CrossModalDataset(
        name="tux",
        split=split,
        images=images,
        captions=captions,
        txt2img=list(range(len(images))),
        categories=cats,
        root=root,
        meta={"include_alphabets": include_alphabets},
    )
