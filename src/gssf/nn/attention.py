"""Attention whose logits come from a similarity object instead of a scaled dot product.

``attn(q, k, v) = softmax(s(q, k) / tau) v`` with ``s`` any :class:`gssf.Similarity`
(GSSF, cosine, ...). A learnable temperature is stored as a clamped log. The paper plugs
GSSF into attention this way: the score of a (query, key) pair is the learned metric.

:class:`MultiHeadSimilarityAttention` gives every head its own similarity over its slice of
the channels. Static members fold into the queries and keys, so that
:func:`torch.nn.functional.scaled_dot_product_attention` does the work: with ``dot`` and
``temperature = sqrt(head_dim)`` it *is* ordinary SDPA, and a normalising member (``cosine``,
and GSSF at initialisation, which equals cosine) is SDPA of the unit rows at scale
``1 / temperature``. Pair-conditioned members (``gssf_dynamic``) score every (query, key)
pair of a batch element with the member itself.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gssf.similarity.base import Similarity, create_similarity
from gssf.similarity.terms import ClampedTemperatureMixin

__all__ = ["MultiHeadSimilarityAttention", "SimilarityAttention", "batched_scores"]


def batched_scores(similarity: Similarity, q: Tensor, k: Tensor) -> Tensor:
    """Scores ``(B, Lq, Lk)`` of ``q (B, Lq, D)`` against ``k (B, Lk, D)``, per batch element.

    Static members fold all rows at once and use one batched matrix multiply;
    pair-conditioned members score every query against its own batch element's keys
    (:meth:`~gssf.Similarity.score_candidates`).
    """
    if q.dim() != 3 or k.dim() != 3 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(f"expected q (B, Lq, D) and k (B, Lk, D), got {tuple(q.shape)} and {tuple(k.shape)}")
    b, lq, d = q.shape
    if similarity.is_static:
        fq = similarity.fold_query(q.reshape(b * lq, d)).view(b, lq, -1)
        fk = similarity.fold_gallery(k.reshape(-1, d)).view(b, k.shape[1], -1)
        return torch.bmm(fq, fk.transpose(1, 2))
    keys = k.unsqueeze(1).expand(b, lq, k.shape[1], d).reshape(b * lq, k.shape[1], d)
    return similarity.score_candidates(q.reshape(b * lq, d), keys).view(b, lq, k.shape[1])


class SimilarityAttention(ClampedTemperatureMixin, nn.Module):
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
        self._init_temperature(temperature, min_temperature, max_temperature, learn=learn_temperature)
        self.similarity = similarity
        self.q_proj: nn.Module = nn.Identity()
        self.k_proj: nn.Module = nn.Identity()
        if project:
            if dim is None:
                raise ValueError("project=True needs dim")
            self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
            for lin in (self.q_proj, self.k_proj):
                nn.init.eye_(lin.weight)
                nn.init.zeros_(lin.bias)

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


def _key_mask(mask: Optional[Tensor], b: int, lq: int, lk: int) -> Optional[Tensor]:
    """``mask`` as ``(B, 1, Lq, Lk)`` bool (True = attend), checked; None stays None."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = attend), got {mask.dtype}")
    if mask.dim() == 2:
        mask = mask[:, None, :]
    if mask.dim() != 3 or mask.shape[0] != b or mask.shape[2] != lk or mask.shape[1] not in (1, lq):
        raise ValueError(f"mask must be (B, Lk) or (B, Lq, Lk) = ({b}, {lq}, {lk}), got {tuple(mask.shape)}")
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("mask leaves a query with no key to attend to")
    return mask.expand(b, lq, lk).unsqueeze(1)


class MultiHeadSimilarityAttention(ClampedTemperatureMixin, nn.Module):
    """Multi-head attention whose logits are similarity scores: ``softmax(s_h(q_h, k_h) / tau) v_h`` per head.

    ``q (B, Lq, D)``, ``k (B, Lk, D)`` and ``v (B, Lk, Dv)`` are split into ``heads`` slices of
    the channels; head ``h`` scores its slices with its own similarity (a fresh member of the
    registry per head, ``dim = D / heads``) and averages its slice of ``v``. The heads'
    outputs are concatenated (``(B, Lq, Dv)``); no projections are added, so a caller puts
    its own around it. Static members fold per head and call
    :func:`~torch.nn.functional.scaled_dot_product_attention`; pair-conditioned ones score
    per batch element. The temperature is shared by the heads, learnable, and stored as a
    clamped log.

    Args:
        similarity: registry name of the member of every head (``cosine``, ``gssf``, ...).
        dim: channels of queries and keys (a multiple of ``heads``).
        heads: number of heads.
        similarity_kwargs: constructor arguments of each head's member.
        temperature: initial softmax temperature.
        learn_temperature / min_temperature / max_temperature: as :class:`SimilarityAttention`.
    """

    def __init__(
        self,
        similarity: str,
        dim: int,
        heads: int = 1,
        similarity_kwargs: Optional[Dict[str, Any]] = None,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        min_temperature: float = 0.01,
        max_temperature: float = 10.0,
    ) -> None:
        super().__init__()
        if not isinstance(heads, int) or heads <= 0 or not isinstance(dim, int) or dim <= 0 or dim % heads:
            raise ValueError(f"dim must be a positive multiple of heads, got dim={dim!r}, heads={heads!r}")
        self._init_temperature(temperature, min_temperature, max_temperature, learn=learn_temperature)
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        kwargs = dict(similarity_kwargs or {})
        self.kernels = nn.ModuleList(create_similarity(similarity, dim=self.head_dim, **kwargs) for _ in range(heads))

    @property
    def is_static(self) -> bool:
        return all(k.is_static for k in self.kernels)

    def _split(self, t: Tensor) -> Tensor:
        """``(B, L, heads * d) -> (B, heads, L, d)``."""
        b, n, c = t.shape
        if c % self.heads:
            raise ValueError(f"{c} channels do not split into {self.heads} heads")
        return t.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def logits(self, q: Tensor, k: Tensor) -> Tensor:
        """Scores over temperature ``(B, heads, Lq, Lk)``, before masking (the slow, explicit path)."""
        qh, kh = self._split(q), self._split(k)
        per_head = [batched_scores(sim, qh[:, h], kh[:, h]) for h, sim in enumerate(self.kernels)]
        return torch.stack(per_head, dim=1) / self.temperature

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """``(B, Lq, Dv)``; ``mask (B, Lk)`` or ``(B, Lq, Lk)`` marks the keys to attend with True."""
        if q.dim() != 3 or k.dim() != 3 or v.dim() != 3 or q.shape[2] != self.dim or k.shape[2] != self.dim:
            raise ValueError(
                f"expected q (B, Lq, {self.dim}), k (B, Lk, {self.dim}), v (B, Lk, Dv); got "
                f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
            )
        if k.shape[:2] != v.shape[:2] or q.shape[0] != k.shape[0]:
            raise ValueError(f"q, k and v disagree on batch or key count: {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
        b, lq, _ = q.shape
        lk = k.shape[1]
        attend = _key_mask(mask, b, lq, lk)
        vh = self._split(v)
        if not self.is_static:
            logits = self.logits(q, k)
            if attend is not None:
                logits = logits.masked_fill(~attend, float("-inf"))
            out = torch.softmax(logits, dim=-1).to(v.dtype) @ vh
        else:
            qh, kh = self._split(q), self._split(k)
            fq = torch.stack([sim.fold_query(qh[:, h].reshape(b * lq, -1)).view(b, lq, -1)
                              for h, sim in enumerate(self.kernels)], dim=1)  # fmt: skip
            fk = torch.stack([sim.fold_gallery(kh[:, h].reshape(b * lk, -1)).view(b, lk, -1)
                              for h, sim in enumerate(self.kernels)], dim=1)  # fmt: skip
            # scale = 1 / tau as a tensor would not be accepted: fold it into the queries
            fq = fq / self.temperature
            out = F.scaled_dot_product_attention(fq.to(v.dtype), fk.to(v.dtype), vh, attn_mask=attend, scale=1.0)
        return out.transpose(1, 2).reshape(b, lq, -1)
