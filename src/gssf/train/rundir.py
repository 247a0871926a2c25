"""The run folder: what may be in it, and one writer at a time.

A fresh run starts only in a folder that is missing or empty (a stale lock file of a
killed process aside): anything else — a ``config.yaml``, ``log.jsonl``, ``results.json``
or checkpoint files without a ``checkpoints/last.json``, or any file of the user's — is
refused with the list of what is there, so nothing is overwritten. A resumed run needs
``checkpoints/last.json``.

While a process trains into a folder it holds an exclusive ``flock`` on
``<run>/.gssf.lock``. The kernel drops the lock when the process dies (also on
``kill -9``), so a stale lock file never blocks a later resume; a live one makes a second
``gssf train`` into the same folder fail at once, before it writes anything.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Union

from gssf.errors import RunDirError, RunLockedError
from gssf.train.distributed import DistEnv, barrier, broadcast_object

__all__ = ["LOCK_NAME", "RunDirLock", "check_run_dir", "claim_run_dir", "run_dir_path"]

PathLike = Union[str, "os.PathLike[str]"]

#: The lock file inside a run folder (the only entry a fresh run tolerates).
LOCK_NAME = ".gssf.lock"


def run_dir_path(run_dir: Optional[PathLike]) -> Path:
    """``run_dir`` as a path; empty names and files are refused with a :class:`RunDirError`."""
    if run_dir is None or not str(os.fspath(run_dir)).strip():
        raise RunDirError("the run folder name is empty; pass --run-dir DIR (a new or empty folder)")
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run folder {path} is a file, not a folder; choose a folder for the run")
    return path


def _listing(path: Path, limit: int = 8) -> str:
    """The folder's entries (folders with their files, one level down), the lock file left out."""
    names: List[str] = []
    for p in sorted(path.iterdir()):
        if p.name == LOCK_NAME:
            continue
        if p.is_dir():
            inner = sorted(c.name for c in p.iterdir())
            names += [f"{p.name}/{c}" for c in inner] or [f"{p.name}/"]
        else:
            names.append(p.name)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_run_dir(run_dir: PathLike, resume: bool) -> Path:
    """Check that a run may start (``resume=False``) or continue (``resume=True``) in ``run_dir``.

    Raises :class:`RunDirError` naming the files that are in the way; returns the path.
    """
    path = run_dir_path(run_dir)
    has_last = (path / "checkpoints" / "last.json").is_file()
    if resume:
        if not has_last:
            raise FileNotFoundError(f"nothing to resume in {path}: no checkpoints/last.json")
        return path
    if has_last:
        raise RunDirError(
            f"run folder {path} already holds a run (checkpoints/last.json); "
            "pass --resume to continue it, or choose a new folder"
        )
    if path.is_dir():
        entries = [p for p in path.iterdir() if p.name != LOCK_NAME]
        if entries:
            raise RunDirError(
                f"run folder {path} is not empty and holds no resumable run: {_listing(path)}; "
                "a new run needs a new or empty folder (nothing here is overwritten)"
            )
    return path


class RunDirLock:
    """An exclusive, non-blocking lock on a run folder (``with RunDirLock(path): ...``).

    Creates the folder. Raises :class:`RunLockedError` naming the holder's pid when another
    live process holds it. Platforms without ``fcntl`` run unlocked.
    """

    def __init__(self, run_dir: PathLike) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: Optional[int] = None
        self._created_dir = self._created_file = False

    def acquire(self) -> "RunDirLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        existed = self.path.exists()
        self._created_dir = not self.path.parent.exists()
        self._created_file = not existed
        if not existed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunDirError(f"cannot create run folder {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"cannot write into run folder {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(
                f"run folder {self.path.parent} is in use by another gssf process (pid {holder}); "
                "wait for it to finish, or choose another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self, tidy: bool = False) -> None:
        """Drop the lock; ``tidy``: also remove the lock file (and the folder) this lock created,
        when nothing else was written next to it (a run that failed before it started)."""
        if self._fd is None:
            return
        if tidy and self._created_file and [p.name for p in self.path.parent.iterdir()] == [LOCK_NAME]:
            self.path.unlink()
            if self._created_dir:
                self.path.parent.rmdir()
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_run_dir(run_dir: PathLike, resume: bool, env: DistEnv) -> Optional[RunDirLock]:
    """Check ``run_dir`` (see :mod:`gssf.train.rundir`) and lock it; every process raises the same error.

    Only the main process checks and holds the lock (the others return ``None``). When a
    lock file is already there its lock is taken first, so a live run is reported as
    such; a folder without one is checked before anything is created in it.
    """
    error: Optional[BaseException] = None
    lock: Optional[RunDirLock] = None
    if env.is_main:
        try:
            path = run_dir_path(run_dir)
            lock = RunDirLock(path)
            if not lock.path.exists():
                check_run_dir(path, resume)  # nothing is created in a folder that is refused
            lock.acquire()
            check_run_dir(path, resume)  # again under the lock: another process may have started
        except (ValueError, OSError) as exc:
            if lock is not None:
                lock.release()
            error = exc
    error = broadcast_object(error)
    if error is not None:
        raise error
    barrier()
    return lock
