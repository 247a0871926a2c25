"""Symmetric InfoNCE with a learnable, clamped log-temperature and id-masked positives."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gssf.losses.base import PairLoss, register_loss
from gssf.similarity.base import Similarity

__all__ = ["InfoNCELoss", "infonce_direction"]


def infonce_direction(logits: Tensor, pos: Tensor) -> Tensor:
    """Mean InfoNCE of one direction, anchors on the rows of ``logits (N, M)``.

    Multi-positive policy: every positive pair ``(i, p)`` is its own term whose
    denominator holds ``p`` and the negatives of ``i`` only; the other positives of ``i``
    are masked out (they are not negatives)::

        l(i, p) = -log( e^{z_ip} / (e^{z_ip} + sum_{n not pos} e^{z_in}) )
                = softplus(logsumexp_{n not pos}(z_in) - z_ip)

    With one positive per row this is the usual cross-entropy over the row. The mean is
    over positive pairs. An anchor without negatives contributes zero.
    """
    neg = ~pos
    # finfo.min (not -inf) keeps logsumexp's backward finite on rows without negatives.
    fill = torch.finfo(logits.dtype).min
    lse_neg = torch.logsumexp(logits.masked_fill(pos, fill), dim=1)  # (N,)
    rows, cols = torch.nonzero(pos, as_tuple=True)
    per_pair = F.softplus(lse_neg[rows] - logits[rows, cols])
    per_pair = torch.where(neg.any(dim=1)[rows], per_pair, torch.zeros_like(per_pair))
    return per_pair.mean() if rows.numel() else logits.sum() * 0.0


@register_loss("infonce")
class InfoNCELoss(PairLoss):
    """Symmetric InfoNCE (CLIP): ``(l_x->y + l_y->x) / 2`` on logits ``s(x, y) / tau``.

    ``tau = exp(log_tau)`` is learnable (unless ``learn_temperature=False``) and clamped
    to ``[min_temperature, max_temperature]``: in the forward pass and, through
    :meth:`constrain_`, on the parameter itself after each optimizer step so its gradient
    never goes dead outside the range.

    Args:
        similarity: the scoring function.
        temperature: initial ``tau``.
        learn_temperature: make ``log_tau`` a parameter.
        min_temperature / max_temperature: the clamp range of ``tau``.

    Shapes: ``x (N, D), y (M, D), x_ids (N,), y_ids (M,) -> ()``.
    """

    kind = "cross_modal"

    def __init__(
        self,
        similarity: Similarity,
        temperature: float = 0.05,
        learn_temperature: bool = True,
        min_temperature: float = 0.01,
        max_temperature: float = 1.0,
    ) -> None:
        super().__init__(similarity)
        if not 0 < min_temperature <= max_temperature:
            raise ValueError(
                f"need 0 < min_temperature <= max_temperature, got {min_temperature} and {max_temperature}"
            )
        if not min_temperature <= temperature <= max_temperature:
            raise ValueError(f"temperature={temperature} is outside [{min_temperature}, {max_temperature}]")
        self.min_log = math.log(min_temperature)
        self.max_log = math.log(max_temperature)
        value = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_tau = nn.Parameter(value)
        else:
            self.register_buffer("log_tau", value)

    @property
    def temperature(self) -> Tensor:
        """The effective (clamped) temperature ``tau``."""
        return self.log_tau.clamp(self.min_log, self.max_log).exp()

    def constrain_(self) -> None:
        with torch.no_grad():
            self.log_tau.clamp_(self.min_log, self.max_log)

    def from_scores(self, scores: Tensor, pos: Tensor) -> Tensor:
        """The loss of a precomputed ``(N, M)`` score matrix and its positive mask."""
        logits = scores / self.temperature.to(scores.dtype)
        return 0.5 * (infonce_direction(logits, pos) + infonce_direction(logits.transpose(0, 1), pos.transpose(0, 1)))

    def extra_repr(self) -> str:
        lo, hi = math.exp(self.min_log), math.exp(self.max_log)
        return f"temperature={float(self.temperature):.4g}, range=[{lo:.4g}, {hi:.4g}]"
