"""Image-text retrieval: oracle, independent packages, streaming == full, folds, bad input."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import torch
from clip_benchmark.metrics.zeroshot_retrieval import recall_at_k

import gssf
from gssf.evaluation import image_text_metrics, image_text_metrics_from_embeddings

import eval_oracles as oracle
from eval_refs import make_similarities

KEYS = ["i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10",
        "i2t_medR", "i2t_meanR", "t2i_medR", "t2i_meanR", "rsum"]


def _layout(n_images: int, seed: int, uneven: bool = True) -> np.ndarray:
    """txt2img with a varying number of captions per image, shuffled (texts need not be grouped)."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 6, n_images) if uneven else np.full(n_images, 5)
    t2i = np.repeat(np.arange(n_images), per)
    return t2i[rng.permutation(t2i.size)]


def _embeddings(n_images: int, txt2img: np.ndarray, dim: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, dim, generator=g, dtype=dtype)
    texts = images[torch.as_tensor(txt2img)] + 1.2 * torch.randn(len(txt2img), dim, generator=g, dtype=dtype)
    return images, texts


def test_keys_and_json():
    t2i = _layout(12, 0)
    out = image_text_metrics(np.random.default_rng(0).standard_normal((12, t2i.size)), t2i)
    assert list(out) == KEYS
    assert all(isinstance(v, float) for v in out.values())
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_matches_the_oracle(seed, ties):
    rng = np.random.default_rng(seed)
    t2i = _layout(11, seed)
    shape = (11, t2i.size)
    s = rng.integers(0, 3, shape).astype(np.float32) if ties else rng.standard_normal(shape)
    got = image_text_metrics(s, t2i, ks=(1, 2, 5))
    want = oracle.image_text(s, t2i, ks=(1, 2, 5))
    assert got == pytest.approx(want, abs=1e-9)
    assert image_text_metrics(torch.as_tensor(s), torch.as_tensor(t2i), ks=(1, 2, 5)) == got


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.float32, np.float64])
def test_score_dtypes_rank_alike(dtype):
    rng = np.random.default_rng(3)
    t2i = _layout(9, 3)
    s = rng.integers(-3, 4, (9, t2i.size))  # many ties, exactly representable in every dtype
    want = oracle.image_text(s.astype(np.float64), t2i, ks=(1, 2))
    assert image_text_metrics(s.astype(dtype), t2i, ks=(1, 2)) == pytest.approx(want)
    assert image_text_metrics(torch.as_tensor(s.astype(dtype)), t2i, ks=(1, 2)) == pytest.approx(want)


@pytest.mark.parametrize("seed", range(3))
def test_recalls_match_clip_benchmark(seed):
    images, texts = _embeddings(40, _layout(40, seed), 16, seed, torch.float32)
    t2i = torch.as_tensor(_layout(40, seed))
    scores = gssf.create_similarity("cosine")(images, texts)
    pos = t2i.unsqueeze(0) == torch.arange(40).unsqueeze(1)  # (images, texts)
    got = image_text_metrics(scores, t2i)
    for k in (1, 5, 10):
        t2i_ref = 100 * (recall_at_k(scores.T, pos.T, k) > 0).float().mean().item()
        i2t_ref = 100 * (recall_at_k(scores, pos, k) > 0).float().mean().item()
        assert got[f"t2i_R@{k}"] == pytest.approx(t2i_ref, abs=1e-4)
        assert got[f"i2t_R@{k}"] == pytest.approx(i2t_ref, abs=1e-4)


def test_image_to_text_recall_matches_faiss_exact_search():
    t2i = _layout(30, 7)
    images, texts = _embeddings(30, t2i, 24, 7, torch.float32)
    index = faiss.IndexFlatIP(24)
    index.add(texts.numpy())
    _, top = index.search(images.numpy(), 10)
    got = image_text_metrics(images @ texts.T, t2i)
    for k in (1, 5, 10):
        hits = [(t2i[top[i, :k]] == i).any() for i in range(30)]
        assert got[f"i2t_R@{k}"] == pytest.approx(100 * np.mean(hits))


@pytest.mark.parametrize("name,sim", make_similarities(12), ids=lambda v: v if isinstance(v, str) else "")
def test_streaming_equals_full(name, sim):
    t2i = _layout(23, 3)
    images, texts = _embeddings(23, t2i, 12, 3)
    full = image_text_metrics(sim(images, texts), t2i)
    for chunk in (1, 5, 7, 22, 23, 40):
        assert image_text_metrics_from_embeddings(images, texts, sim, txt2img=t2i, chunk_size=chunk) == full


def test_streaming_folds_equal_full_folds():
    t2i = _layout(20, 5)
    images, texts = _embeddings(20, t2i, 8, 5)
    sim = gssf.create_similarity("cosine")
    full = image_text_metrics(sim(images, texts), t2i, ks=(1, 2), folds=4)
    assert image_text_metrics_from_embeddings(images, texts, sim, txt2img=t2i, chunk_size=3, ks=(1, 2), folds=4) == full


def test_fold_summary_is_the_mean_of_the_folds():
    # Regression test for the 5-fold summary bug (rsum printed as 6 x mean i2t recall or 6 x rsum).
    t2i = _layout(50, 2, uneven=False)
    rng = np.random.default_rng(2)
    s = rng.standard_normal((50, t2i.size)) + 1.5 * (t2i[None, :] == np.arange(50)[:, None])
    out = image_text_metrics(s, t2i, folds=5)
    folds = out["folds"]
    assert len(folds) == 5
    for key in KEYS:
        assert out[key] == pytest.approx(np.mean([f[key] for f in folds]))
    recalls = [f"{d}_R@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)]
    assert out["rsum"] == pytest.approx(sum(out[k] for k in recalls))
    assert out["rsum"] != pytest.approx(6 * np.mean([out[k] for k in recalls[:3]]))
    # Each fold is exactly the single evaluation of its images and their texts.
    for f in range(5):
        cols = np.nonzero((t2i >= 10 * f) & (t2i < 10 * (f + 1)))[0]
        assert folds[f] == image_text_metrics(s[10 * f : 10 * (f + 1)][:, cols], t2i[cols] - 10 * f)
    json.dumps(out, allow_nan=False)


def test_perfect_scores_give_perfect_recall():
    t2i = _layout(15, 1)
    s = (t2i[None, :] == np.arange(15)[:, None]).astype(np.float32)
    out = image_text_metrics(s, t2i)
    assert out["rsum"] == 600.0 and out["i2t_medR"] == 1.0 and out["t2i_meanR"] == 1.0


def test_median_rank_of_an_even_count_floors_the_mean_of_the_middle_pair():
    # ranks (0-based) i2t: image 0 -> 0, image 1 -> 3: median 1.5 -> floor + 1 = 2
    s = np.array([[9.0, 0, 0, 0], [5.0, 6, 7, 1]])
    out = image_text_metrics(s, [0, 0, 0, 1], ks=(1,))
    assert out["i2t_medR"] == 2.0 and out["i2t_meanR"] == 2.5


@pytest.mark.parametrize(
    "case,message",
    [
        ("short_txt2img", "txt2img has"),
        ("missing_image", "missing image"),
        ("negative_image", "missing image"),
        ("captionless", "no caption"),
        ("nan", "non-finite"),
        ("inf", "non-finite"),
        ("k_too_large", "larger than"),
        ("bad_folds", "equal consecutive folds"),
        ("one_d", "2-D"),
        ("float_ids", "integers"),
    ],
)
def test_bad_input_raises(case, message):
    t2i = np.repeat(np.arange(4), 3)
    s = np.random.default_rng(0).standard_normal((4, 12))
    kwargs = {"ks": (1, 2)}
    if case == "short_txt2img":
        t2i = t2i[:-1]
    elif case == "missing_image":
        t2i = t2i.copy(); t2i[5] = 4
    elif case == "negative_image":
        t2i = t2i.copy(); t2i[0] = -1
    elif case == "captionless":
        t2i = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2])
    elif case == "nan":
        s[2, 7] = np.nan
    elif case == "inf":
        s[1, 1] = -np.inf
    elif case == "k_too_large":
        kwargs["ks"] = (1, 5)
    elif case == "bad_folds":
        kwargs["folds"] = 3
    elif case == "one_d":
        s = s[0]
    elif case == "float_ids":
        t2i = t2i + 0.5
    with pytest.raises(ValueError, match=message):
        image_text_metrics(s, t2i, **kwargs)


def test_streaming_rejects_a_similarity_that_returns_nan():
    class Broken(gssf.Similarity):
        is_static = False

        def _score_matrix(self, x, y):
            out = x @ y.T
            out[0, 0] = float("nan")
            return out

        def _score_pairs(self, x, y):  # a pair-conditioned member writes both hooks (checked at class creation)
            return (x * y).sum(dim=1)

    images, texts = torch.randn(3, 4), torch.randn(6, 4)
    with pytest.raises(ValueError, match="non-finite"):
        image_text_metrics_from_embeddings(images, texts, Broken(), txt2img=[0, 0, 1, 1, 2, 2], chunk_size=2, ks=(1,))
