"""``gssf demo``: train every compared similarity on real data and write the report."""
from __future__ import annotations

import argparse
from pathlib import Path

from gssf.cli.common import require_train_extra
from gssf.utils.optional import require

# The demo's default seeds (gssf.demo.run.DEFAULT_SEEDS), repeated so that `gssf --help` needs no torch
# (tests/demo check that the two agree).
_DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def _run(args: argparse.Namespace) -> int:
    require_train_extra("gssf demo")
    require("PIL", "data", "gssf demo")  # the demo's datasets are images
    from gssf.demo import DEFAULT_TASKS, DEMO_TASKS, run_demo
    from gssf.demo.run import DEFAULT_MEMBERS
    from gssf.demo.run import command_line, suite_tasks

    if args.ablation:
        from gssf.demo.ablation import run_ablation

        run_ablation(preset=args.ablation, out_dir=Path(args.out) / "ablation", extra_overrides=list(args.set or []))
        return 0

    if args.suite and args.tasks:
        raise SystemExit("gssf demo: error: give --tasks or --suite, not both")
    if args.suite:
        tasks = suite_tasks(args.suite)
    # A plain `gssf demo` (no --tasks, --suite, --similarities or --publish) leads with the clearest
    # measured setting, a few of its members (DEFAULT_MEMBERS), then tux; otherwise the default task is tux.
    plain = not args.tasks and not args.suite and args.similarities is None and args.publish is None
    if not args.suite:
        tasks = list(DEMO_TASKS) if args.tasks == ["all"] else (args.tasks or list(DEFAULT_TASKS if plain else ("tux",)))
    overrides = list(args.set or [])
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    # summary.json names the command: every option that changes the numbers, 'all' kept as typed
    tune = False if args.tune is None else (True if not args.tune else list(args.tune))
    named = ["all"] if args.tasks == ["all"] else tasks
    command = command_line(named, args.seeds, args.similarities, overrides, tune, suite=args.suite)
    if plain:
        command = command.replace(f"--tasks {' '.join(tasks)} ", "", 1)
    run_demo(
        tasks=tasks,
        seeds=args.seeds,
        similarities=args.similarities,
        out_dir=Path(args.out),
        overrides=overrides,
        progress=not args.no_progress,
        figures=not args.no_figures,
        command=command,
        publish=None if args.publish is None else Path(args.publish),
        tune=tune,
        members=DEFAULT_MEMBERS if plain else None,
    )
    return 0


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="compare cosine, GSSF and the rest on real data; writes runs/demo/report.html",
        description="Prepare the data, train every similarity of each task on identical splits, features and "
        "seeds, evaluate the validation-selected checkpoint on the test split, and write report.json/.txt/.html "
        "with figures and summary.json (mean ± std over seeds, 95% bootstrap CIs, paired differences to cosine). "
        "Finished runs are reused, interrupted ones resumed.",
    )
    p.add_argument("--tasks", nargs="+", metavar="TASK",
                   help="tasks to run (default: tux; a plain `gssf demo` first runs emoji-reid-frozen with cosine, "
                   "gssf and mahalanobis, the clearest measured setting); 'all' runs every registered task")
    p.add_argument("--suite", choices=("settings",),
                   help="a group of tasks instead of --tasks: 'settings' runs every task of every setting other "
                   "than trainable heads (frozen, ...)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(_DEFAULT_SEEDS),
                   help=f"seeds (default {' '.join(map(str, _DEFAULT_SEEDS))})")
    p.add_argument("--similarities", nargs="+", metavar="NAME",
                   help="restrict the compared similarities (cosine, the baseline of the differences, always runs)")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--epochs", type=int, help="override train.epochs of every run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override applied to every run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--publish", nargs="?", const="docs", metavar="DOCS",
                   help="also write DOCS/results/summary.json and regenerate the marked section of DOCS/results.md "
                   "(default DOCS: docs); e.g. gssf demo --tasks all --publish")
    p.add_argument("--tune", nargs="*", metavar="TASK",
                   help="first choose each learnable member's similarity learning rate on the validation split "
                   "(x1/3, x1, x3 of the preset's, tuning seed 100; the same budget for every member): of every "
                   "task, or of the TASKs named (the others run untuned)")
    p.add_argument("--ablation", metavar="PRESET",
                   help="instead of the demo, tune on the validation split of PRESET (e.g. tux)")
    p.set_defaults(func=_run)
    return p
