"""Rebuilding a trained model from its checkpoint, and evaluating a checkpoint on a split."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from gssf.train.checkpoint import check_compatible, load_checkpoint_meta, load_checkpoint_tensors
from gssf.train.config_io import config_from_dict
from gssf.train.distributed import resolve_device
from gssf.train.state import _jsonable, _split_tensors, describe_model
from gssf.train.tasks import Task, make_task

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["evaluate_checkpoint", "load_model"]


def load_model(
    checkpoint: PathLike, device: Union[str, torch.device] = "cpu", data_root: Optional[str] = None
) -> Tuple[nn.Module, Task, Dict[str, Any]]:
    """Rebuild the model of a checkpoint (run folder or file) and load its weights.

    Returns ``(model in eval mode, task, checkpoint description)``; ``task.evaluate(model,
    split)`` evaluates a split of the data the run was trained on.
    """
    meta = load_checkpoint_meta(checkpoint)
    data = dict(meta["config"])
    if data_root is not None:
        data["data"] = {**data["data"], "root": data_root}
    cfg = config_from_dict(data).validate()
    dev = resolve_device(device, where="device")
    task = make_task(cfg, dev)
    model = task.build_model(dict(meta["input_dims"])).to(dev)
    check_compatible(meta, describe_model(cfg, meta["input_dims"], meta.get("loss", {}).get("num_classes", 0)))
    model_t, _ = _split_tensors(load_checkpoint_tensors(meta, device=dev))
    missing, unexpected = model.load_state_dict(model_t, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {meta['path']} does not fit the model: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, task, meta


def evaluate_checkpoint(
    checkpoint: PathLike,
    split: str = "test",
    device: Union[str, torch.device] = "cpu",
    data_root: Optional[str] = None,
    chunk_size: Optional[int] = None,
) -> Dict[str, Any]:
    """Metrics of a checkpoint on ``split`` (the dict of the task's evaluator)."""
    model, task, _ = load_model(checkpoint, device=device, data_root=data_root)
    if chunk_size is not None:
        task.cfg.eval.chunk_size = chunk_size
    with torch.no_grad():
        return _jsonable(task.evaluate(model, split))
