"""Set-to-set scoring by cross-attention (SCAN / SGRAF style), with a similarity as its kernel.

Rows are *sets* of ``dim``-sized elements flattened into one vector (a :class:`PooledHead`
with ``pool="none"`` writes them so); all-zero elements are padding. ``x`` holds the sets
that are attended over (image regions), ``y`` the attending sets (caption words), the order
in which the image-text task and its evaluator call every similarity. For a region set
``R = x_i`` and a word set ``W = y_j``::

    p_w  = softmax_r( kernel(w, r) / tau )            per word w, over the regions r
    a_w  = sum_r p_w[r] r                             the attended region vector of w
    s(x_i, y_j) = mean over the words w of cos(w, a_w)

The kernel is any member of the registry (``cosine``, ``gssf``, ``gssf_dynamic``, ...): the
setting "attention" compares kernels with everything else equal. The score never builds
the attended vectors: ``w . a_w = sum_r p_w[r] (w . r)`` and ``||a_w||^2 = p_w^T G p_w``
with ``G = R R^T`` the region Gram matrix, so a score matrix is two GEMMs of all words
against all regions (kernel logits and plain dot products) plus work of the size of the
attention weights, in tiles bounded by ``pair_budget`` scalars. Scores lie in ``[-1, 1]``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from gssf.errors import BadTensorError
from gssf.similarity.base import Similarity, create_similarity, register_similarity
from gssf.similarity.terms import ClampedTemperatureMixin

__all__ = ["CrossAttentionSimilarity", "SetMeanCosineSimilarity"]


def _set_rows(t: Tensor, element_dim: int) -> Tuple[Tensor, Tensor]:
    """``(N, n, d)`` elements of flattened sets and ``(N, n)`` validity (all-zero = padding)."""
    sets = t.view(t.shape[0], -1, element_dim)
    valid = sets.detach().abs().amax(dim=-1) > 0
    return sets, valid | ~valid.any(dim=1, keepdim=True)  # an all-padding set keeps its elements


class _SetRows:
    """Input checks of members whose rows are flattened sets of ``element_dim``-sized elements
    (``x`` and ``y`` may hold sets of different sizes); their scores are bounded by construction."""

    element_dim: int

    def _validate(self, t: Tensor, what: str) -> None:
        super()._validate(t, what)  # type: ignore[misc]
        if t.shape[1] % self.element_dim:
            raise BadTensorError(
                f"{what} has {t.shape[1]} features, not a whole number of elements of size {self.element_dim} "
                f"({self.name} scores flattened sets)"  # type: ignore[attr-defined]
            )

    def _check_pair(self, x: Tensor, y: Tensor, xname: str, yname: str) -> torch.dtype:
        self._validate(x, xname)
        self._validate(y, yname)
        return self._compute_dtype(x, y)  # type: ignore[attr-defined]

    def _may_overflow(self, x: Tensor, y: Tensor, dtype: torch.dtype) -> bool:
        return False


@register_similarity("set_cosine")
class SetMeanCosineSimilarity(_SetRows, Similarity):
    """Cosine of the mean elements of two flattened sets (padding excluded): static, no parameters.

    The first-stage scorer of ``cross_attention`` (its :meth:`~Similarity.static_part`): the
    set means fold into an inner-product index, the shortlist is re-scored by cross-attention.
    """

    normalizes = False  # the set means are normalised, not the flattened rows
    requires_dim = True
    gallery_fold_is_unit = False

    def __init__(self, dim: Optional[int] = None, eps: float = 1e-8) -> None:
        super().__init__(dim=dim, eps=eps)
        assert dim is not None
        self.element_dim = dim
        self.dim = None  # rows are sets of elements of size element_dim

    def _fold_query(self, x: Tensor) -> Tensor:
        sets, valid = _set_rows(x, self.element_dim)
        w = valid.to(sets.dtype).unsqueeze(-1)
        mean = (sets * w).sum(dim=1) / w.sum(dim=1)
        return mean / torch.linalg.vector_norm(mean, dim=1, keepdim=True).clamp_min(self.eps)

    def _fold_gallery(self, y: Tensor) -> Tensor:
        return self._fold_query(y)

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return (self._fold_query(x) * self._fold_query(y)).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"element_dim={self.element_dim}"


@register_similarity("cross_attention")
class CrossAttentionSimilarity(_SetRows, ClampedTemperatureMixin, Similarity):
    """Words-over-regions cross-attention score of two sets (see the module docstring).

    Args:
        dim: size of one set element (rows must be whole numbers of elements).
        kernel: registry name of the attention kernel (built with ``dim``).
        kernel_kwargs: its constructor arguments.
        temperature: initial softmax temperature (learnable, stored as a clamped log).
        min_temperature / max_temperature: the clamp.
        pair_budget: largest number of scalars of one (words x regions) work tensor.
    """

    is_static = False
    normalizes = False  # sets are scored element by element; the score is bounded by construction
    requires_dim = True
    default_chunk_size = 64

    def __init__(
        self,
        dim: Optional[int] = None,
        kernel: str = "cosine",
        kernel_kwargs: Optional[Dict[str, Any]] = None,
        temperature: float = 0.1,
        min_temperature: float = 0.01,
        max_temperature: float = 10.0,
        pair_budget: int = 1 << 22,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(dim=dim, eps=eps)
        assert dim is not None
        # The base class checks row widths against ``self.dim``: here a row is a set of elements of that size.
        self.dim = None
        if kernel == self.name:
            raise ValueError("the kernel of cross_attention cannot be cross_attention")
        if not isinstance(pair_budget, int) or pair_budget < 1:
            raise ValueError(f"pair_budget must be a positive integer, got {pair_budget!r}")
        self.element_dim = dim
        self.kernel = create_similarity(kernel, dim=dim, **dict(kernel_kwargs or {}))
        self._init_temperature(temperature, min_temperature, max_temperature)
        self.pair_budget = pair_budget

    @property
    def score_bound(self) -> float:
        return 1.0

    def static_part(self) -> "SetMeanCosineSimilarity":
        """Cosine of the set means: a foldable first-stage scorer for two-stage search (no parameters)."""
        part = SetMeanCosineSimilarity(dim=self.element_dim, eps=self.eps).train(self.training)
        part.validate = self.validate
        return part

    def flops_per_pair(self, dim: Optional[int] = None) -> int:
        """Per (region set, word set) pair, per (word, region) element pair: kernel plus dot plus Gram work."""
        d = dim or self.element_dim
        return self.kernel.flops_per_pair(d) + 2 * d

    def extra_repr(self) -> str:
        return f"element_dim={self.element_dim}, kernel={self.kernel.name}, pair_budget={self.pair_budget}"

    # ------------------------------------------------------------------ input checks
    # ------------------------------------------------------------------ scoring
    def _sets(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        """``(N, n, d)`` elements and ``(N, n)`` validity, trimmed to the longest set."""
        sets, valid = _set_rows(t, self.element_dim)
        if torch.compiler.is_compiling():  # no data-dependent shapes in an exported graph
            return sets, valid
        longest = int(valid.any(dim=0).nonzero().max()) + 1  # padding comes last: cut what no set uses
        return sets[:, :longest], valid[:, :longest]

    def _tile(self, regions: Tensor, rvalid: Tensor, gram: Tensor, words: Tensor, wvalid: Tensor) -> Tensor:
        """Scores ``(N, M)`` of region sets ``(N, nr, d)`` against word sets ``(M, nw, d)``."""
        n, nr, d = regions.shape
        m, nw, _ = words.shape
        flat_w, flat_r = words.reshape(m * nw, d), regions.reshape(n * nr, d)
        logits = self.kernel(flat_w, flat_r).view(m, nw, n, nr) / self.temperature.to(regions.dtype)
        logits = logits.masked_fill(~rvalid.view(1, 1, n, nr), float("-inf"))
        p = torch.softmax(logits, dim=-1)
        dots = (flat_w @ flat_r.transpose(0, 1)).view(m, nw, n, nr)
        along = (p * dots).sum(dim=-1)  # w . a_w, (m, nw, n)
        attended_sq = (torch.einsum("mwnr,nrs->mwns", p, gram) * p).sum(dim=-1)  # ||a_w||^2
        word_norm = torch.linalg.vector_norm(words, dim=-1).unsqueeze(-1)  # (m, nw, 1)
        cos = along / (word_norm.clamp_min(self.eps) * attended_sq.clamp_min(self.eps**2).sqrt())
        weight = wvalid.to(cos.dtype).unsqueeze(-1)
        return ((cos * weight).sum(dim=1) / weight.sum(dim=1)).transpose(0, 1)

    def _score_matrix(self, x: Tensor, y: Tensor) -> Tensor:
        regions, rvalid = self._sets(x)
        words, wvalid = self._sets(y)
        gram = regions @ regions.transpose(1, 2)
        n, nr = rvalid.shape
        m, nw = wvalid.shape
        cols = max(1, min(m, self.pair_budget // (nw * nr)))
        rows = max(1, min(n, self.pair_budget // (cols * nw * nr)))
        out = []
        for i in range(0, n, rows):
            r = slice(i, i + rows)
            out.append(torch.cat([self._tile(regions[r], rvalid[r], gram[r], words[j : j + cols], wvalid[j : j + cols])
                                  for j in range(0, m, cols)], dim=1))  # fmt: skip
        return torch.cat(out, dim=0)

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        regions, rvalid = self._sets(x)
        words, wvalid = self._sets(y)
        gram = regions @ regions.transpose(1, 2)
        one = [self._tile(regions[i : i + 1], rvalid[i : i + 1], gram[i : i + 1], words[i : i + 1], wvalid[i : i + 1])
               for i in range(x.shape[0])]  # fmt: skip
        return torch.cat(one).flatten()
