"""The structured-sparse family: diagonal, block-diagonal and GSSF (diagonal + blocks).

All three are bilinear forms ``s(x, y) = normalize(x)^T M normalize(y)`` with a sparse,
structured ``M``. The query is folded once, ``q = normalize(x) @ M`` (O(D b) per item for
blocks of size ``b``), so a score matrix costs one matrix multiply, as cosine does.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from gssf.similarity.base import BilinearFormMixin, Similarity, register_similarity
from gssf.similarity.terms import BlockSpec, BlockTerm, DiagonalTerm

__all__ = ["DiagonalSimilarity", "BlockDiagonalSimilarity", "GSSFSimilarity"]


@register_similarity("diagonal")
class DiagonalSimilarity(BilinearFormMixin, Similarity):
    """``M = diag(w)``, ``w`` in ``(0, w_max)``: per-channel relevancy (init ``w = 1``)."""

    requires_dim = True

    def __init__(self, dim: Optional[int] = None, w_max: float = 2.0, eps: float = 1e-8) -> None:
        super().__init__(dim=dim, eps=eps)
        assert self.dim is not None
        self.diagonal = DiagonalTerm(self.dim, w_max=w_max)

    @property
    def score_bound(self) -> float:
        return self.diagonal.w_max

    def weight_matrix(self) -> Tensor:
        return torch.diag(self.diagonal.weights())

    def _fold_query(self, x: Tensor) -> Tensor:
        return self.diagonal.apply(x)


@register_similarity("block_diagonal")
class BlockDiagonalSimilarity(BilinearFormMixin, Similarity):
    """``M = I + B`` with ``B`` block-diagonal: dependency inside channel groups (init ``B = 0``).

    The identity keeps the member equal to cosine at initialisation; it is GSSF with its
    diagonal frozen at 1. With one block of size ``D`` it is ``bilinear``; with blocks of
    size 1 it is a diagonal metric.
    """

    requires_dim = True

    def __init__(
        self,
        dim: Optional[int] = None,
        num_blocks: Optional[int] = None,
        block_size: Optional[int] = None,
        parameterization: str = "full",
        rank: int = 2,
        bound: float = 1.0,
        permutation: Optional[Union[Sequence[int], Tensor]] = None,
        scale: str = "spectral",
        eps: float = 1e-8,
    ) -> None:
        super().__init__(dim=dim, eps=eps)
        assert self.dim is not None
        spec = BlockSpec(num_blocks, block_size, parameterization, rank, bound, permutation, scale)
        self.blocks = spec.build(self.dim)

    @property
    def score_bound(self) -> float:
        return 1.0 + self.blocks.bound

    def weight_matrix(self) -> Tensor:
        m = self.blocks.dense()
        return m + torch.eye(self.dim, dtype=m.dtype, device=m.device)  # type: ignore[arg-type]

    def _fold_query(self, x: Tensor) -> Tensor:
        return x + self.blocks.apply(x)


@register_similarity("gssf")
class GSSFSimilarity(BilinearFormMixin, Similarity):
    """GSSF: ``M = diag(w) + B``, a per-channel relevancy term plus a block-diagonal dependency term.

    Starts equal to cosine (``w = 1``, ``B = 0``); ``|s| <= w_max + bound`` for any pair.

    Args:
        dim: feature dimension ``D``.
        num_blocks / block_size: channel groups (default: the largest divisor of ``D`` up to 16).
        parameterization: ``"full"``, ``"lowrank"`` or ``"scalar"`` blocks.
        rank: rank of ``lowrank`` blocks.
        w_max: upper bound of the diagonal weights.
        bound: spectral-norm bound of the block term.
        permutation: a fixed channel order defining the groups (contiguous if ``None``).
        scale: how the block term is kept inside its bound: ``"spectral"`` (default),
            ``"frobenius"`` or ``"entrywise"`` (see :mod:`gssf.similarity.terms`).

    The block arguments make one :class:`~gssf.similarity.terms.BlockSpec` (checked there;
    ``self.blocks.spec``), as in ``block_diagonal`` and the dynamic members.
    """

    requires_dim = True

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
        eps: float = 1e-8,
    ) -> None:
        super().__init__(dim=dim, eps=eps)
        assert self.dim is not None
        self.diagonal = DiagonalTerm(self.dim, w_max=w_max)
        spec = BlockSpec(num_blocks, block_size, parameterization, rank, bound, permutation, scale)
        self.blocks = spec.build(self.dim)

    @classmethod
    def from_terms(cls, diagonal: DiagonalTerm, blocks: BlockTerm, eps: float = 1e-8) -> "GSSFSimilarity":
        """A GSSF sharing (not copying) existing terms, e.g. the static part of ``gssf_dynamic``."""
        sim = cls.__new__(cls)
        Similarity.__init__(sim, dim=diagonal.dim, eps=eps)
        sim.diagonal = diagonal
        sim.blocks = blocks
        return sim

    @property
    def score_bound(self) -> float:
        return self.diagonal.w_max + self.blocks.bound

    def weight_matrix(self) -> Tensor:
        return torch.diag(self.diagonal.weights()) + self.blocks.dense()

    def _fold_query(self, x: Tensor) -> Tensor:
        return self.diagonal.apply(x) + self.blocks.apply(x)
