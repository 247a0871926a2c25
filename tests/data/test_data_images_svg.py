"""SVG rendering in safe mode: nothing fetched, no entity or reference bombs."""
from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import List

import numpy as np
import pytest
from PIL import Image

import gssf_data_trees as trees
from gssf.data import images
from gssf.data.images import load_rgb, render_svg
from gssf.errors import BadImageError, UnsafeInputError

NS = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def _svg(tmp_path: Path, body: str, name: str = "x.svg", prolog: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f'{prolog}<svg {NS} width="40" height="20">{body}</svg>')
    return path


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Every URL cairosvg's own fetcher is asked for (file:, http:, data: alike)."""
    import cairosvg.url

    calls: List[str] = []
    real = cairosvg.url.urlopen

    def spy(request, *a, **kw):
        calls.append(getattr(request, "full_url", str(request)))
        return real(request, *a, **kw)

    monkeypatch.setattr(cairosvg.url, "urlopen", spy)
    return calls


def test_external_images_are_not_fetched(tmp_path: Path, fetches: List[str]) -> None:
    red = tmp_path / "secret.png"
    red.write_bytes(trees.png_bytes((255, 0, 0, 255), (40, 20)))
    body = (
        f'<image x="0" y="0" width="40" height="20" xlink:href="file://{red}"/>'
        '<image x="0" y="0" width="40" height="20" xlink:href="secret.png"/>'  # relative: next to the SVG or cwd
        '<image x="0" y="0" width="40" height="20" href="http://127.0.0.1:9/x.png"/>'
        '<use xlink:href="file:///etc/passwd#x"/>'
        '<style>@import url("http://127.0.0.1:9/evil.css");</style>'
    )
    path = _svg(tmp_path, body)
    img = load_rgb(path)
    assert fetches == []  # not even attempted
    assert np.asarray(img).min() == 255  # blank: none of the external pictures was drawn


def test_embedded_data_images_still_render(tmp_path: Path) -> None:
    import base64

    data = base64.b64encode(trees.png_bytes((0, 0, 255, 255), (4, 2))).decode()
    path = _svg(tmp_path, f'<image x="0" y="0" width="40" height="20" xlink:href="data:image/png;base64,{data}"/>')
    assert load_rgb(path).getpixel((200, 100)) == (0, 0, 255)


def test_embedded_image_over_the_pixel_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100)
    data = base64.b64encode(trees.png_bytes((0, 0, 255, 255), (20, 10))).decode()
    path = _svg(tmp_path, f'<image width="40" height="20" xlink:href="data:image/png;base64,{data}"/>')
    with pytest.raises(BadImageError, match=r"x\.svg embeds a 20 x 10 image, above .*MAX_IMAGE_PIXELS = 100"):
        render_svg(path)


def test_xxe_entity_is_refused_without_reading_the_file(tmp_path: Path, fetches: List[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    prolog = f'<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    path = _svg(tmp_path, '<text x="0" y="15">&xxe;</text>', prolog=prolog)
    with pytest.raises(UnsafeInputError, match=r"x\.svg: external entity 'xxe' refused"):
        render_svg(path)
    assert fetches == []


@pytest.mark.parametrize(
    "prolog",
    [
        # billion laughs: each entity ten times the previous one
        "<!DOCTYPE svg [<!ENTITY l0 'lol'>"
        + "".join(f"<!ENTITY l{i} '{f'&l{i - 1};' * 10}'>" for i in range(1, 10))
        + "]>",
        "<!DOCTYPE svg [<!ENTITY % pe 'x'> %pe;]>",  # parameter entities
        "<!DOCTYPE svg [<!ENTITY a '<g/>'>]>",  # markup smuggled in an entity
        "<!DOCTYPE svg [<!ENTITY a 'unterminated>]>",
    ],
)
def test_entity_tricks_are_refused_by_name(tmp_path: Path, prolog: str) -> None:
    path = _svg(tmp_path, '<text x="0" y="15">&l9;</text>', prolog=prolog)
    with pytest.raises(UnsafeInputError, match=r"x\.svg"):
        render_svg(path)


def test_quadratic_entity_blowup_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_SVG_BYTES", 100_000)
    prolog = f"<!DOCTYPE svg [<!ENTITY big '{'x' * 1000}'>]>"
    path = _svg(tmp_path, "<text>" + "&big;" * 200 + "</text>", prolog=prolog)  # 1.6 kB -> 200 kB
    with pytest.raises(UnsafeInputError, match="entities expand past .*MAX_SVG_BYTES"):
        render_svg(path)


def test_illustrator_namespace_entities_still_render(tmp_path: Path) -> None:
    # What two real Tux Paint stamps carry: plain-text entities, used in xmlns attributes.
    path = tmp_path / "ai.svg"
    path.write_text(
        "<?xml version='1.0'?>\n<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.1//EN' "
        "'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd' [\n"
        '  <!ENTITY ns_svg "http://www.w3.org/2000/svg">\n  <!-- a comment ] > -->\n]>\n'
        '<svg xmlns="&ns_svg;" width="40" height="20"><rect width="40" height="20" fill="#ff0000"/></svg>'
    )
    img = load_rgb(path)
    assert img.size == (384, 192) and img.getpixel((10, 10)) == (255, 0, 0)


def _fan_out(levels: int, width: int) -> str:
    """``levels`` groups, each drawing the previous one ``width`` times: width**levels rects."""
    defs = '<g id="g0"><rect width="1" height="1"/></g>'
    for i in range(1, levels + 1):
        defs += f'<g id="g{i}">' + f'<use xlink:href="#g{i - 1}"/>' * width + "</g>"
    return f"<defs>{defs}</defs><use xlink:href=\"#g{levels}\"/>"


def test_use_fan_out_bomb_is_refused_before_rendering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cairosvg.surface

    drawn: List[int] = []
    monkeypatch.setattr(cairosvg.surface.Surface, "draw", lambda self, node: drawn.append(1))
    path = _svg(tmp_path, _fan_out(levels=9, width=10))  # 10**9 rectangles from a 5 kB file
    with pytest.raises(UnsafeInputError, match=r"x\.svg would draw more than .*MAX_SVG_ELEMENTS.*<use> fan-out"):
        render_svg(path)
    assert drawn == []  # refused from the document alone: no time or memory spent rendering


def test_a_small_fan_out_renders(tmp_path: Path) -> None:
    path = _svg(tmp_path, _fan_out(levels=2, width=3))
    assert render_svg(path, max_side=40)[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "body, match",
    [
        ('<g id="a"><use xlink:href="#a"/></g>', "reference cycle through id 'a'"),
        ("<g>" * 200 + "</g>" * 200, "nests deeper than .*MAX_SVG_DEPTH"),
        ('<rect fill="url(#p)"/><pattern id="p"><rect fill="url(#p)"/></pattern>', "reference cycle through id 'p'"),
    ],
)
def test_cycles_and_deep_nesting_are_refused(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(UnsafeInputError, match=match):
        render_svg(_svg(tmp_path, body))


def test_gzip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_SVG_BYTES", 50_000)
    path = tmp_path / "bomb.svgz"
    path.write_bytes(gzip.compress(f"<svg {NS}>".encode() + b" " * 10_000_000 + b"</svg>"))
    assert path.stat().st_size < 50_000
    with pytest.raises(UnsafeInputError, match=r"bomb\.svgz decompresses to more than .*MAX_SVG_BYTES = 50000"):
        load_rgb(path)


def test_huge_declared_size_is_rendered_small(tmp_path: Path) -> None:
    # 100,000 x 50,000 px at scale 1 would be a 20 GB surface: only the final size is allocated.
    path = tmp_path / "wide.svg"
    path.write_text(f'<svg {NS} width="100000" height="50000"><rect width="100000" height="50000" fill="#00ff00"/></svg>')
    png = render_svg(path, max_side=64)
    img = Image.open(io.BytesIO(png))
    assert img.size == (64, 32) and img.convert("RGB").getpixel((5, 5)) == (0, 255, 0)


def test_malformed_svg_is_a_bad_image(tmp_path: Path) -> None:
    path = tmp_path / "broken.svg"
    path.write_text(f"<svg {NS}><rect></svg>")
    with pytest.raises(BadImageError, match=r"cannot read image .*broken\.svg: not a well-formed SVG"):
        load_rgb(path)
    path.write_text(f'<svg {NS} width="0" height="0"></svg>')
    with pytest.raises(BadImageError, match=r"broken\.svg: the SVG has no size"):
        load_rgb(path)
