"""Statistics of the demo: confidence intervals, paired differences to cosine, learned parameters.

For every task, member and reported metric, :func:`task_statistics` gives the mean ± std
over seeds, the 95% percentile-bootstrap CI of the mean, and the paired difference to
cosine (per seed and with its 95% CI), all from :mod:`gssf.stats`: the bootstrap
resamples the seeds and the test queries together, identically for both members. The
per-query values come from each run's ``test_per_query.json`` (written by the trainer).

:func:`learned_parameters` measures how far a learnable member moved from cosine
(``||M - I||_2``, the spread of its diagonal weights, its largest block entry), so that a
member which "did not learn" shows as such. :func:`summary_rows` turns the statistics
into the rows of ``summary.json`` (:func:`gssf.stats.write_summary`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Union

import numpy as np

from gssf.errors import StatisticsError
from gssf.similarity.structure import learned_parameters
from gssf.stats import MemberSummary, PairedBootstrap, compare_runs, summarize_runs, summary_row

__all__ = [
    "BASELINE",
    "PER_QUERY_FILE",
    "load_per_query",
    "task_statistics",
    "learned_parameters",
    "summary_rows",
]

#: The member every other one is compared with.
BASELINE = "cosine"
#: The trainer's file of per-query test values, inside each run folder.
PER_QUERY_FILE = "test_per_query.json"
_PER_QUERY_KEYS = ("per_query", "rerank_per_query")


def load_per_query(run_dir: Path) -> Dict[str, Any]:
    """``{"per_query": {...}, "rerank_per_query": {...}?}`` of a finished run (``split`` dropped).

    Raises:
        StatisticsError: the file is missing, not JSON, or has no ``per_query`` dict.
    """
    path = Path(run_dir) / PER_QUERY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StatisticsError(f"{path} is missing: the run has no per-query test values to bootstrap") from None
    except (OSError, ValueError) as exc:
        raise StatisticsError(f"cannot read the per-query test values {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("per_query"), dict):
        keys = sorted(data) if isinstance(data, dict) else "-"
        raise StatisticsError(f"{path} has no 'per_query' dict (keys: {keys})")
    return {k: data[k] for k in _PER_QUERY_KEYS if k in data}


def _entry(member: MemberSummary, delta: PairedBootstrap) -> Dict[str, Any]:
    return {
        "mean": member.mean, "std": member.std, "ci_low": member.ci_low, "ci_high": member.ci_high,
        "per_seed": list(member.per_seed), "delta": delta.delta, "delta_ci_low": delta.ci_low,
        "delta_ci_high": delta.ci_high, "delta_per_seed": list(delta.per_seed),
        "excludes_zero": delta.excludes_zero, "n_boot": member.n_boot, "ci": member.ci,
    }


def task_statistics(
    evaluations: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str],
    *,
    baseline: str = BASELINE,
    n_boot: int = 2000,
    ci: float = 0.95,
) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{member: {metric: entry}}`` for one task.

    Args:
        evaluations: ``{member: [evaluation dict of seed s, ...]}``, each dict holding the
            test metrics and their ``per_query`` values; every member lists the same seeds
            in the same order.
        metrics: the metrics to summarise (each needs per-query values).
        baseline: the member the differences are taken against (its own are 0).
        n_boot, ci: bootstrap replicates and confidence level.

    An entry has ``mean``, ``std`` (over seeds), ``ci_low``/``ci_high`` (CI of the mean),
    ``per_seed``, ``delta`` (mean paired difference to the baseline), ``delta_ci_low``/
    ``delta_ci_high``, ``delta_per_seed``, ``excludes_zero``, ``n_boot``, ``ci``.

    Raises:
        StatisticsError: no baseline among the members, or inputs :mod:`gssf.stats` refuses.
    """
    if baseline not in evaluations:
        raise StatisticsError(f"the paired differences need the baseline {baseline!r}, got members {list(evaluations)}")
    base = evaluations[baseline]
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for member, evals in evaluations.items():
        out[member] = {}
        for metric in metrics:
            summary = summarize_runs(evals, metric, n_boot=n_boot, ci=ci)
            delta = compare_runs(evals, base, metric, n_boot=n_boot, ci=ci)
            out[member][metric] = _entry(summary, delta)
    return out


def summary_rows(report: Mapping[str, Any], setting: Union[str, Mapping[str, str]] = "head") -> List[Dict[str, Any]]:
    """The ``summary.json`` rows of a demo report: one per task, metric and member (in that order).

    ``setting``: the setting of every task, or one per task name (``head``, ``frozen``, ...).
    """
    rows = []
    for task, by_member in report.get("statistics", {}).items():
        task_setting = setting if isinstance(setting, str) else setting.get(task, "head")
        runs = report["tasks"][task]
        metrics = list(next(iter(by_member.values()), {}))
        for metric in metrics:
            for member, stats in by_member.items():
                s = stats[metric]
                first = runs[member][0]
                vals = [(r.get("val") or {}).get(metric) for r in runs[member]]
                val_mean = float(np.mean(vals)) if vals and all(isinstance(v, (int, float)) for v in vals) else None
                rows.append(summary_row(
                    task=task, setting=task_setting, dataset=str(first.get("dataset") or task), similarity=member,
                    metric=metric, seeds=[r["seed"] for r in runs[member]], params=int(first.get("params", 0)),
                    member=MemberSummary(s["mean"], s["std"], s["ci_low"], s["ci_high"], tuple(s["per_seed"]),
                                         s["n_boot"], s["ci"]),
                    delta=PairedBootstrap(s["delta"], s["delta_ci_low"], s["delta_ci_high"],
                                          tuple(s["delta_per_seed"]), s["n_boot"], s["ci"]),
                    val_mean=val_mean,
                ))
    return rows


