"""Models scored by a similarity: a two-tower (cross-modal) and a one-tower (uni-modal) model.

A model owns its towers and its similarity (``model.similarity``), so the learned
similarity is saved with the weights; it owns no optimiser, loss or device logic.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gssf.similarity.base import Similarity

__all__ = ["DualEncoder", "SingleEncoder"]


class DualEncoder(nn.Module):
    """Image tower, text tower and the similarity that scores them.

    A tower is any module mapping a batch of its inputs to ``(N, E)`` embeddings: a head
    on cached features, or an :class:`~gssf.models.end_to_end.EncoderTower` that runs an
    encoder on raw inputs.
    """

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module, similarity: Similarity) -> None:
        super().__init__()
        if not isinstance(similarity, Similarity):
            raise TypeError(f"similarity must be a gssf.Similarity, got {type(similarity).__name__}")
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.similarity = similarity

    def encode_image(self, images: Any) -> Tensor:
        """Embeddings ``(N, E)`` of a batch of images (or image features)."""
        return self.image_tower(images)

    def encode_text(self, texts: Any) -> Tensor:
        """Embeddings ``(T, E)`` of a batch of captions (or caption features)."""
        return self.text_tower(texts)

    def forward(self, images: Any, texts: Any) -> Tensor:
        """Scores ``(N, T)`` of every image against every caption."""
        return self.similarity(self.encode_image(images), self.encode_text(texts))


class SingleEncoder(nn.Module):
    """One tower shared by queries and gallery (re-identification, fine-grained retrieval)."""

    def __init__(self, tower: nn.Module, similarity: Similarity) -> None:
        super().__init__()
        if not isinstance(similarity, Similarity):
            raise TypeError(f"similarity must be a gssf.Similarity, got {type(similarity).__name__}")
        self.tower = tower
        self.similarity = similarity

    def encode(self, inputs: Any) -> Tensor:
        """Embeddings ``(N, E)``."""
        return self.tower(inputs)

    def forward(self, queries: Any, gallery: Any) -> Tensor:
        """Scores ``(N, M)`` of queries against gallery items."""
        return self.similarity(self.encode(queries), self.encode(gallery))
