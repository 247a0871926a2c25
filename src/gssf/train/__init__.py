"""The training program: ``run(config, run_dir)`` with typed configs, checkpoints and resume.

::

    from gssf.train import load_config, run
    cfg = load_config("tux", overrides=["train.epochs=5", "similarity.name=gssf"])
    results = run(cfg, "runs/tux-gssf")
    results["test"]["rsum"]

Needs the ``train`` extra (pyyaml, safetensors, tqdm). See ``docs/training.md``.
"""
from gssf.utils.optional import require as _require

for _module in ("numpy", "yaml", "safetensors"):  # a named extra, never a bare "No module named"
    _require(_module, "train", "gssf.train")
from gssf.train.config import (
    DataConfig,
    DistillConfig,
    EvalConfig,
    LoopConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SimilarityConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    list_presets,
    load_config,
    save_config,
)
from gssf.train.tasks import TASKS
from gssf.train.trainer import evaluate_checkpoint, load_model, run

__all__ = [
    "TASKS",
    "run",
    "load_config",
    "TrainConfig",
    "DataConfig",
    "ModelConfig",
    "SimilarityConfig",
    "LossConfig",
    "OptimConfig",
    "LoopConfig",
    "DistillConfig",
    "EvalConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "save_config",
    "list_presets",
    "evaluate_checkpoint",
    "load_model",
]
