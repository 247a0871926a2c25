"""Feature extraction with an on-disk cache, and the ``features.npz`` file format.

:func:`get_features` encodes a dataset split with pretrained encoders (or takes its
precomputed features as they are) and returns a :class:`FeatureSet` of float32 numpy
arrays. Encoded features are cached under ``<data home>/features/<dataset>/<split>/``
(``<dataset>/root-<hash>/<split>/`` for a dataset read from a user's folder), one file per
modality, keyed by the dataset's content (the bytes of every image, see
:mod:`gssf.data.content`; the captions), the encoder and its settings (resolution) and the
versions of the packages that compute them; a second call reads the cache. Files are
written atomically; a damaged one is recomputed.

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
``image_groups`` (N_img,) int       optional, with ``text_groups``: relevance by group
``text_groups`` (N_txt,) int        optional (many images per caption)
=============== =================== ==========================================
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from gssf.data.home import PathLike, data_home, features_dir
from gssf.errors import BadImageError, GssfError, UnsafeInputError

#: Bump to invalidate every cached feature file (change of preprocessing or layout).
#: 2: keys hold the content of every image; user roots get their own folder.
CACHE_FORMAT = 2
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
    image_groups: Optional[np.ndarray] = None  # (N_img,) relevance by group (with text_groups)
    text_groups: Optional[np.ndarray] = None  # (N_txt,)

    def __post_init__(self) -> None:
        from gssf.data.base import check_groups

        n = self.image.shape[0]
        self.image_groups, self.text_groups = check_groups(
            self.image_groups, self.text_groups, n, self.num_texts, "FeatureSet"
        )
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
        for key in ("text", "txt2img", "labels", "cams", "image_groups", "text_groups"):
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


def _read_npz(p: Path) -> Dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``p``; any damage is a ``GssfError`` naming the file."""
    try:
        obj = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise many types for damaged files
        raise GssfError(f"cannot read {p} ({type(exc).__name__}: {exc}); expected layout: {LAYOUT}") from exc
    if isinstance(obj, np.ndarray):
        raise GssfError(f"cannot read {p}: it holds a single array (a .npy file), not a .npz archive; expected layout: {LAYOUT}")
    data: Dict[str, np.ndarray] = {}
    with obj as z:
        for k in z.files:
            try:
                data[k] = z[k]
            except Exception as exc:  # noqa: BLE001 - truncated member, bad CRC, pickled objects ...
                raise GssfError(f"cannot read array {k!r} of {p} ({type(exc).__name__}: {exc}); expected layout: {LAYOUT}") from exc
    return data


def _check_array(p: Path, key: str, arr: np.ndarray, ndims: Sequence[int], integer: bool = False) -> np.ndarray:
    """``arr`` checked for shape and type: real numbers (``integer``: whole numbers, as int64)."""
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise GssfError(f"{p}: {key!r} must be {want}, got shape {arr.shape}; expected layout: {LAYOUT}")
    if arr.dtype.kind not in "iuf" or arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise GssfError(f"{p}: {key!r} must hold real numbers, got dtype {arr.dtype}; expected layout: {LAYOUT}")
    if arr.dtype.kind == "f":
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise GssfError(f"{p}: {key!r} has {bad} NaN or infinite values")
        if integer:
            if not np.array_equal(arr, np.round(arr)):
                raise GssfError(f"{p}: {key!r} must hold whole numbers (indices / ids), got dtype {arr.dtype} with fractions")
            return arr.astype(np.int64)
    return arr.astype(np.int64) if integer else arr


def _strings(p: Path, key: str, arr: np.ndarray) -> List[str]:
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise GssfError(f"{p}: {key!r} must be a 1-D string array, got dtype {arr.dtype} shape {arr.shape}")
    if arr.dtype.kind == "S":
        return [b.decode("utf-8", errors="replace") for b in arr.tolist()]
    return [str(s) for s in arr.tolist()]


def load_features_file(path: PathLike) -> FeatureSet:
    """Read a ``features.npz`` (see the module docstring for its keys).

    A missing file is ``FileNotFoundError``; anything else wrong (a folder, a damaged,
    empty or truncated file, a ``.npy``, missing keys, wrong shapes or dtypes, NaNs) is a
    :class:`~gssf.errors.GssfError` naming the file and what is wrong. Nothing is unpickled.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise GssfError(f"{p} is a folder, not a features file; expected layout: {LAYOUT}")
    if not p.is_file():
        raise FileNotFoundError(f"features file not found at {p}; expected layout: {LAYOUT}")
    data = _read_npz(p)
    if "image" not in data:
        raise GssfError(f"{p} has no 'image' array (keys: {sorted(data)}); expected layout: {LAYOUT}")
    if "text" in data and "txt2img" not in data:
        raise GssfError(f"{p} has 'text' but no 'txt2img'; expected layout: {LAYOUT}")
    if "text" not in data and "labels" not in data:
        raise GssfError(f"{p} has neither 'text' + 'txt2img' nor 'labels'; expected layout: {LAYOUT}")
    image = _check_array(p, "image", data["image"], (2, 3))
    if image.shape[0] == 0:
        raise GssfError(f"{p}: 'image' has no rows")
    arrays: Dict[str, Optional[np.ndarray]] = dict.fromkeys(
        ("text", "txt2img", "labels", "cams", "image_groups", "text_groups")
    )
    if "text" in data:
        arrays["text"] = _check_array(p, "text", data["text"], (2,)).astype(np.float32)
    for key in ("txt2img", "labels", "cams", "image_groups", "text_groups"):
        if key in data:
            arrays[key] = _check_array(p, key, data[key], (1,), integer=True)
    meta: Dict[str, Any] = {}
    if "meta" in data:
        try:
            parsed = json.loads(str(data["meta"]))
            meta = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            meta = {}
    strings = {k: _strings(p, k, data[k]) for k in _STRING_KEYS if k in data}
    try:
        return FeatureSet(
            image=np.asarray(image, dtype=np.float32),
            text=arrays["text"],
            txt2img=arrays["txt2img"],
            labels=arrays["labels"],
            cams=arrays["cams"],
            image_paths=strings.get("image_paths", []),
            image_ids=strings.get("image_ids", []),
            captions=strings.get("captions", []),
            categories=strings.get("categories"),
            meta={**meta, "source": str(p)},
            image_groups=arrays["image_groups"],
            text_groups=arrays["text_groups"],
        )
    except ValueError as exc:
        raise GssfError(f"{p}: {exc}; expected layout: {LAYOUT}") from exc


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


def _decode_key() -> Dict[str, Any]:
    """What decides the decoded pixels: decoder versions and the limits of gssf.data.images."""
    from gssf.data import images
    from gssf.encoders.base import package_versions

    limits = ("MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "DECODE_MAX_SIDE", "MAX_SVG_BYTES", "MAX_SVG_ELEMENTS", "MAX_SVG_DEPTH")
    return {"decoders": package_versions("pillow", "CairoSVG"), "limits": {k: getattr(images, k) for k in limits}}


@dataclass
class _Cached:
    """A cache entry: features of the kept rows, their indices, and the rows skipped."""

    features: np.ndarray
    keep: np.ndarray  # (n_kept,) int64 indices into the full list
    skipped: List[Dict[str, str]]  # {"id", "path", "reason"} of every row not kept


def _warn(msg: str) -> None:
    print(f"gssf: {msg}", file=sys.stderr, flush=True)


def _compact_sets(features: np.ndarray, element_dim: int) -> Dict[str, np.ndarray]:
    """Set rows ``(N, n * d)`` without their trailing all-zero (padding) elements.

    ``elements (sum of lengths, d)`` holds each row's elements up to its last non-zero one,
    ``lengths (N,)`` how many, ``row_width`` the padded width: :func:`_expand_sets` gives the
    same rows back, bit for bit (padding is zeros).
    """
    n, width = features.shape
    sets = features.reshape(n, width // element_dim, element_dim)
    nonzero = np.abs(sets).max(axis=2) > 0
    last = sets.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    lengths = np.where(nonzero.any(axis=1), last, 0).astype(np.int64)
    keep = np.arange(sets.shape[1])[None, :] < lengths[:, None]
    return {"elements": sets[keep], "lengths": lengths, "row_width": np.asarray(width, dtype=np.int64)}


def _expand_sets(elements: np.ndarray, lengths: np.ndarray, row_width: int) -> np.ndarray:
    """The padded ``(N, row_width)`` rows of :func:`_compact_sets`' arrays; bad arrays raise ValueError."""
    lengths = np.asarray(lengths).reshape(-1)
    if elements.ndim != 2 or elements.dtype != np.float32 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError("set arrays of the wrong shape or type")
    d = elements.shape[1]
    if d == 0 or row_width % d or lengths.size and (lengths.min() < 0 or lengths.max() > row_width // d):
        raise ValueError("set lengths outside the row width")
    if int(lengths.sum()) != len(elements):
        raise ValueError("set lengths do not add up to the stored elements")
    out = np.zeros((len(lengths), row_width // d, d), dtype=np.float32)
    out[np.arange(row_width // d)[None, :] < lengths[:, None]] = elements
    return out.reshape(len(lengths), row_width)


def _read_cache(path: Path, ids: Sequence[str]) -> Optional[_Cached]:
    """The cache entry at ``path`` if it is whole and matches ``ids``; else None (recompute).

    A damaged file (truncated, zeroed, not a zip, bad CRC, wrong shapes) is reported on
    stderr and ignored, and the fresh result replaces it. Set features stored compactly
    (:func:`_compact_sets`) come back padded.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "elements" in z.files:
                feats = _expand_sets(z["elements"], z["lengths"], int(z["row_width"]))
            else:
                feats = z["features"]
            cached_ids = z["ids"]
            keep = z["keep"] if "keep" in z.files else np.arange(len(cached_ids))
            skipped = json.loads(str(z["skipped"])) if "skipped" in z.files else []
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        n = len(ids)
        if (feats.dtype != np.float32 or feats.ndim != 2 or len(feats) != len(keep) or len(cached_ids) != len(keep)
                or not isinstance(skipped, list) or len(keep) + len(skipped) != n
                or (len(keep) and (keep.min() < 0 or keep.max() >= n or np.any(np.diff(keep) <= 0)))):  # fmt: skip
            raise ValueError("inconsistent arrays")
        if not np.isfinite(feats).all():
            raise ValueError("non-finite features")
    except Exception as exc:  # noqa: BLE001 - a cache must never be trusted, nor crash a run
        _warn(f"cache file {path} is damaged ({type(exc).__name__}: {exc}); recomputing it")
        return None
    if any(ids[int(i)] != c for i, c in zip(keep.tolist(), cached_ids.tolist())):
        return None  # another dataset's entry under the same key: recompute
    return _Cached(feats, keep, skipped)


def _write_cache(path: Path, entry: _Cached, ids: Sequence[str], meta: Dict[str, Any],
                 element_dim: Optional[int] = None) -> None:
    """Write a cache entry; with ``element_dim`` (a set encoder) the rows are stored without their padding."""
    from gssf.utils.io import atomic_path

    kept_ids = [ids[int(i)] for i in entry.keep]
    feats = entry.features
    arrays = {"features": feats}
    if element_dim and feats.ndim == 2 and feats.shape[1] % element_dim == 0:
        arrays = _compact_sets(feats, element_dim)
    try:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays, ids=np.asarray(kept_ids, dtype=str), keep=entry.keep,
                     skipped=np.asarray(json.dumps(entry.skipped)), meta=np.asarray(json.dumps(meta, default=str)))  # fmt: skip
    except OSError as exc:  # a read-only or full data home: the features are still right
        _warn(f"cannot write the cache file {path} ({exc}); features will be recomputed next time")


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


def root_tag(dataset: Any, home: Optional[PathLike] = None) -> Optional[str]:
    """``root-<hash>`` for a dataset read from a user's folder; None for the data home's own.

    The hash is of the resolved root path, so two copies of a dataset (same file names,
    different pixels) never share a cache folder.
    """
    root = getattr(dataset, "root", None)
    if root is None:
        return None
    real = os.path.realpath(root)
    home_real = os.path.realpath(data_home(home))
    if real == home_real or real.startswith(home_real.rstrip(os.sep) + os.sep):
        return None
    return "root-" + hashlib.sha1(real.encode("utf-8", errors="surrogateescape")).hexdigest()[:12]


def images_of(dataset: Any) -> str:
    """The dataset whose images ``dataset`` shows (``meta["images_of"]``, else its own name).

    A dataset built on another's images (``wesnoth-descriptions`` on ``wesnoth``'s frames)
    names it there, so that both read one image feature cache.
    """
    source = getattr(dataset, "meta", {}).get("images_of")
    return source if isinstance(source, str) and source else dataset.name


def cache_dir(dataset: Any, home: Optional[PathLike] = None, images: bool = False) -> Path:
    """``<features>/<dataset>/<split>/``, or ``<features>/<dataset>/root-<hash>/<split>/`` for a user root.

    With ``images``, ``<dataset>`` is :func:`images_of` (the image cache is shared with the
    dataset the images come from).
    """
    tag = root_tag(dataset, home)
    base = features_dir(home) / (images_of(dataset) if images else dataset.name)
    return (base / tag if tag else base) / dataset.split


def cache_path(
    dataset: Any, modality: str, encoder: str, key_parts: Dict[str, Any], home: Optional[PathLike] = None
) -> Path:
    """Cache file of one modality of ``dataset`` (a dataset object) for ``encoder``."""
    tag = f"{modality}-{encoder}"
    if modality == "image" and "resolution" in key_parts.get("kwargs", {}):
        tag += f"-{key_parts['kwargs']['resolution']}px"
    folder = cache_dir(dataset, home, images=modality == "image")
    return folder / f"{tag}-{_key(key_parts)}.npz"


def _image_key(ds: Any, encoder: str, enc_kw: Dict[str, Any], digests: Sequence[str]) -> Dict[str, Any]:
    from gssf.data.content import digest_of

    return {
        "format": CACHE_FORMAT,
        "dataset": images_of(ds),
        "split": ds.split,
        "root": os.path.realpath(ds.root) if ds.root is not None else None,
        "content": digest_of([r.id for r in ds.images], digests),
        "decode": _decode_key(),
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


def _image_label(rec: Any) -> str:
    return str(rec.path) if rec.path is not None else rec.id


def _encode_images(
    enc: Any, images: Sequence[Any], batch_size: Optional[int], progress: bool, skip_bad: bool
) -> _Cached:
    """Encode ``images``; with ``skip_bad``, images that cannot be read are left out and listed."""
    n = len(images)
    if not skip_bad:
        feats = enc.encode_images(images, batch_size=batch_size, progress=progress).numpy().astype(np.float32)
        return _Cached(feats, np.arange(n, dtype=np.int64), [])
    from gssf.data.progress import progress_bar

    size = batch_size or enc.default_batch_size
    keep: List[int] = []
    skipped: List[Dict[str, str]] = []
    out: List[np.ndarray] = []
    bar = progress_bar(n, f"{enc.name}: images", unit="item", enabled=progress)
    try:
        for start in range(0, n, size):
            chunk = []
            for i in range(start, min(n, start + size)):
                # Decode here, once: a bad image is dropped alone instead of failing its batch.
                try:
                    chunk.append(images[i].load())
                    keep.append(i)
                except (BadImageError, UnsafeInputError, OSError) as exc:
                    skipped.append({"id": images[i].id, "path": _image_label(images[i]), "reason": str(exc)})
            if chunk:
                out.append(enc.encode_images(chunk, batch_size=len(chunk), progress=False).numpy().astype(np.float32))
            bar.update(min(n, start + size) - start)
    finally:
        bar.close()
    feats = np.concatenate(out) if out else np.zeros((0, enc.dim), np.float32)
    return _Cached(feats, np.asarray(keep, dtype=np.int64), skipped)


def _first_bad(ds: Any, skipped: List[Dict[str, str]]) -> BadImageError:
    first = skipped[0]
    return BadImageError(
        f"cannot read image {first['path']} of {ds.name}/{ds.split}: {first['reason']} "
        f"(skip_bad_images=True leaves such images out)"
    )


def _keep_images(ds: Any, keep: np.ndarray) -> Tuple[Any, Optional[np.ndarray]]:
    """``ds`` restricted to images ``keep``, and the caption rows kept (None: all of them).

    Captions of dropped images go too and ``txt2img`` is renumbered; labels, cameras and
    categories follow their images.
    """
    from gssf.data.base import CrossModalDataset, UniModalDataset

    if len(keep) == ds.num_images:
        return ds, None
    images = [ds.images[i] for i in keep.tolist()]
    cats = None if ds.categories is None else [ds.categories[i] for i in keep.tolist()]
    meta = {**ds.meta, "skipped_images": ds.num_images - len(keep)}
    if isinstance(ds, CrossModalDataset):
        return ds.take_images(keep, meta=meta)
    assert isinstance(ds, UniModalDataset)
    sub_uni = UniModalDataset(
        name=ds.name, split=ds.split, images=images, labels=ds.labels[keep],
        cams=None if ds.cams is None else ds.cams[keep], categories=cats, label_names=ds.label_names,
        root=ds.root, meta=meta,
    )  # fmt: skip
    return sub_uni, None


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
    skip_bad_images: bool = False,
    **load_kw: Any,
) -> FeatureSet:
    """Features of one split, extracted once and then read from the cache.

    Args:
        dataset: a registered name (``"tux"``) or a dataset object from :func:`gssf.data.load`.
        split: the split to load when ``dataset`` is a name (default ``"train"``).
        image_encoder / text_encoder: encoder names (:func:`gssf.encoders.list_encoders`).
        resolution: input size of the image encoder, in pixels.
        data_home: data home override (datasets and cache).
        progress: show progress bars (on a terminal; one line per stage elsewhere).
        device: ``"cpu"`` or ``"cuda"``; the cache does not depend on it.
        root: the user's copy of a standard dataset.
        batch_size: encoder batch size (default: the encoder's).
        limit: keep the first ``limit`` images (and their captions): quick runs and tests.
        force: recompute even when a cache file exists.
        image_encoder_kwargs / text_encoder_kwargs: extra encoder options (``path=`` ...).
        skip_bad_images: leave out images that cannot be read (damaged, over the limits of
            :mod:`gssf.data.images`, unreadable), with their captions / labels / cameras, and
            list them in ``meta["skipped_images"]`` (``{"path", "reason"}`` each); a count is
            printed to stderr. False: the first such image raises a ``BadImageError`` naming it.
        **load_kw: options of the dataset loader.
    """
    from gssf.data.content import image_digests
    from gssf.data.images import MAX_IMAGE_BYTES, MAX_SVG_BYTES
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
    full = ds  # captions are encoded (and cached) for the whole split, then rows are picked
    caption_rows: Optional[np.ndarray] = None  # caption rows of the kept images (None: all)

    if ds.image_features is not None:
        image = ds.image_features if ds.image_features.dtype == np.float32 else np.asarray(ds.image_features, np.float32)
        meta["image"] = {"source": "precomputed", **({"path": ds.meta["source"]} if "source" in ds.meta else {})}
        skipped: List[Dict[str, str]] = []
    else:
        img_kw = {"resolution": int(resolution), **(image_encoder_kwargs or {})}
        folder = cache_dir(ds, data_home, images=True)
        digests = image_digests(ds.images, index_path=folder.parent / f"{ds.split}.content.json",
                                max_bytes=max(MAX_IMAGE_BYTES, MAX_SVG_BYTES), strict=not skip_bad_images)  # fmt: skip
        key = _image_key(ds, image_encoder, img_kw, digests)
        path = cache_path(ds, "image", key["encoder"], key, data_home)
        ids = [r.id for r in ds.images]
        entry = None if force else _read_cache(path, ids)
        cached = entry is not None
        if entry is None:
            enc = _encoder(image_encoder, device, img_kw)
            entry = _encode_images(enc, ds.images, batch_size, progress, skip_bad_images)
            _write_cache(path, entry, ids, key, element_dim=getattr(enc, "element_dim", None))
        skipped = entry.skipped
        if skipped and not skip_bad_images:
            raise _first_bad(ds, skipped)  # a cache entry written by a skipping run
        if not len(entry.keep):
            raise BadImageError(
                f"none of the {ds.num_images} images of {ds.name}/{ds.split} can be read; first: "
                f"{skipped[0]['path']}: {skipped[0]['reason']}"
            )
        ds, caption_rows = _keep_images(ds, entry.keep)
        image = entry.features
        meta["image"] = {"encoder": key["encoder"], **img_kw, "versions": key["versions"], "cache": str(path), "cached": cached}
    meta["skipped_images"] = [{"path": s["path"], "reason": s["reason"]} for s in skipped]
    if skipped:
        _warn(f"skipped {len(skipped)} of {full.num_images} images of {ds.name}/{ds.split} that cannot be read "
              f"(first: {skipped[0]['path']}: {skipped[0]['reason']})")  # fmt: skip

    text = None
    if cross:
        if full.text_features is not None:
            text = np.asarray(ds.text_features, dtype=np.float32)
            meta["text"] = {"source": "precomputed"}
        else:
            if text_encoder is None:
                raise ValueError(f"{ds.name} is cross-modal: pass a text encoder")
            txt_kw = dict(text_encoder_kwargs or {})
            key = _text_key(full, text_encoder, txt_kw)
            path = cache_path(full, "text", key["encoder"], key, data_home)
            caption_ids = [f"{i}:{c}" for i, c in zip(full.txt2img.tolist(), full.captions)]
            entry = None if force else _read_cache(path, caption_ids)
            cached = entry is not None
            if entry is None:
                enc = _encoder(text_encoder, device, txt_kw)
                feats = enc.encode_texts(full.captions, batch_size=batch_size, progress=progress).numpy().astype(np.float32)
                entry = _Cached(feats, np.arange(len(feats), dtype=np.int64), [])
                _write_cache(path, entry, caption_ids, key, element_dim=getattr(enc, "element_dim", None))
            text = entry.features if caption_rows is None else entry.features[caption_rows]
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
        image_ids=[r.id for r in ds.images],
        captions=list(ds.captions) if cross else [],
        categories=getattr(ds, "categories", None),
        meta=meta,
        image_groups=ds.image_groups if cross else None,
        text_groups=ds.text_groups if cross else None,
    )
