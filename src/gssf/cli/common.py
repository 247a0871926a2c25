"""Helpers shared by the subcommands: options at every level, device checks, file decoding errors.

Kept free of optional dependencies (torch only) so that ``gssf --help`` works on a core install.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import zipfile
from typing import Any, Callable, Iterator, Union

from gssf.errors import GssfError, UnreadableFileError
from gssf.utils.optional import require

__all__ = [
    "add_option_everywhere",
    "check_device",
    "is_decode_error",
    "is_safetensors_error",
    "reading",
    "require_train_extra",
]

PathLike = Union[str, "os.PathLike[str]"]

# What the readers of numpy, zip, pickle and text files raise on an empty, truncated or
# corrupt file. safetensors' SafetensorError is matched by name (is_safetensors_error) so
# that this module does not import safetensors.
_DECODE_ERRORS = (EOFError, zipfile.BadZipFile, pickle.UnpicklingError, UnicodeDecodeError)


def is_safetensors_error(exc: BaseException) -> bool:
    """Whether ``exc`` is safetensors' error for a file it cannot parse."""
    return any(c.__name__ == "SafetensorError" for c in type(exc).__mro__)


def is_decode_error(exc: BaseException) -> bool:
    """Whether ``exc`` says that a file's bytes are not what its format needs."""
    if isinstance(exc, RuntimeError) and "PytorchStreamReader failed" in str(exc):  # torch.load of a damaged file
        return True
    return isinstance(exc, _DECODE_ERRORS) or is_safetensors_error(exc)


def _is_bad_file(exc: BaseException) -> bool:
    # numpy rejects a bad header or a truncated array with a plain ValueError
    return is_decode_error(exc) or isinstance(exc, ValueError)


@contextlib.contextmanager
def reading(path: PathLike, what: str, catch: Callable[[BaseException], bool] = _is_bad_file) -> Iterator[None]:
    """Re-raise a failure to decode ``path`` inside the block as :class:`UnreadableFileError` naming it.

    ``catch`` picks the errors that mean "this file is bad": by default decoding errors and
    ``ValueError``, right for a block that only reads ``path``; a block doing more passes a
    narrower test (:func:`is_decode_error`, :func:`is_safetensors_error`). Errors of the
    :class:`GssfError` family already say what is wrong and pass through.
    """
    try:
        yield
    except GssfError:
        raise
    except Exception as exc:
        if not catch(exc):
            raise
        reason = str(exc) or type(exc).__name__
        raise UnreadableFileError(f"cannot read {what} {os.fspath(path)}: {type(exc).__name__}: {reason}") from exc


#: What the training program imports beyond torch (the ``train`` extra; tqdm is optional there).
TRAIN_MODULES = ("numpy", "yaml", "safetensors")


def require_train_extra(feature: str) -> None:
    """Fail with ``pip install 'gssf[train]'`` (naming the first missing module) unless it is installed."""
    for module in TRAIN_MODULES:
        require(module, "train", feature)


def add_option_everywhere(parser: argparse.ArgumentParser, *flags: str, **kwargs: Any) -> None:
    """Add an option to ``parser`` and to every subcommand below it.

    So ``gssf data --home H list`` and ``gssf data list --home H`` both work. Below the top
    the default is ``SUPPRESS``: a subcommand that does not see the flag leaves the value
    parsed above (or the top default) in place instead of resetting it.
    """
    parser.add_argument(*flags, **kwargs)
    nested = {**kwargs, "default": argparse.SUPPRESS}
    pending = [parser]
    while pending:
        for action in pending.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in set(action.choices.values()):
                    sub.add_argument(*flags, **nested)
                    pending.append(sub)


def check_device(device: str, where: str = "--device", allow_auto: bool = False) -> str:
    """Return ``device`` if this machine has it, else raise naming ``where`` (the flag or config key).

    Done before any work so that ``--device cuda`` on a machine without CUDA fails at once
    with one line rather than deep inside torch.
    """
    from gssf.utils.device import resolve_device

    resolve_device(device, where=where, allow_auto=allow_auto)
    return device
