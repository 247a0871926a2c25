"""Image preprocessing without torchvision: resize, centre crop, tensor."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from gssf.data.images import load_rgb

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


def resize_center_crop(img: "PILImage", size: int) -> "PILImage":
    """Resize the short side to ``size`` (bicubic), then crop the central ``size x size``."""
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def pil_to_tensor(img: "PILImage") -> torch.Tensor:
    """RGB PIL image -> float tensor ``(3, H, W)`` with values in [0, 255]."""
    arr = np.asarray(img, dtype=np.float32)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def batch_pixels(images: Sequence[object], size: int) -> torch.Tensor:
    """Load, resize + centre-crop and stack images -> ``(B, 3, size, size)`` in [0, 255]."""
    return torch.stack([pil_to_tensor(resize_center_crop(load_rgb(im), size)) for im in images])  # type: ignore[arg-type]
