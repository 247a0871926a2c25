"""Precomputed features, accepted as they are.

SCAN / VSE layout (``precomp``)::

    ROOT/{split}_ims.npy    (N, D) or (N, regions, D) image features
    ROOT/{split}_caps.txt   captions, one a line, k consecutive lines per image
    ROOT/{split}_ids.txt    optional image ids, one a line

``k`` = lines / N and must be a whole number (5 for Flickr30K / COCO); split names are
the files' (``train``, ``dev``, ``test``, ``testall``); ``val`` means ``dev``.

User features (``features``)::

    ROOT/{split}/features.npz  or  ROOT/features_{split}.npz
    ROOT/features.npz          accepted for split "test" only (so that evaluation just
                               works while a train split can never silently be the test set)

with keys ``image`` (N_img, D) and, cross-modal, ``text`` (N_txt, D) and ``txt2img``
(N_txt,) int; uni-modal ``labels`` (N,) and optional ``cams`` (N,). Optional metadata
``image_paths`` and ``captions`` (string arrays). See :func:`gssf.features.load_features_file`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from gssf.data.base import CrossModalDataset, ImageRecord, UniModalDataset
from gssf.errors import GssfError

PRECOMP_LAYOUT = (
    "ROOT/{split}_ims.npy ([N, D] or [N, regions, D]), ROOT/{split}_caps.txt (k captions per image, "
    "consecutive lines), optional ROOT/{split}_ids.txt"
)
FEATURES_LAYOUT = (
    "ROOT/{split}/features.npz or ROOT/features_{split}.npz (ROOT/features.npz for split test) with arrays "
    "image [N, D] and either text [M, D] + txt2img [M] or labels [N] (+ cams [N])"
)


def load_precomp(
    root: Path, split: str = "train", captions_per_image: Optional[int] = None, mmap: bool = True
) -> CrossModalDataset:
    """SCAN/VSE precomputed image features with their captions (text is encoded later)."""
    file_split = "dev" if split == "val" else split
    ims_path, caps_path = root / f"{file_split}_ims.npy", root / f"{file_split}_caps.txt"
    for p in (ims_path, caps_path):
        if not p.is_file():
            raise FileNotFoundError(f"precomputed {split} split not found at {p}; expected layout: {PRECOMP_LAYOUT}")
    try:
        # Region features of a full train split are many GB: map them instead of reading.
        ims = np.load(ims_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty or truncated file
        raise GssfError(f"cannot read {ims_path} ({type(exc).__name__}: {exc}); expected layout: {PRECOMP_LAYOUT}") from exc
    if not isinstance(ims, np.ndarray):
        ims.close()
        raise GssfError(f"{ims_path} is a .npz archive, not a .npy array; expected layout: {PRECOMP_LAYOUT}")
    if ims.ndim not in (2, 3) or ims.dtype.kind not in "fiu":
        raise GssfError(f"{ims_path} has shape {ims.shape} and dtype {ims.dtype}; expected layout: {PRECOMP_LAYOUT}")
    with open(caps_path, encoding="utf-8", errors="replace") as fh:
        caps = [line.strip() for line in fh if line.strip()]
    n = len(ims)
    if n == 0 or not caps:
        raise ValueError(f"split {split!r} of dataset 'precomp' is empty at {root}")
    k = captions_per_image if captions_per_image is not None else len(caps) // n
    if k < 1 or k * n != len(caps):
        raise ValueError(
            f"caption count mismatch in {caps_path}: {len(caps)} captions for {n} images "
            f"(expected {k if k >= 1 else 'a whole number'} per image); expected layout: {PRECOMP_LAYOUT}"
        )
    ids_path = root / f"{file_split}_ids.txt"
    if ids_path.is_file():
        with open(ids_path, encoding="utf-8") as fh:
            ids = [line.strip() for line in fh if line.strip()]
        if len(ids) != n:
            raise ValueError(f"{ids_path} lists {len(ids)} ids for {n} images")
    else:
        ids = [str(i) for i in range(n)]
    return CrossModalDataset(
        name="precomp",
        split=split,
        images=[ImageRecord(id=i) for i in ids],
        captions=caps,
        txt2img=np.repeat(np.arange(n, dtype=np.int64), k),
        image_features=ims,
        root=root,
        meta={"captions_per_image": k, "source": str(ims_path)},
    )


def find_features_file(root: Path, split: str) -> Path:
    """Locate the user's features file of ``split`` under ``root`` (or ``root`` itself)."""
    if root.is_file():
        return root
    candidates = [root / split / "features.npz", root / f"features_{split}.npz"]
    if split == "test":
        candidates.append(root / "features.npz")
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"features of split {split!r} not found at {candidates[0]}; expected layout: {FEATURES_LAYOUT}")


def load_user_features(root: Path, split: str = "test") -> Union[CrossModalDataset, UniModalDataset]:
    """A user's ``features.npz`` as a dataset whose features are used as they are."""
    from gssf.features import load_features_file

    path = find_features_file(root, split)
    fs = load_features_file(path)
    n = fs.image.shape[0]
    ids: List[str] = [str(i) for i in range(n)]
    paths = fs.image_paths if fs.image_paths else [None] * n
    images = [ImageRecord(id=i, path=Path(p) if p else None) for i, p in zip(ids, paths)]
    if fs.text is not None:
        assert fs.txt2img is not None
        captions = fs.captions if fs.captions else [""] * len(fs.text)
        return CrossModalDataset(
            name="features",
            split=split,
            images=images,
            captions=list(captions),
            txt2img=fs.txt2img,
            image_features=fs.image,
            text_features=fs.text,
            root=path.parent,
            meta={"source": str(path)},
        )
    assert fs.labels is not None
    return UniModalDataset(
        name="features",
        split=split,
        images=images,
        labels=fs.labels,
        cams=fs.cams,
        image_features=fs.image,
        root=path.parent,
        meta={"source": str(path)},
    )
