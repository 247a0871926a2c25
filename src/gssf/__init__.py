"""gssf: the Generalized Structural Sparse Function for deep (cross-modal) metric learning.

A similarity object scores every query against every gallery item::

    import torch, gssf
    sim = gssf.create_similarity("gssf", dim=256, num_blocks=16)
    scores = sim(torch.randn(8, 256), torch.randn(100, 256))   # (8, 100), larger = closer
"""
from __future__ import annotations

__version__ = "0.1.0"

import warnings

# numpy is optional for the core (torch only); torch warns at import when it is absent, which
# on a core install would be printed before every `gssf` command's output. Only that message
# is silenced (torch emits it once, when first imported: here, unless the caller imported torch before).
warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)

from gssf.similarity import (  # noqa: E402
    Similarity,
    create_similarity,
    get_similarity_class,
    list_similarities,
    register_similarity,
)



def load_similarity(directory, map_location: str = "cpu"):  # type: ignore[no-untyped-def]
    """The similarity saved in ``directory`` by ``Similarity.save_pretrained`` (see gssf.similarity.pretrained)."""
    from gssf.similarity.pretrained import load_similarity as _load

    return _load(directory, map_location=map_location)


# Subpackages load on first attribute access (``gssf.losses``, ``gssf.evaluation``, ...), so
# ``import gssf`` stays torch-only and fast.
_SUBPACKAGES = ("cli", "data", "demo", "encoders", "evaluation", "features", "losses", "models", "nn", "train", "utils")


# Where numpy (in several extras) is missing, the extra to suggest for each subpackage.
_NUMPY_EXTRA = {"data": "data", "demo": "data", "encoders": "data", "features": "data"}


def __getattr__(name: str):  # PEP 562
    if name in _SUBPACKAGES:
        import importlib

        try:
            return importlib.import_module(f"gssf.{name}")
        except ModuleNotFoundError as exc:  # an optional dependency: say which extra installs it
            from gssf.errors import MissingExtraError
            from gssf.utils.optional import extra_for

            top = (exc.name or "").split(".")[0]
            extra = _NUMPY_EXTRA.get(name, "train") if top == "numpy" else extra_for(top)
            if extra is None:
                raise
            raise MissingExtraError(f"gssf.{name}", extra, top) from exc
    raise AttributeError(f"module 'gssf' has no attribute {name!r}")


__all__ = [
    "__version__",
    "Similarity",
    "create_similarity",
    "get_similarity_class",
    "list_similarities",
    "load_similarity",
    "register_similarity",
]
