"""Any pytorch-metric-learning loss as a registered gssf loss (``pml``, extra ``gssf[pml]``).

``create_loss("pml", similarity=sim, loss="MultiSimilarityLoss", alpha=2.0)`` builds
``pytorch_metric_learning.losses.MultiSimilarityLoss(alpha=2.0, distance=SimilarityDistance(sim))``:
the PML loss scores with the gssf similarity (larger = closer), and its parameters, the
similarity's among them, train as usual. In a config::

    loss:
      terms: [{name: pml, kwargs: {loss: MultiSimilarityLoss, alpha: 2.0}}]
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor

from gssf.losses.base import SimilarityLoss, register_loss
from gssf.similarity.base import Similarity

__all__ = ["PMLLoss"]


def _pml_class(name: str) -> Any:
    from gssf.utils.optional import require

    losses = require("pytorch_metric_learning.losses", "pml", "the 'pml' loss")
    cls = getattr(losses, name, None)
    if not inspect.isclass(cls) or not hasattr(cls, "compute_loss"):
        known = sorted(n for n, c in vars(losses).items() if inspect.isclass(c) and n.endswith("Loss"))
        raise ValueError(f"unknown pytorch-metric-learning loss {name!r}; choose one of: {', '.join(known)}")
    return cls


@register_loss("pml")
class PMLLoss(SimilarityLoss):
    """A pytorch-metric-learning loss on ``(embeddings (B, D), labels (B,))`` scored by ``similarity``.

    Args:
        similarity: the scoring function (becomes the PML loss's distance).
        loss: name of a class in ``pytorch_metric_learning.losses``.
        **kwargs: that class's constructor arguments (checked against its signature).
    """

    kind = "unimodal"

    def __init__(self, similarity: Similarity, loss: str = "TripletMarginLoss", **kwargs: Any) -> None:
        super().__init__(similarity)
        from gssf.losses.pml import SimilarityDistance

        cls = _pml_class(loss)
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown or "distance" in kwargs:
            raise ValueError(f"pml loss {loss!r} got unknown argument(s) {unknown or ['distance']}; "
                             f"valid arguments: {[a for a in accepted if a != 'distance']}")  # fmt: skip
        self.loss_name = loss
        self.loss = cls(distance=SimilarityDistance(similarity), **kwargs)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.loss(embeddings, labels)

    def extra_repr(self) -> str:
        return f"loss={self.loss_name}"
