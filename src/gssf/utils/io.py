"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

A crash at any point leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    Use it with writers that want a file name (``np.savez``, ``safetensors.save_file``,
    ``torch.save``). ``suffix`` lets writers that append an extension (``np.savez``
    adds ``.npz``) be given a name that already ends with it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    except OSError as exc:
        # Name the file the caller asked for, not the random temporary name (a read-only folder, a full disk).
        raise type(exc)(exc.errno, exc.strerror, str(target)) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> Path:
    """Serialise ``obj`` as JSON (keys in insertion order) and write it atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def sha256_file(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json_object(path: PathLike, written_by: str, max_bytes: int = 1 << 20, fmt: Any = None) -> dict:
    """The JSON object in ``path`` (a file another gssf command wrote, read as untrusted input).

    Raises ``FileNotFoundError`` naming what writes the file, and
    :class:`~gssf.errors.GssfError` for a file over ``max_bytes``, one that is not a JSON
    object, or (with ``fmt``) one whose ``"format"`` is not ``fmt``.
    """
    from gssf.errors import GssfError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no {p.name} at {p.parent} (a folder written by {written_by})")
    if p.stat().st_size > max_bytes:
        raise GssfError(f"{p} is larger than {max_bytes >> 20} MB; refused")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise GssfError(f"{p} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise GssfError(f"{p} holds a JSON {type(doc).__name__}, not an object ({written_by} writes one)")
    if fmt is not None and doc.get("format") != fmt:
        raise GssfError(f"{p}: format {doc.get('format')!r}, expected {fmt} (written by {written_by})")
    return doc
