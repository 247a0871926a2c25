"""The main demo: GSSF against cosine and its cousins on real data, in one command.

For each task, every similarity is trained with identical data, features, splits,
hyper-parameters and seeds (only ``similarity.name`` differs), the checkpoint with the
best validation metric is evaluated on the test split, and a report is written:
``report.json``, ``report.txt``, ``report.html`` (figures embedded; PNG files under
``figures/``) and ``summary.json`` (:func:`gssf.stats.write_summary`: for every task,
metric and member the mean ± std over seeds, its 95% CI and the paired difference to
cosine with its 95% CI, from a bootstrap over seeds and test queries).

Runs are resumable: a run whose ``results.json`` exists with the same resolved config is
reused, one cut short continues from its last checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from gssf.demo.progress import RunProgress
from gssf.demo.tasks import DEFAULT_MEMBERS, DEFAULT_SEEDS, DEFAULT_TASKS, DEMO_TASKS, DemoTask, register_demo_task
from gssf.utils.io import atomic_write_json

__all__ = [
    "DemoTask", "DEMO_TASKS", "DEFAULT_MEMBERS", "DEFAULT_TASKS", "DEFAULT_SEEDS", "register_demo_task", "run_demo",
]


def _config_key(cfg: Any) -> Dict[str, Any]:
    from gssf.train import config_to_dict

    return json.loads(json.dumps(config_to_dict(cfg), sort_keys=True, default=str))


def same_config_key(stored: Mapping[str, Any], key: Mapping[str, Any]) -> bool:
    """Whether a run recorded with config key ``stored`` is a run of ``key``.

    Equal keys match. A key recorded before a config field existed matches too when that
    field holds its schema default in ``key``: a new field's default keeps the behaviour the
    run was trained with (the rule every new config key follows), so the run is the same
    run. Any other difference (a changed value, a field that no longer exists) does not.
    """
    from gssf.train import TrainConfig

    defaults = _config_key(TrainConfig())

    def match(old: Any, new: Any, default: Any) -> bool:
        if isinstance(old, Mapping) and isinstance(new, Mapping) and isinstance(default, Mapping) and default:
            if set(old) - set(new):
                return False
            return all(
                match(old[k], new[k], default.get(k)) if k in old else (k in default and new[k] == default[k])
                for k in new
            )
        return old == new

    return dict(stored) == dict(key) or match(stored, key, defaults)


def _score_seconds(model: torch.nn.Module, task: Any, split: str, repeats: int = 20, budget: float = 3.0) -> float:
    """Wall time of the test score matrix (embeddings computed beforehand).

    The minimum over repeats: on a shared machine other processes only ever add time.
    Up to ``repeats`` of them, and no more once three have run and ``budget`` seconds are spent
    (a pair-conditioned score matrix can take seconds each).
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
            if len(times) >= 3 and sum(times) > budget:
                break
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


def _config_sha256(key: Mapping[str, Any]) -> str:
    """SHA-256 of a resolved config (its canonical JSON: sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _train_one(cfg: Any, run_dir: Path, progress: bool) -> Tuple[Dict[str, Any], bool]:
    """Train (or resume) one run; returns its results and whether a finished run was reused.

    The results gain ``score_seconds``, ``dataset``, ``config_sha256``, ``learned`` (see
    :func:`gssf.demo.statistics.learned_parameters`) and ``test_per_query`` (the run's
    per-query test values, which the statistics need and ``report.json`` leaves out).
    """
    from gssf.demo.statistics import learned_parameters, load_per_query
    from gssf.train import load_model

    results, reused = _run_or_reuse(cfg, run_dir, progress)
    model, task, _ = load_model(run_dir)
    results["score_seconds"] = _score_seconds(model, task, cfg.data.test_split)
    results["dataset"] = cfg.data.dataset
    results["config_sha256"] = _config_sha256(_config_key(cfg))
    results["learned"] = learned_parameters(model.similarity)
    results["test_per_query"] = load_per_query(run_dir)
    results["query_clusters"] = task.query_clusters(cfg.data.test_split)
    return results, reused


def _run_or_reuse(cfg: Any, run_dir: Path, progress: bool) -> Tuple[Dict[str, Any], bool]:
    """The trainer's results of ``cfg`` in ``run_dir``: reused when finished with this config, else trained or resumed."""
    from gssf.demo.statistics import PER_QUERY_FILE
    from gssf.train import run

    key = _config_key(cfg)
    # The demo's own record sits beside the run folder: the trainer starts only in an empty one.
    key_file, results_file = run_dir.with_name(f"{run_dir.name}.demo.json"), run_dir / "results.json"
    same = key_file.exists() and same_config_key(json.loads(key_file.read_text()), key)
    reused = same and results_file.exists()
    if reused and cfg.eval.test and not (run_dir / PER_QUERY_FILE).exists():
        _backfill_per_query(run_dir, cfg.data.test_split)  # finished by a trainer that did not write them
    if reused:
        results = json.loads(results_file.read_text())
    else:
        resume = same and (run_dir / "checkpoints" / "last.json").exists()
        if not resume and run_dir.exists():  # another config, or cut before its first checkpoint
            import shutil

            shutil.rmtree(run_dir)
        atomic_write_json(key_file, key)
        results = run(cfg, run_dir, progress=progress, resume=resume, quiet=True)
    return results, reused


def cosine_run_config(task: DemoTask, seed: int, overrides: Sequence[str] = ()) -> Any:
    """The config of ``task``'s cosine run of ``seed`` (what a ``heads_from`` task loads its towers from)."""
    from gssf.train import load_config

    # the same overrides as the task's own cosine run, so that run is reused when it exists
    return load_config(task.preset, overrides=[*task.overrides, "similarity.name=cosine", f"train.seed={seed}", *overrides])


def _source_runs(task: DemoTask, seed: int, overrides: Sequence[str], out_dir: Path, progress: bool) -> Dict[str, Path]:
    """The runs ``task``'s run of ``seed`` starts from, trained now if missing, by config key.

    ``model.heads_from``: the ``heads_from`` task's cosine run (its towers); ``distill.teacher``:
    the ``teacher`` preset's run.
    """
    from gssf.train import load_config

    sources: Dict[str, Path] = {}
    if task.heads_from is not None:
        source = DEMO_TASKS[task.heads_from]
        run_dir = out_dir / source.name / "cosine" / f"seed{seed}"
        _run_or_reuse(cosine_run_config(source, seed, overrides), run_dir, progress)
        sources["model.heads_from"] = run_dir
    if task.teacher is not None:
        run_dir = out_dir / task.name / "teacher" / f"seed{seed}"
        cfg = load_config(task.teacher, overrides=[*task.overrides, f"train.seed={seed}", *overrides])
        _run_or_reuse(cfg, run_dir, progress)
        sources["distill.teacher"] = run_dir
    return sources


#: Where a run's results.json records the checkpoint of each source (see :func:`_source_runs`).
_SOURCE_RECORDS = {"model.heads_from": "towers_from", "distill.teacher": "teacher_from"}


def _forget_if_sources_changed(run_dir: Path, sources: Mapping[str, Path]) -> None:
    """Make a finished run train again when a run it started from (towers, teacher) was retrained since."""
    from gssf.train.checkpoint import load_checkpoint_meta

    results = run_dir / "results.json"
    if not sources or not results.exists():
        return
    recorded = json.loads(results.read_text())
    for key, source in sources.items():
        used = (recorded.get(_SOURCE_RECORDS[key]) or {}).get("checkpoint_id")
        if used != load_checkpoint_meta(source)["checkpoint_id"]:
            run_dir.with_name(f"{run_dir.name}.demo.json").unlink(missing_ok=True)
            return


def _backfill_per_query(run_dir: Path, split: str) -> None:
    """Write the per-query test values of a finished run that lacks them (its ``results.json`` stays).

    The checkpoint the trainer tested (``best``, else ``last``) is evaluated again on ``split``:
    the same model on the same queries, so the values go with the run's test metrics.
    """
    from gssf.demo.statistics import PER_QUERY_FILE
    from gssf.train import load_model
    from gssf.train.trainer import _jsonable  # the trainer's own conversion of the evaluation output

    model, task, _ = load_model(run_dir)
    with torch.no_grad():
        test = _jsonable(task.evaluate(model, split, per_query=True))
    per_query = {k: test[k] for k in ("per_query", "rerank_per_query") if k in test}
    atomic_write_json(run_dir / PER_QUERY_FILE, {"split": split, **per_query})


#: What a run contributes to ``report.json`` (``test_per_query`` stays in the run folder).
_RUN_KEYS = ("val", "test", "params", "train_seconds", "score_seconds", "best_epoch", "dataset", "config_sha256",
             "learned")


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
    tuned: Optional[Dict[str, float]] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """Every (similarity, seed) run of one task, into ``report`` and ``histories``; one line per finished run.

    Returns ``{similarity: [evaluation dict per seed]}``: the test metrics with their
    per-query values, as :func:`gssf.demo.statistics.task_statistics` takes them.
    ``tuned``: the similarity learning rate of each member chosen on validation (``--tune``).
    """
    from gssf.train import load_config

    report["tasks"][task.name] = {}
    histories[task.name] = {}
    evaluations: Dict[str, List[Dict[str, Any]]] = {}
    m = task.main_metric
    for sim in sims:
        runs = []
        for seed in seeds:
            sources = _source_runs(task, seed, overrides, out_dir, progress)
            cfg = load_config(
                task.preset,
                overrides=[*task.overrides, f"{task.member_key}={sim}", f"train.seed={seed}", *overrides,
                           *([f"optim.similarity_lr={tuned[sim]}"] if tuned and sim in tuned else []),
                           *[f"{key}={path}" for key, path in sources.items()]],
            )
            bar.start(f"{task.name} {sim} seed {seed}")
            run_dir = out_dir / task.name / sim / f"seed{seed}"
            _forget_if_sources_changed(run_dir, sources)
            res, reused = _train_one(cfg, run_dir, progress)
            runs.append({"seed": seed, **{k: res.get(k) for k in _RUN_KEYS}})
            clusters = {"query_clusters": res["query_clusters"]} if res.get("query_clusters") else {}
            evaluations.setdefault(sim, []).append({**res["test"], **res["test_per_query"], **clusters})
            histories[task.name].setdefault(sim, []).append(_curve(res.get("history", []), m))
            how = f"reused {run_dir}" if reused else f"{res['train_seconds']:.1f} s"
            scores = f"val {m} {res['val'][m]:.2f}  test {m} {res['test'][m]:.2f}"
            bar.done(f"[{task.name}] {sim} seed {seed}: {scores}  ({how})")
        report["tasks"][task.name][sim] = runs
    return evaluations


def _tuning_line(tuning: Optional[Dict[str, Any]], tasks: Sequence[str]) -> str:
    """The tuning budget of each task of the report: the same for every member of a task either way."""
    from gssf.demo.tuning import format_tuning

    untuned = [t for t in tasks if t not in (tuning or {})]
    parts = [format_tuning(tuning).replace("\n", "; ")] if tuning else []
    if untuned:
        parts.append(f"{', '.join(untuned)}: untuned, every member trained with the preset's settings (equal budget)")
    return "; ".join(parts)


def _git_commit() -> str:
    """The commit of the gssf source that ran (``-dirty`` with uncommitted changes), or ``unknown``."""
    from gssf.stats import _git_commit as commit_of

    return commit_of(Path(__file__).resolve().parent)


def suite_tasks(suite: str) -> List[str]:
    """The demo tasks of a suite: ``settings`` = every task whose setting is not ``head``."""
    if suite != "settings":
        raise ValueError(f"unknown suite {suite!r}; choose from ['settings']")
    return [name for name, task in DEMO_TASKS.items() if task.setting != "head"]


def command_line(tasks: Sequence[str], seeds: Sequence[int], similarities: Optional[Sequence[str]] = None,
                 overrides: Sequence[str] = (), tune: Union[bool, Sequence[str]] = False,
                 suite: Optional[str] = None) -> str:
    """The ``gssf demo`` command that reproduces a report's numbers (every option that changes them)."""
    import shlex

    which = ["--suite", suite] if suite else ["--tasks", *tasks]
    parts = ["gssf", "demo", *which, "--seeds", *(str(s) for s in seeds)]
    if similarities:
        parts += ["--similarities", *similarities]
    for o in overrides:
        parts += ["--set", o]
    if tune is True:
        parts.append("--tune")
    elif tune:
        parts += ["--tune", *tune]
    return shlex.join(parts)


def run_demo(
    tasks: Sequence[str] = ("tux",),
    seeds: Sequence[int] = DEFAULT_SEEDS,
    similarities: Optional[Sequence[str]] = None,
    out_dir: Path = Path("runs/demo"),
    overrides: Sequence[str] = (),
    progress: bool = True,
    figures: bool = True,
    log: Callable[[str], None] = print,
    command: Optional[str] = None,
    publish: Optional[Path] = None,
    n_boot: int = 2000,
    tune: Union[bool, Sequence[str]] = False,
    members: Optional[Mapping[str, Sequence[str]]] = None,
) -> Dict[str, Any]:
    """Train, evaluate and report every (task, similarity, seed); returns the report dict.

    ``overrides`` are ``section.key=value`` strings applied to every run (e.g.
    ``train.epochs=5``); ``similarities`` restricts each task's list (``cosine``, the
    baseline of the paired differences, is always kept). ``command`` is recorded in
    ``summary.json`` (default: :func:`command_line` of the arguments). ``publish``: a docs
    folder whose ``results/summary.json`` and the generated section of ``results.md``
    are rewritten from this run (:func:`gssf.demo.publish.publish_summary`); it is
    checked before anything is trained. ``n_boot``: bootstrap replicates of every CI.
    ``tune``: first choose every learnable member's similarity learning rate on the
    validation split, the same grid for all (:mod:`gssf.demo.tuning`): True for every
    task, or the names of the tasks to tune (the others train every member untuned).
    ``members``: per task, the only members to run (with cosine), e.g. :data:`DEFAULT_MEMBERS`.
    """
    from gssf.data.prepare import prepare_many
    from gssf.demo.publish import check_results_page, publish_summary
    from gssf.demo.report import format_learned, format_statistics, format_table, task_metrics, write_report
    from gssf.demo.statistics import BASELINE, summary_rows, task_statistics
    from gssf.stats import write_summary

    tuned_tasks = set(tasks) if tune is True else set(tune or ())
    unknown = [t for t in tasks if t not in DEMO_TASKS]
    if unknown:
        raise ValueError(f"unknown demo task(s) {unknown}; choose from {sorted(DEMO_TASKS)}")
    if tuned_tasks - set(tasks):
        raise ValueError(f"--tune names task(s) {sorted(tuned_tasks - set(tasks))} that this demo does not run ({list(tasks)})")
    if not seeds:
        raise ValueError("at least one seed is needed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    out_dir = Path(out_dir)
    if publish is not None:
        check_results_page(Path(publish))
    plan = []  # checked before any data is prepared or run trained
    for tname in tasks:
        task = DEMO_TASKS[tname]
        keep = (members or {}).get(tname)
        sims = [s for s in task.similarities if (similarities is None or s in similarities or s == BASELINE)
                and (keep is None or s in keep or s == BASELINE)]  # fmt: skip
        if similarities is not None and not set(similarities) & set(task.similarities):
            raise ValueError(f"none of {list(similarities)} is compared on task {tname!r} ({list(task.similarities)})")
        plan.append((task, sims))
    datasets = sorted({d for t in tasks for d in DEMO_TASKS[t].datasets})
    log(f"preparing data: {', '.join(datasets)}")
    prepare_many(datasets)
    report: Dict[str, Any] = {"tasks": {}, "statistics": {}, "meta": {}}
    histories: Dict[str, Dict[str, List[List[Dict[str, Any]]]]] = {}
    t_start = time.perf_counter()
    bar = RunProgress(sum(len(sims) for _, sims in plan) * len(seeds), "demo runs", log, enabled=progress)
    with bar:
        for task, sims in plan:
            tuned = None
            if task.name in tuned_tasks:
                from gssf.demo.tuning import TUNE_SEED, tune_task

                sources = _source_runs(task, TUNE_SEED, overrides, out_dir, progress)
                tune_overrides = [*overrides, *[f"{key}={path}" for key, path in sources.items()]]

                def tune_one(cfg: Any, run_dir: Path) -> Tuple[Dict[str, Any], bool]:
                    _forget_if_sources_changed(run_dir, sources)
                    return _run_or_reuse(cfg, run_dir, progress)

                result = tune_task(task, sims, tune_overrides, out_dir, tune_one, log=bar.note)
                report.setdefault("tuning", {})[task.name] = result
                tuned = {sim: m["selected"] for sim, m in result["members"].items()}
            evaluations = _run_task(task, sims, seeds, overrides, out_dir, progress, bar, report, histories, tuned)
            metrics = task_metrics(report["tasks"][task.name])
            report["statistics"][task.name] = task_statistics(evaluations, metrics, n_boot=n_boot)
    hashes = [r["config_sha256"] or "" for by_sim in report["tasks"].values() for runs in by_sim.values() for r in runs]
    report["meta"] = {
        "description": "; ".join(DEMO_TASKS[t].description for t in tasks),
        "command": command or command_line(tasks, seeds, similarities, overrides, tune),
        "git_commit": _git_commit(),
        "config_sha256": hashlib.sha256("\n".join(hashes).encode("ascii")).hexdigest(),
        "seeds": list(seeds),
        "overrides": list(overrides),
        "selection": "checkpoint with the best validation metric; test evaluated once with it",
        "statistics": f"95% percentile bootstrap over seeds and test queries together ({n_boot} replicates; "
        "image-text queries drawn by relevance group, an image or emoji with all its captions); "
        f"differences to {BASELINE} paired (same seeds, queries and resampling)",
        "tuning": _tuning_line(report.get("tuning"), tasks),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    atomic_write_json(out_dir / "histories.json", histories)
    settings = {t: DEMO_TASKS[t].setting for t in tasks}
    summary = write_summary(summary_rows(report, settings), out_dir / "summary.json", command=report["meta"]["command"],
                            git_commit=report["meta"]["git_commit"])
    fig_paths: Dict[str, List[Path]] = {}
    if figures:
        fig_paths = make_figures(report, histories, out_dir, seeds[0])
    write_report(report, out_dir, figures=fig_paths)
    log("")
    log(format_table(report))
    log(format_statistics(report))
    log(format_learned(report))
    log(f"report: {out_dir / 'report.html'}")
    log(f"summary: {summary}")
    if publish is not None:
        for path in publish_summary(summary, Path(publish)).values():
            log(f"published: {path}")
    return report


def make_figures(
    report: Mapping[str, Any], histories: Mapping[str, Any], out_dir: Path, seed: int
) -> Dict[str, List[Path]]:
    """Per task: metric bars with per-seed points, paired differences to cosine, training curves,
    the learned GSSF matrix and, for image-text tasks, cosine and GSSF retrievals side by side."""
    from gssf.demo import figures as F
    from gssf.train import load_model

    paths: Dict[str, List[Path]] = {}
    fig_dir = out_dir / "figures"
    for tname, by_sim in report["tasks"].items():
        task = DEMO_TASKS[tname]
        paths[tname] = [F.recall_bars(report, tname, fig_dir / f"{tname}_test_metrics.png")]
        stats = report.get("statistics", {}).get(tname)
        if stats and len(stats) > 1:
            paths[tname].append(F.paired_differences(
                stats, fig_dir / f"{tname}_paired_difference_vs_cosine.png",
                title=f"{tname}: test, paired difference to cosine (95% CI over seeds and queries)"))
        paths[tname].append(
            F.training_curves(histories[tname], fig_dir / f"{tname}_training_curves.png", metric=task.main_metric))
        models = {}
        for sim in ("cosine", "gssf"):
            if sim in by_sim:
                models[sim] = load_model(out_dir / tname / sim / f"seed{seed}")[:2]
        # The learned matrix of the gssf run, where the pair is scored by it (in the attention
        # setting the member is the attention kernel and the pair score has no such matrix).
        sim = models["gssf"][0].similarity if "gssf" in models else None
        if sim is not None and sim.name == "gssf":
            with torch.no_grad():
                w = sim.weight_matrix().cpu().numpy()
            paths[tname].append(
                F.weight_heatmap(w, fig_dir / f"{tname}_gssf_learned_matrix.png", block_size=sim.blocks.block_size,
                                 title=f"learned M = diag(w) + B of gssf ({tname}, seed {seed})")
            )
        if len(models) == 2 and hasattr(models["gssf"][0], "encode_text"):
            for direction in ("t2i", "i2t"):
                paths[tname].append(_retrieval_figure(models, direction, fig_dir, tname, seed))
    return paths


_DIRECTIONS = {"t2i": "text_to_image", "i2t": "image_to_text"}


def _retrieval_figure(models: Mapping[str, Tuple[torch.nn.Module, Any]], direction: str, fig_dir: Path,
                      tname: str, seed: int, per_side: int = 2, k: int = 5) -> Path:
    """Top-k results of cosine and gssf (seed-``seed`` checkpoints) side by side for the same test queries.

    The queries shown: the first ``per_side`` (in test order) where gssf ranks the correct
    item higher than cosine, then the first ``per_side`` where cosine does, so both cases
    show; queries in test order fill up when there are fewer.
    """
    from gssf.demo import figures as F
    from gssf.features import get_features

    _, task = next(iter(models.values()))
    cfg = task.cfg
    split = cfg.data.test_split
    fs = get_features(cfg.data.dataset, split, image_encoder=cfg.data.image_encoder,
                      text_encoder=cfg.data.text_encoder, resolution=cfg.data.resolution, progress=False)
    if fs.image_groups is not None and fs.text_groups is not None:
        image_groups, text_groups = torch.as_tensor(fs.image_groups), torch.as_tensor(fs.text_groups)
    else:
        image_groups, text_groups = torch.arange(len(fs.image)), torch.as_tensor(fs.txt2img)
    ranked = {}
    for sim, (model, mtask) in models.items():
        emb = _embeddings(model, mtask, split)
        with torch.no_grad():
            scores = model.similarity(emb["text"], emb["image"])
        if direction == "i2t":
            scores = scores.T
        ranked[sim] = torch.argsort(scores, dim=1, descending=True, stable=True)
    # relevant[q, item]: whether gallery item is a correct answer to query q
    relevant = text_groups[:, None] == image_groups[None, :]
    if direction == "i2t":
        relevant = relevant.T
    first = {sim: (relevant.gather(1, order).float().argmax(dim=1) + 1) for sim, order in ranked.items()}
    valid = relevant.any(dim=1)  # a query without a correct item has no rank to compare
    rows = []
    gallery = fs.image_paths if direction == "t2i" else [str(c) for c in fs.captions]
    for q in choose_queries(first["gssf"], first["cosine"], valid, k, per_side):
        results = {}
        for sim, order in ranked.items():
            top = order[q, :k].tolist()
            results[sim] = {"items": [gallery[i] for i in top], "correct": [bool(relevant[q, i]) for i in top],
                            "rank": int(first[sim][q])}
        query = str(fs.captions[q]) if direction == "t2i" else fs.image_paths[q]
        truth = gallery[int(relevant[q].nonzero()[0, 0])]
        rows.append({"query": query, "truth": truth, "results": results})
    name = _DIRECTIONS[direction]
    what = "text -> image" if direction == "t2i" else "image -> text"
    mark = "framed in green" if direction == "t2i" else "in green"
    return F.retrieval_side_by_side(
        rows, fig_dir / f"{tname}_{name}_examples.png", kind="images" if direction == "t2i" else "captions",
        title=f"{tname} {what}, cosine vs gssf (seed-{seed} checkpoints), top {k} (correct {mark}); the queries: "
        f"the first {per_side} in test order where gssf ranks the correct item higher and either finds it in its "
        f"top {k}, then the first {per_side} where cosine does")


def choose_queries(rank_a: torch.Tensor, rank_b: torch.Tensor, valid: torch.Tensor, k: int, per_side: int
                   ) -> List[int]:
    """Queries for a side-by-side gallery of members ``a`` and ``b``, from their 1-based ranks ``(Q,)``.

    The first ``per_side`` (in query order) where ``a`` ranks the correct item higher than
    ``b``, then the first ``per_side`` where ``b`` does; within each, queries where either
    member finds the item in its top ``k`` come first (a gallery of misses shows little).
    Queries in order fill up to ``2 * per_side`` when the two rank too few differently.
    Only ``valid`` queries (those with a correct item) are chosen.
    """
    near = valid & (torch.minimum(rank_a, rank_b) <= k)
    chosen: List[int] = []
    for better in (rank_a < rank_b, rank_b < rank_a):
        picks = (near & better).nonzero().flatten().tolist()
        picks += [q for q in (valid & better).nonzero().flatten().tolist() if q not in picks]
        chosen += picks[:per_side]
    rest = [q for q in valid.nonzero().flatten().tolist() if q not in chosen]
    return chosen + rest[: max(0, 2 * per_side - len(chosen))]
