"""What a checkpoint holds besides the weights: the model description that a checkpoint and a
model must share, the loss's own tensors, and JSON-ready values."""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Tuple

from torch import Tensor, nn

from gssf.train.config_schema import TrainConfig, loss_names

__all__ = ["describe_model"]


def describe_model(cfg: TrainConfig, input_dims: Mapping[str, int], num_classes: int = 0) -> Dict[str, Any]:
    """The architectural facts a checkpoint must share with a model to load into it."""
    m = cfg.model
    heads: Dict[str, Any] = {"kind": m.head}
    if m.head == "mlp":
        heads.update(hidden_dim=m.hidden_dim, num_layers=m.num_layers)
    if m.head == "pooled":
        heads.update(hidden_dim=m.hidden_dim, pool=m.pool, element_dims=dict(m.element_dims))
    return {
        "task": cfg.data.task,
        "similarity": {"name": cfg.similarity.name, "kwargs": dict(cfg.similarity.kwargs)},
        "embed_dim": m.embed_dim,
        "input_dims": dict(input_dims),
        "heads": heads,
        "finetune": m.finetune,
        "loss": {"name": "+".join(loss_names(cfg.loss)), "num_classes": int(num_classes)},
    }


def _loss_state(criterion: nn.Module, similarity: nn.Module) -> Dict[str, Tensor]:
    """The loss's own tensors (temperature, proxies); the similarity is saved with the model."""
    shared = {id(t) for t in similarity.state_dict(keep_vars=True).values()}
    return {k: v.detach() for k, v in criterion.state_dict(keep_vars=True).items() if id(v) not in shared}


def _load_loss_state(criterion: nn.Module, similarity: nn.Module, tensors: Mapping[str, Tensor]) -> None:
    current = criterion.state_dict(keep_vars=True)
    shared = {id(t) for t in similarity.state_dict(keep_vars=True).values()}
    own = {k for k, v in current.items() if id(v) not in shared}
    if set(tensors) != own:
        raise ValueError(f"checkpoint loss tensors {sorted(tensors)} do not match the loss's {sorted(own)}")
    merged = {k: (tensors[k] if k in own else v.detach()) for k, v in current.items()}
    criterion.load_state_dict(merged, strict=True)


def _split_tensors(tensors: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    loss = {k[len("loss.") :]: v for k, v in tensors.items() if k.startswith("loss.")}
    return model, loss


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return _jsonable(value.tolist())
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and prefix == "":
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out
