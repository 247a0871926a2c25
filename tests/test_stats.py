"""gssf.stats: paired seeds x queries bootstrap, member summaries, summary.json and results.md."""
from __future__ import annotations

import doctest
import json
import re
import subprocess

import numpy as np
import pytest

import gssf.stats as stats
from gssf.errors import GssfError, StatisticsError, SummaryError
from gssf.evaluation import image_text_metrics, reid_metrics
from gssf.stats import (
    ROW_KEYS,
    compare_runs,
    metric_inputs,
    paired_bootstrap,
    read_summary,
    render_results_markdown,
    summarize_member,
    summarize_runs,
    summary_row,
    validate_rows,
    write_summary,
)


def rsum(means):
    return sum(v for d in means.values() for v in d.values())


def _reference_sd(a, b, n_boot, seed, sets=False):
    """Standard deviation of a slow, explicit-index crossed bootstrap of ``a - b``."""
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        if not sets:
            s = rng.integers(0, a.shape[0], a.shape[0])
            q = rng.integers(0, a.shape[1], a.shape[1])
            reps.append((a - b)[np.ix_(s, q)].mean())
            continue
        seeds = next(iter(next(iter(a.values())).values())).shape[0]
        s = rng.integers(0, seeds, seeds)
        total = 0.0
        for d in a:
            q = rng.integers(0, next(iter(a[d].values())).shape[1], next(iter(a[d].values())).shape[1])
            total += sum((a[d][k] - b[d][k])[np.ix_(s, q)].mean() for k in a[d])
        reps.append(total)
    return float(np.std(reps))


# --------------------------------------------------------------------------- the bootstrap
def _continuous(rng, seeds, queries, delta=2.0):
    """Paired members: shared query and seed effects cancel; the difference has its own."""
    base = rng.normal(50, 20, (1, queries)) + rng.normal(0, 5, (seeds, 1))
    diff = (delta + rng.normal(0, 10, (1, queries)) + rng.normal(0, 1, (seeds, 1))
            + rng.normal(0, 3, (seeds, queries)))
    return base + diff, base


def test_the_95_percent_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(123)
    covered = 0
    for e in range(200):
        a, b = _continuous(rng, 5, 200)
        r = paired_bootstrap(a, b, n_boot=500, seed=e)
        covered += r.ci_low <= 2.0 <= r.ci_high
    assert 0.88 <= covered / 200 <= 0.99  # measured: 0.915


def test_coverage_on_hits_with_one_seed():
    # 0/100 hits, one seed: only the queries are resampled.
    rng = np.random.default_rng(7)
    covered = 0
    for e in range(200):
        p = rng.uniform(0.1, 0.8, 200)
        a = 100.0 * (rng.random((1, 200)) < p + 0.05)
        b = 100.0 * (rng.random((1, 200)) < p)
        r = paired_bootstrap(a, b, n_boot=500, seed=e)
        covered += r.ci_low <= 5.0 <= r.ci_high
    assert 0.88 <= covered / 200 <= 0.99  # measured: 0.945


def test_seeds_and_queries_are_both_resampled():
    # Seed effects dominate: a bootstrap over queries alone would be far too narrow.
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (5, 1)) + rng.normal(0, 0.1, (5, 300))
    b = np.zeros((5, 300))
    got = paired_bootstrap(a, b, n_boot=2000, seed=1)
    width = got.ci_high - got.ci_low
    ref = _reference_sd(a, b, 2000, 2)
    assert width == pytest.approx(2 * 1.96 * ref, rel=0.15)
    queries_only = paired_bootstrap(a[:1], b[:1], n_boot=500)  # one seed: only queries vary
    assert queries_only.ci_high - queries_only.ci_low < width / 5


def test_query_sets_are_resampled_independently_and_each_set_jointly():
    # i2t R@1 and R@5 share image queries (resampled together); texts are a separate set.
    rng = np.random.default_rng(4)
    common = rng.normal(0, 10, (1, 120))
    a = {"i2t": {"R@1": common + rng.normal(0, 1, (3, 120)), "R@5": common + rng.normal(0, 1, (3, 120))},
         "t2i": {"R@1": rng.normal(0, 10, (3, 400))}}
    b = {d: {k: np.zeros_like(v) for k, v in m.items()} for d, m in a.items()}
    got = paired_bootstrap(a, b, stat=rsum, n_boot=2000, seed=3)
    ref = _reference_sd(a, b, 2000, 5, sets=True)
    assert (got.ci_high - got.ci_low) == pytest.approx(2 * 1.96 * ref, rel=0.15)
    # Resampling R@1 and R@5 independently would lose their correlation: a much narrower CI.
    split = {"i2t_1": {"R@1": a["i2t"]["R@1"]}, "i2t_5": {"R@5": a["i2t"]["R@5"]}, "t2i": a["t2i"]}
    zeros = {d: {k: np.zeros_like(v) for k, v in m.items()} for d, m in split.items()}
    narrow = paired_bootstrap(split, zeros, stat=rsum, n_boot=2000, seed=3)
    assert narrow.ci_high - narrow.ci_low < 0.85 * (got.ci_high - got.ci_low)


def test_point_estimate_and_per_seed_differences():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 30)), rng.normal(size=(4, 30))
    got = paired_bootstrap(a, b, n_boot=100)
    assert got.per_seed == pytest.approx(a.mean(axis=1) - b.mean(axis=1))
    assert got.delta == pytest.approx((a - b).mean())
    assert got.n_boot == 100 and got.ci == 0.95
    assert got.ci_low <= got.delta <= got.ci_high
    assert paired_bootstrap(a, b, n_boot=100) == got  # deterministic
    other = paired_bootstrap(a, b, n_boot=100, seed=1)
    assert (other.ci_low, other.ci_high) != (got.ci_low, got.ci_high)


def test_a_nonlinear_stat_is_applied_per_seed_then_averaged():
    rng = np.random.default_rng(2)
    a, b = rng.uniform(1, 2, (3, 50)), rng.uniform(1, 2, (3, 50))
    got = paired_bootstrap(a, b, stat=np.square, n_boot=50)
    assert got.per_seed == pytest.approx(a.mean(axis=1) ** 2 - b.mean(axis=1) ** 2)


def test_identical_members_give_a_zero_interval():
    rng = np.random.default_rng(0)
    a = 100.0 * (rng.random((5, 500)) < 0.4)
    got = paired_bootstrap(a, a.copy(), n_boot=300)
    assert (got.delta, got.ci_low, got.ci_high) == (0.0, 0.0, 0.0)
    assert not got.excludes_zero and got.per_seed == (0.0,) * 5
    sets = {"i2t": {"R@1": a[:, :100], "R@5": a[:, 100:200]}, "t2i": {"R@1": a}}
    got = paired_bootstrap(sets, {d: dict(m) for d, m in sets.items()}, stat=rsum, n_boot=300)
    assert (got.delta, got.ci_low, got.ci_high) == (0.0, 0.0, 0.0)


def test_one_seed_resamples_queries_only():
    rng = np.random.default_rng(3)
    d = rng.normal(1.0, 5.0, (1, 2000))
    got = paired_bootstrap(d, np.zeros_like(d), n_boot=2000)
    assert len(got.per_seed) == 1
    assert got.ci_high - got.ci_low == pytest.approx(2 * 1.96 * d.std() / np.sqrt(2000), rel=0.1)


def test_a_clear_difference_is_marked():
    a, b = np.full((5, 50), 60.0), np.full((5, 50), 40.0)
    a[:, ::2] += 1.0
    got = paired_bootstrap(a, b, n_boot=200)
    assert got.excludes_zero and got.ci_low > 0


@pytest.mark.parametrize(
    "a,b,kwargs,message",
    [
        (np.zeros((5, 10)), np.zeros((4, 10)), {}, r"a has shape \(5, 10\).*b has \(4, 10\)"),
        (np.zeros((5, 10)), np.zeros((5, 9)), {}, "same test queries"),
        (np.zeros(10), np.zeros(10), {}, "non-empty \\(seeds, queries\\) array"),
        (np.zeros((0, 10)), np.zeros((0, 10)), {}, "non-empty"),
        (np.array([[0.0, np.nan]]), np.zeros((1, 2)), {}, "non-finite value \\(nan\\) at seed row 0, query 1"),
        (np.zeros((2, 3)), {"q": {"v": np.zeros((2, 3))}}, {}, "both be arrays"),
        ({"q": {"v": np.zeros((2, 3))}}, {"p": {"v": np.zeros((2, 3))}}, {}, "different query sets"),
        ({"q": {"v": np.zeros((2, 3))}}, {"q": {"w": np.zeros((2, 3))}}, {}, "holds \\['v'\\] in a"),
        ({"q": {"v": np.zeros((2, 3)), "w": np.zeros((2, 4))}}, None, {}, "other arrays of query set 'q'"),
        ({"q": {"v": np.zeros((2, 3))}, "p": {"v": np.zeros((3, 3))}}, None, {}, "3 seed rows"),
        ({"q": {"v": np.zeros((2, 3)), "w": np.zeros((2, 3))}}, None, {}, "exactly one per-query array"),
        ({"q": {}}, None, {}, "non-empty dict"),
        ({}, None, {}, "no query set"),
        (np.zeros((2, 3)), np.zeros((2, 3)), {"n_boot": 0}, "n_boot"),
        (np.zeros((2, 3)), np.zeros((2, 3)), {"ci": 95}, "ci must be"),
        (np.zeros((2, 3)), np.zeros((2, 3)), {"seed": 0.5}, "seed must be"),
        (np.zeros((2, 3)), np.zeros((2, 3)), {"stat": "median"}, "stat must be"),
        ([["x"]], [["x"]], {}, "hold numbers"),
    ],
)
def test_bad_input_raises_a_named_error(a, b, kwargs, message):
    b = a if b is None else b
    with pytest.raises(StatisticsError, match=message) as info:
        paired_bootstrap(a, b, **kwargs)
    assert isinstance(info.value, GssfError)


def test_summarize_member():
    rng = np.random.default_rng(5)
    x = rng.normal(50, 3, (5, 1)) + rng.normal(0, 10, (5, 400))
    got = summarize_member(x, n_boot=500)
    assert got.mean == pytest.approx(x.mean())
    assert got.std == pytest.approx(x.mean(axis=1).std(ddof=1))
    assert got.ci_low < got.mean < got.ci_high
    one = summarize_member(x[:1], n_boot=100)
    assert one.std == 0.0 and len(one.per_seed) == 1
    with pytest.raises(StatisticsError, match="non-finite"):
        summarize_member(np.full((2, 2), np.inf))


def test_large_inputs_are_chunked_over_replicates(monkeypatch):
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(3, 40)), rng.normal(size=(3, 40))
    monkeypatch.setattr(stats, "_CELLS_PER_CHUNK", 1)  # one replicate per chunk
    tiny = paired_bootstrap(a, b, n_boot=400, seed=2)
    assert tiny.ci_low < tiny.delta < tiny.ci_high
    assert tiny.ci_high - tiny.ci_low == pytest.approx(2 * 1.96 * _reference_sd(a, b, 2000, 9), rel=0.2)


def test_docstring_examples():
    result = doctest.testmod(stats, extraglobs={"np": np}, verbose=False)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- from evaluation outputs
def _image_text_runs(shift: float, seeds=(0, 1, 2), folds=None, per=None):
    t2i = np.repeat(np.arange(20), 2 if per is None else per)
    runs = []
    for s in seeds:
        rng = np.random.default_rng(s)
        scores = rng.standard_normal((20, t2i.size)) + shift * (t2i[None, :] == np.arange(20)[:, None])
        runs.append(image_text_metrics(scores, t2i, ks=(1, 5), folds=folds, per_query=True))
    return runs


def test_summarize_runs_reproduces_the_reported_means():
    runs = _image_text_runs(1.0)
    for metric in ("rsum", "i2t_R@1", "t2i_R@5", "t2i_meanR"):
        got = summarize_runs(runs, metric, n_boot=200)
        assert got.per_seed == pytest.approx([r[metric] for r in runs], abs=1e-9), metric
        assert got.mean == pytest.approx(np.mean([r[metric] for r in runs]))
    arrays, _, _ = metric_inputs(runs, "rsum")
    assert list(arrays) == ["i2t", "t2i"] and list(arrays["i2t"]) == ["i2t_R@1", "i2t_R@5"]
    assert arrays["t2i"]["t2i_R@1"].shape == (3, 40)


def test_compare_runs_pairs_members_seed_by_seed():
    better, worse = _image_text_runs(2.0), _image_text_runs(0.5)
    got = compare_runs(better, worse, "rsum", n_boot=300)
    assert got.per_seed == pytest.approx([a["rsum"] - b["rsum"] for a, b in zip(better, worse)])
    assert got.excludes_zero
    same = compare_runs(worse, worse, "rsum", n_boot=100)
    assert (same.delta, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)


def test_compare_runs_on_folds_and_reid():
    runs = _image_text_runs(1.0, folds=2, per=5)
    got = summarize_runs(runs, "rsum", n_boot=100)
    assert got.per_seed == pytest.approx([r["rsum"] for r in runs])
    rng = np.random.default_rng(0)
    qp, gp = rng.integers(0, 5, 12), rng.integers(0, 5, 40)
    qp[0] = 9  # skipped query
    reid = [reid_metrics(rng.standard_normal((12, 40)), qp, gp, np.zeros(12), np.ones(40), max_rank=5,
                         per_query=True) for _ in range(3)]
    got = summarize_runs(reid, "mAP", n_boot=100)
    assert got.per_seed == pytest.approx([r["mAP"] for r in reid])


@pytest.mark.parametrize(
    "case,message",
    [
        ("empty", "no runs"),
        ("no_per_query", "per_query=True"),
        ("median", "median"),
        ("unknown", "no per-query values"),
        ("other_queries", "differ from run 0"),
        ("unequal_folds", "folds hold"),
    ],
)
def test_metric_inputs_refuse_what_the_bootstrap_cannot_answer(case, message):
    runs = _image_text_runs(1.0)
    metric = "rsum"
    if case == "empty":
        runs = []
    elif case == "no_per_query":
        runs = [{k: v for k, v in r.items() if k != "per_query"} for r in runs]
    elif case == "median":
        metric = "i2t_medR"
    elif case == "unknown":
        metric = "mAP"
    elif case == "other_queries":
        runs[1] = _image_text_runs(1.0, per=3)[1]
    elif case == "unequal_folds":
        t2i = np.array([0, 1, 2, 2, 2, 3, 3, 3])
        runs = [image_text_metrics(np.random.default_rng(0).standard_normal((4, 8)), t2i, ks=(1,), folds=2,
                                   per_query=True)]
    with pytest.raises(StatisticsError, match=message):
        metric_inputs(runs, metric)


def test_compare_runs_refuses_members_on_different_queries():
    rng = np.random.default_rng(1)
    gp = rng.integers(0, 4, 30)
    runs = [reid_metrics(rng.standard_normal((8, 30)), np.arange(8) % 4, gp, np.zeros(8), np.ones(30),
                         max_rank=5, per_query=True)]
    other_q = np.arange(8) % 4
    other_q[2] = 7  # no match: one query fewer
    other = [reid_metrics(rng.standard_normal((8, 30)), other_q, gp, np.zeros(8), np.ones(30), max_rank=5,
                          per_query=True)]
    with pytest.raises(StatisticsError):
        compare_runs(runs, other, "mAP", n_boot=10)


# --------------------------------------------------------------------------- summary.json / results.md
def _row(similarity="gssf", metric="rsum", **over):
    row = dict(task="image_text", setting="COCO 1K (5 folds)", dataset="coco", similarity=similarity, metric=metric,
               seeds=[0, 1, 2, 3, 4], mean=412.3, std=1.25, ci_low=410.0, ci_high=414.5, delta_vs_cosine=2.5,
               delta_ci_low=0.4, delta_ci_high=4.6, params=4352)
    row.update(over)
    return row


def _rows():
    zero = dict(delta_vs_cosine=0.0, delta_ci_low=0.0, delta_ci_high=0.0, params=0)
    return [
        _row("cosine", **zero),
        _row("gssf"),
        _row("diagonal", delta_vs_cosine=-0.3, delta_ci_low=-1.2, delta_ci_high=0.6, params=1024),
        _row("cosine", task="reid", setting="single query", dataset="market1501", metric="mAP", **zero),
        _row("gssf", task="reid", setting="single query", dataset="market1501", metric="mAP",
             delta_vs_cosine=-1.5, delta_ci_low=-2.5, delta_ci_high=-0.5),
    ]


def test_write_and_read_summary_round_trip(tmp_path):
    path = tmp_path / "docs" / "results" / "summary.json"
    write_summary(_rows(), path, command="python -m gssf.cli.main reproduce --all", generated="2024-05-01T12:00:00+00:00",
                  git_commit="abc123")
    raw = json.loads(path.read_text())
    assert list(raw) == ["command", "generated", "git_commit", "rows"]
    assert raw["command"] == "python -m gssf.cli.main reproduce --all" and raw["git_commit"] == "abc123"
    assert all(list(r) == list(ROW_KEYS) for r in raw["rows"])
    assert read_summary(path) == raw
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]  # no temporary left behind
    assert render_results_markdown(read_summary(path)) == render_results_markdown(raw)


def test_generated_and_git_commit_defaults(tmp_path):
    out = write_summary(_rows()[:1], tmp_path / "plain" / "s.json", command="cmd")
    raw = json.loads(out.read_text())
    assert raw["git_commit"] == "unknown"  # not a repository
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", raw["generated"])
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "f").write_text("x")
    subprocess.run(["git", "add", "f"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "m"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert json.loads(write_summary(_rows()[:1], repo / "s.json", command="c").read_text())["git_commit"] == head
    (repo / "f").write_text("changed")
    assert json.loads(write_summary(_rows()[:1], repo / "s.json", command="c").read_text())["git_commit"] == head + "-dirty"


@pytest.mark.parametrize(
    "row,message",
    [
        ({k: v for k, v in _row().items() if k != "params"}, r"missing keys \['params'\]"),
        ({**_row(), "p_value": 0.01}, r"unexpected keys \['p_value'\]"),
        (_row(mean=float("nan")), "mean must be a finite number"),
        (_row(delta_ci_high=float("inf")), "delta_ci_high must be a finite number"),
        (_row(std=True), "std must be a finite number"),
        (_row(mean="41.2"), "mean must be a finite number"),
        (_row(std=-1.0), "std must not be negative"),
        (_row(ci_low=415.0), "ci_low .* is above ci_high"),
        (_row(seeds=[]), "seeds must be a non-empty list"),
        (_row(seeds=[0, 0]), "repeated"),
        (_row(params=-1), "params must be a non-negative integer"),
        (_row(params=1.5), "params must be a non-negative integer"),
        (_row(similarity=""), "similarity must be a non-empty string"),
        ({**_row(), "val_mean": float("nan")}, "val_mean must be a finite number"),
        ({**_row(), "val_mean": "61"}, "val_mean must be a finite number"),
    ],
)
def test_bad_rows_raise_a_named_error(tmp_path, row, message):
    path = tmp_path / "summary.json"
    with pytest.raises(SummaryError, match=message):
        write_summary([row], path, command="c", git_commit="x")
    assert not path.exists()


def test_repeated_rows_and_a_missing_command_are_refused(tmp_path):
    with pytest.raises(SummaryError, match="repeats row 0"):
        validate_rows([_row(), _row()])
    with pytest.raises(SummaryError, match="command"):
        write_summary([_row()], tmp_path / "s.json", command=" ")


def test_read_summary_refuses_damaged_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SummaryError, match="not valid JSON"):
        read_summary(bad)
    bad.write_text(json.dumps({"command": "c", "generated": "g", "git_commit": "x", "rows": [], "extra": 1}))
    with pytest.raises(SummaryError, match="expected exactly"):
        read_summary(bad)
    with pytest.raises(SummaryError, match="cannot read"):
        read_summary(tmp_path / "missing.json")


def _table_rows(markdown: str, heading: str):
    block = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_render_results_markdown():
    summary = {"command": "gssf reproduce", "generated": "2024-05-01T12:00:00+00:00", "git_commit": "abc",
               "rows": _rows()}
    md = render_results_markdown(summary)
    assert md.startswith("# Results\n") and "`gssf reproduce`" in md and "`abc`" in md
    assert md.count("\n## ") == 2
    coco = _table_rows(md, "image_text · coco · COCO 1K (5 folds)")
    assert coco[0] == ["cosine", "rsum", "5", "412.3 ± 1.2", "[410.0, 414.5]", "—", "0"]
    assert coco[1] == ["gssf", "rsum", "5", "412.3 ± 1.2", "[410.0, 414.5]", "+2.5 [+0.4, +4.6] †", "4,352"]
    assert coco[2][5] == "-0.3 [-1.2, +0.6]"  # the CI includes 0: no mark
    reid = _table_rows(md, "reid · market1501 · single query")
    assert reid[1][5] == "-1.5 [-2.5, -0.5] †"
    assert render_results_markdown(summary, digits=2).count("412.30 ± 1.25") == 5


def test_summary_row_from_statistics():
    rng = np.random.default_rng(0)
    a, b = rng.normal(60, 5, (3, 100)), rng.normal(58, 5, (3, 100))
    member, delta = summarize_member(a, n_boot=100), paired_bootstrap(a, b, n_boot=100)
    row = summary_row(task="retrieval", setting="leave-one-out", dataset="cub", similarity="gssf", metric="R@1",
                      seeds=[0, 1, 2], params=10, member=member, delta=delta)
    assert list(row) == list(ROW_KEYS)
    assert row["mean"] == member.mean and row["delta_ci_low"] == delta.ci_low
    with pytest.raises(SummaryError, match="2 seeds named"):
        summary_row(task="t", setting="s", dataset="d", similarity="g", metric="m", seeds=[0, 1], params=0,
                    member=member, delta=delta)


# --------------------------------------------------------------------------- clustered queries
def _copies(values, copies):
    """Every query repeated ``copies`` times (columns), and the cluster label of each column."""
    return np.repeat(values, copies, axis=1), np.repeat(np.arange(values.shape[1]), copies)


def test_clusters_make_exact_copies_of_a_query_count_once():
    # 28 identical translations of each query carry the information of one query: resampled by
    # cluster, the interval is that of the 60 originals; resampled by query it is far too narrow.
    rng = np.random.default_rng(4)
    a, b = _continuous(rng, 5, 60)
    alone = paired_bootstrap(a, b, n_boot=3000, seed=1)
    (ca, labels), (cb, _) = _copies(a, 28), _copies(b, 28)
    clustered = paired_bootstrap(ca, cb, n_boot=3000, seed=2, clusters=labels)
    naive = paired_bootstrap(ca, cb, n_boot=3000, seed=2)
    width = alone.ci_high - alone.ci_low
    assert clustered.delta == pytest.approx(alone.delta)
    assert clustered.ci_high - clustered.ci_low == pytest.approx(width, rel=0.12)
    assert naive.ci_high - naive.ci_low < 0.6 * width


def test_singleton_clusters_give_the_per_query_interval():
    rng = np.random.default_rng(5)
    a, b = _continuous(rng, 5, 300)
    plain = paired_bootstrap(a, b, n_boot=3000, seed=1)
    single = paired_bootstrap(a, b, n_boot=3000, seed=1, clusters=np.arange(300)[::-1].copy())
    assert single.ci_high - single.ci_low == pytest.approx(plain.ci_high - plain.ci_low, rel=0.1)
    member = summarize_member(a, n_boot=500, clusters=np.arange(300))
    assert member.mean == pytest.approx(a.mean())


def test_clusters_of_two_query_sets_are_drawn_together_against_an_explicit_reference():
    # One seed, two sets sharing labels: a replicate draws clusters once; each set's metric is
    # the mean over its queries of drawn clusters, with multiplicity. Explicit loop as reference.
    rng = np.random.default_rng(6)
    g_img, g_txt = rng.integers(0, 12, 40), rng.integers(0, 12, 25)
    g_img[:12], g_txt[:12] = np.arange(12), np.arange(12)  # every cluster in both sets
    a = {"i2t": {"x": rng.normal(0, 1, (1, 40))}, "t2i": {"y": rng.normal(0, 1, (1, 25))}}
    b = {"i2t": {"x": np.zeros((1, 40))}, "t2i": {"y": np.zeros((1, 25))}}
    got = paired_bootstrap(a, b, stat=rsum, n_boot=4000, seed=3, clusters={"i2t": g_img, "t2i": g_txt})
    ref = []
    r = np.random.default_rng(11)
    for _ in range(4000):
        drawn = r.integers(0, 12, 12)
        rows_i = np.concatenate([np.flatnonzero(g_img == c) for c in drawn])
        rows_t = np.concatenate([np.flatnonzero(g_txt == c) for c in drawn])
        ref.append(a["i2t"]["x"][0, rows_i].mean() + a["t2i"]["y"][0, rows_t].mean())
    lo, hi = np.quantile(ref, [0.025, 0.975])
    assert got.ci_low == pytest.approx(lo, abs=0.12) and got.ci_high == pytest.approx(hi, abs=0.12)
    indep = paired_bootstrap(a, b, stat=rsum, n_boot=4000, seed=3)
    assert got.ci_high - got.ci_low != pytest.approx(indep.ci_high - indep.ci_low, rel=0.02)


@pytest.mark.parametrize(
    "clusters,message",
    [
        ({"t2i": np.arange(4)}, "do not have"),
        ({"queries": np.arange(3)}, "one label per query"),
        ({"queries": np.linspace(0, 1, 4)}, "integer labels"),
        ("abc", "one label per query"),
    ],
)
def test_bad_clusters_are_refused(clusters, message):
    a = np.ones((2, 4))
    if isinstance(clusters, dict):
        with pytest.raises(StatisticsError, match=message):
            paired_bootstrap({"queries": {"v": a}}, {"queries": {"v": a}}, n_boot=10, clusters=clusters)
    else:
        with pytest.raises(StatisticsError, match=message):
            paired_bootstrap(a, a, n_boot=10, clusters=clusters)


def test_compare_runs_reads_the_runs_query_clusters():
    better, worse = _image_text_runs(2.0), _image_text_runs(0.5)
    labels = {"i2t": list(range(20)), "t2i": [int(t) for t in np.arange(40) % 20]}
    with_c = [{**r, "query_clusters": labels} for r in better]
    base_c = [{**r, "query_clusters": labels} for r in worse]
    got = compare_runs(with_c, base_c, "rsum", n_boot=300)
    assert got.per_seed == pytest.approx([a["rsum"] - b["rsum"] for a, b in zip(better, worse)])
    assert summarize_runs(with_c, "rsum", n_boot=100).mean == pytest.approx(np.mean([r["rsum"] for r in better]))
    with pytest.raises(StatisticsError, match="different query clusters"):
        compare_runs(with_c, worse, "rsum", n_boot=50)
    other = [dict(r) for r in with_c]
    other[1] = {**other[1], "query_clusters": {"i2t": list(range(20))[::-1], "t2i": labels["t2i"]}}
    with pytest.raises(StatisticsError, match="other query clusters"):
        compare_runs(other, base_c, "rsum", n_boot=50)


def test_merged_summaries_keep_other_tasks_and_name_the_command_of_each(tmp_path):
    from gssf.stats import merge_summaries

    a = {"command": "gssf demo --tasks all", "generated": "2026-12-01T00:00:00+00:00", "git_commit": "aaa",
         "rows": _rows()}  # tasks image_text and reid
    frozen = [_row("cosine", task="reid-frozen", setting="frozen", delta_vs_cosine=0.0, delta_ci_low=0.0,
                   delta_ci_high=0.0, params=0), _row("gssf", task="reid-frozen", setting="frozen")]
    b = {"command": "gssf demo --tasks reid-frozen", "generated": "2026-12-02T00:00:00+00:00", "git_commit": "bbb",
         "rows": frozen}
    merged = merge_summaries(a, b)
    assert merged["rows"] == _rows() + frozen and merged["command"] == b["command"]
    assert merged["sources"] == [
        {"command": a["command"], "generated": a["generated"], "git_commit": "aaa", "tasks": ["image_text", "reid"]},
        {"command": b["command"], "generated": b["generated"], "git_commit": "bbb", "tasks": ["reid-frozen"]},
    ]
    path = write_summary(merged["rows"], tmp_path / "s.json", command=merged["command"], generated=merged["generated"],
                         git_commit="bbb", sources=merged["sources"])
    assert read_summary(path)["sources"] == merged["sources"]
    md = render_results_markdown(read_summary(path))
    assert "Produced by `gssf demo --tasks all` at commit `aaa` (2026-12-01T00:00:00+00:00): image_text, reid." in md
    assert "`gssf demo --tasks reid-frozen` at commit `bbb`" in md
    # re-running one task of the first command replaces that task's rows only
    redo = {**a, "git_commit": "ccc", "rows": [dict(r, mean=1.0) for r in _rows() if r["task"] == "reid"]}
    again = merge_summaries(merged, redo)
    assert [r["task"] for r in again["rows"]] == ["image_text"] * 3 + ["reid-frozen"] * 2 + ["reid"] * 2
    assert [(s["git_commit"], s["tasks"]) for s in again["sources"]] == [
        ("aaa", ["image_text"]), ("bbb", ["reid-frozen"]), ("ccc", ["reid"])]
    # a summary covering every task of the old one stands alone
    assert "sources" not in merge_summaries(a, a)
    with pytest.raises(SummaryError, match=r"no source names the task\(s\) \['reid-frozen'\]"):
        write_summary(merged["rows"], tmp_path / "t.json", command="x", sources=merged["sources"][:1])
    with pytest.raises(SummaryError, match="claimed by sources"):
        write_summary(merged["rows"], tmp_path / "t.json", command="x", sources=merged["sources"] + merged["sources"][1:])
