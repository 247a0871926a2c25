"""Karpathy split JSON (Flickr30K, MS-COCO) and the generic ``captions.jsonl``.

Karpathy layout::

    ROOT/dataset_flickr30k.json          or dataset_coco.json
    ROOT/flickr30k-images/<filename>     Flickr30K
    ROOT/<filepath>/<filename>           COCO (filepath is train2014 or val2014)

``images[].split`` is ``train``, ``val``, ``test`` or ``restval``; ``restval`` joins
``train`` unless ``restval=False``. Each image keeps its first ``captions_per_image``
sentences (5, the published protocol); an image with fewer is an error.

Generic layout::

    ROOT/captions.jsonl   one {"image": "rel/path", "caption": "...", "split": "..."} a line
    ROOT/<rel/path>       images, relative to ROOT
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from gssf.data.base import CrossModalDataset, ImageRecord
from gssf.data.paths import ContainedRoot
from gssf.errors import GssfError

KARPATHY_LAYOUT = {
    "flickr30k": "ROOT/dataset_flickr30k.json (Karpathy split: images[].filename, split, sentences[].raw) "
    "and ROOT/flickr30k-images/<filename>",
    "coco": "ROOT/dataset_coco.json (Karpathy split: images[].filepath, filename, split, sentences[].raw) "
    "and ROOT/<filepath>/<filename> (train2014/, val2014/)",
}
JSONL_LAYOUT = 'ROOT/captions.jsonl with one {"image": "rel/path", "caption": "...", "split": "..."} per line, images under ROOT'


def _missing_images(paths: List[Path]) -> List[Path]:
    return [p for p in paths if not p.is_file()]


def _check_images(name: str, paths: List[Path], layout: str) -> None:
    missing = _missing_images(paths)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} {name} images not found, first at {missing[0]}; expected layout: {layout}"
        )


def _image_path(images: ContainedRoot, name: str, entry: Dict[str, Any], where: str, sub: str) -> Tuple[str, Path]:
    """(stable id, path) of a Karpathy image entry, kept inside the dataset root."""
    filename = entry.get("filename")
    if not filename:
        raise GssfError(f"{where} has no filename; expected layout: {KARPATHY_LAYOUT[name]}")
    if not isinstance(filename, str):
        raise GssfError(f"{where}: filename must be a string, got {filename!r}")
    filepath = entry.get("filepath")
    if filepath:  # COCO
        if not isinstance(filepath, str):
            raise GssfError(f"{where}: filepath must be a string, got {filepath!r}")
        key = f"{filepath}/{filename}"
        return key, images.path(key, where)
    return filename, images.path(f"{sub}/{filename}", where)


def _sentences(entry: Dict[str, Any], where: str) -> List[str]:
    sents = entry.get("sentences", [])
    if not isinstance(sents, list):
        raise GssfError(f"{where}: sentences must be a list, got {type(sents).__name__}")
    out: List[str] = []
    for k, s in enumerate(sents):
        raw = s.get("raw", "") if isinstance(s, dict) else None
        if not isinstance(raw, str):
            raise GssfError(f"{where}: sentences[{k}].raw must be a string, got {raw!r}")
        out.append(raw.strip())
    return out


def load_karpathy(
    root: Path,
    split: str = "train",
    name: str = "flickr30k",
    restval: bool = True,
    captions_per_image: Optional[int] = 5,
    check_files: bool = True,
) -> CrossModalDataset:
    """Load ``split`` of a Karpathy-style JSON (Flickr30K or COCO).

    Args:
        restval: count COCO's ``restval`` images as ``train`` (the usual 113,287-image train).
        captions_per_image: keep this many sentences per image (None: all of them).
        check_files: stat every image of the split so that a missing one fails here.
    """
    layout = KARPATHY_LAYOUT[name]
    js = root / f"dataset_{name}.json"
    if not js.is_file():
        raise FileNotFoundError(f"{name} annotations not found at {js}; expected layout: {layout}")
    try:
        with open(js, encoding="utf-8") as fh:
            data = json.load(fh)
        entries = data["images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{js} is not a Karpathy split JSON ({exc}); expected layout: {layout}") from exc
    if not isinstance(entries, list):
        raise GssfError(f"{js}: 'images' must be a list; expected layout: {layout}")
    wanted = {split} | ({"restval"} if split == "train" and restval else set())
    contained = ContainedRoot(root)
    sub = next((s for s in ("flickr30k-images", "images") if (root / s).is_dir()), "flickr30k-images")
    images: List[ImageRecord] = []
    captions: List[str] = []
    txt2img: List[int] = []
    for n, entry in enumerate(entries):
        where = f"{js} images[{n}]"
        if not isinstance(entry, dict):
            raise GssfError(f"{where} is {type(entry).__name__}, not an object; expected layout: {layout}")
        if entry.get("split") not in wanted:
            continue
        sents = _sentences(entry, where)
        if captions_per_image is not None:
            if len(sents) < captions_per_image:
                raise ValueError(
                    f"caption count mismatch in {js}: image {entry.get('filename')!r} has {len(sents)} "
                    f"captions; expected at least {captions_per_image}"
                )
            sents = sents[:captions_per_image]
        key, path = _image_path(contained, name, entry, where, sub)
        idx = len(images)
        images.append(ImageRecord(id=key, path=path))
        captions.extend(sents)
        txt2img.extend([idx] * len(sents))
    if check_files:
        _check_images(name, [r.path for r in images if r.path is not None], layout)
    return CrossModalDataset(
        name=name,
        split=split,
        images=images,
        captions=captions,
        txt2img=np.asarray(txt2img, dtype=np.int64),
        root=root,
        meta={"restval": restval, "captions_per_image": captions_per_image},
    )


def load_flickr30k(root: Path, split: str = "train", **kw: Any) -> CrossModalDataset:
    """Flickr30K, Karpathy split (29,000 / 1,014 / 1,000 images)."""
    return load_karpathy(root, split, name="flickr30k", **kw)


def load_coco(root: Path, split: str = "train", **kw: Any) -> CrossModalDataset:
    """MS-COCO, Karpathy split (113,287 with restval / 5,000 / 5,000 images)."""
    return load_karpathy(root, split, name="coco", **kw)


def load_captions_jsonl(root: Path, split: str = "train", check_files: bool = True) -> CrossModalDataset:
    """The generic ``captions.jsonl`` layout; images are grouped by path in file order."""
    path = root / "captions.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"captions not found at {path}; expected layout: {JSONL_LAYOUT}")
    index: Dict[str, int] = {}
    contained = ContainedRoot(root)
    images: List[ImageRecord] = []
    captions: List[str] = []
    txt2img: List[int] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
                image, caption, row_split = row["image"], row["caption"], row["split"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{where}: malformed line ({exc!r}); expected layout: {JSONL_LAYOUT}") from exc
            for key, value in (("image", image), ("caption", caption)):
                if not isinstance(value, str):
                    raise GssfError(
                        f"{where}: {key!r} must be a string, got {type(value).__name__} {value!r}; "
                        f"expected layout: {JSONL_LAYOUT}"
                    )
            if row_split != split:
                continue
            if image not in index:
                index[image] = len(images)
                images.append(ImageRecord(id=image, path=contained.path(image, where)))
            captions.append(caption)
            txt2img.append(index[image])
    if check_files:
        _check_images("captions-jsonl", [r.path for r in images if r.path is not None], JSONL_LAYOUT)
    return CrossModalDataset(
        name="captions-jsonl",
        split=split,
        images=images,
        captions=captions,
        txt2img=np.asarray(txt2img, dtype=np.int64),
        root=root,
    )
