"""``gssf eval RUN_OR_CHECKPOINT --split test [--json OUT]``: evaluate a trained checkpoint."""
from __future__ import annotations

import argparse
import json

from gssf.cli.common import check_device, is_safetensors_error, reading, require_train_extra


def format_metrics(metrics: dict, one_line: bool = False) -> str:
    """The scalar metrics of an evaluator dict (lists such as ``cmc`` are left out).

    One ``name value`` row per metric, or all of them on one line joined by ``|``.
    """
    cells = [(k, f"{v:.2f}" if isinstance(v, float) else str(v))
             for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if one_line:
        return " | ".join(f"{k} {v}" for k, v in cells)
    return "\n".join(f"{k:<16}{v:>10}" for k, v in cells)


def _run(args: argparse.Namespace) -> int:
    check_device(args.device)
    require_train_extra("gssf eval")
    from gssf.train import evaluate_checkpoint
    from gssf.train.checkpoint import resolve_checkpoint
    from gssf.utils.io import atomic_write_json

    # The weights are the one binary file read here: a damaged one must be named (safetensors' own
    # error does not say which file it was reading).
    weights = str(resolve_checkpoint(args.checkpoint))[: -len(".json")] + ".safetensors"
    with reading(weights, "checkpoint weights", catch=is_safetensors_error):
        metrics = evaluate_checkpoint(
            args.checkpoint, split=args.split, device=args.device, data_root=args.data_root, chunk_size=args.chunk_size
        )
    if args.json:
        atomic_write_json(args.json, metrics)
    if args.print_json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{args.checkpoint} on split {args.split!r}:")
        print(format_metrics(metrics))
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
