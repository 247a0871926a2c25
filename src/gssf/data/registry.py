"""Registry of datasets: every name that :func:`gssf.data.load` accepts.

Entries name their loader as ``"module:function"`` so that listing datasets imports
nothing heavy; the loader module is imported on first use.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple, Union

from gssf.data.home import PathLike, dataset_dir
from gssf.utils.registry import Registry, import_object

if TYPE_CHECKING:
    from gssf.data.base import CrossModalDataset, UniModalDataset

#: Task families; they decide what a dataset object exposes.
CROSS_MODAL = "cross-modal"
UNI_MODAL = "uni-modal"


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, where it comes from, and which splits it has."""

    name: str
    kind: str  # CROSS_MODAL or UNI_MODAL ("features" may be either)
    task: str  # "image-text", "re-id", "fine-grained" or "features"
    splits: Tuple[str, ...]
    description: str
    loader: str  # "module:function", called as f(root=Path, split=str, **kw)
    prepare: Optional[str] = None  # name for ``gssf data prepare``; None: the user brings it
    layout: str = ""  # expected layout under ROOT, shown when it is missing
    licence: str = ""
    split_aliases: Tuple[Tuple[str, str], ...] = ()

    @property
    def embedded(self) -> bool:
        """True for datasets that ``gssf data prepare`` installs into the data home."""
        return self.prepare is not None

    def canonical_split(self, split: str) -> str:
        """Resolve an alias (``dev`` -> ``val``) and check the split exists."""
        aliases = dict(self.split_aliases)
        s = aliases.get(split, split)
        if s not in self.splits:
            raise ValueError(f"unknown split {split!r} for dataset {self.name!r}; choose from {', '.join(self.splits)}")
        return s


def _loader(info: DatasetInfo) -> Callable[..., Any]:
    """What ``DATASETS.create(name, split=..., root=..., home=...)`` calls: :func:`load` for ``info``."""
    return lambda split="train", root=None, home=None, **kw: load(info.name, split=split, root=root, home=home, **kw)


#: The dataset registry (:class:`gssf.utils.registry.Registry`): name -> :class:`DatasetInfo`.
DATASETS: Registry[DatasetInfo] = Registry("dataset", factory=_loader)
_REGISTRY = DATASETS  # the name the first release used


def register_dataset(info: DatasetInfo, overwrite: bool = False) -> DatasetInfo:
    """Add ``info`` to the registry (``overwrite`` to replace an entry)."""
    return DATASETS.register(info.name, info, overwrite=overwrite)


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; ``KeyError`` lists the known names."""
    return DATASETS.lookup(name)


def list_datasets() -> List[DatasetInfo]:
    """All registered datasets, embedded ones first, then by name."""
    return sorted(DATASETS.values(), key=lambda i: (not i.embedded, i.name))


_resolve = import_object  # loaders are named "module:function"


def resolve_root(info: DatasetInfo, root: Optional[PathLike], home: Optional[PathLike] = None) -> Path:
    """The folder a loader reads: ``root`` if given, else the prepared copy in the data home."""
    if root is not None:
        return Path(root).expanduser()
    if info.prepare is None:
        raise FileNotFoundError(
            f"dataset {info.name!r} is not shipped with gssf: pass root=PATH (--root) to your copy; "
            f"expected layout: {info.layout}"
        )
    from gssf.data.prepare import is_prepared

    path = dataset_dir(info.prepare, home)
    if not is_prepared(info.prepare, home):
        raise FileNotFoundError(
            f"dataset {info.name!r} not found at {path}; run `gssf data prepare {info.prepare}` first"
        )
    return path


def load(
    name: str,
    split: str = "train",
    root: Optional[PathLike] = None,
    home: Optional[PathLike] = None,
    **kw: Any,
) -> Union["CrossModalDataset", "UniModalDataset"]:
    """Load split ``split`` of dataset ``name``.

    Args:
        name: a registered name (see :func:`list_datasets` or ``gssf data list``).
        split: ``train``, ``val``, ``test``; re-ID sets also ``query`` and ``gallery``.
        root: folder of the user's copy; embedded datasets default to the data home.
        home: data home override (default :func:`gssf.data.data_home`).
        **kw: loader options (e.g. ``include_alphabets=True`` for ``tux``).
    """
    info = get_dataset_info(name)
    canonical = info.canonical_split(split)
    path = resolve_root(info, root, home)
    return _resolve(info.loader)(root=path, split=canonical, **kw)
