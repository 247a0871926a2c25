"""The demo report: summary statistics, the text table, ``report.json`` and ``report.html``.

``report.json`` has the shape::

    {"tasks": {TASK: {SIMILARITY: [{"seed": int, "val": {...}, "test": {...},
                                     "params": int, "train_seconds": float,
                                     "learned": {...} or None, ...}, ...]}},
     "statistics": {TASK: {SIMILARITY: {METRIC: {"mean", "std", "ci_low", "ci_high",
                                                 "delta", "delta_ci_low", ...}}}},
     "meta": {"command", "git_commit", "config_sha256", ...}}

where the metric dicts use the evaluator's keys (``rsum``, ``i2t_R@1``, ``mAP``, ...),
``statistics`` is :func:`gssf.demo.statistics.task_statistics` per task and ``learned``
is :func:`gssf.demo.statistics.learned_parameters` of the run's similarity.
"""
from __future__ import annotations

import base64
import html
import math
import mimetypes
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from gssf.errors import BadImageError
from gssf.utils.io import atomic_write_json, atomic_write_text

__all__ = ["TASK_METRICS", "summarize", "format_table", "format_statistics", "format_learned", "write_report",
           "mean_std"]

#: Metrics shown per task type, the first one being the task's main metric.
TASK_METRICS: Dict[str, List[str]] = {
    "image_text": ["rsum", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10"],
    "reid": ["mAP", "R@1", "R@5", "R@10", "mINP", "rerank_mAP", "rerank_R@1"],
    "retrieval": ["MAP@R", "R@1", "R@2", "R@4", "R@8", "R@10", "R@100", "R-Precision"],
}


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) if len(vals) > 1 else 0.0
    return {"mean": mean, "std": math.sqrt(var), "n": len(vals)}


def task_metrics(runs_by_sim: Mapping[str, List[Mapping[str, Any]]]) -> List[str]:
    """The metric list for a task, inferred from the keys of its first test dict."""
    for runs in runs_by_sim.values():
        for run in runs:
            keys = set(run.get("test", {}))
            for names in TASK_METRICS.values():
                if names[0] in keys:
                    return [n for n in names if n in keys]
    return []


def summarize(report: Mapping[str, Any], split: str = "test") -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{task: {similarity: {metric: {mean, std, n}, "params": int, "train_seconds": {...}}}}``."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for task, by_sim in report["tasks"].items():
        metrics = task_metrics(by_sim)
        out[task] = {}
        for sim, runs in by_sim.items():
            row: Dict[str, Any] = {m: mean_std([r[split][m] for r in runs]) for m in metrics}
            row["params"] = runs[0].get("params", 0) if runs else 0
            row["train_seconds"] = mean_std([r.get("train_seconds", float("nan")) for r in runs])
            if any("score_seconds" in r for r in runs):
                row["score_seconds"] = mean_std([r.get("score_seconds", float("nan")) for r in runs])
            out[task][sim] = row
    return out


def _fmt(ms: Mapping[str, float], digits: int = 1) -> str:
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def format_table(report: Mapping[str, Any], split: str = "test") -> str:
    """A plain-text table per task: mean ± std over seeds of each metric, cost columns."""
    lines: List[str] = []
    summary = summarize(report, split)
    for task, by_sim in summary.items():
        metrics = task_metrics(report["tasks"][task])
        n = max((row[metrics[0]]["n"] for row in by_sim.values()), default=0) if metrics else 0
        lines.append(f"task {task} ({split} split, mean ± std over {n} seeds)")
        header = f"{'similarity':<16}" + "".join(f"{m:>15}" for m in metrics)
        header += f"{'params':>10}{'train s':>9}{'score ms':>10}"
        lines.append(header)
        best = {m: max(row[m]["mean"] for row in by_sim.values()) for m in metrics}
        for sim, row in by_sim.items():
            cells = ""
            for m in metrics:
                mark = "*" if row[m]["mean"] == best[m] else " "
                cells += f"{_fmt(row[m]) + mark:>15}"
            score_ms = row.get("score_seconds", {"mean": float("nan")})["mean"] * 1000
            lines.append(
                f"{sim:<16}{cells}{row['params']:>10,}{row['train_seconds']['mean']:>9.1f}{score_ms:>10.1f}"
            )
        lines.append("(* best mean in the column)")
        lines.append("")
    return "\n".join(lines)


def _html_table(report: Mapping[str, Any], task: str, split: str) -> str:
    summary = summarize(report, split)[task]
    metrics = task_metrics(report["tasks"][task])
    best = {m: max(row[m]["mean"] for row in summary.values()) for m in metrics}
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for sim, row in summary.items():
        cells = "".join(
            f"<td{' class=best' if row[m]['mean'] == best[m] else ''}>{_fmt(row[m])}</td>" for m in metrics
        )
        score_ms = row.get("score_seconds", {"mean": float("nan")})["mean"] * 1000
        rows.append(
            f"<tr><th>{html.escape(sim)}</th>{cells}<td>{row['params']:,}</td>"
            f"<td>{row['train_seconds']['mean']:.1f}</td><td>{score_ms:.1f}</td></tr>"
        )
    return (
        f"<table><tr><th>similarity</th>{head}<th>params</th><th>train s</th><th>score ms</th></tr>"
        + "".join(rows)
        + "</table>"
    )


# --------------------------------------------------------------------------- statistics and learned parameters
#: Marks a difference whose confidence interval excludes 0.
SIGNIFICANT = "†"
_Table = Tuple[str, List[str], List[List[str]]]  # (title, header, rows of cells)


def _signed(v: float, digits: int = 1) -> str:
    return f"{v:+.{digits}f}".replace("-", "−")


def _delta_cell(entry: Mapping[str, Any]) -> str:
    mark = SIGNIFICANT if entry["excludes_zero"] else ""
    return f"{_signed(entry['delta'])} [{_signed(entry['delta_ci_low'])}, {_signed(entry['delta_ci_high'])}]{mark}"


def _statistics_tables(report: Mapping[str, Any], task: str) -> List[_Table]:
    """The paired differences of every metric, then the main metric seed by seed."""
    stats = report.get("statistics", {}).get(task) or {}
    if not stats:
        return []
    metrics = list(next(iter(stats.values())))
    main = metrics[0]
    level = round(100 * next(iter(stats.values()))[main]["ci"])
    others = [s for s in stats if s != "cosine"]
    deltas = [[sim] + [_delta_cell(stats[sim][m]) for m in metrics] for sim in others]
    seeds = [r["seed"] for r in next(iter(report["tasks"][task].values()))]
    detail = []
    for sim, by_metric in stats.items():
        e = by_metric[main]
        per_seed = ", ".join(f"{v:.1f}" for v in e["per_seed"])
        delta_seed = "—" if sim == "cosine" else ", ".join(_signed(v) for v in e["delta_per_seed"])
        detail.append([sim, f"{e['mean']:.1f} ± {e['std']:.1f}", f"[{e['ci_low']:.1f}, {e['ci_high']:.1f}]", per_seed,
                       "—" if sim == "cosine" else _delta_cell(e), delta_seed])
    return [
        (f"Paired difference to cosine, test split: Δ [{level}% CI]; {SIGNIFICANT} where the CI excludes 0",
         ["similarity", *metrics], deltas),
        (f"Test {main} seed by seed (seeds {', '.join(map(str, seeds))})",
         ["similarity", "mean ± std", f"{level}% CI", "per seed", "Δ vs cosine", "Δ per seed"], detail),
    ]


def _learned_table(report: Mapping[str, Any], task: str) -> List[_Table]:
    """``||M - I||_2``, diagonal spread and largest block entry of the first seed's learnable members."""
    rows, seed = [], None
    for sim, runs in report["tasks"][task].items():
        learned = runs[0].get("learned") if runs else None
        if not learned:
            continue
        seed = runs[0]["seed"]
        block = learned["max_abs_block"]
        rows.append([sim, f"{learned['norm_M_minus_I']:.3g}", learned["diagonal_of"], f"{learned['diagonal_min']:.3f}",
                     f"{learned['diagonal_max']:.3f}", f"{learned['diagonal_std']:.3g}",
                     "—" if block is None else f"{block:.3g}", learned["source"]])
    if not rows:
        return []
    title = (f"Learned parameters of the seed-{seed} checkpoint (validation-selected): how far each member moved "
             "from cosine (M = I, w = 1, no block entries)")
    return [(title, ["similarity", "||M - I||_2", "diagonal", "min", "max", "std", "max |block entry|", "from"], rows)]


def _text_tables(tables: Sequence[_Table]) -> List[str]:
    lines: List[str] = []
    for title, header, rows in tables:
        widths = [max(len(c) for c in col) for col in zip(header, *rows)]
        lines.append(title)
        for cells in (header, *rows):
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
        lines.append("")
    return lines


def _html_cell(cell: str) -> str:
    """A cell; a value with its interval (``+1.2 [-0.3, +2.8]``) on two lines, so that wide tables fit the page."""
    return "<br>[".join(html.escape(part) for part in cell.split(" [", 1))


def _html_tables(tables: Sequence[_Table]) -> List[str]:
    parts = []
    for title, header, rows in tables:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr><th>" + html.escape(cells[0]) + "</th>"
            + "".join(f"<td{' class=sig' if SIGNIFICANT in c else ''}>{_html_cell(c)}</td>" for c in cells[1:])
            + "</tr>"
            for cells in rows
        )
        parts.append(f"<h3>{html.escape(title)}</h3><table><tr>{head}</tr>{body}</table>")
    return parts


def format_statistics(report: Mapping[str, Any]) -> str:
    """Per task: the paired differences to cosine with their CIs, and the main metric per seed."""
    lines: List[str] = []
    for task in report.get("statistics", {}):
        lines.append(f"task {task}")
        lines += _text_tables(_statistics_tables(report, task))
    return "\n".join(lines)


def format_learned(report: Mapping[str, Any]) -> str:
    """Per task: how far each learnable member moved from cosine (see :func:`_learned_table`)."""
    lines: List[str] = []
    for task in report["tasks"]:
        tables = _learned_table(report, task)
        if tables:
            lines.append(f"task {task}")
            lines += _text_tables(tables)
    return "\n".join(lines)


def _provenance(meta: Mapping[str, Any]) -> List[str]:
    keys = (("command", "command"), ("git_commit", "git commit"), ("config_sha256", "config SHA-256"))
    return [f"{label}: {meta[k]}" for k, label in keys if meta.get(k)]


def _figure_html(fig: Path, out_dir: Path) -> str:
    """A ``<figure>`` whose image is embedded as a ``data:`` URI.

    Embedded, the page shows its figures wherever it is opened from: whatever ``--out``
    was (relative or absolute), after the folder is moved, or when the HTML alone is mailed.
    The title names the file next to the report that holds the same image.
    """
    path = Path(fig)
    data = path.read_bytes()  # a relative figure path is relative to the working directory, as written
    mime = "image/png" if data.startswith(b"\x89PNG\r\n\x1a\n") else (mimetypes.guess_type(path.name)[0] or "")
    if not mime.startswith("image/"):
        raise BadImageError(f"figure {path} is not an image file (expected a PNG)")
    try:
        shown = path.resolve().relative_to(Path(out_dir).resolve()).as_posix()
    except ValueError:  # a figure kept outside the report folder
        shown = path.name
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    caption = html.escape(path.stem.replace("_", " "))
    return (f"<figure><img src='{uri}' alt='{caption}' title='{html.escape(shown)}'>"
            f"<figcaption>{caption}</figcaption></figure>")


def write_report(
    report: Mapping[str, Any],
    out_dir: Path,
    figures: Optional[Mapping[str, Sequence[Path]]] = None,
    notes: Optional[Mapping[str, str]] = None,
) -> Dict[str, Path]:
    """Write ``report.json``, ``report.txt`` and a self-contained ``report.html`` (figures embedded)."""
    out_dir = Path(out_dir)
    figures = figures or {}
    notes = notes or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>gssf demo report</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}",
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;",
        "text-align:right}th{background:#f4f4f4}td.best{font-weight:bold;background:#e8f5e9}",
        "td{white-space:nowrap}td.sig{font-weight:bold;background:#fff3e0}",
        "img{max-width:100%;border:1px solid #ddd;margin:.5em 0}.note{color:#555}</style></head><body>",
        "<h1>gssf demo: GSSF against cosine and its cousins</h1>",
        f"<p class=note>{html.escape(str(report.get('meta', {}).get('description', '')))}</p>",
    ]
    provenance = _provenance(report.get("meta", {}))
    if provenance:
        parts.append("<p class=note>" + "<br>".join(html.escape(line) for line in provenance) + "</p>")
    for task in report["tasks"]:
        parts.append(f"<h2>Task <code>{html.escape(task)}</code></h2>")
        if task in notes:
            parts.append(f"<p class=note>{html.escape(notes[task])}</p>")
        parts.append("<h3>Test split (mean ± std over seeds)</h3>")
        parts.append(_html_table(report, task, "test"))
        parts.extend(_html_tables(_statistics_tables(report, task)))
        parts.append("<h3>Validation split (model selection)</h3>")
        parts.append(_html_table(report, task, "val"))
        parts.extend(_html_tables(_learned_table(report, task)))
        parts.extend(_figure_html(fig, out_dir) for fig in figures.get(task, []))
    meta = report.get("meta", {})
    if meta:
        items = "".join(
            f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in meta.items() if k != "description"
        )
        parts.append(f"<h2>Set-up</h2><ul>{items}</ul>")
    parts.append("</body></html>")
    # The page is built (figures read) before anything is written: a bad figure leaves no partial report.
    return {
        "json": atomic_write_json(out_dir / "report.json", report),
        "txt": atomic_write_text(out_dir / "report.txt", "\n".join(
            [format_table(report), format_statistics(report), format_learned(report),
             *_provenance(report.get("meta", {}))]) + "\n"),
        "html": atomic_write_text(out_dir / "report.html", "\n".join(parts)),
    }
