"""``gssf features``: extract (or reuse) cached features of a dataset.

    gssf features extract --dataset tux --image-encoder efficientnet-lite0 \\
        --text-encoder minilm --resolution 224
    gssf features extract --dataset flickr30k --root /data/f30k --split test --output out/
    gssf features info out/test/features.npz
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, List

from gssf.cli.common import check_device, is_decode_error, reading
from gssf.utils.optional import require


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("features", help="extract and cache encoder features", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    # --home (here and on every action) comes from gssf.cli.main, shared by the commands that read the data home
    sub = p.add_subparsers(dest="features_command", metavar="ACTION")

    pe = sub.add_parser("extract", help="encode a dataset's splits (cached: a second call reuses them)")
    pe.add_argument("--dataset", required=True, help="a name from `gssf data list`")
    pe.add_argument("--split", action="append", default=None,
                    help="split(s) to extract, repeatable or comma-separated (default: all of the dataset's)")  # fmt: skip
    pe.add_argument("--root", default=None, help="folder of your copy (standard datasets)")
    pe.add_argument("--image-encoder", default="efficientnet-lite0")
    pe.add_argument("--text-encoder", default="minilm")
    pe.add_argument("--resolution", type=int, default=224, help="image encoder input size in pixels")
    pe.add_argument("--device", default="cpu", help="cpu or cuda")
    pe.add_argument("--batch-size", type=int, default=None)
    pe.add_argument("--limit", type=int, default=None, help="first N images of each split only")
    pe.add_argument("--force", action="store_true", help="recompute even if cached")
    pe.add_argument("--output", default=None, help="also write OUTPUT/<split>/features.npz")
    pe.add_argument("--no-progress", action="store_true")
    pe.set_defaults(func=_extract)

    pi = sub.add_parser("info", help="describe a features.npz file")
    pi.add_argument("path")
    pi.set_defaults(func=_info)

    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
    return p


def _splits(args: argparse.Namespace, all_splits: List[str]) -> List[str]:
    if not args.split:
        return list(all_splits)
    out: List[str] = []
    for item in args.split:
        out.extend(s for s in item.split(",") if s)
    return out


def _extract(args: argparse.Namespace) -> int:
    check_device(args.device)
    require("numpy", "data", "gssf features")
    from gssf.data import get_dataset_info
    from gssf.features import get_features

    info = get_dataset_info(args.dataset)
    total_img = total_txt = 0
    for split in _splits(args, list(info.splits)):
        fs = get_features(
            args.dataset,
            split,
            image_encoder=args.image_encoder,
            text_encoder=args.text_encoder,
            resolution=args.resolution,
            data_home=args.home,
            progress=not args.no_progress,
            device=args.device,
            root=args.root,
            batch_size=args.batch_size,
            limit=args.limit,
            force=args.force,
        )
        states = [f"{m} {'cached' if fs.meta[m].get('cached') else fs.meta[m].get('source', 'extracted')}"
                  for m in ("image", "text") if m in fs.meta]  # fmt: skip
        print(f"{fs.summary()}; {', '.join(states)} in {fs.meta['seconds']:.1f} s")
        for m in ("image", "text"):
            if "cache" in fs.meta.get(m, {}):
                print(f"  {m}: {fs.meta[m]['cache']}")
        if args.output:
            out = fs.save(Path(args.output) / split / "features.npz")
            print(f"  wrote {out}")
        total_img += fs.num_images
        total_txt += fs.num_texts
    print(f"total: {total_img} images, {total_txt} captions")
    return 0


def _info(args: argparse.Namespace) -> int:
    require("numpy", "data", "gssf features")
    from gssf.features import load_features_file

    with reading(args.path, "features file", catch=is_decode_error):  # its other errors name the file already
        fs = load_features_file(args.path)
    print(fs.summary())
    for key in ("dataset", "split", "image", "text"):
        if key in fs.meta:
            print(f"  {key}: {fs.meta[key]}")
    return 0
