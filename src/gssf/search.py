"""Top-k search with any similarity, and two-stage search for pair-conditioned members.

A static member folds into an inner-product index: ``search`` scores the folded queries
against the gallery exactly (chunked) or with faiss. A pair-conditioned member
(``gssf_dynamic``) cannot be indexed, so two-stage search takes a shortlist of
``shortlist`` items per query from its :meth:`static_part` (exact or faiss), then
re-scores only the shortlist with the member itself.

:class:`TwoStage` is the same as a similarity object: row ``i`` of its score matrix holds
the second-stage scores of query ``i``'s shortlist and, below all of them, the first-stage
scores of every other item (shifted down by the sum of both score bounds, so their own order
is kept). The row-query evaluators (re-ID, fine-grained retrieval) and losses take it like
any member. Its score of a pair depends on the rest of the gallery (the shortlist), so it
has no :meth:`pair`: protocols that need one (image-text, k-reciprocal re-ranking) refuse it.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from gssf.errors import GssfError
from gssf.similarity.base import Similarity

__all__ = ["TwoStage", "search", "shortlist_pairs_budget"]

#: Scalars of one second-stage work tensor (rows x shortlist x (2h + 1) for gssf_dynamic).
shortlist_pairs_budget = 1 << 23


def _check_shortlist(shortlist: Any) -> int:
    if isinstance(shortlist, bool) or not isinstance(shortlist, int) or shortlist <= 0:
        raise GssfError(f"shortlist must be a positive integer, got {shortlist!r}")
    return shortlist


class TwoStage(Similarity):
    """``similarity`` re-scoring a shortlist of ``shortlist`` items per query from its static part.

    Args:
        similarity: a pair-conditioned member with ``static_part()`` (``gssf_dynamic``), or
            any member (its static part is then the member itself, and the result equals it).
        shortlist: first-stage candidates per query (``K'``).
    """

    is_static = False
    name = "two_stage"

    def __init__(self, similarity: Similarity, shortlist: int = 100) -> None:
        super().__init__(dim=similarity.dim, eps=similarity.eps)
        self.second = similarity
        self.first = similarity.static_part()
        if not self.first.is_static:
            raise GssfError(f"the first stage of {similarity.name!r} is not static: it cannot build a shortlist")
        if self.first.normalizes != similarity.normalizes:
            raise GssfError("the two stages must normalise their inputs alike")
        self.normalizes = similarity.normalizes
        self.shortlist = _check_shortlist(shortlist)

    @property
    def score_bound(self) -> float:
        return float(self.first.score_bound) * 2 + float(self.second.score_bound) * 2

    def _offset(self) -> float:
        return float(self.first.score_bound) + float(self.second.score_bound)

    def rescore(self, x: Tensor, y: Tensor, top: Tensor) -> Tensor:
        """Second-stage scores ``(N, k)`` of prepared queries ``x`` against ``y[top[i]]``."""
        n, k = top.shape
        d = x.shape[1]
        # the candidates (rows x k x D) and the member's own work (about 2h + 1 times that for
        # gssf_dynamic) stay within the budget
        rows = max(1, shortlist_pairs_budget // max(1, k * d * 4))
        out = []
        for i in range(0, n, rows):
            t = top[i : i + rows]
            cand = y.index_select(0, t.reshape(-1)).view(t.shape[0], k, d)
            out.append(self.second._score_candidates(x[i : i + rows], cand))
        return torch.cat(out, dim=0)

    def _score_matrix(self, x: Tensor, y: Tensor) -> Tensor:
        first = self.first._score_matrix(x, y)
        k = min(self.shortlist, y.shape[0])
        top = first.topk(k, dim=1).indices
        second = self.rescore(x, y, top)
        return (first - self._offset()).scatter(1, top, second)

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        raise TypeError(
            "a two-stage score depends on the whole gallery (the shortlist), so it has no pair(): use a "
            "row-query protocol (re-ID, fine-grained retrieval) or search()"
        )

    def extra_repr(self) -> str:
        return f"shortlist={self.shortlist}"


def search(
    similarity: Similarity,
    queries: Tensor,
    gallery: Tensor,
    k: int = 10,
    shortlist: Optional[int] = None,
    index: str = "exact",
    chunk_size: int = 1024,
) -> Tuple[Tensor, Tensor]:
    """The top-``k`` gallery items of every query: ``(scores (N, k), indices (N, k))``.

    Args:
        similarity: any member. Static members are searched directly; pair-conditioned ones
            need ``shortlist`` (two-stage: first-stage candidates from ``static_part()``).
        shortlist: ``K' >= k`` candidates per query for the second stage (two-stage only).
        index: ``"exact"`` (chunked score matrices) or ``"faiss"`` (an exact inner-product
            index over the folded vectors, ``faiss.IndexFlatIP``) for the (first) stage.
        chunk_size: query rows scored at a time.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise GssfError(f"k must be a positive integer, got {k!r}")
    if index not in ("exact", "faiss"):
        raise GssfError(f"index must be 'exact' or 'faiss', got {index!r}")
    k = min(k, gallery.shape[0])
    dynamic = not similarity.is_static
    if dynamic and shortlist is None:
        raise GssfError(
            f"similarity {similarity.name!r} is pair-conditioned: pass shortlist=K' (two-stage search), "
            f"e.g. shortlist={max(100, k)}"
        )
    first = similarity.static_part() if dynamic else similarity
    depth = k if not dynamic else max(k, min(_check_shortlist(shortlist), gallery.shape[0]))
    with torch.no_grad():
        if index == "faiss":
            from gssf.utils.optional import require

            faiss = require("faiss", "index", "search(index='faiss')")
            import numpy as np

            g = np.ascontiguousarray(first.fold_gallery(gallery).float().cpu().numpy())
            q = np.ascontiguousarray(first.fold_query(queries).float().cpu().numpy())
            ix = faiss.IndexFlatIP(g.shape[1])
            ix.add(g)
            s1, i1 = ix.search(q, depth)
            scores, top = torch.from_numpy(s1), torch.from_numpy(i1).long()
        else:
            parts = [block.topk(depth, dim=1) for _, block in first.score_chunks(queries, gallery, chunk_size)]
            scores = torch.cat([p.values for p in parts])
            top = torch.cat([p.indices for p in parts])
        if not dynamic:
            return scores[:, :k], top[:, :k]
        two = TwoStage(similarity, depth)
        xq = similarity._prepare(queries, "queries")
        yg = similarity._prepare(gallery, "gallery")
        second = two.rescore(xq, yg, top.to(yg.device))
        best = second.topk(k, dim=1)
        return best.values, top.gather(1, best.indices)
