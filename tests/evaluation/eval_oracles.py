"""Brute-force reference metrics written from the protocol definitions (Python loops).

Each query's candidates are sorted by ``(-score, relevant)``: the pessimistic tie policy
(a non-relevant candidate tied with a relevant one is ranked first).
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import numpy as np


def ranked_relevance(scores: Sequence[float], relevant: Sequence[bool], candidates: Sequence[int]) -> List[bool]:
    order = sorted(candidates, key=lambda j: (-float(scores[j]), bool(relevant[j])))
    return [bool(relevant[j]) for j in order]


def _median_rank(ranks: List[int]) -> float:
    return math.floor(float(np.median(ranks))) + 1.0


def image_text(scores: np.ndarray, txt2img: Sequence[int], ks=(1, 5, 10)) -> Dict[str, float]:
    return image_text_summary(*image_text_group_ranks(scores, range(scores.shape[0]), txt2img), ks)


def image_text_summary(i2t: List[int], t2i: List[int], ks=(1, 5, 10)) -> Dict[str, float]:
    """The protocol's summary of 0-based rank lists of both directions."""
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in ks:
            out[f"{name}_R@{k}"] = 100.0 * sum(r < k for r in ranks) / len(ranks)
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        out[f"{name}_medR"] = _median_rank(ranks)
        out[f"{name}_meanR"] = sum(ranks) / len(ranks) + 1.0
    out["rsum"] = sum(out[f"{d}_R@{k}"] for d in ("i2t", "t2i") for k in ks)
    return out


def image_text_group_ranks(scores: np.ndarray, image_groups: Sequence, text_groups: Sequence):
    """0-based first-relevant ranks ``(i2t, t2i)``: image ``i`` and text ``j`` are relevant iff same group."""
    s = np.asarray(scores, dtype=np.float64)
    n, m = s.shape
    i2t = [ranked_relevance(s[i], [text_groups[j] == image_groups[i] for j in range(m)], range(m)).index(True)
           for i in range(n)]
    t2i = [ranked_relevance(s[:, j], [image_groups[i] == text_groups[j] for i in range(n)], range(n)).index(True)
           for j in range(m)]
    return i2t, t2i


def reid(scores, qp, gp, qc, gc, max_rank=50, ks=(1, 5, 10), trapezoid=False, per_query=False) -> Dict[str, object]:
    nq, ng = scores.shape
    aps, inps, firsts, valid = [], [], [], []
    for q in range(nq):
        cands = [g for g in range(ng) if gp[g] != -1 and not (gp[g] == qp[q] and gc[g] == qc[q])]
        rel = ranked_relevance(scores[q], [gp[g] == qp[q] for g in range(ng)], cands)
        if not any(rel):
            continue
        hits, ap, n_rel = 0, 0.0, sum(rel)
        old_prec = 1.0
        for pos, r in enumerate(rel):
            if r:
                hits += 1
                prec = hits / (pos + 1)
                ap += (old_prec + prec) / 2 if trapezoid else prec
            old_prec = hits / (pos + 1)
        aps.append(ap / n_rel)
        last = max(p for p, r in enumerate(rel) if r)
        inps.append(n_rel / (last + 1))
        firsts.append(rel.index(True))
        valid.append(q)
    out = {"mAP": 100.0 * float(np.mean(aps)), "mINP": 100.0 * float(np.mean(inps))}
    for k in ks:
        out[f"R@{k}"] = 100.0 * sum(f < k for f in firsts) / len(firsts)
    out["cmc"] = [100.0 * sum(f <= r for f in firsts) / len(firsts) for r in range(max_rank)]
    out["num_valid_queries"] = len(firsts)
    out["num_skipped_queries"] = nq - len(firsts)
    if per_query:
        out["per_query"] = {
            "query_index": valid, "first_rank": [f + 1 for f in firsts],
            "mAP": [100.0 * a for a in aps], "mINP": [100.0 * v for v in inps],
            **{f"R@{k}": [100.0 * (f < k) for f in firsts] for k in ks},
        }
    return out


def retrieval(scores, ql, gl=None, ks=(1, 2, 4, 8), per_query=False) -> Dict[str, object]:
    loo = gl is None
    gl = ql if loo else gl
    nq, ng = scores.shape
    firsts, map_r, r_prec, valid = [], [], [], []
    for q in range(nq):
        cands = [g for g in range(ng) if not (loo and g == q)]
        rel = ranked_relevance(scores[q], [gl[g] == ql[q] for g in range(ng)], cands)
        r = sum(rel)
        if r == 0:
            continue
        valid.append(q)
        firsts.append(rel.index(True))
        ap, seen = 0.0, 0
        for i in range(r):
            if rel[i]:
                seen += 1
                ap += seen / (i + 1)
        map_r.append(ap / r)
        r_prec.append(sum(rel[:r]) / r)
    out = {f"R@{k}": 100.0 * sum(f < k for f in firsts) / len(valid) for k in ks}
    out["MAP@R"] = 100.0 * sum(map_r) / len(valid)
    out["R-Precision"] = 100.0 * sum(r_prec) / len(valid)
    out["num_valid_queries"] = len(valid)
    if per_query:
        out["per_query"] = {
            "query_index": valid, "first_rank": [f + 1 for f in firsts],
            **{f"R@{k}": [100.0 * (f < k) for f in firsts] for k in ks},
            "MAP@R": [100.0 * v for v in map_r], "R-Precision": [100.0 * v for v in r_prec],
        }
    return out
