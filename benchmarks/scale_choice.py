"""Validation-only choice of the scale mechanism (``similarity.kwargs.scale``).

Each learnable member with a matrix term is trained with every scale mechanism
(``spectral``, ``frobenius``, ``entrywise``) and the same grid of similarity learning
rates, on tuning seeds, and scored on the **validation** split only (the test split is
never evaluated). Two settings:

* ``emoji-reid-frozen``: frozen EfficientNet-Lite0 features (identity head, D = 1280), only
  the similarity learns (batch-hard triplet); here the similarity is all that can help;
* ``tux-head``: the Tux Paint preset (linear heads to 256-d, InfoNCE).

For each (setting, member, scale) the best learning rate is picked on the validation
mean; the table reports that mean ± std over seeds, with cosine as the reference.
Prints a table and writes ``benchmarks/results/scale_choice.json``.

    python benchmarks/scale_choice.py [--settings emoji-reid-frozen tux-head] [--seeds 100 101 102]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from gssf.train import load_config, run
from gssf.utils.io import atomic_write_json

SETTINGS: Dict[str, Dict[str, Any]] = {
    "emoji-reid-frozen": {
        "preset": "emoji-reid",
        "metric": "mAP",
        "overrides": [
            "model.head=identity", "model.embed_dim=1280", "loss.name=triplet", "eval.rerank=false",
            "train.epochs=15", "optim.warmup_epochs=0",
        ],
        "members": {"gssf": ["similarity.kwargs={block_size: 16}"], "bilinear": ["similarity.kwargs={}"]},
    },
    "tux-head": {
        "preset": "tux",
        "metric": "rsum",
        "overrides": [],
        "members": {"block_diagonal": ["similarity.kwargs={}"], "gssf": ["similarity.kwargs={}"],
                    "bilinear": ["similarity.kwargs={}"]},
    },
}
SCALES = ("spectral", "frobenius", "entrywise")
LRS = (0.01, 0.03)


def _val(setting: Dict[str, Any], overrides: List[str], seed: int, run_dir: Path) -> float:
    cfg = load_config(setting["preset"], overrides=[*setting["overrides"], *overrides, f"train.seed={seed}",
                                                    "eval.test=false"])
    if (run_dir / "results.json").exists():
        res = json.loads((run_dir / "results.json").read_text())
    else:
        resume = (run_dir / "checkpoints" / "last.json").exists()  # a run cut short continues
        res = run(cfg, run_dir, progress=False, quiet=True, resume=resume)
    return float(res["val"][setting["metric"]])


def main(argv: Sequence[str] = ()) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=["emoji-reid-frozen"], choices=list(SETTINGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102])
    ap.add_argument("--lrs", nargs="+", type=float, default=list(LRS))
    ap.add_argument("--out", type=Path, default=Path("runs/scale_choice"))
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "scale_choice.json")
    args = ap.parse_args(list(argv) or None)
    rows: List[Dict[str, Any]] = []
    t0 = time.perf_counter()
    for name in args.settings:
        setting = SETTINGS[name]
        metric = setting["metric"]
        cos = [_val(setting, ["similarity.name=cosine", "similarity.kwargs={}"], s, args.out / name / "cosine" / f"s{s}")
               for s in args.seeds]
        rows.append({"setting": name, "similarity": "cosine", "scale": "-", "lr": None, "values": cos})
        print(f"{name:<18} cosine{'':<26} val {metric} {statistics.mean(cos):7.2f}", flush=True)
        for member, extra in setting["members"].items():
            for scale in SCALES:
                best: Dict[str, Any] = {}
                for lr in args.lrs:
                    ov = [f"similarity.name={member}", *extra, f"similarity.kwargs.scale={scale}",
                          f"optim.similarity_lr={lr}"]
                    vals = [_val(setting, ov, s, args.out / name / member / scale / f"lr{lr}" / f"s{s}")
                            for s in args.seeds]
                    if not best or statistics.mean(vals) > statistics.mean(best["values"]):
                        best = {"setting": name, "similarity": member, "scale": scale, "lr": lr, "values": vals}
                rows.append(best)
                m, sd = statistics.mean(best["values"]), statistics.stdev(best["values"])
                print(f"{name:<18} {member:<15} {scale:<10} lr {best['lr']:<6} val {metric} {m:7.2f} ± {sd:.2f}",
                      flush=True)
    for r in rows:
        r["mean"] = statistics.mean(r["values"])
        r["std"] = statistics.stdev(r["values"]) if len(r["values"]) > 1 else 0.0
    result = {"command": "python benchmarks/scale_choice.py " + " ".join(argv), "split": "val",
              "seeds": args.seeds, "lrs": args.lrs, "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
