"""Image decoding shared by loaders and encoders (PIL and cairosvg imported lazily)."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from gssf.data.base import ImageRecord

ImageLike = Union["PILImage", str, "os.PathLike[str]", np.ndarray, "ImageRecord"]

#: Colour that transparent pixels are composited onto. Stamps and emoji are drawn on
#: transparency; black (what a plain ``convert("RGB")`` gives) would hide dark outlines.
BACKGROUND: Tuple[int, int, int] = (255, 255, 255)


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


def render_svg(path: Union[str, "os.PathLike[str]"], max_side: int = 384) -> bytes:
    """Render an SVG file to PNG bytes whose longer side is ``max_side`` pixels."""
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: the cairo C library is missing
        raise ImportError(
            "rendering SVG needs cairosvg and the cairo library: "
            "pip install cairosvg (and on Debian/Ubuntu: apt-get install libcairo2)"
        ) from exc
    data = Path(path).read_bytes()
    # Some Tux Paint SVGs reference external entities; ``unsafe`` lets cairosvg parse them.
    first = cairosvg.svg2png(bytestring=data, unsafe=True)
    Image = _pil()
    w, h = Image.open(io.BytesIO(first)).size
    scale = max_side / max(w, h, 1)
    if abs(scale - 1.0) < 1e-6:
        return first
    return cairosvg.svg2png(bytestring=data, unsafe=True, scale=scale)


def load_rgb(src: ImageLike, background: Tuple[int, int, int] = BACKGROUND) -> "PILImage":
    """Open ``src`` (PIL image, path, uint8 array or :class:`ImageRecord`) as an RGB PIL image.

    SVG files are rendered. A file that cannot be decoded raises ``ValueError`` naming it.
    """
    from gssf.data.base import ImageRecord

    Image = _pil()
    if isinstance(src, Image.Image):
        return to_rgb(src, background)
    if isinstance(src, ImageRecord):
        return src.load()
    if isinstance(src, np.ndarray):
        arr = np.asarray(src)
        if arr.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            return Image.fromarray(arr, mode="L").convert("RGB")
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            return to_rgb(Image.fromarray(arr), background)
        raise ValueError(f"image arrays must be (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    path = Path(src)
    if not path.is_file():
        raise FileNotFoundError(f"image not found at {path}")
    try:
        if path.suffix.lower() == ".svg":
            img = Image.open(io.BytesIO(render_svg(path)))
        else:
            img = Image.open(path)
        img.load()  # decode now, so a truncated file fails here and not in a worker
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    return to_rgb(img, background)
