"""Feature extraction with an on-disk cache, and the ``features.npz`` file format.

:func:`get_features` encodes a dataset split with pretrained encoders (or takes its
precomputed features as they are) and returns a :class:`FeatureSet` of float32 numpy
arrays. Encoded features are cached under ``<data home>/features/<dataset>/<split>/``,
one file per modality, keyed by the dataset's content, the encoder and its settings
(resolution) and the versions of the packages that compute them; a second call reads
the cache. Files are written atomically.

``features.npz`` (what :meth:`FeatureSet.save` writes and :func:`load_features_file`
reads; also the format of a user's own features):

=============== =================== ==========================================
key             shape / dtype       meaning
=============== =================== ==========================================
``image``       (N_img, D) float    image features ((N_img, R, D): regions)
``text``        (N_txt, D) float    caption features (cross-modal)
``txt2img``     (N_txt,) int        image index of each caption (cross-modal)
``labels``      (N_img,) int        identity / class (uni-modal)
``cams``        (N_img,) int        camera (re-ID, optional)
``image_paths`` (N_img,) str        optional
``image_ids``   (N_img,) str        optional
``captions``    (N_txt,) str        optional
``categories``  (N_img,) str        optional
``meta``        () str              optional JSON: dataset, split, encoders ...
=============== =================== ==========================================
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from gssf.data.home import PathLike, features_dir

#: Bump to invalidate every cached feature file (change of preprocessing or layout).
CACHE_FORMAT = 1
LAYOUT = (
    "features.npz with arrays image [N, D] and either text [M, D] + txt2img [M] (cross-modal) "
    "or labels [N] (+ cams [N]) (uni-modal); optional string arrays image_paths, captions"
)
_STRING_KEYS = ("image_paths", "image_ids", "captions", "categories")


@dataclass(eq=False)
class FeatureSet:
    """Features of one dataset split, as float32 numpy arrays.

    Cross-modal: ``image`` (N_img, Di), ``text`` (N_txt, Dt), ``txt2img`` (N_txt,) int64,
    with ``image_paths`` and ``captions`` for display. Uni-modal: ``image`` (N, D),
    ``labels`` (N,) int64, ``cams`` (N,) int64 or None.
    """

    image: np.ndarray
    text: Optional[np.ndarray] = None
    txt2img: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    cams: Optional[np.ndarray] = None
    image_paths: List[str] = field(default_factory=list)
    image_ids: List[str] = field(default_factory=list)
    captions: List[str] = field(default_factory=list)
    categories: Optional[List[str]] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        if self.text is not None:
            if self.txt2img is None:
                raise ValueError("a FeatureSet with text needs txt2img")
            self.txt2img = np.asarray(self.txt2img, dtype=np.int64).reshape(-1)
            if len(self.txt2img) != len(self.text):
                raise ValueError(f"{len(self.text)} text rows but {len(self.txt2img)} txt2img entries")
            if len(self.txt2img) and (self.txt2img.min() < 0 or self.txt2img.max() >= n):
                raise ValueError(f"txt2img points outside the {n} images")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
            if len(self.labels) != n:
                raise ValueError(f"{len(self.labels)} labels for {n} images")
        if self.cams is not None:
            self.cams = np.asarray(self.cams, dtype=np.int64).reshape(-1)
            if len(self.cams) != n:
                raise ValueError(f"{len(self.cams)} cameras for {n} images")
        for key in ("image_paths", "image_ids", "categories"):
            value = getattr(self, key)
            if value and len(value) != n:
                raise ValueError(f"{len(value)} {key} for {n} images")
        if self.captions and self.text is not None and len(self.captions) != len(self.text):
            raise ValueError(f"{len(self.captions)} captions for {len(self.text)} text rows")

    @property
    def kind(self) -> str:
        """``"cross-modal"`` when text features are present, else ``"uni-modal"``."""
        return "cross-modal" if self.text is not None else "uni-modal"

    @property
    def num_images(self) -> int:
        return int(self.image.shape[0])

    @property
    def num_texts(self) -> int:
        return 0 if self.text is None else int(self.text.shape[0])

    def summary(self) -> str:
        """One line: kind, shapes and where the features came from."""
        parts = [f"image {tuple(self.image.shape)}"]
        if self.text is not None:
            parts.append(f"text {tuple(self.text.shape)}")
        if self.labels is not None:
            parts.append(f"{np.unique(self.labels).size} labels")
        if self.cams is not None:
            parts.append(f"{np.unique(self.cams).size} cameras")
        name = f"{self.meta.get('dataset', '?')}/{self.meta.get('split', '?')}"
        return f"{name}: {self.kind}, " + ", ".join(parts)

    def save(self, path: PathLike) -> Path:
        """Write the set as one ``features.npz`` (atomically)."""
        from gssf.utils.io import atomic_path

        arrays: Dict[str, np.ndarray] = {"image": np.asarray(self.image, dtype=np.float32)}
        for key in ("text", "txt2img", "labels", "cams"):
            value = getattr(self, key)
            if value is not None:
                arrays[key] = np.asarray(value, dtype=np.float32 if key == "text" else np.int64)
        for key in _STRING_KEYS:
            value = getattr(self, key)
            if value:
                arrays[key] = np.asarray(value, dtype=str)
        arrays["meta"] = np.asarray(json.dumps(self.meta, default=str))
        target = Path(path)
        with atomic_path(target, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
        return target


def load_features_file(path: PathLike) -> FeatureSet:
    """Read a ``features.npz`` (see the module docstring for its keys)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"features file not found at {p}; expected layout: {LAYOUT}")
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot read {p} ({exc}); expected layout: {LAYOUT}") from exc
    if "image" not in data:
        raise ValueError(f"{p} has no 'image' array (keys: {sorted(data)}); expected layout: {LAYOUT}")
    if "text" in data and "txt2img" not in data:
        raise ValueError(f"{p} has 'text' but no 'txt2img'; expected layout: {LAYOUT}")
    if "text" not in data and "labels" not in data:
        raise ValueError(f"{p} has neither 'text' + 'txt2img' nor 'labels'; expected layout: {LAYOUT}")
    meta: Dict[str, Any] = {}
    if "meta" in data:
        try:
            meta = json.loads(str(data["meta"]))
        except ValueError:
            meta = {}
    strings = {k: [str(s) for s in data[k].tolist()] for k in _STRING_KEYS if k in data}
    try:
        return FeatureSet(
            image=np.asarray(data["image"], dtype=np.float32),
            text=None if "text" not in data else np.asarray(data["text"], dtype=np.float32),
            txt2img=data.get("txt2img"),
            labels=data.get("labels"),
            cams=data.get("cams"),
            image_paths=strings.get("image_paths", []),
            image_ids=strings.get("image_ids", []),
            captions=strings.get("captions", []),
            categories=strings.get("categories"),
            meta={**meta, "source": str(p)},
        )
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}; expected layout: {LAYOUT}") from exc


# --------------------------------------------------------------------------- cache


def _key(parts: Dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _encoder_key(name: str, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """What decides an encoder's output, without loading its weights."""
    from gssf.encoders.registry import get_encoder_info

    from gssf.encoders.base import package_versions

    info = get_encoder_info(name)
    packages = getattr(info.factory, "packages", ())

    from gssf import __version__

    return {"encoder": info.name, "kwargs": kwargs, "versions": {"gssf": __version__, **package_versions(*packages)}}


def _read_cache(path: Path, ids: Sequence[str]) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            feats, cached_ids = z["features"], z["ids"]
    except (ValueError, OSError, KeyError):
        return None  # a damaged cache file is recomputed, not trusted
    if len(cached_ids) != len(ids) or any(a != b for a, b in zip(cached_ids.tolist(), ids)):
        return None
    return feats


def _write_cache(path: Path, feats: np.ndarray, ids: Sequence[str], meta: Dict[str, Any]) -> None:
    from gssf.utils.io import atomic_path

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, features=feats, ids=np.asarray(list(ids), dtype=str), meta=np.asarray(json.dumps(meta, default=str)))


_ENCODERS: Dict[str, Any] = {}
_MAX_ENCODERS = 4


def _encoder(name: str, device: str, kwargs: Dict[str, Any]) -> Any:
    """Create an encoder once per process: extracting several splits loads the weights once."""
    from gssf.encoders.registry import create

    key = json.dumps([name, str(device), kwargs], sort_keys=True, default=str)
    if key not in _ENCODERS:
        if len(_ENCODERS) >= _MAX_ENCODERS:
            _ENCODERS.pop(next(iter(_ENCODERS)))  # oldest first: bounded memory
        _ENCODERS[key] = create(name, device=device, **kwargs)
    return _ENCODERS[key]


def cache_path(
    dataset: Any, modality: str, encoder: str, key_parts: Dict[str, Any], home: Optional[PathLike] = None
) -> Path:
    """Cache file of one modality of ``dataset`` (a dataset object) for ``encoder``."""
    tag = f"{modality}-{encoder}"
    if modality == "image" and "resolution" in key_parts.get("kwargs", {}):
        tag += f"-{key_parts['kwargs']['resolution']}px"
    return features_dir(home) / dataset.name / dataset.split / f"{tag}-{_key(key_parts)}.npz"


def _image_key(ds: Any, encoder: str, enc_kw: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "dataset": ds.name,
        "split": ds.split,
        "root": str(ds.root) if ds.root is not None else None,
        "content": ds.fingerprint()["images"],
        **_encoder_key(encoder, enc_kw),
    }


def _text_key(ds: Any, encoder: str, enc_kw: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "dataset": ds.name,
        "split": ds.split,
        "content": ds.fingerprint()["captions"],
        **_encoder_key(encoder, enc_kw),
    }


def get_features(
    dataset: Any,
    split: Optional[str] = None,
    image_encoder: str = "efficientnet-lite0",
    text_encoder: Optional[str] = "minilm",
    resolution: int = 224,
    data_home: Optional[PathLike] = None,
    progress: bool = True,
    device: str = "cpu",
    root: Optional[PathLike] = None,
    batch_size: Optional[int] = None,
    limit: Optional[int] = None,
    force: bool = False,
    image_encoder_kwargs: Optional[Dict[str, Any]] = None,
    text_encoder_kwargs: Optional[Dict[str, Any]] = None,
    **load_kw: Any,
) -> FeatureSet:
    """Features of one split, extracted once and then read from the cache.

    Args:
        dataset: a registered name (``"tux"``) or a dataset object from :func:`gssf.data.load`.
        split: the split to load when ``dataset`` is a name (default ``"train"``).
        image_encoder / text_encoder: encoder names (:func:`gssf.encoders.list_encoders`).
        resolution: input size of the image encoder, in pixels.
        data_home: data home override (datasets and cache).
        progress: show progress bars.
        device: ``"cpu"`` or ``"cuda"``; the cache does not depend on it.
        root: the user's copy of a standard dataset.
        batch_size: encoder batch size (default: the encoder's).
        limit: keep the first ``limit`` images (and their captions): quick runs and tests.
        force: recompute even when a cache file exists.
        image_encoder_kwargs / text_encoder_kwargs: extra encoder options (``path=`` ...).
        **load_kw: options of the dataset loader.
    """
    from gssf.data.registry import load

    if isinstance(dataset, str):
        ds = load(dataset, split=split or "train", root=root, home=data_home, **load_kw)
    else:
        ds = dataset
        if split is not None and getattr(ds, "split", split) != split:
            raise ValueError(f"split={split!r} given but the dataset object is split {ds.split!r}")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        ds = ds.subset(limit)
    cross = ds.kind == "cross-modal"
    meta: Dict[str, Any] = {"dataset": ds.name, "split": ds.split, "limit": limit}
    t0 = time.perf_counter()

    ids = [r.id for r in ds.images]
    if ds.image_features is not None:
        image = ds.image_features if ds.image_features.dtype == np.float32 else np.asarray(ds.image_features, np.float32)
        meta["image"] = {"source": "precomputed", **({"path": ds.meta["source"]} if "source" in ds.meta else {})}
    else:
        img_kw = {"resolution": int(resolution), **(image_encoder_kwargs or {})}
        key = _image_key(ds, image_encoder, img_kw)
        path = cache_path(ds, "image", key["encoder"], key, data_home)
        image = None if force else _read_cache(path, ids)
        cached = image is not None
        if image is None:
            enc = _encoder(image_encoder, device, img_kw)
            image = enc.encode_images(ds.images, batch_size=batch_size, progress=progress).numpy().astype(np.float32)
            _write_cache(path, image, ids, key)
        meta["image"] = {"encoder": key["encoder"], **img_kw, "versions": key["versions"], "cache": str(path), "cached": cached}

    text = None
    if cross:
        if ds.text_features is not None:
            text = np.asarray(ds.text_features, dtype=np.float32)
            meta["text"] = {"source": "precomputed"}
        else:
            if text_encoder is None:
                raise ValueError(f"{ds.name} is cross-modal: pass a text encoder")
            txt_kw = dict(text_encoder_kwargs or {})
            key = _text_key(ds, text_encoder, txt_kw)
            path = cache_path(ds, "text", key["encoder"], key, data_home)
            caption_ids = [f"{i}:{c}" for i, c in zip(ds.txt2img.tolist(), ds.captions)]
            text = None if force else _read_cache(path, caption_ids)
            cached = text is not None
            if text is None:
                enc = _encoder(text_encoder, device, txt_kw)
                text = enc.encode_texts(ds.captions, batch_size=batch_size, progress=progress).numpy().astype(np.float32)
                _write_cache(path, text, caption_ids, key)
            meta["text"] = {"encoder": key["encoder"], **txt_kw, "versions": key["versions"], "cache": str(path), "cached": cached}
    meta["seconds"] = round(time.perf_counter() - t0, 3)

    paths = [str(r.path) if r.path is not None else "" for r in ds.images]
    return FeatureSet(
        image=image,
        text=text,
        txt2img=ds.txt2img if cross else None,
        labels=None if cross else ds.labels,
        cams=None if cross else ds.cams,
        image_paths=paths if any(paths) else [],
        image_ids=ids,
        captions=list(ds.captions) if cross else [],
        categories=getattr(ds, "categories", None),
        meta=meta,
    )
