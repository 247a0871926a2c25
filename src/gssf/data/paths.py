"""Keep paths named by untrusted data inside their root.

Annotation files (``captions.jsonl``, Karpathy JSON, ``images.txt`` ...), package
archives and npm metadata name files by relative path. :class:`ContainedRoot` is the one
place that turns such a name into a path: absolute names, ``..`` that climbs out of the
root and symlinks that lead out of it are an :class:`~gssf.errors.UnsafeInputError`
naming the file and line (or entry) the name came from.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Dict, Union

from gssf.errors import GssfError, UnsafeInputError

PathLike = Union[str, "os.PathLike[str]"]


class ContainedRoot:
    """Resolve relative names inside ``root``; ``where`` in errors says who gave the name.

    The returned path is ``root / name`` as written (ids and displayed paths stay what the
    dataset says); the check is made on the real path, symlinks followed. Resolved
    folders are cached, so checking every image of a large split costs about one ``lstat``
    per file.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._real_dirs: Dict[str, str] = {}

    def _inside(self, real: str) -> bool:
        return real == self._real_root or real.startswith(self._real_root.rstrip(os.sep) + os.sep)

    def _real_dir(self, folder: Path) -> str:
        key = str(folder)
        if key not in self._real_dirs:
            self._real_dirs[key] = os.path.realpath(folder)
        return self._real_dirs[key]

    def path(self, name: object, where: str) -> Path:
        """``root / name``, or ``UnsafeInputError`` when ``name`` leads outside ``root``.

        ``name`` must be a non-empty relative path string (``/`` separated; ``\\`` is
        treated as a separator too, so a Windows-style ``..\\`` cannot slip through).
        """
        if not isinstance(name, str):
            raise GssfError(f"{where}: a path must be a string, got {type(name).__name__} {name!r}")
        if not name or "\0" in name:
            raise UnsafeInputError(f"{where}: invalid path {name!r} (empty or with a NUL byte)")
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or os.path.isabs(name):
            raise UnsafeInputError(f"{where}: absolute path {name!r} is not allowed; paths must be relative to {self.root}")
        parts = [p for p in pure.parts if p not in ("", ".")]
        depth = 0
        for p in parts:  # lexical check first: 'a/../../x' leaves the root whatever exists on disk
            depth += -1 if p == ".." else 1
            if depth < 0:
                raise UnsafeInputError(f"{where}: path {name!r} leaves its root {self.root}")
        if not parts:
            raise UnsafeInputError(f"{where}: path {name!r} names no file under {self.root}")
        candidate = self.root.joinpath(*parts)
        real_parent = self._real_dir(candidate.parent)
        real = os.path.join(real_parent, candidate.name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        if not self._inside(real_parent) or not self._inside(real):
            raise UnsafeInputError(
                f"{where}: path {name!r} leads outside its root {self.root} (to {real}, through a symlink)"
            )
        return candidate

    def check(self, path: PathLike, where: str) -> Path:
        """``path`` (already joined onto ``root``) itself, checked the same way as :meth:`path`."""
        p = Path(path)
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            raise UnsafeInputError(f"{where}: path {p} is not under its root {self.root}") from None
        return self.path(rel.as_posix(), where)


def contained_path(root: PathLike, name: object, where: str) -> Path:
    """One-off :meth:`ContainedRoot.path` (``root / name``, checked to stay inside ``root``)."""
    return ContainedRoot(root).path(name, where)
