"""Shared pieces of the loss family: the registry, input checks and the positive mask.

Every loss receives a :class:`gssf.Similarity` at construction and scores through it,
so a loss never knows (or branches on) which similarity it trains. Two kinds exist:

* ``cross_modal`` losses score two sets, ``loss(x (N, D), y (M, D), x_ids (N,), y_ids (M,))``
  (images against captions); rows and columns whose ids match are positives.
* ``unimodal`` losses score one set against itself, ``loss(embeddings (N, D), labels (N,))``.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, ClassVar, List, Type, TypeVar

import torch
from torch import Tensor, nn

from gssf.similarity.base import Similarity
from gssf.utils.registry import Registry

__all__ = [
    "LOSSES",
    "SimilarityLoss",
    "register_loss",
    "create_loss",
    "get_loss_class",
    "list_losses",
    "positive_mask",
    "constrain_parameters",
    "PairLoss",
]

L = TypeVar("L", bound=Type["SimilarityLoss"])

#: The two input conventions a loss can follow.
LOSS_KINDS = ("cross_modal", "unimodal")


def _checked_constructor(cls: Type["SimilarityLoss"]) -> Callable[..., "SimilarityLoss"]:
    """``cls`` called with ``similarity=`` and keyword arguments checked against its signature."""

    def make(similarity: Similarity, **kwargs: Any) -> "SimilarityLoss":
        params = inspect.signature(cls.__init__).parameters
        accepted = [p for p in params if p not in ("self", "similarity")]
        unknown = sorted(set(kwargs) - set(accepted))
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            unknown = []  # a loss taking **kwargs checks them itself (the pml adapter)
        if unknown:
            raise ValueError(f"loss {cls.name!r} got unknown argument(s) {unknown}; valid arguments: {accepted}")
        return cls(similarity=similarity, **kwargs)

    return make


#: The loss registry (:class:`gssf.utils.registry.Registry`): name -> class.
LOSSES: Registry[Type["SimilarityLoss"]] = Registry("loss", factory=_checked_constructor)


def register_loss(name: str) -> Callable[[L], L]:
    """Class decorator adding a :class:`SimilarityLoss` subclass to the registry under ``name``."""

    def decorator(cls: L) -> L:
        if cls.kind not in LOSS_KINDS:
            raise ValueError(f"loss {name!r} has kind {cls.kind!r}; expected one of {LOSS_KINDS}")
        LOSSES.register(name, cls)
        cls.name = name
        return cls

    return decorator


def list_losses(kind: str = "") -> List[str]:
    """Registered loss names, sorted; only those of ``kind`` when given."""
    return LOSSES.list(where=lambda c: not kind or c.kind == kind)


def get_loss_class(name: str) -> Type["SimilarityLoss"]:
    """The class registered as ``name``; a clear error lists the valid names."""
    return LOSSES.lookup(name)


def create_loss(name: str, similarity: Similarity, **kwargs: Any) -> "SimilarityLoss":
    """Build a registered loss, e.g. ``create_loss("hinge", similarity=sim, max_violation=True)``.

    Unknown keyword arguments raise a ``ValueError`` that lists the accepted ones.
    """
    return LOSSES.create(name, similarity=similarity, **kwargs)


def positive_mask(x_ids: Tensor, y_ids: Tensor) -> Tensor:
    """Boolean ``(N, M)`` mask, True where ``x_ids[i] == y_ids[j]``.

    Two captions of one image (or two images of one identity) share an id, so neither is
    a negative of the other's positive partner.
    """
    return x_ids.reshape(-1, 1) == y_ids.reshape(1, -1)


def _check_ids(ids: Tensor, rows: int, what: str) -> Tensor:
    if not isinstance(ids, Tensor):
        ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.shape[0] != rows:
        raise ValueError(f"{what} must have shape ({rows},), got {tuple(ids.shape)}")
    if ids.is_floating_point():
        raise TypeError(f"{what} must be an integer tensor, got {ids.dtype}")
    return ids


class SimilarityLoss(nn.Module):
    """Base class: holds the similarity and checks inputs; subclasses write only the loss."""

    name: ClassVar[str] = ""
    #: ``"cross_modal"`` (two sets with ids) or ``"unimodal"`` (one set with labels).
    kind: ClassVar[str] = "cross_modal"

    def __init__(self, similarity: Similarity) -> None:
        super().__init__()
        if not isinstance(similarity, Similarity):
            raise TypeError(f"similarity must be a gssf.Similarity, got {type(similarity).__name__}")
        self.similarity = similarity

    def own_parameters(self) -> List[nn.Parameter]:
        """The loss's own parameters (temperature, proxies), excluding the similarity's."""
        sim_ids = {id(p) for p in self.similarity.parameters()}
        return [p for p in self.parameters() if id(p) not in sim_ids]

    def constrain_(self) -> None:
        """Project the loss's own parameters back into their valid range (after an optimizer step)."""

    def set_epoch(self, epoch: int) -> None:
        """Per-epoch settings (0-based ``epoch``), called before each epoch; a no-op by default."""


class PairLoss(SimilarityLoss):
    """Cross-modal losses over two sets with ids: ``forward(x, y, x_ids, y_ids)``.

    The shared steps (id checks, the ``(N, M)`` score matrix, the positive mask of
    matching ids) live here; a subclass writes only :meth:`from_scores`.
    """

    kind: ClassVar[str] = "cross_modal"

    def forward(self, x: Tensor, y: Tensor, x_ids: Tensor, y_ids: Tensor) -> Tensor:
        x_ids = _check_ids(x_ids, x.shape[0], "x_ids").to(x.device)
        y_ids = _check_ids(y_ids, y.shape[0], "y_ids").to(x.device)
        return self.from_scores(self.similarity(x, y), positive_mask(x_ids, y_ids))

    def from_scores(self, scores: Tensor, pos: Tensor) -> Tensor:
        """The loss of a precomputed ``(N, M)`` score matrix and its boolean positive mask."""
        raise NotImplementedError


def constrain_parameters(*modules: nn.Module) -> None:
    """Call ``constrain_()`` on every submodule that defines it (projected gradient steps)."""
    for module in modules:
        for sub in module.modules():
            fn = getattr(sub, "constrain_", None)
            if callable(fn):
                fn()
