"""``gssf similarities``: list the registry with parameter counts and cost for a dimension."""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List

from gssf.similarity import create_similarity, get_similarity_class, list_similarities


def describe_similarities(dim: int, **kwargs: Any) -> List[Dict[str, Any]]:
    """One row per registered similarity built at ``dim`` with default settings."""
    rows = []
    for name in list_similarities():
        cls = get_similarity_class(name)
        sim = create_similarity(name, dim=dim, **(kwargs if cls.requires_dim else {}))
        rows.append(
            {
                "name": name,
                "params": sim.num_parameters,
                "static": cls.is_static,
                "flops_per_pair": sim.flops_per_pair(dim),
                "score_bound": float(sim.score_bound),
                "doc": (cls.__doc__ or "").strip().splitlines()[0],
            }
        )
    return rows


def _run(args: argparse.Namespace) -> int:
    rows = describe_similarities(args.dim)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<16}{'params':>10}{'static':>8}{'flops/pair':>12}  description   (dim={args.dim})")
    for r in rows:
        print(f"{r['name']:<16}{r['params']:>10,}{'yes' if r['static'] else 'no':>8}{r['flops_per_pair']:>12,}  {r['doc']}")
    return 0


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser("similarities", help="list the similarity registry with parameter counts")
    p.add_argument("--dim", type=int, default=1024, help="feature dimension to size the members for (default 1024)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run)
    return p
