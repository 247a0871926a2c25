"""gssf.search: exact / faiss top-k and two-stage search with the pair-conditioned member."""
from __future__ import annotations

import pytest
import torch

import gssf
from gssf.errors import GssfError
from gssf.evaluation import reid_metrics_from_embeddings
from gssf.search import TwoStage, search

D = 24


def _dynamic(seed: int = 0) -> gssf.Similarity:
    sim = gssf.create_similarity("gssf_dynamic", dim=D, num_blocks=4, hidden=3).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return sim


def _data(n: int = 9, m: int = 40, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g, dtype=torch.float64), torch.randn(m, D, generator=g, dtype=torch.float64)


def test_two_stage_rows_hold_second_stage_scores_on_the_shortlist_and_first_stage_order_below() -> None:
    sim = _dynamic()
    x, y = _data()
    two = TwoStage(sim, shortlist=7)
    with torch.no_grad():
        got = two(x, y)
        first, full = sim.static_part()(x, y), sim(x, y)
    for i in range(x.shape[0]):
        top = set(first[i].topk(7).indices.tolist())
        inside = sorted(top)
        outside = [j for j in range(y.shape[0]) if j not in top]
        torch.testing.assert_close(got[i, inside], full[i, inside], rtol=1e-12, atol=1e-12)
        assert float(got[i, outside].max()) < float(got[i, inside].min())
        # the rest keeps the first stage's order
        torch.testing.assert_close(got[i, outside] - got[i, outside][0], first[i, outside] - first[i, outside][0])
    # a shortlist as long as the gallery is exhaustive re-scoring
    with torch.no_grad():
        torch.testing.assert_close(TwoStage(sim, shortlist=100)(x, y), full, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match="depends on the whole gallery"):
        two.pair(x[:2], y[:2])
    with pytest.raises(GssfError, match="shortlist must be a positive integer"):
        TwoStage(sim, shortlist=0)


def test_search_exact_faiss_and_two_stage_agree_with_brute_force() -> None:
    sim = _dynamic(2)
    x, y = _data(12, 300, seed=3)
    static = sim.static_part()
    want = static(x, y).topk(5, dim=1)
    for index in ("exact", "faiss"):
        s, i = search(static, x.float(), y.float(), k=5, index=index, chunk_size=5)
        assert torch.equal(i, want.indices)
        torch.testing.assert_close(s.double(), want.values, rtol=1e-5, atol=1e-5)
    exhaustive = sim(x, y).topk(5, dim=1)
    s, i = search(sim, x, y, k=5, shortlist=300)
    assert torch.equal(i, exhaustive.indices)
    torch.testing.assert_close(s, exhaustive.values, rtol=1e-12, atol=1e-12)
    # a short shortlist finds a subset of the shortlist, scored by the dynamic member
    s, i = search(sim, x, y, k=5, shortlist=20)
    short = static(x, y).topk(20, dim=1).indices
    assert all(set(i[r].tolist()) <= set(short[r].tolist()) for r in range(12))
    torch.testing.assert_close(s, torch.gather(sim(x, y), 1, i), rtol=1e-12, atol=1e-12)
    with pytest.raises(GssfError, match="pair-conditioned: pass shortlist"):
        search(sim, x, y, k=5)
    with pytest.raises(GssfError, match="index must be 'exact' or 'faiss'"):
        search(static, x, y, index="hnsw")


def test_reid_evaluator_takes_the_two_stage_similarity() -> None:
    sim = _dynamic(4)
    q, g = _data(10, 60, seed=5)
    qp, gp = torch.arange(10) % 5, torch.arange(60) % 5
    qc, gc = torch.zeros(10, dtype=torch.long), torch.ones(60, dtype=torch.long)
    exhaustive = reid_metrics_from_embeddings(
        q, g, sim, query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc, chunk_size=4
    )
    same = reid_metrics_from_embeddings(
        q, g, TwoStage(sim, shortlist=60), query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc, chunk_size=4
    )
    assert same["mAP"] == pytest.approx(exhaustive["mAP"], abs=1e-9)
    short = reid_metrics_from_embeddings(
        q, g, TwoStage(sim, shortlist=5), query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc, chunk_size=4
    )
    assert 0 <= short["mAP"] <= 100


@pytest.mark.parametrize("name", ["gssf_dynamic", "gssf_dynamic_mlp", "gssf", "cosine"])
def test_candidate_scores_equal_the_matrix_entries(name: str) -> None:
    """_score_candidates (batched two-stage re-scoring) equals the score matrix, for every member kind."""
    sim = gssf.create_similarity(name, dim=D).double() if name != "cosine" else gssf.create_similarity(name)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
    x, y = _data(5, 30, seed=8)
    top = torch.randint(0, 30, (5, 6), generator=g)
    xp, yp = sim._prepare(x, "x"), sim._prepare(y, "y")
    with torch.no_grad():
        got = sim._score_candidates(xp, yp[top])
        full = sim(x, y)
    torch.testing.assert_close(got, full.gather(1, top), rtol=1e-12, atol=1e-12)
