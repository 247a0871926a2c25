"""``gssf export RUN --out DIR``: a trained run as files a search system can use without gssf."""
from __future__ import annotations

import argparse

from gssf.cli.common import check_device, is_safetensors_error, reading, require_train_extra


def _run(args: argparse.Namespace) -> int:
    check_device(args.device)
    require_train_extra("gssf export")
    from gssf.export import export_run
    from gssf.train.checkpoint import resolve_checkpoint

    weights = str(resolve_checkpoint(args.run))[: -len(".json")] + ".safetensors"
    with reading(weights, "checkpoint weights", catch=is_safetensors_error):
        written = export_run(args.run, args.out, onnx=not args.no_onnx, device=args.device)
    print(f"exported {args.run} to {args.out}:")
    for what, path in written.items():
        print(f"  {what:<14}{path}")
    return 0


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "export",
        help="export a run: similarity, heads, the fold as matrices, ONNX of each side",
        description="Write the similarity (safetensors + JSON, gssf.load_similarity reads it), the heads, the fold "
        "as plain matrices (score = (normalize(x) @ query) . (normalize(y) @ gallery)) and an ONNX file per side "
        "(features -> head -> index vector; checked against eager with onnxruntime).",
    )
    p.add_argument("run", help="run folder (uses checkpoints/best), or NAME.safetensors / NAME.json")
    p.add_argument("--out", required=True, help="folder to write the export into (created)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX files (no onnx / onnxruntime needed)")
    p.add_argument("--device", default="cpu", help="device the checkpoint is loaded on (default: cpu)")
    p.set_defaults(func=_run)
    return p
