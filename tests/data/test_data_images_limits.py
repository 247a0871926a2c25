"""Raster images under limits: pixel and file-size caps, reduced-size decoding of large images."""
from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gssf.data import images
from gssf.data.images import load_rgb, open_image
from gssf.errors import BadImageError


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG declaring ``width`` x ``height`` RGBA pixels whose data stops after one row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\0" + b"\0" * (4 * width))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _noise(path: Path, size: tuple, fmt: str) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def test_600_mpx_png_is_refused_by_name_in_bounded_memory(tmp_path: Path) -> None:
    bomb = _png_header_only(tmp_path / "bomb.png", 30_000, 20_000)  # 600 Mpx RGBA: 2.4 GB decoded
    assert bomb.stat().st_size < 100_000
    # A child process (the same gssf: PYTHONPATH is inherited) whose address space is capped
    # well below what decoding would need.
    code = textwrap.dedent(
        f"""
        import resource
        from gssf.data.images import load_rgb
        from gssf.errors import BadImageError
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        try:
            load_rgb({str(bomb)!r})
        except BadImageError as exc:
            print("refused:", exc)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "refused:" in res.stdout and "bomb.png" in res.stdout and "decompression bomb" in res.stdout


def test_pixel_limit_is_a_named_error_and_can_be_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _noise(tmp_path / "wide.png", (300, 200), "PNG")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(BadImageError, match=r"wide\.png is 300 x 200 pixels .*MAX_IMAGE_PIXELS = 50000"):
        load_rgb(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 60_000)
    assert load_rgb(path).size == (300, 200)


def test_pil_decompression_bomb_error_is_a_bad_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # PIL's own hard limit (twice its MAX_IMAGE_PIXELS) refuses before ours; it still names the file.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = _noise(tmp_path / "pil.png", (100, 50), "PNG")
    with pytest.raises(BadImageError, match=r"pil\.png is a decompression bomb"):
        load_rgb(path)


def test_file_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _noise(tmp_path / "big.png", (64, 64), "PNG")
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(BadImageError, match=rf"big\.png is {path.stat().st_size} bytes, above .*MAX_IMAGE_BYTES = 1000"):
        load_rgb(path)


def test_large_jpeg_is_decoded_at_reduced_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "DECODE_MAX_SIDE", 64)
    jpeg = _noise(tmp_path / "big.jpg", (512, 384), "JPEG")
    png = _noise(tmp_path / "big.png", (512, 384), "PNG")
    # The JPEG decoder produces 1/8 of the pixels directly: it passes a pixel limit the full size would not.
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10_000)
    assert open_image(jpeg).size == (64, 48)
    assert load_rgb(jpeg).size == (64, 48)
    with pytest.raises(BadImageError, match=r"big\.png is 512 x 384 pixels"):
        load_rgb(png)  # PNG has no reduced decoding: the limit applies to its full size


def test_large_png_is_reduced_after_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "DECODE_MAX_SIDE", 64)
    png = _noise(tmp_path / "big.png", (300, 200), "PNG")
    img = load_rgb(png)
    assert img.size == (75, 50) and img.mode == "RGB"  # integer factor 4: longer side in [64, 128)
    assert load_rgb(_noise(tmp_path / "small.png", (127, 90), "PNG")).size == (127, 90)  # under 2 x 64: as is


def test_unreadable_files_are_bad_images(tmp_path: Path) -> None:
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(BadImageError, match=r"cannot read image .*text\.jpg"):
        load_rgb(tmp_path / "text.jpg")
    truncated = _noise(tmp_path / "cut.png", (64, 64), "PNG")
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(BadImageError, match=r"cannot read image .*cut\.png"):
        load_rgb(truncated)
