"""Real data: Tux Paint image <-> caption retrieval (prepared by `gssf data prepare tux`).

Marked slow; `make test` prepares the data first and runs them (they never skip).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gssf import encoders
from gssf.train import load_config, run

pytestmark = pytest.mark.slow


def test_tux_training_reaches_recall_well_above_chance(tmp_path: Path) -> None:
    """A small linear two-tower with GSSF on cached EfficientNet-Lite0 / MiniLM features."""
    cfg = load_config("tux", overrides=["train.epochs=20", "model.embed_dim=128"])
    res = run(cfg, tmp_path / "run", progress=False)
    test = res["test"]
    # 229 test images, one caption each: chance R@1 is 0.44%, R@10 4.4%.
    assert test["i2t_R@1"] > 6 and test["t2i_R@1"] > 6, test
    assert test["i2t_R@10"] > 30 and test["t2i_R@10"] > 30, test
    assert res["history"][-1]["train_loss"] < 0.5 * res["history"][0]["train_loss"]
    assert res["params"] > 0 and res["val"]["rsum"] > 150


def test_end_to_end_finetuning_updates_both_encoders(tmp_path: Path) -> None:
    """Two optimizer steps from pixels and text through the real encoders (64 px to stay fast)."""
    cfg = load_config(
        "tux",
        overrides=[
            "model.finetune=both", "data.resolution=64", "train.batch_size=8", "train.max_steps_per_epoch=2",
            "train.epochs=1", "eval.test=false", "eval.batch_size=64", "optim.encoder_lr=1e-3",
        ],
    )
    res = run(cfg, tmp_path / "run", progress=False)
    assert res["val"]["rsum"] > 0 and len(res["history"]) == 1
    tuned = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    fresh = {
        "image_tower": encoders.create("efficientnet-lite0", resolution=64).module.state_dict(),
        "text_tower": encoders.create("minilm").module.state_dict(),
    }
    for tower, state in fresh.items():
        prefix = f"model.{tower}.encoder.net."
        changed = [
            k for k, v in state.items()
            if v.is_floating_point() and not torch.equal(tuned[prefix + k], v)
        ]
        assert len(changed) > 0.5 * sum(v.is_floating_point() for v in state.values()), tower
