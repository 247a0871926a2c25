"""``gssf serve IDX [--port 8000]``: a local search page over an index."""
from __future__ import annotations

import argparse

from gssf.utils.optional import require


def _run(args: argparse.Namespace) -> int:
    require("starlette", "serve", "gssf serve")
    require("uvicorn", "serve", "gssf serve")
    from gssf.index import SearchIndex
    from gssf.serve import serve

    SearchIndex(args.index)  # a damaged index fails here, before the server starts
    print(f"serving {args.index} on http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    serve(args.index, port=args.port, host=args.host)
    return 0


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser("serve", help="a local web page to search an index",
                       description="Serve a search page over an index (gssf index build) on this machine.")  # fmt: skip
    p.add_argument("index", help="an index folder")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.set_defaults(func=_run)
    return p
