"""Benchmark: time of the N x M score matrix of every similarity relative to cosine.

For each size (N, M, D) every member is timed in the same run, interleaved round by
round (this machine is noisy, so only ratios measured together are compared); the
reported time is the median over rounds. Also reported: GFLOP/s of the cosine matrix
multiply and the peak memory of the full and the chunked path (each measured in a fresh
subprocess as the growth of its peak resident set size, VmHWM).

``gssf_dynamic`` (``2h + 1`` bilinear forms in one GEMM, h = 16) is timed in full; its
target is ``(2h + 2) = 34x`` cosine or less. ``gssf_dynamic_mlp`` (the first release's MLP
per pair) is far too slow for the full sizes on a CPU: it is timed on a slice of the
queries and the full time is extrapolated linearly in N (its cost is exactly linear in the
number of query rows); the JSON marks it ``extrapolated``.

Usage: ``python benchmarks/similarity.py [--sizes 1000x5000x256 1000x5000x1024 5000x25000x1024] [--rounds 3]``
Writes ``benchmarks/results/similarity.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch

import gssf
from gssf.utils.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "similarity.json"
DYNAMIC_ROWS = 16  # query rows actually scored by the members of EXTRAPOLATED
EXTRAPOLATED = {"gssf_dynamic_mlp"}


def parse_size(text: str) -> Tuple[int, int, int]:
    n, m, d = (int(v) for v in text.lower().split("x"))
    return n, m, d


def make_member(name: str, dim: int) -> gssf.Similarity:
    sim = gssf.create_similarity(name, dim=dim)
    # Move parameters off their initial values: timing must not depend on zeros.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return sim.eval()


def time_once(sim: gssf.Similarity, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        t0 = time.perf_counter()
        out = sim(x, y)
        elapsed = time.perf_counter() - t0
    del out
    return elapsed


def bench_times(size: Tuple[int, int, int], names: List[str], rounds: int) -> Dict[str, Dict[str, float]]:
    n, m, d = size
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    sims = {name: make_member(name, d) for name in names}
    times: Dict[str, List[float]] = {name: [] for name in names}
    for name in names:  # warm-up (allocator, threads)
        time_once(sims[name], x[:DYNAMIC_ROWS], y[:256])
    for _ in range(rounds):
        for name in names:
            if name not in EXTRAPOLATED:
                times[name].append(time_once(sims[name], x, y))
            else:
                part = time_once(sims[name], x[:DYNAMIC_ROWS], y)
                times[name].append(part * n / DYNAMIC_ROWS)
    cos = statistics.median(times["cosine"])
    out = {}
    for name in names:
        med = statistics.median(times[name])
        out[name] = {
            "seconds": med,
            "ratio_to_cosine": med / cos,
            "extrapolated": name in EXTRAPOLATED,
            "params": sims[name].num_parameters,
        }
    out["cosine"]["gflops"] = 2.0 * n * m * d / cos / 1e9
    return out


def peak_rss_bytes() -> int:
    """Peak resident set size of this process's address space (VmHWM).

    Not ``getrusage().ru_maxrss``: Linux carries that over from the parent across
    fork/exec, so a child would report the parent's peak.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # non-Linux fallback


def _rss_child(name: str, size: str, path: str, chunk: int) -> None:
    """Run inside a subprocess: print the RSS growth (bytes) of one scoring path."""
    n, m, d = parse_size(size)
    sim = make_member(name, d)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
    if name in EXTRAPOLATED:
        x = x[:DYNAMIC_ROWS]
    base = peak_rss_bytes()
    with torch.no_grad():
        if path == "full":
            top = torch.topk(sim(x, y), k=10, dim=1).indices
        else:
            top = torch.cat([torch.topk(b, k=10, dim=1).indices for _, b in sim.score_chunks(x, y, chunk)])
    peak = peak_rss_bytes()
    assert top.shape == (x.shape[0], 10)
    print(json.dumps({"rss_growth_bytes": peak - base}))


def bench_memory(size: Tuple[int, int, int], names: List[str], chunk: int) -> Dict[str, Dict[str, float]]:
    n, m, d = size
    out = {}
    for name in names:
        row = {}
        for path in ("full", "chunked"):
            cmd = [sys.executable, __file__, "--child", name, f"{n}x{m}x{d}", path, str(chunk)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row[f"{path}_peak_mb"] = json.loads(res.stdout.strip().splitlines()[-1])["rss_growth_bytes"] / 2**20
        out[name] = row
    return out


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["1000x5000x256", "1000x5000x1024", "5000x25000x1024"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=512, help="query rows per chunk for the chunked path")
    parser.add_argument("--members", nargs="+", default=gssf.list_similarities())
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _rss_child(args.child[0], args.child[1], args.child[2], int(args.child[3]))
        return 0
    torch.set_num_threads(os.cpu_count() or 1)
    names = ["cosine"] + [n for n in args.members if n != "cosine"]
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "rounds": args.rounds,
        "chunk": args.chunk,
        "sizes": {},
    }
    for text in args.sizes:
        size = parse_size(text)
        times = bench_times(size, names, args.rounds)
        mem = bench_memory(size, names, args.chunk)
        full_matrix_mb = size[0] * size[1] * 4 / 2**20
        report["sizes"][text] = {"full_matrix_fp32_mb": full_matrix_mb, "members": {
            name: {**times[name], **mem[name]} for name in names}}
        print(f"\n(N, M, D) = {size}   cosine matmul: {times['cosine']['gflops']:.1f} GFLOP/s   "
              f"full fp32 matrix: {full_matrix_mb:.0f} MB   chunk = {args.chunk} rows")
        print(f"{'member':<16}{'params':>11}{'seconds':>10}{'x cosine':>10}{'full MB':>10}{'chunked MB':>12}")
        for name in names:
            r = report["sizes"][text]["members"][name]
            flag = " (extrapolated from %d rows)" % DYNAMIC_ROWS if r["extrapolated"] else ""
            print(f"{name:<16}{r['params']:>11,}{r['seconds']:>10.3f}{r['ratio_to_cosine']:>10.3f}"
                  f"{r['full_peak_mb']:>10.0f}{r['chunked_peak_mb']:>12.0f}{flag}")
    atomic_write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
