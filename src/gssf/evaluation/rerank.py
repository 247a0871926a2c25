"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) from any similarity, in bounded memory.

The published code builds dense ``(Nq + Ng)^2`` distance and weight matrices from
Euclidean features. Here the distance comes from the similarity itself, as the
distance it induces::

    d(i, j) = s(i, i) + s(j, j) - 2 s(i, j)      (clamped at 0)

which *is* the squared Euclidean distance of the original for an inner-product
similarity (``dot``), ``2 - 2 cos`` for ``cosine``, and is defined for any learned or
pair-conditioned similarity. Rows are the items; an asymmetric similarity is used
row-wise (``d(i, .)`` from ``s(i, .)``).

Memory: the all-items score matrix is only ever seen as ``chunk x N`` row blocks (it is
recomputed on each of three passes rather than stored); what is kept is
``O(N k1 round(k1/2))`` for the neighbour lists and ``O(N k2 W)`` for the sparse
weights (``W`` = size of an expanded k-reciprocal set), never ``O(N^2)``.

Steps (notation of the paper): ``N(i, k1+1)`` nearest neighbours (the item itself
first); ``R(i)``: those that also have ``i`` in their own list; ``R*(i)``: ``R(i)`` plus
``R(c, round(k1/2))`` of every ``c`` in ``R(i)`` sharing more than 2/3 of it with
``R(i)``; weights ``V[i, j] = softmax_j(-d~(i, j))`` over ``R*(i)`` with ``d~`` the
distance divided by its row maximum; query expansion ``V <- mean of V`` over the
``k2`` nearest neighbours; Jaccard distance ``1 - m / (2 - m)`` with
``m = sum_k min(V[i, k], V[j, k])``; final ``(1 - lambda) * Jaccard + lambda * d~``.
Neighbour ties are broken by the order ``torch.topk`` returns (the item itself always first).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from gssf.evaluation.ranking import Block, as_chunk_size, checked_blocks

__all__ = ["k_reciprocal_blocks", "k_reciprocal_rerank", "k_reciprocal_rerank_from_scores"]

# Upper bound on (query, gallery, shared support) triples materialised at once in the
# Jaccard step; bounds that step's memory independently of the chunk size.
_TRIPLE_BUDGET = 1 << 22

RowBlocks = Callable[[int], Iterator[Block]]  # num_rows -> blocks over rows [0, num_rows) of the all-items scores


class _AllItems:
    """Row blocks of the ``(N, N)`` scores of all items ``[queries; gallery]`` and their self-scores."""

    def __init__(self, blocks: RowBlocks, self_scores: Tensor, num_query: int) -> None:
        self.blocks = blocks
        self.self_scores = self_scores
        self.num_query = num_query
        self.n = int(self_scores.numel())

    def distances(self, num_rows: int) -> Iterator[Tuple[int, Tensor]]:
        """``(start, d (c, N))`` induced distances for rows ``[0, num_rows)``."""
        for start, block in checked_blocks(self.blocks(num_rows), "similarity scores"):
            own = self.self_scores.to(block.device, block.dtype)
            d = own[start : start + block.shape[0]].unsqueeze(1) + own.unsqueeze(0) - 2 * block
            yield start, d.clamp_min_(0)


def _neighbours(items: _AllItems, k: int) -> Tuple[Tensor, Tensor]:
    """Nearest ``k`` items of every item (itself first) ``(N, k)`` and each row's max distance ``(N,)``."""
    nbr = torch.empty(items.n, k, dtype=torch.long)
    row_max = torch.empty(items.n, dtype=torch.float64)
    for start, d in items.distances(items.n):
        rows = torch.arange(d.shape[0], device=d.device)
        row_max[start : start + d.shape[0]] = d.amax(dim=1).double().cpu()
        d[rows, rows + start] = -1.0  # below every clamped distance: the item ranks itself first
        nbr[start : start + d.shape[0]] = d.topk(k, dim=1, largest=False).indices.cpu()
    return nbr, row_max.clamp_min(torch.finfo(torch.float64).tiny)


def _reciprocal(nbr: Tensor, rows: Tensor, width: int) -> Tensor:
    """``(len(rows), width)`` mask: is ``rows[r]`` among the first ``width`` neighbours of its own neighbours?"""
    forward = nbr[rows, :width]
    backward = nbr[forward, :width]  # (r, width, width)
    return (backward == rows.view(-1, 1, 1)).any(dim=-1)


def _expanded_sets(nbr: Tensor, k1: int, chunk: int) -> Tuple[Tensor, Tensor]:
    """``R*(i)`` of every item as padded sorted ids ``(N, W)`` and a validity mask."""
    n, k = nbr.shape
    half = int(np.around(k1 / 2.0)) + 1  # the paper's round(k1/2) neighbours plus the item itself
    all_rows = torch.arange(n)
    half_recip = torch.cat([_reciprocal(nbr, all_rows[s : s + chunk], half) for s in range(0, n, chunk)])
    ids_list, width = [], 1
    for s in range(0, n, chunk):
        rows = all_rows[s : s + chunk]
        recip = _reciprocal(nbr, rows, k)  # (r, k)
        r_ids = torch.where(recip, nbr[rows], -1)
        cand = nbr[rows]  # candidates c in N(i); only the reciprocal ones may expand
        c_ids, c_mask = nbr[cand, :half], half_recip[cand]  # R(c, round(k1/2)) as (r, k, half)
        shared = ((c_ids.unsqueeze(-1) == r_ids.view(-1, 1, 1, k)).any(dim=-1) & c_mask).sum(dim=-1)
        expand = recip & (shared > 2.0 / 3.0 * c_mask.sum(dim=-1))
        ids = torch.cat([r_ids.masked_fill(~recip, n), c_ids.masked_fill(~(c_mask & expand.unsqueeze(-1)), n).flatten(1)], 1)
        ids = ids.sort(dim=1).values
        ids[:, 1:].masked_fill_(ids[:, 1:] == ids[:, :-1], n)  # drop repeats
        ids = ids.sort(dim=1).values
        width = max(width, int((ids < n).sum(dim=1).max()))
        ids_list.append(ids)
    ids = torch.cat([i[:, :width] for i in ids_list])
    return ids, ids < n


def _coalesce(rows: Tensor, cols: Tensor, vals: Tensor, n: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Sum duplicate ``(row, col)`` entries; output sorted by row then column."""
    keys, inverse = torch.unique(rows * n + cols, return_inverse=True)
    summed = torch.zeros(keys.numel(), dtype=vals.dtype).index_add_(0, inverse, vals)
    return keys // n, keys % n, summed


def _csr_pointers(rows: Tensor, num_rows: int) -> Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(rows, minlength=num_rows).cumsum(0)])


def _weights(
    items: _AllItems, ids: Tensor, valid: Tensor, row_max: Tensor, nbr: Tensor, k2: int, chunk: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Sparse query-expanded weights ``V`` of every item as sorted (row, col, value) triples."""
    n = items.n
    vals = torch.zeros(ids.shape, dtype=torch.float64)
    safe_ids = ids.clamp_max(n - 1)
    for start, d in items.distances(n):
        sel = slice(start, start + d.shape[0])
        dn = d.gather(1, safe_ids[sel].to(d.device)).double().cpu() / row_max[sel].unsqueeze(1)
        w = torch.exp(-dn) * valid[sel]
        vals[sel] = w / w.sum(dim=1, keepdim=True)
    rows_out, cols_out, vals_out = [], [], []
    for s in range(0, n, chunk):
        rows = torch.arange(s, min(s + chunk, n))
        src = nbr[rows, :k2]  # average V over the k2 nearest neighbours (the item itself included)
        r = rows.view(-1, 1, 1).expand(-1, k2, ids.shape[1])
        m = valid[src]
        rr, cc, vv = _coalesce(r[m], ids[src][m], vals[src][m] / k2, n)
        rows_out.append(rr), cols_out.append(cc), vals_out.append(vv)
    return torch.cat(rows_out), torch.cat(cols_out), torch.cat(vals_out)


def _rerank_blocks(items: _AllItems, k1: int, k2: int, lambda_value: float, chunk: int) -> Iterator[Block]:
    n, nq = items.n, items.num_query
    if not isinstance(k1, int) or k1 < 1 or k1 + 1 > n:
        raise ValueError(f"k1 must be an integer in [1, {n - 1}] (items minus one), got {k1!r}")
    if not isinstance(k2, int) or not 1 <= k2 <= k1 + 1:
        raise ValueError(f"k2 must be an integer in [1, k1 + 1], got {k2!r}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
    nbr, row_max = _neighbours(items, k1 + 1)
    ids, valid = _expanded_sets(nbr, k1, chunk)
    v_rows, v_cols, v_vals = _weights(items, ids, valid, row_max, nbr, k2, chunk)
    del ids, valid
    q_ptr = _csr_pointers(v_rows, n)
    # Inverted index over the gallery rows only: for each support item k, the gallery rows
    # j with V[j, k] > 0 and their weights (column-major order).
    g = v_rows >= nq
    g_cols, g_rows, g_vals = v_cols[g], v_rows[g] - nq, v_vals[g]
    order = torch.argsort(g_cols * (n - nq) + g_rows)
    g_cols, g_rows, g_vals = g_cols[order], g_rows[order], g_vals[order]
    inv_ptr = _csr_pointers(g_cols, n)
    inv_len = inv_ptr[1:] - inv_ptr[:-1]
    for start, d in items.distances(nq):
        c = d.shape[0]
        overlap = torch.zeros(c, n - nq, dtype=torch.float64)
        lo, hi = int(q_ptr[start]), int(q_ptr[start + c])
        q_rows, q_cols, q_vals = v_rows[lo:hi] - start, v_cols[lo:hi], v_vals[lo:hi]
        cost = inv_len[q_cols]
        bounds = torch.cumsum(cost, 0)
        s = 0
        while s < q_rows.numel():  # split so at most _TRIPLE_BUDGET triples exist at once
            base = int(bounds[s - 1]) if s else 0
            e = max(s + 1, int(torch.searchsorted(bounds, base + _TRIPLE_BUDGET, right=True)))
            cnt = cost[s:e]
            total = int(cnt.sum())
            if total:
                owner = torch.repeat_interleave(torch.arange(e - s), cnt)
                first = torch.repeat_interleave(inv_ptr[q_cols[s:e]] - (torch.cumsum(cnt, 0) - cnt), cnt)
                idx = first + torch.arange(total)
                mins = torch.minimum(q_vals[s:e][owner], g_vals[idx])
                overlap.index_put_((q_rows[s:e][owner], g_rows[idx]), mins, accumulate=True)
            s = e
        jaccard = 1.0 - overlap / (2.0 - overlap)
        original = d[:, nq:].double().cpu() / row_max[start : start + c].unsqueeze(1)
        final = (1.0 - lambda_value) * jaccard + lambda_value * original
        yield start, (-final).to(d.dtype).to(d.device)


def k_reciprocal_blocks(
    query: Tensor,
    gallery: Tensor,
    similarity: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 1024,
) -> Iterator[Block]:
    """Yield ``(start, scores (c, N_gallery))`` re-ranked scores (negated re-ranked distances) per query chunk.

    ``query (Nq, D)``, ``gallery (Ng, D)``; the similarity is called on the concatenation
    ``[query; gallery]`` against itself, a ``chunk_size x (Nq + Ng)`` block at a time.
    """
    chunk = as_chunk_size(chunk_size)
    every = torch.cat([query, gallery.to(query.dtype)], dim=0)
    with torch.no_grad():
        own = similarity.pair(every, every).detach()

    def blocks(num_rows: int) -> Iterator[Block]:
        with torch.no_grad():
            yield from similarity.score_chunks(every[:num_rows], every, chunk)

    yield from _rerank_blocks(_AllItems(blocks, own, int(query.shape[0])), k1, k2, float(lambda_value), chunk)


def k_reciprocal_rerank(
    query: Tensor,
    gallery: Tensor,
    similarity: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 1024,
) -> Tensor:
    """Re-ranked scores ``(Nq, Ng)`` (larger = more similar) from embeddings and a similarity."""
    parts = [b for _, b in k_reciprocal_blocks(query, gallery, similarity, k1, k2, lambda_value, chunk_size)]
    return torch.cat(parts, dim=0)


def _as_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach()
    arr = np.array(x)  # a copy: memory maps are read-only
    if arr.ndim != 2:
        raise ValueError(f"score matrices must be 2-D, got shape {arr.shape}")
    return torch.from_numpy(arr)


def k_reciprocal_rerank_from_scores(
    scores_qg: Any,
    scores_qq: Any,
    scores_gg: Any,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    scores_gq: Optional[Any] = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Re-ranked scores ``(Nq, Ng)`` from saved score matrices.

    Args:
        scores_qg: ``(Nq, Ng)`` query x gallery scores; ``scores_qq (Nq, Nq)``;
            ``scores_gg (Ng, Ng)``; ``scores_gq (Ng, Nq)`` defaults to ``scores_qg.T``
            (a symmetric similarity).
    """
    qg, qq, gg = (_as_tensor(x) for x in (scores_qg, scores_qq, scores_gg))
    nq, ng = qg.shape
    if qq.shape != (nq, nq) or gg.shape != (ng, ng):
        raise ValueError(
            f"score shapes disagree: query x gallery {tuple(qg.shape)} needs query x query ({nq}, {nq}) and "
            f"gallery x gallery ({ng}, {ng}), got {tuple(qq.shape)} and {tuple(gg.shape)}"
        )
    gq = qg.T if scores_gq is None else _as_tensor(scores_gq)
    if gq.shape != (ng, nq):
        raise ValueError(f"scores_gq must be ({ng}, {nq}), got {tuple(gq.shape)}")
    dtype = torch.float64 if torch.float64 in (qg.dtype, qq.dtype, gg.dtype) else torch.float32
    own = torch.cat([qq.diagonal(), gg.diagonal()]).to(dtype)
    chunk = as_chunk_size(chunk_size)

    def blocks(num_rows: int) -> Iterator[Block]:
        for s in range(0, num_rows, chunk):
            e = min(s + chunk, num_rows)
            parts = []
            if s < nq:  # query rows: [qq | qg]
                parts.append(torch.cat([qq[s : min(e, nq)], qg[s : min(e, nq)]], dim=1).to(dtype))
            if e > nq:  # gallery rows: [gq | gg]
                a, b = max(s, nq) - nq, e - nq
                parts.append(torch.cat([gq[a:b], gg[a:b]], dim=1).to(dtype))
            yield s, torch.cat(parts, dim=0)

    return torch.cat([b for _, b in _rerank_blocks(_AllItems(blocks, own, nq), k1, k2, float(lambda_value), chunk)])
