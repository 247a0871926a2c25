"""Person re-ID folders: Market-1501 and DukeMTMC-reID.

Layout (both)::

    ROOT/bounding_box_train/   split "train"
    ROOT/query/                split "query"
    ROOT/bounding_box_test/    split "gallery"

File names: Market-1501 ``PPPP_cCsS_FFFFFF_BB.jpg`` (6 cameras), DukeMTMC-reID
``PPPP_cC_fFFFFFFF.jpg`` (8 cameras). Person id -1 marks junk boxes and is dropped;
id 0 marks distractors, kept in the gallery as the protocol says (dropped from train).
Cameras are kept 1-based as in the names. Files are sorted by name.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from gssf.data.base import ImageRecord, UniModalDataset
from gssf.data.paths import ContainedRoot

FOLDERS: Dict[str, str] = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
PATTERNS: Dict[str, "re.Pattern[str]"] = {
    "market1501": re.compile(r"^(-?\d+)_c(\d)s\d+_\d+_\d+\.jpg$"),
    "dukemtmc": re.compile(r"^(-?\d+)_c(\d)_f\d+\.jpg$"),
}
NUM_CAMERAS = {"market1501": 6, "dukemtmc": 8}
LAYOUT = {
    "market1501": "ROOT/bounding_box_train/, ROOT/query/, ROOT/bounding_box_test/ with files PPPP_cCsS_FFFFFF_BB.jpg",
    "dukemtmc": "ROOT/bounding_box_train/, ROOT/query/, ROOT/bounding_box_test/ with files PPPP_cC_fFFFFFFF.jpg",
}


def parse_name(name: str, dataset: str) -> Tuple[int, int]:
    """(person id, camera) from a file name; ``ValueError`` when it does not match."""
    m = PATTERNS[dataset].match(name)
    if m is None:
        raise ValueError(f"unexpected {dataset} file name {name!r}; expected layout: {LAYOUT[dataset]}")
    pid, cam = int(m.group(1)), int(m.group(2))
    if not 1 <= cam <= NUM_CAMERAS[dataset]:
        raise ValueError(f"{dataset} file {name!r} has camera {cam}; expected 1-{NUM_CAMERAS[dataset]}")
    return pid, cam


def load_reid_folder(root: Path, split: str, dataset: str) -> UniModalDataset:
    """One split of a Market-1501-style folder."""
    folder = root / FOLDERS[split]
    if not folder.is_dir():
        raise FileNotFoundError(f"{dataset} {split} folder not found at {folder}; expected layout: {LAYOUT[dataset]}")
    images: List[ImageRecord] = []
    pids: List[int] = []
    cams: List[int] = []
    junk = distractors = 0
    contained = ContainedRoot(root)
    for path in sorted(folder.glob("*.jpg"), key=lambda p: p.name):
        contained.check(path, f"{dataset} {split} folder {folder}")  # a symlink may point anywhere
        pid, cam = parse_name(path.name, dataset)
        if pid == -1:  # junk: not a person, removed by the protocol
            junk += 1
            continue
        if pid == 0:
            distractors += 1
            if split != "gallery":  # distractors only make sense as gallery clutter
                continue
        images.append(ImageRecord(id=f"{FOLDERS[split]}/{path.name}", path=path))
        pids.append(pid)
        cams.append(cam)
    return UniModalDataset(
        name=dataset,
        split=split,
        images=images,
        labels=np.asarray(pids, dtype=np.int64),
        cams=np.asarray(cams, dtype=np.int64),
        root=root,
        meta={"junk_dropped": junk, "distractors": distractors if split == "gallery" else 0},
    )


def load_market1501(root: Path, split: str = "train") -> UniModalDataset:
    """Market-1501 (train 12,936 / query 3,368 / gallery 15,913 after dropping junk)."""
    return load_reid_folder(root, split, "market1501")


def load_dukemtmc(root: Path, split: str = "train") -> UniModalDataset:
    """DukeMTMC-reID (train 16,522 / query 2,228 / gallery 17,661)."""
    return load_reid_folder(root, split, "dukemtmc")
