"""Registry + factory for encoders: ``create(name)`` and ``list_encoders()``."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple, TypeVar, Union

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class EncoderInfo:
    """A registered encoder: its factory, modalities and a one-line description."""

    name: str
    factory: Callable[..., Any]
    modalities: Tuple[str, ...]
    description: str
    needs_path: bool = False  # True for the local loaders that read the user's weights


_REGISTRY: Dict[str, EncoderInfo] = {}
_ALIASES: Dict[str, str] = {
    "efficientnet_lite0": "efficientnet-lite0",
    "efflite0": "efficientnet-lite0",
    "all-minilm-l6-v2": "minilm",
    "all-MiniLM-L6-v2": "minilm",
    "open_clip": "open-clip",
    "hf": "hf-local",
}
#: Modules whose import registers the built-in encoders (imported on first lookup).
_BUILTIN_MODULES = (
    "gssf.encoders.efficientnet", "gssf.encoders.minilm", "gssf.encoders.mpnet", "gssf.encoders.e5", "gssf.encoders.local",
    "gssf.encoders.sets",
)
_loaded = False


def register_encoder(
    name: str, modalities: Tuple[str, ...], description: str = "", needs_path: bool = False
) -> Callable[[T], T]:
    """Decorator registering an encoder class or factory under ``name``."""

    def deco(factory: T) -> T:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"encoder {name!r} is already registered")
        _REGISTRY[name] = EncoderInfo(name, factory, tuple(modalities), description, needs_path)  # type: ignore[arg-type]
        return factory

    return deco


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        # The modules import their heavy dependencies lazily, inside the factories.
        for m in _BUILTIN_MODULES:
            importlib.import_module(m)
        _loaded = True


def get_encoder_info(name: str) -> EncoderInfo:
    """The registry entry of ``name`` (aliases accepted); ``KeyError`` lists known names."""
    _load_builtins()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def list_encoders() -> List[str]:
    """Names of all registered encoders, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def create(name: str, device: Union[str, torch.device] = "cpu", **kw: Any) -> Any:
    """Build encoder ``name`` on ``device`` (``kw``: e.g. ``resolution=128``, ``path=...``)."""
    return get_encoder_info(name).factory(device=device, **kw)
