"""Cross-field checks of a training config: what the dataclass types cannot say.

:meth:`gssf.train.config.TrainConfig.validate` calls :func:`validate_config`; every error is a
``ValueError`` that names the config key.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Dict

from gssf.train.config_io import check_choice
from gssf.train.config_schema import SECTIONS, TrainConfig, register_validator

__all__ = ["validate_config"]

@register_validator
def validate_config(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` naming the key of the first constraint ``cfg`` breaks."""
    d, m, s, lo, o, t, e = cfg.data, cfg.model, cfg.similarity, cfg.loss, cfg.optim, cfg.train, cfg.eval
    # Choices are re-checked here too: a config may also be built in Python.
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in dataclasses.fields(obj):
            check_choice(getattr(obj, f.name), f, f"{section}.{f.name}")
    if d.dataset is None and d.features_file is None:
        raise ValueError("set one of data.dataset or data.features_file")
    if d.features_file is not None and "{split}" not in d.features_file:
        raise ValueError(
            f"data.features_file must contain '{{split}}' (e.g. feats/{{split}}.npz), got {d.features_file!r}"
        )
    positive = [
        ("model.embed_dim", m.embed_dim),
        ("model.hidden_dim", m.hidden_dim),
        ("data.resolution", d.resolution),
        ("train.epochs", t.epochs),
        ("train.batch_size", t.batch_size),
        ("train.log_every", t.log_every),
        ("train.eval_every", t.eval_every),
        ("train.pk_instances", t.pk_instances),
        ("eval.chunk_size", e.chunk_size),
        ("eval.batch_size", e.batch_size),
        ("eval.max_rank", e.max_rank),
        ("optim.step_epochs", o.step_epochs),
    ]
    for key, value in positive:
        if value <= 0:
            raise ValueError(f"config key {key!r} must be positive, got {value}")
    non_negative = [
        ("train.checkpoint_every", t.checkpoint_every),
        ("train.num_threads", t.num_threads),
        ("train.max_steps_per_epoch", t.max_steps_per_epoch),
        ("optim.weight_decay", o.weight_decay),
        ("optim.similarity_weight_decay", o.similarity_weight_decay),
        ("optim.encoder_weight_decay", o.encoder_weight_decay),
        ("optim.warmup_epochs", o.warmup_epochs),
        ("optim.grad_clip", o.grad_clip),
        ("loss.margin", lo.margin),
        ("loss.hardest_after_epochs", lo.hardest_after_epochs),
        ("model.dropout", m.dropout),
    ]
    for key, value in non_negative:
        if value < 0:
            raise ValueError(f"config key {key!r} must be >= 0, got {value}")
    for key, value in (("optim.lr", o.lr), ("optim.similarity_lr", o.similarity_lr), ("optim.loss_lr", o.loss_lr)):
        if value is not None and not value > 0:
            raise ValueError(f"config key {key!r} must be positive, got {value}")
    if len(o.betas) != 2:
        raise ValueError(f"config key 'optim.betas' needs two numbers, got {o.betas}")
    if m.num_layers < 2 and m.head == "mlp":
        raise ValueError(f"config key 'model.num_layers' must be >= 2 for an mlp head, got {m.num_layers}")
    if not 0.0 <= o.min_lr_ratio <= 1.0:
        raise ValueError(f"config key 'optim.min_lr_ratio' must be in [0, 1], got {o.min_lr_ratio}")
    if e.ks is not None and (not e.ks or any(k <= 0 for k in e.ks)):
        raise ValueError(f"config key 'eval.ks' must be a non-empty list of positive integers, got {e.ks}")
    if e.folds is not None and e.folds <= 0:
        raise ValueError(f"config key 'eval.folds' must be positive or null, got {e.folds}")
    if cfg.distill.teacher is not None:
        if not cfg.distill.temperature > 0:
            raise ValueError(f"config key 'distill.temperature' must be positive, got {cfg.distill.temperature}")
        if cfg.distill.weight < 0:
            raise ValueError(f"config key 'distill.weight' must be >= 0, got {cfg.distill.weight}")
    if d.max_train_items < 0:
        raise ValueError(f"config key 'data.max_train_items' must be >= 0, got {d.max_train_items}")
    if lo.terms:
        _validate_loss_terms(lo.terms)
        if lo.weights:
            raise ValueError("config key 'loss.weights' is for loss.name; with loss.terms give each term its weight")
    # What depends on the task (its data, loss kind, sampler, ...) is checked by the task class.
    from gssf.train.tasks import TASKS

    TASKS.lookup(d.task).check_config(cfg)
    if e.rerank:
        if e.rerank_k1 < 1:
            raise ValueError(f"config key 'eval.rerank_k1' must be positive, got {e.rerank_k1}")
        if not 1 <= e.rerank_k2 <= e.rerank_k1 + 1:
            raise ValueError(f"config key 'eval.rerank_k2' must be in [1, rerank_k1 + 1], got {e.rerank_k2}")
        if not 0.0 <= e.rerank_lambda <= 1.0:
            raise ValueError(f"config key 'eval.rerank_lambda' must be in [0, 1], got {e.rerank_lambda}")
    names = lo.name.split("+")
    for key in lo.weights:
        if key not in names:
            raise ValueError(f"unknown key 'loss.weights.{key}'; valid keys: {', '.join(names)}")
    if m.finetune != "none" and d.features_file is not None:
        raise ValueError("model.finetune needs raw images/text: set data.dataset instead of data.features_file")
    _validate_similarity_kwargs(s.name, s.kwargs, "similarity.kwargs")
    if m.pool == "attention" and m.head == "pooled":
        if m.attention_heads < 1 or m.embed_dim % m.attention_heads:
            raise ValueError(
                f"config key 'model.attention_heads': {m.attention_heads} does not divide model.embed_dim={m.embed_dim}"
            )
        if not m.attention_temperature > 0:
            raise ValueError(f"config key 'model.attention_temperature' must be positive, got {m.attention_temperature}")
        _validate_similarity_kwargs(m.attention_similarity, m.attention_kwargs, "model.attention_kwargs")
    elif m.attention_kwargs:
        raise ValueError("config key 'model.attention_kwargs' is for model.head=pooled with model.pool=attention")


def _validate_similarity_kwargs(name: str, kwargs: Dict[str, Any], key_prefix: str) -> None:
    """Every key of ``kwargs`` is a constructor argument of similarity ``name`` (dim excluded)."""
    from gssf.similarity import get_similarity_class

    cls = get_similarity_class(name)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in ("self", "dim")]
    for key in kwargs:
        if key == "dim":
            raise ValueError(f"config key '{key_prefix}.dim' is set from model.embed_dim; remove it")
        if key not in valid:
            raise ValueError(
                f"unknown config key '{key_prefix}.{key}' for similarity {name!r}; valid keys: "
                f"{', '.join(valid) or '(none)'} (use --set {key_prefix}={{}} to clear inherited ones)"
            )


def _validate_loss_terms(terms: Any) -> None:
    """``loss.terms``: a list of {name, weight, kwargs}, names registered, kwargs in each signature."""
    from gssf.losses import get_loss_class, list_losses

    for i, term in enumerate(terms):
        key = f"loss.terms[{i}]"
        if not isinstance(term, dict):
            raise ValueError(f"config key {key!r} must be a mapping {{name, weight, kwargs}}, got {term!r}")
        unknown = sorted(set(term) - {"name", "weight", "kwargs"})
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown} in {key!r}; valid keys: name, weight, kwargs")
        name = term.get("name")
        if name not in list_losses():
            raise ValueError(f"invalid value {name!r} for config key '{key}.name'; valid choices: {', '.join(list_losses())}")
        weight = term.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"config key '{key}.weight' must be a number >= 0, got {weight!r}")
        kwargs = term.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"config key '{key}.kwargs' must be a mapping, got {kwargs!r}")
        params = inspect.signature(get_loss_class(name).__init__).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue  # the loss checks its own keyword arguments when it is built (pml)
        set_by_task = {"num_classes", "dim"} if name == "id_ce" else set()
        valid = [p for p in params if p not in ("self", "similarity") and p not in set_by_task]
        for k in kwargs:
            if k not in valid:
                why = " (set by the task)" if k in set_by_task else ""
                raise ValueError(
                    f"unknown config key '{key}.kwargs.{k}'{why} for loss {name!r}; valid keys: {', '.join(valid) or '(none)'}"
                )

