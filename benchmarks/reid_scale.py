"""Scale check of the streaming re-ID evaluation: 20,000 queries x 200,000 gallery items at D = 512.

Random features (seeded), Market-like labels (10,000 identities; 2 queries and 20 gallery
images each, 6 cameras), scored by ``cosine`` and by ``gssf`` (random non-identity
parameters: the timing of a trained model) through
:func:`gssf.evaluation.reid_metrics_from_embeddings`, which holds at most a
``chunk_size x N_gallery`` block of scores at a time.

Each configuration runs in a fresh subprocess. Peak memory is that process's ``VmHWM``
(``/proc/self/status``: its own high-water mark; ``ru_maxrss`` is not used because Linux lets
a child inherit the parent's value); the extra peak is ``VmHWM`` minus ``VmRSS`` just before
the evaluation (features, labels and the similarity already built). The full score matrix
(``20,000 x 200,000`` fp32 = 16 GB) is reported as computed, never materialised.

    python benchmarks/reid_scale.py                  # the full size (a few minutes on 2 cores)
    python benchmarks/reid_scale.py --quick          # 2,000 x 20,000, seconds
    python benchmarks/reid_scale.py --chunk-size 128 256

Prints a table and writes ``benchmarks/results/reid_scale.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

RESULTS = Path(__file__).resolve().parent / "results" / "reid_scale.json"
SIZES = {"full": (20_000, 200_000), "quick": (2_000, 20_000)}
DIM = 512
NUM_IDS = 10_000
NUM_CAMS = 6


def _status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def _worker(similarity: str, num_query: int, num_gallery: int, chunk: int, threads: int) -> Dict[str, Any]:
    import torch

    from gssf import create_similarity
    from gssf.evaluation import reid_metrics_from_embeddings

    if threads:
        torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    query = torch.randn(num_query, DIM, generator=g)
    gallery = torch.randn(num_gallery, DIM, generator=g)
    num_ids = min(NUM_IDS, num_query)
    qp = torch.arange(num_query) % num_ids
    gp = torch.arange(num_gallery) % num_ids
    qc = torch.randint(NUM_CAMS, (num_query,), generator=g)
    gc = torch.randint(NUM_CAMS, (num_gallery,), generator=g)
    sim = create_similarity(similarity, dim=DIM)
    with torch.no_grad():  # a trained-looking GSSF: w != 1, B != 0 (the cost is the same)
        for p in sim.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    rss_before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    labels = dict(query_pids=qp, gallery_pids=gp, query_cams=qc, gallery_cams=gc)
    out = reid_metrics_from_embeddings(query, gallery, sim, **labels, chunk_size=chunk, max_rank=50)
    seconds = time.perf_counter() - t0
    hwm = _status_kb("VmHWM")
    return {
        "similarity": similarity,
        "num_query": num_query,
        "num_gallery": num_gallery,
        "dim": DIM,
        "chunk_size": chunk,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "rss_before_mb": rss_before / 1024,
        "peak_rss_mb": hwm / 1024,
        "peak_extra_mb": (hwm - rss_before) / 1024,
        "score_block_mb": chunk * num_gallery * 4 / 2**20,
        "full_matrix_gb": num_query * num_gallery * 4 / 1e9,
        "mAP": out["mAP"],
        "R@1": out["R@1"],
        "num_valid_queries": out["num_valid_queries"],
    }


def _run_subprocess(similarity: str, nq: int, ng: int, chunk: int, threads: int) -> Dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", similarity, str(nq), str(ng), str(chunk),
           str(threads)]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - t0
    result["load_average_1min"] = os.getloadavg()[0]
    return result


def _table(runs: List[Dict[str, Any]]) -> str:
    head = f"{'similarity':<10}{'queries':>9}{'gallery':>9}{'chunk':>7}{'seconds':>9}{'peak MB':>9}{'extra MB':>10}" \
           f"{'block MB':>10}{'full GB':>9}{'mAP':>7}"
    lines = [head]
    for r in runs:
        lines.append(
            f"{r['similarity']:<10}{r['num_query']:>9,}{r['num_gallery']:>9,}{r['chunk_size']:>7}{r['seconds']:>9.1f}"
            f"{r['peak_rss_mb']:>9.0f}{r['peak_extra_mb']:>10.0f}{r['score_block_mb']:>10.0f}"
            f"{r['full_matrix_gb']:>8.1f}*{r['mAP']:>7.2f}"
        )
    lines.append("* the full score matrix, as computed (never materialised)")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 x 20,000 instead of 20,000 x 200,000")
    parser.add_argument("--similarities", nargs="+", default=["cosine", "gssf"])
    parser.add_argument("--chunk-size", nargs="+", type=int, default=[512], help="query rows scored at a time")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the worker (0 = default)")
    parser.add_argument("--json", default=str(RESULTS), help="where to write the results")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sim, nq, ng, chunk, threads = args.worker
        print(json.dumps(_worker(sim, int(nq), int(ng), int(chunk), int(threads))))
        return 0
    nq, ng = SIZES["quick" if args.quick else "full"]
    runs = []
    for chunk in args.chunk_size:
        for sim in args.similarities:
            r = _run_subprocess(sim, nq, ng, chunk, args.threads)
            print(f"{sim} chunk {chunk}: {r['seconds']:.1f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True)
            runs.append(r)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "method": "each configuration in a fresh subprocess; peak = VmHWM of that process, extra = VmHWM - VmRSS "
        "before the evaluation (random features, labels and the similarity already built); seconds = "
        "reid_metrics_from_embeddings alone; the full score matrix is reported as computed, not run",
        "labels": f"{NUM_IDS:,} identities, 2 queries and 20 gallery items each (full size), {NUM_CAMS} cameras",
        "runs": runs,
    }
    import torch

    report["machine"]["torch"] = torch.__version__
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(runs))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
