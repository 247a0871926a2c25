"""Person re-identification (Market-1501 / DukeMTMC-reID / MSMT17 protocol).

Per query, the gallery is ranked by score; gallery items with the query's identity
*and* camera are removed, as are junk items (pid ``-1``); distractors (pid ``0``) stay.
Queries left without a true match are skipped and counted.

* CMC at rank k: percentage of valid queries whose first true match is within the top k;
* AP: non-interpolated average precision over the whole filtered list (``ap="trapezoid"``
  gives the trapezoid rule of the original Market-1501 MATLAB script); mAP is its mean;
* mINP: mean of ``(# true matches) / (1-based rank of the last true match)``.

All rates are in percent. Ties follow the pessimistic policy of
:mod:`gssf.evaluation.ranking`.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from gssf.evaluation.ranking import (
    Block,
    as_chunk_size,
    check_similarity,
    as_int_labels,
    as_ks,
    as_score_matrix,
    checked_blocks,
    matrix_blocks,
    per_query_hits,
    positive_positions,
)

__all__ = ["reid_metrics", "reid_metrics_from_embeddings", "reid_metrics_from_blocks"]

DEFAULT_KS = (1, 5, 10)
AP_MODES = ("standard", "trapezoid")


class _ReIDInputs:
    """Validated identities and cameras, plus the cut-offs."""

    def __init__(
        self,
        num_query: int,
        num_gallery: int,
        query_pids: Any,
        gallery_pids: Any,
        query_cams: Any,
        gallery_cams: Any,
        max_rank: int,
        ks: Sequence[int],
        ap: str,
    ) -> None:
        q_what, g_what = "the score matrix's query axis (rows)", "the score matrix's gallery axis (columns)"
        self.qp = as_int_labels(query_pids, "query_pids", num_query, q_what)
        self.gp = as_int_labels(gallery_pids, "gallery_pids", num_gallery, g_what)
        self.qc = as_int_labels(query_cams, "query_cams", num_query, q_what)
        self.gc = as_int_labels(gallery_cams, "gallery_cams", num_gallery, g_what)
        if not isinstance(max_rank, (int, np.integer)) or isinstance(max_rank, bool) or max_rank <= 0:
            raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
        if max_rank > num_gallery:
            raise ValueError(
                f"max_rank={max_rank} is larger than the gallery ({num_gallery} items); pass max_rank<={num_gallery}"
            )
        self.max_rank = int(max_rank)
        self.ks = as_ks(ks, num_gallery, "the gallery size")
        if ap not in AP_MODES:
            raise ValueError(f"ap must be one of {AP_MODES}, got {ap!r}")
        self.ap = ap


def _average_precision(positions: Tensor, counts: Tensor, mode: str) -> Tensor:
    """AP ``(R,)`` from 0-based positions ``(R, P)`` of the true matches (padding beyond counts)."""
    i = torch.arange(positions.shape[1], device=positions.device, dtype=torch.float64)
    valid = i.unsqueeze(0) < counts.unsqueeze(1)
    pos = positions.double()
    precision = (i + 1) / (pos + 1)  # precision at each true match
    if mode == "trapezoid":
        # MATLAB script: area under the precision-recall curve by trapezoids; the precision
        # just before a match is i / pos (1 when the match is first in the list).
        before = torch.where(pos > 0, i / pos.clamp_min(1), torch.ones_like(pos))
        precision = (before + precision) / 2
    return (precision * valid).sum(dim=1) / counts.clamp_min(1)


def reid_metrics_from_blocks(
    blocks: Iterable[Block],
    num_query: int,
    num_gallery: int,
    query_pids: Any,
    gallery_pids: Any,
    query_cams: Any,
    gallery_cams: Any,
    max_rank: int = 50,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    ap: str = "standard",
    per_query: bool = False,
) -> Dict[str, Any]:
    """Re-ID metrics from consecutive query-row blocks ``(start, scores (c, N_gallery))``.

    ``per_query=True`` adds ``"per_query"``: for the valid queries (``query_index``, in
    row order), ``first_rank`` (1-based rank of the first true match) and the value of
    each query in ``mAP``, ``mINP`` and every ``R@K`` (percent), whose mean is the metric.
    """
    cfg = _ReIDInputs(num_query, num_gallery, query_pids, gallery_pids, query_cams, gallery_cams, max_rank, ks, ap)
    # Per-query values are kept (O(N_query)) and reduced once at the end, so the result
    # does not depend on the chunking through float summation order.
    first_hits: List[Tensor] = []
    aps: List[Tensor] = []
    inps: List[Tensor] = []
    valid_rows: List[Tensor] = []
    seen = 0
    for start, block in checked_blocks(blocks):
        dev, c = block.device, block.shape[0]
        qp, qc = cfg.qp[start : start + c].to(dev), cfg.qc[start : start + c].to(dev)
        gp, gc = cfg.gp.to(dev), cfg.gc.to(dev)
        same_id = gp.unsqueeze(0) == qp.unsqueeze(1)
        same_cam = gc.unsqueeze(0) == qc.unsqueeze(1)
        candidates = (gp != -1).unsqueeze(0) & ~(same_id & same_cam)
        positions, counts = positive_positions(block, candidates & same_id, candidates)
        keep = counts > 0
        positions, counts = positions[keep], counts[keep]
        if counts.numel():
            first_hits.append(positions[:, 0].cpu())
            aps.append(_average_precision(positions, counts, cfg.ap).cpu())
            last = positions.gather(1, (counts - 1).unsqueeze(1)).squeeze(1)
            inps.append((counts.double() / (last + 1).double()).cpu())
            valid_rows.append(torch.arange(start, start + c)[keep.cpu()])
        seen += c
        del block  # free it before the next block is computed, not after
    if seen != num_query:
        raise ValueError(f"the score blocks covered {seen} query rows, expected {num_query}")
    valid = sum(int(a.numel()) for a in aps)
    if valid == 0:
        raise ValueError(
            "no query has a true match in the gallery after removing same-identity-same-camera and "
            "junk (pid -1) items; with a single camera, give queries and gallery different camera ids"
        )
    first = torch.cat(first_hits)
    hist = torch.bincount(first.clamp_max(cfg.max_rank), minlength=cfg.max_rank + 1)[: cfg.max_rank]
    cmc = (100.0 * hist.cumsum(0).double() / valid).tolist()
    out: Dict[str, Any] = {
        "mAP": 100.0 * float(torch.cat(aps).mean()),
        "mINP": 100.0 * float(torch.cat(inps).mean()),
    }
    for k in cfg.ks:
        out[f"R@{k}"] = 100.0 * float((first < k).double().mean())
    out["cmc"] = [float(v) for v in cmc]
    out["num_valid_queries"] = valid
    out["num_skipped_queries"] = num_query - valid
    if per_query:
        out["per_query"] = {
            "query_index": torch.cat(valid_rows).tolist(),
            "first_rank": (first + 1).tolist(),
            "mAP": (100.0 * torch.cat(aps)).tolist(),
            "mINP": (100.0 * torch.cat(inps)).tolist(),
            **per_query_hits(first, cfg.ks),
        }
    return out


def reid_metrics(
    scores: Any,
    query_pids: Any,
    gallery_pids: Any,
    query_cams: Any,
    gallery_cams: Any,
    max_rank: int = 50,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    ap: str = "standard",
    per_query: bool = False,
) -> Dict[str, Any]:
    """Re-ID metrics from a query x gallery score matrix.

    Args:
        scores: ``(N_query, N_gallery)``, larger = more similar (negate a distance matrix).
        query_pids, gallery_pids: identities ``(N_query,)``, ``(N_gallery,)``; ``-1`` = junk.
        query_cams, gallery_cams: camera ids.
        max_rank: length of the returned CMC curve (``<= N_gallery``).
        ks: ranks reported as ``R@K``.
        ap: ``"standard"`` (non-interpolated) or ``"trapezoid"`` (Market-1501 MATLAB script).
        per_query: add ``"per_query"`` (see :func:`reid_metrics_from_blocks`).

    Returns:
        ``{"mAP", "mINP", "R@1", "R@5", "R@10", "cmc", "num_valid_queries",
        "num_skipped_queries"}``, rates in percent, ``cmc`` a list of ``max_rank`` floats.
    """
    scores = as_score_matrix(scores)
    nq, ng = scores.shape
    return reid_metrics_from_blocks(
        matrix_blocks(scores), nq, ng, query_pids, gallery_pids, query_cams, gallery_cams, max_rank,
        ks=ks, ap=ap, per_query=per_query,
    )


@torch.no_grad()
def reid_metrics_from_embeddings(
    query: Tensor,
    gallery: Tensor,
    similarity: Any,
    *,
    query_pids: Any,
    gallery_pids: Any,
    query_cams: Any,
    gallery_cams: Any,
    chunk_size: int = 1024,
    max_rank: int = 50,
    ks: Sequence[int] = DEFAULT_KS,
    ap: str = "standard",
    rerank: Optional[Dict[str, Any]] = None,
    per_query: bool = False,
) -> Dict[str, Any]:
    """Re-ID metrics streamed over query chunks (at most ``chunk_size x N_gallery`` scores at a time).

    ``rerank``: ``None`` for none; a dict of :func:`~gssf.evaluation.rerank.k_reciprocal_blocks`
    options (``{}`` for the defaults k1=20, k2=6, lambda_value=0.3) adds the re-ranked
    metrics under ``rerank_``-prefixed keys, reported next to (never instead of) the plain ones
    (with ``per_query``, the re-ranked per-query values are ``rerank_per_query``).
    """
    chunk = as_chunk_size(chunk_size)
    check_similarity(similarity)
    nq, ng = int(query.shape[0]), int(gallery.shape[0])
    out = reid_metrics_from_blocks(
        similarity.score_chunks(query, gallery, chunk),
        nq, ng, query_pids, gallery_pids, query_cams, gallery_cams, max_rank, ks=ks, ap=ap, per_query=per_query,
    )
    if rerank is not None:
        from gssf.evaluation.rerank import k_reciprocal_blocks

        blocks = k_reciprocal_blocks(query, gallery, similarity, chunk_size=chunk, **rerank)
        again = reid_metrics_from_blocks(
            blocks, nq, ng, query_pids, gallery_pids, query_cams, gallery_cams, max_rank,
            ks=ks, ap=ap, per_query=per_query,
        )
        out.update({f"rerank_{k}": v for k, v in again.items()})
    return out
