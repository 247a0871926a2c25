"""Batch-hard triplet loss for uni-modal tasks (re-identification, fine-grained retrieval)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from gssf.losses.base import SimilarityLoss, _check_ids, positive_mask, register_loss
from gssf.similarity.base import Similarity

__all__ = ["BatchHardTripletLoss"]


@register_loss("triplet")
class BatchHardTripletLoss(SimilarityLoss):
    """Batch-hard triplet loss (Hermans et al. 2017) on similarities.

    For each anchor ``a``: the hardest positive is its least similar other item of the
    same label, the hardest negative its most similar item of another label::

        l(a) = [margin + s(a, n*) - s(a, p*)]_+      (or softplus(s(a, n*) - s(a, p*)))

    averaged over anchors that have at least one positive and one negative (zero, still
    attached to the graph, when none has).

    Args:
        similarity: the scoring function.
        margin: the hinge margin; ``None`` selects the soft-margin (softplus) version.

    Shapes: ``embeddings (N, D), labels (N,) -> ()``.
    """

    kind = "unimodal"

    def __init__(self, similarity: Similarity, margin: Optional[float] = 0.2) -> None:
        super().__init__(similarity)
        if margin is not None and not margin >= 0:
            raise ValueError(f"margin must be >= 0 or None (soft margin), got {margin}")
        self.margin = None if margin is None else float(margin)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        labels = _check_ids(labels, embeddings.shape[0], "labels").to(embeddings.device)
        scores = self.similarity(embeddings, embeddings)
        return self.from_scores(scores, positive_mask(labels, labels))

    def from_scores(self, scores: Tensor, same: Tensor) -> Tensor:
        """The loss of a precomputed square score matrix and its same-label mask."""
        n = scores.shape[0]
        eye = torch.eye(n, dtype=torch.bool, device=scores.device)
        pos, neg = same & ~eye, ~same
        big = torch.finfo(scores.dtype).max
        hardest_pos = scores.masked_fill(~pos, big).amin(dim=1)
        hardest_neg = scores.masked_fill(~neg, -big).amax(dim=1)
        valid = pos.any(dim=1) & neg.any(dim=1)
        if not bool(valid.any()):
            return scores.sum() * 0.0
        gap = hardest_neg[valid] - hardest_pos[valid]
        per_anchor = F.softplus(gap) if self.margin is None else torch.relu(self.margin + gap)
        return per_anchor.mean()

    def extra_repr(self) -> str:
        return "soft_margin" if self.margin is None else f"margin={self.margin}"
