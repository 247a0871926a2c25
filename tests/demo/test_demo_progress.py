"""Demo progress: a tqdm bar only on a terminal, one plain line per finished run elsewhere."""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

from gssf.demo import run as demo_run
from gssf.demo.progress import RunProgress, is_terminal


class FakeTerminal(io.StringIO):
    """A text stream that says it is a TTY, to see what a terminal would get."""

    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_finished_run_is_one_line_and_nothing_else() -> None:
    lines: List[str] = []
    pipe = io.StringIO()
    with RunProgress(2, "runs", lines.append, stream=pipe) as bar:
        for i in range(2):
            bar.start(f"run {i}")
            bar.done(f"run {i} done")
    assert lines == ["run 0 done", "run 1 done"]
    assert pipe.getvalue() == ""  # no bar, no carriage returns in a log file


def test_on_a_terminal_a_bar_counts_the_runs_and_the_lines_still_come() -> None:
    lines: List[str] = []
    tty = FakeTerminal()
    with RunProgress(3, "demo runs", lines.append, stream=tty) as bar:
        bar.start("tux cosine seed 0")
        bar.done("first")
        bar.note("a summary")
        drawn = tty.getvalue()
    assert lines == ["first", "a summary"]
    assert "demo runs" in drawn and "1/3" in drawn and "tux cosine seed 0" in drawn


def test_no_progress_means_no_bar_even_on_a_terminal() -> None:
    lines: List[str] = []
    tty = FakeTerminal()
    with RunProgress(1, "runs", lines.append, enabled=False, stream=tty) as bar:
        bar.done("only line")
    assert lines == ["only line"] and tty.getvalue() == ""


def test_is_terminal_is_false_for_closed_and_odd_streams() -> None:
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(None) and not is_terminal(object())  # type: ignore[arg-type]
    assert is_terminal(FakeTerminal())


def _fake_training(monkeypatch: pytest.MonkeyPatch, fake_per_query: Callable[..., dict]) -> List[Tuple[str, int]]:
    """Replace data preparation, config loading and training by instant fakes; returns the runs made."""
    made: List[Tuple[str, int]] = []

    def load_config(preset: str, overrides: List[str]) -> Any:
        return dict(o.split("=", 1) for o in overrides)

    def train_one(cfg: Any, run_dir: Path, progress: bool) -> Tuple[dict, bool]:
        made.append((cfg["similarity.name"], int(cfg["train.seed"])))
        metrics = {k: 10.0 for k in ("rsum", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10")}
        res = {"val": metrics, "test": metrics, "params": 0, "train_seconds": 0.5, "score_seconds": 0.001,
               "test_per_query": fake_per_query(cfg["similarity.name"], int(cfg["train.seed"]))}
        return res, cfg["similarity.name"] == "cosine"

    monkeypatch.setattr("gssf.data.prepare.prepare_many", lambda names: None)
    monkeypatch.setattr("gssf.train.load_config", load_config)
    monkeypatch.setattr(demo_run, "_train_one", train_one)
    return made


@pytest.mark.parametrize("terminal", [False, True])
def test_run_demo_logs_one_line_per_finished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool, per_query_fake: Callable[..., dict]
) -> None:
    made = _fake_training(monkeypatch, per_query_fake)
    stderr = FakeTerminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    lines: List[str] = []
    demo_run.run_demo(seeds=(0, 1), similarities=("cosine", "gssf"), out_dir=tmp_path / "demo", figures=False,
                      log=lines.append)
    assert made == [("cosine", 0), ("cosine", 1), ("gssf", 0), ("gssf", 1)]
    run_lines = [line for line in lines if line.startswith("[tux]")]
    assert run_lines == [
        f"[tux] cosine seed 0: val rsum 10.00  test rsum 10.00  (reused {tmp_path / 'demo/tux/cosine/seed0'})",
        f"[tux] cosine seed 1: val rsum 10.00  test rsum 10.00  (reused {tmp_path / 'demo/tux/cosine/seed1'})",
        "[tux] gssf seed 0: val rsum 10.00  test rsum 10.00  (0.5 s)",
        "[tux] gssf seed 1: val rsum 10.00  test rsum 10.00  (0.5 s)",
    ]
    bar = stderr.getvalue()
    if terminal:
        assert "demo runs" in bar and "4/4" in bar
    else:
        assert bar == ""
