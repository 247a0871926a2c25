"""Statistics of the demo: CIs and paired differences per task, learned parameters, summary rows."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import pytest
import torch

from gssf.demo.statistics import learned_parameters, load_per_query, summary_rows, task_statistics
from gssf.errors import StatisticsError
from gssf.similarity import create_similarity as get_similarity
from gssf.stats import compare_runs, read_summary, summarize_runs, write_summary

METRICS = ["rsum", "i2t_R@1", "t2i_R@5"]


def _evaluations(per_query_fake: Callable[..., Dict[str, Any]], gains: Dict[str, float], seeds=(0, 1, 2)
                 ) -> Dict[str, List[Dict[str, Any]]]:
    return {sim: [per_query_fake(sim, s, gain=g) for s in seeds] for sim, g in gains.items()}


def test_task_statistics_are_those_of_gssf_stats_with_cosine_as_the_paired_baseline(
    per_query_fake: Callable[..., Dict[str, Any]]
) -> None:
    evals = _evaluations(per_query_fake, {"cosine": 0, "gssf": 0, "bilinear": 6})
    stats = task_statistics(evals, METRICS, n_boot=300)
    assert list(stats) == ["cosine", "gssf", "bilinear"] and list(stats["gssf"]) == METRICS
    for sim in stats:
        for m in METRICS:
            e = stats[sim][m]
            member = summarize_runs(evals[sim], m, n_boot=300)
            delta = compare_runs(evals[sim], evals["cosine"], m, n_boot=300)
            assert (e["mean"], e["std"], e["ci_low"], e["ci_high"]) == (member.mean, member.std, member.ci_low,
                                                                         member.ci_high)
            assert (e["delta"], e["delta_ci_low"], e["delta_ci_high"]) == (delta.delta, delta.ci_low, delta.ci_high)
            assert e["per_seed"] == list(member.per_seed) and e["delta_per_seed"] == list(delta.per_seed)
            assert e["n_boot"] == 300 and e["ci"] == 0.95
    assert all(stats["cosine"][m]["delta"] == 0 and not stats["cosine"][m]["excludes_zero"] for m in METRICS)
    # six ranks better on every query: the interval of the difference lies above 0
    assert stats["bilinear"]["rsum"]["excludes_zero"] and stats["bilinear"]["rsum"]["delta_ci_low"] > 0
    # the same ranks shifted by the member's name only: rsum of gssf and cosine per seed as computed by hand
    for s, values in enumerate(stats["gssf"]["rsum"]["per_seed"]):
        pq = evals["gssf"][s]["per_query"]
        assert values == pytest.approx(sum(np.mean(pq[f"{d}_R@{k}"]) for d in ("i2t", "t2i") for k in (1, 5, 10)))


def test_task_statistics_need_the_baseline(per_query_fake: Callable[..., Dict[str, Any]]) -> None:
    with pytest.raises(StatisticsError, match=r"baseline 'cosine'.*\['gssf'\]"):
        task_statistics(_evaluations(per_query_fake, {"gssf": 0}), METRICS)


def test_runs_without_per_query_values_are_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(StatisticsError, match=r"test_per_query.json is missing"):
        load_per_query(tmp_path)
    (tmp_path / "test_per_query.json").write_text("{not json")
    with pytest.raises(StatisticsError, match=r"cannot read the per-query test values .*test_per_query.json"):
        load_per_query(tmp_path)
    (tmp_path / "test_per_query.json").write_text(json.dumps({"split": "test"}))
    with pytest.raises(StatisticsError, match=r"has no 'per_query' dict"):
        load_per_query(tmp_path)
    (tmp_path / "test_per_query.json").write_text(json.dumps({"split": "test", "per_query": {"R@1": [100.0]},
                                                              "rerank_per_query": {"R@1": [0.0]}}))
    assert load_per_query(tmp_path) == {"per_query": {"R@1": [100.0]}, "rerank_per_query": {"R@1": [0.0]}}


def test_summary_rows_round_trip_through_summary_json(
    tmp_path: Path, per_query_fake: Callable[..., Dict[str, Any]]
) -> None:
    gains = {"cosine": 0, "gssf": 2}
    evals = _evaluations(per_query_fake, gains, seeds=(3, 5))
    runs = {sim: [{"seed": s, "params": 0 if sim == "cosine" else 4352, "dataset": "tux"} for s in (3, 5)]
            for sim in gains}
    report = {"tasks": {"tux": runs}, "statistics": {"tux": task_statistics(evals, METRICS, n_boot=200)}}
    rows = summary_rows(report)
    assert [(r["metric"], r["similarity"]) for r in rows] == [(m, s) for m in METRICS for s in gains]
    gssf_rsum = rows[1]
    e = report["statistics"]["tux"]["gssf"]["rsum"]
    assert gssf_rsum["task"] == "tux" and gssf_rsum["setting"] == "head" and gssf_rsum["dataset"] == "tux"
    assert gssf_rsum["seeds"] == [3, 5] and gssf_rsum["params"] == 4352
    assert (gssf_rsum["mean"], gssf_rsum["delta_vs_cosine"], gssf_rsum["delta_ci_low"]) == (
        e["mean"], e["delta"], e["delta_ci_low"])
    path = write_summary(rows, tmp_path / "summary.json", command="gssf demo --seeds 3 5", git_commit="abc")
    assert read_summary(path)["rows"] == rows


# --------------------------------------------------------------------------- learned parameters
def test_members_without_parameters_have_no_learned_entry() -> None:
    for name in ("cosine", "euclidean", "dot"):
        assert learned_parameters(get_similarity(name)) is None


@pytest.mark.parametrize("name", ["diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"])
def test_a_fresh_member_reads_as_cosine(name: str) -> None:
    got = learned_parameters(get_similarity(name, dim=32))
    assert got is not None
    assert got["norm_M_minus_I"] == pytest.approx(0.0, abs=1e-12)
    assert (got["diagonal_min"], got["diagonal_max"]) == pytest.approx((1.0, 1.0)) and got["diagonal_std"] < 1e-12
    assert got["max_abs_block"] == (None if name == "diagonal" else 0.0)


def _set_diagonal(sim: torch.nn.Module, w: np.ndarray) -> None:
    sim.diagonal.set_weights(torch.as_tensor(w, dtype=torch.float32))


def test_learned_parameters_of_a_moved_gssf_match_a_numpy_oracle() -> None:
    rng = np.random.default_rng(0)
    sim = get_similarity("gssf", dim=8, block_size=4)
    w = rng.uniform(0.5, 1.5, 8)
    blocks = rng.normal(0, 0.1, (2, 4, 4))
    _set_diagonal(sim, w)
    with torch.no_grad():
        sim.blocks.raw.copy_(torch.as_tensor(blocks, dtype=torch.float32))
    m = np.diag(w)
    m[:4, :4] += blocks[0]
    m[4:, 4:] += blocks[1]
    got = learned_parameters(sim)
    assert got["norm_M_minus_I"] == pytest.approx(np.linalg.norm(m - np.eye(8), 2), rel=1e-5)
    assert got["diagonal_of"] == "w" and got["source"] == "weight_matrix()"
    assert (got["diagonal_min"], got["diagonal_max"], got["diagonal_std"]) == pytest.approx(
        (w.min(), w.max(), w.std()), rel=1e-5)
    assert got["max_abs_block"] == pytest.approx(np.abs(blocks).max(), rel=1e-5)


def test_learned_parameters_of_bilinear_use_the_diagonal_of_m() -> None:
    rng = np.random.default_rng(1)
    sim = get_similarity("bilinear", dim=6)
    a = rng.normal(0, 0.05, (6, 6))
    with torch.no_grad():
        sim.raw.copy_(torch.as_tensor(a, dtype=torch.float32))
    got = learned_parameters(sim)
    assert got["diagonal_of"] == "diag(M)"
    assert got["norm_M_minus_I"] == pytest.approx(np.linalg.norm(a, 2), rel=1e-5)
    assert (got["diagonal_min"], got["diagonal_max"]) == pytest.approx((1 + a.diagonal().min(), 1 + a.diagonal().max()),
                                                                       rel=1e-5)
    assert got["max_abs_block"] == pytest.approx(np.abs(a).max(), rel=1e-5)


def test_learned_parameters_of_diagonal_and_of_the_dynamic_members_static_part() -> None:
    w = np.linspace(0.6, 1.8, 8)
    diag = get_similarity("diagonal", dim=8)
    _set_diagonal(diag, w)
    got = learned_parameters(diag)
    assert got["norm_M_minus_I"] == pytest.approx(np.abs(w - 1).max(), rel=1e-5) and got["max_abs_block"] is None
    dyn = get_similarity("gssf_dynamic", dim=8, block_size=4)
    _set_diagonal(dyn, w)
    got = learned_parameters(dyn)
    assert got["source"] == "static part (per-pair gates excluded)"
    assert got["diagonal_max"] == pytest.approx(1.8, rel=1e-5) and got["max_abs_block"] == 0.0
