"""Figures of the demo report (matplotlib, Agg backend, PNG files)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gssf.demo.report import mean_std, summarize, task_metrics
from gssf.utils.io import atomic_path

__all__ = ["recall_bars", "paired_differences", "weight_heatmap", "training_curves", "retrieval_examples",
           "retrieval_side_by_side"]


def _plt():  # lazy: matplotlib is the `plots` extra
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)
    return Path(path)


def _grid(plt: Any, n: int, ncols: int = 4, width: float = 3.6, height: float = 3.3) -> Tuple[Any, List[Any]]:
    """A figure with ``n`` panels in rows of ``ncols``; unused panels are hidden."""
    cols = max(1, min(ncols, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def _zoomed_limits(values: Sequence[float]) -> Tuple[float, float, bool]:
    """y-limits around ``values``; the axis leaves 0 out (third item True) when 0 would squash the differences."""
    lo, hi = float(min(values)), float(max(values))
    pad = max(0.15 * (hi - lo), 0.5)
    if lo < 0 or (hi - lo) > 0.5 * hi:  # the spread is a large part of the values: show from 0
        return min(0.0, lo - pad), hi + pad, False
    return lo - pad, hi + pad, True


def recall_bars(report: Mapping[str, Any], task: str, path: Path, split: str = "test") -> Path:
    """One panel per metric (rsum included): a bar per similarity = mean over seeds, error bar = std,
    black points = the single seeds; each panel's axis is zoomed onto its values when starting at 0
    would hide their differences (the panel then says so)."""
    plt = _plt()
    summary = summarize(report, split)[task]
    metrics = task_metrics(report["tasks"][task])
    sims = list(summary)
    cmap = plt.get_cmap("tab10")
    fig, axes = _grid(plt, len(metrics))
    x = np.arange(len(sims))
    for ax, metric in zip(axes, metrics):
        seeds = [[float(r[split][metric]) for r in report["tasks"][task][sim]] for sim in sims]
        means = [summary[sim][metric]["mean"] for sim in sims]
        stds = [summary[sim][metric]["std"] for sim in sims]
        ax.bar(x, means, 0.7, yerr=stds, capsize=3, color=[cmap(i % 10) for i in range(len(sims))],
               edgecolor="black", linewidth=0.3, alpha=0.75, error_kw={"elinewidth": 1})
        for i, vals in enumerate(seeds):
            jitter = np.linspace(-0.18, 0.18, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(x[i] + jitter, vals, s=12, color="black", zorder=3)
        lo, hi, zoomed = _zoomed_limits([v for vals in seeds for v in vals] + [m - s for m, s in zip(means, stds)]
                                        + [m + s for m, s in zip(means, stds)])
        ax.set_ylim(lo, hi)
        ax.set_title(metric + ("  (axis not from 0)" if zoomed else ""), fontsize=11)
        ax.set_xticks(x)
        ax.set_xticklabels(sims, rotation=35, ha="right", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    n = summary[sims[0]][metrics[0]]["n"] if sims and metrics else 0
    fig.suptitle(f"{task}: {split} metrics (%), bars = mean ± std over {n} seeds, points = single seeds", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def paired_differences(statistics: Mapping[str, Mapping[str, Mapping[str, Any]]], path: Path,
                       baseline: str = "cosine", title: str = "") -> Path:
    """One panel per metric: each member's mean paired difference to ``baseline`` (dot), its CI
    (bar), the single seeds' differences (small grey points) and the zero line; a filled dot
    and a † mark a CI that excludes 0.

    ``statistics``: ``{member: {metric: entry}}`` of :func:`gssf.demo.statistics.task_statistics`.
    """
    plt = _plt()
    members = [m for m in statistics if m != baseline]
    metrics = list(next(iter(statistics.values())))
    fig, axes = _grid(plt, len(metrics), height=0.45 * len(members) + 1.6)
    y = np.arange(len(members))[::-1]
    for ax, metric in zip(axes, metrics):
        ax.axvline(0.0, color="black", lw=1)
        for yi, member in zip(y, members):
            e = statistics[member][metric]
            # the single seeds just above their interval, so that the CI bar does not hide them
            ax.scatter(e["delta_per_seed"], [yi + 0.22] * len(e["delta_per_seed"]), s=10, color="#777777", zorder=2)
            ax.errorbar([e["delta"]], [yi], xerr=[[e["delta"] - e["delta_ci_low"]], [e["delta_ci_high"] - e["delta"]]],
                        fmt="o", color="tab:red" if e["excludes_zero"] else "tab:blue", capsize=3, zorder=3,
                        markerfacecolor=None if e["excludes_zero"] else "white")
            if e["excludes_zero"]:
                ax.annotate("†", (e["delta_ci_high"], yi), xytext=(4, -4), textcoords="offset points", fontsize=11)
        ax.set_yticks(y)
        ax.set_yticklabels(members, fontsize=9)
        ax.set_ylim(-0.6, len(members) - 0.4)
        ax.set_title(f"Δ {metric} vs {baseline}", fontsize=11)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15)
    legend = ("dot = mean over seeds, bar = 95% CI, grey points = single seeds; "
              "filled red dot and † = the CI excludes 0")
    fig.suptitle(textwrap.fill(title or f"paired difference to {baseline}", 110) + "\n" + legend, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def weight_heatmap(weight: np.ndarray, path: Path, block_size: Optional[int] = None,
                   title: str = "learned M of gssf", zoom: int = 64) -> Path:
    """The learned matrix ``M``: its off-diagonal part (a zoom shows the blocks) and the diagonal weights."""
    plt = _plt()
    w = np.asarray(weight, dtype=np.float64)
    off = w - np.diag(np.diag(w))
    lim = float(np.abs(off).max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"wspace": 0.35})
    fig.suptitle(title, fontsize=12)
    panels = [(off, f"off-diagonal part of M, all {w.shape[0]} channels"),
              (off[:zoom, :zoom], f"zoom: first {min(zoom, w.shape[0])} channels")]
    for ax, (mat, sub) in zip(axes[:2], panels):
        im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(sub, fontsize=10)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.formatter.set_powerlimits((-2, 2))
        cb.update_ticks()
    if block_size:
        z = min(zoom, w.shape[0])
        for k in range(0, z + 1, block_size):
            axes[1].axhline(k - 0.5, color="black", lw=0.4)
            axes[1].axvline(k - 0.5, color="black", lw=0.4)
        axes[1].set_xlabel(f"blocks of {block_size} channels (grid)")
    axes[2].hist(np.diag(w), bins=40, color="tab:blue", edgecolor="black", linewidth=0.3)
    axes[2].axvline(1.0, color="red", lw=1, ls="--", label="cosine (w = 1)")
    axes[2].set_title("diagonal weights w (per-channel relevancy)", fontsize=10)
    axes[2].set_xlabel("w")
    axes[2].legend(fontsize=8)
    return _save(fig, path)


def training_curves(histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]], path: Path,
                    metric: str, loss_key: str = "loss") -> Path:
    """Training loss and validation ``metric`` per epoch, mean over seeds, one line per similarity."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    cmap = plt.get_cmap("tab10")
    for i, (sim, runs) in enumerate(histories.items()):
        for ax, key in zip(axes, (loss_key, metric)):
            per_epoch: Dict[int, List[float]] = {}
            for hist in runs:
                for row in hist:
                    if key in row and row[key] is not None:
                        per_epoch.setdefault(int(row["epoch"]), []).append(float(row[key]))
            if not per_epoch:
                continue
            epochs = sorted(per_epoch)
            stats = [mean_std(per_epoch[e]) for e in epochs]
            mean = np.array([s["mean"] for s in stats])
            std = np.array([s["std"] for s in stats])
            ax.plot(epochs, mean, label=sim, color=cmap(i % 10))
            ax.fill_between(epochs, mean - std, mean + std, color=cmap(i % 10), alpha=0.15)
    axes[0].set_title(f"training {loss_key} (mean over seeds)")
    axes[1].set_title(f"validation {metric} (mean ± std over seeds)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    return _save(fig, path)


def _image_cell(ax: Any, image: str, correct: bool, label: str) -> None:
    """One retrieved image on white (transparent stamps), framed green when it is a correct answer."""
    from PIL import Image

    ax.set_xticks([])
    ax.set_yticks([])
    with Image.open(image) as im:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        ax.imshow(Image.alpha_composite(bg, rgba).convert("RGB"))
    for spine in ax.spines.values():
        spine.set_edgecolor("green" if correct else "#bbbbbb")
        spine.set_linewidth(5 if correct else 1)
    ax.set_xlabel(("✓ " if correct else "") + label, color="green" if correct else "black", fontsize=9)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def retrieval_examples(examples: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """For each caption, its top-k retrieved images; the correct image is framed in green.

    Each example: ``{"caption": str, "images": [path, ...] (ranked), "correct": [bool, ...],
    "rank": int (1-based rank of the correct image)}``.
    """
    plt = _plt()
    rows = len(examples)
    k = max(len(e["images"]) for e in examples)
    fig, axes = plt.subplots(rows, k, figsize=(2.1 * k, 2.4 * rows), squeeze=False)
    for r, ex in enumerate(examples):
        for c in range(k):
            if c >= len(ex["images"]):
                axes[r][c].axis("off")
                continue
            _image_cell(axes[r][c], ex["images"][c], bool(ex["correct"][c]), f"#{c + 1}")
        axes[r][0].set_ylabel(f"“{_short(ex['caption'], 60)}”\n(correct at rank {ex['rank']})", rotation=0,
                              ha="right", va="center", fontsize=9, labelpad=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def retrieval_side_by_side(rows: Sequence[Mapping[str, Any]], path: Path, kind: str = "images",
                           title: str = "") -> Path:
    """The same queries answered by two (or more) similarities, side by side.

    Each row: ``{"query": caption (kind "images") or image path (kind "captions"),
    "truth": the first correct item (image path or caption), "results": {similarity:
    {"items": [image path or caption, ...] (ranked), "correct": [bool, ...], "rank": int
    (1-based rank of the first correct item)}}}``. ``kind`` is what was retrieved:
    ``"images"`` (text -> image: the correct image, then a row of results per similarity)
    or ``"captions"`` (image -> text: the query image with its correct caption, then a
    ranked caption list per similarity).
    """
    if kind not in ("images", "captions"):
        raise ValueError(f"kind must be 'images' or 'captions', got {kind!r}")
    plt = _plt()
    sims = list(rows[0]["results"])
    k = max(len(r["results"][s]["items"]) for r in rows for s in sims)
    if kind == "images":
        # per query: the correct image, then one row of results per similarity, stacked (a page-wide figure)
        fig = plt.figure(figsize=(1.75 * (k + 1.3) + 1.6, 1.9 * len(sims) * len(rows) + 0.9))
        outer = fig.add_gridspec(len(rows), 1, hspace=0.3)
    else:
        ratios = [1.0] + [3.2] * len(sims)
        fig = plt.figure(figsize=(2.2 + 5.2 * len(sims), 2.1 * len(rows) + 0.8))
        grid = fig.add_gridspec(len(rows), len(ratios), width_ratios=ratios, wspace=0.1, hspace=0.55)
    for r, row in enumerate(rows):
        if kind == "images":
            inner = outer[r].subgridspec(len(sims), k + 2, width_ratios=[1.0, 0.3] + [1.0] * k, wspace=0.08,
                                         hspace=0.4)
            ax = fig.add_subplot(inner[:, 0])
            _image_cell(ax, str(row["truth"]), False, "correct image")
            ax.set_title(textwrap.fill(f"“{_short(str(row['query']), 60)}”", 22), fontsize=10)
            for si, sim in enumerate(sims):
                res = row["results"][sim]
                for c, (item, ok) in enumerate(zip(res["items"], res["correct"])):
                    ax = fig.add_subplot(inner[si, 2 + c])
                    _image_cell(ax, item, bool(ok), f"#{c + 1}")
                    if c == 0:
                        ax.set_ylabel(f"{sim}\nrank {res['rank']}", rotation=0, ha="right", va="center",
                                      fontsize=10, labelpad=6)
        else:
            _image_cell(fig.add_subplot(grid[r, 0]), str(row["query"]), False,
                        "query\n" + textwrap.fill(f"correct: “{_short(str(row['truth']), 60)}”", 28))
            for si, sim in enumerate(sims):
                res = row["results"][sim]
                ax = fig.add_subplot(grid[r, 1 + si])
                ax.axis("off")
                ax.set_title(f"{sim}: correct at rank {res['rank']}", loc="left", fontsize=10)
                for c, (item, ok) in enumerate(zip(res["items"], res["correct"])):
                    ax.text(0.0, 1.0 - (c + 0.5) / k, f"#{c + 1} {'✓ ' if ok else ''}{_short(str(item), 48)}",
                            transform=ax.transAxes, va="center", fontsize=9, color="green" if ok else "black",
                            fontweight="bold" if ok else "normal")
    if title:
        fig.suptitle(textwrap.fill(title, 110 if kind == "images" else 150), fontsize=11)
    return _save(fig, path)
