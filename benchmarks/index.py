"""Benchmark: approximate faiss indexes (IVF, HNSW) against the exact one, recall@10 and queries per second.

Two galleries of index vectors (the vectors `gssf index build` stores: a learned fold of
the embeddings, inner product = score):

* **real**: the largest gallery available offline here, the 41,782 captions of
  `emoji-captions-multilingual` (all splits; multilingual-e5-small features, 384-d) folded by
  a GSSF (16 blocks) moved off the identity (seeded), 1,000 of them held out as queries;
* **synthetic**: 1,000,000 unit vectors (128-d) from a mixture of 1,000 Gaussian clusters,
  1,000 more as queries.

For each: `IndexFlatIP` (exact, the reference), `IndexIVFFlat` (nlist = 4 sqrt(N)) at
nprobe 1, 8, 32, 128 and `IndexHNSWFlat` (M = 32) at efSearch 16, 64, 256. Reported: build
seconds, queries per second (1,000 queries in one batch; the best of interleaved rounds:
other processes only ever add time), recall@10 (the fraction of the exact top 10 found).

Usage: ``python benchmarks/index.py [--synthetic 1000000] [--rounds 3] [--threads 2]``
Writes ``benchmarks/results/index.json``. Needs the e5-small caption features of
emoji-captions-multilingual (extracted on first use: ~15 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch

from gssf import create_similarity
from gssf.utils.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "index.json"
NPROBES = (1, 8, 32, 128)
EF_SEARCH = (16, 64, 256)
K = 10


def real_gallery(seed: int = 0) -> np.ndarray:
    from gssf.features import get_features

    parts = [get_features("emoji-captions-multilingual", s, text_encoder="e5-small", resolution=128, progress=False).text
             for s in ("train", "val", "test")]  # fmt: skip
    x = torch.from_numpy(np.concatenate(parts)).float()
    sim = create_similarity("gssf", dim=x.shape[1], num_blocks=16)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
        return sim.fold_query(x).numpy().astype(np.float32)


def synthetic_gallery(n: int, dim: int = 128, clusters: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        x = centres[rng.integers(0, clusters, hi - lo)] + 0.6 * rng.standard_normal((hi - lo, dim)).astype(np.float32)
        out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench(name: str, vectors: np.ndarray, queries: int, rounds: int, seed: int = 0) -> Dict[str, Any]:
    import faiss

    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(vectors.shape[0])
    q, base = vectors[order[:queries]], np.ascontiguousarray(vectors[order[queries:]])
    n, d = base.shape
    nlist = int(4 * math.sqrt(n))
    built: Dict[str, Any] = {}
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    built["flat"] = (flat, time.perf_counter() - t)
    t = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(base[rng.permutation(n)[: min(n, 64 * nlist)]])
    ivf.add(base)
    built["ivf"] = (ivf, time.perf_counter() - t)
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(base)
    built["hnsw"] = (hnsw, time.perf_counter() - t)
    settings = [("flat", None)] + [("ivf", p) for p in NPROBES] + [("hnsw", e) for e in EF_SEARCH]

    def run(kind: str, param: Any) -> np.ndarray:
        index = built[kind][0]
        if kind == "ivf":
            index.nprobe = param
        if kind == "hnsw":
            index.hnsw.efSearch = param
        return index.search(q, K)[1]

    times: Dict[str, List[float]] = {f"{k}:{p}": [] for k, p in settings}
    found: Dict[str, np.ndarray] = {}
    for _ in range(rounds):  # contenders interleaved round by round
        for kind, param in settings:
            t = time.perf_counter()
            found[f"{kind}:{param}"] = run(kind, param)
            times[f"{kind}:{param}"].append(time.perf_counter() - t)
    exact = found["flat:None"]
    rows = []
    for kind, param in settings:
        key = f"{kind}:{param}"
        recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(exact, found[key])]))
        best = min(times[key])
        rows.append({"index": kind, "nprobe": param if kind == "ivf" else None,
                     "efSearch": param if kind == "hnsw" else None, "recall_at_10": recall,
                     "queries_per_second": queries / best, "build_seconds": built[kind][1]})  # fmt: skip
    return {"gallery": name, "items": n, "dim": d, "queries": queries, "nlist": nlist, "hnsw_m": 32, "rows": rows}


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--synthetic", type=int, default=1_000_000, help="items of the synthetic gallery (0: skip)")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    results = [bench("emoji-captions-multilingual captions (e5-small, gssf fold)", real_gallery(), args.queries, args.rounds)]
    if args.synthetic:
        results.append(bench(f"synthetic {args.synthetic:,} (1,000 clusters)", synthetic_gallery(args.synthetic + args.queries),
                             args.queries, args.rounds))  # fmt: skip
    for r in results:
        print(f"\n{r['gallery']}: {r['items']:,} items x {r['dim']}, {r['queries']} queries, IVF nlist {r['nlist']}")
        print(f"{'index':<8}{'param':>8}{'recall@10':>11}{'queries/s':>12}{'build s':>9}")
        for row in r["rows"]:
            param = row["nprobe"] or row["efSearch"] or "-"
            print(f"{row['index']:<8}{param!s:>8}{row['recall_at_10']:>11.3f}{row['queries_per_second']:>12.0f}"
                  f"{row['build_seconds']:>9.1f}")
    doc = {"benchmark": "index", "command": "python benchmarks/index.py " + " ".join(argv or sys.argv[1:]),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "threads": args.threads,
                       "faiss": faiss.__version__},
           "note": "queries/s: best of interleaved rounds of one 1,000-query batch; recall@10 against IndexFlatIP",
           "results": results}  # fmt: skip
    atomic_write_json(args.out, doc)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
