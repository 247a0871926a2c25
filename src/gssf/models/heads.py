"""Projection heads: map (cached or live) encoder features to the joint embedding space."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

__all__ = ["HEADS", "LinearHead", "MLPHead", "build_head"]

#: Valid head kinds.
HEADS = ("linear", "mlp", "identity", "pooled")


class LinearHead(nn.Module):
    """``x (N, F) -> x W^T + b (N, E)`` with Xavier-uniform ``W`` and zero bias (VSE++)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class MLPHead(nn.Module):
    """A linear map plus a residual MLP branch: ``fc(x) + mlp(x)`` (after VSE-infinity).

    The MLP is ``num_layers`` linear layers with LayerNorm and ReLU in between (LayerNorm,
    not BatchNorm: per-sample statistics keep data-parallel training equal to
    single-process training). Its last layer starts at zero, so at initialisation the head
    equals the linear head with the same seed.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 1024, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"an MLP head needs num_layers >= 2, got {num_layers}")
        self.fc = nn.Linear(in_dim, out_dim)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        layers: list = []
        d = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(d, hidden_dim), nn.LayerNorm(hidden_dim), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = hidden_dim
        last = nn.Linear(d, out_dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x) + self.mlp(x)


def build_head(
    in_dim: int,
    out_dim: int,
    kind: str = "linear",
    hidden_dim: int = 1024,
    num_layers: int = 2,
    dropout: float = 0.0,
    element_dim: Optional[int] = None,
    pool: str = "gpo",
    attention: Optional[Dict[str, Any]] = None,
) -> nn.Module:
    """A head of ``kind`` (``linear``, ``mlp``, ``identity`` or ``pooled``) from ``in_dim`` to ``out_dim``.

    ``identity`` scores the encoder features directly (``in_dim`` must equal ``out_dim``);
    ``pooled`` reads each row as a set of ``element_dim``-sized elements and pools them
    (:class:`gssf.models.pooling.PooledHead`, ``pool``: ``gpo``, ``mean``, ``max``, ``attention``
    (with ``attention``, the keyword arguments of its attention pooling) or ``none``).
    """
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
    for name, value in (("in_dim", in_dim), ("out_dim", out_dim)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if kind == "identity":
        if in_dim != out_dim:
            raise ValueError(f"an identity head needs in_dim == out_dim, got {in_dim} and {out_dim}")
        return nn.Identity()
    if kind == "linear":
        return LinearHead(in_dim, out_dim)
    if kind == "pooled":
        from gssf.models.pooling import PooledHead

        if element_dim is None:
            raise ValueError("a pooled head needs element_dim (the size of one region or token feature)")
        return PooledHead(in_dim, out_dim, element_dim, pool=pool, hidden_dim=hidden_dim, attention=attention)
    return MLPHead(in_dim, out_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout)
