"""The encoder interface: pretrained image or text towers behind one API.

An encoder turns a batch of images (PIL images, paths or uint8 arrays) or captions into
a ``(B, dim)`` float tensor. Two paths exist:

* inference: :meth:`Encoder.encode_images` / :meth:`Encoder.encode_texts` (eval mode,
  no autograd, batched, float32 on the CPU) for feature extraction;
* training: :meth:`Encoder.preprocess` / :meth:`Encoder.tokenize` build tensors and
  :meth:`Encoder.forward_images` / :meth:`Encoder.forward_texts` run ``encoder.module``
  with autograd, so a trainer can fine-tune end to end.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

ImageInput = Any  # PIL image, path (str / Path) or uint8 array (H, W[, C])
Modality = str  # "image" or "text"


def offline_env() -> None:
    """Forbid Hugging Face downloads: every model here loads from local files."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def package_versions(*names: str) -> Dict[str, str]:
    """Installed versions of ``names`` (``"missing"`` when absent); part of cache keys."""
    out = {"torch": torch.__version__}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "missing"
    return out


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    # Inference must not update BatchNorm statistics, and must leave a training module training.
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        module.train(was_training)


def _bar(total: int, desc: str, enabled: bool):
    from gssf.data.progress import progress_bar

    return progress_bar(total, desc, unit="item", enabled=enabled)


@contextmanager
def hf_bars_on_terminal_only() -> Iterator[None]:
    """Hugging Face's loading bars only on a terminal: off one they are carriage-return noise."""
    from gssf.data.progress import is_terminal

    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        hf_logging = None
    if hf_logging is None or is_terminal(sys.stderr) or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


class Encoder:
    """Base class. Subclasses set ``name``, ``modalities``, ``dim``, ``module`` and write
    the modality methods they support."""

    name: str = ""
    modalities: Tuple[Modality, ...] = ()
    dim: int = 0
    module: nn.Module
    default_batch_size: int = 64
    #: False for inference-only encoders (no autograd path: features only, no fine-tuning).
    trainable: bool = True
    #: PyPI distributions whose versions change the output (cache keys; no instance needed).
    packages: Tuple[str, ...] = ()

    def __init__(self, device: Union[str, torch.device] = "cpu") -> None:
        self.device = torch.device(device)

    # ------------------------------------------------------------------ common
    def to(self, device: Union[str, torch.device]) -> "Encoder":
        """Move the module to ``device``."""
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    def config(self) -> Dict[str, Any]:
        """Settings that change the output (part of cache keys)."""
        return {"name": self.name}

    def versions(self) -> Dict[str, str]:
        """Package versions that change the output (part of cache keys)."""
        return package_versions(*self.packages)

    def encode(self, batch: Sequence[Any], **kw: Any) -> torch.Tensor:
        """Encode ``batch``: texts for a text encoder, images for an image encoder.

        A dual encoder (image and text) treats ``str`` items as captions and everything
        else (PIL images, ``Path`` objects, arrays) as images.
        """
        items = list(batch)
        if self.modalities == ("text",):
            return self.encode_texts(items, **kw)
        if self.modalities == ("image",):
            return self.encode_images(items, **kw)
        if items and all(isinstance(x, str) for x in items):
            return self.encode_texts(items, **kw)
        return self.encode_images(items, **kw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={str(self.device)!r})"

    # ------------------------------------------------------------------ images
    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images -> a float tensor ``(B, 3, H, W)`` ready for :meth:`forward_images`."""
        raise NotImplementedError(f"{self.name} does not encode images")

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, dim)``, with autograd (for fine-tuning)."""
        raise NotImplementedError(f"{self.name} does not encode images")

    def encode_images(
        self, images: Sequence[ImageInput], batch_size: Optional[int] = None, progress: bool = False
    ) -> torch.Tensor:
        """Images -> ``(N, dim)`` float32 on the CPU, in eval mode without autograd."""
        if "image" not in self.modalities:
            raise NotImplementedError(f"{self.name} does not encode images")
        images = list(images)
        size = batch_size or self.default_batch_size
        out: List[torch.Tensor] = []
        bar = _bar(len(images), f"{self.name}: images", progress)
        try:
            with eval_mode(self.module):
                for chunk in _batches(images, size):
                    pixels = self.preprocess(chunk).to(self.device)
                    out.append(self.forward_images(pixels).float().cpu())
                    bar.update(len(chunk))
        finally:
            bar.close()
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    # ------------------------------------------------------------------ texts
    def tokenize(self, texts: Sequence[str]) -> Mapping[str, Any]:
        """Captions -> model inputs for :meth:`forward_texts`."""
        raise NotImplementedError(f"{self.name} does not encode text")

    def forward_texts(self, tokens: Mapping[str, Any]) -> torch.Tensor:
        """Tokenized captions -> ``(B, dim)``, with autograd (for fine-tuning)."""
        raise NotImplementedError(f"{self.name} does not encode text")

    def encode_texts(
        self, texts: Sequence[str], batch_size: Optional[int] = None, progress: bool = False
    ) -> torch.Tensor:
        """Captions -> ``(N, dim)`` float32 on the CPU, in eval mode without autograd."""
        if "text" not in self.modalities:
            raise NotImplementedError(f"{self.name} does not encode text")
        texts = [str(t) for t in texts]
        size = batch_size or self.default_batch_size
        out: List[torch.Tensor] = []
        bar = _bar(len(texts), f"{self.name}: texts", progress)
        try:
            with eval_mode(self.module):
                for chunk in _batches(texts, size):
                    tokens = _to_device(self.tokenize(chunk), self.device)
                    out.append(self.forward_texts(tokens).float().cpu())
                    bar.update(len(chunk))
        finally:
            bar.close()
        return torch.cat(out) if out else torch.zeros(0, self.dim)


def _to_device(tokens: Mapping[str, Any], device: torch.device) -> Dict[str, Any]:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in tokens.items()}


def check_path(path: Union[str, "os.PathLike[str]"], what: str, layout: str = "") -> Path:
    """``path`` as a Path, or ``FileNotFoundError`` naming what was expected there."""
    p = Path(path).expanduser()
    if not p.exists():
        hint = f"; expected layout: {layout}" if layout else ""
        raise FileNotFoundError(f"{what} not found at {p}{hint}")
    return p
