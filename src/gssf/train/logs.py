"""What a run reports while it trains: the JSON-lines log, TensorBoard scalars, progress bars
and the one-line-per-epoch summary on stderr."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from torch import nn

from gssf.train.state import _jsonable

__all__: List[str] = []


class _JsonlLog:
    """Append-only JSON-lines log; ``offset`` lets a resumed run cut records written after its checkpoint."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def reset(self, offset: int = 0) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            fh.truncate(offset)

    @property
    def offset(self) -> int:
        return self.path.stat().st_size if self.enabled and self.path.exists() else 0

    def write(self, record: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")

    def sync(self) -> None:
        """fsync the log: called before a checkpoint records the log's length."""
        if self.enabled and self.path.exists():
            with open(self.path, "rb") as fh:
                os.fsync(fh.fileno())


def _structure_scalars(model: nn.Module, criterion: Optional[nn.Module] = None) -> Dict[str, float]:
    """What the similarity learned (``||M - I||_2``, diagonal spread, largest block entry) and any
    learned temperature, as TensorBoard scalars."""
    from gssf.similarity.structure import learned_parameters

    module = model.module if hasattr(model, "module") else model  # DDP
    out = {k: v for k, v in (learned_parameters(module.similarity) or {}).items() if isinstance(v, float)}
    for name, m in (criterion.named_modules() if criterion is not None else ()):
        temperature = getattr(type(m), "temperature", None)
        if isinstance(temperature, property):
            out[f"temperature{'/' + name if name else ''}"] = float(m.temperature.detach())
    return out


class _Board:
    """Optional TensorBoard scalars."""

    def __init__(self, directory: Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ValueError(
                    "config key 'train.tensorboard' is true but tensorboard is not installed: pip install tensorboard"
                ) from exc
            self.writer = SummaryWriter(str(directory))

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _bar(total: int, initial: int, desc: str, enabled: bool) -> Any:
    # A bar only on a terminal: piped output gets the one line per epoch instead.
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)


def _epoch_line(record: Mapping[str, Any], epochs: int, metric: str, improved: bool) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['train_loss']:.4f}"]
    value = (record.get("val") or {}).get(metric)
    if value is not None:
        parts.append(f"val {metric} {value:.2f}" + (" (best)" if improved else ""))
    parts.append(f"{record['seconds']:.1f} s")
    return " | ".join(parts)


def _stderr_line(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
