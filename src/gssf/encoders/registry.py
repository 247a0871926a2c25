"""Registry + factory for encoders: ``create(name)`` and ``list_encoders()``."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple, TypeVar, Union

import torch

from gssf.utils.registry import Registry

T = TypeVar("T")


@dataclass(frozen=True)
class EncoderInfo:
    """A registered encoder: its factory, modalities and a one-line description."""

    name: str
    factory: Callable[..., Any]
    modalities: Tuple[str, ...]
    description: str
    needs_path: bool = False  # True for the local loaders that read the user's weights


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


def _load_builtins() -> None:
    # The modules import their heavy dependencies lazily, inside the factories.
    for m in _BUILTIN_MODULES:
        importlib.import_module(m)


#: The encoder registry (:class:`gssf.utils.registry.Registry`): name -> :class:`EncoderInfo`.
ENCODERS: Registry[EncoderInfo] = Registry("encoder", factory=lambda info: info.factory, aliases=_ALIASES,
                                           load=_load_builtins)  # fmt: skip
_REGISTRY = ENCODERS  # the name the first release used


def register_encoder(
    name: str, modalities: Tuple[str, ...], description: str = "", needs_path: bool = False
) -> Callable[[T], T]:
    """Decorator registering an encoder class or factory under ``name``."""

    def deco(factory: T) -> T:
        if name in ENCODERS and ENCODERS[name].factory is factory:
            return factory
        ENCODERS.register(name, EncoderInfo(name, factory, tuple(modalities), description, needs_path))  # type: ignore[arg-type]
        return factory

    return deco


def get_encoder_info(name: str) -> EncoderInfo:
    """The registry entry of ``name`` (aliases accepted); ``KeyError`` lists known names."""
    return ENCODERS.lookup(name)


def list_encoders() -> List[str]:
    """Names of all registered encoders, sorted."""
    return ENCODERS.list()


def create(name: str, device: Union[str, torch.device] = "cpu", **kw: Any) -> Any:
    """Build encoder ``name`` on ``device`` (``kw``: e.g. ``resolution=128``, ``path=...``)."""
    return ENCODERS.create(name, device=device, **kw)
