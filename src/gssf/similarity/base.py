"""The similarity base class and its registry.

Every similarity scores queries ``x (N, D)`` against a gallery ``y (M, D)`` and returns
``(N, M)`` scores, larger = more similar. The base class does the shared work (input
checks, dtype policy, L2 normalisation, chunking, pairwise scores); a subclass writes
only its maths:

* a *static* member (``is_static = True``) writes ``_fold_query`` and
  ``_fold_gallery``: vectors whose inner product is the score. The score matrix is then
  one matrix multiply, and the folded vectors go straight into an inner-product index.
* a *dynamic* member (pair-conditioned) overrides ``_score_matrix`` and ``_score_pairs``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Optional, Tuple, Type, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Similarity",
    "BilinearFormMixin",
    "register_similarity",
    "create_similarity",
    "get_similarity_class",
    "list_similarities",
]

_REGISTRY: Dict[str, Type["Similarity"]] = {}
S = TypeVar("S", bound=Type["Similarity"])


def register_similarity(name: str) -> Callable[[S], S]:
    """Class decorator adding a :class:`Similarity` subclass to the registry under ``name``."""

    def decorator(cls: S) -> S:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"similarity {name!r} is already registered by {_REGISTRY[name].__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_similarities() -> List[str]:
    """Names of every registered similarity, sorted."""
    return sorted(_REGISTRY)


def get_similarity_class(name: str) -> Type["Similarity"]:
    """The class registered as ``name``; a clear error lists the valid names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown similarity {name!r}; choose one of: {', '.join(list_similarities())}") from None


def create_similarity(name: str, dim: Optional[int] = None, **kwargs: Any) -> "Similarity":
    """Build a registered similarity, e.g. ``create_similarity("gssf", dim=512, num_blocks=16)``.

    Learnable members need ``dim``; parameter-free ones accept it to check inputs.
    """
    cls = get_similarity_class(name)
    return cls(dim=dim, **kwargs)


def _finite_rows(t: Tensor, rows: int = 4096) -> Tensor:
    """``(N,)`` bool: which rows are all finite, computed a slab of rows at a time."""
    return torch.cat([torch.isfinite(part).all(dim=1) for part in t.split(rows)])


def _full_precision(t: Tensor) -> "contextlib.AbstractContextManager[None]":
    """Switch autocast off so scores accumulate in fp32 even inside a bf16/fp16 autocast region."""
    if isinstance(t, Tensor) and torch.is_autocast_enabled(t.device.type):
        return torch.autocast(device_type=t.device.type, enabled=False)
    return contextlib.nullcontext()


class Similarity(nn.Module):
    """Base class of all similarities: ``sim(x (N, D), y (M, D)) -> (N, M)``.

    Dtype policy: float64 inputs are scored in float64; everything else (fp16, bf16,
    fp32) is scored in float32, so low-precision features never accumulate in low
    precision. Scores come back in that compute dtype.
    """

    name: ClassVar[str] = ""
    #: True when the score is an inner product of separately folded query/gallery vectors.
    is_static: ClassVar[bool] = True
    #: False for members that score raw features (``dot``).
    normalizes: ClassVar[bool] = True
    #: True when the member has no meaning without a feature dimension (learnable members).
    requires_dim: ClassVar[bool] = False
    #: True when ``_fold_gallery`` is the identity on normalised rows (``fold_gallery(y) == normalize(y)``).
    gallery_fold_is_unit: ClassVar[bool] = False
    #: Default number of query rows scored at a time by :meth:`score_chunks`.
    default_chunk_size: ClassVar[int] = 4096

    def __init__(self, dim: Optional[int] = None, eps: float = 1e-8) -> None:
        super().__init__()
        if self.requires_dim and dim is None:
            raise ValueError(f"similarity {self.name!r} is learnable and needs dim=<feature dimension>")
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.dim = dim
        self.eps = float(eps)

    # ------------------------------------------------------------------ public API
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Score matrix ``(N, M)`` of every row of ``x (N, D)`` against every row of ``y (M, D)``."""
        with _full_precision(x):
            xp, yp = self._prepare_pair(x, y, "x", "y")
            return self._score_matrix(xp, yp)

    def pair(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores ``(N,)`` of aligned rows: ``pair(x, y)[i] == self(x, y)[i, i]``."""
        with _full_precision(x):
            xp, yp = self._prepare_pair(x, y, "x", "y")
            if xp.shape[0] != yp.shape[0]:
                raise ValueError(f"pair() needs aligned rows: x has {xp.shape[0]} rows, y has {yp.shape[0]}")
            return self._score_pairs(xp, yp)

    def score_chunks(
        self, x: Tensor, y: Tensor, chunk_size: Optional[int] = None
    ) -> Iterator[Tuple[int, Tensor]]:
        """Yield ``(start, scores[start:start + c])`` over consecutive chunks of query rows.

        The gallery is validated and prepared once; no more than ``chunk_size x M`` scores
        (plus the member's own chunk workspace) exist at a time. For members whose gallery
        fold is ``normalize(y)`` the normalised gallery is never materialised: each block is
        ``fold_query(x) @ y.T`` scaled by ``1 / max(||y||, eps)`` per column, so streaming
        over a large gallery costs no copy of it.
        """
        chunk = self._check_chunk_size(chunk_size)
        with _full_precision(x):
            dtype = self._check_pair(x, y, "x", "y")
            if self.is_static and self.gallery_fold_is_unit:
                g = y.to(dtype).transpose(0, 1)  # no copy when y already has the compute dtype
                col_scale = 1.0 / torch.linalg.vector_norm(y.to(dtype), dim=1).clamp_min(self.eps)
            else:
                yp = self._cast_normalize(y, dtype)
                g = self._fold_gallery(yp).transpose(0, 1) if self.is_static else yp
                col_scale = None
        for start in range(0, x.shape[0], chunk):
            with _full_precision(x):
                xs = self._cast_normalize(x[start : start + chunk], dtype)
                if not self.is_static:
                    block = self._score_matrix(xs, g)
                elif col_scale is None:
                    block = self._fold_query(xs) @ g
                else:
                    block = (self._fold_query(xs) @ g).mul_(col_scale)
            yield start, block
            del block  # do not hold the previous block while the next one is computed

    def scores(self, x: Tensor, y: Tensor, chunk_size: Optional[int] = None) -> Tensor:
        """The full ``(N, M)`` matrix computed chunk by chunk (same values as ``self(x, y)``)."""
        blocks = [block for _, block in self.score_chunks(x, y, chunk_size)]
        return torch.cat(blocks, dim=0)

    def fold_query(self, x: Tensor) -> Tensor:
        """Vectors ``q (N, F)`` with ``q @ fold_gallery(y).T == self(x, y)`` (static members only)."""
        self._require_static("fold_query")
        with _full_precision(x):
            return self._fold_query(self._prepare(x, "x"))

    def fold_gallery(self, y: Tensor) -> Tensor:
        """Vectors ``g (M, F)`` with ``fold_query(x) @ g.T == self(x, y)`` (static members only)."""
        self._require_static("fold_gallery")
        with _full_precision(y):
            return self._fold_gallery(self._prepare(y, "y"))

    @property
    def num_parameters(self) -> int:
        """Number of learnable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def flops_per_pair(self, dim: Optional[int] = None) -> int:
        """Multiply-adds to score one extra gallery item against one query, after folding."""
        d = dim or self.dim or 0
        return 2 * d

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    # ------------------------------------------------------------------ subclass hooks
    def _fold_query(self, x: Tensor) -> Tensor:
        """Fold prepared queries (normalised, compute dtype). Static members override."""
        return x

    def _fold_gallery(self, y: Tensor) -> Tensor:
        return y

    def _score_matrix(self, x: Tensor, y: Tensor) -> Tensor:
        return self._fold_query(x) @ self._fold_gallery(y).transpose(0, 1)

    def _score_pairs(self, x: Tensor, y: Tensor) -> Tensor:
        return (self._fold_query(x) * self._fold_gallery(y)).sum(dim=-1)

    # ------------------------------------------------------------------ shared steps
    def _require_static(self, what: str) -> None:
        if not self.is_static:
            raise TypeError(
                f"similarity {self.name!r} is pair-conditioned: its score is not an inner product of "
                f"per-item vectors, so {what}() is undefined. Use .static_part() for a first-stage "
                "shortlist, then re-score the shortlist with this similarity."
            )

    def _check_chunk_size(self, chunk_size: Optional[int]) -> int:
        chunk = self.default_chunk_size if chunk_size is None else chunk_size
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk <= 0:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        return chunk

    def _compute_dtype(self, *tensors: Tensor) -> torch.dtype:
        if any(t.dtype == torch.float64 for t in tensors):
            return torch.float64
        return torch.float32

    def _validate(self, t: Tensor, what: str) -> None:
        if not isinstance(t, Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{what} must be 2-D (rows, features), got shape {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError(f"{what} is empty: it has no rows")
        if t.shape[1] == 0:
            raise ValueError(f"{what} has no feature columns")
        if self.dim is not None and t.shape[1] != self.dim:
            raise ValueError(
                f"{what} has {t.shape[1]} features but similarity {self.name!r} was built for dim={self.dim}"
            )
        if not (t.is_floating_point() or t.is_complex()):
            raise TypeError(f"{what} must be a floating-point tensor, got {t.dtype}")
        # One reduction, no (rows x D) temporary: a NaN or Inf anywhere makes the sum
        # non-finite. Only then (or on overflow of the sum) look row by row.
        acc = torch.float64 if t.dtype == torch.float64 else torch.float32
        if bool(torch.isfinite(t.sum(dtype=acc))):
            return
        finite = _finite_rows(t)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise ValueError(f"{what} has {len(bad)} row(s) with NaN or Inf values: rows {shown}")

    def _cast_normalize(self, t: Tensor, dtype: torch.dtype) -> Tensor:
        t = t.to(dtype)
        if self.normalizes:
            # F.normalize divides by max(norm, eps): a zero row stays zero with finite gradients.
            t = F.normalize(t, p=2.0, dim=1, eps=self.eps)
        return t

    def _prepare(self, t: Tensor, what: str) -> Tensor:
        self._validate(t, what)
        return self._cast_normalize(t, self._compute_dtype(t))

    def _check_pair(self, x: Tensor, y: Tensor, xname: str, yname: str) -> torch.dtype:
        """Validate both inputs and return their common compute dtype."""
        self._validate(x, xname)
        self._validate(y, yname)
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"{xname} has {x.shape[1]} features but {yname} has {y.shape[1]}")
        return self._compute_dtype(x, y)

    def _prepare_pair(self, x: Tensor, y: Tensor, xname: str, yname: str) -> Tuple[Tensor, Tensor]:
        dtype = self._check_pair(x, y, xname, yname)
        return self._cast_normalize(x, dtype), self._cast_normalize(y, dtype)


class BilinearFormMixin:
    """Members whose score is ``normalize(x)^T M normalize(y)`` for an explicit ``M (D, D)``.

    They fold ``M`` into the query side, so the gallery fold is the normalised row itself.
    """

    gallery_fold_is_unit: ClassVar[bool] = True

    def weight_matrix(self) -> Tensor:
        """The explicit ``(D, D)`` matrix ``M``; built from the parameters (slow, for checks/export)."""
        raise NotImplementedError
