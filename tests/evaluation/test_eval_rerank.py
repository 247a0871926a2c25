"""k-reciprocal re-ranking: equal to torchreid's dense implementation, chunk-independent, any similarity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gssf
from gssf.evaluation import (
    k_reciprocal_rerank,
    k_reciprocal_rerank_from_scores,
    reid_metrics,
    reid_metrics_from_embeddings,
)
from gssf.evaluation import rerank as rerank_module

from eval_refs import make_similarities, torchreid_module


def _clustered(n: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, 10, (n,), generator=g)
    centers = torch.randn(10, dim, generator=g, dtype=torch.float64)
    return centers[pids] + 0.6 * torch.randn(n, dim, generator=g, dtype=torch.float64), pids


def _induced(scores: torch.Tensor) -> torch.Tensor:
    own = scores.diagonal()
    return (own[:, None] + own[None, :] - 2 * scores).clamp_min(0)


@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (6, 3, 0.5), (5, 1, 0.0)])
def test_matches_torchreid_re_ranking(k1, k2, lam):
    ref_mod = torchreid_module("reid/utils/rerank.py")
    x, _ = _clustered(130, 12, k1)
    nq = 30
    sim = gssf.create_similarity("dot")  # induced distance == squared Euclidean, as in the original
    d = _induced(sim(x, x))
    # torchreid squares its inputs: give it Euclidean distances.
    ref = ref_mod.re_ranking(d[:nq, nq:].sqrt().numpy(), d[:nq, :nq].sqrt().numpy(), d[nq:, nq:].sqrt().numpy(),
                             k1=k1, k2=k2, lambda_value=lam)
    got = -k_reciprocal_rerank(x[:nq], x[nq:], sim, k1=k1, k2=k2, lambda_value=lam, chunk_size=17)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("name,sim", make_similarities(8), ids=lambda v: v if isinstance(v, str) else "")
def test_chunking_and_triple_budget_do_not_change_the_result(name, sim, monkeypatch):
    x, _ = _clustered(70, 8, 1)
    q, g = x[:20], x[20:]
    base = k_reciprocal_rerank(q, g, sim, k1=8, k2=3, chunk_size=1000)
    monkeypatch.setattr(rerank_module, "_TRIPLE_BUDGET", 7)
    for chunk in (1, 9, 69):
        torch.testing.assert_close(k_reciprocal_rerank(q, g, sim, k1=8, k2=3, chunk_size=chunk), base)


def test_from_scores_equals_from_embeddings():
    x, _ = _clustered(60, 8, 2)
    sim = make_similarities(8)[1][1]  # a perturbed GSSF: not symmetric in general, use scores_gq
    q, g = x[:15], x[15:]
    got = k_reciprocal_rerank_from_scores(sim(q, g), sim(q, q), sim(g, g), k1=7, k2=3, scores_gq=sim(g, q), chunk_size=11)
    torch.testing.assert_close(got, k_reciprocal_rerank(q, g, sim, k1=7, k2=3, chunk_size=8))


def test_reid_reports_reranked_metrics_separately():
    x, pids = _clustered(90, 8, 3)
    cams = torch.arange(90) % 2
    nq = 20
    sim = gssf.create_similarity("cosine")
    args = (pids[:nq], pids[nq:], cams[:nq], cams[nq:] + 2)
    labels = dict(zip(("query_pids", "gallery_pids", "query_cams", "gallery_cams"), args))
    out = reid_metrics_from_embeddings(
        x[:nq], x[nq:], sim, **labels, chunk_size=7, max_rank=10, rerank={"k1": 8, "k2": 3}
    )
    plain = reid_metrics(sim(x[:nq], x[nq:]), *args, max_rank=10)
    again = reid_metrics(k_reciprocal_rerank(x[:nq], x[nq:], sim, k1=8, k2=3), *args, max_rank=10)
    assert {k: out[k] for k in plain} == plain
    assert {k: out[f"rerank_{k}"] for k in again} == again


@pytest.mark.parametrize("kw,message", [({"k1": 0}, "k1"), ({"k1": 500}, "k1"), ({"k2": 30}, "k2"),
                                        ({"lambda_value": 2.0}, "lambda")])
def test_bad_parameters_raise(kw, message):
    x, _ = _clustered(30, 4, 0)
    with pytest.raises(ValueError, match=message):
        k_reciprocal_rerank(x[:10], x[10:], gssf.create_similarity("cosine"), **kw)


def test_from_scores_checks_shapes():
    with pytest.raises(ValueError, match="shapes disagree"):
        k_reciprocal_rerank_from_scores(np.zeros((3, 5)), np.zeros((3, 3)), np.zeros((4, 4)))
