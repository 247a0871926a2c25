"""Parameter-free baselines: cosine, dot product and negative squared Euclidean distance."""
from __future__ import annotations

import torch
from torch import Tensor

from gssf.similarity.base import BilinearFormMixin, Similarity, register_similarity

__all__ = ["CosineSimilarity", "DotProductSimilarity", "EuclideanSimilarity"]


@register_similarity("cosine")
class CosineSimilarity(BilinearFormMixin, Similarity):
    """``s(x, y) = normalize(x) . normalize(y)``: the special case ``M = I`` of GSSF."""

    score_bound = 1.0

    def weight_matrix(self) -> Tensor:
        if self.dim is None:
            raise ValueError("weight_matrix() needs the similarity to be built with dim=")
        return torch.eye(self.dim)


@register_similarity("dot")
class DotProductSimilarity(BilinearFormMixin, Similarity):
    """``s(x, y) = x . y`` on raw (unnormalised) features."""

    normalizes = False
    gallery_fold_is_unit = False  # the gallery is scored raw, not normalised
    score_bound = float("inf")

    def weight_matrix(self) -> Tensor:
        if self.dim is None:
            raise ValueError("weight_matrix() needs the similarity to be built with dim=")
        return torch.eye(self.dim)


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
