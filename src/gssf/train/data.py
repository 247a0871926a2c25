"""One split of a training run as tensors: cached features, labels, groups, and the raw dataset
when an encoder is fine-tuned (:func:`load_split`); the re-ID split naming (:func:`reid_pair`)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from gssf.train.config_schema import TrainConfig

__all__ = ["SplitData", "load_split", "reid_pair", "subset_indices"]


@dataclass
class SplitData:
    """One split: feature tensors and/or the raw dataset (when an encoder is fine-tuned)."""

    image: Optional[Tensor] = None  # (N_img, Di) float32 cached features
    text: Optional[Tensor] = None  # (N_txt, Dt)
    txt2img: Optional[Tensor] = None  # (N_txt,) int64
    image_groups: Optional[Tensor] = None  # (N_img,) int64: relevance by group (with text_groups)
    text_groups: Optional[Tensor] = None  # (N_txt,) int64
    labels: Optional[Tensor] = None  # (N_img,) int64
    cams: Optional[Tensor] = None  # (N_img,) int64
    dataset: Any = None  # gssf.data dataset: raw images / captions
    skipped: List[Dict[str, Any]] = field(default_factory=list)  # images left out (data.skip_bad_images)

    @property
    def num_images(self) -> int:
        if self.image is not None:
            return int(self.image.shape[0])
        return len(self.dataset.images)


def _as_tensor(array: Any, dtype: torch.dtype) -> Optional[Tensor]:
    if array is None:
        return None
    t = torch.as_tensor(np.ascontiguousarray(array)).to(dtype)
    if dtype.is_floating_point and t.dim() == 3:
        t = t.mean(dim=1)  # region features (N, R, D): mean-pooled to one vector per image
    return t


def _call_with_supported(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    params = inspect.signature(fn).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return fn(*args, **{k: v for k, v in kwargs.items() if accepts_any or k in params})


def reid_pair(split: str) -> Tuple[str, str]:
    """The ``(query, gallery)`` splits that evaluate re-ID split ``split``.

    ``"S"`` -> ``("S-query", "S-gallery")``; ``"QUERY/GALLERY"`` names the pair explicitly
    (Market-1501 and DukeMTMC-reID: ``"query/gallery"``).
    """
    if "/" not in split:
        return f"{split}-query", f"{split}-gallery"
    parts = split.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a re-ID split pair is written QUERY/GALLERY (e.g. query/gallery), got {split!r}")
    return parts[0], parts[1]


def subset_indices(n: int, size: int) -> Tensor:
    """A fixed random subset of ``size`` of ``n`` items, sorted (seed-independent: identical data for every seed)."""
    if size <= 0 or size >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(0)
    return torch.randperm(n, generator=g)[:size].sort().values


def _check_root(cfg: TrainConfig) -> None:
    """A dataset the user brings needs ``data.root``: say so before anything else fails."""
    d = cfg.data
    if d.features_file is not None or d.dataset is None or d.root is not None:
        return
    from gssf.data.registry import get_dataset_info

    try:
        info = get_dataset_info(d.dataset)
    except KeyError:
        return  # the loader reports unknown names itself
    if not info.embedded:
        raise FileNotFoundError(
            f"config key 'data.root' is required for dataset {d.dataset!r} (not shipped with gssf): "
            f"--set data.root=/path/to/your/copy; expected layout: {info.layout}"
        )


def _take(ds: Any, rows: Tensor) -> Any:
    """The items ``rows`` of a uni-modal dataset, as a dataset of its own (its own feature cache key)."""
    from gssf.data.base import UniModalDataset

    idx = rows.numpy()
    pick = lambda seq: None if seq is None else [seq[i] for i in idx]  # noqa: E731
    return UniModalDataset(
        name=ds.name,
        split=ds.split,
        images=pick(ds.images),
        labels=ds.labels[idx],
        cams=None if ds.cams is None else ds.cams[idx],
        categories=pick(ds.categories),
        label_names=ds.label_names,
        image_features=None if ds.image_features is None else ds.image_features[idx],
        root=ds.root,
        meta={**ds.meta, "subset": int(idx.size)},
    )


def load_split(
    cfg: TrainConfig, split: str, raw: bool = False, progress: bool = False, max_items: int = 0,
    modalities: Sequence[str] = ("image",),
) -> SplitData:
    """Features (and, with ``raw``, the dataset itself) of ``split`` as described by ``cfg.data``.

    ``modalities``: what the task reads (``("image", "text")`` for image-text tasks).
    ``max_items``: keep the fixed random subset :func:`subset_indices` of the split's items
    (uni-modal splits); only those are encoded.
    """
    d = cfg.data
    _check_root(cfg)
    modalities = set(modalities)
    finetuned = {"both": {"image", "text"}, "none": set()}.get(cfg.model.finetune, {cfg.model.finetune})
    dataset: Any = None
    if d.features_file is None and (raw or max_items):
        from gssf import data as gdata

        dataset = gdata.load(d.dataset, split=split, root=d.root)
        if max_items and max_items < len(dataset):
            dataset = _take(dataset, subset_indices(len(dataset), max_items))
    if raw and modalities <= finetuned:  # every tower runs its encoder: no cached features needed
        ds = dataset
        return SplitData(
            txt2img=_as_tensor(getattr(ds, "txt2img", None), torch.long),
            labels=_as_tensor(getattr(ds, "labels", None), torch.long),
            cams=_as_tensor(getattr(ds, "cams", None), torch.long),
            image_groups=_as_tensor(getattr(ds, "image_groups", None), torch.long),
            text_groups=_as_tensor(getattr(ds, "text_groups", None), torch.long),
            dataset=ds,
        )
    if d.features_file is not None:
        from gssf.features import load_features_file

        fs = load_features_file(d.features_file.format(split=split))
    else:
        from gssf.features import get_features

        kwargs: Dict[str, Any] = dict(
            image_encoder=d.image_encoder, text_encoder=d.text_encoder, resolution=d.resolution, progress=progress,
        )
        if d.skip_bad_images:
            kwargs["skip_bad_images"] = True
        if dataset is not None:  # already loaded (and perhaps cut to a subset)
            fs = _call_with_supported(get_features, dataset, **kwargs)
        else:
            if d.root is not None:
                kwargs["root"] = d.root
            fs = _call_with_supported(get_features, d.dataset, split, **kwargs)
    if d.features_file is not None and max_items and max_items < fs.num_images:
        rows = subset_indices(fs.num_images, max_items).numpy()
        fs.image = fs.image[rows]
        fs.labels = None if fs.labels is None else fs.labels[rows]
        fs.cams = None if fs.cams is None else fs.cams[rows]
    data = SplitData(
        image=_as_tensor(getattr(fs, "image", None), torch.float32),
        text=_as_tensor(getattr(fs, "text", None), torch.float32),
        txt2img=_as_tensor(getattr(fs, "txt2img", None), torch.long),
        labels=_as_tensor(getattr(fs, "labels", None), torch.long),
        cams=_as_tensor(getattr(fs, "cams", None), torch.long),
        image_groups=_as_tensor(getattr(fs, "image_groups", None), torch.long),
        text_groups=_as_tensor(getattr(fs, "text_groups", None), torch.long),
    )
    if raw:
        data.dataset = dataset
    data.skipped = list(getattr(fs, "meta", {}).get("skipped_images", []))
    return data
