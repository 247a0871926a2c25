"""Benchmark: streaming vs full-matrix evaluation, wall time and peak memory.

Cases (issue 3):
* image-text: 5,000 images x 25,000 texts (5 captions each), D = 1024 (COCO 5K size);
* retrieval: 60,000-item leave-one-out (1,000 classes of 60), D = 128;
* reid: 5,000 queries (camera 0) x 25,000 gallery items (cameras 1-5), 2,500 identities, D = 512.

``--chunks`` measures the image-text and re-ID streaming paths at several chunk sizes
(``--chunks 128 256 1024 4096 5000``: up to the whole query set in one block).

Every (case, path) runs in a fresh subprocess. Peak memory is the process's peak
resident set size (``getrusage(RUSAGE_SELF).ru_maxrss``) minus its resident size just
before the evaluation, once the embeddings exist: the memory the evaluation itself adds
(score matrix, blocks, temporaries, the similarity's workspace). Both paths use the
``dot`` similarity on L2-normalised embeddings (cosine scores without a normalised copy
of the gallery, which would count the same in both paths). The similarity's input check
is a single reduction, so it adds no copy of the gallery either.

The full 60,000 x 60,000 float32 matrix is 14.4 GB; that path runs only when the
machine has enough available memory (``--full-loo auto``), else its memory is reported
as computed (matrix bytes) and the JSON says so.

Usage::

    python benchmarks/evaluation.py                # full benchmark, a few minutes on 2 cores
    python benchmarks/evaluation.py --quick        # small sizes, seconds (a smoke run)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

RESULTS = Path(__file__).resolve().parent / "results" / "evaluation.json"

SIZES = {
    "full": {
        "image_text": {"images": 5000, "captions": 5, "dim": 1024, "chunk": 256},
        "retrieval": {"items": 60000, "classes": 1000, "dim": 128, "chunk": 1024},
        "reid": {"queries": 5000, "gallery": 25000, "ids": 2500, "dim": 512, "chunk": 1024},
    },
    "quick": {
        "image_text": {"images": 500, "captions": 5, "dim": 256, "chunk": 64},
        "retrieval": {"items": 4000, "classes": 100, "dim": 64, "chunk": 512},
        "reid": {"queries": 500, "gallery": 2500, "ids": 250, "dim": 64, "chunk": 128},
    },
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _available_bytes() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _unit_rows(n: int, dim: int, seed: int):
    """``(n, dim)`` random unit rows, built in place (no transient copy that would inflate the peak)."""
    import torch

    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    x.div_(x.norm(dim=1, keepdim=True))
    return x


def _similarity(variant: str) -> Any:
    """The similarity of a run (``dot`` on normalised embeddings: cosine scores, no gallery copy)."""
    import gssf

    if variant == "dot":
        return gssf.create_similarity("dot")

    raise ValueError(f"unknown similarity variant {variant!r}")


def _worker(case: str, path: str, chunk: int, variant: str, size: Dict[str, int]) -> Dict[str, Any]:
    """Run one configuration and return time, memory and the metrics."""
    import torch

    from gssf.evaluation import (
        image_text_metrics,
        image_text_metrics_from_embeddings,
        reid_metrics,
        reid_metrics_from_embeddings,
        retrieval_metrics,
        retrieval_metrics_from_embeddings,
    )

    sim = _similarity(variant)
    if case == "image_text":
        n, per, d = size["images"], size["captions"], size["dim"]
        images = _unit_rows(n, d, 0)
        texts = _unit_rows(n * per, d, 1)
        txt2img = torch.arange(n).repeat_interleave(per)
        for s in range(0, texts.shape[0], 4096):  # captions near their image, a block at a time
            texts[s : s + 4096].mul_(0.9).add_(images[txt2img[s : s + 4096]], alpha=0.25)
        texts.div_(texts.norm(dim=1, keepdim=True))
        rows, cols = n, n * per
    elif case == "reid":  # Market-like: every identity in the gallery, queries from camera 0, gallery from 1-5
        nq, ng, ids, d = size["queries"], size["gallery"], size["ids"], size["dim"]
        qp, gp = torch.arange(nq) % ids, torch.arange(ng) % ids
        qc, gc = torch.zeros(nq, dtype=torch.long), 1 + torch.arange(ng) % 5
        centers = _unit_rows(ids, d, 4)
        query, gallery = _unit_rows(nq, d, 5), _unit_rows(ng, d, 6)
        for t, p in ((query, qp), (gallery, gp)):
            for s in range(0, t.shape[0], 4096):
                t[s : s + 4096].mul_(0.8).add_(centers[p[s : s + 4096]], alpha=0.35)
            t.div_(t.norm(dim=1, keepdim=True))
        rows, cols = nq, ng
    else:
        n, classes, d = size["items"], size["classes"], size["dim"]
        labels = torch.arange(n) % classes
        items = _unit_rows(n, d, 2)
        centers = _unit_rows(classes, d, 3)
        for s in range(0, n, 4096):
            items[s : s + 4096].mul_(0.8).add_(centers[labels[s : s + 4096]], alpha=0.35)
        items.div_(items.norm(dim=1, keepdim=True))
        rows = cols = n
    sim(torch.randn(8, d), torch.randn(8, d))  # warm up BLAS threads before the baseline
    before, peak_setup = _rss_bytes(), _peak_bytes()
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with torch.no_grad():
        if case == "image_text" and path == "full":
            metrics = image_text_metrics(sim(images, texts), txt2img)
        elif case == "image_text":
            metrics = image_text_metrics_from_embeddings(images, texts, sim, txt2img=txt2img, chunk_size=chunk)
        elif case == "reid" and path == "full":
            metrics = reid_metrics(sim(query, gallery), qp, gp, qc, gc)
        elif case == "reid":
            metrics = reid_metrics_from_embeddings(
                query, gallery, sim, query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc, chunk_size=chunk
            )
        elif path == "full":
            metrics = retrieval_metrics(sim(items, items), labels)
        else:
            metrics = retrieval_metrics_from_embeddings(items, None, sim, query_labels=labels, chunk_size=chunk)
    seconds = time.perf_counter() - t0
    peak = _peak_bytes()
    return {
        "seconds": seconds,
        "peak_extra_bytes": max(0, peak - before),
        "setup_peak_exceeds_baseline": peak_setup > before,  # True would make peak_extra a lower bound
        "matrix_bytes": rows * cols * 4,
        "load_average_1min": [load, os.getloadavg()[0]],  # other processes on the machine distort timings
        "metrics": metrics,
    }


# glibc raises its mmap threshold as large blocks are freed, then serves block-sized
# tensors from a heap it rarely trims, so the default RSS peak includes freed memory and
# varies from run to run. A fixed threshold returns every large free at once: the RSS peak
# is then the live memory. Both are reported.
_LIVE_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)}


def _run_subprocess(case: str, path: str, chunk: int, variant: str, quick: bool, live: bool) -> Dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", case, path, str(chunk), variant] + (["--quick"] if quick else [])
    env = dict(os.environ, **_LIVE_ENV) if live else None
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{case}/{path} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(b: float) -> float:
    return b / 2**20


def _measure(case: str, config: Tuple[str, int, str], repeats: int, live: bool, quick: bool) -> Dict[str, Any]:
    """``repeats`` timing runs (default allocator: best time, worst peak) and optionally one live-memory run."""
    path, chunk, variant = config
    runs = [_run_subprocess(case, path, chunk, variant, quick, live=False) for _ in range(repeats)]
    out = {
        "path": path,
        "chunk_size": chunk or None,
        "similarity": variant,
        "seconds": min(r["seconds"] for r in runs),
        "peak_mb": _mb(max(r["peak_extra_bytes"] for r in runs)),
        "peak_live_mb": None,
        "matrix_bytes": runs[0]["matrix_bytes"],
        "setup_peak_exceeds_baseline": any(r["setup_peak_exceeds_baseline"] for r in runs),
        "load_average_1min": [r["load_average_1min"] for r in runs],
        "metrics": runs[0]["metrics"],
        "metrics_repeatable": all(r["metrics"] == runs[0]["metrics"] for r in runs),
    }
    if live:
        mem = _run_subprocess(case, path, chunk, variant, quick, live=True)
        out["peak_live_mb"] = _mb(mem["peak_extra_bytes"])
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--full-loo", choices=("auto", "run", "skip"), default="auto",
                        help="run the full-matrix leave-one-out path (needs ~1.25x the matrix in free RAM)")
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    parser.add_argument("--repeats", type=int, default=2, help="timing runs per image-text configuration")
    parser.add_argument("--chunks", type=int, nargs="+",
                        help="image-text streaming chunk sizes to measure (default: the case's chunk and half of it)")
    parser.add_argument("--cases", nargs="+", choices=("image_text", "retrieval", "reid"), help="only these cases")
    parser.add_argument("--worker", nargs=4, metavar=("CASE", "PATH", "CHUNK", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = SIZES["quick" if args.quick else "full"]
    if args.worker:
        case, path, chunk, variant = args.worker
        print(json.dumps(_worker(case, path, int(chunk), variant, sizes[case])))
        return 0

    import torch

    report: Dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "method": (
            "each run in a fresh subprocess; peak = ru_maxrss - RSS just before the evaluation (embeddings "
            "already built); the full path includes computing the score matrix. seconds = best of the timing "
            "runs, peak_mb = worst of them (default glibc malloc); peak_live_mb = one run with "
            f"{_LIVE_ENV} so freed blocks leave the RSS at once (live memory). The 60k case runs once, "
            "default allocator only. load_average_1min: other processes on the machine distort timings."
        ),
        "similarity": "dot on L2-normalised embeddings (= cosine scores)",
        "cases": {},
    }
    lines = []
    for case, size in sizes.items():
        if args.cases and case not in args.cases:
            continue
        main_chunk = size["chunk"]
        if case == "image_text":
            matrix_bytes = size["images"] * size["images"] * size["captions"] * 4
        elif case == "reid":
            matrix_bytes = size["queries"] * size["gallery"] * 4
        else:
            matrix_bytes = size["items"] ** 2 * 4
        configs: List[Tuple[str, int, str]] = [("streaming", main_chunk, "dot")]
        if case in ("image_text", "reid"):  # the chunk-size trade-off
            extra = [c for c in (args.chunks or [main_chunk // 2]) if c != main_chunk]
            configs += [("streaming", c, "dot") for c in extra]
        full_fits = args.full_loo == "run" or (args.full_loo == "auto" and _available_bytes() > 1.25 * matrix_bytes)
        if case in ("image_text", "reid") or full_fits:
            configs.insert(0, ("full", 0, "dot"))
        one_shot = case == "retrieval" and not args.quick
        runs = [_measure(case, c, 1 if one_shot else args.repeats, not one_shot, args.quick) for c in configs]
        if runs[0]["path"] != "full":
            runs.insert(0, {"path": "full", "chunk_size": None, "similarity": "dot", "seconds": None,
                            "peak_mb": _mb(matrix_bytes), "peak_live_mb": None, "matrix_bytes": matrix_bytes,
                            "note": "not run: not enough free memory; peak is the matrix size, as computed"})
        full, stream = runs[0], runs[1]
        metrics = [r["metrics"] for r in runs if "metrics" in r]
        for r in runs:
            r["peak_over_full_matrix"] = r["peak_mb"] / _mb(matrix_bytes)
            if r["peak_live_mb"] is not None:
                r["live_peak_over_full_matrix"] = r["peak_live_mb"] / _mb(matrix_bytes)
        headline = {
            "streaming_chunk_size": main_chunk,
            "streaming_time_over_full_time": stream["seconds"] / full["seconds"] if full["seconds"] else None,
            "streaming_peak_over_full_matrix": stream["peak_over_full_matrix"],
            "streaming_live_peak_over_full_matrix": stream.get("live_peak_over_full_matrix"),
            "metrics_equal_across_paths": all(m == metrics[0] for m in metrics),
        }
        for r in runs:
            r.pop("metrics", None)
        report["cases"][case] = {"size": size, "full_matrix_float32_mb": _mb(matrix_bytes), "headline": headline,
                                 "runs": runs, "metrics": metrics[0]}
        lines.append((case, runs, headline, _mb(matrix_bytes)))

    header = (f"{'case':<11} {'path':<10} {'chunk':>6} {'similarity':<17} {'time s':>7} "
              f"{'peak MB':>8} {'live MB':>8} {'live/matrix':>11}")
    print(header)
    print("-" * len(header))
    for case, runs, h, mat in lines:
        for r in runs:
            t = f"{r['seconds']:.1f}" if r["seconds"] is not None else "n/a"
            live = f"{r['peak_live_mb']:.0f}" if r["peak_live_mb"] is not None else "-"
            frac = f"{r['live_peak_over_full_matrix']:.1%}" if r.get("live_peak_over_full_matrix") else "-"
            note = "  (not run: matrix size)" if r["seconds"] is None else ""
            print(f"{case:<11} {r['path']:<10} {str(r['chunk_size'] or '-'):>6} {r['similarity']:<17} {t:>7} "
                  f"{r['peak_mb']:>8.0f} {live:>8} {frac:>11}{note}")
        ratio = f"{h['streaming_time_over_full_time']:.2f}x" if h["streaming_time_over_full_time"] else "n/a"
        print(f"  -> {case}: matrix {mat:.0f} MB; streaming (chunk {h['streaming_chunk_size']}): time {ratio} the full "
              f"path, peak {h['streaming_peak_over_full_matrix']:.1%} of the matrix; same metrics: "
              f"{h['metrics_equal_across_paths']}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    from gssf.utils.io import atomic_write_json

    atomic_write_json(out, report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
