"""``gssf eval RUN_OR_CHECKPOINT --split test [--json OUT]``: evaluate a trained checkpoint."""
from __future__ import annotations

import argparse
import json


def _format(metrics: dict) -> str:
    rows = []
    for k, v in metrics.items():
        if isinstance(v, float):
            rows.append(f"{k:<16}{v:10.2f}")
        elif isinstance(v, int):
            rows.append(f"{k:<16}{v:10d}")
    return "\n".join(rows)


def _run(args: argparse.Namespace) -> int:
    from gssf.train import evaluate_checkpoint
    from gssf.utils.io import atomic_write_json

    metrics = evaluate_checkpoint(
        args.checkpoint, split=args.split, device=args.device, data_root=args.data_root, chunk_size=args.chunk_size
    )
    if args.json:
        atomic_write_json(args.json, metrics)
    if args.print_json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{args.checkpoint} on split {args.split!r}:")
        print(_format(metrics))
    return 0


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "eval",
        help="evaluate a run folder or checkpoint on a split",
        description="Evaluate the best checkpoint of a run folder (or a checkpoint file) on a data split.",
    )
    p.add_argument("checkpoint", help="run folder (uses checkpoints/best), or NAME.safetensors / NAME.json")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--json", metavar="OUT", help="also write the metric dict to this JSON file")
    p.add_argument("--print-json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--data-root", help="dataset root, when the data moved since training")
    p.add_argument("--chunk-size", type=int, help="query rows scored at a time")
    p.add_argument("--device", default="cpu", help="device (default: cpu)")
    p.set_defaults(func=_run)
    return p
