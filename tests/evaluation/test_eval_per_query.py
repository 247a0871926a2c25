"""Per-query outputs: the mean of each per-query vector is the reported metric, full and streamed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gssf
from gssf.evaluation import (
    ImageTextEvaluator,
    RetrievalEvaluator,
    image_text_metrics,
    image_text_metrics_from_embeddings,
    reid_metrics,
    reid_metrics_from_embeddings,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
)

import eval_oracles as oracle


def _assert_means_match(out: dict, skip=()) -> None:
    """Every per-query key that is also a metric key averages to that metric."""
    pq = out["per_query"]
    shared = [k for k in pq if k in out and k not in skip]
    assert shared, "no per-query vector names a metric"
    for key in shared:
        assert float(np.mean(pq[key])) == pytest.approx(out[key], rel=1e-12, abs=1e-12), key


def _assert_matches_oracle(out: dict, want: dict, keys, skipped: int) -> None:
    """Per-query values of re-ID / retrieval equal the oracle's, skip the invalid query, average right."""
    got = out["per_query"]
    assert got["query_index"] == want["query_index"] and skipped not in got["query_index"]
    assert got["first_rank"] == want["first_rank"]
    for key in keys:
        assert got[key] == pytest.approx(want[key], abs=1e-9), key
    _assert_means_match(out)


def _layout(n_images: int, seed: int, per=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n_images) if per is None else np.full(n_images, per)
    t2i = np.repeat(np.arange(n_images), counts)
    return t2i[rng.permutation(t2i.size)]


def _embed(n_images: int, t2i: np.ndarray, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, dim, generator=g, dtype=torch.float64)
    texts = images[torch.as_tensor(t2i)] + 1.2 * torch.randn(len(t2i), dim, generator=g, dtype=torch.float64)
    return images, texts


# --------------------------------------------------------------------------- image-text
def test_default_output_has_no_per_query():
    t2i = _layout(6, 0)
    s = np.random.default_rng(0).standard_normal((6, t2i.size))
    assert "per_query" not in image_text_metrics(s, t2i, ks=(1, 2))
    assert "per_query" not in retrieval_metrics(s[:, :6], np.arange(6) % 2, ks=(1,))


@pytest.mark.parametrize("ties", [False, True])
def test_image_text_per_query_ranks_are_the_oracle_ranks_and_average_to_the_metrics(ties):
    rng = np.random.default_rng(4)
    t2i = _layout(13, 4)
    s = rng.integers(0, 3, (13, t2i.size)).astype(np.float64) if ties else rng.standard_normal((13, t2i.size))
    out = image_text_metrics(s, t2i, ks=(1, 2, 5), per_query=True)
    i2t, t2i_ranks = oracle.image_text_group_ranks(s, range(13), t2i)
    pq = out["per_query"]
    assert pq["i2t_rank"] == [r + 1 for r in i2t] and pq["t2i_rank"] == [r + 1 for r in t2i_ranks]
    _assert_means_match(out)
    assert np.mean(pq["i2t_rank"]) == pytest.approx(out["i2t_meanR"])
    assert np.mean(pq["t2i_rank"]) == pytest.approx(out["t2i_meanR"])
    assert sorted(pq) == sorted([f"{d}_R@{k}" for d in ("i2t", "t2i") for k in (1, 2, 5)] + ["i2t_rank", "t2i_rank"])
    json.dumps(out, allow_nan=False)


def test_image_text_per_query_streamed_equals_full_for_every_chunk():
    t2i = _layout(17, 2)
    images, texts = _embed(17, t2i, 8, 2)
    sim = gssf.create_similarity("cosine")
    full = image_text_metrics(sim(images, texts), t2i, per_query=True)
    for chunk in (1, 4, 16, 17, 30):
        assert (
            image_text_metrics_from_embeddings(images, texts, sim, txt2img=t2i, chunk_size=chunk, per_query=True)
            == full
        )


def test_coco_5_fold_per_query_is_one_value_per_query_in_its_own_fold():
    # COCO 1K layout in small: 5 folds of 12 images, 5 captions each, captions shuffled.
    t2i = _layout(60, 9, per=5)
    images, texts = _embed(60, t2i, 8, 9)
    sim = gssf.create_similarity("cosine")
    s = sim(images, texts)
    out = image_text_metrics(s, t2i, folds=5, per_query=True)
    pq = out["per_query"]
    assert len(pq["i2t_rank"]) == 60 and len(pq["t2i_rank"]) == t2i.size
    assert pq["i2t_fold"] == (np.arange(60) // 12).tolist()
    assert pq["t2i_fold"] == (t2i // 12).tolist()  # every text is in the fold of its image
    # Equal folds: the mean over all queries is the mean over folds of the fold means.
    _assert_means_match(out)
    for f, fold in enumerate(out["folds"]):
        cols = np.nonzero(t2i // 12 == f)[0]
        single = image_text_metrics(s[12 * f : 12 * (f + 1)][:, cols], t2i[cols] - 12 * f, per_query=True)["per_query"]
        assert [r for r, g in zip(pq["i2t_rank"], pq["i2t_fold"]) if g == f] == single["i2t_rank"]
        assert [pq["t2i_rank"][j] for j in cols] == single["t2i_rank"]
        assert np.mean([pq["t2i_R@5"][j] for j in cols]) == pytest.approx(fold["t2i_R@5"])
    streamed = image_text_metrics_from_embeddings(
        images, texts, sim, txt2img=t2i, chunk_size=3, folds=5, per_query=True
    )
    assert streamed == out


def test_unequal_folds_average_fold_means_not_queries():
    # Fold 0 has 1 caption per image, fold 1 has 3: the per-query t2i vector then weighs
    # fold 1 more; the reported metric is recovered from the fold labels.
    t2i = np.array([0, 1, 2, 2, 2, 3, 3, 3])
    s = np.random.default_rng(1).standard_normal((4, 8))
    out = image_text_metrics(s, t2i, ks=(1,), folds=2, per_query=True)
    pq = out["per_query"]
    hits, folds = np.array(pq["t2i_R@1"]), np.array(pq["t2i_fold"])
    assert np.mean([hits[folds == f].mean() for f in (0, 1)]) == pytest.approx(out["t2i_R@1"])
    assert hits.mean() != pytest.approx(out["t2i_R@1"])  # 37.5 vs 25: the plain mean would be wrong


def test_image_text_evaluator_passes_per_query():
    t2i = np.repeat(np.arange(10), 2)
    images, texts = _embed(10, t2i, 6, 3)
    sim = gssf.create_similarity("cosine")
    ev = ImageTextEvaluator(ks=(1, 2), chunk_size=3)
    ev.update(images[torch.as_tensor(t2i)], texts, torch.as_tensor(t2i), text_ids=torch.arange(20))
    assert ev.compute(sim, per_query=True) == image_text_metrics(sim(images, texts), t2i, ks=(1, 2), per_query=True)


# --------------------------------------------------------------------------- re-ID
def _reid_case(seed: int, ties: bool):
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(1, 10, 30), rng.integers(0, 10, 90)
    gp[rng.random(90) < 0.1] = -1
    qp[0] = 42  # no true match: skipped, so absent from query_index
    qc, gc = rng.integers(0, 3, 30), rng.integers(0, 3, 90)
    s = rng.integers(0, 4, (30, 90)).astype(np.float64) if ties else rng.standard_normal((30, 90))
    return s, qp, gp, qc, gc


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("ap", ["standard", "trapezoid"])
def test_reid_per_query_matches_the_oracle_and_averages_to_the_metrics(ties, ap):
    s, qp, gp, qc, gc = _reid_case(5, ties)
    out = reid_metrics(s, qp, gp, qc, gc, max_rank=10, ap=ap, per_query=True)
    want = oracle.reid(s, qp, gp, qc, gc, max_rank=10, trapezoid=ap == "trapezoid", per_query=True)["per_query"]
    _assert_matches_oracle(out, want, ("mAP", "mINP", "R@1", "R@5", "R@10"), skipped=0)
    first = np.array(out["per_query"]["first_rank"])
    assert out["cmc"] == pytest.approx([100 * np.mean(first <= r + 1) for r in range(10)])


def test_reid_per_query_streamed_equals_full_with_rerank():
    rng = np.random.default_rng(0)
    pids = rng.integers(0, 6, 50)
    q, g = torch.randn(50, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)[pids]
    g = g + 0.8 * torch.randn(50, 8, dtype=torch.float64)
    sim = gssf.create_similarity("cosine")
    cams = (np.zeros(50, int), np.ones(50, int))
    full = reid_metrics(sim(q[:20], g), pids[:20], pids, *(c[:20] if i == 0 else c for i, c in enumerate(cams)),
                        max_rank=10, per_query=True)
    got = reid_metrics_from_embeddings(
        q[:20],
        g,
        sim,
        query_pids=pids[:20],
        gallery_pids=pids,
        query_cams=cams[0][:20],
        gallery_cams=cams[1],
        chunk_size=7,
        max_rank=10,
        per_query=True,
        rerank={},
    )
    assert {k: v for k, v in got.items() if not k.startswith("rerank_")} == full
    _assert_means_match({k[len("rerank_"):]: v for k, v in got.items() if k.startswith("rerank_")})


# --------------------------------------------------------------------------- retrieval
@pytest.mark.parametrize("ties", [False, True])
def test_retrieval_per_query_matches_the_oracle_leave_one_out_and_split(ties):
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 5, 36)
    labels[3] = 77  # single-item class: not a valid query
    s = rng.integers(0, 3, (36, 36)).astype(np.float64) if ties else rng.standard_normal((36, 36))
    for args in ((s, labels), (s[:12, 12:], labels[:12], labels[12:])):
        out = retrieval_metrics(*args, ks=(1, 2, 4), per_query=True)
        want = oracle.retrieval(*args, ks=(1, 2, 4), per_query=True)["per_query"]
        _assert_matches_oracle(out, want, ("R@1", "R@2", "R@4", "MAP@R", "R-Precision"), skipped=3)


def test_retrieval_per_query_streamed_equals_full_and_evaluator():
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 5, (41,), generator=g)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64)[labels] + torch.randn(41, 8, generator=g, dtype=torch.float64)
    sim = gssf.create_similarity("cosine")
    full = retrieval_metrics(sim(x, x), labels, per_query=True)
    for chunk in (1, 6, 41, 50):
        assert (
            retrieval_metrics_from_embeddings(x, None, sim, query_labels=labels, chunk_size=chunk, per_query=True)
            == full
        )
    ev = RetrievalEvaluator(chunk_size=5)
    ev.update(x, labels)
    assert ev.compute(sim, per_query=True) == full
