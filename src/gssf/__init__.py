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

# Subpackages load on first attribute access (``gssf.losses``, ``gssf.evaluation``, ...), so
# ``import gssf`` stays torch-only and fast.
_SUBPACKAGES = ("cli", "data", "demo", "encoders", "evaluation", "features", "losses", "models", "nn", "train", "utils")


def __getattr__(name: str):  # PEP 562
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"gssf.{name}")
    raise AttributeError(f"module 'gssf' has no attribute {name!r}")


__all__ = [
    "__version__",
    "Similarity",
    "create_similarity",
    "get_similarity_class",
    "list_similarities",
    "register_similarity",
]
