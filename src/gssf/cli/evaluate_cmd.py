"""``gssf evaluate``: metrics of a saved score matrix under one of the three protocols.

Examples::

    gssf evaluate image-text --scores S.npy --txt2img T.npy --folds 5 --json coco1k.json
    gssf evaluate reid --scores S.npy --query-pids qp.npy --gallery-pids gp.npy \\
        --query-cams qc.npy --gallery-cams gc.npy --rerank --qq-scores QQ.npy --gg-scores GG.npy
    gssf evaluate retrieval --scores S.npy --query-labels labels.npy

Scores are ``.npy`` matrices, larger = more similar (``--distance`` for a distance
matrix). Label files are ``.npy`` or text files with one value per line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List

from gssf.cli.common import reading
from gssf.utils.optional import require

if TYPE_CHECKING:  # numpy is imported when the command runs: `gssf --help` works without it
    import numpy as np

__all__ = ["add_parser", "format_table", "run"]


def _numpy() -> Any:
    return require("numpy", "train", "gssf evaluate")


def _existing_file(path: str, what: str, suffixes: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(21, f"{what} must be a {suffixes} file, not a folder", path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return p


def _load_scores(path: str, distance: bool, what: str = "scores") -> "np.ndarray":
    np = _numpy()
    p = _existing_file(path, what, ".npy")
    if p.suffix != ".npy":
        raise ValueError(f"{what} must be a .npy file, got {path}")
    with reading(path, f"{what} file"):
        # Memory-mapped: the evaluation reads it block by block. No pickles: the file may come from anyone.
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    if arr.ndim != 2:
        raise ValueError(f"{what} in {path} must be a 2-D matrix, got shape {arr.shape}")
    return -np.asarray(arr, dtype=np.float64 if arr.dtype == np.float64 else np.float32) if distance else arr


def _load_labels(path: str, what: str) -> "np.ndarray":
    np = _numpy()
    p = _existing_file(path, what, ".npy or text")
    if p.suffix == ".npz":
        raise ValueError(f"{what} must be a .npy file or a text file with one value per line, got the archive {path}")
    with reading(path, f"{what} file"):
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
            try:
                arr = np.asarray([int(v) for v in lines])
            except ValueError:
                arr = np.asarray(lines)  # string class names
    arr = np.asarray(arr)
    if arr.ndim == 2 and 1 in arr.shape:  # a saved column or row vector
        arr = arr.reshape(-1)
    return arr


def format_table(result: Dict[str, Any]) -> str:
    """Two-column text table of the scalar metrics (per-fold columns when present)."""
    folds: List[Dict[str, Any]] = result.get("folds", [])
    scalars = [k for k, v in result.items() if isinstance(v, (int, float))]
    header = ["metric", "value"] + [f"fold {i}" for i in range(len(folds))]
    rows = [header]
    for k in scalars:
        cells = [k, _fmt(result[k])] + [_fmt(f[k]) if k in f else "" for f in folds]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return str(v) if isinstance(v, int) else f"{v:.2f}"


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, optionally write JSON; returns the exit code."""
    np = _numpy()
    from gssf.evaluation import image_text_metrics, k_reciprocal_rerank_from_scores, reid_metrics, retrieval_metrics
    from gssf.utils.io import atomic_write_json

    scores = _load_scores(args.scores, args.distance)
    if args.protocol == "image-text":
        result = image_text_metrics(
            scores, _load_labels(args.txt2img, "txt2img"), ks=tuple(args.ks or (1, 5, 10)), folds=args.folds
        )
    elif args.protocol == "reid":
        labels = [
            _load_labels(getattr(args, name), name)
            for name in ("query_pids", "gallery_pids", "query_cams", "gallery_cams")
        ]
        ks = tuple(args.ks or (1, 5, 10))
        result = reid_metrics(scores, *labels, max_rank=args.max_rank, ks=ks, ap=args.ap)
        if args.rerank:
            if not (args.qq_scores and args.gg_scores):
                raise ValueError("--rerank needs --qq-scores and --gg-scores (query x query, gallery x gallery)")
            qq = _load_scores(args.qq_scores, args.distance, "--qq-scores")
            gg = _load_scores(args.gg_scores, args.distance, "--gg-scores")
            reranked = k_reciprocal_rerank_from_scores(
                np.asarray(scores), np.asarray(qq), np.asarray(gg), k1=args.k1, k2=args.k2, lambda_value=args.lambda_value
            )
            again = reid_metrics(reranked, *labels, max_rank=args.max_rank, ks=ks, ap=args.ap)
            result.update({f"rerank_{k}": v for k, v in again.items()})
    else:
        gallery = _load_labels(args.gallery_labels, "gallery labels") if args.gallery_labels else None
        result = retrieval_metrics(
            scores, _load_labels(args.query_labels, "query labels"), gallery, ks=tuple(args.ks or (1, 2, 4, 8))
        )
    print(format_table(result), file=sys.stdout)
    if args.json:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}", file=sys.stdout)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", required=True, help="score matrix .npy (rows = queries), larger = more similar")
    p.add_argument("--distance", action="store_true", help="the matrix holds distances (smaller = closer)")
    p.add_argument("--ks", type=int, nargs="+", help="recall cut-offs K (protocol default if omitted)")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.set_defaults(func=run)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evaluate`` with one sub-subcommand per protocol."""
    parser = subparsers.add_parser(
        "evaluate",
        help="metrics of a saved score matrix (image-text, reid, retrieval)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    proto = parser.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)

    it = proto.add_parser("image-text", help="Flickr30K / COCO: images x texts")
    _common(it)
    it.add_argument("--txt2img", required=True, help="image index of every text (column)")
    it.add_argument("--folds", type=int, help="average over F consecutive image folds (COCO 1K: 5)")

    re_ = proto.add_parser("reid", help="person re-ID: queries x gallery")
    _common(re_)
    for name in ("query-pids", "gallery-pids", "query-cams", "gallery-cams"):
        re_.add_argument(f"--{name}", required=True, help=f"{name.replace('-', ' ')} (pid -1 = junk)")
    re_.add_argument("--max-rank", type=int, default=50, help="length of the CMC curve (default 50)")
    re_.add_argument("--ap", choices=("standard", "trapezoid"), default="standard", help="AP rule")
    re_.add_argument("--rerank", action="store_true", help="also report k-reciprocal re-ranked metrics")
    re_.add_argument("--qq-scores", help="query x query scores .npy (for --rerank)")
    re_.add_argument("--gg-scores", help="gallery x gallery scores .npy (for --rerank)")
    re_.add_argument("--k1", type=int, default=20)
    re_.add_argument("--k2", type=int, default=6)
    re_.add_argument("--lambda", dest="lambda_value", type=float, default=0.3)

    rt = proto.add_parser("retrieval", help="metric learning: leave-one-out or queries x gallery")
    _common(rt)
    rt.add_argument("--query-labels", required=True, help="class of every row")
    rt.add_argument("--gallery-labels", help="class of every column (omit for leave-one-out)")
    return parser
