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
    n, m = scores.shape
    i2t, t2i = [], []
    for i in range(n):
        rel = ranked_relevance(scores[i], [txt2img[j] == i for j in range(m)], range(m))
        i2t.append(rel.index(True))
    for j in range(m):
        col = scores[:, j]
        rel = ranked_relevance(col, [i == txt2img[j] for i in range(n)], range(n))
        t2i.append(rel.index(True))
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in ks:
            out[f"{name}_R@{k}"] = 100.0 * sum(r < k for r in ranks) / len(ranks)
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        out[f"{name}_medR"] = _median_rank(ranks)
        out[f"{name}_meanR"] = sum(ranks) / len(ranks) + 1.0
    out["rsum"] = sum(out[f"{d}_R@{k}"] for d in ("i2t", "t2i") for k in ks)
    return out


def reid(scores, qp, gp, qc, gc, max_rank=50, ks=(1, 5, 10), trapezoid=False) -> Dict[str, object]:
    nq, ng = scores.shape
    aps, inps, firsts = [], [], []
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
    out = {"mAP": 100.0 * float(np.mean(aps)), "mINP": 100.0 * float(np.mean(inps))}
    for k in ks:
        out[f"R@{k}"] = 100.0 * sum(f < k for f in firsts) / len(firsts)
    out["cmc"] = [100.0 * sum(f <= r for f in firsts) / len(firsts) for r in range(max_rank)]
    out["num_valid_queries"] = len(firsts)
    out["num_skipped_queries"] = nq - len(firsts)
    return out


def retrieval(scores, ql, gl=None, ks=(1, 2, 4, 8)) -> Dict[str, float]:
    loo = gl is None
    gl = ql if loo else gl
    nq, ng = scores.shape
    hits = {k: 0 for k in ks}
    map_r = r_prec = 0.0
    valid = 0
    for q in range(nq):
        cands = [g for g in range(ng) if not (loo and g == q)]
        rel = ranked_relevance(scores[q], [gl[g] == ql[q] for g in range(ng)], cands)
        r = sum(rel)
        if r == 0:
            continue
        valid += 1
        first = rel.index(True)
        for k in ks:
            hits[k] += first < k
        ap, seen = 0.0, 0
        for i in range(r):
            if rel[i]:
                seen += 1
                ap += seen / (i + 1)
        map_r += ap / r
        r_prec += sum(rel[:r]) / r
    out = {f"R@{k}": 100.0 * hits[k] / valid for k in ks}
    out["MAP@R"] = 100.0 * map_r / valid
    out["R-Precision"] = 100.0 * r_prec / valid
    out["num_valid_queries"] = valid
    return out
