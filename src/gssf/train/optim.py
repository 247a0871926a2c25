"""Optimisation of a run: named parameter groups (heads, similarity, loss, encoders), the
optimizer and the per-step learning-rate schedule."""
from __future__ import annotations

import math
from typing import Any, Dict, List

import torch
from torch import nn

from gssf.similarity.base import Similarity
from gssf.train.config_schema import OptimConfig
from gssf.train.tasks import EncoderModule

__all__ = ["build_optimizer", "build_param_groups", "build_scheduler", "similarity_parameters"]


def similarity_parameters(model: nn.Module) -> int:
    """Learnable scalars of every similarity in ``model`` (the score's and any attention kernels), each once."""
    seen: Dict[int, int] = {}
    for m in model.modules():
        if isinstance(m, Similarity):
            seen.update({id(p): p.numel() for p in m.parameters() if p.requires_grad})
    return sum(seen.values())


def build_param_groups(model: nn.Module, criterion: nn.Module, optim: OptimConfig) -> List[Dict[str, Any]]:
    """Named parameter groups with their own learning rate and weight decay.

    ``heads`` (weight matrices, decayed) and ``heads_no_decay`` (biases, norms),
    ``similarity`` (``optim.similarity_lr`` / ``similarity_weight_decay``: the parameters of
    every similarity in the model, the score's and attention kernels'), ``loss`` (the
    loss's own parameters, e.g. the temperature; no decay), and ``encoders`` /
    ``encoders_no_decay`` when encoders are fine-tuned. Empty groups are left out.
    """
    similarity = getattr(model, "similarity")
    seen = set()

    def take(params: Any) -> List[nn.Parameter]:
        out = []
        for p in params:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    # every similarity of the model: the score's own, and any inside the towers (attention kernels)
    sim = take(similarity.parameters())
    for m in model.modules():
        if isinstance(m, Similarity):
            sim += take(m.parameters())
    enc: List[nn.Parameter] = []
    for m in model.modules():
        if isinstance(m, EncoderModule):
            enc += take(m.parameters())
    loss = take(criterion.parameters())
    rest = take(model.parameters())
    groups = [
        {"name": "heads", "params": [p for p in rest if p.ndim >= 2], "lr": optim.lr, "weight_decay": optim.weight_decay},
        {"name": "heads_no_decay", "params": [p for p in rest if p.ndim < 2], "lr": optim.lr, "weight_decay": 0.0},
        {
            "name": "similarity",
            "params": sim,
            "lr": optim.similarity_lr if optim.similarity_lr is not None else optim.lr,
            "weight_decay": optim.similarity_weight_decay,
        },
        {"name": "loss", "params": loss, "lr": optim.loss_lr if optim.loss_lr is not None else optim.lr, "weight_decay": 0.0},
        {"name": "encoders", "params": [p for p in enc if p.ndim >= 2], "lr": optim.encoder_lr, "weight_decay": optim.encoder_weight_decay},
        {"name": "encoders_no_decay", "params": [p for p in enc if p.ndim < 2], "lr": optim.encoder_lr, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        # Nothing learns (a frozen baseline: identity heads and a parameter-free similarity).
        # An empty placeholder keeps the loop, the schedule and the checkpoints uniform.
        groups = [{"name": "none", "params": [nn.Parameter(torch.zeros(0))], "lr": optim.lr, "weight_decay": 0.0}]
    return groups


def build_optimizer(groups: List[Dict[str, Any]], optim: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``optim.optimizer`` over ``groups``."""
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum)
    cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=optim.lr, betas=(optim.betas[0], optim.betas[1]))


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule: linear warm-up, then cosine / constant / step decay."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    kind, floor, every, gamma = optim.scheduler, optim.min_lr_ratio, optim.step_epochs, optim.gamma

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        if kind == "step":
            return gamma ** ((step // max(1, steps_per_epoch)) // every)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
