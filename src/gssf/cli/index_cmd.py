"""``gssf index build RUN --out IDX``: a faiss index of a run's gallery, searchable with ``gssf search``."""
from __future__ import annotations

import argparse

from gssf.cli.common import require_train_extra


def _build(args: argparse.Namespace) -> int:
    require_train_extra("gssf index build")
    from gssf.index import SearchIndex, build_index

    out = build_index(args.run, args.out, split=None if args.features or args.images else args.split,
                      features=args.features, images=args.images, side=args.side, kind=args.kind, nlist=args.nlist,
                      m=args.m)  # fmt: skip
    index = SearchIndex(out)
    m = index.manifest
    print(f"indexed {m['count']} {m['side']} items of {args.run} ({m['kind']}, {m['similarity']}) into {out}; "
          f"query with {m['query_side']}")  # fmt: skip
    return 0


#: gssf.index.KINDS, repeated so that `gssf --help` needs no numpy (tests/cli check that the two agree).
KINDS = ("flat", "ivf", "hnsw")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser("index", help="build a searchable faiss index of a trained run's gallery",
                       description="Index the items of a split (or of a features file) with the run's learned "
                       "similarity folded into the vectors: inner products are the learned scores.")  # fmt: skip
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    b = actions.add_parser("build", help="build an index folder", description="Build an index folder from a run.")
    b.add_argument("run", help="run folder (uses checkpoints/best), or NAME.safetensors / NAME.json")
    b.add_argument("--out", required=True, help="index folder to write (created)")
    src = b.add_mutually_exclusive_group()
    src.add_argument("--split", default="test", help="split of the run's dataset to index (default: test)")
    src.add_argument("--features", help="an .npz with 'image' (and 'text') features, optional ids/paths/captions")
    src.add_argument("--images", metavar="DIR", help="a folder of image files, encoded with the run's image encoder")
    b.add_argument("--side", help="image or text (image-text runs; default image), gallery (uni-modal)")
    b.add_argument("--kind", default="flat", choices=KINDS, help="flat (exact, default), ivf or hnsw")
    b.add_argument("--nlist", type=int, default=64, help="ivf: number of lists (default 64)")
    b.add_argument("--m", type=int, default=32, help="hnsw: links per node (default 32)")
    b.set_defaults(func=_build)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    return p
