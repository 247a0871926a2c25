"""The training loss of a config: one registered loss, or a weighted sum of several sharing the similarity."""
from __future__ import annotations

from typing import Any, Dict, Optional

from torch import Tensor, nn

from gssf.losses import create_loss
from gssf.similarity import Similarity
from gssf.train.config_schema import TrainConfig, loss_terms

__all__ = ["LossSum", "build_criterion"]


class LossSum(nn.Module):
    """A weighted sum of losses sharing one similarity: ``sum_k w_k * loss_k(*inputs)``."""

    def __init__(self, terms: Dict[str, nn.Module], weights: Dict[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.weights = {k: float(weights.get(k, 1.0)) for k in terms}

    def forward(self, *inputs: Any) -> Tensor:
        total: Optional[Tensor] = None
        for name, term in self.terms.items():
            value = self.weights[name] * term(*inputs)
            total = value if total is None else total + value
        assert total is not None
        return total


def build_criterion(cfg: TrainConfig, similarity: Similarity, num_classes: int = 0) -> nn.Module:
    """The loss (or weighted sum of losses) of ``cfg.loss``, scoring with ``similarity``.

    Built from the config's terms (:func:`~gssf.train.config_schema.loss_terms`: ``loss.terms``, or
    the terms that ``loss.name``/``weights``/per-loss keys stand for); the task supplies what only it
    knows (``id_ce``'s number of classes and the embedding size). One term of weight 1 is the loss
    itself, otherwise a :class:`LossSum` keyed by loss name (a repeated name gets ``<name>_<i>``).
    """
    lo = cfg.loss
    built: Dict[str, nn.Module] = {}
    weights: Dict[str, float] = {}
    for i, term in enumerate(loss_terms(lo)):
        name = term["name"]
        kwargs = dict(term["kwargs"])
        if name == "id_ce":
            kwargs.update(num_classes=num_classes, dim=cfg.model.embed_dim)
        key = name if name not in built else f"{name}_{i}"
        built[key] = create_loss(name, similarity=similarity, **kwargs)
        weights[key] = term["weight"]
    # The older form wraps even one loss in a LossSum once loss.weights is given: its checkpoints
    # hold that loss's tensors under terms.<name>.
    legacy_sum = not lo.terms and bool(lo.weights)
    if len(built) == 1 and next(iter(weights.values())) == 1.0 and not legacy_sum:
        return next(iter(built.values()))
    return LossSum(built, weights)
