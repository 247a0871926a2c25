"""``gssf_dynamic``: GSSF whose two terms are gated per pair.

For a pair ``(x, y)`` of normalised features let ``h = x * y`` (element-wise). A small MLP
maps ``h`` to a gate per channel ``g_c`` and a gate per block ``g_k``, both in ``(0, 2)``::

    s(x, y) = sum_c g_c(h) w_c h_c + sum_k g_k(h) (x @ B)_k . y_k

The MLP's last layer starts at zero, so every gate starts at 1 and the member starts
equal to cosine. The score depends on the pair jointly, so it is not an inner product of
per-item vectors: no folding, and a score matrix costs an MLP per pair. It is computed
in chunks of pairs whose working memory is bounded by ``pair_budget`` elements.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from gssf.similarity.base import Similarity, register_similarity
from gssf.similarity.structured import GSSFSimilarity, _BlockMixin
from gssf.similarity.terms import DiagonalTerm

__all__ = ["DynamicGSSFSimilarity"]


@register_similarity("gssf_dynamic")
class DynamicGSSFSimilarity(_BlockMixin, Similarity):
    """GSSF with pair-conditioned channel and block gates (see module docstring).

    Args (besides those of ``gssf``):
        hidden: width of the gate MLP.
        pair_budget: largest number of scalars in one pairwise work tensor (pairs x D).
    """

    is_static = False
    requires_dim = True
    default_chunk_size = 256

    def __init__(
        self,
        dim: Optional[int] = None,
        num_blocks: Optional[int] = None,
        block_size: Optional[int] = None,
        parameterization: str = "full",
        rank: int = 2,
        w_max: float = 2.0,
        bound: float = 1.0,
        permutation: Optional[Union[Sequence[int], Tensor]] = None,
        scale: str = "spectral",
        hidden: int = 32,
        pair_budget: int = 1 << 22,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(dim=dim, eps=eps)
        assert self.dim is not None
        if not isinstance(hidden, int) or hidden <= 0:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if not isinstance(pair_budget, int) or pair_budget < self.dim:
            raise ValueError(f"pair_budget must be an integer >= dim={self.dim}, got {pair_budget!r}")
        self.diagonal = DiagonalTerm(self.dim, w_max=w_max)
        self.blocks = self._make_block(self.dim, num_blocks, block_size, parameterization, rank, bound, permutation, scale)
        self.hidden = hidden
        self.pair_budget = pair_budget
        self.gate = nn.Sequential(
            nn.Linear(self.dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, self.dim + self.blocks.num_blocks),
        )
        last = self.gate[2]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    @property
    def score_bound(self) -> float:
        return 2.0 * (self.diagonal.w_max + self.blocks.bound)

    def static_part(self) -> GSSFSimilarity:
        """The gate-free GSSF sharing this member's terms: a foldable first-stage scorer."""
        return GSSFSimilarity.from_terms(self.diagonal, self.blocks, eps=self.eps)

    def flops_per_pair(self, dim: Optional[int] = None) -> int:
        d = dim or self.dim or 0
        k = self.blocks.num_blocks
        return 2 * d * self.hidden + 2 * self.hidden * (d + k) + 8 * d

    def _gated(self, h: Tensor, u: Tensor) -> Tensor:
        """Scores ``(...)`` from ``h = x*y`` and ``u = (x@B)*y``, both ``(..., D)``."""
        z = self.gate(h.to(self.gate[0].weight.dtype)).to(h.dtype)
        gates = 2.0 * torch.sigmoid(z)
        g_chan, g_block = gates[..., : self.dim], gates[..., self.dim :]
        w = self.diagonal.weights().to(h.dtype)
        diag_part = (g_chan * w * h).sum(dim=-1)
        block_part = (g_block * self.blocks.group_sum(u)).sum(dim=-1)
        return diag_part + block_part

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return self._gated(x * y, self.blocks.apply(x) * y)

    def _score_matrix(self, x: Tensor, y: Tensor) -> Tensor:
        n, m, d = x.shape[0], y.shape[0], x.shape[1]
        xb = self.blocks.apply(x)
        # Bound the (rows x cols x D) pairwise tensors by pair_budget scalars.
        cols = max(1, min(m, self.pair_budget // d))
        rows = max(1, self.pair_budget // (cols * d))
        rows_out = []
        for i in range(0, n, rows):
            xi, xbi = x[i : i + rows, None, :], xb[i : i + rows, None, :]
            parts = []
            for j in range(0, m, cols):
                yj = y[None, j : j + cols, :]
                parts.append(self._gated(xi * yj, xbi * yj))
            rows_out.append(torch.cat(parts, dim=1))
        return torch.cat(rows_out, dim=0)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, pair_budget={self.pair_budget}"
