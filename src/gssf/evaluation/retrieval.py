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

import torch
from torch import Tensor

from gssf.evaluation.ranking import (
    Block,
    Groups,
    as_chunk_size,
    as_ks,
    as_score_matrix,
    checked_blocks,
    encode_labels,
    first_relevant_rank,
    matrix_blocks,
    per_query_hits,
    top_relevance,
)

__all__ = ["retrieval_metrics", "retrieval_metrics_from_embeddings", "retrieval_metrics_from_blocks"]

DEFAULT_KS = (1, 2, 4, 8)


def _block_metrics(
    block: Tensor, start: int, ql: Tensor, gl: Tensor, groups: Groups, loo: bool
) -> Optional[Tuple[Tensor, Tensor, Tensor, Tensor]]:
    """First relevant rank, AP@R, R-Precision and row index ``(c',)`` of the rows with a relevant item.

    ``None`` when no row of the block has one.
    """
    dev, c = block.device, block.shape[0]
    rows = torch.arange(start, start + c)
    q = ql[rows]
    relevant = groups.members(q)  # (c, P) gallery items of the query's class
    excluded = None
    if loo:  # the query itself, by index: never a candidate, never relevant
        relevant = relevant.masked_fill(relevant == rows.unsqueeze(1), -1)
        excluded = rows.unsqueeze(1)
    r = (relevant >= 0).sum(dim=1)
    keep = r > 0
    if not bool(keep.any()):
        return None
    if not bool(keep.all()):
        block, relevant, q, r = block[keep.to(dev)], relevant[keep], q[keep], r[keep]
        excluded = None if excluded is None else excluded[keep]
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
    first = first.cpu()
    rel = top.double()
    pos = torch.arange(1, rel.shape[1] + 1, device=dev, dtype=torch.float64)
    rel = rel * (pos.unsqueeze(0) <= r.unsqueeze(1))  # only the first R positions count
    precision = rel.cumsum(dim=1) / pos
    return first, ((precision * rel).sum(dim=1) / r).cpu(), (rel.sum(dim=1) / r).cpu(), rows[keep]


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
    ks = as_ks(ks, candidates, "the candidates per query")
    # Per-query values are reduced once at the end: results do not depend on the chunking.
    firsts: List[Tensor] = []
    map_r: List[Tensor] = []
    r_prec: List[Tensor] = []
    valid_rows: List[Tensor] = []
    seen = 0
    groups = Groups(gl)
    for start, block in checked_blocks(blocks):
        found = _block_metrics(block, start, ql, gl, groups, loo)
        if found is not None:
            firsts.append(found[0])
            map_r.append(found[1])
            r_prec.append(found[2])
            valid_rows.append(found[3])
        seen += block.shape[0]
        del block  # free it before the next block is computed, not after
    if seen != num_query:
        raise ValueError(f"the score blocks covered {seen} query rows, expected {num_query}")
    valid = sum(int(t.numel()) for t in map_r)
    if valid == 0:
        raise ValueError(
            "no query has a relevant item (every class has a single item"
            + (" in the gallery)" if not loo else ")")
            + ": retrieval metrics are undefined"
        )
    first = torch.cat(firsts)
    out: Dict[str, Any] = {f"R@{k}": 100.0 * float((first < k).double().mean()) for k in ks}
    out["MAP@R"] = 100.0 * float(torch.cat(map_r).mean())
    out["R-Precision"] = 100.0 * float(torch.cat(r_prec).mean())
    out["num_valid_queries"] = valid
    if per_query:
        out["per_query"] = {
            "query_index": torch.cat(valid_rows).tolist(),
            "first_rank": (first + 1).tolist(),
            **per_query_hits(first, ks),
            "MAP@R": (100.0 * torch.cat(map_r)).tolist(),
            "R-Precision": (100.0 * torch.cat(r_prec)).tolist(),
        }
    return out


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
    similarity: Any,
    query_labels: Any,
    gallery: Optional[Tensor] = None,
    gallery_labels: Optional[Any] = None,
    ks: Sequence[int] = DEFAULT_KS,
    chunk_size: int = 1024,
    *,
    per_query: bool = False,
) -> Dict[str, Any]:
    """Retrieval metrics streamed over query chunks (at most ``chunk_size x N_gallery`` scores at a time).

    ``queries (N, D)``; ``gallery (M, D)`` with ``gallery_labels``, or neither for
    leave-one-out over ``queries`` (self excluded by global index).
    """
    chunk = as_chunk_size(chunk_size)
    if (gallery is None) != (gallery_labels is None):
        raise ValueError("give both gallery and gallery_labels, or neither (leave-one-out)")
    target = queries if gallery is None else gallery
    blocks = similarity.score_chunks(queries, target, chunk)
    return retrieval_metrics_from_blocks(
        blocks, int(queries.shape[0]), int(target.shape[0]), query_labels, gallery_labels, ks, per_query=per_query
    )
