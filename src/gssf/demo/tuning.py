"""The same validation tuning budget for every learnable member (``gssf demo --tune``).

Before a task's reporting runs, every member with learnable similarity parameters is
trained once per similarity learning rate of a grid around the preset's value (x1/3, x1,
x3), with a tuning seed that no reported run uses, and scored on the **validation** split
only (``eval.test=false``: the test split is never read). The reporting runs of that member
then use the learning rate with the best validation metric. The grid, the validation
values and the choice are written to ``<out>/<task>/tuning.json`` and into the report.
Members without similarity parameters (cosine, euclidean) have nothing to tune; the heads'
settings are the preset's for everyone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

from gssf.utils.io import atomic_write_json

__all__ = ["FACTORS", "TUNE_SEED", "TUNING_FILE", "lr_grid", "is_learnable", "tune_task", "format_tuning"]

#: Multiples of the preset's similarity learning rate that are tried.
FACTORS: Tuple[float, ...] = (1.0 / 3.0, 1.0, 3.0)
#: The tuning seed: distinct from the reported seeds (0-4 by default).
TUNE_SEED = 100
TUNING_FILE = "tuning.json"


def lr_grid(base: float, factors: Sequence[float] = FACTORS) -> List[float]:
    """``base * f`` for every factor, to three significant digits (0.003 -> 0.001, 0.003, 0.009)."""
    if not base > 0:
        raise ValueError(f"the similarity learning rate to tune around must be positive, got {base!r}")
    return [float(f"{base * f:.3g}") for f in factors]


def is_learnable(name: str, dim: int, kwargs: Dict[str, Any]) -> bool:
    """Whether similarity ``name`` has trainable parameters."""
    from gssf.similarity import create_similarity

    return any(p.requires_grad for p in create_similarity(name, dim=dim, **kwargs).parameters())


def tune_task(
    task: Any,
    sims: Sequence[str],
    overrides: Sequence[str],
    out_dir: Path,
    train: Callable[[Any, Path], Tuple[Dict[str, Any], bool]],
    log: Callable[[str], None] = print,
    seed: int = TUNE_SEED,
) -> Dict[str, Any]:
    """Tune the similarity learning rate of each learnable member of ``task`` on validation.

    ``train(cfg, run_dir) -> (results, reused)`` trains (or reuses) one run. Returns and
    writes ``{"metric", "split", "seed", "factors", "members": {sim: {"grid", "val",
    "selected"}}}``.
    """
    from gssf.train import load_config

    metric = task.main_metric
    members: Dict[str, Any] = {}
    for sim in sims:
        key = task.member_key
        base_cfg = load_config(task.preset, overrides=[*task.overrides, f"{key}={sim}", *overrides])
        kwargs = dict(base_cfg.similarity.kwargs) if key == "similarity.name" else {}
        if not is_learnable(sim, base_cfg.model.embed_dim, kwargs):
            continue
        base = base_cfg.optim.similarity_lr if base_cfg.optim.similarity_lr is not None else base_cfg.optim.lr
        grid = lr_grid(float(base))
        values = []
        for lr in grid:
            cfg = load_config(task.preset, overrides=[
                *task.overrides, f"{key}={sim}", *overrides, f"optim.similarity_lr={lr}",
                f"train.seed={seed}", "eval.test=false",
            ])  # fmt: skip
            res, reused = train(cfg, Path(out_dir) / task.name / "tuning" / sim / f"lr{lr:g}")
            values.append(float(res["val"][metric]))
            log(f"[{task.name}] tuning {sim} similarity lr {lr:g}: val {metric} {values[-1]:.2f}"
                + ("  (reused)" if reused else ""))  # fmt: skip
        best = max(range(len(grid)), key=lambda i: (values[i], grid[i] == base))  # a tie keeps the preset's
        members[sim] = {"grid": grid, "val": values, "selected": grid[best], "preset": float(base)}
    result = {"metric": metric, "split": "val", "seed": seed, "factors": list(FACTORS), "members": members}
    atomic_write_json(Path(out_dir) / task.name / TUNING_FILE, result)
    return result


def format_tuning(tuning: Dict[str, Any]) -> str:
    """One line per task: the selected similarity learning rate of each member."""
    lines = []
    for task, t in tuning.items():
        chosen = ", ".join(f"{sim} {m['selected']:g}" for sim, m in t["members"].items())
        lines.append(f"{task}: similarity lr chosen on val {t['metric']} (seed {t['seed']}, grid x1/3, x1, x3 of "
                     f"the preset): {chosen or 'no learnable member'}")  # fmt: skip
    return "\n".join(lines)
