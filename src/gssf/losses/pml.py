"""Use a :class:`gssf.Similarity` as a ``pytorch-metric-learning`` distance (extra ``gssf[pml]``).

::

    from pytorch_metric_learning.losses import TripletMarginLoss
    from gssf.losses.pml import SimilarityDistance

    sim = gssf.create_similarity("gssf", dim=256)
    loss_fn = TripletMarginLoss(margin=0.2, distance=SimilarityDistance(sim))

The similarity is a submodule of the distance (and so of the loss): its parameters are
trained by the PML loss and appear in ``loss_fn.parameters()``.
"""
from __future__ import annotations

from torch import Tensor

try:
    from pytorch_metric_learning.distances import BaseDistance
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "gssf.losses.pml needs pytorch-metric-learning: pip install 'gssf[pml]'"
    ) from exc

from gssf.similarity.base import Similarity

__all__ = ["SimilarityDistance"]


class SimilarityDistance(BaseDistance):
    """A PML distance whose matrix is ``similarity(query, ref)`` (larger = closer).

    ``is_inverted=True`` tells PML that larger values mean closer. PML's own
    normalisation is off: the similarity normalises (or not, for ``dot``) itself.
    """

    def __init__(self, similarity: Similarity, **kwargs) -> None:
        if not isinstance(similarity, Similarity):
            raise TypeError(f"similarity must be a gssf.Similarity, got {type(similarity).__name__}")
        for key in ("is_inverted", "normalize_embeddings"):
            if key in kwargs:
                raise ValueError(f"{key} is fixed by the similarity and cannot be passed")
        super().__init__(normalize_embeddings=False, is_inverted=True, **kwargs)
        self.similarity = similarity

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return self.similarity(query_emb, ref_emb)

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return self.similarity.pair(query_emb, ref_emb)
