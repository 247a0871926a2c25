"""Shared ranking kernels, the tie policy, input checks and score-block sources.

Tie policy (one for every protocol, full and streaming paths alike): **pessimistic**.
In each query's ranked list a relevant item is placed *after* every non-relevant
candidate whose score is greater than **or equal to** its own. So a relevant item's
0-based position is::

    (# relevant items ranked before it) + (# non-relevant candidates with score >= its score)

Ties between two relevant items do not move any metric (the set of positions they
occupy is the same either way). The policy never depends on the order of the gallery,
so results are deterministic and can only be lowered by ties, never inflated
(a constant similarity scores R@1 = 0, not 100).

Every kernel here works on one block of query rows ``scores (R, M)`` at a time, so the
callers hold at most a chunk x M block plus a few same-sized boolean masks.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Block",
    "Groups",
    "checked_blocks",
    "count_at_least",
    "first_relevant_rank",
    "gather_scores",
    "matrix_blocks",
    "per_query_hits",
    "positive_positions",
    "top_relevance",
    "top_window",
    "window_relevance",
]

#: ``(start, scores[start:start + c])``: a block of consecutive query rows.
Block = Tuple[int, Tensor]

# Rows per block when a full matrix is walked: about 8M scores (32 MB in float32), so
# the kernels' temporaries stay small next to the matrix itself.
_BLOCK_ELEMENTS = 1 << 23


# --------------------------------------------------------------------------- input checks
def as_score_matrix(scores: Any, name: str = "scores") -> Any:
    """Check that ``scores`` is a non-empty 2-D tensor or array; return it unchanged (no copy)."""
    if not isinstance(scores, (Tensor, np.ndarray)):
        scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (queries, gallery) matrix, got shape {tuple(scores.shape)}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(scores.shape)}")
    if isinstance(scores, np.ndarray) and not (
        np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)
    ):
        raise ValueError(f"{name} must hold numbers, got dtype {scores.dtype}")
    return scores


def _to_numpy_1d(values: Any, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def as_int_labels(values: Any, name: str, length: Optional[int] = None, what: str = "") -> Tensor:
    """A 1-D int64 CPU tensor of integer labels; ``length`` is checked against ``what``."""
    arr = _to_numpy_1d(values, name)
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries but {what} has {length}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        elif arr.dtype == bool:
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return torch.as_tensor(arr.astype(np.int64, copy=False))


def encode_labels(*label_sets: Any, names: Sequence[str], lengths: Sequence[Optional[int]], whats: Sequence[str]) -> Tuple[Tensor, ...]:
    """Encode label arrays of any hashable dtype (ints, strings) jointly as int64 codes."""
    arrays = []
    for values, name, length, what in zip(label_sets, names, lengths, whats):
        arr = _to_numpy_1d(values, name)
        if length is not None and arr.shape[0] != length:
            raise ValueError(f"{name} has {arr.shape[0]} entries but {what} has {length}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf")
        arrays.append(arr)
    try:
        _, codes = np.unique(np.concatenate(arrays), return_inverse=True)
    except TypeError as exc:  # mixed, unorderable label types
        raise ValueError(f"labels must be of one comparable type: {exc}") from None
    out, offset = [], 0
    for arr in arrays:
        out.append(torch.as_tensor(codes[offset : offset + arr.shape[0]].astype(np.int64)))
        offset += arr.shape[0]
    return tuple(out)


def as_ks(ks: Iterable[int], limit: int, what: str) -> Tuple[int, ...]:
    """Validate recall cut-offs: positive integers no larger than ``limit`` (the candidates per query)."""
    try:
        out = tuple(ks)
    except TypeError:
        raise ValueError(f"ks must be a sequence of positive integers, got {ks!r}") from None
    if not out:
        raise ValueError("ks is empty: give at least one cut-off K")
    for k in out:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise ValueError(f"every K in ks must be a positive integer, got {k!r}")
        if k > limit:
            raise ValueError(f"K={k} is larger than {what} ({limit}): R@{k} would be trivially 100")
    if len(set(out)) != len(out):
        raise ValueError(f"ks has repeated values: {out}")
    return tuple(int(k) for k in out)


def as_chunk_size(chunk_size: Any) -> int:
    """``chunk_size`` as a positive ``int`` (the one check every streaming entry point uses)."""
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def check_similarity(similarity: Any) -> Any:
    """``similarity`` if it scores chunks; a clear error for a misplaced argument otherwise.

    The streaming functions share one order, ``(queries, gallery, similarity, *, labels...)``:
    a tensor or label array in the third place is an old-order call.
    """
    if not callable(getattr(similarity, "score_chunks", None)):
        raise TypeError(
            f"similarity must be a gssf.Similarity (with score_chunks), got {type(similarity).__name__}; "
            "the streaming metrics take (queries, gallery, similarity, *, labels and options as keywords)"
        )
    return similarity


# --------------------------------------------------------------------------- block sources
def float_block(block: Any) -> Tensor:
    """A detached floating tensor: numpy copied (only this block), integers as float64, fp16/bf16 as fp32."""
    if isinstance(block, np.ndarray):
        # np.array copies only this block (a memory-mapped .npy stays on disk).
        block = torch.from_numpy(np.array(block, dtype=np.float64 if block.dtype == np.float64 else np.float32))
    block = block.detach()
    if not block.is_floating_point():
        block = block.to(torch.float64)
    elif block.dtype in (torch.float16, torch.bfloat16):
        block = block.float()  # rank in fp32 whatever the storage precision
    return block


def matrix_blocks(scores: Any, rows: Optional[int] = None) -> Iterator[Block]:
    """Walk a full ``(N, M)`` score matrix (tensor, array or memory map) in row blocks (views for tensors)."""
    n, m = scores.shape
    step = rows or max(1, _BLOCK_ELEMENTS // max(m, 1))
    for start in range(0, n, step):
        yield start, float_block(scores[start : start + step])


def checked_blocks(blocks: Iterable[Tuple[int, Tensor]], name: str = "scores") -> Iterator[Block]:
    """Pass blocks through, raising a clear error on the first non-finite score.

    NaN has no place in a ranking, and +-inf would collide with the sentinels used below,
    so both are rejected rather than silently ranked. ``aminmax`` propagates NaN and needs
    no block-sized temporary (``isfinite`` would allocate several).

    A block larger than the full-matrix path's walking step (``_BLOCK_ELEMENTS`` scores) is
    passed on as row views of at most that size, so the ranking's temporaries (masks,
    bins: several bytes per score) are bounded as in the full path: a streaming evaluation
    then peaks at its score block plus those, below the full path (whole matrix plus the
    same) at every chunk size.
    """
    for start, block in blocks:
        block = float_block(block)
        lo, hi = torch.aminmax(block)
        if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            bad = torch.nonzero(~torch.isfinite(block))[0].tolist()
            value = block[bad[0], bad[1]].item()
            raise ValueError(
                f"{name} contain a non-finite value ({value}) at row {start + bad[0]}, column {bad[1]}: "
                "every score must be a finite number"
            )
        step = max(1, _BLOCK_ELEMENTS // max(block.shape[1], 1))
        if block.shape[0] <= step:
            yield start, block
        else:
            for offset in range(0, block.shape[0], step):
                yield start + offset, block[offset : offset + step]
        del block  # do not hold this block while the producer computes the next one


# --------------------------------------------------------------------------- tie-policy kernels
def count_at_least(values: Tensor, thresholds: Tensor, candidates: Optional[Tensor]) -> Tensor:
    """``out[r, p] = #{m : candidates[r, m] and values[r, m] >= thresholds[r, p]}``.

    Args:
        values: ``(R, M)`` finite scores (a transposed view is fine).
        thresholds: ``(R, P)``, each row sorted ascending; ``-inf`` padding may lead a row
            (its counts are meaningless and must be ignored by the caller).
        candidates: ``(R, M)`` bool, or ``None`` for all.

    Returns:
        ``(R, P)`` int64 counts. ``>=`` is where the pessimistic tie policy lives.
    """
    r, p = thresholds.shape
    if p == 1:
        hit = values >= thresholds
        if candidates is not None:
            hit &= candidates
        # int32 accumulation is several times faster than int64 on a bool tensor.
        return hit.sum(dim=1, keepdim=True, dtype=torch.int32).long()
    masked = values if candidates is None else values.masked_fill(~candidates, float("-inf"))
    # bins[r, m] = number of thresholds <= value, i.e. the value reaches thresholds 0..bin-1.
    # int32 and offset in place: one 4-byte (R, M) temporary instead of two 8-byte ones.
    small = r * (p + 1) < 2**31
    bins = torch.searchsorted(thresholds.contiguous(), masked.contiguous(), right=True, out_int32=small)
    bins.add_((torch.arange(r, device=bins.device, dtype=bins.dtype) * (p + 1)).unsqueeze(1))
    hist = torch.bincount(bins.flatten(), minlength=r * (p + 1)).view(r, p + 1)
    at_least = hist.flip(1).cumsum(1).flip(1)  # at_least[b] = #values in bins >= b
    return at_least[:, 1:]


def positive_positions(scores: Tensor, positives: Tensor, candidates: Tensor) -> Tuple[Tensor, Tensor]:
    """0-based positions of every relevant item in each row's ranked candidate list.

    Args:
        scores: ``(R, M)``.
        positives: ``(R, M)`` bool, a subset of ``candidates``.
        candidates: ``(R, M)`` bool: the items that are ranked at all.

    Returns:
        ``positions (R, P)`` int64, each row ascending (entry ``i`` is the ``i``-th best
        relevant item; entries ``i >= counts[r]`` are padding), and ``counts (R,)``.
    """
    counts = positives.sum(dim=1)
    p = int(counts.max()) if counts.numel() else 0
    if p == 0:
        return torch.zeros(scores.shape[0], 0, dtype=torch.long, device=scores.device), counts
    top = scores.masked_fill(~positives, float("-inf")).topk(p, dim=1).values  # descending, -inf pads last
    negatives_ge = count_at_least(scores, top.flip(1), candidates & ~positives).flip(1)
    positions = torch.arange(p, device=scores.device) + negatives_ge
    return positions, counts


class Groups:
    """Members of each label, looked up per block without a dense (rows x M) mask.

    ``labels (M,)`` non-negative int64 codes of the gallery items.
    """

    def __init__(self, labels: Tensor, num_groups: Optional[int] = None) -> None:
        n = int(labels.max()) + 1 if labels.numel() else 0
        g = max(n, num_groups or 0)
        self.order = torch.argsort(labels, stable=True)
        self.counts = torch.bincount(labels, minlength=g)
        self.starts = self.counts.cumsum(0) - self.counts

    def members(self, groups: Tensor) -> Tensor:
        """``(R, P)`` gallery indices of each row's group, ``-1``-padded; ``groups (R,)``.

        A code outside the table (a query class absent from the gallery) has no member.
        """
        inside = (groups >= 0) & (groups < self.counts.numel())
        safe = torch.where(inside, groups, torch.zeros_like(groups))
        counts = torch.where(inside, self.counts[safe], torch.zeros_like(safe))
        p = int(counts.max()) if counts.numel() else 0
        slot = torch.arange(p, device=groups.device).unsqueeze(0)
        valid = slot < counts.unsqueeze(1)
        pos = (self.starts[safe].unsqueeze(1) + slot).clamp_max(max(self.order.numel() - 1, 0))
        return torch.where(valid, self.order[pos] if p else pos, torch.full_like(pos, -1))


def gather_scores(scores: Tensor, idx: Tensor) -> Tensor:
    """``scores[r, idx[r, p]]`` with ``-inf`` where ``idx`` is ``-1`` padding."""
    out = scores.gather(1, idx.clamp_min(0))
    return out.masked_fill(idx < 0, float("-inf"))


def first_relevant_rank(scores: Tensor, relevant: Tensor, excluded: Optional[Tensor] = None) -> Tensor:
    """0-based rank ``(R,)`` of each row's best relevant item among the candidates.

    Args:
        scores: ``(R, M)`` finite scores.
        relevant: ``(R, P)`` column indices of the relevant items (``-1`` padding).
        excluded: ``(R, E)`` columns that are not candidates (e.g. the query itself), disjoint
            from ``relevant``; ``None`` for none.

    One pass counts every column scoring ``>=`` the best relevant score; the relevant and
    excluded columns counted in it are then subtracted (a few gathered values), so no
    ``(R, M)`` mask is built. Rows without a relevant item get meaningless values.
    """
    rel = gather_scores(scores, relevant)
    best = rel.amax(dim=1, keepdim=True) if rel.shape[1] else scores.new_full((scores.shape[0], 1), float("inf"))
    rank = (scores >= best).sum(dim=1, dtype=torch.int32).long() - (rel >= best).sum(dim=1)
    if excluded is not None and excluded.shape[1]:
        rank -= (gather_scores(scores, excluded) >= best).sum(dim=1)
    return rank


def top_window(scores: Tensor, excluded: Optional[Tensor], k: int) -> Tuple[Tensor, Tensor]:
    """The candidates window of :func:`window_relevance`: ``topk`` of ``k + E + 1`` columns of each row."""
    e = 0 if excluded is None else excluded.shape[1]
    width = min(k + e + 1, scores.shape[1])  # one spare: tells whether the k-th score's ties end inside
    return scores.topk(width, dim=1)


def window_relevance(
    vals: Tensor,
    idx: Tensor,
    query_labels: Tensor,
    gallery_labels: Tensor,
    excluded: Optional[Tensor],
    k: int,
    num_columns: int,
    tied_negatives: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Relevance ``(R, k)`` of the first ``k`` ranked candidates, from each row's best columns alone.

    Args:
        vals, idx: ``(R, W)`` the ``W`` best scores of each row and their columns, descending
            (any order among equal scores), with ``W = min(k + E + 1, num_columns)``: from
            :func:`top_window`, or from another exact k-NN search of the same scores.
        query_labels: ``(R,)``; ``gallery_labels (M,)`` (relevant = same label).
        excluded: ``(R, E)`` non-candidate columns (``-1`` padding) or ``None``.
        k: list length, at most the number of candidates of every row.
        num_columns: ``M``, the row length.
        tied_negatives: ``(R, 1)`` non-relevant candidates of the whole row tied with the
            k-th score, when known; by default they are counted in the window.

    Returns:
        ``(relevance, spill, kth)``: rows flagged in ``spill`` have ties with their k-th score
        that may continue past the window; their relevance is only right once the tied
        non-relevant candidates of the whole row are counted (:func:`top_relevance` does).

    ``topk`` picks among tied items arbitrarily, so the items tied with the k-th score are
    rebuilt from counts: under the pessimistic policy the tied non-relevant ones come first.
    """
    e = 0 if excluded is None else excluded.shape[1]
    width = vals.shape[1]
    excl = (idx.unsqueeze(2) == excluded.unsqueeze(1)).any(dim=2) if e else torch.zeros_like(idx, dtype=torch.bool)
    rel = (gallery_labels[idx] == query_labels.unsqueeze(1)) & ~excl
    keep = torch.sort(excl.to(torch.uint8), dim=1, stable=True).indices[:, :k]  # at most e excluded in the window
    kv, kr = vals.gather(1, keep), rel.gather(1, keep)
    # Within equal scores put non-relevant first: stable sort on relevance, then on score.
    by_rel = torch.sort(kr.to(torch.uint8), dim=1, stable=True).indices
    kv, kr = kv.gather(1, by_rel), kr.gather(1, by_rel)
    by_score = torch.sort(kv, dim=1, descending=True, stable=True).indices
    kv, kr = kv.gather(1, by_score), kr.gather(1, by_score)
    kth = kv[:, -1:]
    above = (kv > kth).sum(dim=1, keepdim=True)  # items strictly above the k-th score are exact
    if tied_negatives is None:
        tied_neg = ((vals == kth) & ~rel & ~excl).sum(dim=1, keepdim=True)
        spill = (vals[:, -1:] == kth).squeeze(1) & (width < num_columns)
    else:
        tied_neg, spill = tied_negatives, torch.zeros(vals.shape[0], dtype=torch.bool, device=vals.device)
    slot = torch.arange(k, device=vals.device).unsqueeze(0) - above
    return torch.where(slot >= 0, slot >= tied_neg, kr), spill, kth


def top_relevance(
    scores: Tensor, query_labels: Tensor, gallery_labels: Tensor, excluded: Optional[Tensor], k: int
) -> Tensor:
    """Relevance ``(R, k)`` bool of the first ``k`` positions of each row's ranked candidate list.

    Args:
        scores: ``(R, M)``; ``query_labels (R,)``; ``gallery_labels (M,)`` (relevant = same label).
        excluded: ``(R, E)`` non-candidate columns (``-1`` padding) or ``None``.
        k: list length, at most the number of candidates of every row.

    The window of :func:`window_relevance`, with the rows whose ties spill past it
    recomputed from the tied non-relevant candidates counted over the full row.
    """
    vals, idx = top_window(scores, excluded, k)
    top, spill, kth = window_relevance(vals, idx, query_labels, gallery_labels, excluded, k, scores.shape[1])
    sp = torch.nonzero(spill).flatten()
    if sp.numel():
        t, q = kth[sp], query_labels[sp].unsqueeze(1)
        full = ((scores[sp] == t) & (gallery_labels.unsqueeze(0) != q)).sum(dim=1, keepdim=True)
        ex = None if excluded is None else excluded[sp]
        if ex is not None and ex.shape[1]:  # excluded columns counted above are not candidates
            hit = (gather_scores(scores[sp], ex) == t) & (gallery_labels[ex.clamp_min(0)] != q) & (ex >= 0)
            full -= hit.sum(dim=1, keepdim=True)
        # Redo those rows' window with the full count of tied non-relevant candidates.
        top[sp] = window_relevance(vals[sp], idx[sp], query_labels[sp], gallery_labels, ex, k, scores.shape[1], full)[0]
    return top


# --------------------------------------------------------------------------- summaries
def hit_rate(ranks: Tensor, k: int) -> float:
    """Percentage of 0-based ranks below ``k``."""
    return 100.0 * float((ranks < k).double().mean())


def per_query_hits(ranks: Tensor, ks: Sequence[int], prefix: str = "") -> Dict[str, List[float]]:
    """``{prefix + "R@K": [0.0 or 100.0 per query]}`` from 0-based ranks: each mean is :func:`hit_rate`."""
    return {f"{prefix}R@{k}": (100.0 * (ranks < k).double()).tolist() for k in ks}


def median_rank(ranks: Tensor) -> float:
    """``floor(median) + 1`` of 0-based ranks (the median of an even count averages the middle two)."""
    return float(math.floor(float(np.median(ranks.cpu().numpy())))) + 1.0


def mean_rank(ranks: Tensor) -> float:
    """Mean 1-based rank."""
    return float(ranks.double().mean()) + 1.0
