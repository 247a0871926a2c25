"""Battle for Wesnoth unit sprites: fine-grained retrieval over unit types (``wesnoth``).

Source: Debian ``wesnoth-1.16-data`` (GPL-2+), fetched by ``gssf data prepare wesnoth``
(``apt-get download``, unpacked in Python). Only the unit definitions, the macros they use
and the unit sprites are extracted, not the package's music, maps or portraits.

A unit type is a ``[unit_type]`` of ``data/core/units/**.cfg`` (WML). Its images are the
base ``image=`` and every animation frame (``image=`` anywhere inside it, macros expanded,
frame lists such as ``"units/drakes/clasher-blade-[1~6].png:100"`` unrolled, image-path
functions such as ``~RC(...)`` dropped); ``[variation]`` blocks (other creatures sharing an
id, e.g. the Walking Corpse's) are left out, ``[female]`` sprites are kept. A sprite file
that several unit types reference (recoloured horses, shared death frames) belongs to none:
its label would be ambiguous. Classes are unit types with at least ``min_frames`` (5)
sprites; they go to train / val / test by the SHA-1 of ``wesnoth:<unit id>`` (60 / 10 / 30),
class-disjoint as in CUB-200-2011.

Layout in the data home::

    wesnoth/manifest.json            unit types: id, name, race, English description, frames
    wesnoth/images/units/**.png      the unit sprites (72 x 72 mostly, transparent)
    wesnoth/cfg/units/**.cfg         the WML the manifest was read from (and cfg/macros/)
    wesnoth/translations.json        the descriptions in the game's translations (wesnoth-units.mo)
    wesnoth/COPYRIGHT

The translations (``wesnoth-descriptions-multilingual``) are looked up in the package's
``locale/<lang>/LC_MESSAGES/wesnoth-units.mo`` catalogues by the English description (the
catalogue's message id), for the languages of :data:`LANGUAGES`; a unit keeps the English
text and every translation that differs from it.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gssf.data.base import CrossModalDataset, ImageRecord, UniModalDataset, captioned_groups
from gssf.data.jsonfile import read_prepared_json
from gssf.data.splits import DEFAULT_FRACTIONS, assign_split
from gssf.errors import GssfError

PACKAGE = "wesnoth-1.16-data"
#: Where the package keeps the core data, and what of it is extracted.
DATA_PREFIX = "usr/share/games/wesnoth/1.16/data/core/"
COPYRIGHT = f"usr/share/doc/{PACKAGE}/copyright"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
TRANSLATIONS = "translations.json"
TRANSLATIONS_FORMAT = 1
LOCALE_PREFIX = "usr/share/games/wesnoth/1.16/locale/"
#: The catalogues read: every language the 1.16 package translates most unit descriptions
#: into (>= 25 of the 214 kept units), one script per language (not en@shaw, en_GB,
#: sr@latin / sr@ijekavian*, racv: transliterations or near-copies of another entry).
LANGUAGES: Tuple[str, ...] = (
    "bg", "ca", "cs", "da", "de", "el", "eo", "es", "et", "fi", "fr", "gd", "gl", "hu", "id", "it", "ja", "ko",
    "lt", "lv", "nb_NO", "nl", "pl", "pt", "pt_BR", "ru", "sk", "sr", "sv", "tr", "uk", "vi", "zh_CN", "zh_TW",
)  # fmt: skip
MAX_CATALOGUE_BYTES = 16 << 20
DEFAULT_MIN_FRAMES = 5
LAYOUT = "ROOT/manifest.json, ROOT/images/units/<race>/<sprite>.png (written by `gssf data prepare wesnoth`)"

#: Nested macro calls deeper than this are cut (the core macros nest about 5 deep).
_MAX_DEPTH = 40
_DIRECTIVE = re.compile(r"(define|enddef|undef|ifdef|ifndef|ifhave|ifnhave|ifver|ifnver|else|endif|arg|endarg)\b\s*(.*)")
_IPF = re.compile(r"~[A-Z_]+\(")
#: A unit sprite path as the cfg files write it (relative, no backslash; ".." is refused apart).
_SPRITE = re.compile(r"^units/(?:[A-Za-z0-9_+\-.]+/)*[A-Za-z0-9_+\-.]+\.png$")


# --------------------------------------------------------------------------- preprocessor


@dataclass
class Macro:
    """A ``#define``: positional parameters, optional ``#arg`` defaults, body text."""

    params: List[str]
    defaults: Dict[str, str] = field(default_factory=dict)
    body: str = ""


def _split_comment(line: str, in_string: bool) -> Tuple[str, Optional[str], bool]:
    """(code, text after an unquoted ``#`` or None, string state at the end of the code)."""
    for k, c in enumerate(line):
        if c == '"':
            in_string = not in_string  # a doubled quote inside a string toggles twice
        elif c == "#" and not in_string:
            return line[:k], line[k + 1 :], in_string
    return line, None, in_string


def preprocess(text: str, macros: Dict[str, Macro]) -> str:
    """Run the WML preprocessor over ``text``: record ``#define``s into ``macros``, expand calls.

    Conditionals see only macro names as defined symbols (no ``EASY``, ``MULTIPLAYER``...);
    file inclusions (``{path/to/dir}``) and unknown macros expand to nothing.
    """
    done: List[str] = []  # expanded text
    out: List[str] = []  # lines not yet expanded
    conds: List[bool] = []
    in_string = False
    define: Optional[Tuple[str, Macro, List[str]]] = None
    arg: Optional[Tuple[str, List[str]]] = None
    for line in text.split("\n"):
        started_in_string = in_string  # blank lines inside a string are part of it
        code, rest, in_string = _split_comment(line, in_string)
        m = _DIRECTIVE.match(rest) if rest is not None else None
        word, tail = (m.group(1), m.group(2).strip()) if m else ("", "")
        active = all(conds)
        sink = arg[1] if arg is not None else define[2] if define is not None else out
        if (code.strip() or started_in_string) and active:
            sink.append(code)
        if not word:
            continue
        if word in ("ifdef", "ifndef"):
            conds.append((tail.split()[0] in macros if tail else False) == (word == "ifdef"))
        elif word in ("ifhave", "ifnhave", "ifver", "ifnver"):
            conds.append(word.startswith("ifn"))  # no add-ons or versions to test against
        elif word == "else" and conds:
            conds[-1] = not conds[-1]
        elif word == "endif" and conds:
            conds.pop()
        elif not active:
            continue
        elif word in ("define", "undef") and tail and define is None:
            # expand what came before with the macros as they are now (files #undef at their end)
            done.append(expand("\n".join(out), macros))
            out.clear()
            if word == "define":
                parts = tail.split()
                define = (parts[0], Macro(params=parts[1:]), [])
            else:
                macros.pop(tail.split()[0], None)
        elif word == "arg" and define is not None and tail:
            arg = (tail.split()[0], [])
        elif word == "endarg" and define is not None and arg is not None:
            define[1].defaults[arg[0]] = "\n".join(arg[1]).strip()
            arg = None
        elif word == "enddef" and define is not None:
            define[1].body = "\n".join(define[2])
            macros[define[0]] = define[1]
            define, arg = None, None
    done.append(expand("\n".join(out), macros))
    return "\n".join(done)


def _matching_brace(text: str, start: int) -> int:
    depth = 0
    for k in range(start, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return -1


def _split_args(call: str) -> List[str]:
    """Macro call tokens: words, ``"quoted"`` (quotes kept), ``(grouped)`` (parentheses dropped), ``{...}``."""
    tokens: List[str] = []
    k, n = 0, len(call)
    while k < n:
        if call[k].isspace():
            k += 1
            continue
        start = k
        depth_paren = depth_brace = 0
        in_string = False
        grouped = call[k] == "("
        while k < n:
            c = call[k]
            if c == '"':
                in_string = not in_string
            elif not in_string:
                if c == "(":
                    depth_paren += 1
                elif c == ")":
                    depth_paren -= 1
                elif c == "{":
                    depth_brace += 1
                elif c == "}":
                    depth_brace -= 1
                elif c.isspace() and depth_paren <= 0 and depth_brace <= 0:
                    break
            k += 1
        token = call[start:k]
        if grouped and token.endswith(")"):
            token = token[1:-1]
        tokens.append(token)
    return tokens


def _substitute(body: str, values: Mapping[str, str]) -> str:
    if not values:
        return body
    pattern = re.compile(r"\{(" + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)) + r")\}")
    return pattern.sub(lambda m: values[m.group(1)], body)


def expand(text: str, macros: Mapping[str, Macro], depth: int = 0) -> str:
    """Expand every ``{MACRO args}`` of ``text`` (recursively, up to a fixed depth)."""
    if depth > _MAX_DEPTH or "{" not in text:
        return text
    out: List[str] = []
    k = 0
    while True:
        start = text.find("{", k)
        if start < 0:
            out.append(text[k:])
            break
        end = _matching_brace(text, start)
        if end < 0:  # an unclosed brace: keep the text as it is
            out.append(text[k:])
            break
        out.append(text[k:start])
        tokens = _split_args(text[start + 1 : end])
        macro = macros.get(tokens[0]) if tokens else None
        if macro is not None:
            named: Dict[str, str] = {}
            positional: List[str] = []
            for t in tokens[1:]:
                key, eq, val = t.partition("=")
                if eq and key in macro.defaults:  # NAME=value sets an optional #arg
                    named[key] = val
                else:
                    positional.append(t)
            values = {p: positional[i] if i < len(positional) else "" for i, p in enumerate(macro.params)}
            for key, default in macro.defaults.items():
                values[key] = named.get(key, _substitute(default, values))
            out.append(expand(_substitute(macro.body, values), macros, depth + 1))
        k = end + 1
    return "".join(out)


# --------------------------------------------------------------------------- WML parser


@dataclass
class Node:
    """A WML tag: its attributes (last value wins) and child tags in order."""

    tag: str
    attrs: Dict[str, str] = field(default_factory=dict)
    children: List["Node"] = field(default_factory=list)

    def walk(self, skip: Sequence[str] = ()) -> Iterator["Node"]:
        """This node and its descendants, not entering tags named in ``skip``."""
        yield self
        for c in self.children:
            if c.tag not in skip:
                yield from c.walk(skip)


def _read_value(text: str, k: int) -> Tuple[str, int]:
    """A WML value starting at ``k`` (just after ``=``) and the offset after it.

    Quoted pieces (``""`` escapes a quote; newlines allowed) and bare text join up to the
    end of the line; ``_`` before a string (translatable) is dropped and ``+`` followed by a
    string continues the value on the next line. A bare ``+`` (``wolf-great+red.png``) is text.
    """
    n = len(text)
    parts: List[str] = []

    def next_code(j: int) -> int:
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    while k < n:
        c = text[k]
        if c == '"':
            k += 1
            piece: List[str] = []
            while k < n:
                if text[k] == '"':
                    if k + 1 < n and text[k + 1] == '"':
                        piece.append('"')
                        k += 2
                        continue
                    k += 1
                    break
                piece.append(text[k])
                k += 1
            parts.append("".join(piece))
        elif c == "\n":
            break
        elif c == "_" and next_code(k + 1) < n and text[next_code(k + 1)] == '"' and "\n" not in text[k:next_code(k + 1)]:
            k = next_code(k + 1)
        elif c == "+" and next_code(k + 1) < n and text[next_code(k + 1)] in '"_':
            k = next_code(k + 1)
        elif c in " \t" and text[k:].lstrip(" \t")[:1] == "+":
            k = len(text) - len(text[k:].lstrip(" \t"))  # spaces before a `+` are not text
        else:
            parts.append(c)
            k += 1
    return "".join(parts).strip(), k


def parse_wml(text: str) -> Node:
    """Parse preprocessed WML into a tree of :class:`Node` (root tag ``""``)."""
    root = Node("")
    stack = [root]
    k, n = 0, len(text)
    while k < n:
        c = text[k]
        if c.isspace():
            k += 1
            continue
        if c == "[":
            end = text.find("]", k)
            if end < 0:
                break
            name = text[k + 1 : end].strip()
            k = end + 1
            if name.startswith("/"):
                if len(stack) > 1 and stack[-1].tag == name[1:]:
                    stack.pop()
                continue
            node = Node(name.lstrip("+"))
            stack[-1].children.append(node)
            stack.append(node)
            continue
        eq = text.find("=", k)
        nl = text.find("\n", k)
        nl = n if nl < 0 else nl
        if eq < 0 or eq > nl:  # not an attribute (leftovers of an unknown macro): skip the line
            k = nl + 1
            continue
        key = text[k:eq].strip()
        value, k = _read_value(text, eq + 1)
        stack[-1].attrs[key] = value
    return root


# --------------------------------------------------------------------------- frames


def _strip_image_functions(value: str) -> str:
    """Drop image-path functions (``~RC(magenta>red)``, ``~CHAN(...)`` with nested parentheses)."""
    while True:
        m = _IPF.search(value)
        if m is None:
            return value
        depth, k = 0, m.end() - 1
        while k < len(value):
            depth += value[k] == "("
            depth -= value[k] == ")"
            if depth == 0:
                break
            k += 1
        value = value[: m.start()] + value[k + 1 :]


def _split_outside_brackets(text: str, sep: str) -> List[str]:
    parts, depth, start = [], 0, 0
    for k, c in enumerate(text):
        depth += c == "["
        depth -= c == "]"
        if c == sep and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return parts


def _bracket_items(inner: str) -> List[str]:
    """``1~3,5,x*2`` -> ``1 2 3 5 x x`` (ranges keep the zero padding of their start)."""
    items: List[str] = []
    for item in inner.split(","):
        item = item.strip()
        rng = re.fullmatch(r"(\d+)~(\d+)", item)
        rep = re.fullmatch(r"(.*)\*(\d+)", item)
        if rng and abs(int(rng.group(2)) - int(rng.group(1))) <= 1000:
            a, b = int(rng.group(1)), int(rng.group(2))
            width = len(rng.group(1)) if rng.group(1).startswith("0") else 0
            step = 1 if b >= a else -1
            items += [str(i).zfill(width) for i in range(a, b + step, step)]
        elif rep and int(rep.group(2)) <= 1000:
            items += [rep.group(1)] * int(rep.group(2))
        else:
            items.append(item)
    return items


def expand_image_list(value: str) -> List[str]:
    """Image files named by a WML image value, in order (durations and image functions dropped).

    ``"a-[1~3].png:100,b.png"`` -> ``["a-1.png", "a-2.png", "a-3.png", "b.png"]``; several
    bracket groups in one entry expand in parallel, as Wesnoth does.
    """
    value = _strip_image_functions(value.replace("\n", " "))
    out: List[str] = []
    for piece in _split_outside_brackets(value, ","):
        path = _split_outside_brackets(piece, ":")[0].strip().strip('"').strip()
        groups = re.findall(r"\[([^\[\]]*)\]", path)
        if not groups:
            out.append(path)
            continue
        lists = [_bracket_items(g) for g in groups]
        template = re.sub(r"\[[^\[\]]*\]", "\0", path)
        if len({len(x) for x in lists}) == 1:
            combos: Iterable[Tuple[str, ...]] = zip(*lists)
        elif np.prod([len(x) for x in lists]) <= 10000:  # mismatched lists (the game refuses them)
            combos = product(*lists)
        else:
            continue
        for combo in combos:
            parts = template.split("\0")
            out.append("".join(p + (combo[i] if i < len(combo) else "") for i, p in enumerate(parts)))
    return [p for p in out if p]


@dataclass
class UnitType:
    """One ``[unit_type]``: identity, English description and every sprite it references."""

    id: str
    name: str
    race: str
    description: str
    image: str
    frames: List[str]  # image paths relative to data/core/images, sorted, unique
    source: str  # the .cfg it was defined in
    hidden: bool = False


def unit_types(tree: Node, source: str) -> List[UnitType]:
    """The ``[unit_type]`` tags of a parsed file with the sprites each references."""
    out: List[UnitType] = []
    for node in tree.walk():
        if node.tag != "unit_type" or not node.attrs.get("id"):
            continue
        frames = set()
        for sub in node.walk(skip=("variation", "base_unit")):
            if "image" in sub.attrs:
                frames.update(p for p in expand_image_list(sub.attrs["image"]) if _SPRITE.match(p) and ".." not in p.split("/"))
        a = node.attrs
        out.append(
            UnitType(
                id=a["id"].strip(),
                name=a.get("name", a["id"]).strip(),
                race=a.get("race", "").strip(),
                description=a.get("description", "").strip(),
                image=(expand_image_list(a.get("image", "")) or [""])[0],
                frames=sorted(frames),
                source=source,
                hidden=a.get("hide_help", "no").strip() in ("yes", "true"),
            )
        )
    return out


def read_units(core: Path) -> List[UnitType]:
    """Every unit type under ``core/units`` (macros from ``core/macros`` and the unit files).

    Args:
        core: a folder holding ``units/**.cfg`` and ``macros/*.cfg`` (``data/core`` of the package).
    """
    units_dir = core / "units"
    if not units_dir.is_dir():
        raise FileNotFoundError(f"Wesnoth unit definitions not found at {units_dir}; expected data/core/units/**.cfg")
    macros: Dict[str, Macro] = {}
    for cfg in sorted((core / "macros").glob("*.cfg")):
        preprocess(cfg.read_text(encoding="utf-8", errors="replace"), macros)
    out: List[UnitType] = []
    for f in sorted(units_dir.rglob("*.cfg")):
        # a unit file's own #defines stay in that file, as the game's #undef lines intend
        tree = parse_wml(preprocess(f.read_text(encoding="utf-8", errors="replace"), dict(macros)))
        out += unit_types(tree, f.relative_to(core).as_posix())
    seen: Dict[str, UnitType] = {}
    for u in out:
        seen.setdefault(u.id, u)  # the first definition wins, as in the game
    return sorted(seen.values(), key=lambda u: u.id)


def build_manifest(core: Path, images: Path) -> Dict[str, Any]:
    """The ``manifest.json`` content: unit types with their existing, unshared sprites."""
    units = read_units(core)
    users: Dict[str, int] = {}
    for u in units:
        for f in u.frames:
            users[f] = users.get(f, 0) + 1
    entries = []
    for u in units:
        own = [f for f in u.frames if users[f] == 1 and (images / f).is_file()]
        entries.append(
            {"id": u.id, "name": u.name, "race": u.race, "description": u.description, "image": u.image,
             "frames": own, "shared_frames": sum(users[f] > 1 for f in u.frames),
             "missing_frames": sum(users[f] == 1 and not (images / f).is_file() for f in u.frames),
             "hidden": u.hidden, "source": u.source}
        )  # fmt: skip
    return {"format": MANIFEST_FORMAT, "units": entries}


def prepare_wesnoth(
    work: Path, downloads: Path, deb: Optional[Any], log: Callable[[str], None], progress: bool
) -> Dict[str, Any]:
    """``gssf data prepare wesnoth``: unpack the unit files of the Debian package into ``work``."""
    from gssf.data import prepare as prep
    from gssf.data._deb import package_version

    path = prep._obtain_deb("wesnoth", downloads, deb, log, progress)
    wanted = (("units/", ".cfg", "cfg/"), ("macros/", ".cfg", "cfg/"), ("images/units/", ".png", ""))

    def select(name: str) -> Optional[str]:
        if name == COPYRIGHT:
            return "COPYRIGHT"
        if not name.startswith(DATA_PREFIX):
            return None
        rel = name[len(DATA_PREFIX) :]
        for folder, suffix, dest in wanted:
            if rel.startswith(folder) and rel.endswith(suffix):
                return dest + rel
        return None

    def select_all(name: str) -> Optional[str]:
        if name.startswith(LOCALE_PREFIX) and name.endswith("/LC_MESSAGES/wesnoth-units.mo"):
            lang = name[len(LOCALE_PREFIX) :].split("/", 1)[0]
            return f"locale/{lang}.mo" if lang in LANGUAGES else None
        return select(name)

    log(f"  unpacking the unit files of {path.name}")
    n = prep._extract_deb(path, work, select_all, progress, "wesnoth: unpack")
    manifest = build_manifest(work / "cfg", work / "images")
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    translations = build_translations(manifest["units"], work / "locale")
    (work / TRANSLATIONS).write_text(json.dumps(translations, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(work / "locale", ignore_errors=True)  # the catalogues are read: their descriptions are kept
    units = manifest["units"]
    kept = [u for u in units if not u["hidden"] and len(u["frames"]) >= DEFAULT_MIN_FRAMES]
    return {
        "sources": [{"registry": "debian", "package": PACKAGE, "version": package_version(path), "licence": "GPL-2+"}],
        "extracted_files": n,
        "translated_units": len(translations["units"]),
        "items": {
            "unit_types": len(units),
            "classes": len(kept),
            "frames": sum(len(u["frames"]) for u in kept),
            "with_description": sum(bool(u["description"]) for u in kept),
        },
    }


def build_translations(units: Sequence[Mapping[str, Any]], locale: Path) -> Dict[str, Any]:
    """``translations.json``: ``{"units": [{"id", "descriptions": {lang: text}}]}`` from the ``<lang>.mo`` catalogues.

    A description is looked up by its English text (the catalogue's message id); only
    translations that differ from the English text are kept. A catalogue that is not a
    valid ``.mo`` file, or larger than :data:`MAX_CATALOGUE_BYTES`, is refused.
    """
    import gettext

    out: Dict[str, Dict[str, str]] = {u["id"]: {} for u in units}
    for lang in LANGUAGES:
        path = locale / f"{lang}.mo"
        if not path.is_file():
            continue
        if path.stat().st_size > MAX_CATALOGUE_BYTES:
            raise GssfError(f"{path} is larger than {MAX_CATALOGUE_BYTES >> 20} MB; refused")
        try:
            with open(path, "rb") as fh:
                catalogue = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # gettext raises OSError on a bad magic number
            raise GssfError(f"{path} is not a readable gettext catalogue: {exc}") from None
        for u in units:
            english = u.get("description") or ""
            text = catalogue.get(english) if english else None
            if isinstance(text, str) and text.strip() and text != english:
                out[u["id"]][lang] = text
    units_out = [{"id": k, "descriptions": v} for k, v in out.items() if v]
    return {"format": TRANSLATIONS_FORMAT, "languages": list(LANGUAGES), "units": units_out}


# --------------------------------------------------------------------------- loader


def read_manifest(root: Path) -> List[Dict[str, Any]]:
    """The unit types of the prepared ``manifest.json``."""
    return read_prepared_json(root / MANIFEST, "wesnoth manifest", "units", MANIFEST_FORMAT, LAYOUT, "wesnoth")["units"]


def class_split(unit_id: str) -> str:
    """The split of unit type ``unit_id`` (SHA-1 of ``wesnoth:<id>``, 60 / 10 / 30)."""
    return assign_split(f"wesnoth:{unit_id}", DEFAULT_FRACTIONS)


def load_wesnoth(root: Path, split: str = "train", min_frames: int = DEFAULT_MIN_FRAMES) -> UniModalDataset:
    """``wesnoth``: class = unit type, images = its sprite frames; class-disjoint splits.

    Args:
        root: the prepared folder (``<data home>/wesnoth``).
        split: ``train``, ``val`` or ``test``.
        min_frames: keep unit types with at least this many sprites.

    Labels index the sorted ids of the kept unit types (the same in every split);
    ``label_names`` maps them to the units' names, ``meta["descriptions"]`` to their
    English descriptions and ``meta["unit_ids"]`` to their ids; ``categories`` is the race.
    """
    if split not in ("train", "val", "test"):
        raise GssfError(f"unknown split {split!r} for wesnoth; choose from train, val, test")
    if isinstance(min_frames, bool) or not isinstance(min_frames, int) or min_frames < 1:
        raise GssfError(f"min_frames must be a positive integer, got {min_frames!r}")
    units = [u for u in read_manifest(root) if not u.get("hidden") and len(u.get("frames", [])) >= min_frames]
    units.sort(key=lambda u: u["id"])
    images: List[ImageRecord] = []
    labels: List[int] = []
    races: List[str] = []
    names: Dict[int, str] = {}
    descriptions: Dict[int, str] = {}
    ids: Dict[int, str] = {}
    for label, u in enumerate(units):
        if class_split(u["id"]) != split:
            continue
        names[label], descriptions[label], ids[label] = u["name"], u["description"], u["id"]
        for rel in u["frames"]:
            path = root / "images" / rel
            if ".." in Path(rel).parts or not path.is_file():
                raise FileNotFoundError(f"wesnoth sprite not found at {path}; run `gssf data prepare wesnoth --force`")
            images.append(ImageRecord(id=rel, path=path))
            labels.append(label)
            races.append(u["race"])
    return UniModalDataset(
        name="wesnoth",
        split=split,
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        categories=races,
        label_names=names,
        root=root,
        meta={"descriptions": descriptions, "unit_ids": ids, "min_frames": min_frames},
    )


def load_wesnoth_descriptions(
    root: Path, split: str = "train", min_frames: int = DEFAULT_MIN_FRAMES, with_name: bool = False,
    languages: Sequence[str] = (),
) -> CrossModalDataset:
    """``wesnoth-descriptions``: a unit type's English description against its sprite frames.

    The classes and splits of :func:`load_wesnoth`; one caption per unit type (its
    description; ``with_name`` prefixes the unit's name, which makes the task much easier),
    relevant to every frame of the unit (``image_groups`` / ``text_groups`` = the label).
    Unit types without a description are left out. ``languages`` (codes of
    :data:`LANGUAGES`, or ``"all"``) adds the description's translations, after the English
    text, as more captions of the unit.
    """
    chosen = _languages(languages)
    translated = _read_translations(Path(root)) if chosen else {}
    uni = load_wesnoth(root, split, min_frames)
    texts = {}
    for label, text in uni.meta["descriptions"].items():
        text = " ".join(str(text).split())
        if not text:
            continue
        versions = [text]
        for lang in chosen:
            other = " ".join(str(translated.get(lang, {}).get(uni.meta["unit_ids"][label], "")).split())
            if other and other not in versions:
                versions.append(other)
        texts[label] = [f"{uni.label_names[label]}: {t}" if with_name else t for t in versions]
    return captioned_groups(
        uni, texts, "wesnoth-descriptions-multilingual" if chosen else "wesnoth-descriptions",
        {"min_frames": min_frames, "with_name": with_name, "unit_ids": uni.meta["unit_ids"], "languages": chosen,
         "names": {k: uni.label_names[k] for k in texts}},
    )  # fmt: skip


def load_wesnoth_descriptions_multilingual(
    root: Path, split: str = "train", min_frames: int = DEFAULT_MIN_FRAMES
) -> CrossModalDataset:
    """``wesnoth-descriptions-multilingual``: each unit's English description and its translations
    in the 34 languages of :data:`LANGUAGES` (as many as the game has: about 26 per unit), all
    relevant to every frame of the unit; for the multilingual text encoder ``e5-small``."""
    return load_wesnoth_descriptions(root, split, min_frames, languages="all")


def _languages(languages: Any) -> List[str]:
    if languages == "all":
        return list(LANGUAGES)
    chosen = [languages] if isinstance(languages, str) else list(languages)
    unknown = [x for x in chosen if x not in LANGUAGES]
    if unknown:
        raise GssfError(f"unknown language(s) {', '.join(map(str, unknown))}; choose from {', '.join(LANGUAGES)} or all")
    return chosen


def _read_translations(root: Path) -> Dict[str, Dict[str, str]]:
    """``{lang: {unit id: text}}`` of the prepared ``translations.json`` (checked)."""
    doc = read_prepared_json(root / TRANSLATIONS, "wesnoth translations", "units", TRANSLATIONS_FORMAT, LAYOUT, "wesnoth")
    out: Dict[str, Dict[str, str]] = {}
    for k, u in enumerate(doc["units"]):
        d = u.get("descriptions") if isinstance(u, dict) else None
        if not isinstance(u, dict) or not isinstance(u.get("id"), str) or not isinstance(d, dict) or not all(
            isinstance(a, str) and isinstance(b, str) and len(b) <= 1 << 16 for a, b in d.items()
        ):
            raise GssfError(
                f"{root / TRANSLATIONS}: unit entry {k} must be {{'id': str, 'descriptions': {{lang: text}}}}; "
                "run `gssf data prepare wesnoth --force`"
            )
        for lang, text in d.items():
            out.setdefault(lang, {})[u["id"]] = text
    return out
