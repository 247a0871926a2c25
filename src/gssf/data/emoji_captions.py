"""``emoji-captions``: the Iconify emoji styles with emojibase captions (image-text retrieval).

One caption per emoji and locale, many images per caption (the emoji's drawings in up to
nine styles): image ``i`` and caption ``j`` match when they show / name the same emoji,
which is the "relevant if same group" protocol of
:func:`gssf.evaluation.image_text_metrics` (``image_groups`` / ``text_groups``).

Sources: the images are those of ``emoji-styles`` (prepared first, automatically); the
captions come from the npm package ``emojibase-data`` (MIT, :data:`NPM_VERSION`), whose
``<locale>/data.json`` gives every emoji a ``label`` and ``tags``. Caption = ``"label:
tag, tag, ..."`` (``"grinning face: face, grin, happy"``). Emoji and captions are joined
through the code points of the Iconify sets (``<style>/chars.json``, code point -> name),
with the emoji presentation selector U+FE0F ignored on both sides; an identity whose names
point at no emojibase entry, or at two, has no caption and is left out.

Layout in the data home::

    emoji-captions/<locale>.json     {"format": 1, "locale": ..., "entries": [{hexcode, label, tags}]}
    emoji-captions/LICENSE           the package's licence

Splits: identity-disjoint, the same identities as ``emoji-styles`` (SHA-1 of the name,
60 / 10 / 30): ``train``, ``val``, ``test`` hold every style of their identities.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from gssf.data.base import CrossModalDataset, captioned_groups
from gssf.data.jsonfile import read_prepared_json
from gssf.errors import GssfError

__all__ = [
    "NPM_VERSION", "LOCALES", "caption_of", "prepare_emoji_captions", "load_emoji_captions",
    "load_emoji_captions_multilingual",
]  # fmt: skip

NPM_PACKAGE = "emojibase-data"
NPM_VERSION = "17.0.0"
FORMAT = 1
#: The locales the package ships (``<locale>/data.json``), as verified in the data survey.
LOCALES: Tuple[str, ...] = (
    "bn", "da", "de", "en", "en-gb", "es", "es-mx", "et", "fi", "fr", "hi", "hu", "it", "ja", "ko", "lt", "ms",
    "nb", "nl", "pl", "pt", "ru", "sv", "th", "uk", "vi", "zh", "zh-hant",
)  # fmt: skip
LAYOUT = "ROOT/<locale>.json (written by `gssf data prepare emoji-captions`) and ROOT/../emoji-styles/"
SPLITS = ("train", "val", "test")
_HEX = re.compile(r"^[0-9A-Fa-f]{2,8}(-[0-9A-Fa-f]{2,8}){0,15}$")
MAX_LABEL = 200
MAX_TAGS = 64


def _code(hexcode: str) -> str:
    """A code point sequence in one spelling: lower case, U+FE0F (emoji presentation) left out."""
    return "-".join(p for p in hexcode.lower().split("-") if p != "fe0f")


def caption_of(label: str, tags: Sequence[str]) -> str:
    """``"label: tag, tag"`` (tags equal to the label are left out); the label alone without tags."""
    rest = [t for t in tags if t != label]
    return f"{label}: {', '.join(rest)}" if rest else label


def _clean_entries(raw: Any, where: str) -> List[Dict[str, Any]]:
    """The ``{hexcode, label, tags}`` of a ``data.json``; malformed entries are refused, not guessed."""
    if not isinstance(raw, list):
        raise GssfError(f"{where}: expected a list of emoji, got {type(raw).__name__}")
    out = []
    for k, e in enumerate(raw):
        if not isinstance(e, dict):
            raise GssfError(f"{where}: entry {k} is not an object")
        hexcode, label, tags = e.get("hexcode"), e.get("label"), e.get("tags", [])
        if not isinstance(hexcode, str) or not _HEX.match(hexcode):
            raise GssfError(f"{where}: entry {k} has no valid hexcode ({hexcode!r})")
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
            raise GssfError(f"{where}: entry {k} ({hexcode}) has no valid label")
        if not isinstance(tags, list) or len(tags) > MAX_TAGS or not all(isinstance(t, str) and len(t) <= MAX_LABEL for t in tags):
            raise GssfError(f"{where}: entry {k} ({hexcode}) has malformed tags")
        out.append({"hexcode": hexcode.upper(), "label": label.strip(), "tags": [t.strip() for t in tags if t.strip()]})
    return out


def prepare_emoji_captions(
    work: Path, downloads: Path, deb: Optional[Any], log: Callable[[str], None], progress: bool
) -> Dict[str, Any]:
    """``gssf data prepare emoji-captions``: emoji-styles (if missing), then the emojibase captions."""
    from gssf.data import prepare as prep

    if deb is not None:
        raise GssfError("--deb applies to the Debian datasets (tux, fashion-mnist, wesnoth), not to emoji-captions")
    home = work.parent  # prepare() builds in a scratch folder inside the data home
    styles = prep.prepare("emoji-styles", home=home, log=log, progress=progress)
    modules = prep._npm_install([(NPM_PACKAGE, NPM_VERSION)], downloads, downloads.parent / "npm-cache", log, progress)
    package = modules / NPM_PACKAGE
    counts = {}
    for locale in LOCALES:
        src = package / locale / "data.json"
        if not src.is_file():
            raise GssfError(f"{NPM_PACKAGE}@{NPM_VERSION} has no {locale}/data.json; the package is not the one expected")
        if src.stat().st_size > 64 << 20:
            raise GssfError(f"{src} is larger than 64 MB; refused")
        with open(src, encoding="utf-8") as fh:
            entries = _clean_entries(json.load(fh), f"{NPM_PACKAGE}/{locale}/data.json")
        doc = {"format": FORMAT, "locale": locale, "entries": entries}
        (work / f"{locale}.json").write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
        counts[locale] = len(entries)
    if (package / "LICENSE").is_file():
        shutil.copyfile(package / "LICENSE", work / "LICENSE")
    return {
        "sources": [{"registry": "npm", "package": NPM_PACKAGE, "version": NPM_VERSION, "licence": "MIT"},
                    {"dataset": "emoji-styles", "path": str(styles.path)}],  # fmt: skip
        "items": {"entries_per_locale": counts},
    }


def _read_locale(root: Path, locale: str) -> List[Dict[str, Any]]:
    doc = read_prepared_json(root / f"{locale}.json", f"emoji-captions {locale}", "entries", FORMAT, LAYOUT, "emoji-captions")
    return _clean_entries(doc["entries"], str(root / f"{locale}.json"))


def _name_codes(styles_root: Path, styles: Sequence[str]) -> Dict[str, Set[str]]:
    """Icon name -> its code point sequences, from every style's ``chars.json``."""
    out: Dict[str, Set[str]] = {}
    for s in styles:
        path = styles_root / s / "chars.json"
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as fh:
            chars = json.load(fh)
        if not isinstance(chars, dict):
            raise GssfError(f"{path}: expected an object code point -> name")
        for code, name in chars.items():
            if isinstance(code, str) and isinstance(name, str) and _HEX.match(code):
                out.setdefault(name, set()).add(_code(code))
    return out


def _locales(locale: Union[str, Sequence[str]]) -> List[str]:
    chosen = list(LOCALES) if locale == "all" else ([locale] if isinstance(locale, str) else list(locale))
    unknown = [x for x in chosen if x not in LOCALES]
    if unknown or not chosen:
        raise GssfError(f"unknown locale(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(LOCALES)} or all")
    return chosen


def load_emoji_captions(
    root: Path,
    split: str = "train",
    locale: Union[str, Sequence[str]] = "en",
    min_styles: int = 5,
    styles: Optional[Sequence[str]] = None,
    styles_root: Optional[Path] = None,
    name: str = "emoji-captions",
) -> CrossModalDataset:
    """``emoji-captions``: every style's image of an emoji, its caption(s) in ``locale``.

    Args:
        root: the prepared folder (``<data home>/emoji-captions``).
        split: ``train``, ``val`` or ``test`` (the identities of emoji-styles' split).
        locale: one locale of :data:`LOCALES`, a list of them (one caption per locale and
            emoji) or ``"all"``.
        min_styles / styles: as for ``emoji-styles``: emoji drawn in at least ``min_styles``
            of ``styles`` (default the nine default styles).
        styles_root: the prepared emoji-styles folder (default: ``root``'s sibling).
        name: the dataset's name (``emoji-captions-multilingual`` for every locale).

    ``image_groups`` / ``text_groups`` are indices into the sorted names of the kept emoji,
    the same in every split; ``categories`` is each image's style; ``meta["names"]`` maps
    groups to names.
    """
    from gssf.data.iconify import DEFAULT_STYLES, load_emoji_styles, read_index

    if split not in SPLITS:
        raise GssfError(f"unknown split {split!r} for emoji-captions; choose from {', '.join(SPLITS)}")
    chosen = _locales(locale)
    sroot = Path(styles_root) if styles_root is not None else Path(root).parent / "emoji-styles"
    uni = load_emoji_styles(sroot, split=split, min_styles=min_styles, styles=styles)
    per_locale = {loc: {_code(e["hexcode"]): e for e in _read_locale(Path(root), loc)} for loc in chosen}
    name_codes = _name_codes(sroot, uni.meta.get("styles", DEFAULT_STYLES))
    index = {e["name"]: e for e in read_index(sroot)["identities"]}

    captioned: Dict[int, List[str]] = {}
    for label, icon in sorted(uni.label_names.items()):
        entry = index.get(icon, {"aliases": []})
        codes: Set[str] = set()
        for n in [icon, *entry.get("aliases", [])]:
            codes |= name_codes.get(n, set())
        texts = []
        for loc in chosen:
            hits = {c for c in codes if c in per_locale[loc]}
            if len(hits) == 1:
                e = per_locale[loc][hits.pop()]
                text = caption_of(e["label"], e["tags"])
                if text not in texts:  # en and en-gb often agree: one query, not two
                    texts.append(text)
        if texts:
            captioned[label] = texts
    meta = {"locales": chosen, "styles": uni.meta.get("styles"), "min_styles": min_styles,
            "identities": len(captioned), "uncaptioned": len(uni.label_names) - len(captioned),
            "names": {int(k): uni.label_names[k] for k in captioned}}  # fmt: skip
    return captioned_groups(uni, captioned, name, meta)


def load_emoji_captions_multilingual(
    root: Path, split: str = "train", min_styles: int = 5, styles: Optional[Sequence[str]] = None,
    styles_root: Optional[Path] = None,
) -> CrossModalDataset:
    """``emoji-captions-multilingual``: :func:`load_emoji_captions` with the captions of all 28 locales.

    Up to 28 captions per emoji (one per locale that names it), all relevant to each of its
    images: about 28x the caption queries of the English set on the same images, for the
    multilingual text encoder ``e5-small``. A caption group is one emoji, so the statistics
    resample emoji, not captions (its 28 translations are not independent queries).
    """
    return load_emoji_captions(root, split, "all", min_styles, styles, styles_root, name="emoji-captions-multilingual")
