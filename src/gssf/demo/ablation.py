"""Validation-only tuning of the demo's settings (``gssf demo --ablation``).

Every setting is trained with tuning seeds (distinct from the seeds the demo reports)
and scored on the **validation** split only; the test split is never read. The result
is a table per stage: stage 1 sweeps the similarity learning rate of every learnable
member (the shared head settings stay fixed), stage 2 sweeps GSSF's structure (block
size, block parameterisation, bound) at its selected learning rate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

from gssf.demo.progress import RunProgress
from gssf.demo.report import mean_std
from gssf.utils.io import atomic_write_json

__all__ = ["default_grid", "run_ablation", "format_ablation"]

LEARNABLE = ("diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic")
LRS = (0.003, 0.01, 0.03, 0.1)


def default_grid(embed_dim: int = 256) -> List[Tuple[str, str, List[str]]]:
    """Stage-1 settings: ``(stage, label, overrides)`` for every learnable member and lr."""
    grid = [("lr", "cosine", ["similarity.name=cosine"])]
    for sim in LEARNABLE:
        for lr in LRS:
            grid.append(("lr", f"{sim} lr={lr}", [f"similarity.name={sim}", f"optim.similarity_lr={lr}"]))
    return grid


def structure_grid(lr: float, embed_dim: int = 256) -> List[Tuple[str, str, List[str]]]:
    """Stage-2 settings: GSSF structure at learning rate ``lr``."""
    base = ["similarity.name=gssf", f"optim.similarity_lr={lr}"]
    grid = []
    for b in (4, 16, 64):
        if embed_dim % b == 0:
            grid.append(("structure", f"gssf block_size={b}", base + [f"similarity.kwargs.block_size={b}"]))
    for par, extra in (("lowrank", ["similarity.kwargs.rank=4"]), ("scalar", [])):
        grid.append(("structure", f"gssf {par}", base + [f"similarity.kwargs.parameterization={par}"] + extra))
    for bound in (0.5, 2.0):
        grid.append(("structure", f"gssf bound={bound}", base + [f"similarity.kwargs.bound={bound}"]))
    grid.append(("structure", "gssf w_max=4", base + ["similarity.kwargs.w_max=4.0"]))
    return grid


def _val_metric(preset: str, overrides: Sequence[str], seed: int, run_dir: Path, metric: str) -> float:
    from gssf.train import load_config, run

    cfg = load_config(preset, overrides=[*overrides, f"train.seed={seed}", "eval.test=false"])
    res = run(cfg, run_dir, progress=False)
    return float(res["val"][metric])


def run_ablation(
    preset: str = "tux",
    seeds: Sequence[int] = (100, 101),
    out_dir: Path = Path("runs/ablation"),
    metric: str = "rsum",
    extra_overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Dict[str, Any]:
    """Run both stages; returns and writes ``ablation.json`` (validation metrics only).

    Each finished run logs one line (a bar counts them when stderr is a terminal and
    ``progress``), each finished setting its mean ± std.
    """
    out_dir = Path(out_dir)
    rows: List[Dict[str, Any]] = []

    def stage(grid: List[Tuple[str, str, List[str]]]) -> None:
        with RunProgress(len(grid) * len(seeds), f"ablation {grid[0][0]}", log, enabled=progress) as bar:
            for st, label, ov in grid:
                vals = []
                for seed in seeds:
                    bar.start(f"{label} seed {seed}")
                    run_dir = out_dir / st / label.replace(" ", "_").replace("=", "-") / f"seed{seed}"
                    vals.append(_val_metric(preset, [*ov, *extra_overrides], seed, run_dir, metric))
                    bar.done(f"  {st:<10}{label:<32} seed {seed}: val {metric} {vals[-1]:7.2f}")
                ms = mean_std(vals)
                rows.append({"stage": st, "setting": label, "overrides": ov, "values": vals, **ms})
                bar.note(f"  {st:<10}{label:<32} val {metric} {ms['mean']:7.2f} ± {ms['std']:.2f}")

    stage(default_grid())
    best_lr: Dict[str, float] = {}
    for sim in LEARNABLE:
        cands = [r for r in rows if r["setting"].startswith(f"{sim} lr=")]
        best = max(cands, key=lambda r: r["mean"])
        best_lr[sim] = float(best["setting"].split("lr=")[1])
    log(f"selected similarity learning rates (validation): {best_lr}")
    stage(structure_grid(best_lr["gssf"]))
    result = {"preset": preset, "metric": metric, "split": "val", "seeds": list(seeds),
              "selected_similarity_lr": best_lr, "rows": rows}
    atomic_write_json(out_dir / "ablation.json", result)
    log(format_ablation(result))
    return result


def format_ablation(result: Dict[str, Any]) -> str:
    """A Markdown table of the ablation (validation metric, mean ± std over tuning seeds)."""
    m = result["metric"]
    lines = [f"| stage | setting | val {m} (mean ± std over seeds {result['seeds']}) |", "|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['stage']} | {r['setting']} | {r['mean']:.2f} ± {r['std']:.2f} |")
    return "\n".join(lines)
