"""Benchmark: the cost of each similarity member as an attention kernel, per scored pair.

Two uses of attention with similarity logits, at the sizes of the "attention" presets:

* ``pool``: attention pooling (:class:`gssf.models.pooling.AttentionPooling`): 256 sets of 49
  elements of 256 channels (Tux regions after the per-element head), four heads, one query
  per set; against plain ``scaled_dot_product_attention`` on the same tensors (``sdpa``).
* ``cross``: the ``cross_attention`` score matrix of 229 region sets (49 x 128) against 229
  word sets (12 x 128, the length of a typical Tux caption): every word attends over the
  regions of every image, so one score-matrix entry is 12 x 49 kernel evaluations.

Every member starts equal to cosine and is moved off its start (small random steps), so the
learned paths run. Contenders are interleaved round by round; the table gives the median
seconds, the ratio to the cosine kernel measured in the same rounds, and microseconds per
(query, key) pair of the kernel (``pool``) or per scored (image, caption) pair (``cross``).

Usage: ``python benchmarks/attention.py [--rounds 5] [--threads 2]``
Writes ``benchmarks/results/attention.json``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

import gssf
from gssf.models.pooling import AttentionPooling
from gssf.utils.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "attention.json"
MEMBERS = ("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic")


def _moved(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return module.eval()


def _zero_tail(t: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    keep = torch.arange(t.shape[1])[None, :] < lengths[:, None]
    return t * keep[..., None]


def contenders(kind: str, g: torch.Generator) -> Dict[str, Callable[[], torch.Tensor]]:
    if kind == "pool":
        sets = torch.randn(256, 49, 256, generator=g)
        mask = torch.ones(256, 49, dtype=torch.bool)
        out: Dict[str, Callable[[], torch.Tensor]] = {}
        for i, name in enumerate(MEMBERS):
            pool = _moved(AttentionPooling(256, similarity=name, heads=4), i)
            out[name] = lambda pool=pool: pool(sets, mask)
        q = sets.mean(dim=1, keepdim=True)
        heads = lambda t: t.view(t.shape[0], t.shape[1], 4, 64).transpose(1, 2)  # noqa: E731
        out["sdpa"] = lambda: F.scaled_dot_product_attention(heads(q), heads(sets), heads(sets))
        return out
    regions = torch.randn(229, 49 * 128, generator=g)
    words = _zero_tail(torch.randn(229, 32, 128, generator=g), torch.full((229,), 12)).reshape(229, -1)
    out = {}
    for i, name in enumerate(MEMBERS):
        sim = _moved(gssf.create_similarity("cross_attention", dim=128, kernel=name), i)
        out[name] = lambda sim=sim: sim(regions, words)
    return out


def measure(kind: str, rounds: int) -> Dict[str, Dict[str, float]]:
    fns = contenders(kind, torch.Generator().manual_seed(0))
    times: Dict[str, List[float]] = {n: [] for n in fns}
    with torch.no_grad():
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(rounds):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    # pairs scored by the kernel (pool) or entries of the score matrix (cross)
    pairs = 256 * 49 * 4 if kind == "pool" else 229 * 229
    rows = {}
    for name, ts in times.items():
        ratios = [t / c for t, c in zip(ts, times["cosine"])]  # same round: same machine load
        rows[name] = {"seconds": statistics.median(ts), "ratio_to_cosine": statistics.median(ratios),
                      "us_per_pair": 1e6 * statistics.median(ts) / pairs}  # fmt: skip
    return rows


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "rounds": args.rounds,
        "pool": {"sets": 256, "elements": 49, "dim": 256, "heads": 4, "rows": measure("pool", args.rounds)},
        "cross": {"images": 229, "captions": 229, "regions": 49, "words": 12, "dim": 128,
                  "rows": measure("cross", args.rounds)},
    }  # fmt: skip
    for kind, unit in (("pool", "us per (query, key) pair"), ("cross", "us per (image, caption) pair")):
        r = report[kind]
        print(f"\n{kind}: " + ", ".join(f"{k} {v}" for k, v in r.items() if k != "rows"))
        print(f"{'kernel':<16}{'seconds':>10}{'x cosine':>10}{unit:>32}")
        for name, row in r["rows"].items():
            print(f"{name:<16}{row['seconds']:>10.4f}{row['ratio_to_cosine']:>10.2f}{row['us_per_pair']:>32.3f}")
    atomic_write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
