"""Benchmark: two-stage retrieval with gssf_dynamic against exhaustive dynamic scoring.

A ``gssf_dynamic`` model is trained on the emoji-styles re-ID preset (a short schedule,
the preset otherwise; reused when its run folder is complete). Its embeddings of the
test queries (488) and gallery (3,119) are then searched

* exhaustively: the dynamic score of every (query, gallery) pair, top 10;
* in two stages for K' in {10, 50, 100, 500}: a shortlist of K' items per query from the
  static part (``gssf.search.search``, exact; ``--index faiss`` for faiss), re-scored
  with the dynamic member, top 10.

Reported per K': the search time (median over interleaved rounds), its ratio to the
exhaustive search, the fraction of the exhaustive top-10 found (recall of the
exhaustive result), and test mAP / R@1 of the re-ID protocol scored with
``gssf.search.TwoStage`` next to the exhaustive ones.

Usage: ``python benchmarks/two_stage.py [--epochs 5] [--rounds 3] [--index exact]``
Writes ``benchmarks/results/two_stage.json``. Needs ``gssf data prepare emoji-styles``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

from gssf.evaluation import reid_metrics_from_embeddings
from gssf.search import TwoStage, search
from gssf.train import load_config, load_model, run
from gssf.utils.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "two_stage.json"
SHORTLISTS = (10, 50, 100, 500)


def trained(run_dir: Path, epochs: int) -> Path:
    if not (run_dir / "results.json").is_file():
        cfg = load_config("emoji-styles", overrides=["similarity.name=gssf_dynamic", f"train.epochs={epochs}",
                                                     "train.num_threads=2"])  # fmt: skip
        run(cfg, run_dir, progress=False, resume=(run_dir / "checkpoints" / "last.json").is_file())
    return run_dir


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--index", choices=("exact", "faiss"), default="exact")
    p.add_argument("--run-dir", type=Path, default=Path("runs/bench/two_stage/emoji-styles-gssf_dynamic"))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    model, task = load_model(trained(args.run_dir, args.epochs))[:2]
    sim = model.similarity.eval()
    qd, gd = task.split("query"), task.split("gallery")
    with torch.no_grad():
        q, g = model.encode(qd.image), model.encode(gd.image)
    k = 10

    def exhaustive() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([b.topk(k, dim=1).indices for _, b in sim.score_chunks(q, g, 256)])

    runs = {"exhaustive": exhaustive}
    for kp in SHORTLISTS:
        runs[f"K'={kp}"] = (lambda kp=kp: search(sim, q, g, k=k, shortlist=kp, index=args.index)[1])
    times: Dict[str, List[float]] = {name: [] for name in runs}
    found: Dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            found[name] = fn()
            times[name].append(time.perf_counter() - t0)
    truth = found["exhaustive"]
    base = statistics.median(times["exhaustive"])
    e = task.cfg.eval

    def protocol(similarity) -> Dict[str, float]:
        with torch.no_grad():
            m = reid_metrics_from_embeddings(
                q, g, similarity, query_pids=qd.labels, gallery_pids=gd.labels, query_cams=qd.cams,
                gallery_cams=gd.cams, chunk_size=256, max_rank=e.max_rank, ks=(1, 5, 10),
            )
        return {"mAP": m["mAP"], "R@1": m["R@1"]}

    rows = {}
    for name in runs:
        hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found[name], truth))
        kp = None if name == "exhaustive" else int(name.split("=")[1])
        rows[name] = {"shortlist": kp, "seconds": statistics.median(times[name]),
                      "ratio_to_exhaustive": statistics.median(times[name]) / base,
                      "recall_of_exhaustive_top10": hits / truth.numel(),
                      **protocol(sim if kp is None else TwoStage(sim, kp))}  # fmt: skip
    with torch.no_grad():
        full, static = sim(q, g), sim.static_part()(q, g)
    dyn_part = {"gate_norm_sum": float(sim.gate_norms().sum()), "gate_bound": sim.gate_bound,
                "mean_abs_dynamic_minus_static": float((full - static).abs().mean()),
                "std_of_static_scores": float(static.std())}  # fmt: skip
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "model": {"run_dir": str(args.run_dir), "preset": "emoji-styles", "similarity": "gssf_dynamic",
                  "epochs": args.epochs, "test": json.loads((args.run_dir / "results.json").read_text())["test"]["mAP"]},
        "queries": int(q.shape[0]), "gallery": int(g.shape[0]), "k": k, "index": args.index, "rounds": args.rounds,
        "dynamic_part": dyn_part, "rows": rows,
    }  # fmt: skip
    print(f"emoji-styles test: {q.shape[0]} queries x {g.shape[0]} gallery, gssf_dynamic ({args.epochs} epochs), "
          f"first stage {args.index}")
    print(f"dynamic part: sum_k ||M_k|| = {dyn_part['gate_norm_sum']:.3f} (bound {sim.gate_bound}); mean "
          f"|s - s_static| = {dyn_part['mean_abs_dynamic_minus_static']:.4f} against a static score std of "
          f"{dyn_part['std_of_static_scores']:.4f}")
    print(f"{'search':<12}{'seconds':>9}{'x exh.':>8}{'top-10 recall':>15}{'mAP':>8}{'R@1':>8}")
    for name, r in rows.items():
        print(f"{name:<12}{r['seconds']:>9.3f}{r['ratio_to_exhaustive']:>8.3f}"
              f"{r['recall_of_exhaustive_top10']:>15.3f}{r['mAP']:>8.2f}{r['R@1']:>8.2f}")
    atomic_write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
