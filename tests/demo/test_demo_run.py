"""`gssf demo` end to end on the real Tux Paint data (short: 2 similarities, 1 seed, 2 epochs)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import torch

from gssf.cli.main import main
from gssf.stats import read_summary

pytestmark = pytest.mark.slow


def test_demo_writes_report_and_reuses_finished_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
    images_show: Callable[[Path], int],
) -> None:
    monkeypatch.chdir(tmp_path)
    out = Path("demo")  # relative, like the default runs/demo: the report must not depend on the cwd
    argv = ["demo", "--seeds", "0", "--similarities", "cosine", "gssf", "--epochs", "2", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    # the shape issue 5 specifies: {"tasks": {TASK: {SIMILARITY: [{seed, val, test, params, train_seconds}]}}}
    assert list(report["tasks"]) == ["tux"]
    assert list(report["tasks"]["tux"]) == ["cosine", "gssf"]
    for sim, runs in report["tasks"]["tux"].items():
        (run,) = runs
        assert run["seed"] == 0 and run["train_seconds"] > 0
        assert run["params"] == (0 if sim == "cosine" else 256 + 16 * 16 * 16)
        for split in ("val", "test"):
            assert {"rsum", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10"} <= set(run[split])
        assert run["test"]["rsum"] > 10 * 6 * 0.44  # far above chance (R@K chance ~ K/229)
    page = (out / "report.html").read_text()
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figs == ["tux_gssf_learned_matrix.png", "tux_image_to_text_examples.png",
                    "tux_paired_difference_vs_cosine.png", "tux_test_metrics.png", "tux_text_to_image_examples.png",
                    "tux_training_curves.png"]
    assert all(f"title='figures/{f}'" in page for f in figs)
    assert images_show(out / "report.html") == len(figs)  # embedded, so they show wherever the page goes
    assert "task tux (test split, mean ± std over 1 seeds)" in (out / "report.txt").read_text()
    # statistics from the runs' per-query values: the CI of the mean and the paired difference to cosine
    stats = report["statistics"]["tux"]
    for sim, runs in report["tasks"]["tux"].items():
        assert stats[sim]["rsum"]["mean"] == pytest.approx(runs[0]["test"]["rsum"], abs=1e-9)
        assert stats[sim]["rsum"]["ci_low"] < stats[sim]["rsum"]["mean"] < stats[sim]["rsum"]["ci_high"]
    delta = report["tasks"]["tux"]["gssf"][0]["test"]["rsum"] - report["tasks"]["tux"]["cosine"][0]["test"]["rsum"]
    assert stats["gssf"]["rsum"]["delta"] == pytest.approx(delta, abs=1e-9)
    summary = read_summary(out / "summary.json")
    assert summary["command"] == "gssf demo --tasks tux --seeds 0 --similarities cosine gssf --set train.epochs=2"
    assert len(summary["rows"]) == 2 * 7 and {r["dataset"] for r in summary["rows"]} == {"tux"}
    # the learned parameters of the seed-0 checkpoint: gssf moved off cosine, cosine has none
    learned = report["tasks"]["tux"]["gssf"][0]["learned"]
    assert report["tasks"]["tux"]["cosine"][0]["learned"] is None and learned["norm_M_minus_I"] > 0
    assert learned["diagonal_min"] < 1 < learned["diagonal_max"] and learned["max_abs_block"] > 0
    assert report["meta"]["git_commit"] and len(report["meta"]["config_sha256"]) == 64
    assert f"config SHA-256: {report['meta']['config_sha256']}" in page
    capsys.readouterr()
    # a second call finds both runs finished with the same config and does not retrain
    assert main(argv) == 0
    finished = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[tux]")]
    assert len(finished) == 2 and all("(reused demo/tux/" in line for line in finished)  # one line per run
    def trained(rep: dict) -> dict:  # everything but the scoring time, which is re-measured on reuse
        return {s: [{k: v for k, v in r.items() if k != "score_seconds"} for r in runs]
                for s, runs in rep["tasks"]["tux"].items()}

    assert trained(json.loads((out / "report.json").read_text())) == trained(report)


def test_demo_rejects_unknown_task(capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--tasks", "nope"]) == 2
    assert "unknown demo task(s) ['nope']" in capsys.readouterr().err


def test_tune_chooses_each_learnable_members_lr_on_validation_only(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gssf.demo.tuning import lr_grid

    monkeypatch.chdir(tmp_path)
    argv = ["demo", "--seeds", "0", "--similarities", "cosine", "diagonal", "--epochs", "3", "--out", "demo",
            "--no-progress", "--no-figures", "--tune"]
    assert main(argv) == 0
    tuning = json.loads(Path("demo/tux/tuning.json").read_text())
    # cosine has nothing to tune; diagonal gets the grid around the preset's similarity lr (0.003)
    assert list(tuning["members"]) == ["diagonal"] and tuning["split"] == "val" and tuning["seed"] == 100
    member = tuning["members"]["diagonal"]
    assert member["grid"] == lr_grid(0.003) == [0.001, 0.003, 0.009] and len(member["val"]) == 3
    best = max(member["val"])
    assert member["val"][member["grid"].index(member["selected"])] == best
    assert member["val"][1] < best or member["selected"] == 0.003  # a tie keeps the preset's
    for lr in member["grid"]:  # tuning runs never read the test split
        assert json.loads(Path(f"demo/tux/tuning/diagonal/lr{lr:g}/results.json").read_text())["test"] is None
        key = json.loads(Path(f"demo/tux/tuning/diagonal/lr{lr:g}.demo.json").read_text())
        assert key["train"]["seed"] == 100 and key["optim"]["similarity_lr"] == lr and key["eval"]["test"] is False
    # the reporting run used the chosen lr; the report says what was tuned
    run_cfg = json.loads(Path("demo/tux/diagonal/seed0.demo.json").read_text())
    assert run_cfg["optim"]["similarity_lr"] == member["selected"] and run_cfg["train"]["seed"] == 0
    report = json.loads(Path("demo/report.json").read_text())
    assert report["tuning"]["tux"] == tuning and "diagonal" in report["meta"]["tuning"]
    assert read_summary(Path("demo/summary.json"))["command"].endswith("--tune")


def test_frozen_setting_starts_from_the_cosine_runs_towers(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tux-frozen: each seed loads the heads of tux's cosine run (trained first) and keeps them fixed."""
    from safetensors.torch import load_file

    monkeypatch.chdir(tmp_path)
    argv = ["demo", "--tasks", "tux-frozen", "--seeds", "0", "--similarities", "cosine", "gssf", "--epochs", "2",
            "--out", "demo", "--no-progress", "--no-figures"]
    assert main(argv) == 0
    source = Path("demo/tux/cosine/seed0")
    assert (source / "results.json").is_file()  # the towers' run, trained because it was missing
    report = json.loads(Path("demo/report.json").read_text())
    runs = report["tasks"]["tux-frozen"]
    # cosine on the frozen towers ranks exactly as the run that trained them
    assert runs["cosine"][0]["test"] == json.loads((source / "results.json").read_text())["test"]
    src = load_file(str(source / "checkpoints" / "best.safetensors"))
    got = load_file("demo/tux-frozen/gssf/seed0/checkpoints/best.safetensors")
    heads = [k for k in src if not k.startswith("model.similarity.") and k.startswith("model.")]
    assert heads and all(torch.equal(src[k], got[k]) for k in heads)
    assert runs["gssf"][0]["learned"]["norm_M_minus_I"] > 0
    rows = read_summary(Path("demo/summary.json"))["rows"]
    assert rows and {r["setting"] for r in rows} == {"frozen"} and {r["task"] for r in rows} == {"tux-frozen"}
    capsys.readouterr()
    assert main(argv) == 0  # everything reused
    assert all("(reused" in line for line in capsys.readouterr().out.splitlines() if line.startswith("[tux-frozen]"))
    # retraining the towers' run makes the frozen runs train again
    import shutil

    shutil.rmtree(source)
    Path("demo/tux/cosine/seed0.demo.json").unlink()
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[tux-frozen]")]
    assert len(lines) == 2 and not any("(reused" in line for line in lines)
