"""The demo report: statistics, table, JSON/HTML files and figures, on a synthetic report."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from gssf.demo import figures
from gssf.errors import BadImageError
from gssf.demo.report import format_table, mean_std, summarize, write_report


def fake_report() -> dict:
    def run(seed: int, base: float) -> dict:
        test = {"i2t_R@1": base + seed, "i2t_R@5": 2 * base, "i2t_R@10": 3 * base,
                "t2i_R@1": base, "t2i_R@5": 2 * base + seed, "t2i_R@10": 3 * base}
        test["rsum"] = sum(test.values())
        return {"seed": seed, "val": dict(test), "test": test, "params": 10, "train_seconds": 1.5,
                "score_seconds": 0.002}

    return {"tasks": {"tux": {"cosine": [run(s, 10.0) for s in range(3)],
                              "gssf": [run(s, 12.0) for s in range(3)]}},
            "meta": {"description": "synthetic", "seeds": [0, 1, 2]}}


def test_mean_std_is_the_sample_statistic() -> None:
    ms = mean_std([1.0, 2.0, 3.0])
    assert ms["mean"] == 2.0 and math.isclose(ms["std"], 1.0) and ms["n"] == 3
    assert mean_std([5.0])["std"] == 0.0


def test_summary_and_table() -> None:
    rep = fake_report()
    s = summarize(rep)
    assert s["tux"]["gssf"]["i2t_R@1"]["mean"] == pytest.approx(13.0)
    assert s["tux"]["cosine"]["i2t_R@1"]["std"] == pytest.approx(1.0)
    table = format_table(rep)
    assert "task tux (test split, mean ± std over 3 seeds)" in table
    gssf_line = next(line for line in table.splitlines() if line.startswith("gssf"))
    assert "13.0 ± 1.0*" in gssf_line  # best i2t_R@1 is marked


def test_write_report_files(tmp_path: Path) -> None:
    rep = fake_report()
    fig = figures.recall_bars(rep, "tux", tmp_path / "figures" / "tux_recall.png")
    paths = write_report(rep, tmp_path, figures={"tux": [fig]}, notes={"tux": "a note"})
    assert json.loads(paths["json"].read_text()) == rep
    page = paths["html"].read_text()
    assert "title='figures/tux_recall.png'" in page and "a note" in page and "<table>" in page
    assert Image.open(fig).size[0] > 300


def test_report_written_to_a_relative_folder_shows_its_figures_after_a_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images_show: Callable[[Path], int]
) -> None:
    """``--out runs/demo`` (relative): figures must not be linked relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    rep = fake_report()
    out = Path("runs") / "demo"  # relative, as the CLI's default is
    figs = [figures.recall_bars(rep, "tux", out / "figures" / "tux_recall.png"),
            figures.weight_heatmap(np.eye(16), out / "figures" / "tux_matrix.png", block_size=4, zoom=8)]
    write_report(rep, out, figures={"tux": figs})
    moved = tmp_path / "mailed" / "elsewhere"
    shutil.move(str(out), str(moved))
    monkeypatch.chdir(moved.parent)  # opened from somewhere else
    assert images_show(moved / "report.html") == 2
    # the page alone (no figures/ folder next to it) still shows them
    alone = tmp_path / "alone.html"
    shutil.copy(moved / "report.html", alone)
    shutil.rmtree(moved)
    assert images_show(alone) == 2


def test_a_figure_that_is_not_an_image_is_a_named_error(tmp_path: Path) -> None:
    bogus = tmp_path / "figures" / "notes.txt"
    bogus.parent.mkdir()
    bogus.write_text("not a picture")
    with pytest.raises(BadImageError, match=r"notes.txt is not an image file"):
        write_report(fake_report(), tmp_path, figures={"tux": [bogus]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures"]  # no partial report was written


def test_figures_render(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = np.eye(32) + np.kron(np.eye(4), rng.normal(0, 0.05, (8, 8)))
    p = figures.weight_heatmap(w, tmp_path / "w.png", block_size=8, zoom=16)
    assert Image.open(p).size[0] > 500
    hist = [[{"epoch": e, "loss": 1.0 / (e + 1), "rsum": 10.0 * e} for e in range(5)] for _ in range(2)]
    p = figures.training_curves({"cosine": hist, "gssf": hist}, tmp_path / "curves.png", metric="rsum")
    assert p.exists()
    imgs = []
    for i in range(3):
        path = tmp_path / f"im{i}.png"
        Image.new("RGBA", (20, 20), (255 * (i % 2), 0, 0, 128)).save(path)
        imgs.append(path)
    ex = [{"caption": "a red square", "images": imgs, "correct": [False, True, False], "rank": 2}]
    p = figures.retrieval_examples(ex, tmp_path / "ex.png", title="top-3")
    assert Image.open(p).size[1] > 100
