"""Image decoding shared by loaders and encoders (PIL and cairosvg imported lazily).

Every image file is untrusted input. :func:`open_image` refuses files larger than
:data:`MAX_IMAGE_BYTES` and images of more than :data:`MAX_IMAGE_PIXELS` decoded pixels
(decompression bombs) with a :class:`~gssf.errors.BadImageError` naming the file, and
decodes very large images at reduced size (JPEG ``draft``, integer ``reduce`` for other
formats) so that memory stays bounded. :func:`render_svg` renders in cairosvg's safe mode
after :func:`sanitize_svg` has removed or refused what safe mode does not cover (DOCTYPE
entities, reference fan-out bombs, gzip bombs); nothing is fetched from inside an image.

The limits are module attributes, read at each call: set them to change the policy
(``gssf.data.images.MAX_IMAGE_PIXELS = 200_000_000``).
"""
from __future__ import annotations

import base64
import io
import os
import re
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Protocol, Tuple, Union
from urllib.parse import unquote_to_bytes

import numpy as np

from gssf.errors import BadImageError, GssfError, UnsafeInputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


class LoadableImage(Protocol):
    """Anything that opens itself as an RGB PIL image, e.g. :class:`gssf.data.base.ImageRecord`."""

    def load(self) -> "PILImage": ...


ImageLike = Union["PILImage", str, "os.PathLike[str]", np.ndarray, LoadableImage]

#: Colour that transparent pixels are composited onto. Stamps and emoji are drawn on
#: transparency; black (what a plain ``convert("RGB")`` gives) would hide dark outlines.
BACKGROUND: Tuple[int, int, int] = (255, 255, 255)

#: Image files larger than this many bytes are refused before they are read.
MAX_IMAGE_BYTES: int = 256 * 2**20
#: Images with more pixels than this after draft decoding are refused (PIL's own default
#: warning threshold; PIL itself refuses twice as many, whatever this says).
MAX_IMAGE_PIXELS: int = 89_478_485
#: Images whose longer side is at least twice this are decoded at reduced size, to a
#: longer side between this and twice this (encoders work at a few hundred pixels).
DECODE_MAX_SIDE: int = 2048
#: SVG files (or their gzip-decompressed content) larger than this are refused.
MAX_SVG_BYTES: int = 16 * 2**20
#: Elements an SVG may draw, counting every ``<use>`` / ``href="#..."`` / ``url(#...)``
#: reference once per time it is drawn (entity and reference fan-out bombs).
MAX_SVG_ELEMENTS: int = 100_000
#: Nesting depth of an SVG, references included (cairosvg renders recursively).
MAX_SVG_DEPTH: int = 120

_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_URL_REF = re.compile(r"url\(\s*['\"]?#([^)'\"\s]+)")
_ENTITY_REF = re.compile(rb"&([A-Za-z_:][A-Za-z0-9_.:-]*);")
_EMPTY_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>'


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("images need Pillow: pip install 'gssf[data]'") from exc
    return Image


def to_rgb(img: "PILImage", background: Tuple[int, int, int] = BACKGROUND) -> "PILImage":
    """Convert any PIL mode to RGB, compositing transparency onto ``background``."""
    Image = _pil()
    if img.mode == "RGB":
        return img
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB")


def _read_limited(path: Path, limit: int, what: str, limit_name: str) -> bytes:
    """The bytes of ``path``, refusing files above ``limit`` before reading them."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise BadImageError(
                f"{what} {path} is {size} bytes, above the limit gssf.data.images.{limit_name} = {limit}"
            )
        return path.read_bytes()
    except OSError as exc:
        raise BadImageError(f"cannot read image {path}: {exc}") from exc


# --------------------------------------------------------------------------- SVG


def _scan_quoted(text: bytes, i: int) -> int:
    """Index just past the quoted string starting at ``text[i]`` (a quote)."""
    end = text.find(text[i : i + 1], i + 1)
    if end < 0:
        raise ValueError("unterminated quoted string")
    return end + 1


def _past(text: bytes, i: int, closer: bytes, what: str) -> int:
    """Index just past the first ``closer`` at or after ``i``."""
    end = text.find(closer, i)
    if end < 0:
        raise ValueError(f"unterminated {what} in DOCTYPE")
    return end + len(closer)


def _split_doctype(data: bytes) -> Optional[Tuple[int, int, bytes]]:
    """``(start, end, internal subset)`` of the DOCTYPE declaration, or None without one."""
    start = data.find(b"<!DOCTYPE")
    if start < 0:
        return None
    i, n, subset_start, subset = start + len(b"<!DOCTYPE"), len(data), -1, b""
    while i < n:
        c = data[i : i + 1]
        if c in (b'"', b"'"):
            i = _scan_quoted(data, i)
            continue
        if subset_start < 0 and c == b"[":
            subset_start = i + 1
            i = _subset_end(data, subset_start)
            subset = data[subset_start:i]
            i += 1
            continue
        if c == b">":
            return start, i + 1, subset
        i += 1
    raise ValueError("unterminated DOCTYPE")


def _subset_end(data: bytes, i: int) -> int:
    """Index of the ``]`` that closes an internal subset starting at ``i``."""
    n = len(data)
    while i < n:
        if data.startswith(b"<!--", i):
            i = _past(data, i + 4, b"-->", "comment")
            continue
        c = data[i : i + 1]
        if c in (b'"', b"'"):
            i = _scan_quoted(data, i)
            continue
        if c == b"]":
            return i
        i += 1
    raise ValueError("unterminated DOCTYPE internal subset")


def _declarations(subset: bytes) -> List[bytes]:
    """The ``<!...>`` declarations of an internal subset (comments and PIs dropped)."""
    out: List[bytes] = []
    i, n = 0, len(subset)
    while i < n:
        if subset.startswith(b"<!--", i):
            i = _past(subset, i + 4, b"-->", "comment")
            continue
        if subset.startswith(b"<?", i):
            i = _past(subset, i + 2, b"?>", "processing instruction")
            continue
        if subset.startswith(b"<!", i):
            j = i + 2
            while j < n and subset[j : j + 1] != b">":
                j = _scan_quoted(subset, j) if subset[j : j + 1] in (b'"', b"'") else j + 1
            out.append(subset[i : j + 1])
            i = j + 1
            continue
        if subset[i : i + 1] == b"%":
            raise ValueError("a parameter-entity reference in the DOCTYPE")
        i += 1
    return out


_ENTITY_DECL = re.compile(rb"<!ENTITY\s+(%\s*)?([^\s%&;<>]+)\s+(.*?)\s*>\Z", re.S)


def _internal_entities(subset: bytes, path: Path) -> Dict[bytes, bytes]:
    """The plain-text general entities of a DOCTYPE; anything that could fetch or expand refused."""
    entities: Dict[bytes, bytes] = {}
    for decl in _declarations(subset):
        if not decl.startswith(b"<!ENTITY"):
            continue  # ELEMENT / ATTLIST / NOTATION: validation only, dropped with the DOCTYPE
        m = _ENTITY_DECL.match(decl)
        if m is None:
            raise UnsafeInputError(f"SVG {path}: malformed entity declaration {decl[:80]!r}")
        name, body = m.group(2), m.group(3)
        if m.group(1):
            raise UnsafeInputError(f"SVG {path}: parameter entity {name.decode(errors='replace')!r} refused")
        if body[:1] not in (b'"', b"'") or _scan_quoted(body, 0) != len(body):
            raise UnsafeInputError(
                f"SVG {path}: external entity {name.decode(errors='replace')!r} refused (SYSTEM/PUBLIC reference)"
            )
        value = body[1:-1]
        if any(ch in value for ch in (b"&", b"%", b"<")):
            # References inside values are how entity bombs (billion laughs) grow.
            raise UnsafeInputError(
                f"SVG {path}: entity {name.decode(errors='replace')!r} refers to other entities or markup; refused"
            )
        entities[name] = value.replace(b'"', b"&quot;").replace(b"'", b"&apos;")
    return entities


def sanitize_svg(data: bytes, path: Union[str, "os.PathLike[str]"] = "<svg>") -> bytes:
    """SVG bytes ready for cairosvg's safe mode, or ``UnsafeInputError`` / ``BadImageError``.

    gzip content is decompressed up to :data:`MAX_SVG_BYTES`. A DOCTYPE is removed after
    its plain-text internal entities (Adobe Illustrator's ``&ns_svg;``) are expanded in
    place; parameter entities, external (SYSTEM/PUBLIC) entities and entities that refer to
    other entities are refused. The document must parse without a DTD and draw at most
    :data:`MAX_SVG_ELEMENTS` elements, references expanded, at most :data:`MAX_SVG_DEPTH`
    deep, without reference cycles.
    """
    p = Path(path)
    if data[:2] == b"\x1f\x8b":
        try:
            d = zlib.decompressobj(wbits=31)
            data = d.decompress(data, MAX_SVG_BYTES + 1)
        except zlib.error as exc:
            raise BadImageError(f"cannot read image {p}: damaged gzip data ({exc})") from exc
        if len(data) > MAX_SVG_BYTES or d.unconsumed_tail:
            raise UnsafeInputError(
                f"SVG {p} decompresses to more than gssf.data.images.MAX_SVG_BYTES = {MAX_SVG_BYTES} bytes"
            )
    try:
        doctype = _split_doctype(data)
        entities = _internal_entities(doctype[2], p) if doctype is not None else {}
    except ValueError as exc:
        if isinstance(exc, GssfError):
            raise
        raise UnsafeInputError(f"SVG {p}: malformed DOCTYPE ({exc}); refused") from exc
    if doctype is not None:
        data = data[: doctype[0]] + data[doctype[1] :]
    if entities:
        data = _expand_entities(data, entities, p)
    _check_svg_tree(data, p)
    return data


def _expand_entities(data: bytes, entities: Dict[bytes, bytes], path: Path) -> bytes:
    budget = [MAX_SVG_BYTES - len(data)]

    def sub(m: "re.Match[bytes]") -> bytes:
        value = entities.get(m.group(1))
        if value is None:
            return m.group(0)  # predefined (&amp; ...) or undefined: the XML parser decides
        budget[0] -= len(value) - len(m.group(0))
        if budget[0] < 0:
            raise UnsafeInputError(
                f"SVG {path}: entities expand past gssf.data.images.MAX_SVG_BYTES = {MAX_SVG_BYTES} bytes"
            )
        return value

    return _ENTITY_REF.sub(sub, data)


def _references(el: Any) -> List[str]:
    """Ids that element ``el`` draws or inherits from: ``href="#id"`` and ``url(#id)``."""
    refs: List[str] = []
    for key, value in el.attrib.items():
        if key in (_XLINK_HREF, "href"):
            if value.startswith("#"):
                refs.append(value[1:])
        elif "url(" in value:
            refs.extend(_URL_REF.findall(value))
    return refs


def _check_svg_tree(data: bytes, path: Path) -> None:
    """Parse without DTD/entities and bound the drawn size (see :func:`sanitize_svg`)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise UnsafeInputError(f"SVG {path}: {exc}; refused") from exc
    except (ParseError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"cannot read image {path}: not a well-formed SVG ({exc})") from exc
    elements = list(root.iter())
    if len(elements) > MAX_SVG_ELEMENTS:
        raise UnsafeInputError(
            f"SVG {path} has {len(elements)} elements, above gssf.data.images.MAX_SVG_ELEMENTS = {MAX_SVG_ELEMENTS}"
        )
    by_id = {el.get("id"): el for el in elements if el.get("id")}
    cost: Dict[int, Tuple[int, int]] = {}  # id(element) -> (elements drawn, depth)
    state: Dict[int, int] = {}  # 1: on the stack, 2: done

    def edges(el: Any) -> List[Any]:
        out = list(el)
        if _local(el.tag) != "a":  # <a href="#x"> is a hyperlink, not drawn content
            out.extend(by_id[ref] for ref in _references(el) if ref in by_id)
        return out

    # Iterative post-order walk: neither a deep document nor a long reference chain may
    # exhaust Python's recursion limit here.
    stack: List[Tuple[Any, List[Any]]] = [(root, edges(root))]
    state[id(root)] = 1
    while stack:
        el, todo = stack[-1]
        if todo:
            nxt = todo.pop()
            s = state.get(id(nxt))
            if s == 1:
                raise UnsafeInputError(f"SVG {path}: reference cycle through id {nxt.get('id')!r}; refused")
            if s is None:
                state[id(nxt)] = 1
                stack.append((nxt, edges(nxt)))
            continue
        stack.pop()
        n, depth = 1, 1
        for child in edges(el):
            cn, cd = cost[id(child)]
            n, depth = n + cn, max(depth, cd + 1)
        _check_drawn(n, depth, path)
        cost[id(el)] = (n, depth)
        state[id(el)] = 2
    # <style> rules may apply url(#id) to any element: count each such target once per
    # element (an upper bound; CSS selectors are not evaluated here).
    n, depth = cost[id(root)]
    for el in elements:
        if _local(el.tag) == "style":
            for ref in _URL_REF.findall(el.text or ""):
                if ref in by_id:
                    tn, td = cost[id(by_id[ref])]
                    n, depth = n + tn * len(elements), max(depth, depth + td)
    _check_drawn(n, depth, path)


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _check_drawn(n: int, depth: int, path: Path) -> None:
    if n > MAX_SVG_ELEMENTS:
        raise UnsafeInputError(
            f"SVG {path} would draw more than gssf.data.images.MAX_SVG_ELEMENTS = {MAX_SVG_ELEMENTS} "
            f"elements (references expanded, e.g. a <use> fan-out); refused"
        )
    if depth > MAX_SVG_DEPTH:
        raise UnsafeInputError(
            f"SVG {path} nests deeper than gssf.data.images.MAX_SVG_DEPTH = {MAX_SVG_DEPTH} levels; refused"
        )


def _check_embedded_raster(raw: bytes, path: Path) -> None:
    """Refuse an embedded raster image whose header announces too many pixels."""
    Image = _pil()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            w, h = Image.open(io.BytesIO(raw)).size
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"SVG {path} embeds an image that is too large ({exc})") from exc
    except Exception:  # noqa: BLE001 - not an image PIL knows: cairosvg will skip or fail on it
        return
    if w * h > MAX_IMAGE_PIXELS:
        raise BadImageError(
            f"SVG {path} embeds a {w} x {h} image, above gssf.data.images.MAX_IMAGE_PIXELS = {MAX_IMAGE_PIXELS}"
        )


def svg_url_fetcher(path: Union[str, "os.PathLike[str]"]) -> Callable[[str, str], bytes]:
    """A cairosvg ``url_fetcher`` that reads ``data:`` URLs only (checked like the file itself).

    Any other URL (``http:``, ``file:``, a relative name) gives an empty image: nothing is
    fetched from the network or the disk on behalf of an SVG.
    """
    p = Path(path)

    def fetch(url: str, resource_type: str) -> bytes:
        if not url.startswith("data:"):
            return _EMPTY_SVG
        header, _, payload = url[5:].partition(",")
        raw = unquote_to_bytes(payload)
        if header.endswith(";base64"):
            try:
                raw = base64.decodebytes(raw)
            except ValueError:
                return _EMPTY_SVG
        if b"<svg" in raw[:4096] or raw[:2] == b"\x1f\x8b":
            return sanitize_svg(raw, p)  # a nested SVG passes the same checks
        _check_embedded_raster(raw, p)
        return raw

    return fetch


def _cairosvg():
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: the cairo C library is missing
        raise ImportError(
            "rendering SVG needs cairosvg and the cairo library: "
            "pip install cairosvg (and on Debian/Ubuntu: apt-get install libcairo2)"
        ) from exc
    return cairosvg


class _NaturalSize(Exception):
    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        self.width, self.height = width, height


def _svg_natural_size(data: bytes, fetcher: Callable[[str, str], bytes]) -> Tuple[int, int]:
    """The pixel size cairosvg would render at scale 1, found without allocating the surface."""
    from cairosvg.surface import PNGSurface

    class _Probe(PNGSurface):
        def _create_surface(self, width: float, height: float) -> Any:
            # PNGSurface rounds the same way; stopping here keeps a huge width x height unallocated.
            raise _NaturalSize(int(round(width)), int(round(height)))

    try:
        _Probe.convert(bytestring=data, url_fetcher=fetcher)
    except _NaturalSize as size:
        return size.width, size.height
    raise ValueError("the SVG size is undefined")  # pragma: no cover - convert always creates a surface


def render_svg(path: Union[str, "os.PathLike[str]"], max_side: int = 384) -> bytes:
    """Render an SVG file to PNG bytes whose longer side is ``max_side`` pixels.

    Safe mode: no entities, no external files or URLs, bounded size (:func:`sanitize_svg`).
    Raises ``UnsafeInputError`` for refused content and ``BadImageError`` for an SVG that
    cannot be rendered, both naming the file.
    """
    cairosvg = _cairosvg()
    p = Path(path)
    data = sanitize_svg(_read_limited(p, MAX_SVG_BYTES, "SVG", "MAX_SVG_BYTES"), p)
    fetcher = svg_url_fetcher(p)
    try:
        w, h = _svg_natural_size(data, fetcher)
        if w <= 0 or h <= 0:
            raise BadImageError(f"cannot read image {p}: the SVG has no size ({w} x {h})")
        scale = max_side / max(w, h, 1)
        # svg2png does not pass url_fetcher on; the surface class does (and stays in safe mode).
        png = cairosvg.surface.PNGSurface.convert
        if abs(scale - 1.0) < 1e-6:
            return png(bytestring=data, url_fetcher=fetcher)
        return png(bytestring=data, url_fetcher=fetcher, scale=scale)
    except GssfError:
        raise
    except RecursionError as exc:
        raise UnsafeInputError(f"SVG {p} nests too deeply to render; refused") from exc
    except Exception as exc:  # noqa: BLE001 - cairosvg raises many types for bad documents
        raise BadImageError(f"cannot read image {p}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- raster


def open_image(path: Union[str, "os.PathLike[str]"]) -> "PILImage":
    """Decode the image file at ``path`` (any PIL format or SVG), within the limits above.

    Returns the decoded image in its own mode (not yet RGB). A file that is missing raises
    ``FileNotFoundError``; one that cannot be decoded, or is over a limit, raises
    ``BadImageError`` naming it.
    """
    Image = _pil()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image not found at {p}")
    if p.suffix.lower() in (".svg", ".svgz"):
        data = render_svg(p)
    else:
        data = b""
        try:
            size = p.stat().st_size
        except OSError as exc:
            raise BadImageError(f"cannot read image {p}: {exc}") from exc
        if size > MAX_IMAGE_BYTES:
            raise BadImageError(
                f"image {p} is {size} bytes, above the limit gssf.data.images.MAX_IMAGE_BYTES = {MAX_IMAGE_BYTES}"
            )
    try:
        with warnings.catch_warnings():
            # Our own limit below decides (after draft); PIL still refuses twice its default.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data else p)
            w, h = img.size
            longer = max(w, h)
            if img.format == "JPEG" and longer >= 2 * DECODE_MAX_SIDE:
                img.draft(None, (max(1, w * DECODE_MAX_SIDE // longer), max(1, h * DECODE_MAX_SIDE // longer)))
                w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise BadImageError(
                    f"image {p} is {w} x {h} pixels ({w * h / 1e6:.3g} Mpx), above the limit "
                    f"gssf.data.images.MAX_IMAGE_PIXELS = {MAX_IMAGE_PIXELS}"
                )
            img.load()  # decode now, so a truncated file fails here and not in a worker
    except GssfError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own hard stop, at twice its limit
        raise BadImageError(
            f"image {p} is a decompression bomb: {exc} (PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}; "
            f"gssf.data.images.MAX_IMAGE_PIXELS = {MAX_IMAGE_PIXELS})"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - PIL plugins raise many types for damaged files
        raise BadImageError(f"cannot read image {p}: {exc}") from exc
    return img


def _reduce_large(img: "PILImage") -> "PILImage":
    """Integer-reduce an RGB image whose longer side is at least ``2 * DECODE_MAX_SIDE``."""
    factor = max(img.size) // DECODE_MAX_SIDE
    return img.reduce(factor) if factor >= 2 else img


def load_rgb(src: ImageLike, background: Tuple[int, int, int] = BACKGROUND) -> "PILImage":
    """Open ``src`` (PIL image, path, uint8 array or :class:`ImageRecord`) as an RGB PIL image.

    SVG files are rendered. A file that cannot be decoded raises ``BadImageError`` (a
    ``ValueError``) naming it; a missing one ``FileNotFoundError``.
    """
    Image = _pil()
    if isinstance(src, Image.Image):
        return to_rgb(src, background)
    if not isinstance(src, (str, os.PathLike, np.ndarray)) and callable(getattr(src, "load", None)):
        return src.load()  # an ImageRecord (or any LoadableImage)
    if isinstance(src, np.ndarray):
        arr = np.asarray(src)
        if arr.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            return Image.fromarray(arr, mode="L").convert("RGB")
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            return to_rgb(Image.fromarray(arr), background)
        raise ValueError(f"image arrays must be (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    img = open_image(src)
    return _reduce_large(to_rgb(img, background))
