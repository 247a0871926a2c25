"""Set-valued features for pooled heads (VSE-infinity style): image regions and caption tokens.

Each item becomes a set of element vectors, flattened into one row of the feature cache:

* ``efficientnet-lite0-regions``: the last feature map of EfficientNet-Lite0, one 1280-d
  element per cell (7 x 7 = 49 regions at 224 px, 4 x 4 at 128 px);
* ``minilm-tokens``: all-MiniLM-L6-v2's token states, 384-d each, for the first 32 tokens;
  rows after a caption's last token are zero (padding: :func:`gssf.models.pooling.set_mask`).

``element_dim`` (a class attribute) tells :class:`gssf.models.pooling.PooledHead` how to
unflatten a row. Rows are fixed-width in memory (captions padded to 32 tokens); the feature
cache stores each set without its trailing padding and pads it again on reading.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Union

import torch
import torch.nn.functional as F

from gssf.encoders.efficientnet import EfficientNetLite0Encoder
from gssf.encoders.minilm import MiniLMEncoder
from gssf.encoders.registry import register_encoder

__all__ = ["EfficientNetLite0Regions", "MiniLMTokens"]


@register_encoder(
    "efficientnet-lite0-regions", modalities=("image",),
    description="EfficientNet-Lite0 last feature map as a set of 1280-d regions (7 x 7 at 224 px), for pooled heads",
)  # fmt: skip
class EfficientNetLite0Regions(EfficientNetLite0Encoder):
    """Image encoder: the ``ceil(R / 32)^2`` regions of EfficientNet-Lite0's last feature map, flattened."""

    name = "efficientnet-lite0-regions"
    element_dim = 1280

    def __init__(self, device: Union[str, torch.device] = "cpu", resolution: int = 224) -> None:
        super().__init__(device, resolution)
        side = math.ceil(self.resolution / 32)  # "same" padding, total stride 32
        self.num_elements = side * side
        self.dim = self.num_elements * self.element_dim

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        maps = self.module.net.extract_features(pixels)  # (B, 1280, h, w)
        return maps.flatten(2).transpose(1, 2).reshape(maps.shape[0], -1)

    def config(self) -> Dict[str, Any]:
        return {**super().config(), "elements": f"{self.num_elements} regions x {self.element_dim}"}


@register_encoder(
    "minilm-tokens", modalities=("text",),
    description="all-MiniLM-L6-v2 token states as a set of 384-d tokens (up to 32, zero-padded), for pooled heads",
)  # fmt: skip
class MiniLMTokens(MiniLMEncoder):
    """Text encoder: the token states of the first ``max_tokens`` tokens, zero rows after the last."""

    name = "minilm-tokens"
    element_dim = 384
    max_tokens = 32

    def __init__(self, device: Union[str, torch.device] = "cpu", **options: Any) -> None:
        super().__init__(device, **options)
        self.module.max_seq_length = self.max_tokens
        self.num_elements = self.max_tokens
        self.dim = self.max_tokens * self.element_dim

    def forward_texts(self, tokens: Mapping[str, Any]) -> torch.Tensor:
        out = self.module(dict(tokens))
        states = out["token_embeddings"] * out["attention_mask"].unsqueeze(-1).to(out["token_embeddings"].dtype)
        states = states[:, : self.max_tokens]
        states = F.pad(states, (0, 0, 0, self.max_tokens - states.shape[1]))
        return states.reshape(states.shape[0], -1)

    def config(self) -> Dict[str, Any]:
        return {**super().config(), "elements": f"up to {self.max_tokens} tokens x {self.element_dim}"}
