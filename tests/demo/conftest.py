"""Shared checks of the demo tests."""
from __future__ import annotations

import base64
import binascii
import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, List

import pytest
from PIL import Image


class _ImageSources(HTMLParser):
    """Collects the ``src`` of every ``<img>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: List[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def _images_show(page: Path) -> int:
    """Every ``<img>`` of ``page`` is a data URI of a valid image, or a relative file next to the page."""
    parser = _ImageSources()
    parser.feed(page.read_text(encoding="utf-8"))
    for src in parser.sources:
        if src.startswith("data:"):
            header, _, payload = src.partition(",")
            assert header == "data:image/png;base64", header
            try:
                data = base64.b64decode(payload, validate=True)
            except binascii.Error as exc:
                raise AssertionError(f"bad base64 in an <img> of {page}") from exc
            with Image.open(io.BytesIO(data)) as im:
                im.verify()  # raises on a truncated or corrupt PNG
                assert im.format == "PNG"
        else:
            assert not Path(src).is_absolute() and "://" not in src, src
            with Image.open(page.parent / src) as im:
                im.verify()
    return len(parser.sources)


@pytest.fixture
def images_show() -> Callable[[Path], int]:
    """``images_show(page)``: checks that every ``<img>`` of the HTML ``page`` shows; returns their number."""
    return _images_show
