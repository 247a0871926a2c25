"""Deep metric learning retrieval (CUB-200-2011, Cars196, Stanford Online Products).

Without a gallery it is leave-one-out: every item queries all the others and is
excluded **by index** (dropping the first neighbour would break on duplicates and ties).

* ``R@K``: percentage of queries with a same-class item in the top K (a hit rate);
* ``MAP@R``: mean over queries of ``(1/R) sum_{i<=R} P(i) rel(i)``, ``R`` = number of
  relevant items the query has;
* ``R-Precision``: mean of ``(# relevant in the top R) / R``.

Queries with no relevant item (single-item classes) are excluded from every metric and
counted in ``num_valid_queries``. All rates are in percent; ties follow the pessimistic
policy of :mod:`gssf.evaluation.ranking`.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import importlib.util

import torch
from torch import Tensor

from gssf.evaluation.ranking import (
    Block,
    Groups,
    as_chunk_size,
    check_similarity,
    as_ks,
    as_score_matrix,
    checked_blocks,
    encode_labels,
    first_relevant_rank,
    matrix_blocks,
    per_query_hits,
    top_relevance,
    window_relevance,
)
from gssf.utils.optional import require

__all__ = ["retrieval_metrics", "retrieval_metrics_from_embeddings", "retrieval_metrics_from_blocks"]

DEFAULT_KS = (1, 2, 4, 8)


_Candidates = Tuple[Tensor, Tensor, Tensor, Optional[Tensor], Tensor, Tensor]


def _candidates(rows: Tensor, ql: Tensor, groups: Groups, loo: bool) -> Optional[_Candidates]:
    """For query ``rows``: ``(keep, q, relevant, excluded, r, rows[keep])`` of the rows with a relevant item.

    ``keep (c,)`` bool; ``relevant (c', P)`` their class members, ``excluded (c', 1)`` the
    query itself in leave-one-out (never a candidate, never relevant), ``r (c',)`` counts.
    ``None`` when no row has a relevant item.
    """
    q = ql[rows]
    relevant = groups.members(q)  # (c, P) gallery items of the query's class
    excluded = None
    if loo:  # the query itself, by index
        relevant = relevant.masked_fill(relevant == rows.unsqueeze(1), -1)
        excluded = rows.unsqueeze(1)
    r = (relevant >= 0).sum(dim=1)
    keep = r > 0
    if not bool(keep.any()):
        return None
    if not bool(keep.all()):
        relevant, q, r = relevant[keep], q[keep], r[keep]
        excluded = None if excluded is None else excluded[keep]
    return keep, q, relevant, excluded, r, rows[keep]


def _precision_metrics(top: Tensor, r: Tensor) -> Tuple[Tensor, Tensor]:
    """AP@R and R-Precision ``(c,)`` from the relevance ``top (c, R_max)`` of the best candidates."""
    rel = top.double()
    pos = torch.arange(1, rel.shape[1] + 1, device=top.device, dtype=torch.float64)
    rel = rel * (pos.unsqueeze(0) <= r.unsqueeze(1))  # only the first R positions count
    precision = rel.cumsum(dim=1) / pos
    return ((precision * rel).sum(dim=1) / r).cpu(), (rel.sum(dim=1) / r).cpu()


_RowMetrics = Tuple[Tensor, Tensor, Tensor, Tensor]


def _block_metrics(block: Tensor, rows: Tensor, ql: Tensor, gl: Tensor, groups: Groups, loo: bool) -> Optional[_RowMetrics]:
    """First relevant rank, AP@R, R-Precision and row index ``(c',)`` of the ``rows`` with a relevant item.

    ``block (c, M)`` holds the scores of query ``rows (c,)``. ``None`` when no row has one.
    """
    dev = block.device
    found_rows = _candidates(rows, ql, groups, loo)
    if found_rows is None:
        return None
    keep, q, relevant, excluded, r, kept = found_rows
    if not bool(keep.all()):
        block = block[keep.to(dev)]
    relevant, q, r = relevant.to(dev), q.to(dev), r.to(dev)
    excluded = None if excluded is None else excluded.to(dev)
    top = top_relevance(block, q, gl.to(dev), excluded, int(r.max()))
    # The window of the R_max best candidates is ranked exactly (pessimistic ties): where it
    # holds a relevant item, its first position is the first relevant rank. Only the other
    # rows need the count over the full row.
    found = top.any(dim=1)
    first = top.to(torch.uint8).argmax(dim=1)
    missing = torch.nonzero(~found).flatten()
    if missing.numel():
        ex = None if excluded is None else excluded[missing]
        first[missing] = first_relevant_rank(block[missing], relevant[missing], ex)
    return (first.cpu(), *_precision_metrics(top, r), kept)


def _knn_metrics(
    fq: Tensor, fg: Tensor, rows: Tensor, ql: Tensor, gl: Tensor, groups: Groups, loo: bool
) -> Tuple[Optional[_RowMetrics], Tensor]:
    """The metrics of query ``rows`` from an exact k-NN search of folded features (faiss).

    Returns the metrics of the rows the search settles, and the rows it does not (ties with
    the last scores that continue past the searched window, or no relevant item in it):
    those need their full score rows (:func:`_block_metrics`).
    """
    found_rows = _candidates(rows, ql, groups, loo)
    if found_rows is None:
        return None, rows[:0]
    keep, q, relevant, excluded, r, kept = found_rows
    k = int(r.max())
    width = min(k + (0 if excluded is None else 1) + 1, fg.shape[0])
    vals, idx = _faiss_search(fq[keep], fg, width)
    top, spill, _ = window_relevance(vals, idx, q, gl, excluded, k, fg.shape[0])
    settled = top.any(dim=1) & ~spill
    if not bool(settled.any()):
        return None, kept
    top, r = top[settled], r[settled]
    first = top.to(torch.uint8).argmax(dim=1)
    return (first, *_precision_metrics(top, r), kept[settled]), kept[~settled]


def _faiss_search(fq: Tensor, fg: Tensor, width: int) -> Tuple[Tensor, Tensor]:
    """Exact inner-product top-``width`` scores and columns of each row of ``fq @ fg.T`` (faiss)."""
    faiss = require("faiss", "index", "retrieval metrics with knn='faiss'")
    vals, idx = faiss.knn(fq.numpy(), fg.numpy(), width, metric=faiss.METRIC_INNER_PRODUCT)
    return torch.from_numpy(vals), torch.from_numpy(idx)


def _knn_features(similarity: Any, queries: Tensor, target: Tensor, knn: str) -> Optional[Tuple[Tensor, Tensor]]:
    """Folded float32 CPU features for a faiss k-NN search, or ``None`` for the score-block path.

    ``knn="auto"`` uses faiss when it is installed and the member is static, normalises (so
    every score is bounded) and the features are float32 on the CPU; ``"faiss"`` requires it;
    ``"torch"`` never uses it. Non-finite folded features go to the score-block path, whose
    checks name the offending score.
    """
    if knn not in ("auto", "faiss", "torch"):
        raise ValueError(f"knn must be 'auto', 'faiss' or 'torch', got {knn!r}")
    if knn == "torch":
        return None
    eligible = (
        similarity.is_static
        and similarity.normalizes
        and queries.dtype == torch.float32
        and target.dtype == torch.float32
        and queries.device.type == "cpu"
        and target.device.type == "cpu"
    )
    if knn == "auto" and (not eligible or importlib.util.find_spec("faiss") is None):
        return None
    if not eligible:
        raise ValueError(
            "knn='faiss' needs a static, normalising similarity and float32 CPU features "
            f"(got {similarity.name!r}, {queries.dtype} on {queries.device})"
        )
    fq, fg = similarity.fold_query(queries), similarity.fold_gallery(target)
    if fq.dtype != torch.float32 or not (bool(torch.isfinite(fq).all()) and bool(torch.isfinite(fg).all())):
        return None
    return fq.contiguous(), fg.contiguous()


def _setup(
    num_query: int, num_gallery: int, query_labels: Any, gallery_labels: Optional[Any], ks: Sequence[int]
) -> Tuple[Tensor, Tensor, bool, Tuple[int, ...], Groups]:
    """Checked labels ``(ql, gl)``, leave-one-out or not, cut-offs, and the gallery's groups."""
    loo = gallery_labels is None
    if loo:
        if num_query != num_gallery:
            raise ValueError(
                f"leave-one-out needs a square score matrix (items x items), got {num_query} x {num_gallery}; "
                "pass gallery_labels for a separate gallery"
            )
        (ql,) = encode_labels(query_labels, names=["query_labels"], lengths=[num_query], whats=["the score matrix"])
        gl = ql
    else:
        ql, gl = encode_labels(
            query_labels,
            gallery_labels,
            names=["query_labels", "gallery_labels"],
            lengths=[num_query, num_gallery],
            whats=["the score matrix's query axis (rows)", "the score matrix's gallery axis (columns)"],
        )
    candidates = num_gallery - 1 if loo else num_gallery
    if candidates < 1:
        raise ValueError("leave-one-out needs at least two items")
    return ql, gl, loo, as_ks(ks, candidates, "the candidates per query"), Groups(gl)


def _summary(found: List[_RowMetrics], loo: bool, ks: Tuple[int, ...], per_query: bool) -> Dict[str, Any]:
    """The metrics from the per-query values of every valid query (reduced once: no dependence on chunking)."""
    valid = sum(int(t[1].numel()) for t in found)
    if valid == 0:
        raise ValueError(
            "no query has a relevant item (every class has a single item"
            + (" in the gallery)" if not loo else ")")
            + ": retrieval metrics are undefined"
        )
    first, map_r, r_prec, rows = (torch.cat([t[i] for t in found]) for i in range(4))
    order = torch.argsort(rows)  # row order, whichever path settled a row
    first, map_r, r_prec, rows = first[order], map_r[order], r_prec[order], rows[order]
    out: Dict[str, Any] = {f"R@{k}": 100.0 * float((first < k).double().mean()) for k in ks}
    out["MAP@R"] = 100.0 * float(map_r.mean())
    out["R-Precision"] = 100.0 * float(r_prec.mean())
    out["num_valid_queries"] = valid
    if per_query:
        out["per_query"] = {
            "query_index": rows.tolist(),
            "first_rank": (first + 1).tolist(),
            **per_query_hits(first, ks),
            "MAP@R": (100.0 * map_r).tolist(),
            "R-Precision": (100.0 * r_prec).tolist(),
        }
    return out


def retrieval_metrics_from_blocks(
    blocks: Iterable[Block],
    num_query: int,
    num_gallery: int,
    query_labels: Any,
    gallery_labels: Optional[Any] = None,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    per_query: bool = False,
) -> Dict[str, Any]:
    """Retrieval metrics from consecutive query-row blocks ``(start, scores (c, N_gallery))``.

    ``gallery_labels=None`` means leave-one-out: rows and columns are the same items.
    ``per_query=True`` adds ``"per_query"``: for the valid queries (``query_index``, in
    row order), ``first_rank`` (1-based rank of the first relevant item) and the value of
    each query in every ``R@K``, ``MAP@R`` and ``R-Precision`` (percent), whose mean is the metric.
    """
    ql, gl, loo, ks, groups = _setup(num_query, num_gallery, query_labels, gallery_labels, ks)
    found: List[_RowMetrics] = []
    seen = 0
    for start, block in checked_blocks(blocks):
        rows = _block_metrics(block, torch.arange(start, start + block.shape[0]), ql, gl, groups, loo)
        if rows is not None:
            found.append(rows)
        seen += block.shape[0]
        del block  # free it before the next block is computed, not after
    if seen != num_query:
        raise ValueError(f"the score blocks covered {seen} query rows, expected {num_query}")
    return _summary(found, loo, ks, per_query)


def retrieval_metrics(
    scores: Any,
    query_labels: Any,
    gallery_labels: Optional[Any] = None,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    per_query: bool = False,
) -> Dict[str, Any]:
    """Retrieval metrics from a score matrix.

    Args:
        scores: ``(N, N)`` for leave-one-out, else ``(N_query, N_gallery)``; larger = more similar.
        query_labels: ``(N_query,)`` class labels (ints or strings).
        gallery_labels: ``(N_gallery,)``, or ``None`` for leave-one-out within one set.
        ks: cut-offs (1, 2, 4, 8 for CUB/Cars; 1, 10, 100, 1000 for SOP).
        per_query: add ``"per_query"`` (see :func:`retrieval_metrics_from_blocks`).

    Returns:
        ``{"R@1", ..., "MAP@R", "R-Precision", "num_valid_queries"}``, rates in percent.

    Example:
        >>> s = torch.tensor([[9., 5, 1], [5, 9, 1], [1, 1, 9]])
        >>> retrieval_metrics(s, [0, 0, 1], ks=(1,))["num_valid_queries"]
        2
    """
    scores = as_score_matrix(scores)
    nq, ng = scores.shape
    return retrieval_metrics_from_blocks(
        matrix_blocks(scores), nq, ng, query_labels, gallery_labels, ks, per_query=per_query
    )


@torch.no_grad()
def retrieval_metrics_from_embeddings(
    queries: Tensor,
    gallery: Optional[Tensor],
    similarity: Any,
    *,
    query_labels: Any,
    gallery_labels: Optional[Any] = None,
    chunk_size: int = 1024,
    ks: Sequence[int] = DEFAULT_KS,
    per_query: bool = False,
    knn: str = "auto",
) -> Dict[str, Any]:
    """Retrieval metrics streamed over query chunks (at most ``chunk_size x N_gallery`` scores at a time).

    ``queries (N, D)``; ``gallery (M, D)`` with ``gallery_labels``, or ``gallery=None`` and no
    ``gallery_labels`` for leave-one-out over ``queries`` (self excluded by global index):
    ``retrieval_metrics_from_embeddings(emb, None, similarity, query_labels=labels)``.

    ``knn`` chooses how each query's best candidates are found. ``"torch"``: score blocks
    and ``topk``. ``"faiss"``: a static, normalising member's folded features go to an exact
    faiss inner-product search (GEMM and top-k fused, no score block held), and only the
    rows it cannot settle (ties continuing past the searched window, no relevant item in
    it) get their full score rows. ``"auto"`` (default): faiss where it is installed and
    applies. Both give the same metrics up to the rounding of float32 inner products.
    """
    chunk = as_chunk_size(chunk_size)
    check_similarity(similarity)
    if (gallery is None) != (gallery_labels is None):
        raise ValueError("give both gallery and gallery_labels, or neither (leave-one-out)")
    target = queries if gallery is None else gallery
    folded = _knn_features(similarity, queries, target, knn)
    if folded is None:
        blocks = similarity.score_chunks(queries, target, chunk)
        return retrieval_metrics_from_blocks(
            blocks, int(queries.shape[0]), int(target.shape[0]), query_labels, gallery_labels, ks, per_query=per_query
        )
    fq, fg = folded
    ql, gl, loo, ks, groups = _setup(int(queries.shape[0]), int(target.shape[0]), query_labels, gallery_labels, ks)
    found: List[_RowMetrics] = []
    unsettled: List[Tensor] = []
    for start in range(0, fq.shape[0], chunk):
        rows = torch.arange(start, min(start + chunk, fq.shape[0]))
        settled, rest = _knn_metrics(fq[rows], fg, rows, ql, gl, groups, loo)
        if settled is not None:
            found.append(settled)
        unsettled.append(rest)
    rest = torch.cat(unsettled)
    for i in range(0, rest.numel(), chunk):
        rows = rest[i : i + chunk]
        for offset, block in checked_blocks([(0, similarity.scores(queries[rows], target))]):
            metrics = _block_metrics(block, rows[offset : offset + block.shape[0]], ql, gl, groups, loo)
            if metrics is not None:
                found.append(metrics)
    return _summary(found, loo, ks, per_query)
