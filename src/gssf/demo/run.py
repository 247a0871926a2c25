"""The main demo: GSSF against cosine and its cousins on real data, in one command.

For each task, every similarity is trained with identical data, features, splits,
hyper-parameters and seeds (only ``similarity.name`` differs), the checkpoint with the
best validation metric is evaluated on the test split, and a report is written:
``report.json``, ``report.txt``, ``report.html`` and PNG figures under ``figures/``.

Runs are resumable: a run whose ``results.json`` exists with the same resolved config is
reused, one cut short continues from its last checkpoint.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from gssf.demo.progress import RunProgress
from gssf.utils.io import atomic_write_json

__all__ = ["DemoTask", "DEMO_TASKS", "DEFAULT_TASKS", "run_demo"]


@dataclass(frozen=True)
class DemoTask:
    """A task of the demo: a preset and the similarities compared on it."""

    name: str
    preset: str
    datasets: Sequence[str]
    similarities: Sequence[str]
    description: str
    main_metric: str
    overrides: Sequence[str] = field(default_factory=tuple)


DEMO_TASKS: Dict[str, DemoTask] = {
    "tux": DemoTask(
        name="tux",
        preset="tux",
        datasets=("tux",),
        similarities=("cosine", "diagonal", "block_diagonal", "gssf", "bilinear", "gssf_dynamic"),
        description="Tux Paint stamps: image <-> English caption retrieval (EfficientNet-Lite0 224 px and "
        "all-MiniLM-L6-v2 features, linear heads to 256-d, InfoNCE)",
        main_metric="rsum",
    ),
    # gssf_dynamic is left out of the uni-modal tasks: it runs an MLP per scored pair (about
    # 0.04 M pairs/s at 256-d on 2 cores), so identity cross-entropy over ~1,100 proxies costs
    # seconds per step and a 5,000-image leave-one-out evaluation about ten minutes
    # (docs/results.md).
    "emoji-reid": DemoTask(
        name="emoji-reid",
        preset="emoji-reid",
        datasets=("emoji",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf"),
        description="Emoji re-identification: identity = emoji, camera = vendor; Google queries against "
        "Twitter + OpenMoji gallery of unseen identities (EfficientNet-Lite0 224 px features, linear head to "
        "256-d, batch-hard triplet + identity cross-entropy, P x K sampler; mAP, mINP, CMC, re-ranked)",
        main_metric="mAP",
    ),
    "fashion-mnist": DemoTask(
        name="fashion-mnist",
        preset="fashion-mnist",
        datasets=("fashion-mnist",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf"),
        description="Fashion-MNIST class-disjoint retrieval: train on classes 0-4 (10,000-image subset), "
        "leave-one-out test on the 5,000 test images of classes 5-9 (EfficientNet-Lite0 64 px features, "
        "linear head to 256-d, triplet + proxy cross-entropy; R@K, MAP@R, R-Precision)",
        main_metric="R@1",
    ),
    "emoji-fine-grained": DemoTask(
        name="emoji-fine-grained",
        preset="emoji-fine-grained",
        datasets=("emoji",),
        similarities=("cosine", "euclidean", "diagonal", "block_diagonal", "gssf"),
        description="Emoji as SOP-like fine-grained retrieval: 1,906 classes x 3 vendor views, class-disjoint, "
        "leave-one-out over the test classes (EfficientNet-Lite0 224 px features, linear head to 256-d, "
        "triplet + proxy cross-entropy, P x K sampler; R@1/10/100, MAP@R, R-Precision)",
        main_metric="R@1",
    ),
}
DEFAULT_TASKS = ("tux",)


def register_demo_task(task: DemoTask) -> DemoTask:
    """Add a task to the demo (used by the uni-modal benchmarks)."""
    DEMO_TASKS[task.name] = task
    return task


def _config_key(cfg: Any) -> Dict[str, Any]:
    from gssf.train import config_to_dict

    return json.loads(json.dumps(config_to_dict(cfg), sort_keys=True, default=str))


def _score_seconds(model: torch.nn.Module, task: Any, split: str, repeats: int = 20) -> float:
    """Wall time of the test score matrix (embeddings computed beforehand).

    The minimum over repeats: on a shared machine other processes only ever add time.
    """
    emb = _embeddings(model, task, split)
    q, g = (emb["image"], emb["text"]) if "text" in emb else (emb["image"], emb["image"])
    times = []
    with torch.no_grad():
        model.similarity(q[:2], g[:2])  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.similarity(q, g)
            times.append(time.perf_counter() - t0)
    return min(times)


def _embeddings(model: torch.nn.Module, task: Any, split: str) -> Dict[str, torch.Tensor]:
    data = task.split(split)
    with torch.no_grad():
        if hasattr(model, "encode_text"):
            return {"image": model.encode_image(data.image), "text": model.encode_text(data.text)}
        return {"image": model.encode(data.image)}


def _curve(history: Sequence[Mapping[str, Any]], metric: str) -> List[Dict[str, Any]]:
    """Per-epoch ``{epoch, loss, <metric>}`` rows from the trainer's history."""
    rows = []
    for h in history:
        val = h.get("val") or {}
        rows.append({"epoch": h.get("epoch"), "loss": h.get("train_loss"), metric: val.get(metric)})
    return rows


def _train_one(cfg: Any, run_dir: Path, progress: bool) -> Tuple[Dict[str, Any], bool]:
    """Train (or resume) one run; returns its results and whether a finished run was reused."""
    from gssf.train import load_model, run

    key = _config_key(cfg)
    # The demo's own record sits beside the run folder: the trainer starts only in an empty one.
    key_file, results_file = run_dir.with_name(f"{run_dir.name}.demo.json"), run_dir / "results.json"
    same = key_file.exists() and json.loads(key_file.read_text()) == key
    reused = same and results_file.exists()
    if reused:
        results = json.loads(results_file.read_text())
    else:
        resume = same and (run_dir / "checkpoints" / "last.json").exists()
        if not resume and run_dir.exists():  # another config, or cut before its first checkpoint
            import shutil

            shutil.rmtree(run_dir)
        atomic_write_json(key_file, key)
        results = run(cfg, run_dir, progress=progress, resume=resume, quiet=True)
    model, task, _ = load_model(run_dir)
    results["score_seconds"] = _score_seconds(model, task, cfg.data.test_split)
    return results, reused


def _run_task(
    task: DemoTask,
    sims: Sequence[str],
    seeds: Sequence[int],
    overrides: Sequence[str],
    out_dir: Path,
    progress: bool,
    bar: RunProgress,
    report: Dict[str, Any],
    histories: Dict[str, Dict[str, List[List[Dict[str, Any]]]]],
) -> None:
    """Every (similarity, seed) run of one task, into ``report`` and ``histories``; one line per finished run."""
    from gssf.train import load_config

    report["tasks"][task.name] = {}
    histories[task.name] = {}
    m = task.main_metric
    for sim in sims:
        runs = []
        for seed in seeds:
            cfg = load_config(
                task.preset,
                overrides=[*task.overrides, f"similarity.name={sim}", f"train.seed={seed}", *overrides],
            )
            bar.start(f"{task.name} {sim} seed {seed}")
            run_dir = out_dir / task.name / sim / f"seed{seed}"
            res, reused = _train_one(cfg, run_dir, progress)
            runs.append(
                {
                    "seed": seed,
                    "val": res["val"],
                    "test": res["test"],
                    "params": res["params"],
                    "train_seconds": res["train_seconds"],
                    "score_seconds": res["score_seconds"],
                    "best_epoch": res.get("best_epoch"),
                }
            )
            histories[task.name].setdefault(sim, []).append(_curve(res.get("history", []), m))
            how = f"reused {run_dir}" if reused else f"{res['train_seconds']:.1f} s"
            scores = f"val {m} {res['val'][m]:.2f}  test {m} {res['test'][m]:.2f}"
            bar.done(f"[{task.name}] {sim} seed {seed}: {scores}  ({how})")
        report["tasks"][task.name][sim] = runs


def run_demo(
    tasks: Sequence[str] = DEFAULT_TASKS,
    seeds: Sequence[int] = (0, 1, 2),
    similarities: Optional[Sequence[str]] = None,
    out_dir: Path = Path("runs/demo"),
    overrides: Sequence[str] = (),
    progress: bool = True,
    figures: bool = True,
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Train, evaluate and report every (task, similarity, seed); returns the report dict.

    ``overrides`` are ``section.key=value`` strings applied to every run (e.g.
    ``train.epochs=5``); ``similarities`` restricts each task's list.
    """
    from gssf.data.prepare import prepare_many

    unknown = [t for t in tasks if t not in DEMO_TASKS]
    if unknown:
        raise ValueError(f"unknown demo task(s) {unknown}; choose from {sorted(DEMO_TASKS)}")
    if not seeds:
        raise ValueError("at least one seed is needed")
    out_dir = Path(out_dir)
    plan = []  # checked before any data is prepared or run trained
    for tname in tasks:
        task = DEMO_TASKS[tname]
        sims = [s for s in task.similarities if similarities is None or s in similarities]
        if not sims:
            raise ValueError(f"none of {list(similarities or [])} is compared on task {tname!r} ({list(task.similarities)})")
        plan.append((task, sims))
    datasets = sorted({d for t in tasks for d in DEMO_TASKS[t].datasets})
    log(f"preparing data: {', '.join(datasets)}")
    prepare_many(datasets)
    report: Dict[str, Any] = {"tasks": {}, "meta": {}}
    histories: Dict[str, Dict[str, List[List[Dict[str, Any]]]]] = {}
    t_start = time.perf_counter()
    bar = RunProgress(sum(len(sims) for _, sims in plan) * len(seeds), "demo runs", log, enabled=progress)
    with bar:
        for task, sims in plan:
            _run_task(task, sims, seeds, overrides, out_dir, progress, bar, report, histories)
    report["meta"] = {
        "description": "; ".join(DEMO_TASKS[t].description for t in tasks),
        "seeds": list(seeds),
        "overrides": list(overrides),
        "selection": "checkpoint with the best validation metric; test evaluated once with it",
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    atomic_write_json(out_dir / "histories.json", histories)
    fig_paths: Dict[str, List[Path]] = {}
    if figures:
        fig_paths = make_figures(report, histories, out_dir, seeds[0])
    from gssf.demo.report import format_table, write_report

    write_report(report, out_dir, figures=fig_paths)
    log("")
    log(format_table(report))
    log(f"report: {out_dir / 'report.html'}")
    return report


def make_figures(
    report: Mapping[str, Any], histories: Mapping[str, Any], out_dir: Path, seed: int
) -> Dict[str, List[Path]]:
    """Recall bars, training curves, the learned GSSF matrix and retrieval examples per task."""
    from gssf.demo import figures as F
    from gssf.train import load_model

    paths: Dict[str, List[Path]] = {}
    fig_dir = out_dir / "figures"
    for tname, by_sim in report["tasks"].items():
        task = DEMO_TASKS[tname]
        paths[tname] = [
            F.recall_bars(report, tname, fig_dir / f"{tname}_test_metrics.png"),
            F.training_curves(histories[tname], fig_dir / f"{tname}_training_curves.png", metric=task.main_metric),
        ]
        if "gssf" in by_sim:
            run_dir = out_dir / tname / "gssf" / f"seed{seed}"
            model, mtask, _ = load_model(run_dir)
            with torch.no_grad():
                w = model.similarity.weight_matrix().cpu().numpy()
            paths[tname].append(
                F.weight_heatmap(w, fig_dir / f"{tname}_gssf_learned_matrix.png",
                                 block_size=model.similarity.blocks.block_size,
                                 title=f"learned M = diag(w) + B of gssf ({tname}, seed {seed})")
            )
            if hasattr(model, "encode_text"):
                paths[tname].append(_retrieval_figure(model, mtask, fig_dir / f"{tname}_text_to_image_examples.png"))
    return paths


def _retrieval_figure(model: torch.nn.Module, task: Any, path: Path, hits: int = 2, misses: int = 2,
                      k: int = 5) -> Path:
    """Top-k images for a few test captions: the first ``hits`` captions (in test order) whose
    image is in the top-k and the first ``misses`` whose image is not, so both cases show."""
    from gssf.demo import figures as F
    from gssf.features import get_features

    cfg = task.cfg
    split = cfg.data.test_split
    fs = get_features(cfg.data.dataset, split, image_encoder=cfg.data.image_encoder,
                      text_encoder=cfg.data.text_encoder, resolution=cfg.data.resolution, progress=False)
    emb = _embeddings(model, task, split)
    txt2img = torch.as_tensor(fs.txt2img)
    with torch.no_grad():
        scores = model.similarity(emb["text"], emb["image"])
    examples: Dict[bool, List[Dict[str, Any]]] = {True: [], False: []}
    for j in range(len(txt2img)):
        order = torch.argsort(scores[j], descending=True, stable=True)
        truth = int(txt2img[j])
        rank = int((order == truth).nonzero()[0, 0]) + 1
        hit = rank <= k
        if len(examples[hit]) < (hits if hit else misses):
            top = order[:k].tolist()
            examples[hit].append({"caption": str(fs.captions[j]), "images": [fs.image_paths[i] for i in top],
                                  "correct": [i == truth for i in top], "rank": rank})
    return F.retrieval_examples(
        examples[True] + examples[False], path,
        title=f"text -> image with gssf: top-{k} test images, first {hits} hits and first {misses} misses "
        "in test order (correct image framed in green)")
