"""Metric-learning retrieval: oracle, pytorch-metric-learning / faiss cross-checks, leave-one-out, bad input."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

import gssf
from gssf.evaluation import retrieval_metrics, retrieval_metrics_from_embeddings

import eval_oracles as oracle
from eval_refs import make_similarities


def _data(n: int, n_classes: int, dim: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    centers = torch.randn(n_classes, dim, generator=g, dtype=dtype)
    return centers[labels] + 1.3 * torch.randn(n, dim, generator=g, dtype=dtype), labels


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_leave_one_out_matches_the_oracle(seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 40)
    labels[0] = 99  # a single-item class: excluded from every metric
    s = rng.integers(0, 4, (40, 40)).astype(np.float32) if ties else rng.standard_normal((40, 40))
    got = retrieval_metrics(s, labels, ks=(1, 2, 4, 8))
    assert got == pytest.approx(oracle.retrieval(s, labels, ks=(1, 2, 4, 8)), abs=1e-9)
    assert got["num_valid_queries"] == 39
    json.dumps(got, allow_nan=False)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_query_gallery_matches_the_oracle(seed, ties):
    rng = np.random.default_rng(seed)
    ql, gl = rng.integers(0, 7, 20), rng.integers(0, 6, 50)  # class 6 is absent from the gallery
    s = rng.integers(0, 3, (20, 50)).astype(np.float64) if ties else rng.standard_normal((20, 50))
    got = retrieval_metrics(s, ql, gl, ks=(1, 10))
    assert got == pytest.approx(oracle.retrieval(s, ql, gl, ks=(1, 10)), abs=1e-9)


def _own_knn(sim):
    """k-NN for pytorch-metric-learning's AccuracyCalculator; excludes the query by index."""

    def knn(query, k, reference, ref_includes_query):
        scores = sim(query.double(), reference.double())
        if ref_includes_query:
            scores.fill_diagonal_(float("-inf"))
        top = scores.topk(k, dim=1)
        return -top.values, top.indices

    return knn


@pytest.mark.parametrize("seed", range(3))
def test_leave_one_out_matches_pytorch_metric_learning(seed):
    x, labels = _data(120, 9, 16, seed)
    sim = gssf.create_similarity("cosine")
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count", knn_func=_own_knn(sim), device=torch.device("cpu"),
    )
    ref = calc.get_accuracy(x, labels)
    got = retrieval_metrics(sim(x, x), labels)
    assert got["R@1"] == pytest.approx(100 * ref["precision_at_1"], abs=1e-5)
    assert got["R-Precision"] == pytest.approx(100 * ref["r_precision"], abs=1e-5)
    assert got["MAP@R"] == pytest.approx(100 * ref["mean_average_precision_at_r"], abs=1e-5)


def test_query_gallery_matches_pytorch_metric_learning():
    x, labels = _data(150, 8, 12, 11)
    sim = gssf.create_similarity("cosine")
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count", knn_func=_own_knn(sim), device=torch.device("cpu"),
    )
    ref = calc.get_accuracy(x[:40], labels[:40], x[40:], labels[40:])
    got = retrieval_metrics(sim(x[:40], x[40:]), labels[:40], labels[40:])
    assert got["R@1"] == pytest.approx(100 * ref["precision_at_1"], abs=1e-5)
    assert got["R-Precision"] == pytest.approx(100 * ref["r_precision"], abs=1e-5)
    assert got["MAP@R"] == pytest.approx(100 * ref["mean_average_precision_at_r"], abs=1e-5)


def test_recall_at_k_matches_faiss_exact_search():
    x, labels = _data(200, 10, 16, 4, torch.float32)
    index = faiss.IndexFlatL2(16)
    index.add(x.numpy())
    _, top = index.search(x.numpy(), 33)
    lab = labels.numpy()
    got = retrieval_metrics(-torch.cdist(x, x), labels, ks=(1, 2, 4, 8, 32))
    for k in (1, 2, 4, 8, 32):
        hits = []
        for q in range(200):
            others = [j for j in top[q] if j != q][:k]  # drop the query by index, not by position
            hits.append((lab[others] == lab[q]).any())
        assert got[f"R@{k}"] == pytest.approx(100 * np.mean(hits))


def test_self_is_excluded_by_index_even_with_duplicates():
    # Items 0 and 1 are identical (same score rows); dropping "the first neighbour" would drop
    # either of them arbitrarily. By index, each still finds its twin at rank 1.
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    s = x @ x.T
    out = retrieval_metrics(s, [0, 0, 1, 1], ks=(1,))
    assert out["R@1"] == 100.0 and out["MAP@R"] == 100.0


def test_string_labels():
    s = np.array([[0.0, 0.9, 0.1], [0.9, 0.0, 0.1], [0.2, 0.1, 0.0]])
    assert retrieval_metrics(s, ["cat", "cat", "dog"], ks=(1,))["R@1"] == 100.0


@pytest.mark.parametrize("name,sim", make_similarities(8), ids=lambda v: v if isinstance(v, str) else "")
def test_streaming_equals_full(name, sim):
    x, labels = _data(53, 6, 8, 2)
    loo = retrieval_metrics(sim(x, x), labels)
    qg = retrieval_metrics(sim(x[:20], x[20:]), labels[:20], labels[20:])
    for chunk in (1, 7, 19, 52, 53, 64):
        assert retrieval_metrics_from_embeddings(x, None, sim, query_labels=labels, chunk_size=chunk) == loo
        got = retrieval_metrics_from_embeddings(
            x[:20], x[20:], sim, query_labels=labels[:20], gallery_labels=labels[20:], chunk_size=chunk
        )
        assert got == qg


@pytest.mark.parametrize(
    "case,message",
    [
        ("not_square", "square"),
        ("short_labels", "query_labels has"),
        ("nan", "non-finite"),
        ("k_too_large", "larger than the candidates"),
        ("no_valid", "no query has a relevant item"),
        ("zero_k", "positive integer"),
    ],
)
def test_bad_input_raises(case, message):
    labels = np.array([0, 0, 1, 1, 2])
    s = np.random.default_rng(0).standard_normal((5, 5))
    kw = {"ks": (1, 2)}
    if case == "not_square":
        s = s[:, :4]
    elif case == "short_labels":
        labels = labels[:4]
    elif case == "nan":
        s[0, 0] = np.nan
    elif case == "k_too_large":
        kw["ks"] = (1, 5)  # 4 candidates per query in leave-one-out
    elif case == "no_valid":
        labels = np.arange(5)
    elif case == "zero_k":
        kw["ks"] = (0,)
    with pytest.raises(ValueError, match=message):
        retrieval_metrics(s, labels, **kw)


def test_streaming_needs_gallery_and_labels_together():
    x, labels = _data(10, 2, 4, 0)
    with pytest.raises(ValueError, match="both gallery and gallery_labels"):
        retrieval_metrics_from_embeddings(x, x, gssf.create_similarity("cosine"), query_labels=labels)


# ----------------------------------------------------------------- faiss k-NN path (knn=)
def _spy_faiss(monkeypatch):
    from gssf.evaluation import retrieval as module

    calls = []
    original = module._faiss_search

    def spy(fq, fg, width):
        calls.append((fq.shape[0], width))
        return original(fq, fg, width)

    monkeypatch.setattr(module, "_faiss_search", spy)
    return calls


@pytest.mark.parametrize("name", ["cosine", "gssf", "diagonal"])
def test_knn_faiss_equals_the_score_block_path(monkeypatch, name):
    x, labels = _data(97, 7, 16, 3, dtype=torch.float32)
    labels[5] = 50  # a single-item class
    sim = gssf.create_similarity(name, dim=16)
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(0.3 * torch.randn_like(p))
    calls = _spy_faiss(monkeypatch)
    for chunk in (1, 13, 97, 200):
        ref = retrieval_metrics_from_embeddings(
            x, None, sim, query_labels=labels, chunk_size=chunk, per_query=True, knn="torch"
        )
        got = retrieval_metrics_from_embeddings(
            x, None, sim, query_labels=labels, chunk_size=chunk, per_query=True, knn="faiss"
        )
        assert got["per_query"] == ref["per_query"]
        assert {k: v for k, v in got.items() if k != "per_query"} == pytest.approx(
            {k: v for k, v in ref.items() if k != "per_query"}, abs=1e-9)
        ref = retrieval_metrics_from_embeddings(
            x[:30], x[30:], sim, query_labels=labels[:30], gallery_labels=labels[30:], chunk_size=chunk, knn="torch"
        )
        auto = retrieval_metrics_from_embeddings(
            x[:30], x[30:], sim, query_labels=labels[:30], gallery_labels=labels[30:], chunk_size=chunk
        )
        assert auto == pytest.approx(ref, abs=1e-9)
    assert calls, "the faiss path was never taken"


def test_knn_faiss_sends_tied_rows_to_full_score_rows(monkeypatch):
    # Three exact copies of each of 10 vectors, classes cutting across copies: the window's
    # last scores tie with scores outside it, so those rows are ranked from their full rows.
    g = torch.Generator().manual_seed(1)
    base = torch.randn(10, 8, generator=g)
    x = base.repeat_interleave(3, dim=0)
    labels = torch.tensor([i % 4 for i in range(30)])
    sim = gssf.create_similarity("cosine")
    calls = _spy_faiss(monkeypatch)
    from gssf.evaluation import retrieval as module

    fallback = []
    original = module._block_metrics
    monkeypatch.setattr(module, "_block_metrics", lambda block, rows, *a: fallback.append(rows.numel()) or original(block, rows, *a))
    got = retrieval_metrics_from_embeddings(
        x, None, sim, query_labels=labels, chunk_size=8, per_query=True, knn="faiss"
    )
    assert calls and sum(fallback) > 0
    ref = retrieval_metrics_from_embeddings(
        x, None, sim, query_labels=labels, chunk_size=8, per_query=True, knn="torch"
    )
    assert got == ref
    assert got["per_query"]["query_index"] == sorted(got["per_query"]["query_index"])


def test_knn_option_is_checked():
    x, labels = _data(20, 3, 4, 0, dtype=torch.float32)
    cos = gssf.create_similarity("cosine")
    with pytest.raises(ValueError, match="knn must be"):
        retrieval_metrics_from_embeddings(x, None, cos, query_labels=labels, knn="annoy")
    with pytest.raises(ValueError, match="static, normalising"):
        retrieval_metrics_from_embeddings(x, None, gssf.create_similarity("dot"), query_labels=labels, knn="faiss")
    with pytest.raises(ValueError, match="float32 CPU"):
        retrieval_metrics_from_embeddings(x.double(), None, cos, query_labels=labels, knn="faiss")
    with pytest.raises(ValueError, match="static, normalising"):
        retrieval_metrics_from_embeddings(
            x, None, gssf.create_similarity("gssf_dynamic", dim=4), query_labels=labels, knn="faiss"
        )
    bad = x.clone()
    bad[3, 1] = float("nan")  # checked before any search
    with pytest.raises(ValueError, match="row 3|rows 3"):
        retrieval_metrics_from_embeddings(bad, None, cos, query_labels=labels)
