"""The demo report: statistics, table, JSON/HTML files and figures, on a synthetic report."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

from gssf.demo import figures
from gssf.errors import BadImageError
from gssf.demo.report import format_learned, format_statistics, format_table, mean_std, summarize, write_report


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


# --------------------------------------------------------------------------- statistics, learned parameters
def _entry(mean: float, delta: float, lo: float, hi: float) -> dict:
    return {"mean": mean, "std": 1.0, "ci_low": mean - 2, "ci_high": mean + 2, "per_seed": [mean - 1, mean, mean + 1],
            "delta": delta, "delta_ci_low": lo, "delta_ci_high": hi,
            "delta_per_seed": [delta - 0.5, delta, delta + 0.5],
            "excludes_zero": lo > 0 or hi < 0, "n_boot": 100, "ci": 0.95}


def report_with_statistics() -> dict:
    rep = fake_report()
    rep["statistics"] = {"tux": {
        "cosine": {"rsum": _entry(60.0, 0.0, 0.0, 0.0), "i2t_R@1": _entry(11.0, 0.0, 0.0, 0.0)},
        "gssf": {"rsum": _entry(72.0, 12.0, 9.5, 14.25), "i2t_R@1": _entry(13.0, 2.0, -0.5, 4.0)},
    }}
    for run in rep["tasks"]["tux"]["gssf"]:
        run["learned"] = {"norm_M_minus_I": 0.0123, "diagonal_of": "w", "diagonal_min": 0.981, "diagonal_max": 1.042,
                          "diagonal_std": 0.0071, "max_abs_block": 0.00385, "source": "weight_matrix()"}
    for run in rep["tasks"]["tux"]["cosine"]:
        run["learned"] = None
    rep["meta"].update(command="gssf demo --tasks tux --seeds 0 1 2", git_commit="0123abc", config_sha256="feed42")
    return rep


def test_statistics_and_learned_parameters_in_the_text_report() -> None:
    text = format_statistics(report_with_statistics())
    assert "Paired difference to cosine, test split: Δ [95% CI]; † where the CI excludes 0" in text
    gssf = next(line for line in text.splitlines() if line.startswith("gssf") and "[" in line)
    assert "+12.0 [+9.5, +14.2]†" in gssf and "+2.0 [−0.5, +4.0]" in gssf and "+4.0]†" not in gssf
    assert "Test rsum seed by seed (seeds 0, 1, 2)" in text
    detail = [line for line in text.splitlines() if line.startswith("gssf")][-1]
    assert "72.0 ± 1.0" in detail and "[70.0, 74.0]" in detail and "71.0, 72.0, 73.0" in detail
    assert "+11.5, +12.0, +12.5" in detail
    learned = format_learned(report_with_statistics())
    row = next(line for line in learned.splitlines() if line.startswith("gssf"))
    assert row.split() == ["gssf", "0.0123", "w", "0.981", "1.042", "0.0071", "0.00385", "weight_matrix()"]
    assert "seed-0 checkpoint" in learned and not any(line.startswith("cosine") for line in learned.splitlines())


def test_html_report_shows_cis_marks_learned_parameters_and_provenance(tmp_path: Path) -> None:
    paths = write_report(report_with_statistics(), tmp_path)
    page = paths["html"].read_text()
    assert "<td class=sig>+12.0<br>[+9.5, +14.2]†</td>" in page and "<td>+2.0<br>[−0.5, +4.0]</td>" in page
    assert "<th>||M - I||_2</th>" in page and "<td>0.0123</td>" in page and "<td>0.00385</td>" in page
    assert "git commit: 0123abc" in page and "config SHA-256: feed42" in page
    assert "command: gssf demo --tasks tux --seeds 0 1 2" in page
    text = paths["txt"].read_text()
    assert "git commit: 0123abc" in text and "+12.0 [+9.5, +14.2]†" in text and "0.00385" in text


# --------------------------------------------------------------------------- figures, inspected before saving
@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The matplotlib figures the next figure functions draw (still saved as usual)."""
    figs: list = []
    save = figures._save

    def keep(fig, path):
        figs.append(fig)
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    return figs


def test_metric_panels_include_rsum_show_every_seed_and_zoom_only_where_needed(tmp_path: Path, drawn: list) -> None:
    rep = fake_report()
    figures.recall_bars(rep, "tux", tmp_path / "bars.png")
    panels = [ax for ax in drawn[0].axes if ax.get_visible() and ax.axison]
    titles = [ax.get_title() for ax in panels]
    assert [t.split()[0] for t in titles] == ["rsum", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5",
                                               "t2i_R@10"]
    rsum = panels[0]
    points = np.concatenate([c.get_offsets() for c in rsum.collections if isinstance(c, PathCollection)])
    expected = sorted(r["test"]["rsum"] for runs in rep["tasks"]["tux"].values() for r in runs)
    assert sorted(points[:, 1].tolist()) == pytest.approx(expected)  # one point per seed and member
    # rsum 120-148: starting at 0 would squash the differences
    assert titles[0] == "rsum  (axis not from 0)" and rsum.get_ylim()[0] > 100


def test_zoomed_limits_rule() -> None:
    lo, hi, zoomed = figures._zoomed_limits([200.0, 207.0, 212.0])
    assert zoomed and 190 < lo < 200 and 212 < hi < 220
    assert figures._zoomed_limits([1.0, 30.0])[2] is False
    assert figures._zoomed_limits([-2.0, 1.0])[2] is False


def test_paired_difference_plot_has_a_zero_line_cis_and_marks(tmp_path: Path, drawn: list) -> None:
    stats = report_with_statistics()["statistics"]["tux"]
    figures.paired_differences(stats, tmp_path / "delta.png", title="tux")
    rsum, r1 = [ax for ax in drawn[0].axes if ax.axison]
    assert rsum.get_title() == "Δ rsum vs cosine" and [t.get_text() for t in rsum.get_yticklabels()] == ["gssf"]
    assert any(tuple(line.get_xdata()) == (0.0, 0.0) for line in rsum.lines)  # the zero line
    assert [t.get_text() for t in rsum.texts] == ["†"] and len(r1.texts) == 0  # only rsum's CI excludes 0
    caps = sorted({round(float(x), 6) for line in rsum.lines for x in np.atleast_1d(line.get_xdata())} - {0.0})
    assert 9.5 in caps and 14.25 in caps  # the CI's ends
    assert Image.open(tmp_path / "delta.png").size[0] > 400


def test_side_by_side_galleries_in_both_directions(tmp_path: Path, drawn: list) -> None:
    imgs = []
    for i in range(3):
        path = tmp_path / f"im{i}.png"
        Image.new("RGBA", (20, 20), (80 * i, 0, 0, 255)).save(path)
        imgs.append(str(path))
    t2i = [{"query": "a red square", "truth": imgs[1], "results": {
        "cosine": {"items": imgs, "correct": [False, True, False], "rank": 2},
        "gssf": {"items": imgs[::-1], "correct": [False, True, False], "rank": 2}}}]
    figures.retrieval_side_by_side(t2i, tmp_path / "t2i.png", kind="images", title="t2i")
    assert len(drawn[-1].axes) == 1 + 2 * 3  # the correct image, then three results per member
    labels = [ax.get_ylabel() for ax in drawn[-1].axes if ax.get_ylabel()]
    assert labels == ["cosine\nrank 2", "gssf\nrank 2"] and drawn[-1].axes[0].get_title() == "“a red square”"
    i2t = [{"query": imgs[0], "truth": "a square", "results": {
        "cosine": {"items": ["a circle", "a square"], "correct": [False, True], "rank": 2},
        "gssf": {"items": ["a square", "a circle"], "correct": [True, False], "rank": 1}}}]
    figures.retrieval_side_by_side(i2t, tmp_path / "i2t.png", kind="captions")
    texts = [(t.get_text(), t.get_color()) for ax in drawn[-1].axes for t in ax.texts]
    assert texts == [("#1 a circle", "black"), ("#2 ✓ a square", "green"), ("#1 ✓ a square", "green"),
                     ("#2 a circle", "black")]
    assert "correct: “a square”" in drawn[-1].axes[0].get_xlabel()
    with pytest.raises(ValueError, match="kind must be 'images' or 'captions'"):
        figures.retrieval_side_by_side(i2t, tmp_path / "x.png", kind="videos")
