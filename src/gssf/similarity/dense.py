"""Dense learnable metrics, the costly end of the spectrum: bilinear and Mahalanobis."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from gssf.similarity.base import BilinearFormMixin, Similarity, register_similarity
from gssf.similarity.terms import NormBall, _check_scale

__all__ = ["BilinearSimilarity", "MahalanobisSimilarity"]


class _DenseBounded(Similarity):
    """Shared parameter ``A (D, D)`` with the matrix ``I + A``, ``||A|| <= bound``.

    The same scale mechanism as a GSSF block of size ``D`` (``scale``: ``"spectral"`` or
    ``"frobenius"``, a projection after each optimizer step, or the first release's
    ``"entrywise"`` map ``I + (bound / D) tanh(A)``; see :mod:`gssf.similarity.terms`), so
    ``||W - I||_2 <= bound``.
    """

    requires_dim = True

    def __init__(self, dim: Optional[int] = None, bound: float = 1.0, scale: str = "spectral", eps: float = 1e-8) -> None:
        super().__init__(dim=dim, eps=eps)
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound}")
        assert self.dim is not None
        self.bound = float(bound)
        self.scale = _check_scale(scale)
        self.raw = nn.Parameter(torch.zeros(self.dim, self.dim))
        if scale != "entrywise":
            self.norm_ball = NormBall(1, self.dim, self.dim, self.bound, norm=scale)

    def matrix(self) -> Tensor:
        """The bounded ``(D, D)`` matrix."""
        eye = torch.eye(self.dim, dtype=self.raw.dtype, device=self.raw.device)  # type: ignore[arg-type]
        if self.scale == "entrywise":
            return eye + (self.bound / self.dim) * torch.tanh(self.raw)  # type: ignore[operator]
        return eye + self.raw

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project ``A`` back into the norm ball (after an optimizer step; no-op for ``entrywise``)."""
        if self.scale != "entrywise":
            self.norm_ball.project_(self.raw.unsqueeze(0))

    def flops_per_pair(self, dim: Optional[int] = None) -> int:
        d = dim or self.dim or 0
        return 2 * d

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bound={self.bound}, scale={self.scale!r}"


@register_similarity("bilinear")
class BilinearSimilarity(BilinearFormMixin, _DenseBounded):
    """``s(x, y) = normalize(x)^T W normalize(y)`` with a dense learnable ``W`` (init ``I``)."""

    @property
    def score_bound(self) -> float:
        return 1.0 + self.bound

    def weight_matrix(self) -> Tensor:
        return self.matrix()

    def _fold_query(self, x: Tensor) -> Tensor:
        return x @ self.matrix().to(x.dtype)


@register_similarity("mahalanobis")
class MahalanobisSimilarity(_DenseBounded):
    """``s(x, y) = 1 - 0.5 (x - y)^T L L^T (x - y)`` on normalised features (init ``L = I``).

    The affine map ``1 - d^2 / 2`` of the Mahalanobis distance makes the initial member
    equal to cosine on unit vectors and leaves every ranking unchanged; ``L L^T`` is PSD by
    construction. Folded exactly with two extra coordinates.
    """

    @property
    def score_bound(self) -> float:
        return 1.0 + 2.0 * (1.0 + self.bound) ** 2

    def _project(self, x: Tensor) -> Tensor:
        return x @ self.matrix().to(x.dtype)  # rows of x L

    def _fold_query(self, x: Tensor) -> Tensor:
        p = self._project(x)
        sq = (p * p).sum(dim=1, keepdim=True)
        return torch.cat([p, 1.0 - 0.5 * sq, -0.5 * torch.ones_like(sq)], dim=1)

    def _fold_gallery(self, y: Tensor) -> Tensor:
        p = self._project(y)
        sq = (p * p).sum(dim=1, keepdim=True)
        return torch.cat([p, torch.ones_like(sq), sq], dim=1)

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        d = self._project(x - y)
        return 1.0 - 0.5 * (d * d).sum(dim=1)
