"""Iconify emoji sets: one emoji drawn in up to 11 styles (``emoji-styles``, re-ID).

Sources (npm, installed by ``gssf data prepare emoji-styles``): the ``@iconify-json/*``
packages of :data:`NPM_VERSIONS`. The nine of :data:`DEFAULT_STYLES` carry CC-BY-4.0,
Apache-2.0 or MIT licences; the two share-alike sets (:data:`SHARE_ALIKE_STYLES`,
CC-BY-SA-4.0) are added only by ``gssf data prepare emoji-styles-sa``, a separate folder
read by the dataset ``emoji-styles-sa`` (all 11 styles).

Identity = one emoji name, camera = style. Names are joined through the packages' own
aliases (``aliases{name: {parent}}``), e.g. ``anticlockwise-arrows-button`` and
``counterclockwise-arrows-button`` are one identity. An alias edge is taken only while the
joined identity still has at most one drawing per style: several packages alias distinct
emoji whose pictures coincide in that set (France and Clipperton share a flag), and such an
edge is refused, so no picture ever stands for two identities. Only the nine default sets'
aliases build identities, so the nine styles' identities are the same in both folders.
A drawing whose SVG occurs twice in one set (two names, one picture) is used for neither.

Layout in the data home::

    emoji-styles/index.json                every identity drawn in >= 3 styles, its images
                                           (emoji-styles-sa/: the same with all 11 styles)
    emoji-styles/<style>/<name>.png        96 x 96 RGB, white background, rendered once
    emoji-styles/<style>/info.json         the package's licence and author
    emoji-styles/<style>/chars.json        code point -> name (where the package has one)

Splits (identity-disjoint, SHA-1 of ``emoji-styles:<name>``, 60 / 10 / 30):
``train`` / ``val`` / ``test`` hold every style of their identities; ``query`` holds ONE
style's image of each test identity (the style picked by the SHA-1 of the name among the
identity's styles, so every style appears as a query camera) and ``gallery`` its images
in the other styles (Market-1501-like cross-camera matching); ``val-query`` /
``val-gallery`` likewise for val.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gssf.data.base import ImageRecord, UniModalDataset
from gssf.data.jsonfile import read_prepared_json
from gssf.data.splits import DEFAULT_FRACTIONS, assign_split, hash_unit
from gssf.errors import GssfError, MissingExtraError

#: The nine sets without share-alike terms: the default cameras.
DEFAULT_STYLES: Tuple[str, ...] = (
    "twemoji", "noto", "noto-v1", "fluent-emoji", "fluent-emoji-flat", "fluent-emoji-high-contrast",
    "emojione", "emojione-monotone", "streamline-emojis",
)  # fmt: skip
#: CC-BY-SA-4.0 sets, prepared only on request (``gssf data prepare emoji-styles-sa``).
SHARE_ALIKE_STYLES: Tuple[str, ...] = ("openmoji", "emojione-v1")
#: Camera id of each style = its index here (stable whatever is prepared or selected).
STYLES: Tuple[str, ...] = DEFAULT_STYLES + SHARE_ALIKE_STYLES
#: Pinned package versions (``@iconify-json/<style>``), as verified in the data survey.
NPM_VERSIONS: Dict[str, str] = {
    "twemoji": "1.2.5", "noto": "1.2.9", "noto-v1": "1.2.5", "fluent-emoji": "1.2.7",
    "fluent-emoji-flat": "1.2.6", "fluent-emoji-high-contrast": "1.2.6", "emojione": "1.2.3",
    "emojione-monotone": "1.2.1", "streamline-emojis": "1.2.4", "openmoji": "1.2.29", "emojione-v1": "1.2.3",
}  # fmt: skip
LICENCES: Dict[str, str] = {
    "twemoji": "CC-BY-4.0", "noto": "Apache-2.0", "noto-v1": "Apache-2.0", "fluent-emoji": "MIT",
    "fluent-emoji-flat": "MIT", "fluent-emoji-high-contrast": "MIT", "emojione": "CC-BY-4.0",
    "emojione-monotone": "CC-BY-4.0", "streamline-emojis": "CC-BY-4.0", "openmoji": "CC-BY-SA-4.0",
    "emojione-v1": "CC-BY-SA-4.0",
}  # fmt: skip

RENDER_SIDE = 96
#: Identities drawn in fewer styles are not rendered; ``min_styles`` cannot go below this.
RENDER_MIN_STYLES = 3
DEFAULT_MIN_STYLES = 5
#: Fewer renders than this are done in-process (starting worker processes costs seconds).
POOL_MIN_JOBS = 200
INDEX = "index.json"
INDEX_FORMAT = 1
#: Icon names become file names: only this alphabet is accepted from a package.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,127}$")
LAYOUT = "ROOT/index.json, ROOT/<style>/<name>.png (written by `gssf data prepare emoji-styles`)"

REID_SPLITS: Dict[str, Tuple[str, str]] = {
    "train": ("train", "all"),
    "val": ("val", "all"),
    "test": ("test", "all"),
    "query": ("test", "query"),
    "gallery": ("test", "gallery"),
    "val-query": ("val", "query"),
    "val-gallery": ("val", "gallery"),
}


# --------------------------------------------------------------------------- icon sets


@dataclass
class IconSet:
    """One Iconify package: full SVG documents per drawing name, plain aliases."""

    style: str
    drawings: Dict[str, str]  # name -> SVG document (icons and transformed aliases)
    aliases: Dict[str, str]  # alias -> parent, for aliases without a transformation
    skipped: List[str] = field(default_factory=list)  # names refused (bad name or body)


def _box(icon: Mapping[str, Any], defaults: Mapping[str, Any]) -> Tuple[float, float, float, float]:
    def get(key: str, fallback: float) -> float:
        value = icon.get(key, defaults.get(key, fallback))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"{key}={value!r} is not a number")
        return float(value)

    w, h = get("width", 16.0), get("height", 16.0)
    if w <= 0 or h <= 0:
        raise ValueError(f"non-positive size {w} x {h}")
    return get("left", 0.0), get("top", 0.0), w, h


def _num(x: float) -> str:
    return f"{x:g}"


def icon_svg(
    body: str, box: Tuple[float, float, float, float], h_flip: bool = False, v_flip: bool = False, rotate: int = 0
) -> str:
    """A standalone SVG document for an Iconify ``body`` in viewBox ``box`` (left, top, w, h).

    Flips and quarter turns (``rotate``) act about the box centre, as Iconify draws them;
    ``currentColor`` (monochrome sets) becomes black.
    """
    left, top, w, h = box
    cx, cy = left + w / 2, top + h / 2
    rotate %= 4
    if h_flip or v_flip or rotate:
        ops = [f"translate({_num(cx)} {_num(cy)})"]
        if rotate:
            ops.append(f"rotate({90 * rotate})")
        if h_flip or v_flip:
            ops.append(f"scale({-1 if h_flip else 1} {-1 if v_flip else 1})")
        ops.append(f"translate({_num(-cx)} {_num(-cy)})")
        body = f'<g transform="{" ".join(ops)}">{body}</g>'
        if rotate % 2:  # a quarter turn swaps the box's sides around the same centre
            left, top, w, h = cx - h / 2, cy - w / 2, h, w
    body = body.replace("currentColor", "#000000")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{_num(left)} {_num(top)} {_num(w)} {_num(h)}">{body}</svg>'
    )


def read_icon_set(icons_json: Path, style: str) -> IconSet:
    """Read an Iconify ``icons.json`` into drawings (SVG text) and plain aliases.

    Aliases with a flip or rotation draw a different picture (``backhand-index-pointing-left``
    is the right-pointing hand flipped) and become drawings of their own.
    """
    if not icons_json.is_file():
        raise FileNotFoundError(f"Iconify icon set not found at {icons_json}; expected icons.json of @iconify-json/{style}")
    try:
        with open(icons_json, encoding="utf-8") as fh:
            data = json.load(fh)
        icons = data["icons"]
        raw_aliases = data.get("aliases", {}) or {}
        if not isinstance(icons, dict) or not isinstance(raw_aliases, dict):
            raise TypeError("'icons' and 'aliases' must be objects")
    except (ValueError, KeyError, TypeError) as exc:
        raise GssfError(f"{icons_json} is not an Iconify icon set: {exc}") from exc
    defaults = {k: data[k] for k in ("width", "height", "left", "top") if k in data}
    out = IconSet(style=style, drawings={}, aliases={})

    def add(name: str, icon: Mapping[str, Any], h_flip: bool, v_flip: bool, rotate: Any) -> None:
        body = icon.get("body") if isinstance(icon, Mapping) else None
        if not _NAME.match(name) or not isinstance(body, str) or not isinstance(rotate, int):
            out.skipped.append(name)
            return
        try:
            box = _box(icon, defaults)
        except ValueError:
            out.skipped.append(name)
            return
        out.drawings[name] = icon_svg(body, box, h_flip, v_flip, rotate)

    for name in sorted(icons):
        icon = icons[name]
        if not isinstance(icon, Mapping):
            out.skipped.append(name)
            continue
        add(name, icon, bool(icon.get("hFlip")), bool(icon.get("vFlip")), icon.get("rotate", 0))
    for name in sorted(raw_aliases):
        alias = raw_aliases[name]
        parent = alias.get("parent") if isinstance(alias, Mapping) else None
        if not isinstance(parent, str) or parent not in icons or not isinstance(icons[parent], Mapping):
            out.skipped.append(name)  # a dangling alias (chains do not occur in these sets)
            continue
        if set(alias) == {"parent"}:
            if _NAME.match(name):
                out.aliases[name] = parent
            else:
                out.skipped.append(name)
            continue
        icon = {**icons[parent], **{k: v for k, v in alias.items() if k in ("width", "height", "left", "top")}}
        h_flip = bool(icons[parent].get("hFlip")) != bool(alias.get("hFlip"))
        v_flip = bool(icons[parent].get("vFlip")) != bool(alias.get("vFlip"))
        turns = (icons[parent].get("rotate", 0), alias.get("rotate", 0))
        add(name, icon, h_flip, v_flip, sum(turns) if all(isinstance(t, int) for t in turns) else None)
    # One picture under two names cannot tell the names apart: use it for neither.
    seen: Dict[str, int] = {}
    for svg in out.drawings.values():
        seen[svg] = seen.get(svg, 0) + 1
    for name in [n for n, svg in out.drawings.items() if seen[svg] > 1]:
        del out.drawings[name]
        out.skipped.append(name)
    return out


# --------------------------------------------------------------------------- identities


@dataclass
class Identity:
    """One emoji: its name (the member drawn in most styles), other names, drawing per style."""

    name: str
    members: List[str]
    drawings: Dict[str, str]  # style -> drawing name in that style's set


def group_identities(sets: Mapping[str, IconSet], alias_styles: Sequence[str] = DEFAULT_STYLES) -> List[Identity]:
    """Join names into identities through the aliases of ``alias_styles``; sorted by name.

    Every identity has at most one drawing per style and every drawing belongs to at most
    one identity. Alias edges are taken in a fixed order (style order, then alias name);
    an edge that would give an identity two drawings of one style is refused.
    """
    parent: Dict[str, str] = {}
    styles_of: Dict[str, Dict[str, str]] = {}  # root -> {style: drawing}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    order = [s for s in alias_styles if s in sets]
    for s in order:
        for name in sets[s].drawings:
            styles_of.setdefault(name, {})[s] = name
    for s in order:
        for alias, target in sets[s].aliases.items():
            ra, rb = find(alias), find(target)
            if ra == rb:
                continue
            a, b = styles_of.get(ra, {}), styles_of.get(rb, {})
            if a.keys() & b.keys():
                continue  # two pictures of one style would become one identity
            keep, drop = min(ra, rb), max(ra, rb)
            parent[drop] = keep
            styles_of[keep] = {**a, **b}
            styles_of.pop(drop, None)
    members: Dict[str, List[str]] = {}
    for s in order:
        for name in list(sets[s].drawings) + list(sets[s].aliases):
            members.setdefault(find(name), [])
            if name not in members[find(name)]:
                members[find(name)].append(name)
    identities: Dict[str, Identity] = {}
    for root, names in members.items():
        drawn = styles_of.get(root, {})
        counts = {n: sum(1 for d in drawn.values() if d == n) for n in names}
        canonical = min(names, key=lambda n: (-counts[n], n))
        identities[root] = Identity(canonical, sorted(n for n in names if n != canonical), dict(drawn))
    # Sets that do not build identities (the share-alike ones) attach their drawings by name.
    owner = {n: root for root, names in members.items() for n in names}
    for s in (s for s in STYLES if s in sets and s not in order):
        used = set()
        # 1. a drawing named like a member, the identity's own name first
        for ident in sorted(identities.values(), key=lambda i: i.name):
            for n in [ident.name, *ident.members]:
                if n in sets[s].drawings and n not in used:
                    ident.drawings[s] = n
                    used.add(n)
                    break
        # 2. an alias of that set naming a member, pointing at a drawing nobody took
        for alias, target in sets[s].aliases.items():
            ident = identities.get(owner.get(alias, ""))
            # the target must not be another identity's name: its picture is that emoji
            if ident is None or target in used or s in ident.drawings or owner.get(target, owner[alias]) != owner[alias]:
                continue
            if target in sets[s].drawings:
                ident.drawings[s] = target
                used.add(target)
    return sorted((i for i in identities.values() if i.drawings), key=lambda i: i.name)


def query_style(name: str, styles: Sequence[str]) -> str:
    """The style whose image queries identity ``name`` (SHA-1 of the name; ``styles`` in camera order)."""
    return styles[min(int(hash_unit(f"emoji-styles:query:{name}") * len(styles)), len(styles) - 1)]


def identity_split(name: str) -> str:
    """The split of identity ``name`` (SHA-1 of ``emoji-styles:<name>``, 60 / 10 / 30)."""
    return assign_split(f"emoji-styles:{name}", DEFAULT_FRACTIONS)


# --------------------------------------------------------------------------- rendering


def render_png(svg: str, side: int = RENDER_SIDE) -> bytes:
    """An SVG document as a ``side`` x ``side`` RGB PNG on white (cairosvg in safe mode).

    A non-square viewBox is centred (the SVG default ``xMidYMid meet``).
    """
    try:
        import cairosvg
    except ImportError as exc:
        raise MissingExtraError("rendering SVG", "data", "cairosvg") from exc
    except OSError as exc:  # cairocffi did not find the cairo C library
        raise GssfError(f"rendering SVG needs the cairo library (Debian/Ubuntu: apt-get install libcairo2): {exc}") from exc
    from PIL import Image

    png = cairosvg.svg2png(
        bytestring=svg.encode("utf-8"), output_width=side, output_height=side, background_color="white"
    )
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.size != (side, side):  # cairosvg keeps the aspect ratio of width/height-less SVGs
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        img.thumbnail((side, side))
        canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
        img = canvas
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _render_job(job: Tuple[str, str, int]) -> Optional[Tuple[str, str]]:
    """Render one drawing to its file; ``(path, error)`` when cairosvg refuses the drawing."""
    svg, path, side = job
    try:
        data = render_png(svg, side)
    except GssfError:  # cairosvg or cairo missing: no drawing can be rendered
        raise
    except Exception as exc:  # cairosvg raises many types on a malformed drawing; skip that one
        return path, f"{type(exc).__name__}: {exc}"
    with open(path, "wb") as fh:
        fh.write(data)
    return None


def render_all(
    jobs: Sequence[Tuple[str, Path]],
    side: int = RENDER_SIDE,
    workers: Optional[int] = None,
    on_done: Optional[Callable[[int], Any]] = None,
) -> Dict[str, str]:
    """Render ``(svg, png path)`` jobs, in parallel processes for big batches; return failures by path.

    The output does not depend on ``workers``: each file is a pure function of its SVG.
    """
    work = [(svg, str(path), side) for svg, path in jobs]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    failures: Dict[str, str] = {}
    if workers <= 1 or len(work) < POOL_MIN_JOBS:
        results: Iterable[Optional[Tuple[str, str]]] = map(_render_job, work)
        pool = None
    else:
        # spawn, not fork: the caller may hold threads (torch), which fork would copy half-way.
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        results = pool.map(_render_job, work, chunksize=32)
    try:
        for r in results:
            if r is not None:
                failures[r[0]] = r[1]
            if on_done is not None:
                on_done(1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return failures


# --------------------------------------------------------------------------- prepare


def build(
    packages: Mapping[str, Path],
    out: Path,
    side: int = RENDER_SIDE,
    workers: Optional[int] = None,
    log: Callable[[str], None] = lambda m: None,
    on_done: Optional[Callable[[int], Any]] = None,
) -> Dict[str, Any]:
    """Write the ``emoji-styles`` tree under ``out`` from unpacked ``@iconify-json`` packages.

    Args:
        packages: style -> package folder (holding ``icons.json``, ``info.json``, ``chars.json``).
        out: destination folder (created); gets ``index.json`` and ``<style>/<name>.png``.
        on_done: called with 1 after each render (progress bars).

    Returns the counts for the ``prepared.json`` marker.
    """
    styles = _known_styles(packages)
    sets = {s: read_icon_set(packages[s] / "icons.json", s) for s in styles}
    identities = [i for i in group_identities(sets) if len(i.drawings) >= RENDER_MIN_STYLES]
    jobs: List[Tuple[str, Path]] = []
    entries = []
    for ident in identities:
        images = {}
        for s in (s for s in styles if s in ident.drawings):
            rel = f"{s}/{ident.drawings[s]}.png"
            images[s] = rel
            jobs.append((sets[s].drawings[ident.drawings[s]], out / rel))
        entries.append({"name": ident.name, "aliases": ident.members, "images": images})
    out.mkdir(parents=True, exist_ok=True)
    for s in styles:
        (out / s).mkdir(exist_ok=True)
        for meta in ("info.json", "chars.json"):
            if (packages[s] / meta).is_file():
                shutil.copyfile(packages[s] / meta, out / s / meta)
    log(f"  rendering {len(jobs)} drawings of {len(entries)} emoji at {side} px")
    failures = render_all(jobs, side=side, workers=workers, on_done=on_done)
    if failures:
        # A drawing cairosvg cannot read leaves its identity one style short; the rest stays.
        for e in entries:
            e["images"] = {s: rel for s, rel in e["images"].items() if str(out / rel) not in failures}
        first = min(failures)
        log(f"  {len(failures)} drawings could not be rendered, e.g. {first}: {failures[first]}")
    entries = [e for e in entries if len(e["images"]) >= RENDER_MIN_STYLES]
    index = {"format": INDEX_FORMAT, "side": side, "render_min_styles": RENDER_MIN_STYLES, "styles": styles,
             "identities": entries}  # fmt: skip
    (out / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    per_style = {s: sum(s in e["images"] for e in entries) for s in styles}
    default = [e for e in entries if sum(s in e["images"] for s in DEFAULT_STYLES) >= DEFAULT_MIN_STYLES]
    return {
        "styles": styles,
        "images": sum(per_style.values()),
        "render_failures": sorted(Path(p).relative_to(out).as_posix() for p in failures),
        "refused_names": {s: len(sets[s].skipped) for s in styles},
        "identities": {f"min_styles={RENDER_MIN_STYLES}": len(entries), "default": len(default)},
        "images_per_style": per_style,
    }


def _prepare(
    styles: Sequence[str], work: Path, downloads: Path, deb: Optional[Any], log: Callable[[str], None], progress: bool
) -> Dict[str, Any]:
    from gssf.data import prepare as prep

    if deb is not None:
        raise GssfError("--deb applies to the Debian datasets (tux, fashion-mnist, wesnoth), not to emoji-styles")
    packages_ = [(f"@iconify-json/{s}", NPM_VERSIONS[s]) for s in styles]
    modules = prep._npm_install(packages_, downloads, downloads.parent / "npm-cache", log, progress)
    packages = {s: modules / "@iconify-json" / s for s in styles}
    versions = {}
    for s, folder in packages.items():
        try:
            with open(folder / "package.json", encoding="utf-8") as fh:
                versions[s] = json.load(fh).get("version", "unknown")
        except (OSError, ValueError):
            versions[s] = "unknown"
    bar = prep._progress(None, "emoji-styles: render", enabled=progress)
    try:
        counts = build(packages, work, log=log, on_done=bar.update)
    finally:
        bar.close()
    return {
        "sources": [{"registry": "npm", "package": f"@iconify-json/{s}", "version": versions[s], "licence": LICENCES[s]}
                    for s in styles],  # fmt: skip
        "items": counts,
    }


def prepare_emoji_styles(
    work: Path, downloads: Path, deb: Optional[Any], log: Callable[[str], None], progress: bool
) -> Dict[str, Any]:
    """``gssf data prepare emoji-styles``: npm-install the nine default sets, render them into ``work``."""
    return _prepare(DEFAULT_STYLES, work, downloads, deb, log, progress)


def prepare_emoji_styles_share_alike(
    work: Path, downloads: Path, deb: Optional[Any], log: Callable[[str], None], progress: bool
) -> Dict[str, Any]:
    """``gssf data prepare emoji-styles-sa``: the same with all 11 sets (adds two CC-BY-SA-4.0 ones)."""
    return _prepare(STYLES, work, downloads, deb, log, progress)


# --------------------------------------------------------------------------- loader


def read_index(root: Path) -> Dict[str, Any]:
    """The prepared ``index.json``; a clear error when it is missing or not ours."""
    return read_prepared_json(root / INDEX, "emoji-styles index", "identities", INDEX_FORMAT, LAYOUT, "emoji-styles")


def _known_styles(styles: Iterable[str]) -> List[str]:
    """``styles`` in camera order; an unknown name is an error that lists the known ones."""
    unknown = sorted(set(styles) - set(STYLES))
    if unknown:
        raise GssfError(f"unknown emoji style(s) {', '.join(unknown)}; choose from {', '.join(STYLES)}")
    return [s for s in STYLES if s in set(styles)]


def _check_styles(styles: Sequence[str], prepared: Sequence[str]) -> List[str]:
    _known_styles(styles)
    missing = [s for s in styles if s not in prepared]
    if missing:
        if set(missing) <= set(SHARE_ALIKE_STYLES):
            hint = "the share-alike styles are in the dataset emoji-styles-sa (`gssf data prepare emoji-styles-sa`)"
        else:
            hint = "run `gssf data prepare emoji-styles --force`"
        raise FileNotFoundError(f"emoji style(s) {', '.join(missing)} are not prepared here; {hint}")
    if len(set(styles)) < 2:
        raise GssfError(f"re-ID across styles needs at least two styles, got {list(styles)}")
    return _known_styles(styles)


def load_emoji_styles(
    root: Path,
    split: str = "train",
    min_styles: int = DEFAULT_MIN_STYLES,
    styles: Optional[Sequence[str]] = None,
    name: str = "emoji-styles",
) -> UniModalDataset:
    """``emoji-styles``: identity = emoji, camera = style (index in :data:`STYLES`).

    Args:
        root: the prepared folder (``<data home>/emoji-styles``).
        split: ``train``, ``val``, ``test``, ``query``, ``gallery``, ``val-query`` or ``val-gallery``.
        min_styles: keep emoji drawn in at least this many of ``styles`` (>= 3, what is rendered).
        styles: the styles (cameras) to use; default the nine of :data:`DEFAULT_STYLES`.

    Labels are indices into the sorted names of the kept identities, the same in every split;
    ``label_names`` maps them to names, ``categories`` is each image's style.
    """
    if split not in REID_SPLITS:
        raise GssfError(f"unknown split {split!r} for {name}; choose from {', '.join(REID_SPLITS)}")
    if isinstance(min_styles, bool) or not isinstance(min_styles, int) or min_styles < RENDER_MIN_STYLES:
        raise GssfError(
            f"min_styles must be an integer >= {RENDER_MIN_STYLES} (rarer emoji are not rendered), got {min_styles!r}"
        )
    index = read_index(root)
    chosen = _check_styles(list(DEFAULT_STYLES if styles is None else styles), index.get("styles", []))
    id_split, part = REID_SPLITS[split]
    kept = []
    for e in index["identities"]:
        have = [s for s in chosen if s in e["images"]]
        if len(have) >= min_styles:
            kept.append((e["name"], have, e["images"]))
    kept.sort(key=lambda k: k[0])
    images: List[ImageRecord] = []
    labels: List[int] = []
    cams: List[int] = []
    label_names: Dict[int, str] = {}
    for label, (ident, have, files) in enumerate(kept):
        if identity_split(ident) != id_split:
            continue
        label_names[label] = ident
        q = query_style(ident, have)
        for s in have:
            if (part == "query") != (s == q) and part != "all":
                continue
            path = root / files[s]
            if not path.is_file():
                raise FileNotFoundError(
                    f"emoji-styles image not found at {path}; run `gssf data prepare emoji-styles --force`"
                )
            images.append(ImageRecord(id=f"{s}/{ident}", path=path))
            labels.append(label)
            cams.append(STYLES.index(s))
    return UniModalDataset(
        name=name,
        split=split,
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        cams=np.asarray(cams, dtype=np.int64),
        categories=[STYLES[c] for c in cams],
        label_names=label_names,
        root=root,
        meta={"identity_split": id_split, "styles": chosen, "min_styles": min_styles},
    )


def load_emoji_styles_share_alike(
    root: Path, split: str = "train", min_styles: int = DEFAULT_MIN_STYLES, styles: Optional[Sequence[str]] = None
) -> UniModalDataset:
    """``emoji-styles-sa``: all 11 styles by default (prepared by ``gssf data prepare emoji-styles-sa``)."""
    return load_emoji_styles(root, split, min_styles, STYLES if styles is None else styles, name="emoji-styles-sa")
