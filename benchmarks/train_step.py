"""Benchmark: time of one training step of each similarity relative to cosine, on real presets.

For every preset (default ``tux`` and ``emoji-reid``: cached EfficientNet-Lite0 /
MiniLM features, linear heads, the preset's loss and batch size) a :class:`Trainer` is
built per member with identical config, data and seed (only ``similarity.name``
differs), and its real training step (forward, backward, gradient clipping, optimizer
step, projection) is timed on the same batches. Members are interleaved round by round;
the reported time is the median over rounds of the mean step time; ratios are to
cosine measured in the same run.

Usage: ``python benchmarks/train_step.py [--presets tux emoji-reid] [--steps 10] [--rounds 5]``
Writes ``benchmarks/results/train_step.json``. Needs the presets' data prepared.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

from gssf.train import load_config
from gssf.train.config_schema import loss_names
from gssf.train.trainer import Trainer
from gssf.utils.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "train_step.json"
MEMBERS = ["cosine", "gssf", "gssf_dynamic", "gssf_dynamic_mlp"]


def trainers(preset: str, members: List[str], root: Path) -> Dict[str, Trainer]:
    out = {}
    for name in members:
        cfg = load_config(preset, overrides=[f"similarity.name={name}", "similarity.kwargs={}", "train.seed=0"])
        out[name] = Trainer(cfg, root / preset / name, progress=False, quiet=True, claimed=True)
    return out


def batches(trainer: Trainer, count: int) -> List[torch.Tensor]:
    return list(trainer.sampler.batches(0))[:count]


def bench(preset: str, members: List[str], steps: int, rounds: int, root: Path) -> Dict[str, Dict[str, float]]:
    ts = trainers(preset, members, root)
    data = batches(ts[members[0]], steps)
    for t in ts.values():  # warm-up: allocator, threads, lazy feature loading
        t._train_step(data[0])
    times: Dict[str, List[float]] = {m: [] for m in members}
    for _ in range(rounds):
        for m in members:
            t0 = time.perf_counter()
            for b in data:
                ts[m]._train_step(b)
            times[m].append((time.perf_counter() - t0) / len(data))
    cos = statistics.median(times["cosine"])
    return {m: {"seconds_per_step": statistics.median(v), "ratio_to_cosine": statistics.median(v) / cos,
                "params": ts[m].model.similarity.num_parameters, "batch_size": ts[m].cfg.train.batch_size,
                "loss": "+".join(loss_names(ts[m].cfg.loss))}
            for m, v in times.items()}  # fmt: skip


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["tux", "emoji-reid"])
    p.add_argument("--members", nargs="+", default=MEMBERS)
    p.add_argument("--steps", type=int, default=10, help="batches per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    members = ["cosine"] + [m for m in args.members if m != "cosine"]
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()},
              "steps": args.steps, "rounds": args.rounds, "presets": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            rows = bench(preset, members, args.steps, args.rounds, Path(tmp))
            report["presets"][preset] = rows
            print(f"\n{preset}: one training step (batch {rows['cosine']['batch_size']}, loss {rows['cosine']['loss']})")
            print(f"{'member':<18}{'params':>10}{'ms/step':>10}{'x cosine':>10}")
            for m, r in rows.items():
                print(f"{m:<18}{r['params']:>10,}{1000 * r['seconds_per_step']:>10.1f}{r['ratio_to_cosine']:>10.2f}")
    atomic_write_json(args.out, report)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
