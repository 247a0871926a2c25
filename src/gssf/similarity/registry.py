"""The similarity registry: every name that :func:`create_similarity` accepts.

Members register with ``@register_similarity("name")`` (:mod:`gssf.similarity.base` and the
member modules); the registry itself imports no member, so any module may read it.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, TypeVar

from gssf.utils.registry import Registry

__all__ = ["SIMILARITIES", "create_similarity", "get_similarity_class", "list_similarities", "register_similarity"]

#: The similarity registry (:class:`gssf.utils.registry.Registry`): name -> class.
SIMILARITIES: Registry[type] = Registry("similarity")
_REGISTRY = SIMILARITIES  # the name the first release used
S = TypeVar("S", bound=type)


def register_similarity(name: str) -> Callable[[S], S]:
    """Class decorator adding a :class:`Similarity` subclass to the registry under ``name``."""

    def decorator(cls: S) -> S:
        SIMILARITIES.register(name, cls)
        cls.name = name
        return cls

    return decorator


def list_similarities() -> List[str]:
    """Names of every registered similarity, sorted."""
    return SIMILARITIES.list()


def get_similarity_class(name: str) -> type:
    """The class registered as ``name``; a clear error lists the valid names."""
    return SIMILARITIES.lookup(name)


def create_similarity(name: str, dim: Optional[int] = None, **kwargs: Any) -> Any:
    """Build a registered similarity, e.g. ``create_similarity("gssf", dim=512, num_blocks=16)``.

    Learnable members need ``dim``; parameter-free ones accept it to check inputs.
    """
    return SIMILARITIES.create(name, dim=dim, **kwargs)
