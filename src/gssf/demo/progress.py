"""Progress over the runs of the demo and the ablation: a bar on a terminal, plain lines elsewhere.

On a terminal (stderr is a TTY) a tqdm bar counts finished runs and names the current
one; off a terminal (a pipe, a CI log, a file) there is no bar, only one plain line per
finished run, so logs stay readable. The finished-run line is written in both cases
(above the bar on a terminal): it carries the run's result.
"""
from __future__ import annotations

import sys
from typing import IO, Any, Callable, Optional

__all__ = ["RunProgress", "is_terminal"]


def is_terminal(stream: Optional[IO[str]]) -> bool:
    """Whether ``stream`` is an open terminal (False for pipes, files, closed or missing streams)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty(), or a closed file
        return False


class RunProgress:
    """Progress of ``total`` runs; use as a context manager.

    Args:
        total: number of runs.
        desc: the bar's label.
        log: where finished-run lines go (``print`` by default in the demo).
        enabled: False never draws a bar (``--no-progress``).
        stream: the bar's stream; ``sys.stderr`` at construction when ``None``.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        log: Callable[[str], None],
        enabled: bool = True,
        stream: Optional[IO[str]] = None,
    ) -> None:
        self.log = log
        stream = sys.stderr if stream is None else stream
        self.bar: Any = None
        if enabled and is_terminal(stream):
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm is an optional dependency: plain lines then
                return
            # a run takes seconds to minutes: redraw on every one (tqdm's rate limit would skip some)
            self.bar = tqdm(total=total, desc=desc, unit="run", file=stream, leave=False, dynamic_ncols=True,
                            mininterval=0, miniters=1)

    def start(self, label: str) -> None:
        """A run begins: the bar shows its label (nothing is printed off a terminal)."""
        if self.bar is not None:
            self.bar.set_postfix_str(label)

    def note(self, line: str) -> None:
        """A line that is not a finished run (a summary): written above the bar if there is one."""
        if self.bar is None:
            self.log(line)
            return
        with self.bar.external_write_mode(file=self.bar.fp):  # clear the bar, write, redraw it
            self.log(line)

    def done(self, line: str) -> None:
        """A run finished: its one line is written and the bar advances."""
        self.note(line)
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "RunProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
