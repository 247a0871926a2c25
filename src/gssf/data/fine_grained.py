"""Deep-metric-learning benchmarks with class-disjoint splits: CUB-200-2011, Cars196, SOP.

Layouts::

    CUB-200-2011   ROOT/images.txt ("<id> <rel path>"), ROOT/image_class_labels.txt
                   ("<id> <class>"), ROOT/images/<rel path>; classes 1-100 train, 101-200 test
    Cars196        ROOT/cars_annos.mat (struct "annotations": relative_im_path, class),
                   ROOT/car_ims/...; classes 1-98 train, 99-196 test
    SOP            ROOT/Ebay_train.txt, ROOT/Ebay_test.txt (header, then
                   "image_id class_id super_class_id path"), ROOT/<path>

Labels keep the datasets' own class numbers. Items are sorted by the datasets' ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from gssf.data.base import ImageRecord, UniModalDataset
from gssf.data.paths import ContainedRoot

LAYOUT = {
    "cub": "ROOT/images.txt, ROOT/image_class_labels.txt, ROOT/images/<class folder>/<file>.jpg "
    "(CUB_200_2011 folder)",
    "cars196": "ROOT/cars_annos.mat (annotations with relative_im_path, class), ROOT/car_ims/<file>.jpg",
    "sop": "ROOT/Ebay_train.txt, ROOT/Ebay_test.txt (image_id class_id super_class_id path), ROOT/<path>",
}


def _check_files(name: str, images: Sequence[ImageRecord], check: bool) -> None:
    if not check:
        return
    missing = [r.path for r in images if r.path is not None and not r.path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(images)} {name} images not found, first at {missing[0]}; "
            f"expected layout: {LAYOUT[name]}"
        )


def _read_pairs(path: Path, name: str) -> Dict[int, str]:
    if not path.is_file():
        raise FileNotFoundError(f"{name} file not found at {path}; expected layout: {LAYOUT[name]}")
    out: Dict[int, str] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split(maxsplit=1)
            if not parts:
                continue
            if len(parts) != 2 or not parts[0].isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<id> <value>'; expected layout: {LAYOUT[name]}")
            out[int(parts[0])] = parts[1].strip()
    return out


def _class_split(label: int, split: str, train_max: int) -> bool:
    return label <= train_max if split == "train" else label > train_max


def load_cub(root: Path, split: str = "train", check_files: bool = True) -> UniModalDataset:
    """CUB-200-2011: 5,864 train images (classes 1-100), 5,924 test (101-200)."""
    paths = _read_pairs(root / "images.txt", "cub")
    classes = _read_pairs(root / "image_class_labels.txt", "cub")
    if set(paths) != set(classes):
        raise ValueError(
            f"{root}: images.txt and image_class_labels.txt list different ids "
            f"({len(paths)} vs {len(classes)}); expected layout: {LAYOUT['cub']}"
        )
    contained = ContainedRoot(root / "images")
    images: List[ImageRecord] = []
    labels: List[int] = []
    for i in sorted(paths):
        try:
            c = int(classes[i])
        except ValueError:
            raise ValueError(
                f"{root / 'image_class_labels.txt'}: image id {i} has class {classes[i]!r}, not a number"
            ) from None
        if _class_split(c, split, 100):
            path = contained.path(paths[i], f"{root / 'images.txt'}: image id {i}")
            images.append(ImageRecord(id=paths[i], path=path))
            labels.append(c)
    _check_files("cub", images, check_files)
    return UniModalDataset("cub", split, images, np.asarray(labels, dtype=np.int64), root=root)


def _mat_field(rec: Any, name: str) -> Any:
    """A scalar struct field: ``loadmat`` wraps each one in nested 1x1 arrays."""
    value = rec[name]
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"field {name!r} is not a scalar: shape {value.shape}")
        value = value.reshape(-1)[0]
    return value


def _read_cars_annos(path: Path) -> List[Tuple[str, int]]:
    if not path.is_file():
        raise FileNotFoundError(f"cars196 annotations not found at {path}; expected layout: {LAYOUT['cars196']}")
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Cars196 needs scipy to read cars_annos.mat: pip install 'gssf[data]' (or pip install scipy)") from exc
    try:
        annos = loadmat(str(path))["annotations"].reshape(-1)
        out = [(str(_mat_field(a, "relative_im_path")), int(_mat_field(a, "class"))) for a in annos]
    except Exception as exc:  # scipy's MatReadError and friends share no narrower base class
        if isinstance(exc, ImportError):
            raise
        raise ValueError(f"{path} is not a Cars196 annotation file ({exc!r}); expected layout: {LAYOUT['cars196']}") from exc
    return out


def load_cars196(root: Path, split: str = "train", check_files: bool = True) -> UniModalDataset:
    """Cars196: 8,054 train images (classes 1-98), 8,131 test (99-196)."""
    annos = _read_cars_annos(root / "cars_annos.mat")
    contained = ContainedRoot(root)
    images: List[ImageRecord] = []
    labels: List[int] = []
    for rel, c in sorted(annos):
        if _class_split(c, split, 98):
            images.append(ImageRecord(id=rel, path=contained.path(rel, f"{root / 'cars_annos.mat'}: annotation {rel!r}")))
            labels.append(c)
    _check_files("cars196", images, check_files)
    return UniModalDataset("cars196", split, images, np.asarray(labels, dtype=np.int64), root=root)


def load_sop(root: Path, split: str = "train", check_files: bool = True) -> UniModalDataset:
    """Stanford Online Products: 59,551 train images (11,318 classes), 60,502 test (11,316)."""
    path = root / ("Ebay_train.txt" if split == "train" else "Ebay_test.txt")
    if not path.is_file():
        raise FileNotFoundError(f"sop {split} list not found at {path}; expected layout: {LAYOUT['sop']}")
    rows: List[Tuple[int, int, int, str, int]] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts or (lineno == 1 and not parts[0].isdigit()):
                continue  # blank line or the header
            if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
                raise ValueError(f"{path}:{lineno}: expected 'image_id class_id super_class_id path'")
            rows.append((int(parts[0]), int(parts[1]), int(parts[2]), parts[3], lineno))
    rows.sort()
    contained = ContainedRoot(root)
    images = [ImageRecord(id=r[3], path=contained.path(r[3], f"{path}:{r[4]}")) for r in rows]
    _check_files("sop", images, check_files)
    return UniModalDataset(
        "sop",
        split,
        images,
        np.asarray([r[1] for r in rows], dtype=np.int64),
        categories=[str(r[2]) for r in rows],
        root=root,
    )

