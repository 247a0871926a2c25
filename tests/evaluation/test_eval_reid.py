"""Person re-ID: oracle, torchreid / scikit-learn cross-checks, camera filtering, streaming, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from gssf.evaluation import reid_metrics, reid_metrics_from_embeddings

import eval_oracles as oracle
from eval_refs import make_similarities, torchreid_module


def _ids(seed: int, nq: int = 25, ng: int = 120, n_ids: int = 12, junk: bool = True):
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(1, n_ids, nq), rng.integers(0 if junk else 1, n_ids, ng)
    if junk:
        gp[rng.random(ng) < 0.1] = -1
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    return qp, gp, qc, gc


def _features(pids, dim, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(64, dim, generator=g, dtype=dtype)
    return centers[torch.as_tensor(pids) % 64] + 1.1 * torch.randn(len(pids), dim, generator=g, dtype=dtype)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("ap", ["standard", "trapezoid"])
def test_matches_the_oracle(seed, ties, ap):
    qp, gp, qc, gc = _ids(seed)
    rng = np.random.default_rng(seed + 10)
    s = rng.integers(0, 4, (25, 120)).astype(np.float32) if ties else rng.standard_normal((25, 120))
    got = reid_metrics(s, qp, gp, qc, gc, max_rank=20, ap=ap)
    want = oracle.reid(s, qp, gp, qc, gc, max_rank=20, trapezoid=ap == "trapezoid")
    assert got["cmc"] == pytest.approx(want.pop("cmc"))
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-9), k
    json.dumps(got, allow_nan=False)


@pytest.mark.parametrize("seed", range(3))
def test_matches_torchreid_evaluate_rank(seed):
    rank = torchreid_module("reid/metrics/rank.py")
    qp, gp, qc, gc = _ids(seed, junk=False)  # torchreid keeps pid -1 in the gallery: leave junk out
    q, g = _features(qp, 16, seed), _features(gp, 16, seed + 1)
    dist = torch.cdist(q, g).numpy()
    cmc, m_ap = rank.evaluate_rank(dist, qp, gp, qc, gc, max_rank=10, use_cython=False)
    got = reid_metrics(-dist, qp, gp, qc, gc, max_rank=10)
    assert got["mAP"] == pytest.approx(100 * m_ap, abs=1e-6)
    assert got["cmc"] == pytest.approx(list(100 * cmc), abs=1e-4)
    for k in (1, 5, 10):
        assert got[f"R@{k}"] == pytest.approx(100 * cmc[k - 1], abs=1e-4)


def test_average_precision_matches_scikit_learn():
    qp, gp, qc, gc = _ids(3)
    s = np.random.default_rng(3).standard_normal((25, 120))
    aps = []
    for q in range(25):
        keep = (gp != -1) & ~((gp == qp[q]) & (gc == qc[q]))
        y = gp[keep] == qp[q]
        if y.any():
            aps.append(average_precision_score(y, s[q, keep]))
    got = reid_metrics(s, qp, gp, qc, gc, max_rank=10)
    assert got["mAP"] == pytest.approx(100 * np.mean(aps))
    assert got["num_valid_queries"] == len(aps) and got["num_skipped_queries"] == 25 - len(aps)


def test_trapezoid_ap_by_hand():
    # One query, filtered list relevance [1, 0, 1]: standard AP = (1 + 2/3) / 2,
    # trapezoid = ((1 + 1) / 2 + (1/2 + 2/3) / 2) / 2.
    s = np.array([[0.9, 0.5, 0.2]])
    args = ([1], [1, 2, 1], [0], [1, 1, 1])
    assert reid_metrics(s, *args, max_rank=3, ks=(1,))["mAP"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    trap = reid_metrics(s, *args, max_rank=3, ks=(1,), ap="trapezoid")["mAP"]
    assert trap == pytest.approx(100 * (1.0 + (0.5 + 2 / 3) / 2) / 2)


def test_minp_by_hand():
    # relevance [0, 1, 0, 1]: 2 matches, last at rank 4 -> INP = 2 / 4
    s = np.array([[0.9, 0.8, 0.7, 0.6]])
    out = reid_metrics(s, [1], [2, 1, 3, 1], [0], [1, 1, 1, 1], max_rank=4, ks=(1, 2))
    assert out["mINP"] == pytest.approx(50.0)
    assert out["cmc"] == [0.0, 100.0, 100.0, 100.0]


def test_same_identity_same_camera_and_junk_are_removed_distractors_stay():
    # Gallery: [same id+cam (removed), junk (removed), distractor pid 0, same id other cam]
    s = np.array([[0.9, 0.8, 0.7, 0.6]])
    out = reid_metrics(s, [5], [5, -1, 0, 5], [1], [1, 2, 2, 2], max_rank=2, ks=(1, 2))
    assert out["R@1"] == 0.0 and out["R@2"] == 100.0  # only the distractor is ahead
    assert out["mAP"] == pytest.approx(50.0)


def test_single_camera_filters_every_match_unless_cameras_differ():
    # Documented behaviour: with one camera, every true match shares the query's camera and
    # is removed, so there is no valid query: a clear error, not a silent 0.
    qp, gp = np.array([1, 2]), np.array([1, 2, 3, 1])
    s = np.random.default_rng(0).standard_normal((2, 4))
    with pytest.raises(ValueError, match="single camera"):
        reid_metrics(s, qp, gp, np.zeros(2, int), np.zeros(4, int), max_rank=4, ks=(1,))
    # The documented fix: give queries and gallery different camera ids.
    out = reid_metrics(s, qp, gp, np.zeros(2, int), np.ones(4, int), max_rank=4, ks=(1,))
    assert out["num_valid_queries"] == 2


def test_queries_without_match_are_skipped_and_counted():
    s = np.random.default_rng(1).standard_normal((3, 5))
    out = reid_metrics(s, [1, 9, -1], [1, 2, 3, 4, 1], [0, 0, 0], [1, 1, 1, 1, 1], max_rank=5, ks=(1,))
    assert out["num_valid_queries"] == 1 and out["num_skipped_queries"] == 2


@pytest.mark.parametrize("name,sim", make_similarities(10), ids=lambda v: v if isinstance(v, str) else "")
def test_streaming_equals_full(name, sim):
    qp, gp, qc, gc = _ids(4, nq=17, ng=61)
    q, g = _features(qp, 10, 4), _features(gp, 10, 5)
    full = reid_metrics(sim(q, g), qp, gp, qc, gc, max_rank=15, ap="trapezoid")
    for chunk in (1, 4, 16, 17, 100):
        labels = dict(query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc)
        got = reid_metrics_from_embeddings(q, g, sim, **labels, chunk_size=chunk, max_rank=15, ap="trapezoid")
        assert got == full


@pytest.mark.parametrize(
    "case,message",
    [
        ("short_pids", "query_pids has"),
        ("short_cams", "gallery_cams has"),
        ("nan", "non-finite"),
        ("max_rank", "larger than the gallery"),
        ("k", "larger than the gallery"),
        ("no_valid", "no query has a true match"),
        ("ap", "ap must be one of"),
    ],
)
def test_bad_input_raises(case, message):
    qp, gp, qc, gc = np.array([1, 2]), np.array([1, 2, 3, 1, 2, 3]), np.array([0, 0]), np.ones(6, int)
    s = np.random.default_rng(0).standard_normal((2, 6))
    kw = {"max_rank": 6, "ks": (1, 5)}
    if case == "short_pids":
        qp = qp[:1]
    elif case == "short_cams":
        gc = gc[:5]
    elif case == "nan":
        s[1, 3] = np.nan
    elif case == "max_rank":
        kw["max_rank"] = 7
    elif case == "k":
        kw["ks"] = (1, 10)
    elif case == "no_valid":
        gc = np.zeros(6, int)
    elif case == "ap":
        kw["ap"] = "interpolated"
    with pytest.raises(ValueError, match=message):
        reid_metrics(s, qp, gp, qc, gc, **kw)
