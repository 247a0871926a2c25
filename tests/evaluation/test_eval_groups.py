"""Image-text group relevance ("relevant if same group" on both sides) against a brute-force oracle."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gssf
from gssf.evaluation import image_text_metrics, image_text_metrics_from_embeddings
from gssf.evaluation import image_text as it

import eval_oracles as oracle
from eval_refs import make_similarities


def _groups(seed: int, n_groups: int = 7, max_images: int = 4, max_texts: int = 5):
    """Shuffled image and text groups of varying sizes (1..max each), every group on both sides."""
    rng = np.random.default_rng(seed)
    ig = np.repeat(np.arange(n_groups), rng.integers(1, max_images + 1, n_groups))
    tg = np.repeat(np.arange(n_groups), rng.integers(1, max_texts + 1, n_groups))
    labels = rng.permutation(1000)[:n_groups] - 300  # arbitrary, negative ones included
    return labels[rng.permutation(ig)], labels[rng.permutation(tg)]


def _embed(ig, tg, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(2000, dim, generator=g, dtype=torch.float64)
    images = centers[torch.as_tensor(ig) + 1000] + torch.randn(len(ig), dim, generator=g, dtype=torch.float64)
    texts = centers[torch.as_tensor(tg) + 1000] + torch.randn(len(tg), dim, generator=g, dtype=torch.float64)
    return images, texts


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape", ["mixed", "many_images_per_caption"])
def test_matches_the_oracle(seed, ties, shape):
    ig, tg = _groups(seed) if shape == "mixed" else _groups(seed, max_images=6, max_texts=1)
    rng = np.random.default_rng(seed + 50)
    size = (len(ig), len(tg))
    s = rng.integers(0, 3, size).astype(np.float32) if ties else rng.standard_normal(size)
    ks = (1, 2, 5)
    got = image_text_metrics(s, image_groups=ig, text_groups=tg, ks=ks, per_query=True)
    i2t, t2i = oracle.image_text_group_ranks(s, ig, tg)
    assert got["per_query"]["i2t_rank"] == [r + 1 for r in i2t]
    assert got["per_query"]["t2i_rank"] == [r + 1 for r in t2i]
    want = oracle.image_text_summary(i2t, t2i, ks)
    assert {k: v for k, v in got.items() if k != "per_query"} == pytest.approx(want, abs=1e-9)


def test_string_group_labels():
    s = np.array([[3.0, 1, 2], [1.0, 3, 0], [2.0, 0, 3]])
    out = image_text_metrics(s, image_groups=["a", "b", "a"], text_groups=["a", "b", "a"], ks=(1,))
    assert out["rsum"] == 200.0


def test_txt2img_is_the_special_case_of_groups():
    rng = np.random.default_rng(3)
    t2i = rng.permutation(np.repeat(np.arange(9), rng.integers(1, 4, 9)))
    s = rng.integers(0, 4, (9, t2i.size)).astype(np.float64)  # ties included
    groups = dict(image_groups=np.arange(9), text_groups=t2i)
    assert image_text_metrics(s, **groups, ks=(1, 2), folds=3) == image_text_metrics(s, t2i, ks=(1, 2), folds=3)
    images, texts = torch.randn(9, 5), torch.randn(t2i.size, 5)
    sim = gssf.create_similarity("cosine")
    assert image_text_metrics_from_embeddings(images, texts, sim, chunk_size=4, ks=(1, 2), **groups) == (
        image_text_metrics_from_embeddings(images, texts, sim, txt2img=t2i, chunk_size=4, ks=(1, 2))
    )


@pytest.mark.parametrize("name,sim", make_similarities(6), ids=lambda v: v if isinstance(v, str) else "")
def test_streaming_equals_full(name, sim):
    ig, tg = _groups(1, n_groups=6, max_images=5, max_texts=4)
    images, texts = _embed(ig, tg, 6, 1)
    full = image_text_metrics(sim(images, texts), image_groups=ig, text_groups=tg, ks=(1, 2), per_query=True)
    for chunk in (1, 3, len(ig) - 1, len(ig), 64):
        got = image_text_metrics_from_embeddings(
            images, texts, sim, chunk_size=chunk, ks=(1, 2), image_groups=ig, text_groups=tg, per_query=True
        )
        assert got == full


def test_pair_batches_do_not_change_the_result(monkeypatch):
    # Relevant (image, text) pairs are built a few texts at a time when groups are large.
    ig, tg = _groups(2, n_groups=3, max_images=8, max_texts=8)
    images, texts = _embed(ig, tg, 4, 2)
    sim = gssf.create_similarity("cosine")
    want = image_text_metrics(sim(images, texts), image_groups=ig, text_groups=tg, ks=(1,), per_query=True)
    monkeypatch.setattr(it, "_PAIR_SLOTS", 5)
    assert image_text_metrics(sim(images, texts), image_groups=ig, text_groups=tg, ks=(1,), per_query=True) == want
    streamed = image_text_metrics_from_embeddings(
        images, texts, sim, chunk_size=2, ks=(1,), image_groups=ig, text_groups=tg, per_query=True
    )
    assert streamed == want


def test_folds_keep_each_group_in_its_fold():
    ig = np.repeat(np.arange(6), 2)  # 12 images, 2 per group, folds of 4 images = 2 groups
    tg = np.array([0, 1, 1, 2, 3, 3, 4, 5, 5, 5, 0, 2])
    s = np.random.default_rng(0).standard_normal((12, 12))
    out = image_text_metrics(s, image_groups=ig, text_groups=tg, ks=(1, 2), folds=3, per_query=True)
    assert out["per_query"]["t2i_fold"] == (tg // 2).tolist()
    for f in range(3):
        cols = np.nonzero(tg // 2 == f)[0]
        single = image_text_metrics(s[4 * f : 4 * (f + 1)][:, cols], image_groups=ig[4 * f : 4 * (f + 1)],
                                    text_groups=tg[cols], ks=(1, 2))
        assert out["folds"][f] == single


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(txt2img=[0, 1, 1], image_groups=[0, 1], text_groups=[0, 1, 1]), "not both"),
        (dict(), "give txt2img"),
        (dict(image_groups=[0, 1]), "one of them is missing"),
        (dict(image_groups=[0, 1, 2], text_groups=[0, 1, 1]), "image_groups has 3 entries"),
        (dict(image_groups=[0, 1], text_groups=[0, 1]), "text_groups has 2 entries"),
        (dict(image_groups=[0, 5], text_groups=[0, 0, 0]), r"1 image\(s\) share their group with no text.*images 1"),
        (dict(image_groups=[0, 1], text_groups=[0, 1, 9]), r"1 text\(s\) share their group with no image.*texts 2"),
        (dict(image_groups=[0, 0], text_groups=[0, 0, 0], folds=2), "every group's images must lie in one fold"),
        (dict(image_groups=[0.0, np.nan], text_groups=[0, 0, 0]), "NaN"),
    ],
)
def test_bad_relevance_raises(kwargs, message):
    s = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.raises(ValueError, match=message):
        image_text_metrics(s, ks=(1,), **kwargs)
    images, texts = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match=message):
        image_text_metrics_from_embeddings(
            images,
            texts,
            gssf.create_similarity("cosine"),
            txt2img=kwargs.pop("txt2img", None),
            chunk_size=2,
            ks=(1,),
            **kwargs,
        )
