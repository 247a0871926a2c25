"""Retrieval evaluation under the three published protocols, exact and in bounded memory.

Every metric exists as a pure function of a score matrix (larger = more similar) and as
a streaming variant fed by ``(queries, gallery, similarity, chunk_size)`` that holds at
most a ``chunk_size x M`` block of scores; accumulating evaluators wrap the streaming
variants for training loops (and DDP).

* image-text (Flickr30K / COCO): :func:`image_text_metrics`;
* person re-ID (Market-1501 / Duke / MSMT17): :func:`reid_metrics`, with
  :func:`k_reciprocal_rerank` reported separately;
* metric learning (CUB / Cars / SOP): :func:`retrieval_metrics`.

Ties are broken pessimistically everywhere (see :mod:`gssf.evaluation.ranking`); rates
are percentages; the outputs are JSON-serialisable dicts. See ``docs/evaluation.md``.
"""
from gssf.utils.optional import require as _require

_require("numpy", "train", "gssf.evaluation")  # numpy comes with the train, data and index extras
from gssf.evaluation.evaluators import ImageTextEvaluator, ReIDEvaluator, RetrievalEvaluator
from gssf.evaluation.image_text import image_text_metrics, image_text_metrics_from_embeddings
from gssf.evaluation.reid import reid_metrics, reid_metrics_from_blocks, reid_metrics_from_embeddings
from gssf.evaluation.rerank import k_reciprocal_blocks, k_reciprocal_rerank, k_reciprocal_rerank_from_scores
from gssf.evaluation.retrieval import (
    retrieval_metrics,
    retrieval_metrics_from_blocks,
    retrieval_metrics_from_embeddings,
)

__all__ = [
    "image_text_metrics",
    "image_text_metrics_from_embeddings",
    "reid_metrics",
    "reid_metrics_from_embeddings",
    "reid_metrics_from_blocks",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "retrieval_metrics_from_blocks",
    "k_reciprocal_rerank",
    "k_reciprocal_rerank_from_scores",
    "k_reciprocal_blocks",
    "ImageTextEvaluator",
    "ReIDEvaluator",
    "RetrievalEvaluator",
]
