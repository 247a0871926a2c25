"""Pooled heads over sets of element features (VSE-infinity style): image regions, text tokens.

A row of set features is ``n`` element vectors of size ``element_dim`` flattened into one
vector (:mod:`gssf.encoders.sets` writes them so); zero elements are padding (captions
shorter than the longest). :class:`PooledHead` maps every element with a linear layer plus
a residual MLP, then pools the set into one embedding:

* ``gpo``: the generalized pooling operator. Each output dimension's values are sorted over
  the set's elements (descending) and averaged with weights ``softmax_k(f(k, n) / 0.1)``
  learned from sinusoidal encodings of the position ``k`` and of the set size ``n``, the
  same for every dimension. Uniform weights give mean pooling, a one-hot on ``k = 0`` max
  pooling: GPO learns which mixture fits.
* ``mean`` and ``max``: the two baselines, over the valid elements only.
* ``attention``: attention pooling (:class:`AttentionPooling`): the set's mean plus a learned
  offset queries the elements through :class:`gssf.nn.MultiHeadSimilarityAttention`, whose
  logits come from a similarity member per head (setting "attention": GSSF in the kernel).
* ``none``: no pooling; the projected set comes back flattened, padding elements zero (the
  input of a set-to-set similarity such as ``cross_attention``).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

__all__ = ["POOLS", "AttentionPooling", "GeneralizedPooling", "PooledHead", "set_mask"]

POOLS = ("gpo", "mean", "max", "attention", "none")


def set_mask(sets: Tensor) -> Tensor:
    """``(B, n)`` True for the elements that are not all-zero padding; a set with none keeps all."""
    mask = sets.detach().abs().amax(dim=-1) > 0
    empty = ~mask.any(dim=1, keepdim=True)
    return mask | empty


def _sinusoid(positions: Tensor, dim: int) -> Tensor:
    """``(..., dim)`` sin/cos encodings of integer ``positions``."""
    freqs = torch.exp(torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) * (-math.log(1000.0) / dim))
    angles = positions.float().unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class GeneralizedPooling(nn.Module):
    """GPO over sets ``(B, n, D)`` with a validity mask ``(B, n)`` -> ``(B, D)``."""

    def __init__(self, encoding_dim: int = 32, hidden_dim: int = 32, temperature: float = 0.1) -> None:
        super().__init__()
        if encoding_dim % 2:
            raise ValueError(f"encoding_dim must be even, got {encoding_dim}")
        self.encoding_dim = encoding_dim
        self.temperature = temperature
        # no bias on the last layer: the softmax over positions ignores a constant shift
        self.score = nn.Sequential(nn.Linear(2 * encoding_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1, bias=False))

    def weights(self, mask: Tensor) -> Tensor:
        """``(B, n)`` pooling weights of the sorted positions; zero past each set's size."""
        n = mask.shape[1]
        sizes = mask.sum(dim=1)
        k = torch.arange(n, device=mask.device)
        valid = k.unsqueeze(0) < sizes.unsqueeze(1)
        enc = torch.cat([_sinusoid(k, self.encoding_dim).expand(mask.shape[0], n, -1),
                         _sinusoid(sizes, self.encoding_dim).unsqueeze(1).expand(-1, n, -1)], dim=-1)  # fmt: skip
        logits = self.score(enc.to(self.score[0].weight.dtype)).squeeze(-1).masked_fill(~valid, float("-inf"))
        return torch.softmax(logits / self.temperature, dim=1)

    def forward(self, elements: Tensor, mask: Tensor) -> Tensor:
        low = torch.finfo(elements.dtype).min
        ordered = elements.masked_fill(~mask.unsqueeze(-1), low).sort(dim=1, descending=True).values
        w = self.weights(mask)
        ordered = ordered.masked_fill(w.unsqueeze(-1) == 0, 0.0)  # padding sorted last: weight 0, value 0
        return (w.unsqueeze(-1) * ordered).sum(dim=1)


def _masked_mean(elements: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(elements.dtype)
    return (elements * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)


class AttentionPooling(nn.Module):
    """Attention pooling of sets ``(B, n, D)`` with a validity mask ``(B, n)`` -> ``(B, D)``.

    The query of a set is its masked mean plus a learned vector (zero at the start); it
    attends over the valid elements with similarity logits (``similarity`` per head, see
    :class:`gssf.nn.MultiHeadSimilarityAttention`), the values being the elements themselves.
    """

    def __init__(self, dim: int, similarity: str = "cosine", heads: int = 1,
                 similarity_kwargs: Optional[Dict[str, Any]] = None, temperature: float = 0.1) -> None:
        super().__init__()
        from gssf.nn.attention import MultiHeadSimilarityAttention

        self.query = nn.Parameter(torch.zeros(dim))
        self.attention = MultiHeadSimilarityAttention(similarity, dim, heads=heads, similarity_kwargs=similarity_kwargs,
                                                      temperature=temperature)

    def forward(self, elements: Tensor, mask: Tensor) -> Tensor:
        q = (_masked_mean(elements, mask) + self.query.to(elements.dtype)).unsqueeze(1)
        return self.attention(q, elements, elements, mask).squeeze(1)


class PooledHead(nn.Module):
    """Flattened sets ``(B, n * element_dim)`` -> ``(B, out_dim)``: per-element projection, then pooling.

    Args:
        in_dim: ``n * element_dim``.
        out_dim: embedding size.
        element_dim: size of one element (1280 for EfficientNet regions, 384 for MiniLM tokens).
        pool: ``gpo``, ``mean``, ``max``, ``attention`` or ``none``.
        hidden_dim: width of the residual MLP.
        attention: ``pool="attention"``: keyword arguments of :class:`AttentionPooling`
            (``similarity``, ``heads``, ``similarity_kwargs``, ``temperature``).
    """

    def __init__(self, in_dim: int, out_dim: int, element_dim: int, pool: str = "gpo", hidden_dim: int = 1024,
                 attention: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"unknown pool {pool!r}; choose one of {', '.join(POOLS)}")
        if element_dim <= 0 or in_dim % element_dim:
            raise ValueError(f"in_dim {in_dim} is not a whole number of elements of size {element_dim}")
        self.element_dim, self.num_elements, self.pool = element_dim, in_dim // element_dim, pool
        self.proj = nn.Linear(element_dim, out_dim)
        self.mlp = nn.Sequential(nn.Linear(element_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
        self.gpo = GeneralizedPooling() if pool == "gpo" else None
        if attention and pool != "attention":
            raise ValueError(f"attention settings are for pool='attention', not pool={pool!r}")
        self.attention = AttentionPooling(out_dim, **(attention or {})) if pool == "attention" else None

    def forward(self, x: Tensor) -> Tensor:
        sets = x.reshape(x.shape[0], self.num_elements, self.element_dim)
        mask = set_mask(sets)
        e = self.proj(sets) + self.mlp(sets)
        if self.gpo is not None:
            return self.gpo(e, mask)
        if self.attention is not None:
            return self.attention(e, mask)
        m = mask.unsqueeze(-1)
        if self.pool == "none":
            return e.masked_fill(~m, 0.0).flatten(1)
        if self.pool == "mean":
            return _masked_mean(e, mask)
        return e.masked_fill(~m, torch.finfo(e.dtype).min).amax(dim=1)
