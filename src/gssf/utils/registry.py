"""One registry helper for every family of named things: similarities, losses, encoders,
datasets and training tasks.

A :class:`Registry` is a ``dict`` from name to entry (a class, a factory, or an info
record) with the same four verbs everywhere:

* ``register(name, entry)`` (or ``@registry.decorator(name)``): adds an entry, refusing a
  second, different entry under a taken name;
* ``lookup(name)``: the entry, aliases resolved, or a ``KeyError`` that lists the valid names;
* ``create(name, *args, **kwargs)``: builds the entry (``factory(entry)`` says how; by
  default the entry is called);
* ``list(where=None)``: sorted names, optionally only those whose entry passes ``where``.

Families whose entries live in modules imported on demand pass ``load``: it runs once, before
the first lookup or listing.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Generic, List, Optional, TypeVar

__all__ = ["Registry", "import_object"]

T = TypeVar("T")


class Registry(Dict[str, T], Generic[T]):
    """Named entries of one ``kind`` (``"similarity"``, ``"loss"``, ...); see the module docstring.

    Args:
        kind: what an entry is, for error messages.
        factory: maps an entry to the callable that :meth:`create` calls (default: the entry).
        aliases: other names accepted by :meth:`lookup` and :meth:`create`.
        load: called once before the first lookup or listing (imports the built-in entries).
    """

    def __init__(
        self,
        kind: str,
        factory: Optional[Callable[[T], Callable[..., Any]]] = None,
        aliases: Optional[Dict[str, str]] = None,
        load: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.aliases: Dict[str, str] = dict(aliases or {})
        self._factory = factory
        self._load = load
        self._loaded = load is None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True  # before loading: the modules register into this registry
            assert self._load is not None
            self._load()

    def register(self, name: str, entry: T, overwrite: bool = False) -> T:
        """Add ``entry`` under ``name``; re-registering the same entry is a no-op."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self and self[name] is not entry and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered by {_describe(self[name])}")
        self[name] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator(name)``: register the decorated class or function."""

        def deco(entry: T) -> T:
            return self.register(name, entry)

        return deco

    def lookup(self, name: str) -> T:
        """The entry registered as ``name`` (or an alias of it)."""
        self._ensure_loaded()
        key = self.aliases.get(name, name)
        if key not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.list())}")
        return self[key]

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the entry of ``name`` with ``args`` and ``kwargs``."""
        entry = self.lookup(name)
        make = self._factory(entry) if self._factory is not None else entry
        return make(*args, **kwargs)  # type: ignore[operator]

    def list(self, where: Optional[Callable[[T], bool]] = None) -> List[str]:  # noqa: A003 - the registry verb
        """Sorted names, only those whose entry passes ``where`` when given."""
        self._ensure_loaded()
        return sorted(n for n, e in self.items() if where is None or where(e))


def _describe(entry: Any) -> str:
    return getattr(entry, "__qualname__", None) or type(entry).__name__


def import_object(spec: str) -> Any:
    """The object named by ``"package.module:name"`` (the module imported on first use)."""
    import importlib

    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"expected 'module:name', got {spec!r}")
    return getattr(importlib.import_module(module), name)
