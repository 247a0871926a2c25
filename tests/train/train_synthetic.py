"""Synthetic cached features for trainer tests (imported by the tests of tests/train and tests/cli).

Images and captions are noisy linear views of shared latent vectors, so a linear two-tower
model learns to match them within a few epochs. Some images have two captions, so id
masking matters.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from gssf.train import TrainConfig, load_config

SPLITS = {"train": 160, "val": 40, "test": 40}


def write_features(
    directory: Path,
    image_dim: int = 32,
    text_dim: int = 24,
    latent: int = 8,
    noise: float = 0.3,
    splits: Dict[str, int] = SPLITS,
    seed: int = 0,
) -> str:
    """Write ``directory/{split}.npz`` (keys image, text, txt2img); return the ``{split}`` pattern."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((latent, image_dim))
    b = rng.standard_normal((latent, text_dim))
    directory.mkdir(parents=True, exist_ok=True)
    for split, n_img in splits.items():
        z = rng.standard_normal((n_img, latent))
        image = z @ a + noise * rng.standard_normal((n_img, image_dim))
        # every third image has a second caption
        txt2img = np.sort(np.concatenate([np.arange(n_img), np.arange(0, n_img, 3)]))
        text = z[txt2img] @ b + noise * rng.standard_normal((len(txt2img), text_dim))
        np.savez(
            directory / f"{split}.npz",
            image=image.astype(np.float32),
            text=text.astype(np.float32),
            txt2img=txt2img.astype(np.int64),
        )
    return str(directory / "{split}.npz")


def write_grouped_features(
    directory: Path, image_dim: int = 32, text_dim: int = 24, latent: int = 8, noise: float = 0.3,
    groups: Dict[str, int] = {"train": 40, "val": 12, "test": 12}, seed: int = 0,
) -> str:
    """Many images per caption: ``{split}.npz`` with image_groups / text_groups (emoji-captions-like).

    Group ``g`` has 2-4 images (noisy views of one latent vector) and one caption, the first
    group of every four a second caption; groups are numbered apart from the row indices.
    """
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((latent, image_dim))
    b = rng.standard_normal((latent, text_dim))
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in groups.items():
        z = rng.standard_normal((n, latent))
        per = 2 + np.arange(n) % 3
        ig = np.repeat(np.arange(n), per)
        tg = np.sort(np.concatenate([np.arange(n), np.arange(0, n, 4)]))
        image = z[ig] @ a + noise * rng.standard_normal((len(ig), image_dim))
        text = z[tg] @ b + noise * rng.standard_normal((len(tg), text_dim))
        first = np.searchsorted(ig, tg)
        np.savez(directory / f"{split}.npz", image=image.astype(np.float32), text=text.astype(np.float32),
                 txt2img=first.astype(np.int64), image_groups=(100 + ig).astype(np.int64),
                 text_groups=(100 + tg).astype(np.int64))  # fmt: skip
    return str(directory / "{split}.npz")


def write_unimodal_features(directory: Path, dim: int = 16, classes: int = 12, per_class: int = 6, seed: int = 0) -> str:
    """Uni-modal ``{split}.npz`` (image, labels, cams) with class-disjoint splits and re-ID query/gallery."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    # Classes differ in 4 directions only; large per-item nuisance fills the others, so raw
    # cosine retrieval is poor and a learned projection helps (also on unseen classes).
    informative = 4
    centres = np.zeros((3 * classes, dim))
    centres[:, :informative] = rng.standard_normal((3 * classes, informative)) * 2.0
    scale = np.ones(dim)
    scale[:informative] = 0.3
    scale[informative:] = 3.0

    def make(cls_ids: Sequence[int], cams_offset: int = 0):
        labels = np.repeat(np.asarray(cls_ids), per_class)
        image = centres[labels] + rng.standard_normal((len(labels), dim)) * scale
        cams = (np.arange(len(labels)) % 2) + cams_offset
        return image.astype(np.float32), labels.astype(np.int64), cams.astype(np.int64)

    parts = {
        "train": make(range(classes)),
        "val": make(range(classes, 2 * classes)),
        "test": make(range(2 * classes, 3 * classes)),
    }
    for split in ("val", "test"):
        image, labels, cams = parts[split]
        q = np.arange(len(labels)) % per_class == 0
        parts[f"{split}-query"] = (image[q], labels[q], np.zeros(int(q.sum()), np.int64))
        parts[f"{split}-gallery"] = (image[~q], labels[~q], np.ones(int((~q).sum()), np.int64))
    for split, (image, labels, cams) in parts.items():
        np.savez(directory / f"{split}.npz", image=image, labels=labels, cams=cams)
    return str(directory / "{split}.npz")


def tiny_config(pattern: str, *overrides: str) -> TrainConfig:
    """A seconds-long config on synthetic features; ``overrides`` as for ``--set``."""
    base = [
        "data.dataset=null",
        f"data.features_file={pattern}",
        "model.embed_dim=16",
        "similarity.name=gssf",
        "similarity.kwargs={num_blocks: 4}",
        "loss.name=infonce",
        "optim.lr=0.01",
        "optim.similarity_lr=0.02",
        "optim.similarity_weight_decay=0.001",
        "train.epochs=4",
        "train.batch_size=32",
        "train.num_threads=1",
        "train.log_every=1",
        "eval.chunk_size=17",
    ]
    return load_config(None, overrides=base + list(overrides))
