"""Datasets: embedded real data (``gssf data prepare``) and loaders for the standard layouts.

Every dataset is reached the same way::

    from gssf import data
    ds = data.load("tux", split="test")                        # prepared in the data home
    ds = data.load("flickr30k", root="/data/f30k", split="test")  # the user's copy

Cross-modal datasets expose ``images``, ``captions`` and ``txt2img``; uni-modal ones
``images``, ``labels`` and ``cams``. See ``docs/data.md`` for splits, sizes and layouts.
Importing this package needs neither numpy nor PIL; loading a dataset does.
"""
from __future__ import annotations

from typing import Any

from gssf.data import catalog as _catalog  # noqa: F401  (registers the datasets)
from gssf.data.home import data_home, dataset_dir, features_dir
from gssf.data.registry import (
    CROSS_MODAL,
    DATASETS,
    UNI_MODAL,
    DatasetInfo,
    get_dataset_info,
    list_datasets,
    load,
    register_dataset,
)

__all__ = [
    "CROSS_MODAL",
    "DATASETS",
    "UNI_MODAL",
    "CrossModalDataset",
    "DatasetInfo",
    "ImageRecord",
    "UniModalDataset",
    "data_home",
    "dataset_dir",
    "features_dir",
    "get_dataset_info",
    "is_prepared",
    "list_datasets",
    "load",
    "register_dataset",
]

_LAZY = {
    "CrossModalDataset": "gssf.data.base",
    "UniModalDataset": "gssf.data.base",
    "ImageRecord": "gssf.data.base",
    "is_prepared": "gssf.data.prepare",
}


def __getattr__(name: str) -> Any:
    # numpy-backed classes are imported on first use so that `import gssf.data` stays light.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gssf.data' has no attribute {name!r}")
