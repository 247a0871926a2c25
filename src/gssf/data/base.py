"""Dataset containers shared by every loader.

Two kinds exist, matching the two families of retrieval tasks:

* :class:`CrossModalDataset`: images, captions and ``txt2img`` (caption -> image
  index; any number of captions per image). Image-text retrieval. Datasets where one
  caption describes many images (a caption per emoji, drawn in nine styles) also carry
  ``image_groups`` and ``text_groups``: image ``i`` and caption ``j`` match when their
  groups are equal (``txt2img`` then points at the first image of the caption's group).
* :class:`UniModalDataset`: images with ``labels`` (identity or class), ``cams``
  (camera, re-ID only) and optional ``categories``. Re-ID and fine-grained retrieval.

Either may carry precomputed features (``image_features``/``text_features``), which
:func:`gssf.features.get_features` then returns as they are instead of encoding.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

if TYPE_CHECKING:  # PIL stays a lazy import: ``import gssf.data`` must not need it
    from PIL.Image import Image as PILImage


@dataclass(eq=False)
class ImageRecord:
    """One image: a file (``path``) or an in-memory ``array`` (H, W) or (H, W, 3) uint8.

    ``id`` is a stable name (a relative path or a code), the same on every machine.
    """

    id: str
    path: Optional[Path] = None
    array: Optional[np.ndarray] = None

    def load(self) -> "PILImage":
        """Open the image as RGB (transparency composited onto white)."""
        from gssf.data.images import load_rgb

        if self.array is not None:
            return load_rgb(self.array)
        if self.path is None:
            raise ValueError(f"image {self.id!r} has neither a path nor pixels (precomputed features only)")
        return load_rgb(self.path)

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else ("array" if self.array is not None else "none")
        return f"ImageRecord(id={self.id!r}, {where})"


def _check_split_not_empty(name: str, split: str, n: int, where: Optional[Path]) -> None:
    if n == 0:
        at = f" at {where}" if where is not None else ""
        raise ValueError(f"split {split!r} of dataset {name!r} is empty{at}")


def _hash_strings(h: "hashlib._Hash", items: Sequence[str]) -> None:
    for s in items:
        h.update(s.encode("utf-8"))
        h.update(b"\0")


@dataclass(eq=False)
class CrossModalDataset:
    """Images and captions; ``txt2img[j]`` is the image index of caption ``j``.

    ``image_groups`` (N_img,) and ``text_groups`` (N_txt,), given together or not at all,
    make relevance "same group" on both sides (many images per caption and many captions per
    image); every caption's group must have an image. Without them the groups are
    ``arange(N_img)`` and ``txt2img`` (:meth:`groups`).
    """

    name: str
    split: str
    images: List[ImageRecord]
    captions: List[str]
    txt2img: np.ndarray
    categories: Optional[List[str]] = None  # one per image, e.g. the Tux Paint folder
    image_features: Optional[np.ndarray] = None  # (N_img, D) or (N_img, R, D), precomputed
    text_features: Optional[np.ndarray] = None  # (N_txt, D), precomputed
    root: Optional[Path] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    image_groups: Optional[np.ndarray] = None  # (N_img,) int64: relevance by group (with text_groups)
    text_groups: Optional[np.ndarray] = None  # (N_txt,) int64

    kind = "cross-modal"

    def __post_init__(self) -> None:
        self.txt2img = np.asarray(self.txt2img, dtype=np.int64).reshape(-1)
        n_img = len(self.images)
        _check_split_not_empty(self.name, self.split, n_img, self.root)
        self.image_groups, self.text_groups = check_groups(
            self.image_groups, self.text_groups, n_img, len(self.captions), f"{self.name}/{self.split}"
        )
        if len(self.captions) != len(self.txt2img):
            raise ValueError(
                f"{self.name}/{self.split}: {len(self.captions)} captions but {len(self.txt2img)} txt2img entries"
            )
        if len(self.txt2img) and (self.txt2img.min() < 0 or self.txt2img.max() >= n_img):
            raise ValueError(f"{self.name}/{self.split}: txt2img points outside the {n_img} images")
        if self.image_groups is not None and self.text_groups is not None and len(self.txt2img):
            bad = np.flatnonzero(self.image_groups[self.txt2img] != self.text_groups)
            if bad.size:
                raise ValueError(
                    f"{self.name}/{self.split}: txt2img of caption {int(bad[0])} points at an image of another group"
                )
        if self.categories is not None and len(self.categories) != n_img:
            raise ValueError(f"{self.name}/{self.split}: {len(self.categories)} categories for {n_img} images")
        if self.image_features is not None and len(self.image_features) != n_img:
            raise ValueError(
                f"{self.name}/{self.split}: {len(self.image_features)} image feature rows for {n_img} images"
            )
        if self.text_features is not None and len(self.text_features) != len(self.captions):
            raise ValueError(
                f"{self.name}/{self.split}: {len(self.text_features)} text feature rows for {len(self.captions)} captions"
            )

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def grouped(self) -> bool:
        """True when relevance is by group (``image_groups`` / ``text_groups``)."""
        return self.image_groups is not None

    def groups(self) -> "tuple[np.ndarray, np.ndarray]":
        """``(image_groups, text_groups)``: image ``i`` and caption ``j`` match when they are equal."""
        if self.image_groups is not None and self.text_groups is not None:
            return self.image_groups, self.text_groups
        return np.arange(self.num_images, dtype=np.int64), self.txt2img

    def img2txt(self) -> List[List[int]]:
        """Caption indices of each image, in caption order."""
        out: List[List[int]] = [[] for _ in self.images]
        for j, i in enumerate(self.txt2img.tolist()):
            out[i].append(j)
        return out

    def image(self, i: int) -> "PILImage":
        """Image ``i`` as an RGB PIL image."""
        return self.images[i].load()

    def subset(self, max_images: int) -> "CrossModalDataset":
        """The first ``max_images`` images and their captions (a deterministic prefix)."""
        if max_images >= self.num_images:
            return self
        return self.take_images(np.arange(max_images), meta={**self.meta, "subset": max_images})[0]

    def take_images(self, keep: np.ndarray, meta: Optional[Dict[str, Any]] = None) -> "tuple[CrossModalDataset, np.ndarray]":
        """The images ``keep`` (sorted indices) and the captions that still match one of them.

        Returns the dataset and the kept caption rows. Without groups a caption goes with its
        image; with groups it stays while its group keeps an image (``txt2img`` is re-pointed
        at the group's first kept image).
        """
        keep = np.asarray(keep, dtype=np.int64)
        new_index = np.full(self.num_images, -1, dtype=np.int64)
        new_index[keep] = np.arange(len(keep))
        if self.image_groups is None or self.text_groups is None:
            rows = np.flatnonzero(new_index[self.txt2img] >= 0)
            txt2img = new_index[self.txt2img[rows]]
            image_groups = text_groups = None
        else:
            image_groups = self.image_groups[keep]
            first: Dict[int, int] = {}
            for i, g in enumerate(image_groups.tolist()):
                first.setdefault(g, i)
            rows = np.asarray([j for j, g in enumerate(self.text_groups.tolist()) if g in first], dtype=np.int64)
            text_groups = self.text_groups[rows]
            txt2img = np.asarray([first[g] for g in text_groups.tolist()], dtype=np.int64)
        sub = CrossModalDataset(
            name=self.name,
            split=self.split,
            images=[self.images[i] for i in keep.tolist()],
            captions=[self.captions[j] for j in rows.tolist()],
            txt2img=txt2img,
            categories=None if self.categories is None else [self.categories[i] for i in keep.tolist()],
            image_features=None if self.image_features is None else self.image_features[keep],
            text_features=None if self.text_features is None else self.text_features[rows],
            root=self.root,
            meta=dict(self.meta if meta is None else meta),
            image_groups=image_groups,
            text_groups=text_groups,
        )
        return sub, rows

    def fingerprint(self) -> Dict[str, str]:
        """Content hashes of the image list and of the captions (cache keys)."""
        hi = hashlib.sha1(f"{self.name}\0{self.split}\0".encode())
        _hash_strings(hi, [r.id for r in self.images])
        ht = hashlib.sha1(hi.hexdigest().encode())
        _hash_strings(ht, self.captions)
        ht.update(self.txt2img.tobytes())
        if self.image_groups is not None and self.text_groups is not None:
            ht.update(self.image_groups.tobytes())
            ht.update(self.text_groups.tobytes())
        return {"images": hi.hexdigest(), "captions": ht.hexdigest()}

    def __repr__(self) -> str:
        return (
            f"CrossModalDataset(name={self.name!r}, split={self.split!r}, "
            f"images={self.num_images}, captions={self.num_captions})"
        )


def check_groups(
    image_groups: Any, text_groups: Any, num_images: int, num_texts: int, where: str
) -> "tuple[Optional[np.ndarray], Optional[np.ndarray]]":
    """Validated ``(image_groups, text_groups)`` as int64 arrays, or ``(None, None)``."""
    if image_groups is None and text_groups is None:
        return None, None
    if image_groups is None or text_groups is None:
        raise ValueError(f"{where}: image_groups and text_groups go together (one of them is missing)")
    out = []
    for what, value, n in (("image_groups", image_groups, num_images), ("text_groups", text_groups, num_texts)):
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{where}: {what} must hold integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64).reshape(-1)
        if len(arr) != n:
            raise ValueError(f"{where}: {len(arr)} {what} for {n} {what.split('_')[0]}s")
        out.append(arr)
    orphans = np.setdiff1d(out[1], out[0])
    if orphans.size:
        raise ValueError(
            f"{where}: {orphans.size} caption group(s) have no image, e.g. group {int(orphans[0])}: every caption "
            f"needs a matching image"
        )
    return out[0], out[1]


@dataclass
class UniItem:
    """One item of a :class:`UniModalDataset`."""

    image: ImageRecord
    label: int
    cam: Optional[int]
    category: Optional[str]


@dataclass(eq=False)
class UniModalDataset:
    """Images with labels (identity or class), optional cameras and categories."""

    name: str
    split: str
    images: List[ImageRecord]
    labels: np.ndarray
    cams: Optional[np.ndarray] = None
    categories: Optional[List[str]] = None
    label_names: Optional[Dict[int, str]] = None
    image_features: Optional[np.ndarray] = None  # (N, D), precomputed
    root: Optional[Path] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    kind = "uni-modal"

    def __post_init__(self) -> None:
        n = len(self.images)
        _check_split_not_empty(self.name, self.split, n, self.root)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != n:
            raise ValueError(f"{self.name}/{self.split}: {len(self.labels)} labels for {n} images")
        if self.cams is not None:
            self.cams = np.asarray(self.cams, dtype=np.int64).reshape(-1)
            if len(self.cams) != n:
                raise ValueError(f"{self.name}/{self.split}: {len(self.cams)} cameras for {n} images")
        if self.categories is not None and len(self.categories) != n:
            raise ValueError(f"{self.name}/{self.split}: {len(self.categories)} categories for {n} images")
        if self.image_features is not None and len(self.image_features) != n:
            raise ValueError(f"{self.name}/{self.split}: {len(self.image_features)} feature rows for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_images(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return int(np.unique(self.labels).size)

    def __getitem__(self, i: int) -> UniItem:
        return UniItem(
            image=self.images[i],
            label=int(self.labels[i]),
            cam=None if self.cams is None else int(self.cams[i]),
            category=None if self.categories is None else self.categories[i],
        )

    def __iter__(self) -> Iterator[UniItem]:
        for i in range(len(self)):
            yield self[i]

    def image(self, i: int) -> "PILImage":
        """Image ``i`` as an RGB PIL image."""
        return self.images[i].load()

    def subset(self, max_images: int) -> "UniModalDataset":
        """The first ``max_images`` items (a deterministic prefix)."""
        if max_images >= len(self):
            return self
        sl = slice(0, max_images)
        return UniModalDataset(
            name=self.name,
            split=self.split,
            images=self.images[sl],
            labels=self.labels[sl],
            cams=None if self.cams is None else self.cams[sl],
            categories=None if self.categories is None else self.categories[sl],
            label_names=self.label_names,
            image_features=None if self.image_features is None else self.image_features[sl],
            root=self.root,
            meta={**self.meta, "subset": max_images},
        )

    def fingerprint(self) -> Dict[str, str]:
        """Content hash of the image list, labels and cameras (cache keys)."""
        h = hashlib.sha1(f"{self.name}\0{self.split}\0".encode())
        _hash_strings(h, [r.id for r in self.images])
        h.update(self.labels.tobytes())
        if self.cams is not None:
            h.update(self.cams.tobytes())
        return {"images": h.hexdigest()}

    def __repr__(self) -> str:
        cams = "" if self.cams is None else f", cams={np.unique(self.cams).size}"
        return (
            f"UniModalDataset(name={self.name!r}, split={self.split!r}, images={len(self)}, "
            f"labels={self.num_classes}{cams})"
        )


def captioned_groups(
    uni: "UniModalDataset", texts: Dict[int, List[str]], name: str, meta: Optional[Dict[str, Any]] = None
) -> CrossModalDataset:
    """A grouped :class:`CrossModalDataset` from labelled images and captions per label.

    Images of ``uni`` whose label has captions in ``texts`` (label -> captions) are kept, in
    order; captions follow in label order. ``image_groups`` are the labels, ``text_groups``
    the label of each caption, ``categories`` those of ``uni``; ``meta["images_of"]`` names
    ``uni``, whose image feature cache the new dataset reads.
    """
    labels = sorted(k for k, v in texts.items() if v)
    keep = np.flatnonzero(np.isin(uni.labels, np.asarray(labels, dtype=np.int64)))
    image_groups = uni.labels[keep]
    first: Dict[int, int] = {}
    for i, g in enumerate(image_groups.tolist()):
        first.setdefault(g, i)
    labels = [g for g in labels if g in first]
    captions = [t for g in labels for t in texts[g]]
    text_groups = np.asarray([g for g in labels for _ in texts[g]], dtype=np.int64)
    return CrossModalDataset(
        name=name,
        split=uni.split,
        images=[uni.images[i] for i in keep.tolist()],
        captions=captions,
        txt2img=np.asarray([first[g] for g in text_groups.tolist()], dtype=np.int64),
        categories=None if uni.categories is None else [uni.categories[i] for i in keep.tolist()],
        root=uni.root,
        meta={**(meta or {}), "images_of": uni.name},  # one image feature cache with ``uni``
        image_groups=image_groups,
        text_groups=text_groups,
    )
