"""Fashion-MNIST (Debian ``dataset-fashion-mnist``, MIT): class-disjoint retrieval.

Layout in the data home (``gssf data prepare fashion-mnist``)::

    fashion-mnist/train-images-idx3-ubyte.gz   60,000 x 28 x 28
    fashion-mnist/train-labels-idx1-ubyte.gz
    fashion-mnist/t10k-images-idx3-ubyte.gz    10,000 x 28 x 28
    fashion-mnist/t10k-labels-idx1-ubyte.gz

Splits follow the CUB-style class-disjoint protocol, from the official files:

* ``train``: classes 0-4 of the official training file (30,000 images);
* ``val``: classes 0-4 of the official test file (5,000 held-out items of the training
  classes, for model selection);
* ``test``: classes 5-9 of the official test file (5,000 images; leave-one-out).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from gssf.data.base import ImageRecord, UniModalDataset
from gssf.errors import GssfError

CLASS_NAMES: Tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: split -> (official file, classes)
SPLITS: Dict[str, Tuple[str, Tuple[int, ...]]] = {
    "train": ("train", (0, 1, 2, 3, 4)),
    "val": ("t10k", (0, 1, 2, 3, 4)),
    "test": ("t10k", (5, 6, 7, 8, 9)),
}
LAYOUT = "ROOT/{train,t10k}-images-idx3-ubyte.gz and ROOT/{train,t10k}-labels-idx1-ubyte.gz (IDX format)"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array."""
    if not path.is_file():
        raise FileNotFoundError(f"Fashion-MNIST file not found at {path}; expected layout: {LAYOUT}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # a damaged or cut gzip stream
        raise GssfError(f"cannot read {path} ({type(exc).__name__}: {exc}); expected layout: {LAYOUT}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file; expected layout: {LAYOUT}")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: {body.size} values for shape {dims}")
    return body.reshape(dims)


def load_fashion_mnist(root: Path, split: str = "train") -> UniModalDataset:
    """A class-disjoint split of Fashion-MNIST; images are (28, 28) uint8 arrays."""
    source, classes = SPLITS[split]
    img_file, lbl_file = FILES[source]
    images = read_idx(root / img_file)
    labels = read_idx(root / lbl_file).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels in {source} files")
    keep = np.flatnonzero(np.isin(labels, classes))
    return UniModalDataset(
        name="fashion-mnist",
        split=split,
        images=[ImageRecord(id=f"{source}/{i:05d}", array=images[i]) for i in keep],
        labels=labels[keep],
        categories=[CLASS_NAMES[c] for c in labels[keep]],
        label_names={c: CLASS_NAMES[c] for c in classes},
        root=root,
        meta={"source": source, "classes": list(classes)},
    )
