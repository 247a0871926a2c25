"""Parameter-free baselines: cosine, dot product and negative squared Euclidean distance."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from gssf.similarity.base import BilinearFormMixin, Similarity, register_similarity

__all__ = ["CosineSimilarity", "DotProductSimilarity", "EuclideanSimilarity"]


class _IdentityForm(BilinearFormMixin, Similarity):
    """Parameter-free members with ``M = I``; ``weight_matrix()`` follows ``.to()`` / ``.double()``."""

    def __init__(self, dim: Optional[int] = None, eps: float = 1e-8) -> None:
        super().__init__(dim=dim, eps=eps)
        # A member without parameters has no tensor that .to()/.double() would move, so
        # weight_matrix() reads its dtype and device from this empty, unsaved buffer.
        self.register_buffer("_like", torch.empty(0), persistent=False)

    def weight_matrix(self) -> Tensor:
        if self.dim is None:
            raise ValueError(f"weight_matrix() of {self.name!r} needs the similarity to be built with dim=")
        return torch.eye(self.dim, dtype=self._like.dtype, device=self._like.device)


@register_similarity("cosine")
class CosineSimilarity(_IdentityForm):
    """``s(x, y) = normalize(x) . normalize(y)``: the special case ``M = I`` of GSSF."""

    score_bound = 1.0


@register_similarity("dot")
class DotProductSimilarity(_IdentityForm):
    """``s(x, y) = x . y`` on raw (unnormalised) features.

    Scores are unbounded: finite features whose inner products overflow the compute dtype
    raise :class:`gssf.errors.ScoreOverflowError` rather than returning ``inf``.
    """

    normalizes = False
    gallery_fold_is_unit = False  # the gallery is scored raw, not normalised
    score_bound = float("inf")


@register_similarity("euclidean")
class EuclideanSimilarity(Similarity):
    """``s(x, y) = -||normalize(x) - normalize(y)||^2`` (in ``[-4, 0]``).

    Folded exactly as ``q = [2 x, -||x||^2, -1]`` and ``g = [y, 1, ||y||^2]``: the norms are
    kept (not assumed to be 1) so a zero row is still scored exactly.
    """

    score_bound = 4.0

    def _fold_query(self, x: Tensor) -> Tensor:
        sq = (x * x).sum(dim=1, keepdim=True)
        return torch.cat([2.0 * x, -sq, -torch.ones_like(sq)], dim=1)

    def _fold_gallery(self, y: Tensor) -> Tensor:
        sq = (y * y).sum(dim=1, keepdim=True)
        return torch.cat([y, torch.ones_like(sq), sq], dim=1)

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return -((x - y) ** 2).sum(dim=1)
