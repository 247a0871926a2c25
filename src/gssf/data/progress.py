"""Progress reporting for long stages (unpacking, rendering, encoding).

On a terminal a stage gets a tqdm bar on stderr. Off a terminal (a pipe, a log file, CI)
bars would fill the output with carriage returns, so a stage prints at most one plain
line when it ends. Disabled, nothing is printed.
"""
from __future__ import annotations

import sys
from typing import Any, Optional, TextIO


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _OneLine(_Silent):
    """Counts silently and prints ``desc: N unit`` once, on close."""

    def __init__(self, desc: str, unit: str, stream: TextIO) -> None:
        self.desc, self.unit, self.stream, self.n, self.closed = desc, unit, stream, 0, False

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        amount = f"{self.n / 1e6:.1f} MB" if self.unit == "B" else f"{self.n} {self.unit}"
        print(f"{self.desc}: {amount}", file=self.stream, flush=True)


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an open terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(total: Optional[int], desc: str, unit: str = "it", enabled: bool = True, stream: Optional[TextIO] = None):
    """An object with ``update(n)`` and ``close()``: a tqdm bar on a terminal, else one line.

    ``stream`` defaults to ``sys.stderr`` (looked up at call time, so redirections apply).
    """
    if not enabled:
        return _Silent()
    out = stream if stream is not None else sys.stderr
    if is_terminal(out):
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", leave=False, file=out)
        except ImportError:
            pass
    return _OneLine(desc, unit, out)
