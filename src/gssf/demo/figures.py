"""Figures of the demo report (matplotlib, Agg backend, PNG files)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from gssf.demo.report import mean_std, summarize, task_metrics
from gssf.utils.io import atomic_path

__all__ = ["recall_bars", "weight_heatmap", "training_curves", "retrieval_examples"]


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


def recall_bars(report: Mapping[str, Any], task: str, path: Path, split: str = "test") -> Path:
    """Grouped bars: one group per metric, one bar per similarity, error bars = std over seeds."""
    plt = _plt()
    summary = summarize(report, split)[task]
    metrics = [m for m in task_metrics(report["tasks"][task]) if m != "rsum"]
    sims = list(summary)
    width = 0.8 / max(len(sims), 1)
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(metrics) + 2), 4.2))
    x = np.arange(len(metrics))
    cmap = plt.get_cmap("tab10")
    for i, sim in enumerate(sims):
        means = [summary[sim][m]["mean"] for m in metrics]
        stds = [summary[sim][m]["std"] for m in metrics]
        ax.bar(x + (i - (len(sims) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
               label=sim, color=cmap(i % 10), edgecolor="black", linewidth=0.3)
    ax.set_xticks(x)
    ax.set_xticklabels(metrics)
    ax.set_ylabel("%")
    n = summary[sims[0]][metrics[0]]["n"] if sims and metrics else 0
    ax.set_title(f"{task}: {split} metrics, mean ± std over {n} seeds")
    ax.legend(ncol=min(len(sims), 4), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
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


def retrieval_examples(examples: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """For each caption, its top-k retrieved images; the correct image is framed in green.

    Each example: ``{"caption": str, "images": [path, ...] (ranked), "correct": [bool, ...],
    "rank": int (1-based rank of the correct image)}``.
    """
    plt = _plt()
    from PIL import Image

    rows = len(examples)
    k = max(len(e["images"]) for e in examples)
    fig, axes = plt.subplots(rows, k, figsize=(2.1 * k, 2.4 * rows), squeeze=False)
    for r, ex in enumerate(examples):
        for c in range(k):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(ex["images"]):
                ax.axis("off")
                continue
            with Image.open(ex["images"][c]) as im:
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                ax.imshow(Image.alpha_composite(bg, rgba).convert("RGB"))
            ok = bool(ex["correct"][c])
            for spine in ax.spines.values():
                spine.set_edgecolor("green" if ok else "#bbbbbb")
                spine.set_linewidth(5 if ok else 1)
            ax.set_xlabel(("✓ " if ok else "") + f"#{c + 1}", color="green" if ok else "black", fontsize=9)
        caption = ex["caption"] if len(ex["caption"]) < 60 else ex["caption"][:57] + "..."
        axes[r][0].set_ylabel(f"“{caption}”\n(correct at rank {ex['rank']})", rotation=0, ha="right",
                              va="center", fontsize=9, labelpad=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
