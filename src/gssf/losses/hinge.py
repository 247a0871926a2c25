"""The bidirectional hinge (triplet ranking) loss of VSE++ with id-masked positives."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from gssf.losses.base import PairLoss, register_loss
from gssf.similarity.base import Similarity

__all__ = ["BidirectionalHingeLoss", "hinge_costs"]

REDUCTIONS = ("sum", "mean")


def hinge_costs(scores: Tensor, pos: Tensor, margin: float, max_violation: bool) -> Tuple[Tensor, int]:
    """Summed hinge cost of one direction, anchors on the rows of ``scores (N, M)``.

    For every positive pair ``(i, p)`` (``pos[i, p]``) and every negative ``n`` of anchor
    ``i`` (``~pos[i, n]``) the cost is ``relu(margin + S[i, n] - S[i, p])``. With
    ``max_violation`` only the hardest negative of the anchor counts. Every positive pair
    is a term, so an anchor with two positives (an image with two captions in the batch)
    contributes two. Returns ``(sum of costs, number of positive pairs)``.
    """
    neg = ~pos
    rows, cols = torch.nonzero(pos, as_tuple=True)
    s_pos = scores[rows, cols].unsqueeze(1)  # (P, 1)
    if max_violation:
        # The hardest negative per anchor; -inf for anchors without negatives is replaced
        # by zero cost through ``has_neg`` (no inf - inf, no NaN gradients).
        fill = torch.finfo(scores.dtype).min
        hardest = scores.masked_fill(pos, fill).amax(dim=1)  # (N,)
        has_neg = neg.any(dim=1)
        cost = torch.relu(margin + hardest[rows] - s_pos.squeeze(1))
        cost = torch.where(has_neg[rows], cost, torch.zeros_like(cost))
    else:
        cost = torch.relu(margin + scores[rows] - s_pos) * neg[rows].to(scores.dtype)  # (P, M)
    return cost.sum(), int(rows.numel())


@register_loss("hinge")
class BidirectionalHingeLoss(PairLoss):
    """VSE++: ``sum_(i,p) sum_n [m + s(i, n) - s(i, p)]_+`` in both directions.

    ``x`` (images) index the rows and ``y`` (captions) the columns of the score matrix;
    positives are the pairs whose ids match, all other pairs are negatives.

    Args:
        similarity: the scoring function.
        margin: the hinge margin (0.2 in VSE++).
        max_violation: use only the hardest negative per positive pair (VSE++ "MH");
            otherwise sum over all negatives ("SH").
        reduction: ``"sum"`` (VSE++) or ``"mean"`` (divided by the number of positive pairs).
        hardest_after_epochs: with ``max_violation``, sum over all negatives for this many
            first epochs (a warm-up, :meth:`set_epoch`), then take the hardest.

    Shapes: ``x (N, D), y (M, D), x_ids (N,), y_ids (M,) -> ()``.
    """

    kind = "cross_modal"

    def __init__(
        self, similarity: Similarity, margin: float = 0.2, max_violation: bool = True, reduction: str = "sum",
        hardest_after_epochs: int = 0,
    ) -> None:
        super().__init__(similarity)
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)
        if not isinstance(hardest_after_epochs, int) or hardest_after_epochs < 0:
            raise ValueError(f"hardest_after_epochs must be a non-negative integer, got {hardest_after_epochs!r}")
        self.max_violation = bool(max_violation)
        self.hardest = bool(max_violation)  # what max_violation becomes after the warm-up
        self.hardest_after_epochs = hardest_after_epochs
        self.reduction = reduction

    def set_epoch(self, epoch: int) -> None:
        """The hardest negative from epoch ``hardest_after_epochs`` on (when ``max_violation``)."""
        self.max_violation = self.hardest and epoch >= self.hardest_after_epochs

    def from_scores(self, scores: Tensor, pos: Tensor) -> Tensor:
        """The loss of a precomputed ``(N, M)`` score matrix and its positive mask."""
        row_cost, n_pos = hinge_costs(scores, pos, self.margin, self.max_violation)
        col_cost, _ = hinge_costs(scores.transpose(0, 1), pos.transpose(0, 1), self.margin, self.max_violation)
        total = row_cost + col_cost
        if self.reduction == "mean":
            total = total / max(n_pos, 1)
        return total

    def extra_repr(self) -> str:
        return f"margin={self.margin}, max_violation={self.max_violation}, reduction={self.reduction!r}"
