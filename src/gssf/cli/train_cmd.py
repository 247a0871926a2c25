"""``gssf train CONFIG [--set key=value ...]``: train a similarity with a preset or YAML config.

Run data-parallel with ``torchrun --nproc_per_node N -m gssf.cli.main train CONFIG``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from gssf.cli.common import check_device, require_train_extra
from gssf.cli.eval_cmd import format_metrics
from gssf.errors import CLIError


def _default_run_dir(config: str) -> Path:
    return Path("runs") / Path(config).stem


def _run(args: argparse.Namespace) -> int:
    require_train_extra("gssf train")
    from gssf.train import config_to_yaml, list_presets, load_config, run

    if args.list_presets:
        print("\n".join(list_presets()))
        return 0
    resume_dir: Optional[Path] = None
    for flag, value in (("--run-dir", args.run_dir), ("--resume", args.resume)):
        if isinstance(value, str) and not value.strip():
            raise CLIError(f"{flag} is empty: name a folder for the run")
    if isinstance(args.resume, str):
        resume_dir = Path(args.resume)
        if args.run_dir is not None and Path(args.run_dir) != resume_dir:
            raise CLIError(f"--resume {args.resume} and --run-dir {args.run_dir} name different folders")
    run_dir = Path(args.run_dir) if args.run_dir is not None else resume_dir
    config = args.config
    if config is None:
        if run_dir is None:
            raise CLIError("give a CONFIG (a preset name or a YAML file), or --resume RUN_DIR")
        config = str(run_dir / "config.yaml")
        if not Path(config).is_file():
            raise FileNotFoundError(f"no config.yaml in {run_dir} to resume from; pass the CONFIG too")
    cfg = load_config(config, overrides=args.set or [])
    if args.print_config:
        sys.stdout.write(config_to_yaml(cfg))
        return 0
    check_device(cfg.train.device, where="config key train.device", allow_auto=True)
    if run_dir is None:
        run_dir = _default_run_dir(config)
    results = run(cfg, run_dir, progress=not args.no_progress, resume=args.resume is not False)
    metric = results.get("metric", "")
    val = (results.get("val") or {}).get(metric)
    test = (results.get("test") or {}).get(metric)
    parts = [f"run folder: {run_dir}", f"best epoch {results.get('best_epoch')}"]
    if val is not None:
        parts.append(f"val {metric} {val:.2f}")
    if test is not None:
        parts.append(f"test {metric} {test:.2f}")
    parts.append(f"{results['train_seconds']:.1f} s")
    print(" | ".join(parts))
    for split in ("val", "test"):  # every scalar protocol metric; lists (cmc) stay in results.json
        line = format_metrics(results.get(split) or {}, one_line=True)
        if line:
            print(f"{split}: {line}")
    return 0


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a similarity (and heads) from a preset or YAML config",
        description="Train with a preset (configs/<name>.yaml) or a YAML file; --set overrides single keys.",
        epilog="examples: gssf train tux --set similarity.name=cosine --run-dir runs/cos | "
        "gssf train --resume runs/cos | gssf train tux --print-config",
    )
    p.add_argument("config", nargs="?", help="preset name (see --list-presets) or path to a YAML config")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.embed_dim=256 --set similarity.kwargs.num_blocks=8 (repeatable)",
    )
    p.add_argument("--run-dir", help="run folder (default: runs/<config name>)")
    p.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
        help="continue the run in --run-dir (or RUN_DIR) from its last checkpoint",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--list-presets", action="store_true", help="list the config presets and exit")
    p.set_defaults(func=_run)
    return p
