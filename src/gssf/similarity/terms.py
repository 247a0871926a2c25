"""The two structured terms of GSSF: a bounded diagonal and a bounded block-diagonal matrix.

Both act on row vectors from the right (``x -> x @ T``) so that a query can be folded
once, ``q = normalize(x) @ M``, and the score becomes the inner product ``q . normalize(y)``.

Scale mechanism (see docs/method.md): every learnable matrix is bounded by construction,
so a margin loss cannot inflate scores by growing the weights.

* diagonal weights ``w = w_max * sigmoid(theta + c)`` lie in ``(0, w_max)``; ``c`` makes
  ``w = 1`` at ``theta = 0``;
* a block ``B_k`` (``full``: the parameter itself; ``lowrank``: ``U V^T``; ``scalar``:
  ``a 1 1^T``) is used as it is, and projected back into the ball ``||B_k|| <= bound``
  after each optimizer step (``constrain_()``, :class:`NormBall`), with ``||.||`` the
  spectral norm (``scale="spectral"``, the default, by a warm-started power iteration) or
  the Frobenius norm (``scale="frobenius"``, exact, an upper bound of the spectral norm).
  Every matrix of the structure with norm up to the bound is reachable, and Adam's step
  per entry does not depend on the block size. Training loops other than gssf's own call
  :func:`gssf.losses.constrain_parameters` after ``optimizer.step()``.
* ``scale="entrywise"`` keeps the first release's map ``(bound / b) tanh(A)`` (entries
  below ``bound / b``; ``lowrank`` rescaled through ``||U||_F ||V||_F``): it cannot reach
  matrices with a few large entries, and its step per entry shrinks as ``1 / b``.

A block-diagonal matrix's spectral norm is the largest of its blocks', so the whole term
is bounded by ``bound``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

__all__ = ["DiagonalTerm", "BlockSpec", "BlockTerm", "NormBall", "BLOCK_PARAMETERIZATIONS", "SCALES", "resolve_block_size"]

BLOCK_PARAMETERIZATIONS = ("full", "lowrank", "scalar")
#: Scale mechanisms of the matrix terms (see the module docstring).
SCALES = ("spectral", "frobenius", "entrywise")


def _check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale mechanism {scale!r}; choose one of {SCALES}")
    return scale


def resolve_block_size(dim: int, num_blocks: Optional[int], block_size: Optional[int], default_max: int = 16) -> int:
    """Block size ``b`` for ``dim`` channels from ``num_blocks`` or ``block_size``.

    With neither given, ``b`` is the largest divisor of ``dim`` that is at most
    ``default_max``. Every block has the same size: a count that does not divide the
    dimension is an error (no ragged last block).
    """
    if num_blocks is not None and block_size is not None:
        if num_blocks * block_size != dim:
            raise ValueError(f"num_blocks={num_blocks} x block_size={block_size} != dim={dim}")
        return block_size
    if num_blocks is not None:
        if not isinstance(num_blocks, int) or num_blocks <= 0:
            raise ValueError(f"num_blocks must be a positive integer, got {num_blocks!r}")
        if dim % num_blocks:
            raise ValueError(
                f"num_blocks={num_blocks} does not divide dim={dim}; valid block counts: {_divisors(dim)}"
            )
        return dim // num_blocks
    if block_size is not None:
        if not isinstance(block_size, int) or block_size <= 0:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        if dim % block_size:
            raise ValueError(
                f"block_size={block_size} does not divide dim={dim}; valid block sizes: {_divisors(dim)}"
            )
        return block_size
    return max(d for d in _divisors(dim) if d <= default_max)


def _divisors(n: int) -> list:
    return [d for d in range(1, n + 1) if n % d == 0]


class NormBall(nn.Module):
    """Projection of ``K`` matrices ``A_k (r, c)`` into the norm ball of radius ``bound``.

    :meth:`project_` rescales in place, ``A_k <- A_k / max(1, ||A_k|| / bound)``; it runs
    after each optimizer step (``constrain_()``, called by
    :func:`gssf.losses.constrain_parameters`), so the forward pass uses the matrix as it is
    (a pure function, an identity map for the gradient). ``norm="spectral"`` estimates
    ``||A_k||_2`` by power iteration warm-started from singular-vector estimates ``u (K, r)``,
    ``v (K, c)`` kept as buffers (saved with the weights: a resumed run continues exactly);
    ``norm="frobenius"`` is exact.
    """

    def __init__(self, count: int, rows: int, cols: int, bound: float, norm: str = "spectral", iterations: int = 3) -> None:
        super().__init__()
        if norm not in ("spectral", "frobenius"):
            raise ValueError(f"norm must be 'spectral' or 'frobenius', got {norm!r}")
        self.bound, self.norm, self.iterations = float(bound), norm, int(iterations)
        if norm == "spectral":
            g = torch.Generator().manual_seed(0)  # a fixed start; the global RNG stream is not touched
            self.register_buffer("u", nn.functional.normalize(torch.randn(count, rows, generator=g), dim=1))
            self.register_buffer("v", nn.functional.normalize(torch.randn(count, cols, generator=g), dim=1))

    @torch.no_grad()
    def norms(self, a: Tensor, iterations: Optional[int] = None) -> Tensor:
        """The norm of each matrix of ``a (K, r, c)``, ``(K,)`` (spectral: refines the estimates)."""
        if self.norm == "frobenius":
            return a.flatten(1).norm(dim=1)
        a = a.to(self.u.dtype)
        u, v = self.u, self.v
        for _ in range(self.iterations if iterations is None else iterations):
            # A zero matrix (the initial state) maps to zero vectors: keep the previous ones.
            nu = torch.einsum("krc,kc->kr", a, v)
            n = nu.norm(dim=1, keepdim=True)
            u = torch.where(n > 0, nu / n.clamp_min(1e-300), u)
            nv = torch.einsum("krc,kr->kc", a, u)
            n = nv.norm(dim=1, keepdim=True)
            v = torch.where(n > 0, nv / n.clamp_min(1e-300), v)
        self.u.copy_(u)
        self.v.copy_(v)
        return torch.einsum("kr,krc,kc->k", u, a, v).abs()

    @torch.no_grad()
    def factor(self, a: Tensor) -> Tensor:
        """``1 / max(1, ||A_k|| / bound)``, ``(K,)``: the rescaling :meth:`project_` applies."""
        return 1.0 / (self.norms(a) / self.bound).clamp_min(1.0)

    @torch.no_grad()
    def project_(self, a: Tensor) -> None:
        """Rescale ``a (K, r, c)`` in place into the ball."""
        a.mul_(self.factor(a).to(a.dtype).view(-1, 1, 1))

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, bound={self.bound}, iterations={self.iterations}"


class DiagonalTerm(nn.Module):
    """Per-channel weights ``w (D,)`` in ``(0, w_max)``, equal to 1 at initialisation."""

    def __init__(self, dim: int, w_max: float = 2.0) -> None:
        super().__init__()
        if not w_max > 1.0:
            raise ValueError(f"w_max must be > 1 so that the initial weight 1 is inside (0, w_max), got {w_max}")
        self.dim = dim
        self.w_max = float(w_max)
        self.offset = math.log(1.0 / (self.w_max - 1.0))  # sigmoid(offset) = 1 / w_max
        self.theta = nn.Parameter(torch.zeros(dim))

    def weights(self) -> Tensor:
        """The effective weights ``w (D,)``."""
        return self.w_max * torch.sigmoid(self.theta + self.offset)

    def set_weights(self, w: Tensor) -> None:
        """Set ``theta`` so that :meth:`weights` returns ``w`` (each entry in ``(0, w_max)``)."""
        w = torch.as_tensor(w, dtype=self.theta.dtype)
        if w.shape != (self.dim,) or bool(((w <= 0) | (w >= self.w_max)).any()):
            raise ValueError(f"weights must have shape ({self.dim},) and lie in (0, {self.w_max})")
        with torch.no_grad():
            self.theta.copy_(torch.logit(w / self.w_max) - self.offset)

    def apply(self, x: Tensor) -> Tensor:
        """``x (N, D) -> x * w``."""
        return x * self.weights().to(x.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, w_max={self.w_max}"


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class BlockSpec:
    """What a :class:`BlockTerm` is built from: its grouping, parameterization and bound.

    The fields are checked once, here; what depends on the dimension (a block count or
    size that divides it, a rank up to the block size, a permutation of its length) is
    checked by :meth:`build`. ``permutation`` is stored as a tuple of ints, so specs
    compare and hash by value.

    Args:
        num_blocks / block_size: the grouping (see :func:`resolve_block_size`); neither:
            the largest divisor of ``D`` up to 16.
        parameterization: ``"full"`` (b x b per block), ``"lowrank"`` (rank ``rank``) or
            ``"scalar"`` (one weight times the all-ones block).
        rank: rank of each ``lowrank`` block (ignored by the others).
        bound: spectral-norm bound of the term (the scale mechanism).
        permutation: a fixed channel order; block ``k`` holds channels
            ``permutation[k*b:(k+1)*b]``. Contiguous groups when ``None``.
        scale: how the bound is kept: ``"spectral"`` (default), ``"frobenius"`` or
            ``"entrywise"`` (see the module docstring).
        init_std: initial std of the ``U`` factor of ``lowrank`` blocks (``V`` starts at 0,
            so the term starts at 0 with a non-zero gradient).

    Example:
        >>> term = BlockSpec(num_blocks=4, parameterization="lowrank").build(16)
        >>> term.block_size, term.rank
        (4, 2)
    """

    num_blocks: Optional[int] = None
    block_size: Optional[int] = None
    parameterization: str = "full"
    rank: int = 2
    bound: float = 1.0
    permutation: Optional[Union[Sequence[int], Tensor]] = None
    scale: str = "spectral"
    init_std: float = 0.1

    def __post_init__(self) -> None:
        _check_scale(self.scale)
        if self.parameterization not in BLOCK_PARAMETERIZATIONS:
            raise ValueError(
                f"unknown block parameterization {self.parameterization!r}; choose one of {BLOCK_PARAMETERIZATIONS}"
            )
        if not self.bound > 0:
            raise ValueError(f"bound must be positive, got {self.bound}")
        for name in ("num_blocks", "block_size"):
            value = getattr(self, name)
            if value is not None and not _is_positive_int(value):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.parameterization == "lowrank":
            limit = "block_size" if self.block_size is None else f"block_size={self.block_size}"
            if not _is_positive_int(self.rank) or (self.block_size is not None and self.rank > self.block_size):
                raise ValueError(f"rank must be an integer in [1, {limit}], got {self.rank!r}")
        if not self.init_std >= 0:
            raise ValueError(f"init_std must be non-negative, got {self.init_std!r}")
        # frozen: normalised values are set through object.__setattr__
        object.__setattr__(self, "bound", float(self.bound))
        object.__setattr__(self, "init_std", float(self.init_std))
        if self.permutation is not None:
            perm = torch.as_tensor(self.permutation, dtype=torch.long).flatten()
            n = perm.numel()
            if not torch.equal(torch.sort(perm).values, torch.arange(n)):
                raise ValueError(f"permutation must be a permutation of range({n})")
            object.__setattr__(self, "permutation", tuple(perm.tolist()))

    def build(self, dim: int) -> "BlockTerm":
        """The :class:`BlockTerm` of this spec on ``dim`` channels (zero at initialisation)."""
        return BlockTerm(dim, self)


class BlockTerm(nn.Module):
    """A block-diagonal matrix on (optionally permuted) channel groups, zero at initialisation.

    Args:
        dim: number of channels ``D``.
        spec: the grouping, parameterization and bound (see :class:`BlockSpec`); the
            default spec when ``None``. Kept as ``self.spec``.
    """

    def __init__(self, dim: int, spec: Optional[BlockSpec] = None) -> None:
        super().__init__()
        if spec is None:
            spec = BlockSpec()
        elif not isinstance(spec, BlockSpec):
            raise TypeError(
                f"spec must be a BlockSpec, got {type(spec).__name__}; build the term with BlockSpec(...).build(dim)"
            )
        b = resolve_block_size(dim, spec.num_blocks, spec.block_size)
        if spec.parameterization == "lowrank" and spec.rank > b:
            raise ValueError(f"rank must be an integer in [1, block_size={b}], got {spec.rank!r}")
        if spec.permutation is not None and len(spec.permutation) != dim:
            raise ValueError(f"permutation must be a permutation of range({dim})")
        self.spec = spec
        self.dim, self.block_size, self.num_blocks = dim, b, dim // b
        self.parameterization, self.scale, self.bound = spec.parameterization, spec.scale, spec.bound
        k = self.num_blocks
        if self.parameterization == "full":
            self.raw = nn.Parameter(torch.zeros(k, b, b))
        elif self.parameterization == "lowrank":
            self.rank = spec.rank
            self.u = nn.Parameter(torch.randn(k, b, self.rank) * spec.init_std)
            self.v = nn.Parameter(torch.zeros(k, b, self.rank))
        else:
            self.raw = nn.Parameter(torch.zeros(k))
        # A scalar block a 1 1^T has norm |a| b: projected in closed form (no NormBall).
        if self.scale != "entrywise" and self.parameterization != "scalar":
            self.norm_ball = NormBall(k, b, b, self.bound, norm=self.scale)
        if spec.permutation is None:
            self.register_buffer("permutation", None)
            self.register_buffer("inverse_permutation", None)
        else:
            perm = torch.tensor(spec.permutation, dtype=torch.long)
            self.register_buffer("permutation", perm)
            self.register_buffer("inverse_permutation", torch.argsort(perm))

    # The blocks as explicit (K, b, b) tensors. Used by ``apply`` for full blocks and by
    # ``dense`` for every parameterization.
    def _unbounded(self) -> Tensor:
        """The ``(K, b, b)`` blocks before the bounding map."""
        if self.parameterization == "full":
            return self.raw
        if self.parameterization == "lowrank":
            return self.u @ self.v.transpose(1, 2)
        return self.raw.view(-1, 1, 1) * self._ones()

    def _ones(self) -> Tensor:
        b = self.block_size
        return torch.ones(b, b, dtype=self.raw.dtype, device=self.raw.device)

    def _lowrank_factor(self) -> Tensor:
        """``entrywise`` multiplier ``(K,)`` of ``U V^T``: the first release's bound ``||U V^T||_2 <= ||U||_F ||V||_F``."""
        fro = self.u.flatten(1).norm(dim=1) * self.v.flatten(1).norm(dim=1)
        return self.bound / fro.clamp_min(self.bound)

    def _scalar_weights(self) -> Tensor:
        """The weight ``(K,)`` of each ``scalar`` block ``w_k 1 1^T`` (norm ``|w_k| b``)."""
        if self.scale == "entrywise":
            return (self.bound / self.block_size) * torch.tanh(self.raw)
        return self.raw

    def blocks(self) -> Tensor:
        """The ``(K, b, b)`` blocks after the bounding map."""
        if self.parameterization == "scalar":
            return self._scalar_weights().view(-1, 1, 1) * self._ones()
        if self.parameterization == "lowrank":
            uv = self._unbounded()
            return self._lowrank_factor().view(-1, 1, 1) * uv if self.scale == "entrywise" else uv
        if self.scale == "entrywise":
            return (self.bound / self.block_size) * torch.tanh(self.raw)
        return self.raw

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the blocks back into the norm ball (after an optimizer step; no-op for ``entrywise``)."""
        if self.scale == "entrywise":
            return
        if self.parameterization == "scalar":
            limit = self.bound / self.block_size
            self.raw.clamp_(-limit, limit)
        elif self.parameterization == "full":
            self.norm_ball.project_(self.raw)
        else:  # U V^T scaled by f: scale each factor by sqrt(f)
            root = self.norm_ball.factor(self._unbounded()).sqrt().view(-1, 1, 1)
            self.u.mul_(root.to(self.u.dtype))
            self.v.mul_(root.to(self.v.dtype))

    def _grouped(self, x: Tensor) -> Tensor:
        if self.permutation is not None:
            x = x.index_select(-1, self.permutation)
        return x.reshape(*x.shape[:-1], self.num_blocks, self.block_size)

    def _ungrouped(self, x: Tensor) -> Tensor:
        x = x.reshape(*x.shape[:-2], self.dim)
        if self.inverse_permutation is not None:
            x = x.index_select(-1, self.inverse_permutation)
        return x

    def group_sum(self, u: Tensor) -> Tensor:
        """Sum ``u (..., D)`` over the channels of each block: ``(..., K)``."""
        return self._grouped(u).sum(dim=-1)

    def apply(self, x: Tensor) -> Tensor:
        """``x (N, D) -> x @ B`` for the block-diagonal ``B``, without forming ``B``."""
        g = self._grouped(x)  # (N, K, b)
        if self.parameterization == "full":
            out = torch.einsum("nki,kij->nkj", g, self.blocks().to(x.dtype))
        elif self.parameterization == "lowrank":
            u, v = self.u.to(x.dtype), self.v.to(x.dtype)
            # x_k^T U_k V_k^T, scaled: (N,K,b)x(K,b,r) -> (N,K,r) -> (N,K,b)
            z = torch.einsum("nki,kir->nkr", g, u)
            if self.scale == "entrywise":  # the norm-ball scales need no rescaling in the forward pass
                z = z * self._lowrank_factor().to(x.dtype).view(1, -1, 1)
            out = torch.einsum("nkr,kjr->nkj", z, v)
        else:
            w = self._scalar_weights().to(x.dtype)
            out = (g.sum(dim=-1, keepdim=True) * w.view(1, -1, 1)).expand_as(g)
        return self._ungrouped(out)

    def dense(self) -> Tensor:
        """The explicit ``(D, D)`` matrix (for checks and export)."""
        m = torch.block_diag(*self.blocks().unbind(0))
        if self.inverse_permutation is not None:
            inv = self.inverse_permutation
            m = m.index_select(0, inv).index_select(1, inv)
        return m

    def num_scalars(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def fold_flops(self) -> int:
        """Multiply-adds per item of ``apply``."""
        k, b = self.num_blocks, self.block_size
        if self.parameterization == "full":
            return 2 * k * b * b
        if self.parameterization == "lowrank":
            return 4 * k * b * self.rank
        return 2 * self.dim

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_blocks={self.num_blocks}, block_size={self.block_size}, "
            f"parameterization={self.parameterization!r}, bound={self.bound}, scale={self.scale!r}, "
            f"permuted={self.permutation is not None}"
        )


class ClampedTemperatureMixin:
    """A softmax temperature for :class:`torch.nn.Module` subclasses, stored as a log (parameter
    ``log_temperature``) and clamped to ``[min_temperature, max_temperature]`` when read."""

    log_temperature: nn.Parameter

    def _init_temperature(
        self, temperature: float, min_temperature: float, max_temperature: float, learn: bool = True
    ) -> None:
        if not 0 < min_temperature <= temperature <= max_temperature:
            raise ValueError(
                f"need 0 < min_temperature <= temperature <= max_temperature, got "
                f"{min_temperature}, {temperature}, {max_temperature}"
            )
        self.log_min, self.log_max = math.log(min_temperature), math.log(max_temperature)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)), requires_grad=learn)

    @property
    def temperature(self) -> Tensor:
        """The effective (clamped) temperature."""
        return self.log_temperature.clamp(self.log_min, self.log_max).exp()

