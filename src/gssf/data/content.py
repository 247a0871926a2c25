"""Content digests of image records: what feature caches are keyed on.

A cache keyed on file names alone lies as soon as an image is edited in place. Each
image here gets a digest of its bytes (BLAKE2b, 128 bits) or of its in-memory pixels.
Hashing every file on every call would cost minutes on a large dataset, so digests are
remembered in an index next to the cache together with the file's size, mtime, ctime,
inode and device: a file whose five values are all unchanged is taken as unchanged, and
any change (an edit, a copy, a ``touch``; ctime cannot be set back by a user) makes it be
hashed again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from gssf.errors import BadImageError

INDEX_FORMAT = 1
_CHUNK = 1 << 20


def _stat_key(st: os.stat_result) -> List[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _hash_file(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _hash_array(arr: Any) -> str:
    import numpy as np

    a = np.ascontiguousarray(arr)
    h = hashlib.blake2b(f"{a.dtype.str}{a.shape}".encode(), digest_size=16)
    h.update(a.tobytes())
    return h.hexdigest()


def _read_index(path: Optional[Path]) -> Dict[str, List[Any]]:
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        files = data["files"] if data.get("format") == INDEX_FORMAT else {}
        return files if isinstance(files, dict) else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # missing or damaged: everything is hashed again


def _write_index(path: Path, files: Dict[str, List[Any]]) -> None:
    from gssf.utils.io import atomic_write_text

    try:
        atomic_write_text(path, json.dumps({"format": INDEX_FORMAT, "files": files}, separators=(",", ":")))
    except OSError as exc:  # a read-only data home still gives correct (unremembered) digests
        print(f"gssf: cannot write the content index {path} ({exc}); images will be hashed again", file=sys.stderr)


def image_digests(
    images: Sequence[Any], index_path: Optional[Path] = None, max_bytes: Optional[int] = None, strict: bool = True
) -> List[str]:
    """One content digest per :class:`~gssf.data.base.ImageRecord`, in order.

    Args:
        images: records with a ``path`` or an ``array`` (neither: digest ``"none"``).
        index_path: JSON index of earlier digests (read, then rewritten when it changed).
        max_bytes: files larger than this are not hashed (their digest says so; decoding
            refuses them anyway).
        strict: a file that cannot be read raises (``FileNotFoundError`` / ``BadImageError``
            naming it); otherwise its digest records the reason, so the file is skipped later.
    """
    old = _read_index(index_path)
    new: Dict[str, List[Any]] = {}
    out: List[str] = []
    for rec in images:
        if rec.array is not None:
            out.append("array:" + _hash_array(rec.array))
            continue
        if rec.path is None:
            out.append("none")
            continue
        key = str(rec.path)
        try:
            st = os.stat(rec.path)
            if not os.path.isfile(rec.path):
                raise IsADirectoryError(f"not a regular file: {rec.path}")
            if max_bytes is not None and st.st_size > max_bytes:
                out.append(f"oversized:{st.st_size}")
                continue
            sk = _stat_key(st)
            entry = old.get(key)
            if isinstance(entry, list) and entry[:-1] == sk:
                digest = entry[-1]
            else:
                digest = _hash_file(rec.path)
            new[key] = sk + [digest]
            out.append(digest)
        except OSError as exc:
            if strict:
                if isinstance(exc, FileNotFoundError):
                    raise FileNotFoundError(f"image not found at {rec.path}") from exc
                raise BadImageError(f"cannot read image {rec.path}: {exc}") from exc
            out.append(f"unreadable:{type(exc).__name__}")
    if index_path is not None and new != {k: old.get(k) for k in new}:
        # Keep other entries (other subsets of the split) and replace ours.
        _write_index(index_path, {**old, **new})
    return out


def digest_of(ids: Sequence[str], digests: Sequence[str]) -> str:
    """One hash over ``(id, digest)`` pairs, in order."""
    h = hashlib.sha1()
    for i, d in zip(ids, digests):
        h.update(i.encode("utf-8"))
        h.update(b"\0")
        h.update(d.encode("ascii"))
        h.update(b"\0")
    return h.hexdigest()
