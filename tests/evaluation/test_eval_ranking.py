"""The ranking kernels and the one tie policy (pessimistic) they implement."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gssf.evaluation import image_text_metrics, reid_metrics, retrieval_metrics
from gssf.evaluation.ranking import Groups, count_at_least, first_relevant_rank, positive_positions, top_relevance

import eval_oracles as oracle


def _random_case(seed: int, ties: bool, r: int = 6, m: int = 17):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 4, (r, m), generator=g).double() if ties else torch.randn(r, m, generator=g, dtype=torch.float64)
    candidates = torch.rand(r, m, generator=g) > 0.2
    positives = (torch.rand(r, m, generator=g) > 0.6) & candidates
    return scores, positives, candidates


def _oracle_relevance(scores, positives, candidates, row):
    cands = torch.nonzero(candidates[row]).flatten().tolist()
    return oracle.ranked_relevance(scores[row].tolist(), positives[row].tolist(), cands)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_count_at_least_matches_brute_force(seed, ties):
    scores, _, candidates = _random_case(seed, ties)
    thresholds = torch.sort(scores[:, :5], dim=1).values
    thresholds[0, :2] = float("-inf")  # leading padding is allowed (its counts are ignored)
    got = count_at_least(scores, thresholds, candidates)
    for r in range(scores.shape[0]):
        for p in range(thresholds.shape[1]):
            if r == 0 and p < 2:
                continue
            want = sum(1 for m in range(scores.shape[1]) if candidates[r, m] and scores[r, m] >= thresholds[r, p])
            assert got[r, p] == want
    one = count_at_least(scores, thresholds[:, -1:], candidates)
    assert torch.equal(one[:, 0], got[:, -1])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_positions_follow_the_pessimistic_order(seed, ties):
    scores, positives, candidates = _random_case(seed, ties)
    positions, counts = positive_positions(scores, positives, candidates)
    for row in range(scores.shape[0]):
        rel = _oracle_relevance(scores, positives, candidates, row)
        want = [i for i, x in enumerate(rel) if x]
        assert counts[row] == len(want)
        assert positions[row, : len(want)].tolist() == want


def _labelled_case(seed: int, ties: bool, r: int = 7, m: int = 23):
    """Rows r are items 0..r-1 of the gallery (leave-one-out style), each excluding itself."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 3, (r, m), generator=g).double() if ties else torch.randn(r, m, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (m,), generator=g)
    rows = torch.arange(r)
    relevant = Groups(labels).members(labels[rows])
    relevant = relevant.masked_fill(relevant == rows.unsqueeze(1), -1)
    return scores, labels, rows, relevant


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("ties", [False, True])
def test_first_rank_and_top_relevance_follow_the_pessimistic_order(seed, ties):
    scores, labels, rows, relevant = _labelled_case(seed, ties)
    excluded = rows.unsqueeze(1)
    first = first_relevant_rank(scores, relevant, excluded)
    k = 9
    top = top_relevance(scores, labels[rows], labels, excluded, k)
    for r in rows.tolist():
        cands = [j for j in range(scores.shape[1]) if j != r]
        rel = oracle.ranked_relevance(scores[r].tolist(), (labels == labels[r]).tolist(), cands)
        if any(rel):
            assert first[r] == rel.index(True)
        assert top[r].tolist() == rel[:k]


def test_groups_members():
    labels = torch.tensor([2, 0, 2, 2, 5])
    members = Groups(labels).members(torch.tensor([2, 1, 5, 7]))
    assert members.tolist() == [[0, 2, 3], [-1, -1, -1], [4, -1, -1], [-1, -1, -1]]


def test_constant_scores_rank_every_relevant_item_last():
    # A similarity that cannot tell items apart must not score any hit.
    s = np.zeros((4, 8))
    txt2img = np.repeat(np.arange(4), 2)
    out = image_text_metrics(s, txt2img, ks=(1, 4))
    assert out["i2t_R@1"] == 0.0 and out["t2i_R@1"] == 0.0
    assert out["i2t_meanR"] == 7.0  # 6 other texts rank before the first caption
    assert out["t2i_meanR"] == 4.0  # 3 other images rank before the caption's image
    assert retrieval_metrics(np.zeros((6, 6)), [0, 0, 0, 1, 1, 1], ks=(1,))["R@1"] == 0.0
    assert reid_metrics(np.zeros((2, 5)), [1, 2], [1, 2, 3, 4, 5], [0, 0], [1, 1, 1, 1, 1], max_rank=5, ks=(1,))["R@1"] == 0.0


def test_a_tie_below_a_strict_winner_only_costs_the_tied_items():
    # Texts: own caption scores 0.5, one other text ties at 0.5, one scores higher.
    s = np.array([[0.5, 0.5, 0.9, 0.1], [0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    out = image_text_metrics(s, [0, 1, 1, 2], ks=(1, 2, 3))
    # image 0: 0.9 and the tied 0.5 come before its caption -> rank 2 (0-based); image 1: rank 0;
    # image 2: its caption ties with the three others -> rank 3.
    assert [out[f"i2t_R@{k}"] for k in (1, 2, 3)] == pytest.approx([100 / 3, 100 / 3, 200 / 3])


@pytest.mark.parametrize("seed", range(3))
def test_results_do_not_depend_on_gallery_order(seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 3, (9, 9)).astype(float)
    labels = rng.integers(0, 3, 9)
    perm = rng.permutation(9)
    base = retrieval_metrics(s, labels, labels, ks=(1, 2))
    shuffled = retrieval_metrics(s[:, perm], labels, labels[perm], ks=(1, 2))
    assert base == shuffled


def test_large_streamed_blocks_are_ranked_in_full_path_sized_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """A score block larger than the full path's walking step is split into row views of that
    size (so streaming temporaries never exceed the full path's), with the same metrics."""
    import gssf
    from gssf.evaluation import (image_text_metrics_from_embeddings, reid_metrics_from_embeddings,
                                 retrieval_metrics_from_embeddings)
    from gssf.evaluation import ranking

    g = torch.Generator().manual_seed(0)
    sim = gssf.create_similarity("cosine")
    img, txt = torch.randn(30, 8, generator=g), torch.randn(60, 8, generator=g)
    txt2img = torch.arange(30).repeat_interleave(2)
    items, labels = torch.randn(50, 8, generator=g), torch.arange(50) % 7
    gal, gp = torch.randn(40, 8, generator=g), torch.arange(40) % 10
    qp, qc, gc = torch.arange(12) % 10, torch.zeros(12, dtype=torch.long), torch.ones(40, dtype=torch.long)
    q = torch.randn(12, 8, generator=g)

    def all_metrics():
        return (
            image_text_metrics_from_embeddings(img, txt, sim, txt2img=txt2img, chunk_size=30, per_query=True),
            retrieval_metrics_from_embeddings(items, None, sim, query_labels=labels, chunk_size=50, per_query=True),
            reid_metrics_from_embeddings(
                q,
                gal,
                sim,
                query_pids=qp,
                gallery_pids=gp,
                query_cams=qc,
                gallery_cams=gc,
                max_rank=10,
                chunk_size=12,
                per_query=True,
            ),
        )

    whole = all_metrics()
    seen = []
    original = ranking.checked_blocks

    def spy(blocks, name="scores"):
        for start, b in original(blocks, name):
            seen.append(b.numel())
            yield start, b

    monkeypatch.setattr(ranking, "_BLOCK_ELEMENTS", 100)
    for mod in ("image_text", "retrieval", "reid"):
        monkeypatch.setattr(f"gssf.evaluation.{mod}.checked_blocks", spy)
    split = all_metrics()
    assert seen and max(seen) <= 100  # every block the ranking saw was a view of at most 100 scores
    assert split == whole
