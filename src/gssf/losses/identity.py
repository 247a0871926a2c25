"""Identity (class) cross-entropy for uni-modal tasks, scored through the similarity."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gssf.losses.base import SimilarityLoss, _check_ids, register_loss
from gssf.similarity.base import Similarity

__all__ = ["IdentityCrossEntropyLoss"]


@register_loss("id_ce")
class IdentityCrossEntropyLoss(SimilarityLoss):
    """Cross-entropy over training identities with one learnable proxy per identity.

    The logits are the similarity between each embedding and every proxy divided by a
    fixed ``temperature`` (a normalised-softmax classifier when the similarity is cosine),
    so the learned similarity is trained by the classification signal too.

    The proxies are scored with ``similarity.static_part()`` by default: the similarity
    itself for every static member; for a pair-conditioned member (``gssf_dynamic``) its
    gate-free part, which shares the diagonal and block terms. A proxy is a class
    prototype, not an item, and a pair-conditioned score costs ``2h + 1`` GEMMs per pair:
    against the ~1,000 proxies of a re-ID training set that was 6.7x a cosine step. The
    gates then learn from the pair losses (triplet), the shared terms from both.
    ``proxy_scores="full"`` scores the proxies with the full similarity.

    Args:
        similarity: the scoring function.
        num_classes: number of training identities (labels in ``[0, num_classes)``).
        dim: embedding dimension of the proxies.
        temperature: fixed logit temperature (1/16 ~ scale 16).
        label_smoothing: label smoothing of the cross-entropy.
        proxy_scores: ``"static"`` (``similarity.static_part()``) or ``"full"`` (the similarity).

    Shapes: ``embeddings (N, D), labels (N,) -> ()``.
    """

    kind = "unimodal"

    def __init__(
        self,
        similarity: Similarity,
        num_classes: int = 0,
        dim: int = 0,
        temperature: float = 1.0 / 16,
        label_smoothing: float = 0.0,
        proxy_scores: str = "static",
    ) -> None:
        super().__init__(similarity)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if proxy_scores not in ("static", "full"):
            raise ValueError(f"proxy_scores must be 'static' or 'full', got {proxy_scores!r}")
        self.proxy_scores = proxy_scores
        self.num_classes = num_classes
        self.temperature = float(temperature)
        self.label_smoothing = float(label_smoothing)
        self.proxies = nn.Parameter(torch.randn(num_classes, dim) * 0.1)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        labels = _check_ids(labels, embeddings.shape[0], "labels").to(embeddings.device)
        if bool(((labels < 0) | (labels >= self.num_classes)).any()):
            raise ValueError(f"labels must lie in [0, {self.num_classes}); got min {int(labels.min())}, max {int(labels.max())}")
        score = self.similarity.static_part() if self.proxy_scores == "static" else self.similarity
        logits = score(embeddings, self.proxies) / self.temperature
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, temperature={self.temperature}, label_smoothing={self.label_smoothing}, proxy_scores={self.proxy_scores!r}"
