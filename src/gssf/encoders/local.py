"""Optional encoders for weights the user already has on disk (never downloaded).

* ``open-clip``: an open_clip model name + a local checkpoint file (image and text);
* ``hf-local``: a Hugging Face model folder (``config.json`` + weights): a text model
  (mean pooling), a vision model (pooler output or mean of tokens) or a CLIP-style dual
  model (``get_image_features`` / ``get_text_features``);
* ``timm``: a timm model name + a local checkpoint file (image).

The packages (``open_clip_torch``, ``transformers``, ``timm``) are an extra, imported
only when one of these is created; Hugging Face is forced offline.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from gssf.data.images import load_rgb
from gssf.encoders.base import Encoder, ImageInput, check_path, hf_bars_on_terminal_only, offline_env
from gssf.encoders.registry import register_encoder

PathLike = Union[str, Path]


def _require(module: str, pip_name: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs the optional package {pip_name}: pip install {pip_name}") from exc


def _load_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """A checkpoint's state dict (plain, or under ``state_dict`` / ``model``; ``module.`` stripped)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


# --------------------------------------------------------------------------- open_clip


@register_encoder(
    "open-clip",
    modalities=("image", "text"),
    description="open_clip model + local checkpoint (model_name=, checkpoint=)",
    needs_path=True,
)
class OpenCLIPEncoder(Encoder):
    """A CLIP-style dual encoder from ``open_clip`` with a checkpoint on disk."""

    name = "open-clip"
    modalities = ("image", "text")
    packages = ("open_clip_torch",)

    def __init__(
        self, device: Union[str, torch.device] = "cpu", model_name: str = "ViT-B-32", checkpoint: Optional[PathLike] = None
    ) -> None:
        super().__init__(device)
        if checkpoint is None:
            raise ValueError("open-clip needs checkpoint=PATH (a local .pt/.bin/.safetensors file)")
        ckpt = check_path(checkpoint, "open_clip checkpoint")
        offline_env()
        open_clip = _require("open_clip", "open_clip_torch", "open-clip")
        model, _, transform = open_clip.create_model_and_transforms(model_name, pretrained=str(ckpt), device=str(device))
        self.module = model
        self._transform = transform
        self._tokenizer = open_clip.get_tokenizer(model_name)
        self.model_name = model_name
        self.checkpoint = ckpt
        visual = getattr(model, "visual", None)
        self.dim = int(getattr(visual, "output_dim", 0) or model.text_projection.shape[-1])

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        return torch.stack([self._transform(load_rgb(im)) for im in images])

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.module.encode_image(pixels), dim=-1)

    def tokenize(self, texts: Sequence[str]) -> Mapping[str, Any]:
        return {"text": self._tokenizer(list(texts))}

    def forward_texts(self, tokens: Mapping[str, Any]) -> torch.Tensor:
        return F.normalize(self.module.encode_text(tokens["text"]), dim=-1)

    def config(self) -> Dict[str, Any]:
        return {"name": self.name, "model_name": self.model_name, "checkpoint": str(self.checkpoint)}



# --------------------------------------------------------------------------- Hugging Face


def _hf_kind(folder: Path, cfg: Dict[str, Any]) -> str:
    if "vision_config" in cfg and "text_config" in cfg:
        return "dual"
    if (folder / "preprocessor_config.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        return "image"
    return "text"


@register_encoder(
    "hf-local",
    modalities=("image", "text"),
    description="a local Hugging Face model folder (path=): text, vision or CLIP-style",
    needs_path=True,
)
class HFLocalEncoder(Encoder):
    """A Hugging Face model read from a folder with ``local_files_only=True``.

    Text models are mean-pooled over the attention mask and L2-normalised (the
    sentence-transformers recipe); vision models use ``pooler_output`` when the model
    has one, else the mean of the token features.
    """

    name = "hf-local"
    packages = ("transformers", "tokenizers")
    default_batch_size = 64

    def __init__(self, device: Union[str, torch.device] = "cpu", path: Optional[PathLike] = None, normalize: bool = True) -> None:
        super().__init__(device)
        if path is None:
            raise ValueError("hf-local needs path=FOLDER (with config.json and the weights)")
        layout = "FOLDER/config.json, FOLDER/model.safetensors (or pytorch_model.bin), tokenizer or preprocessor files"
        folder = check_path(path, "Hugging Face model folder", layout)
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise FileNotFoundError(f"Hugging Face config not found at {cfg_path}; expected layout: {layout}")
        offline_env()
        transformers = _require("transformers", "transformers", "hf-local")
        with open(cfg_path, encoding="utf-8") as fh:
            cfg = json.load(fh)
        self.kind = _hf_kind(folder, cfg)
        self.folder = folder
        self.normalize = normalize
        # A user's folder is untrusted: never run code shipped with it, and read safetensors
        # weights when the folder has them (a .bin is a pickle; transformers loads it weights-only).
        with hf_bars_on_terminal_only():
            model = transformers.AutoModel.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False,
                use_safetensors=True if (folder / "model.safetensors").is_file() else None,
            )
        self.module = model.to(self.device).eval()  # nn.Module.eval(): inference mode, not Python's eval
        mc = self.module.config
        if self.kind == "dual":
            self.modalities = ("image", "text")
            self.dim = int(getattr(mc, "projection_dim", 0) or mc.text_config.hidden_size)
        elif self.kind == "image":
            self.modalities = ("image",)
            self.dim = int(getattr(mc, "hidden_size", 0) or mc.hidden_sizes[-1])
        else:
            self.modalities = ("text",)
            self.dim = int(mc.hidden_size)
        self._tokenizer = None
        self._processor = None
        if "text" in self.modalities:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        if "image" in self.modalities:
            self._processor = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        if self._processor is None:
            raise NotImplementedError(f"{self.folder} is a text model")
        return self._processor(images=[load_rgb(im) for im in images], return_tensors="pt")["pixel_values"]

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.kind == "dual":
            out = self.module.get_image_features(pixel_values=pixels)
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
        else:
            res = self.module(pixel_values=pixels)
            pooled = getattr(res, "pooler_output", None)
            out = pooled if pooled is not None else res.last_hidden_state.mean(dim=1)
            out = out.flatten(1)
        return self._norm(out)

    def tokenize(self, texts: Sequence[str]) -> Mapping[str, Any]:
        if self._tokenizer is None:
            raise NotImplementedError(f"{self.folder} is a vision model")
        return dict(self._tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt"))

    def forward_texts(self, tokens: Mapping[str, Any]) -> torch.Tensor:
        if self.kind == "dual":
            out = self.module.get_text_features(**tokens)
            return self._norm(out if isinstance(out, torch.Tensor) else out.pooler_output)
        hidden = self.module(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        # Mean over real tokens only: padding must not dilute short captions.
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self._norm(pooled)

    def config(self) -> Dict[str, Any]:
        return {"name": self.name, "path": str(self.folder), "kind": self.kind, "normalize": self.normalize}



# --------------------------------------------------------------------------- timm


@register_encoder(
    "timm", modalities=("image",), description="timm model + local checkpoint (model_name=, checkpoint=)", needs_path=True
)
class TimmEncoder(Encoder):
    """A timm backbone (classifier removed) with weights from a local checkpoint."""

    name = "timm"
    modalities = ("image",)
    packages = ("timm",)

    def __init__(
        self,
        device: Union[str, torch.device] = "cpu",
        model_name: str = "resnet50",
        checkpoint: Optional[PathLike] = None,
        resolution: Optional[int] = None,
    ) -> None:
        super().__init__(device)
        if checkpoint is None:
            raise ValueError("timm needs checkpoint=PATH (a local .pth/.bin/.safetensors file)")
        ckpt = check_path(checkpoint, "timm checkpoint")
        offline_env()
        timm = _require("timm", "timm", "timm")
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
        state = _load_state_dict(ckpt)
        own = model.state_dict()
        # The checkpoint's classifier does not fit a model built with num_classes=0: drop it.
        state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in state]
        if missing:
            raise ValueError(f"{ckpt} does not fit timm model {model_name!r}: {len(missing)} missing, e.g. {missing[0]}")
        model.load_state_dict(state)
        self.module = model.to(self.device).eval()
        self.model_name, self.checkpoint = model_name, ckpt
        self.dim = int(model.num_features)
        cfg = timm.data.resolve_data_config({}, model=model)
        size = int(resolution or cfg.get("input_size", (3, 224, 224))[-1])
        self.resolution = size
        self.crop_pct = float(cfg.get("crop_pct", 1.0) or 1.0)
        self.mean: Tuple[float, ...] = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std: Tuple[float, ...] = tuple(cfg.get("std", (0.229, 0.224, 0.225)))

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        # timm's eval transform: resize the short side to size / crop_pct, centre crop, mean/std.
        from gssf.encoders.transforms import pil_to_tensor, resize_center_crop

        scaled = int(self.resolution / self.crop_pct)
        crops = []
        for im in images:
            img = resize_center_crop(load_rgb(im), scaled)
            off = (scaled - self.resolution) // 2
            crops.append(pil_to_tensor(img.crop((off, off, off + self.resolution, off + self.resolution))))
        x = torch.stack(crops) / 255.0
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(pixels)

    def config(self) -> Dict[str, Any]:
        return {"name": self.name, "model_name": self.model_name, "checkpoint": str(self.checkpoint), "resolution": self.resolution}


