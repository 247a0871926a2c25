"""Read the files of a Debian package without dpkg and without root.

A ``.deb`` is an ``ar`` archive whose ``data.tar.*`` member holds the file tree. The
standard library reads ``ar`` (below) and tar with gzip, bzip2 or xz; zstd members
fall back to ``dpkg-deb --fsys-tarfile`` when it is installed.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

from gssf.errors import GssfError

_AR_MAGIC = b"!<arch>\n"


class _CountingReader(io.RawIOBase):
    """Read at most ``size`` bytes of ``fh``, reporting progress to ``on_read``."""

    def __init__(self, fh: BinaryIO, size: int, on_read: Optional[Callable[[int], None]]) -> None:
        self._fh, self._left, self._on_read = fh, size, on_read

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        data = self._fh.read(n)
        b[: len(data)] = data
        self._left -= len(data)
        if self._on_read is not None:
            self._on_read(len(data))
        return len(data)


def _find_data_member(fh: BinaryIO, path: Path) -> Tuple[str, int]:
    if fh.read(8) != _AR_MAGIC:
        raise GssfError(f"{path} is not a Debian package (no ar header)")
    while True:
        offset = fh.tell()
        header = fh.read(60)
        if len(header) < 60:
            raise GssfError(f"{path} has no data.tar member")
        try:
            if header[58:60] != b"`\n":
                raise ValueError("bad header terminator")
            name = header[:16].decode("ascii").strip().rstrip("/")
            size = int(header[48:58].decode("ascii").strip())
            if size < 0:
                raise ValueError(f"negative size {size}")
        except ValueError as exc:
            raise GssfError(f"{path} is not a Debian package (damaged ar member header at byte {offset}: {exc})") from None
        if name.startswith("data.tar"):
            return name, size
        fh.seek(size + (size % 2), io.SEEK_CUR)  # members are padded to even offsets


@contextmanager
def open_deb_data(path: Path, on_read: Optional[Callable[[int], None]] = None) -> Iterator[tarfile.TarFile]:
    """Yield the package's file tree as a streaming ``tarfile`` (members in archive order).

    ``on_read(n)`` is called with the number of compressed bytes consumed (progress bars).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        name, size = _find_data_member(fh, path)
        modes = {"data.tar": "r|", "data.tar.gz": "r|gz", "data.tar.xz": "r|xz", "data.tar.bz2": "r|bz2"}
        if name in modes:
            reader = io.BufferedReader(_CountingReader(fh, size, on_read), buffer_size=1 << 20)
            with tarfile.open(fileobj=reader, mode=modes[name]) as tar:
                yield tar
            return
    # zstd (newer Debian/Ubuntu) is not in this Python's standard library: ask dpkg-deb.
    if shutil.which("dpkg-deb") is None:
        raise GssfError(f"{path}: {name} needs dpkg-deb to unpack (apt-get install dpkg)")
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            yield tar
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait()


def package_version(path: Path) -> str:
    """The version part of a ``name_version_arch.deb`` file name (``~`` kept, ``%3a`` is ``:``)."""
    parts = Path(path).name[: -len(".deb")].split("_")
    return parts[1].replace("%3a", ":") if len(parts) >= 3 else "unknown"
