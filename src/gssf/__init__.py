"""gssf: the Generalized Structural Sparse Function for deep (cross-modal) metric learning.

A similarity object scores every query against every gallery item::

    import torch, gssf
    sim = gssf.create_similarity("gssf", dim=256, num_blocks=16)
    scores = sim(torch.randn(8, 256), torch.randn(100, 256))   # (8, 100), larger = closer
"""
from __future__ import annotations

__version__ = "0.1.0"

from gssf.similarity import (  # noqa: E402
    Similarity,
    create_similarity,
    get_similarity_class,
    list_similarities,
    register_similarity,
)

__all__ = [
    "__version__",
    "Similarity",
    "create_similarity",
    "get_similarity_class",
    "list_similarities",
    "register_similarity",
]
