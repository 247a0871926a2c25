"""How far a learnable member moved from cosine: ``||M - I||_2``, diagonal spread, largest block entry.

Used by the demo's report ("it did not learn" must be visible) and by the trainer's
TensorBoard scalars (``train.tensorboard``), for any member with an explicit matrix.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

__all__ = ["learned_parameters"]


def _diagonal_term(module: nn.Module) -> Optional[torch.Tensor]:
    """The weights ``w (D,)`` of a member's per-channel term, if it has one."""
    term = getattr(module, "diagonal", None)
    weights = getattr(term, "weights", None)
    return weights() if callable(weights) else None


@torch.no_grad()
def learned_parameters(similarity: nn.Module) -> Optional[Dict[str, Any]]:
    """How far a learnable bilinear-form member is from cosine; ``None`` for the others.

    Computed from the explicit matrix ``M = weight_matrix()`` (members with pair-dependent
    gates: their static part, gates excluded)::

        norm_M_minus_I   ||M - I||_2 (spectral norm; 0 for cosine)
        diagonal_of      "w" (the per-channel term's weights) or "diag(M)" (members without one)
        diagonal_min / _max / _std   of those weights (1, 1, 0 for cosine)
        max_abs_block    largest |entry| of the block / dense part: M - diag(w), or M - I
                         without a per-channel term; None for a purely diagonal member
        source           "weight_matrix()" or "static part (per-pair gates excluded)"
    """
    if not any(p.requires_grad for p in similarity.parameters()):
        return None
    form, source = similarity, "weight_matrix()"
    if not similarity.is_static:
        form, source = similarity.static_part(), "static part (per-pair gates excluded)"
    weight_matrix = getattr(form, "weight_matrix", None)
    if not callable(weight_matrix):
        return None
    try:
        m = weight_matrix().detach().to(torch.float64).cpu()
    except NotImplementedError:  # a form without an explicit matrix
        return None
    eye = torch.eye(m.shape[0], dtype=m.dtype)
    w = _diagonal_term(form)
    has_blocks = w is None or hasattr(form, "blocks")
    diag = w.detach().to(torch.float64).cpu() if w is not None else torch.diagonal(m)
    rest = m - (torch.diag(diag) if w is not None else eye)
    return {
        "norm_M_minus_I": float(torch.linalg.matrix_norm(m - eye, ord=2)),
        "diagonal_of": "w" if w is not None else "diag(M)",
        "diagonal_min": float(diag.min()),
        "diagonal_max": float(diag.max()),
        "diagonal_std": float(diag.std(unbiased=False)),
        "max_abs_block": float(rest.abs().max()) if has_blocks else None,
        "source": source,
    }
