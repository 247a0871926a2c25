"""End-to-end towers: a trainable encoder followed by a head (fine-tuning from pixels/text)."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["EncoderTower"]


class EncoderTower(nn.Module):
    """``inputs -> head(encoder(inputs))``: an encoder module and a projection head.

    ``encoder`` is any module mapping a batch of model inputs (an image tensor
    ``(N, 3, H, W)``, a dict of token tensors, ...) to features ``(N, F)``; preprocessing
    (decoding, resizing, tokenising) happens before, in the data pipeline. With
    ``trainable=False`` the encoder's parameters are frozen and it runs in eval mode, so
    only the head learns while features are still computed live.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, trainable: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.trainable = bool(trainable)
        if not self.trainable:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "EncoderTower":
        super().train(mode)
        if not self.trainable:
            self.encoder.eval()  # frozen: keep BatchNorm statistics and dropout off
        return self

    def forward(self, inputs: Any) -> Tensor:
        feats = self.encoder(inputs)
        if feats.dim() != 2:
            raise ValueError(f"the encoder must return (N, F) features, got shape {tuple(feats.shape)}")
        return self.head(feats)
