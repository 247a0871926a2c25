"""The training configuration: typed dataclasses, YAML presets and ``key=value`` overrides.

A run is described by one :class:`TrainConfig` with eight sections (``data``, ``model``,
``similarity``, ``loss``, ``optim``, ``train``, ``eval``, ``distill``). Every field carries a
help text and, where it has a closed set of values, its choices; both are used by the error
messages and by the commented YAML written into each run folder.

Sources, later ones win: the dataclass defaults, a preset (``configs/<name>.yaml``, or
any YAML path), then ``--set section.key=value`` overrides (values parsed as YAML, so
``--set train.epochs=5``, ``--set eval.ks=[1,5]``, ``--set data.root=null``).

This module gathers the three parts: the schema (:mod:`gssf.train.config_schema`), reading
and writing (:mod:`gssf.train.config_io`) and the cross-field checks
(:mod:`gssf.train.config_validation`, registered with the schema on import).
"""
from __future__ import annotations

from gssf.train import config_validation as _checks  # noqa: F401  (registers the checks)
from gssf.train.config_io import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    find_preset,
    list_presets,
    load_config,
    save_config,
)
from gssf.train.config_schema import (
    PRESET_DIR_ENV,
    SECTIONS,
    TASKS,
    DataConfig,
    DistillConfig,
    EvalConfig,
    LoopConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SimilarityConfig,
    TrainConfig,
    register_validator,
)

__all__ = [
    "TASKS",
    "DataConfig",
    "ModelConfig",
    "SimilarityConfig",
    "LossConfig",
    "OptimConfig",
    "LoopConfig",
    "DistillConfig",
    "EvalConfig",
    "TrainConfig",
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "save_config",
    "list_presets",
    "find_preset",
    "PRESET_DIR_ENV",
    "SECTIONS",
    "register_validator",
]
