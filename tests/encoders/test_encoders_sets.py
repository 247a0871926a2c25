"""Set encoders for pooled heads: regions of EfficientNet-Lite0's last map, MiniLM token states."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from gssf import encoders


def test_regions_average_to_the_pooled_image_features() -> None:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)) for _ in range(3)]
    for resolution, regions in ((224, 49), (128, 16)):
        enc = encoders.create("efficientnet-lite0-regions", resolution=resolution)
        sets = enc.encode_images(images)
        assert sets.shape == (3, regions * 1280) == (3, enc.dim) and enc.element_dim == 1280
        pooled = encoders.create("efficientnet-lite0", resolution=resolution).encode_images(images)
        # global average pooling of the same map: the mean over the regions
        assert torch.allclose(sets.view(3, regions, 1280).mean(dim=1), pooled, atol=1e-5)


def test_tokens_are_zero_padded_after_each_caption() -> None:
    enc = encoders.create("minilm-tokens")
    captions = ["a penguin", "a penguin on the ice, holding a small fish in its beak " * 6]
    sets = enc.encode_texts(captions).view(2, 32, 384)
    valid = sets.abs().amax(dim=-1) > 0
    n_short = len(enc.tokenize(captions[:1])["input_ids"][0])
    assert valid[0].sum() == n_short and valid[0, :n_short].all() and valid[1].all()  # the long one is cut at 32
    # the sentence embedding of MiniLM is the normalised mean of these token states
    sentence = encoders.create("minilm").encode_texts(captions[:1])
    mean = torch.nn.functional.normalize(sets[0, :n_short].mean(dim=0), dim=0)
    assert torch.allclose(mean, sentence[0], atol=1e-5)
