"""Pair-conditioned GSSF: the channel and block terms re-weighted per pair.

``gssf_dynamic`` (the default dynamic member) is built so that a score matrix is a handful
of GEMMs. For unit ``x, y`` (``D`` channels, ``h`` hidden units)::

    a_k(x, y) = tanh(D * x^T diag(u_k) y + c_k)                   k = 1..h   (h bilinear forms)
    s(x, y)   = x^T M_0 y + sum_k a_k(x, y) * x^T M_k y                      (h more)
    M_0 = diag(w) + B                  (the static GSSF)
    M_k = diag(v_k) + B . diag_blocks(g_k)   (a diagonal, and B with each block scaled by g_k[block])

so the effective matrix of the pair is ``M_0 + sum_k a_k(x, y) M_k``: every channel weight
and every block's strength moves with the pair, through gates computed from ``x * y`` (the
hidden layer is a linear map of ``x * y``, exactly the first layer of an MLP on it). All
``2h + 1`` bilinear forms are one GEMM of the stacked folded queries ``(N (2h+1), D)``
against the gallery; the rest is ``O(N M h)`` element-wise work. ``v_k = g_k = 0`` at
initialisation, so the member starts equal to cosine; ``u_k`` starts random so the gates
differ between pairs from the first step. ``constrain_`` keeps ``sum_k (max|v_k| + bound *
max|g_k|) <= gate_bound`` (a rescale, as the norm balls of the family), hence
``|s| <= w_max + bound + gate_bound``.

``gssf_dynamic_mlp`` is the first release's formulation (an MLP on ``x * y`` whose sigmoid
gates multiply the channels before the sum): an ``N x M x D`` tensor per score matrix,
kept for comparison.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from gssf.similarity.base import Similarity, register_similarity
from gssf.similarity.structured import GSSFSimilarity
from gssf.similarity.terms import BlockSpec, DiagonalTerm

__all__ = ["DynamicGSSFSimilarity", "MLPGatedGSSFSimilarity"]


def _gate_free_part(sim: Similarity) -> GSSFSimilarity:
    """The GSSF that shares ``sim``'s diagonal and block terms, in ``sim``'s mode and validation setting."""
    part = GSSFSimilarity.from_terms(sim.diagonal, sim.blocks, eps=sim.eps).train(sim.training)  # type: ignore[arg-type]
    part.validate = sim.validate
    return part


@register_similarity("gssf_dynamic_mlp")
class MLPGatedGSSFSimilarity(Similarity):
    """The first release's dynamic GSSF: an MLP on ``h = x * y`` gives a gate per channel and
    per block in ``(0, 2)`` (start: 1, i.e. cosine)::

        s(x, y) = sum_c g_c(h) w_c h_c + sum_k g_k(h) (x @ B)_k . y_k

    The sigmoid between the MLP and the channel sum makes a score matrix cost an MLP per
    pair (N x M x D work, in chunks bounded by ``pair_budget``); ``gssf_dynamic`` is the
    GEMM-speed formulation.

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
        pair_budget: int = 1 << 23,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(dim=dim, eps=eps)
        assert self.dim is not None
        if not isinstance(hidden, int) or hidden <= 0:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if not isinstance(pair_budget, int) or pair_budget < self.dim:
            raise ValueError(f"pair_budget must be an integer >= dim={self.dim}, got {pair_budget!r}")
        self.diagonal = DiagonalTerm(self.dim, w_max=w_max)
        spec = BlockSpec(num_blocks, block_size, parameterization, rank, bound, permutation, scale)
        self.blocks = spec.build(self.dim)
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
        return _gate_free_part(self)

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


@register_similarity("gssf_dynamic")
class DynamicGSSFSimilarity(Similarity):
    """GSSF whose channel weights and block strengths move with the pair (see module docstring).

    Args (besides those of ``gssf``):
        hidden: number of gates ``h``; a score matrix costs about ``2h + 1`` cosine matrices.
        gate_bound: bound on the dynamic part, ``|s - x^T M_0 y| <= gate_bound``.
        pair_budget: largest number of scalars in one work tensor (rows x M x (2h + 1)).
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
        hidden: int = 16,
        gate_bound: float = 1.0,
        pair_budget: int = 1 << 23,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(dim=dim, eps=eps)
        assert self.dim is not None
        if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden <= 0:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if not gate_bound > 0:
            raise ValueError(f"gate_bound must be positive, got {gate_bound!r}")
        width = 2 * hidden + 1
        if not isinstance(pair_budget, int) or pair_budget < width:
            raise ValueError(f"pair_budget must be an integer >= 2 * hidden + 1 = {width}, got {pair_budget!r}")
        self.diagonal = DiagonalTerm(self.dim, w_max=w_max)
        spec = BlockSpec(num_blocks, block_size, parameterization, rank, bound, permutation, scale)
        self.blocks = spec.build(self.dim)
        self.hidden = hidden
        self.gate_bound = float(gate_bound)
        self.pair_budget = pair_budget
        # hidden layer on D * (x * y): u ~ N(0, 1/D) gives pre-activations of order 1 for unit rows
        self.gate_in = nn.Parameter(torch.randn(hidden, self.dim) / math.sqrt(self.dim))
        self.gate_bias = nn.Parameter(torch.zeros(hidden))
        self.gate_diag = nn.Parameter(torch.zeros(hidden, self.dim))  # v_k
        self.gate_block = nn.Parameter(torch.zeros(hidden, self.blocks.num_blocks))  # g_k

    @property
    def score_bound(self) -> float:
        return self.diagonal.w_max + self.blocks.bound + self.gate_bound

    def static_part(self) -> GSSFSimilarity:
        """The gate-free GSSF sharing this member's terms: a foldable first-stage scorer."""
        return _gate_free_part(self)

    def flops_per_pair(self, dim: Optional[int] = None) -> int:
        d = dim or self.dim or 0
        return 2 * d * (2 * self.hidden + 1) + 4 * self.hidden

    def gate_norms(self) -> Tensor:
        """``(h,)`` bounds on ``||M_k||_2``: ``max|v_k| + bound * max|g_k|``."""
        return self.gate_diag.abs().amax(dim=1) + self.blocks.bound * self.gate_block.abs().amax(dim=1)

    def constrain_(self) -> None:
        """Rescale the gates back into ``gate_bound`` after an optimizer step (the block term
        projects itself: ``constrain_parameters`` visits every submodule)."""
        with torch.no_grad():
            total = float(self.gate_norms().sum())
            if total > self.gate_bound:
                f = self.gate_bound / total
                self.gate_diag.mul_(f)
                self.gate_block.mul_(f)

    def _stacked(self, x: Tensor, logistic: bool = False) -> Tensor:
        """``(N, D) -> (N, 2h + 1, D)``: folded queries whose inner products with ``y`` are
        ``[x^T M_0 y, D x^T diag(u_k) y (k = 1..h), x^T M_k y (k = 1..h)]``.

        ``logistic``: the same score written with sigmoids, ``tanh(p) o = 2 sigmoid(2p) o - o``,
        so the forms are ``[x^T (M_0 - sum_k M_k) y, 2 D x^T diag(u_k) y, 2 x^T M_k y]``
        (:meth:`_combine` with ``logistic=True``). A CPU sigmoid is ~7x cheaper than a tanh,
        and the h tanh per pair were 16% of a score matrix's time at D = 256.
        """
        xb = self.blocks.apply(x)
        static = self.diagonal.apply(x) + xb
        hidden = x.unsqueeze(1) * (self.dim * self.gate_in).to(x.dtype).unsqueeze(0)
        k, b = self.blocks.num_blocks, self.blocks.block_size
        per_channel = self.blocks._ungrouped(self.gate_block.to(x.dtype).unsqueeze(-1).expand(self.hidden, k, b))
        out = x.unsqueeze(1) * self.gate_diag.to(x.dtype).unsqueeze(0) + xb.unsqueeze(1) * per_channel.unsqueeze(0)
        if logistic:
            static, hidden, out = static - out.sum(dim=1), hidden * 2, out * 2
        return torch.cat([static.unsqueeze(1), hidden, out], dim=1)

    def _combine(self, z: Tensor, biased: bool = False, logistic: bool = False) -> Tensor:
        """Scores from the ``2h + 1`` bilinear forms along dim 1 of ``z (N, 2h + 1, ...)``
        (``biased``: the gate biases are already in ``z``; ``logistic``: ``z`` holds the
        forms of ``_stacked(..., logistic=True)`` and, if biased, the doubled biases)."""
        h = self.hidden
        pre = z[:, 1 : h + 1]
        if not biased:
            pre = pre + (2.0 if logistic else 1.0) * self.gate_bias.to(z.dtype).view(1, h, *([1] * (z.dim() - 2)))
        gate = torch.sigmoid if logistic else torch.tanh
        if z.requires_grad:
            return z[:, 0] + (gate(pre) * z[:, h + 1 :]).sum(dim=1)
        # inference: in place, one (rows, h, M) work tensor instead of three
        gates = (pre.sigmoid_() if logistic else pre.tanh_()).mul_(z[:, h + 1 :])
        return z[:, 0] + gates.sum(dim=1)

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return self._combine((self._stacked(x) * y.unsqueeze(1)).sum(dim=-1))

    def _score_candidates(self, x: Tensor, candidates: Tensor) -> Tensor:
        # one batched GEMM: each query's 2h + 1 folded rows against its own k candidates
        return self._combine(torch.bmm(self._stacked(x), candidates.transpose(1, 2)))

    #: Gallery columns per GEMM tile (at most). Full-width strips of a 25,000-item gallery
    #: leave room for only ~10 queries, i.e. GEMMs of 330 rows (2h + 1 = 33 per query):
    #: 114 GFLOP/s here, against 142 for tiles of 50 queries x 5,000 columns.
    tile_columns: int = 5000

    def _score_matrix(self, x: Tensor, y: Tensor) -> Tensor:
        n, m, d = x.shape[0], y.shape[0], x.shape[1]
        h, width = self.hidden, 2 * self.hidden + 1
        tile = max(1, min(m, self.tile_columns, self.pair_budget // width))
        rows = max(1, self.pair_budget // (tile * width))
        cap = max(1, min(m, self.pair_budget // (rows * width)))
        cols = -(-m // -(-m // cap))  # the gallery in equal tiles of at most cap columns
        # The gate biases ride in the GEMM: a column of ones on the gallery side, the biases
        # (zeros for the other forms) on the query side.
        yt = torch.cat([y, y.new_ones(m, 1)], dim=1).transpose(0, 1).contiguous()  # (D + 1, M): ~3% faster GEMMs
        # Without autograd every chunk is written straight into the result (no concatenation
        # copies of an N x M matrix) and the gates are sigmoids (see _stacked); with it, the
        # chunks are concatenated and the tanh form is differentiated.
        inference = not torch.is_grad_enabled()
        out = y.new_empty(n, m) if inference else None
        scale = 2.0 if inference else 1.0
        bias = torch.cat([y.new_zeros(1), scale * self.gate_bias.to(y.dtype), y.new_zeros(h)]).view(1, width, 1)
        pieces = []
        for i in range(0, n, rows):
            q = self._stacked(x[i : i + rows], logistic=inference)
            q = torch.cat([q, bias.expand(q.shape[0], width, 1)], dim=2).reshape(-1, d + 1)  # one GEMM for all
            r = q.shape[0] // width
            parts = []
            for j in range(0, m, cols):
                s = self._combine((q @ yt[:, j : j + cols]).view(r, width, -1), biased=True, logistic=inference)
                if out is None:
                    parts.append(s)
                else:
                    out[i : i + r, j : j + cols] = s
            if out is None:
                pieces.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        if out is not None:
            return out
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, gate_bound={self.gate_bound}, pair_budget={self.pair_budget}"
