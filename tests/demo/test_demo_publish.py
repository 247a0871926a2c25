"""summary.json from the demo and its publication into docs/ (a fake demo: training replaced)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

from gssf.cli import demo_cmd
from gssf.cli.main import main
from gssf.demo import run as demo_run
from gssf.demo.publish import BEGIN, END, generated_section, publish_summary, replace_generated_section
from gssf.errors import SummaryError
from gssf.stats import ROW_KEYS, read_summary, render_results_markdown

FakeDemo = Callable[..., List[Tuple[str, int]]]
PAGE = (f"# Results\n\nHand-written introduction.\n\n{BEGIN}\nold generated text\n{END}\n\n"
        "## Hand-written rest\n\nkept.\n")


def _docs(tmp_path: Path, page: str = PAGE) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "results.md").write_text(page, encoding="utf-8")
    return docs


def test_demo_writes_summary_json_with_ci_rows_for_every_member_and_metric(tmp_path: Path, fake_demo: FakeDemo) -> None:
    fake_demo({"gssf": 5})
    report = demo_run.run_demo(seeds=(0, 1, 2), similarities=("cosine", "gssf"), out_dir=tmp_path / "demo",
                               figures=False, log=lambda line: None, n_boot=200)
    summary = read_summary(tmp_path / "demo" / "summary.json")
    assert summary["command"] == "gssf demo --tasks tux --seeds 0 1 2 --similarities cosine gssf"
    assert summary["git_commit"] == report["meta"]["git_commit"] and summary["git_commit"]
    metrics = ["rsum", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10"]
    assert [(r["metric"], r["similarity"]) for r in summary["rows"]] == [(m, s) for m in metrics
                                                                         for s in ("cosine", "gssf")]
    for row in summary["rows"]:
        assert list(row) == [*ROW_KEYS, "val_mean"]  # the validation mean over seeds: a choice reads it
        runs = report["tasks"]["tux"][row["similarity"]]
        assert row["val_mean"] == pytest.approx(sum(r["val"][row["metric"]] for r in runs) / len(runs))
        assert row["task"] == "tux" and row["setting"] == "head" and row["dataset"] == "tux"
        assert row["seeds"] == [0, 1, 2] and row["ci_low"] <= row["mean"] <= row["ci_high"]
        e = report["statistics"]["tux"][row["similarity"]][row["metric"]]
        assert (row["mean"], row["delta_vs_cosine"]) == (e["mean"], e["delta"])
        assert (row["delta_ci_low"], row["delta_ci_high"]) == (e["delta_ci_low"], e["delta_ci_high"])
    rsum = {r["similarity"]: r for r in summary["rows"] if r["metric"] == "rsum"}
    assert rsum["cosine"]["delta_vs_cosine"] == 0.0 and rsum["gssf"]["delta_ci_low"] > 0  # five ranks better
    assert rsum["gssf"]["params"] == 4352 and rsum["cosine"]["params"] == 0
    # the mean of the rows is that of the runs' test metrics
    runs = report["tasks"]["tux"]["gssf"]
    assert rsum["gssf"]["mean"] == pytest.approx(sum(r["test"]["rsum"] for r in runs) / 3)


def test_cosine_always_runs_as_the_baseline(tmp_path: Path, fake_demo: FakeDemo) -> None:
    made = fake_demo()
    report = demo_run.run_demo(seeds=(0,), similarities=("gssf",), out_dir=tmp_path / "demo", figures=False,
                               log=lambda line: None, n_boot=50)
    assert made == [("cosine", 0), ("gssf", 0)] and list(report["statistics"]["tux"]) == ["cosine", "gssf"]


def test_publish_round_trip_rewrites_only_the_marked_section(tmp_path: Path, fake_demo: FakeDemo) -> None:
    fake_demo({"gssf": 3})
    docs = _docs(tmp_path)
    kwargs: Any = dict(seeds=(0, 1), similarities=("cosine", "gssf"), out_dir=tmp_path / "demo", figures=False,
                       log=lambda line: None, n_boot=100, publish=docs)
    demo_run.run_demo(**kwargs)
    published = read_summary(docs / "results" / "summary.json")
    assert published == read_summary(tmp_path / "demo" / "summary.json")
    page = (docs / "results.md").read_text(encoding="utf-8")
    head, rest = PAGE.split(BEGIN)
    assert page.startswith(head + BEGIN + "\n") and page.endswith(END + rest.split(END)[1])
    assert "old generated text" not in page
    section = page.split(BEGIN)[1].split(END)[0]
    assert section.strip() == generated_section(published).strip()
    # the generated tables are those of gssf.stats, one heading level down
    assert "## Every benchmark" in section and "\n### tux · tux · head\n" in section
    table = [line for line in render_results_markdown(published).splitlines() if line.startswith("| gssf | rsum")]
    assert table and table[0] in section
    # publishing the same summary again changes nothing
    publish_summary(tmp_path / "demo" / "summary.json", docs)
    assert (docs / "results.md").read_text(encoding="utf-8") == page


@pytest.mark.parametrize(
    "page, message",
    [
        ("# Results\nno markers\n", r"results.md must hold the line <!-- summary:begin --> exactly once \(found 0\)"),
        (f"{BEGIN}\n{BEGIN}\n{END}\n", r"<!-- summary:begin --> exactly once \(found 2\)"),
        (f"{END}\ntext\n{BEGIN}\n", r"<!-- summary:end --> \(line 1\) comes before <!-- summary:begin --> \(line 3\)"),
    ],
)
def test_a_results_page_without_proper_markers_stops_the_demo_before_training(
    tmp_path: Path, fake_demo: FakeDemo, page: str, message: str
) -> None:
    made = fake_demo()
    docs = _docs(tmp_path, page)
    with pytest.raises(SummaryError, match=message):
        demo_run.run_demo(seeds=(0,), out_dir=tmp_path / "demo", figures=False, log=lambda line: None, publish=docs)
    assert made == [] and not (tmp_path / "demo").exists() and not (docs / "results").exists()
    assert (docs / "results.md").read_text(encoding="utf-8") == page  # untouched


def test_publish_into_a_folder_without_results_md_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(SummaryError, match=r"nowhere.results.md does not exist: --publish takes the docs folder"):
        demo_run.run_demo(seeds=(0,), out_dir=tmp_path / "demo", publish=tmp_path / "nowhere", log=lambda s: None)


def test_replace_generated_section_keeps_what_surrounds_it() -> None:
    text = f"a\n{BEGIN}\nold\n{END}\nb\n"
    assert replace_generated_section(text, "new") == f"a\n{BEGIN}\n\nnew\n\n{END}\nb\n"


def test_cli_publish_and_the_recorded_command(tmp_path: Path, fake_demo: FakeDemo, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    fake_demo()
    monkeypatch.setattr(demo_cmd, "require_train_extra", lambda what: None)
    docs = _docs(tmp_path)
    argv = ["demo", "--seeds", "0", "1", "--similarities", "cosine", "gssf", "--no-figures", "--no-progress",
            "--set", "train.epochs=2", "--out", str(tmp_path / "demo"), "--publish", str(docs)]
    assert main(argv) == 0
    summary = json.loads((docs / "results" / "summary.json").read_text())
    assert summary["command"] == ("gssf demo --tasks tux --seeds 0 1 --similarities cosine gssf "
                                  "--set train.epochs=2")
    out = capsys.readouterr().out
    assert f"published: {docs / 'results.md'}" in out and "Paired difference to cosine" in out


def test_the_default_seeds_are_five_and_the_cli_repeats_them() -> None:
    assert demo_run.DEFAULT_SEEDS == (0, 1, 2, 3, 4) == demo_cmd._DEFAULT_SEEDS
    args = demo_cmd.add_parser(argparse.ArgumentParser().add_subparsers()).parse_args([])
    assert args.seeds == [0, 1, 2, 3, 4] and args.publish is None


def _pays_row(task: str, setting: str, sim: str, delta: float, lo: float, hi: float, metric: str, params: int = 10):
    return dict(task=task, setting=setting, dataset=task, similarity=sim, metric=metric, seeds=[0, 1, 2, 3, 4],
                mean=50.0 + delta, std=1.0, ci_low=48.0 + delta, ci_high=52.0 + delta, delta_vs_cosine=delta,
                delta_ci_low=lo, delta_ci_high=hi, params=params)


def test_where_gssf_pays_table_lists_frozen_first_and_says_what_the_cis_say(tmp_path: Path) -> None:
    from gssf.demo.publish import PAYS_BEGIN, PAYS_END, pays_table

    rows = [
        _pays_row("tux", "head", "cosine", 0, 0, 0, "rsum", 0), _pays_row("tux", "head", "gssf", -5, -10, 1, "rsum"),
        _pays_row("tux", "head", "diagonal", 0.1, -2, 2, "rsum"),
        _pays_row("emoji-reid", "head", "cosine", 0, 0, 0, "mAP", 0),
        _pays_row("emoji-reid", "head", "gssf", -1.4, -2.4, -0.6, "mAP"),
        _pays_row("emoji-reid-frozen", "frozen", "cosine", 0, 0, 0, "mAP", 0),
        _pays_row("emoji-reid-frozen", "frozen", "gssf", 9.0, 8.0, 10.0, "mAP", 104_960),
        _pays_row("emoji-reid-frozen", "frozen", "gssf", 1.0, 0.5, 1.5, "R@1", 104_960),  # not the main metric
    ]
    summary = {"command": "c", "generated": "g", "git_commit": "x", "rows": rows}
    lines = pays_table(summary).splitlines()
    assert [line.split(" | ")[1] for line in lines[2:]] == ["emoji-reid-frozen", "tux", "emoji-reid"]
    # rows without val_mean: no validation-based choice to show
    assert lines[2].startswith("| frozen | emoji-reid-frozen | mAP | +9.0 [+8.0, +10.0] † | — | gssf, +9.0 [+8.0, +10.0] †")
    assert "| 104,960 | " in lines[2] and lines[2].endswith("| gssf above cosine; gssf too |")
    assert "| diagonal, +0.1 [-2.0, +2.0] |" in lines[3] and lines[3].endswith("(CIs include 0) |")
    assert lines[4].endswith("| every learned member below cosine |")
    # with val_mean, the member with the best validation mean is shown with its test difference
    # (cosine included: then nothing changes), whatever the test split says
    val = {"cosine": 60.0, "gssf": 61.0, "diagonal": 62.0}
    tux = [{**r, "val_mean": val[r["similarity"]]} for r in rows if r["task"] == "tux"]
    line = pays_table({**summary, "rows": tux}).splitlines()[2]
    assert "| diagonal, +0.1 [-2.0, +2.0] | diagonal, +0.1 [-2.0, +2.0] |" in line
    val["diagonal"] = 59.0
    val["gssf"] = 58.0
    tux = [{**r, "val_mean": val[r["similarity"]]} for r in rows if r["task"] == "tux"]
    assert "| cosine (no change) | diagonal," in pays_table({**summary, "rows": tux}).splitlines()[2]
    # publishing writes it between the markers of results.md and of the README beside the docs folder
    docs = _docs(tmp_path, PAGE + f"\n{PAYS_BEGIN}\nold\n{PAYS_END}\n")
    (tmp_path / "README.md").write_text(f"# r\n{PAYS_BEGIN}\n{PAYS_END}\nend\n", encoding="utf-8")
    from gssf.stats import write_summary

    src = write_summary(rows, tmp_path / "s.json", command="c", generated="g", git_commit="x")
    out = publish_summary(src, docs)
    assert set(out) == {"summary", "page", "readme"}
    for path in (docs / "results.md", tmp_path / "README.md"):
        text = path.read_text(encoding="utf-8")
        assert pays_table(summary).strip() in text and "old" not in text.split(PAYS_BEGIN)[1].split(PAYS_END)[0]


def test_the_settings_suite_is_every_task_outside_the_head_setting() -> None:
    tasks = demo_run.suite_tasks("settings")
    assert tasks and set(tasks) == {n for n, t in demo_run.DEMO_TASKS.items() if t.setting != "head"}
    assert {"emoji-reid-frozen", "wesnoth-frozen", "tux-frozen"} <= set(tasks)
    assert demo_run.command_line(tasks, [0, 1], suite="settings") == "gssf demo --suite settings --seeds 0 1"
    with pytest.raises(ValueError, match="unknown suite 'x'"):
        demo_run.suite_tasks("x")
    with pytest.raises(SystemExit, match="--tasks or --suite, not both"):
        main(["demo", "--suite", "settings", "--tasks", "tux"])
