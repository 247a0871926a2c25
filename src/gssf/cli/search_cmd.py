"""``gssf search IDX "a red mushroom" -k 10`` / ``gssf search IDX --image PATH``: query an index."""
from __future__ import annotations

import argparse
import json

from gssf.errors import CLIError


def _run(args: argparse.Namespace) -> int:
    from gssf.index import SearchIndex

    if (args.text is None) == (args.image is None):
        raise CLIError("give a query text or --image PATH (one of them)")
    index = SearchIndex(args.index)
    opts = dict(cosine=args.cosine, shortlist=args.shortlist, nprobe=args.nprobe, ef_search=args.ef_search)
    hits = index.search_text(args.text, args.k, **opts) if args.text is not None else index.search_image(args.image, args.k, **opts)
    if args.json:
        print(json.dumps({"query": args.text if args.text is not None else args.image, "cosine": args.cosine,
                          "hits": SearchIndex.as_dicts(hits)}, indent=1, ensure_ascii=False))  # fmt: skip
        return 0
    how = "cosine" if args.cosine else index.manifest["similarity"]
    print(f"top {len(hits)} of {index.manifest['count']} {index.manifest['side']} items ({how}):")
    for h in hits:
        print(f"{h.rank:>4}  {h.score:8.4f}  {h.path or h.caption or h.id}")
    return 0


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser("search", help="search an index by text or image",
                       description="Rank the indexed items for a caption (text -> image) or an image (image -> "
                       "text, or image -> image for a uni-modal run) with the run's learned similarity.")  # fmt: skip
    p.add_argument("index", help="an index folder (gssf index build)")
    p.add_argument("text", nargs="?", help="the query caption")
    p.add_argument("--image", help="an image file as the query")
    p.add_argument("-k", type=int, default=10, help="results to show (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON (rank, score, index, id, path or caption)")
    p.add_argument("--cosine", action="store_true", help="score the same items by cosine of the embeddings instead")
    p.add_argument("--shortlist", type=int, default=100, help="pair-conditioned members: first-stage candidates")
    p.add_argument("--nprobe", type=int, default=8, help="ivf indexes: lists visited (default 8)")
    p.add_argument("--ef-search", type=int, default=64, help="hnsw indexes: search breadth (default 64)")
    p.set_defaults(func=_run)
    return p
