"""Benchmark: leave-one-out retrieval metrics, gssf streaming against pytorch-metric-learning + faiss.

20,000 unit embeddings (D = 512, 200 classes of 100), cosine similarity. Contenders, timed
interleaved in one process (median over rounds):

* ``gssf``: :func:`gssf.evaluation.retrieval_metrics_from_embeddings` (streaming, chunks of
  1,024 rows; R@1, MAP@R, R-Precision, exact pessimistic ties) with its default
  ``knn="auto"``: faiss's fused GEMM + top-k over the folded features, full score rows only for
  the rows whose ties continue past the searched window;
* ``gssf-blocks``: the same with ``knn="torch"`` (score blocks and ``torch.topk``);
* ``pml+faiss``: pytorch-metric-learning's ``AccuracyCalculator`` (precision@1, MAP@R,
  R-Precision, ``k="max_bin_count"``) with its default faiss k-NN (exact inner product).

The metrics are checked to agree (to 1e-6) before anything is timed.

Usage: ``python benchmarks/eval_vs_pml.py [--items 20000] [--dim 512] [--rounds 3]``
Writes ``benchmarks/results/eval_vs_pml.json``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "eval_vs_pml.json"


def data(n: int, classes: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    centers = torch.nn.functional.normalize(torch.randn(classes, d, generator=g), dim=1)
    x = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1) * 0.8 + centers[labels] * 0.35
    return torch.nn.functional.normalize(x, dim=1), labels


def contenders(x: torch.Tensor, labels: torch.Tensor, chunk: int) -> Dict[str, Callable[[], Dict[str, float]]]:
    import gssf
    from gssf.evaluation import retrieval_metrics_from_embeddings
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    sim = gssf.create_similarity("cosine")
    calc = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                              k="max_bin_count", device=torch.device("cpu"))  # fmt: skip

    def ours(knn: str) -> Callable[[], Dict[str, float]]:
        def run() -> Dict[str, float]:
            with torch.no_grad():
                m = retrieval_metrics_from_embeddings(
                    x, None, sim, query_labels=labels, chunk_size=chunk, ks=(1,), knn=knn
                )
            return {"R@1": m["R@1"] / 100, "MAP@R": m["MAP@R"] / 100, "R-Precision": m["R-Precision"] / 100}

        return run

    def pml() -> Dict[str, float]:
        m = calc.get_accuracy(x, labels, ref_includes_query=True)
        return {"R@1": m["precision_at_1"], "MAP@R": m["mean_average_precision_at_r"], "R-Precision": m["r_precision"]}

    return {"gssf": ours("auto"), "gssf-blocks": ours("torch"), "pml+faiss": pml}


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    x, labels = data(args.items, args.classes, args.dim)
    fns = contenders(x, labels, args.chunk)
    results: Dict[str, Any] = {name: fn() for name, fn in fns.items()}  # also the warm-up
    for name in ("gssf", "gssf-blocks"):
        for key in results[name]:
            a, b = results[name][key], results["pml+faiss"][key]
            if abs(a - b) > 1e-6:
                raise SystemExit(f"the metrics disagree on {key}: {name} {a} against pml+faiss {b}")
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["pml+faiss"])
    rows = {name: {"seconds": statistics.median(v), "ratio_to_pml_faiss": statistics.median(v) / base,
                   "metrics": results[name]} for name, v in times.items()}  # fmt: skip
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0]},
              "items": args.items, "classes": args.classes, "dim": args.dim, "chunk": args.chunk,
              "rounds": args.rounds, "rows": rows}  # fmt: skip
    print(f"leave-one-out, {args.items} x {args.dim}, {args.classes} classes (metrics agree to 1e-6)")
    print(f"{'contender':<14}{'seconds':>9}{'x pml+faiss':>13}")
    for name, r in rows.items():
        print(f"{name:<14}{r['seconds']:>9.2f}{r['ratio_to_pml_faiss']:>13.2f}")
    from gssf.utils.io import atomic_write_json

    atomic_write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
