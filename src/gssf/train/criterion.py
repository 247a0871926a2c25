"""The training loss of a config: one registered loss, or a weighted sum of several sharing the similarity."""
from __future__ import annotations

from typing import Any, Dict, Optional

from torch import Tensor, nn

from gssf.losses import create_loss
from gssf.similarity import Similarity
from gssf.train.config_schema import TrainConfig

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
    """The loss (or weighted sum of losses) named by ``cfg.loss``, scoring with ``similarity``."""
    lo = cfg.loss
    per_loss: Dict[str, Dict[str, Any]] = {
        "hinge": dict(margin=lo.margin, max_violation=lo.max_violation, reduction=lo.reduction,
                      hardest_after_epochs=lo.hardest_after_epochs),
        "infonce": dict(
            temperature=lo.temperature,
            learn_temperature=lo.learn_temperature,
            min_temperature=lo.min_temperature,
            max_temperature=lo.max_temperature,
        ),
        "triplet": dict(margin=None if lo.soft_margin else lo.margin),
        "id_ce": dict(
            num_classes=num_classes, dim=cfg.model.embed_dim, temperature=lo.id_temperature,
            label_smoothing=lo.label_smoothing,
        ),
    }
    if lo.terms:
        # {name, weight, kwargs} per loss; the task supplies what only it knows (id_ce's classes).
        built: Dict[str, nn.Module] = {}
        weights: Dict[str, float] = {}
        for i, term in enumerate(lo.terms):
            name = str(term["name"])
            kwargs = dict(term.get("kwargs") or {})
            if name == "id_ce":
                kwargs.update(num_classes=num_classes, dim=cfg.model.embed_dim)
            key = name if name not in built else f"{name}.{i}"
            built[key] = create_loss(name, similarity=similarity, **kwargs)
            weights[key] = float(term.get("weight", 1.0))
        if len(built) == 1 and next(iter(weights.values())) == 1.0:
            return next(iter(built.values()))
        return LossSum(built, weights)
    names = lo.name.split("+")
    terms = {n: create_loss(n, similarity=similarity, **per_loss.get(n, {})) for n in names}
    if len(terms) == 1 and not lo.weights:
        return terms[names[0]]
    return LossSum(terms, lo.weights)
