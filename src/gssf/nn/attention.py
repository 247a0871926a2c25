"""Attention whose logits come from a similarity object instead of a scaled dot product.

``attn(q, k, v) = softmax(s(q, k) / tau) v`` with ``s`` any :class:`gssf.Similarity`
(GSSF, cosine, ...). A learnable temperature is stored as a clamped log. The paper plugs
GSSF into attention this way: the score of a (query, key) pair is the learned metric.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from gssf.similarity.base import Similarity

__all__ = ["SimilarityAttention", "batched_scores"]


def batched_scores(similarity: Similarity, q: Tensor, k: Tensor) -> Tensor:
    """Scores ``(B, Lq, Lk)`` of ``q (B, Lq, D)`` against ``k (B, Lk, D)``, per batch element.

    Static members fold all rows at once and use one batched matrix multiply;
    pair-conditioned members are scored batch element by batch element.
    """
    if q.dim() != 3 or k.dim() != 3 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(f"expected q (B, Lq, D) and k (B, Lk, D), got {tuple(q.shape)} and {tuple(k.shape)}")
    b, lq, d = q.shape
    if similarity.is_static:
        fq = similarity.fold_query(q.reshape(b * lq, d)).view(b, lq, -1)
        fk = similarity.fold_gallery(k.reshape(-1, d)).view(b, k.shape[1], -1)
        return torch.bmm(fq, fk.transpose(1, 2))
    return torch.stack([similarity(q[i], k[i]) for i in range(b)])


class SimilarityAttention(nn.Module):
    """Single-head attention with similarity logits.

    Args:
        similarity: scores queries against keys (``is_static`` members are batched).
        dim: feature size of queries and keys; with ``project=True`` they are first mapped
            by learnable ``Linear(dim, dim)`` layers (identity-initialised).
        temperature: initial softmax temperature (learnable unless ``learn_temperature=False``).
        min_temperature / max_temperature: clamp of the learnable temperature.
    """

    def __init__(
        self,
        similarity: Similarity,
        dim: Optional[int] = None,
        project: bool = False,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        min_temperature: float = 0.01,
        max_temperature: float = 10.0,
    ) -> None:
        super().__init__()
        if not 0 < min_temperature <= temperature <= max_temperature:
            raise ValueError(
                f"need 0 < min_temperature <= temperature <= max_temperature, got "
                f"{min_temperature}, {temperature}, {max_temperature}"
            )
        self.similarity = similarity
        self.log_min, self.log_max = math.log(min_temperature), math.log(max_temperature)
        log_t = torch.tensor(math.log(temperature))
        self.log_temperature = nn.Parameter(log_t) if learn_temperature else nn.Parameter(log_t, requires_grad=False)
        self.q_proj: nn.Module = nn.Identity()
        self.k_proj: nn.Module = nn.Identity()
        if project:
            if dim is None:
                raise ValueError("project=True needs dim")
            self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
            for lin in (self.q_proj, self.k_proj):
                nn.init.eye_(lin.weight)
                nn.init.zeros_(lin.bias)

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.clamp(self.log_min, self.log_max).exp()

    def attention_weights(self, q: Tensor, k: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Weights ``(B, Lq, Lk)``; ``mask (B, Lq, Lk)`` or ``(B, Lk)`` marks keys to attend with True."""
        logits = batched_scores(self.similarity, self.q_proj(q), self.k_proj(k)) / self.temperature
        if mask is not None:
            if mask.dim() == 2:
                mask = mask[:, None, :]
            if not bool(mask.any(dim=-1).all()):
                raise ValueError("mask leaves a query with no key to attend to")
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=-1)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """``q (B, Lq, D)``, ``k (B, Lk, D)``, ``v (B, Lk, Dv)`` -> ``(B, Lq, Dv)``."""
        weights = self.attention_weights(q, k, mask)
        return torch.bmm(weights.to(v.dtype), v)
