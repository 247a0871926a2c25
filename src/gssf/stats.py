"""Statistics a reviewer accepts: seeds x test queries bootstrap, paired differences, summary files.

* :func:`paired_bootstrap` -- the difference between two members (e.g. a similarity and
  cosine) evaluated on the *same* seeds and test queries, with a percentile confidence
  interval from a bootstrap that resamples seeds and queries together;
* :func:`summarize_member` -- mean and std over seeds of one member, with the same CI;
* :func:`compare_runs` / :func:`summarize_runs` -- the same from the ``per_query`` dicts
  the evaluation functions return (``per_query=True``), one dict per seed;
* :func:`write_summary`, :func:`read_summary`, :func:`render_results_markdown` --
  ``docs/results/summary.json`` and the ``docs/results.md`` tables generated from it.

Per-query values are grouped in **query sets**: the queries of one direction of one
evaluation (``"i2t"``: images, ``"t2i"``: texts, ``"queries"``: re-ID / retrieval
queries). Values of one query set are resampled with the same indices (R@1 and R@5 of
an image query move together); different query sets are resampled independently,
unless ``clusters`` ties queries together (the images and captions of one emoji of a
grouped image-text benchmark are one draw: its 28 translations are not 28 independent
queries). A metric is a function of per-seed *means* of per-query values (every reported metric
except the median ranks is one), so a replicate never materialises resampled arrays:
it weights the queries by their resampling counts. See ``docs/evaluation.md``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from gssf.errors import StatisticsError, SummaryError
from gssf.utils.io import PathLike, atomic_write_json

__all__ = [
    "PairedBootstrap",
    "MemberSummary",
    "paired_bootstrap",
    "summarize_member",
    "metric_inputs",
    "compare_runs",
    "summarize_runs",
    "ROW_KEYS",
    "summary_row",
    "validate_rows",
    "write_summary",
    "merge_summaries",
    "read_summary",
    "render_results_markdown",
]

#: ``{query set: {name: (seeds, queries of that set)}}`` per-query values of one member.
QuerySets = Mapping[str, Mapping[str, Any]]
#: A metric from per-seed means: ``{query set: {name: array}} -> array`` (elementwise, any shape).
Stat = Callable[[Dict[str, Dict[str, np.ndarray]]], np.ndarray]

# Resampling counts are drawn for about this many (replicate, query) cells at a time.
_CELLS_PER_CHUNK = 1 << 21
_PLAIN = ("queries", "value")  # the query set and name a plain (seeds, queries) array gets


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PairedBootstrap:
    """Paired difference ``a - b`` of a metric over seeds and queries.

    ``delta``: mean over seeds of ``per_seed`` (``S`` values, the metric of ``a`` minus that of
    ``b`` on each seed); ``[ci_low, ci_high]``: percentile interval of ``n_boot`` replicates.
    """

    delta: float
    ci_low: float
    ci_high: float
    per_seed: Tuple[float, ...]
    n_boot: int
    ci: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies strictly on one side of 0."""
        return self.ci_low > 0.0 or self.ci_high < 0.0


@dataclass(frozen=True)
class MemberSummary:
    """One member: ``mean`` and sample ``std`` (0 for one seed) of ``per_seed`` (``S`` values), bootstrap CI."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    per_seed: Tuple[float, ...]
    n_boot: int
    ci: float


# --------------------------------------------------------------------------- input checks
def _as_query_sets(x: Any, name: str) -> Tuple[Dict[str, Dict[str, np.ndarray]], bool]:
    """``({set: {name: float64 (S, Q)}}, plain)``; ``plain`` when ``x`` was one array."""
    plain = not isinstance(x, Mapping)
    sets = {_PLAIN[0]: {_PLAIN[1]: x}} if plain else x
    if not sets:
        raise StatisticsError(f"{name} has no query set")
    out: Dict[str, Dict[str, np.ndarray]] = {}
    seeds: Optional[int] = None
    for set_name, arrays in sets.items():
        if not isinstance(arrays, Mapping) or not arrays:
            raise StatisticsError(f"{name}[{set_name!r}] must be a non-empty dict of (seeds, queries) arrays")
        out[set_name] = {}
        queries: Optional[int] = None
        for key, values in arrays.items():
            where = name if plain else f"{name}[{set_name!r}][{key!r}]"
            try:
                arr = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                raise StatisticsError(f"{where} must hold numbers") from None
            if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
                raise StatisticsError(f"{where} must be a non-empty (seeds, queries) array, got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                s, q = np.argwhere(~np.isfinite(arr))[0]
                raise StatisticsError(f"{where} has a non-finite value ({arr[s, q]}) at seed row {s}, query {q}")
            if seeds is not None and arr.shape[0] != seeds:
                raise StatisticsError(f"{where} has {arr.shape[0]} seed rows, the other arrays have {seeds}")
            if queries is not None and arr.shape[1] != queries:
                raise StatisticsError(
                    f"{where} has {arr.shape[1]} queries, the other arrays of query set {set_name!r} have {queries}"
                )
            seeds, queries = arr.shape
            out[set_name][key] = arr
    return out, plain


def _same_layout(a: Dict[str, Dict[str, np.ndarray]], b: Dict[str, Dict[str, np.ndarray]]) -> None:
    """Paired members need the same query sets, names and shapes (same seeds, same queries)."""
    if list(a) != list(b):
        raise StatisticsError(f"a and b have different query sets: {list(a)} vs {list(b)}")
    for set_name in a:
        if list(a[set_name]) != list(b[set_name]):
            raise StatisticsError(
                f"query set {set_name!r} holds {list(a[set_name])} in a but {list(b[set_name])} in b"
            )
        for key, arr in a[set_name].items():
            if arr.shape != b[set_name][key].shape:
                raise StatisticsError(
                    f"{set_name!r}/{key!r}: a has shape {arr.shape} (seeds, queries), b has {b[set_name][key].shape}; "
                    "a paired comparison needs the same seeds and the same test queries"
                )


def _check_options(n_boot: Any, ci: Any, seed: Any) -> None:
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 1:
        raise StatisticsError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not isinstance(ci, (float, int)) or isinstance(ci, bool) or not 0.0 < float(ci) < 1.0:
        raise StatisticsError(f"ci must be a level strictly between 0 and 1 (e.g. 0.95), got {ci!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise StatisticsError(f"seed must be an integer, got {seed!r}")


def _resolve_stat(stat: Union[str, Stat], plain: bool, sets: Dict[str, Dict[str, np.ndarray]]) -> Stat:
    """The metric as a function of nested per-seed means."""
    if callable(stat):
        if plain:
            return lambda means: stat(means[_PLAIN[0]][_PLAIN[1]])  # type: ignore[misc, arg-type]
        return stat
    if stat != "mean":
        raise StatisticsError(f"stat must be 'mean' or a function of the per-seed means, got {stat!r}")
    names = [(s, k) for s, arrays in sets.items() for k in arrays]
    if len(names) != 1:
        raise StatisticsError(
            f"stat='mean' needs exactly one per-query array, got {len(names)} ({names}): pass a function"
        )
    (set_name, key), = names
    return lambda means: means[set_name][key]


# --------------------------------------------------------------------------- the bootstrap
def _counts(rng: np.random.Generator, replicates: int, n: int) -> np.ndarray:
    """``(replicates, n)`` float64 counts of each index in ``n`` draws with replacement."""
    idx = rng.integers(0, n, size=(replicates, n))
    idx += (np.arange(replicates) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=replicates * n).reshape(replicates, n).astype(np.float64)


def _stacked(sets: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Per query set, every array stacked as ``(Q, K * S)`` (queries first: one matmul per replicate chunk)."""
    return {s: np.stack(list(arrays.values())).transpose(2, 0, 1).reshape(next(iter(arrays.values())).shape[1], -1)
            for s, arrays in sets.items()}


def _unstack(flat: Mapping[str, np.ndarray], like: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, Dict[str, np.ndarray]]:
    """Inverse of :func:`_stacked` on per-seed means: ``(..., K * S)`` -> ``{set: {name: (..., S)}}``."""
    out: Dict[str, Dict[str, np.ndarray]] = {}
    for s, arrays in like.items():
        k, seeds = len(arrays), next(iter(arrays.values())).shape[0]
        m = flat[s].reshape(flat[s].shape[:-1] + (k, seeds))
        out[s] = {key: m[..., i, :] for i, key in enumerate(arrays)}
    return out


def _check_clusters(
    clusters: Optional[Mapping[str, Any]], sets: Dict[str, Dict[str, np.ndarray]], plain: bool
) -> Optional[Dict[str, np.ndarray]]:
    """``{query set: (Q,) int64 index into one shared label space}`` of the clustered sets, or None."""
    if clusters is None:
        return None
    if plain:
        clusters = {_PLAIN[0]: clusters}
    if not isinstance(clusters, Mapping):
        raise StatisticsError("clusters must map query sets to one cluster label per query (or be one array for plain input)")
    unknown = [k for k in clusters if k not in sets]
    if unknown:
        raise StatisticsError(f"clusters name query set(s) {unknown} that the values do not have ({list(sets)})")
    labels: Dict[str, np.ndarray] = {}
    for name, lab in clusters.items():
        arr = np.asarray(lab)
        queries = next(iter(sets[name].values())).shape[1]
        if arr.ndim != 1 or arr.shape[0] != queries:
            raise StatisticsError(f"clusters[{name!r}] needs one label per query ({queries}), got shape {arr.shape}")
        if arr.dtype.kind not in "iu":
            raise StatisticsError(f"clusters[{name!r}] must hold integer labels, got {arr.dtype}")
        labels[name] = arr.astype(np.int64)
    if not labels:
        return None
    union = np.unique(np.concatenate(list(labels.values())))
    return {name: np.searchsorted(union, lab) for name, lab in labels.items()}


def _replicates(
    members: List[Dict[str, Dict[str, np.ndarray]]], stat: Stat, n_boot: int, seed: int,
    clusters: Optional[Dict[str, np.ndarray]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """``(per_seed (M, S), replicates (M, n_boot))`` of the metric for every member.

    A replicate draws ``S`` seeds with replacement and, independently per query set,
    ``Q`` queries with replacement; every member sees the same draws (paired). Its value
    is the mean over the drawn seeds of the metric of each drawn seed's means over the
    drawn queries: counts-weighted sums, computed member by member so that identical
    members give bit-identical replicates. The query sets in ``clusters`` (from
    :func:`_check_clusters`) are resampled by cluster instead, all of them with one draw
    of the clusters: a query weighs as often as its cluster was drawn (a weighted mean).
    """
    like = members[0]
    seeds = next(iter(next(iter(like.values())).values())).shape[0]
    stacks = [_stacked(m) for m in members]
    sizes = {s: st.shape[0] for s, st in stacks[0].items()}
    clusters = clusters or {}
    num_clusters = 1 + max((int(c.max()) for c in clusters.values() if c.size), default=-1)
    per_seed = np.stack([np.asarray(stat(_unstack({s: st.mean(axis=0) for s, st in m.items()}, like)), dtype=np.float64)
                         for m in stacks])
    rng = np.random.default_rng(seed)
    step = max(1, _CELLS_PER_CHUNK // max(max(sizes.values()), seeds, num_clusters))
    out = np.empty((len(members), n_boot))
    for lo in range(0, n_boot, step):
        b = min(step, n_boot - lo)
        seed_w = _counts(rng, b, seeds) if seeds > 1 else np.ones((b, 1))
        query_w = {s: _counts(rng, b, q) for s, q in sizes.items() if s not in clusters}
        if clusters:
            drawn = _counts(rng, b, num_clusters)
            for s, c in clusters.items():
                w = drawn[:, c]
                total = w.sum(axis=1, keepdims=True)
                # A replicate that draws no cluster of this set (possible only when the set
                # lacks some clusters) keeps the set's own queries with weight one.
                query_w[s] = np.where(total > 0, w * (sizes[s] / np.maximum(total, 1.0)), 1.0)
        for i, m in enumerate(stacks):
            means = {s: (query_w[s] @ st) / sizes[s] for s, st in m.items()}  # (b, K * S)
            values = np.asarray(stat(_unstack(means, like)), dtype=np.float64)  # (b, S)
            out[i, lo : lo + b] = (values * seed_w).sum(axis=1) / seeds
    return per_seed, out


def _interval(replicates: np.ndarray, ci: float) -> Tuple[float, float]:
    lo, hi = np.quantile(replicates, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    return float(lo), float(hi)


def paired_bootstrap(
    a: Any, b: Any, *, stat: Union[str, Stat] = "mean", n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
    clusters: Optional[Mapping[str, Any]] = None,
) -> PairedBootstrap:
    """Difference ``a - b`` of two members on identical seeds and test queries, with a bootstrap CI.

    Args:
        a, b: per-query values, already in the metric's unit (percent hits: 0 or 100):
            either one ``(seeds, queries)`` array each, or ``{query set: {name: (seeds,
            queries of that set)}}`` (e.g. ``{"i2t": {"i2t_R@1": ...}, "t2i": {...}}``).
            Row ``s`` of ``a`` and of ``b`` must be the same seed, column ``q`` the same query.
        stat: ``"mean"`` (one array) or a function of the per-seed means, same structure as
            ``a`` (or one array for plain input), elementwise over any leading shape, e.g.
            ``lambda m: sum(v for d in m.values() for v in d.values())`` for rsum.
        n_boot: bootstrap replicates.
        seed: seed of the resampling (results are deterministic).
        ci: confidence level of the percentile interval.
        clusters: queries that are not independent draws, resampled together: ``{query
            set: (queries,) integer labels}`` (one array for plain input). The labels of all
            the sets named share one space and are drawn once per replicate, e.g. the emoji
            of an image-text benchmark with many images and captions per emoji:
            ``{"i2t": image_groups, "t2i": text_groups}`` resamples emoji, each with all its
            images and captions. Sets not named are resampled by query.

    Each replicate resamples the seeds with replacement and, independently per query set,
    the queries with replacement, identically for ``a`` and ``b`` (paired). With one seed
    only queries are resampled. Identical members give ``delta = ci_low = ci_high = 0``.

    Raises:
        StatisticsError: shapes that differ between ``a`` and ``b`` or within a query set,
            non-finite values, bad options.

    Example:
        >>> a = np.array([[100.0, 0, 100, 100], [100, 100, 0, 100]])    # 2 seeds x 4 queries
        >>> paired_bootstrap(a, np.zeros((2, 4)), n_boot=200).delta
        75.0
    """
    _check_options(n_boot, ci, seed)
    sa, plain_a = _as_query_sets(a, "a")
    sb, plain_b = _as_query_sets(b, "b")
    if plain_a != plain_b:
        raise StatisticsError("a and b must both be arrays or both be dicts of query sets")
    _same_layout(sa, sb)
    fn = _resolve_stat(stat, plain_a, sa)
    per_seed, reps = _replicates([sa, sb], fn, int(n_boot), int(seed), _check_clusters(clusters, sa, plain_a))
    diff = per_seed[0] - per_seed[1]
    lo, hi = _interval(reps[0] - reps[1], float(ci))
    return PairedBootstrap(float(diff.mean()), lo, hi, tuple(diff.tolist()), int(n_boot), float(ci))


def summarize_member(
    values: Any, *, stat: Union[str, Stat] = "mean", n_boot: int = 2000, seed: int = 0, ci: float = 0.95,
    clusters: Optional[Mapping[str, Any]] = None,
) -> MemberSummary:
    """Mean, sample std over seeds and bootstrap CI of one member (arguments as :func:`paired_bootstrap`)."""
    _check_options(n_boot, ci, seed)
    sets, plain = _as_query_sets(values, "values")
    fn = _resolve_stat(stat, plain, sets)
    per_seed, reps = _replicates([sets], fn, int(n_boot), int(seed), _check_clusters(clusters, sets, plain))
    vals = per_seed[0]
    std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    lo, hi = _interval(reps[0], float(ci))
    return MemberSummary(float(vals.mean()), std, lo, hi, tuple(vals.tolist()), int(n_boot), float(ci))


# --------------------------------------------------------------------------- from evaluation outputs
def _total(means: Dict[str, Dict[str, np.ndarray]]) -> np.ndarray:
    return sum(v for arrays in means.values() for v in arrays.values())  # type: ignore[return-value]


def _per_query_of(run: Mapping[str, Any], metric: str, where: str) -> Tuple[Mapping[str, Any], str]:
    """The per-query dict holding ``metric`` (``rerank_*`` metrics live in ``rerank_per_query``)."""
    key, name = "per_query", metric
    if metric.startswith("rerank_") and "rerank_per_query" in run:
        key, name = "rerank_per_query", metric[len("rerank_"):]
    if key not in run:
        raise StatisticsError(f"{where} has no {key!r}: evaluate with per_query=True")
    return run[key], name


def _image_text_sets(pq: Mapping[str, Any], name: str) -> Optional[Dict[str, List[str]]]:
    """Query sets and names behind an image-text metric; ``None`` if ``pq`` is not image-text."""
    if "i2t_rank" not in pq:
        return None
    if name == "rsum":
        return {d: [k for k in pq if k.startswith(f"{d}_R@")] for d in ("i2t", "t2i")}
    direction = name.split("_", 1)[0]
    if direction in ("i2t", "t2i") and name.endswith("_meanR"):
        return {direction: [f"{direction}_rank"]}
    if direction in ("i2t", "t2i") and name in pq:
        return {direction: [name]}
    return {}


def _check_equal_folds(pq: Mapping[str, Any], direction: str, where: str) -> None:
    folds = pq.get(f"{direction}_fold")
    if folds is None:
        return
    sizes = np.bincount(np.asarray(folds, dtype=np.int64))
    if sizes.min() != sizes.max():
        raise StatisticsError(
            f"{where}: the folds hold {sizes.tolist()} {direction} queries; the reported metric is a mean of fold "
            "means, which the per-query mean only equals for equal folds"
        )


def metric_inputs(runs: Sequence[Mapping[str, Any]], metric: str) -> Tuple[Dict[str, Dict[str, np.ndarray]], Stat, List[Any]]:
    """``(query sets, stat, query identity)`` of ``metric`` from one evaluation dict per seed.

    ``runs[s]`` is what an evaluation function returned with ``per_query=True`` on seed
    ``s``. Image-text: ``rsum`` uses both directions' R@K, ``i2t_R@K`` / ``t2i_R@K`` one
    direction, ``*_meanR`` the 1-based ranks; re-ID and retrieval: the metric's own
    per-query vector. The query identity (``query_index`` and fold labels) must agree
    between seeds and, for a paired comparison, between members.

    Raises:
        StatisticsError: no runs, no per-query values, a median metric, folds of unequal
            size, or queries that differ between seeds.
    """
    if not runs:
        raise StatisticsError(f"no runs given for {metric!r}: need one evaluation dict per seed")
    layout: Optional[Dict[str, List[str]]] = None
    rows: Dict[str, Dict[str, List[Any]]] = {}
    identity: List[Any] = []
    for s, run in enumerate(runs):
        where = f"run {s} ({metric})"
        pq, name = _per_query_of(run, metric, where)
        if name.endswith("medR"):
            raise StatisticsError(f"{metric} is a median, not a mean of per-query values: it has no bootstrap here")
        sets = _image_text_sets(pq, name)
        if sets is None:
            sets = {"queries": [name]} if name in pq else {}
        if not sets or not all(sets.values()):
            raise StatisticsError(f"{where}: no per-query values for {metric!r} (keys: {sorted(pq)})")
        for d in sets:
            _check_equal_folds(pq, d, where)
        ident = [pq.get(k) for k in ("query_index", "i2t_fold", "t2i_fold")]
        ident.append({n: len(pq[n]) for names in sets.values() for n in names})
        if layout is None:
            layout, identity = sets, ident
        elif sets != layout or ident != identity:
            raise StatisticsError(f"{where}: its queries (or metric names) differ from run 0; seeds must share queries")
        for d, names in sets.items():
            for n in names:
                rows.setdefault(d, {}).setdefault(n, []).append(pq[n])
    arrays = {d: {n: np.asarray(v, dtype=np.float64) for n, v in names.items()} for d, names in rows.items()}
    only = [(d, n) for d, names in arrays.items() for n in names]
    stat: Stat = _total if len(only) > 1 else (lambda m, d=only[0][0], n=only[0][1]: m[d][n])  # type: ignore[misc]
    return arrays, stat, identity


def _run_clusters(runs: Sequence[Mapping[str, Any]], sets: Mapping[str, Any], metric: str) -> Optional[Dict[str, np.ndarray]]:
    """The ``query_clusters`` the runs share (``{query set: labels}``), restricted to ``sets``; None if they have none."""
    found = [r.get("query_clusters") for r in runs]
    if all(f is None for f in found):
        return None
    first = found[0]
    if not isinstance(first, Mapping):
        raise StatisticsError(f"{metric}: query_clusters must map query sets to labels, got {type(first).__name__}")
    for s, f in enumerate(found[1:], start=1):
        if not isinstance(f, Mapping) or set(f) != set(first) or not all(np.array_equal(f[k], first[k]) for k in first):
            raise StatisticsError(f"{metric}: run {s} has other query clusters than run 0; seeds must share queries")
    return {k: np.asarray(v) for k, v in first.items() if k in sets}


def compare_runs(
    runs: Sequence[Mapping[str, Any]],
    baseline_runs: Sequence[Mapping[str, Any]],
    metric: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    ci: float = 0.95,
) -> PairedBootstrap:
    """:func:`paired_bootstrap` of ``metric`` between two members' per-seed evaluation dicts.

    ``runs[s]`` and ``baseline_runs[s]`` must be the same seed on the same test queries. Runs
    that carry ``query_clusters`` (``{query set: labels}``, the same in every run) are
    resampled by cluster (see :func:`paired_bootstrap`).
    """
    a, stat, ident_a = metric_inputs(runs, metric)
    b, _, ident_b = metric_inputs(baseline_runs, metric)
    if ident_a != ident_b:
        raise StatisticsError(f"{metric}: the two members were evaluated on different queries (query_index/folds)")
    clusters = _run_clusters(runs, a, metric)
    base_clusters = _run_clusters(baseline_runs, b, metric)
    if (clusters is None) != (base_clusters is None) or (
        clusters is not None and not all(np.array_equal(clusters[k], base_clusters[k]) for k in clusters)  # type: ignore[index]
    ):
        raise StatisticsError(f"{metric}: the two members' runs give different query clusters")
    return paired_bootstrap(a, b, stat=stat, n_boot=n_boot, seed=seed, ci=ci, clusters=clusters)


def summarize_runs(
    runs: Sequence[Mapping[str, Any]], metric: str, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95
) -> MemberSummary:
    """:func:`summarize_member` of ``metric`` from one member's per-seed evaluation dicts."""
    values, stat, _ = metric_inputs(runs, metric)
    return summarize_member(values, stat=stat, n_boot=n_boot, seed=seed, ci=ci, clusters=_run_clusters(runs, values, metric))


# --------------------------------------------------------------------------- summary.json
#: The keys of every row of ``summary.json``, in this order.
ROW_KEYS = (
    "task", "setting", "dataset", "similarity", "metric", "seeds", "mean", "std", "ci_low", "ci_high",
    "delta_vs_cosine", "delta_ci_low", "delta_ci_high", "params",
)
#: Optional keys of a row: ``val_mean``, the member's mean over seeds of the metric on the
#: validation split at the selected checkpoint (what a validation-based choice of member reads).
OPTIONAL_ROW_KEYS = ("val_mean",)
_TEXT_KEYS = ("task", "setting", "dataset", "similarity", "metric")
_NUMBER_KEYS = ("mean", "std", "ci_low", "ci_high", "delta_vs_cosine", "delta_ci_low", "delta_ci_high")
_SUMMARY_KEYS = ("command", "generated", "git_commit", "rows")
#: Optional: which command produced the rows of which tasks, when a summary merges several runs.
_SOURCE_KEYS = ("command", "generated", "git_commit", "tasks")


def summary_row(
    *,
    task: str,
    setting: str,
    dataset: str,
    similarity: str,
    metric: str,
    seeds: Sequence[int],
    params: int,
    member: MemberSummary,
    delta: PairedBootstrap,
    val_mean: Optional[float] = None,
) -> Dict[str, Any]:
    """One ``summary.json`` row from a member's summary and its paired difference to cosine."""
    if len(seeds) != len(member.per_seed) or len(seeds) != len(delta.per_seed):
        raise SummaryError(
            f"{similarity}/{metric}: {len(seeds)} seeds named, but the statistics cover "
            f"{len(member.per_seed)} (member) and {len(delta.per_seed)} (difference)"
        )
    row = dict(
        task=task, setting=setting, dataset=dataset, similarity=similarity, metric=metric,
        seeds=[int(s) for s in seeds], mean=member.mean, std=member.std, ci_low=member.ci_low,
        ci_high=member.ci_high, delta_vs_cosine=delta.delta, delta_ci_low=delta.ci_low,
        delta_ci_high=delta.ci_high, params=int(params),
    )
    if val_mean is not None:
        row["val_mean"] = float(val_mean)
    return validate_rows([row])[0]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def validate_rows(rows: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Check every row (exact keys, types, finite numbers, ordered intervals); return clean copies.

    Raises:
        SummaryError: naming the row (index, similarity, metric) and the key at fault.
    """
    out: List[Dict[str, Any]] = []
    seen: Dict[Tuple[Any, ...], int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise SummaryError(f"row {i} must be a dict, got {type(row).__name__}")
        label = f"row {i} ({row.get('similarity', '?')}, {row.get('metric', '?')})"
        missing = [k for k in ROW_KEYS if k not in row]
        extra = [k for k in row if k not in ROW_KEYS and k not in OPTIONAL_ROW_KEYS]
        if missing or extra:
            raise SummaryError(
                f"{label}: missing keys {missing}, unexpected keys {extra}; a row has exactly {list(ROW_KEYS)}"
                f" and optionally {list(OPTIONAL_ROW_KEYS)}"
            )
        for k in _TEXT_KEYS:
            if not isinstance(row[k], str) or not row[k]:
                raise SummaryError(f"{label}: {k} must be a non-empty string, got {row[k]!r}")
        for k in _NUMBER_KEYS:
            v = row[k]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise SummaryError(f"{label}: {k} must be a finite number, got {v!r}")
        seeds = row["seeds"]
        if not isinstance(seeds, (list, tuple)) or not seeds or not all(_is_int(s) for s in seeds):
            raise SummaryError(f"{label}: seeds must be a non-empty list of integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise SummaryError(f"{label}: seeds has repeated values: {list(seeds)}")
        if not _is_int(row["params"]) or row["params"] < 0:
            raise SummaryError(f"{label}: params must be a non-negative integer, got {row['params']!r}")
        if row["std"] < 0:
            raise SummaryError(f"{label}: std must not be negative, got {row['std']!r}")
        for lo, hi in (("ci_low", "ci_high"), ("delta_ci_low", "delta_ci_high")):
            if row[lo] > row[hi]:
                raise SummaryError(f"{label}: {lo} ({row[lo]}) is above {hi} ({row[hi]})")
        ident = tuple(row[k] for k in _TEXT_KEYS)
        if ident in seen:
            raise SummaryError(f"{label} repeats row {seen[ident]} (same task, setting, dataset, similarity, metric)")
        seen[ident] = i
        clean = {k: row[k] for k in ROW_KEYS}
        for k in OPTIONAL_ROW_KEYS:
            if k in row:
                v = row[k]
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                    raise SummaryError(f"{label}: {k} must be a finite number, got {v!r}")
                clean[k] = float(v)
        clean["seeds"] = [int(s) for s in seeds]
        clean["params"] = int(row["params"])
        for k in _NUMBER_KEYS:
            clean[k] = float(row[k])
        out.append(clean)
    return out


def _git_commit(folder: Path) -> str:
    """``HEAD`` of the repository holding ``folder`` (``-dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def write_summary(
    rows: Iterable[Mapping[str, Any]],
    path: PathLike,
    *,
    command: str,
    generated: Optional[str] = None,
    git_commit: Optional[str] = None,
    sources: Optional[Sequence[Mapping[str, Any]]] = None,
) -> Path:
    """Validate ``rows`` and write ``{"command", "generated", "git_commit", "rows"}`` atomically.

    ``sources`` (a merged summary, see :func:`merge_summaries`): ``[{"command", "generated",
    "git_commit", "tasks"}]``, the command that produced the rows of each task; written
    under ``"sources"``. Every task of the rows must come from exactly one source.

    Args:
        rows: dicts with exactly :data:`ROW_KEYS` (see :func:`summary_row`).
        path: usually ``docs/results/summary.json``.
        command: the command line that produced the numbers (recorded in the file).
        generated: ISO 8601 time stamp; default now, in UTC.
        git_commit: default ``git rev-parse HEAD`` of the folder of ``path`` (``-dirty``
            when tracked files have uncommitted changes; ``unknown`` outside a repository).
    """
    if not isinstance(command, str) or not command.strip():
        raise SummaryError(f"command must name the command that produced the summary, got {command!r}")
    clean = validate_rows(rows)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = generated or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    commit = git_commit if git_commit is not None else _git_commit(target.parent)
    data: Dict[str, Any] = {"command": command, "generated": stamp, "git_commit": commit, "rows": clean}
    if sources is not None:
        data["sources"] = _check_sources(sources, clean, str(target))
    return atomic_write_json(target, data)


def _check_sources(sources: Any, rows: Sequence[Mapping[str, Any]], where: str) -> List[Dict[str, Any]]:
    if not isinstance(sources, (list, tuple)) or not sources:
        raise SummaryError(f"{where}: sources must be a non-empty list")
    out, owner = [], {}
    for i, src in enumerate(sources):
        if not isinstance(src, Mapping) or sorted(src) != sorted(_SOURCE_KEYS):
            raise SummaryError(f"{where}: sources[{i}] must have exactly the keys {list(_SOURCE_KEYS)}")
        for k in _SOURCE_KEYS[:3]:
            if not isinstance(src[k], str) or not src[k]:
                raise SummaryError(f"{where}: sources[{i}].{k} must be a non-empty string")
        if not isinstance(src["tasks"], list) or not all(isinstance(t, str) for t in src["tasks"]):
            raise SummaryError(f"{where}: sources[{i}].tasks must be a list of task names")
        for t in src["tasks"]:
            if t in owner:
                raise SummaryError(f"{where}: task {t!r} is claimed by sources[{owner[t]}] and sources[{i}]")
            owner[t] = i
        out.append({k: src[k] for k in _SOURCE_KEYS})
    missing = sorted({r["task"] for r in rows} - set(owner))
    if missing:
        raise SummaryError(f"{where}: no source names the task(s) {missing}")
    return out


def merge_summaries(old: Mapping[str, Any], new: Mapping[str, Any]) -> Dict[str, Any]:
    """``new`` with the rows of the tasks it does not have kept from ``old``, and ``sources`` saying which
    command produced which tasks (a task in ``new`` replaces all of its rows in ``old``)."""
    new_tasks = list(dict.fromkeys(r["task"] for r in new["rows"]))
    kept = [r for r in old["rows"] if r["task"] not in new_tasks]
    if not kept:  # new covers everything old had: it stands alone
        return {k: new[k] for k in (*_SUMMARY_KEYS, "sources") if k in new}
    old_sources = old.get("sources") or [
        {"command": old["command"], "generated": old["generated"], "git_commit": old["git_commit"],
         "tasks": list(dict.fromkeys(r["task"] for r in old["rows"]))}
    ]
    kept_tasks = set(r["task"] for r in kept)
    sources = [{**s, "tasks": [t for t in s["tasks"] if t in kept_tasks]} for s in old_sources]
    sources = [s for s in sources if s["tasks"]]
    sources.append({"command": new["command"], "generated": new["generated"], "git_commit": new["git_commit"],
                    "tasks": new_tasks})
    return {"command": new["command"], "generated": new["generated"], "git_commit": new["git_commit"],
            "rows": [*kept, *new["rows"]], "sources": sources}


def _check_summary(summary: Any, where: str) -> Dict[str, Any]:
    if not isinstance(summary, Mapping):
        raise SummaryError(f"{where} must hold a JSON object, got {type(summary).__name__}")
    keys = [k for k in summary if k != "sources"]
    if sorted(keys) != sorted(_SUMMARY_KEYS):
        raise SummaryError(f"{where} has keys {keys}, expected exactly {list(_SUMMARY_KEYS)} (and optionally sources)")
    for k in ("command", "generated", "git_commit"):
        if not isinstance(summary[k], str) or not summary[k]:
            raise SummaryError(f"{where}: {k} must be a non-empty string, got {summary[k]!r}")
    if not isinstance(summary["rows"], list):
        raise SummaryError(f"{where}: rows must be a list")
    out = {**{k: summary[k] for k in _SUMMARY_KEYS[:3]}, "rows": validate_rows(summary["rows"])}
    if "sources" in summary:
        out["sources"] = _check_sources(summary["sources"], out["rows"], where)
    return out


def read_summary(path: PathLike) -> Dict[str, Any]:
    """Load and validate a ``summary.json`` written by :func:`write_summary`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SummaryError(f"cannot read the summary {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SummaryError(f"{path} is not valid JSON: {exc}") from None
    return _check_summary(data, str(path))


# --------------------------------------------------------------------------- results.md
def _signed(v: float, digits: int) -> str:
    return f"{v:+.{digits}f}"


def render_results_markdown(summary: Mapping[str, Any], *, digits: int = 1, title: str = "Results") -> str:
    """Markdown tables of a summary: one per (task, setting, dataset), rows in file order.

    Columns: similarity, metric, seeds, mean ± std, 95% CI, Δ vs cosine with its CI
    (``†`` where that CI excludes 0; ``—`` on the cosine rows), params.
    """
    s = _check_summary(summary, "the summary")
    tables: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
    for row in s["rows"]:
        tables.setdefault((row["task"], row["setting"], row["dataset"]), []).append(row)
    lines = [
        f"# {title}",
        "",
        "<!-- Generated from docs/results/summary.json by gssf.stats.render_results_markdown; do not edit. -->",
        "",
        *(
            [f"Produced by `{src['command']}` at commit `{src['git_commit']}` ({src['generated']}): "
             + ", ".join(src["tasks"]) + "." for src in s["sources"]]
            if s.get("sources") else [f"Produced by `{s['command']}` at commit `{s['git_commit']}` ({s['generated']})."]
        ),
        "Mean ± sample standard deviation over seeds. 95% CI: percentile bootstrap that resamples",
        "seeds and test queries together; Δ vs cosine is paired (same seeds, same queries, same",
        "resampling). † marks a Δ whose 95% CI excludes 0.",
    ]
    for (task, setting, dataset), rows in tables.items():
        lines += ["", f"## {task} · {dataset} · {setting}", ""]
        lines.append("| similarity | metric | seeds | mean ± std | 95% CI | Δ vs cosine (95% CI) | params |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in rows:
            if r["similarity"] == "cosine":
                delta = "—"
            else:
                mark = " †" if r["delta_ci_low"] > 0 or r["delta_ci_high"] < 0 else ""
                delta = (
                    f"{_signed(r['delta_vs_cosine'], digits)} "
                    f"[{_signed(r['delta_ci_low'], digits)}, {_signed(r['delta_ci_high'], digits)}]{mark}"
                )
            lines.append(
                f"| {r['similarity']} | {r['metric']} | {len(r['seeds'])} "
                f"| {r['mean']:.{digits}f} ± {r['std']:.{digits}f} "
                f"| [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}] | {delta} | {r['params']:,} |"
            )
    return "\n".join(lines) + "\n"
