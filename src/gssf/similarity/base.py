"""The similarity base class and its registry.

Every similarity scores queries ``x (N, D)`` against a gallery ``y (M, D)`` and returns
``(N, M)`` scores, larger = more similar. The base class does the shared work (input
checks, dtype policy, L2 normalisation, chunking, pairwise scores); a subclass writes
only its maths:

* a *static* member (``is_static = True``) writes ``_fold_query`` and
  ``_fold_gallery``: vectors whose inner product is the score. The score matrix is then
  one matrix multiply, and the folded vectors go straight into an inner-product index.
* a *dynamic* member (pair-conditioned) overrides ``_score_matrix`` and ``_score_pairs``.

Edges: every public entry point refuses non-real dtypes (complex, integer, bool) and
NaN/Inf rows with a :class:`~gssf.errors.BadTensorError` naming the argument; rows whose
squared norms would overflow or underflow are first rescaled by an exact power of two, so
finite rows of any magnitude score as their unit vectors do; members that score raw
features (``dot``) raise :class:`~gssf.errors.ScoreOverflowError` instead of returning an
overflowed score.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterator, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from gssf.errors import BadTensorError, GssfError, ScoreOverflowError, TensorTypeError

__all__ = [
    "SIMILARITIES",
    "Similarity",
    "BilinearFormMixin",
    "register_similarity",
    "create_similarity",
    "get_similarity_class",
    "list_similarities",
]

# The registry lives in its own module (imported by the pretrained format without this one).
from gssf.similarity.registry import (  # noqa: E402
    SIMILARITIES,
    create_similarity,
    get_similarity_class,
    list_similarities,
    register_similarity,
)


def _finite_rows(t: Tensor, rows: int = 4096) -> Tensor:
    """``(N,)`` bool: which rows are all finite, computed a slab of rows at a time."""
    return torch.cat([torch.isfinite(part).all(dim=1) for part in t.split(rows)])


def _direct_norms_are_exact(norm: Tensor, dim: int, eps: float, limit: float) -> bool:
    """Whether row norms ``norm (N, ...)`` computed directly from ``D = dim`` features are right.

    Squaring overflows from about ``sqrt(max / D)`` per entry (``1e19`` in float32): such a
    norm comes out ``inf`` (or above ``limit``, which callers set lower when the raw rows
    enter a product). Squares below ``tiny`` underflow; they lose at most ``D * tiny`` of
    ``norm**2``, which is below rounding above ``floor``, and irrelevant when the true
    norm is below ``eps`` anyway. Only (N,)-sized work; one host sync.
    """
    info = torch.finfo(norm.dtype)
    floor = math.sqrt(dim * info.tiny / info.eps)
    lost = math.sqrt(dim * info.tiny)  # the true norm is at most norm + lost
    bad = norm > limit
    if eps - lost < floor:  # never with the default eps: no underflow check on the common path
        bad = bad | ((norm < floor) & (norm >= eps - lost))
    return not bool(bad.any())


def _unit_rows(t: Tensor, eps: float) -> Tensor:
    """``t / max(||t||, eps)`` row by row, ``(N, D) -> (N, D)``, for finite rows of any magnitude.

    The common path is the direct formula (one norm, one division). Rows whose squares
    overflow or underflow take :func:`_unit_rows_rescaled`; both give the same values
    and the same gradients where the direct one is exact.
    """
    norm = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    if _direct_norms_are_exact(norm.detach(), t.shape[1], eps, torch.finfo(t.dtype).max):
        return t / norm.clamp_min(eps)
    return _unit_rows_rescaled(t, eps)


def _unit_rows_rescaled(t: Tensor, eps: float) -> Tensor:
    """:func:`_unit_rows` after dividing each row by a power of two near its largest entry.

    Then the largest entry lies in ``(1/2, 2]`` in magnitude, so squares neither overflow
    nor lose anything that matters to underflow. Dividing by a power of two is exact:
    ordinary rows give the same bits as the direct formula. The scale is a constant for
    autograd (the result does not depend on it), so the gradient is that of
    ``t / max(||t||, eps)``; a zero row (scale: the smallest normal number) gets the finite gradient ``1 / eps``.
    """
    with torch.no_grad():
        lo, hi = torch.aminmax(t, dim=1, keepdim=True)
        peak = torch.maximum(hi, -lo).clamp_min(torch.finfo(t.dtype).tiny)
        # 2**floor(log2(peak)): an exact power of two (log2 and exp2 are exact on powers of
        # two, and any power of two near the peak will do); unlike frexp it exports to ONNX.
        scale = torch.exp2(torch.floor(torch.log2(peak)))
    u = t / scale
    return u / torch.maximum(torch.linalg.vector_norm(u, dim=1, keepdim=True), eps / scale)


def _peak(t: Tensor) -> float:
    """``max |t|`` as a Python float, without an ``abs`` temporary."""
    lo, hi = torch.aminmax(t.detach())
    return max(float(hi), -float(lo))


def _full_precision(t: Tensor) -> "contextlib.AbstractContextManager[None]":
    """Switch autocast off so scores accumulate in fp32 even inside a bf16/fp16 autocast region."""
    if isinstance(t, Tensor) and torch.is_autocast_enabled(t.device.type):
        return torch.autocast(device_type=t.device.type, enabled=False)
    return contextlib.nullcontext()


def _recording_init(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subclass ``__init__`` so that the outermost call records its arguments in ``_config``."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_init_depth", 0)
        self.__dict__["_init_depth"] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            self.__dict__["_init_depth"] = depth
        if depth == 0:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            config: Dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    config.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    config[name] = value
            self.__dict__["_config"] = config

    wrapped._records_config = True  # type: ignore[attr-defined]
    return wrapped


def _check_protocol(cls: type) -> None:
    """The flags of a Similarity subclass agree with the hooks it writes (see :class:`Similarity`)."""
    where = f"similarity class {cls.__qualname__}"
    if cls.gallery_fold_is_unit:  # type: ignore[attr-defined]
        if not (cls.is_static and cls.normalizes):  # type: ignore[attr-defined]
            raise TypeError(f"{where}: gallery_fold_is_unit needs a static member that normalises its rows")
        if cls._fold_gallery is not Similarity._fold_gallery:  # type: ignore[attr-defined]
            raise TypeError(
                f"{where}: gallery_fold_is_unit promises fold_gallery(y) == normalize(y), but the class "
                "overrides _fold_gallery; set gallery_fold_is_unit = False"
            )
    if not cls.is_static:  # type: ignore[attr-defined]
        missing = [h for h in ("_score_matrix", "_score_pairs") if getattr(cls, h) is getattr(Similarity, h)]
        if missing:
            raise TypeError(f"{where}: a pair-conditioned member (is_static = False) must write {', '.join(missing)}")


class Similarity(nn.Module):
    """Base class of all similarities: ``sim(x (N, D), y (M, D)) -> (N, M)``.

    Dtype policy: float64 inputs are scored in float64; everything else (fp16, bf16,
    fp32) is scored in float32, so low-precision features never accumulate in low
    precision. Scores come back in that compute dtype.

    The protocol a member implements (the public methods above do the checks, dtypes,
    normalisation and chunking, then call these hooks on prepared rows):

    * **static** members (``is_static = True``): ``_fold_query(x)`` and, unless it is the
      identity, ``_fold_gallery(y)``; the score is their inner product.
      ``gallery_fold_is_unit = True`` promises that ``fold_gallery(y) == normalize(y)``:
      chunked scoring then streams the raw gallery, so such a member must not override
      ``_fold_gallery`` (checked when the class is created).
    * **pair-conditioned** members (``is_static = False``): ``_score_matrix(x, y)`` and
      ``_score_pairs(x, y)`` (checked when the class is created), and ``static_part()``
      when they have a foldable first stage.
    * optional: ``score_bound`` (the largest ``|score|``, ``inf`` when unbounded; margin
      losses and two-stage search read it), ``flops_per_pair``, ``_score_candidates`` (a
      query against its own shortlist), ``constrain_()`` (projection after an optimizer
      step, called by :func:`gssf.losses.constrain_parameters`), ``normalizes = False``
      for members that score raw rows.
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
    #: Data checks of every call (NaN/Inf rows, score overflow) and the norm-range check of
    #: the normalisation: each reads a value on the host (a device sync on GPU). Set
    #: ``sim.validate = False`` to skip them; under ``torch.compile`` / ``torch.export`` they
    #: are skipped on their own. Without them a NaN row gives NaN scores instead of an error;
    #: normalisation takes the branch-free exact path, so finite rows score identically.
    validate: bool = True
    #: The largest ``|score|`` any pair can get (members with bounded scores override it).
    score_bound: float = float("inf")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_config", False):
            cls.__init__ = _recording_init(init)  # type: ignore[method-assign]
        _check_protocol(cls)

    def config(self) -> Dict[str, Any]:
        """The constructor arguments this object was built with (what :meth:`save_pretrained` stores)."""
        return dict(self.__dict__.get("_config", {}))

    def save_pretrained(self, directory: "Union[str, Path]") -> Path:
        """Write the similarity to ``directory`` (``similarity.json`` + ``similarity.safetensors``).

        :func:`gssf.load_similarity` (or :meth:`from_pretrained`) rebuilds it without the
        original arguments. See :mod:`gssf.similarity.pretrained`.
        """
        from gssf.similarity.pretrained import save_similarity

        return save_similarity(self, directory)

    @classmethod
    def from_pretrained(cls, directory: "Union[str, Path]") -> "Similarity":
        """The similarity saved in ``directory``; it must be an instance of ``cls``."""
        from gssf.similarity.pretrained import load_similarity

        sim = load_similarity(directory)
        if not isinstance(sim, cls):
            raise GssfError(f"{directory} holds a {type(sim).__name__} ({sim.name!r}), not a {cls.__name__}")
        return sim

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
            xp, yp, guard = self._prepare_pair(x, y, "x", "y")
            scores = self._score_matrix(xp, yp)
        return self._checked(scores, guard)

    def pair(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores ``(N,)`` of aligned rows: ``pair(x, y)[i] == self(x, y)[i, i]``."""
        with _full_precision(x):
            xp, yp, guard = self._prepare_pair(x, y, "x", "y", aligned=True)
            scores = self._score_pairs(xp, yp)
        return self._checked(scores, guard)

    def score_candidates(self, x: Tensor, candidates: Tensor) -> Tensor:
        """Scores ``(R, k)`` of each query ``x[r]`` (``x (R, D)``) against its own candidates
        ``candidates[r] (k, D)``: ``out[r, j] == self(x[r:r+1], candidates[r, j:j+1])``.

        The shape of a re-ranking shortlist, and of attention where every query has its own
        keys; pair-conditioned members score it without building an ``R x (R k)`` matrix.
        """
        if not isinstance(candidates, Tensor) or candidates.dim() != 3:
            raise BadTensorError(f"candidates must be a 3-D tensor (rows, k, D), got {getattr(candidates, 'shape', candidates)}")
        if not isinstance(x, Tensor) or x.dim() != 2 or candidates.shape[0] != x.shape[0] or candidates.shape[1] == 0:
            raise BadTensorError(
                f"expected x (R, D) and candidates (R, k >= 1, D), got {getattr(x, 'shape', x)} and {tuple(candidates.shape)}"
            )
        r, k, d = candidates.shape
        flat = candidates.reshape(r * k, d)
        with _full_precision(x):
            xp, cp, guard = self._prepare_pair(x, flat, "x", "candidates")
            scores = self._score_candidates(xp, cp.view(r, k, -1))
        return self._checked(scores, guard)

    def score_chunks(
        self, x: Tensor, y: Tensor, chunk_size: Optional[int] = None
    ) -> Iterator[Tuple[int, Tensor]]:
        """Yield ``(start, scores[start:start + c])`` over consecutive chunks of query rows.

        The gallery is validated and prepared once; no more than ``chunk_size x M`` scores
        (plus the member's own chunk workspace) exist at a time. For members whose gallery
        fold is ``normalize(y)`` the normalised gallery is never materialised: each block is
        ``fold_query(x) @ y.T`` scaled by ``1 / max(||y||, eps)`` per column, so streaming
        over a large gallery costs no copy of it (unless its rows are so large or small that
        their norms would overflow or underflow: then it is normalised once).

        Inputs are checked when this is called, not when the first block is asked for.
        """
        chunk = self._check_chunk_size(chunk_size)
        with _full_precision(x):
            dtype = self._check_pair(x, y, "x", "y")
            guard = self._may_overflow(x, y, dtype)
            raw = y.to(dtype)  # no copy when y already has the compute dtype
            norm = torch.linalg.vector_norm(raw, dim=1) if self.is_static and self.gallery_fold_is_unit else None
            # Raw rows enter a product with the folded queries: keep them well inside the range.
            limit = math.sqrt(torch.finfo(dtype).max)
            if norm is not None and _direct_norms_are_exact(norm, y.shape[1], self.eps, limit):
                g = raw.transpose(0, 1)
                col_scale: Optional[Tensor] = 1.0 / norm.clamp_min(self.eps)
            else:
                yp = self._cast_normalize(raw, dtype)
                g = self._fold_gallery(yp).transpose(0, 1) if self.is_static else yp
                col_scale = None
            del raw
        return self._blocks(x, g, col_scale, dtype, chunk, guard)

    def _blocks(
        self, x: Tensor, g: Tensor, col_scale: Optional[Tensor], dtype: torch.dtype, chunk: int, guard: bool
    ) -> Iterator[Tuple[int, Tensor]]:
        """The generator behind :meth:`score_chunks`, on an already prepared gallery ``g``."""
        for start in range(0, x.shape[0], chunk):
            with _full_precision(x):
                xs = self._cast_normalize(x[start : start + chunk], dtype)
                if not self.is_static:
                    block = self._score_matrix(xs, g)
                elif col_scale is None:
                    block = self._fold_query(xs) @ g
                else:
                    block = (self._fold_query(xs) @ g).mul_(col_scale)
            yield start, self._checked(block, guard, start)
            del block  # do not hold the previous block while the next one is computed

    def scores(self, x: Tensor, y: Tensor, chunk_size: Optional[int] = None) -> Tensor:
        """The full ``(N, M)`` matrix computed chunk by chunk (same values as ``self(x, y)``)."""
        blocks = [block for _, block in self.score_chunks(x, y, chunk_size)]
        return torch.cat(blocks, dim=0)

    def static_part(self) -> "Similarity":
        """The static (foldable) part of this similarity: the member itself when it is static.

        A pair-conditioned member (``is_static = False``) returns the static similarity that
        shares its parameters without the per-pair terms (a first-stage scorer for two-stage
        search, and what :class:`~gssf.losses.IdentityCrossEntropyLoss` scores proxies with).
        """
        if self.is_static:
            return self
        raise NotImplementedError(f"similarity {self.name!r} is pair-conditioned and defines no static_part()")

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

    def _score_candidates(self, x: Tensor, candidates: Tensor) -> Tensor:
        """Scores ``(R, k)`` of prepared queries ``x (R, D)`` against their own candidates
        ``(R, k, D)`` (two-stage search). Members override it when pairs are costly."""
        r, k, d = candidates.shape
        return self._score_pairs(x.repeat_interleave(k, dim=0), candidates.reshape(r * k, d)).view(r, k)

    # ------------------------------------------------------------------ shared steps
    def _may_overflow(self, x: Tensor, y: Tensor, dtype: torch.dtype) -> bool:
        """Whether raw scores of a member that does not normalise could overflow ``dtype``.

        ``|x_i . y_j| <= D max|x| max|y|`` (and so is every partial sum); while that is
        well below the dtype's max no score can overflow and the scores are not checked.
        """
        if self.normalizes or not self._validating():
            return False
        bound = x.shape[1] * _peak(x) * _peak(y)  # Python floats: an overflow gives inf, not an error
        return bound >= torch.finfo(dtype).max / 4

    def _validating(self) -> bool:
        """Whether this call runs the data checks (see :attr:`validate`)."""
        return self.validate and not torch.compiler.is_compiling()

    def _checked(self, scores: Tensor, guard: bool, row0: int = 0) -> Tensor:
        """``scores`` unchanged, or :class:`ScoreOverflowError` when ``guard`` and one is not finite."""
        if not guard or not self._validating():
            return scores
        lo, hi = torch.aminmax(scores.detach())  # NaN propagates; no scores-sized temporary
        if math.isfinite(float(lo)) and math.isfinite(float(hi)):
            return scores
        first = torch.nonzero(~torch.isfinite(scores.detach()))[0].tolist()
        where = f"x row {row0 + first[0]}, y row {first[1]}" if scores.dim() == 2 else f"pair {first[0]}"
        raise ScoreOverflowError(
            f"similarity {self.name!r}: the inner products of these finite inputs overflow {scores.dtype} "
            f"(first at {where}); scale the features down or use a normalising similarity such as 'cosine'"
        )

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
            raise GssfError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        return chunk

    def _compute_dtype(self, *tensors: Tensor) -> torch.dtype:
        if any(t.dtype == torch.float64 for t in tensors):
            return torch.float64
        return torch.float32

    def _validate(self, t: Tensor, what: str) -> None:
        if not isinstance(t, Tensor):
            raise TensorTypeError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            # complex would silently lose its imaginary part, integers and bools are no features
            raise TensorTypeError(
                f"{what} must be a real floating-point tensor (float16, bfloat16, float32 or float64), got {t.dtype}"
            )
        if t.dim() != 2:
            raise BadTensorError(f"{what} must be 2-D (rows, features), got shape {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise BadTensorError(f"{what} is empty: it has no rows")
        if t.shape[1] == 0:
            raise BadTensorError(f"{what} has no feature columns")
        if self.dim is not None and t.shape[1] != self.dim:
            raise BadTensorError(
                f"{what} has {t.shape[1]} features but similarity {self.name!r} was built for dim={self.dim}"
            )
        if not self._validating():
            return
        # One reduction, no (rows x D) temporary: a NaN or Inf anywhere makes the sum
        # non-finite. Only then (or on overflow of the sum) look row by row.
        acc = torch.float64 if t.dtype == torch.float64 else torch.float32
        if bool(torch.isfinite(t.sum(dtype=acc))):
            return
        finite = _finite_rows(t)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise BadTensorError(f"{what} has {len(bad)} row(s) with NaN or Inf values: rows {shown}")

    def _cast_normalize(self, t: Tensor, dtype: torch.dtype) -> Tensor:
        t = t.to(dtype)
        if not self.normalizes:
            return t
        return _unit_rows(t, self.eps) if self._validating() else _unit_rows_rescaled(t, self.eps)

    def _prepare(self, t: Tensor, what: str) -> Tensor:
        self._validate(t, what)
        return self._cast_normalize(t, self._compute_dtype(t))

    def _check_pair(self, x: Tensor, y: Tensor, xname: str, yname: str) -> torch.dtype:
        """Validate both inputs and return their common compute dtype."""
        self._validate(x, xname)
        self._validate(y, yname)
        if x.shape[1] != y.shape[1]:
            raise BadTensorError(f"{xname} has {x.shape[1]} features but {yname} has {y.shape[1]}")
        return self._compute_dtype(x, y)

    def _prepare_pair(
        self, x: Tensor, y: Tensor, xname: str, yname: str, aligned: bool = False
    ) -> Tuple[Tensor, Tensor, bool]:
        """Prepared ``x`` and ``y``, and whether their scores need the overflow check."""
        dtype = self._check_pair(x, y, xname, yname)
        if aligned and x.shape[0] != y.shape[0]:
            raise BadTensorError(f"pair() needs aligned rows: {xname} has {x.shape[0]} rows, {yname} has {y.shape[0]}")
        guard = self._may_overflow(x, y, dtype)
        return self._cast_normalize(x, dtype), self._cast_normalize(y, dtype), guard


Similarity.__init__ = _recording_init(Similarity.__init__)  # type: ignore[method-assign]  # members that inherit it


class BilinearFormMixin:
    """Members whose score is ``normalize(x)^T M normalize(y)`` for an explicit ``M (D, D)``.

    They fold ``M`` into the query side, so the gallery fold is the normalised row itself.
    """

    gallery_fold_is_unit: ClassVar[bool] = True

    def weight_matrix(self) -> Tensor:
        """The explicit ``(D, D)`` matrix ``M``; built from the parameters (slow, for checks/export)."""
        raise NotImplementedError
