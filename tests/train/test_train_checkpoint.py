"""Checkpoints: crash-safe writes, weights_only state, clear errors for missing/incompatible ones."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import safetensors.torch
import torch

from gssf.train import run
from gssf.train.checkpoint import (
    check_compatible,
    load_checkpoint_meta,
    load_checkpoint_tensors,
    load_training_state,
    resolve_checkpoint,
    save_checkpoint,
)
from gssf.train.trainer import Trainer, evaluate_checkpoint, load_model
from train_synthetic import tiny_config, write_features


def _save(directory: Path, value: float, step: int) -> None:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.full((3,), value))], lr=0.1)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 ** s)
    save_checkpoint(
        directory, "last",
        {"model.w": torch.full((4, 2), value), "model.b": torch.arange(3.0) + value},
        {"step": step, "similarity": {"name": "gssf", "kwargs": {}}},
        state={"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng_cpu": torch.get_rng_state()},
    )


def _check(directory: Path, value: float, step: int) -> None:
    meta = load_checkpoint_meta(directory)
    assert meta["step"] == step
    tensors = load_checkpoint_tensors(meta)
    assert torch.equal(tensors["model.w"], torch.full((4, 2), value))
    state = load_training_state(meta)
    assert state["checkpoint_id"] == meta["checkpoint_id"]


def test_roundtrip_and_weights_only_state(tmp_path: Path) -> None:
    _save(tmp_path, 1.0, 1)
    _check(tmp_path, 1.0, 1)
    # The state file is plain tensors and containers: the safe loader reads it directly.
    state = torch.load(tmp_path / "last.state.pt", weights_only=True)
    assert set(state) >= {"optimizer", "scheduler", "rng_cpu"}
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=0.1)
    opt.load_state_dict(state["optimizer"])
    assert int(opt.state_dict()["state"][0]["step"]) == 1
    # The description is JSON, the weights are safetensors: nothing is pickled.
    json.loads((tmp_path / "last.json").read_text())
    safetensors.torch.load_file(str(tmp_path / "last.safetensors"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors", "last.state.pt"]


def test_crash_while_writing_leaves_the_old_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save(tmp_path, 1.0, 1)
    real = safetensors.torch.save_file

    def half_write(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as fh:  # truncate: a half-written file, then the crash
            fh.truncate(os.path.getsize(filename) // 2)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 2.0, 2)
    _check(tmp_path, 1.0, 1)  # old checkpoint, complete and consistent
    # ...also when the crash hits the state file, after the weights were staged
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        _save(tmp_path, 3.0, 3)
    _check(tmp_path, 1.0, 1)
    monkeypatch.setattr(torch, "save", real_save)
    _save(tmp_path, 4.0, 4)  # the next save cleans the staged leftovers
    _check(tmp_path, 4.0, 4)
    assert not list(tmp_path.glob(".*pending"))


def test_crash_after_commit_is_rolled_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save(tmp_path, 1.0, 1)
    real_replace = os.replace

    def crash_on_state(src, dst):
        if str(src).endswith(".state.pt.pending"):
            raise KeyboardInterrupt("simulated crash between renames")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_state)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 2.0, 2)
    monkeypatch.setattr(os, "replace", real_replace)
    # Torn on disk: new weights, old state and description, and the commit journal.
    assert (tmp_path / "last.commit.json").exists()
    assert torch.equal(safetensors.torch.load_file(str(tmp_path / "last.safetensors"))["model.w"], torch.full((4, 2), 2.0))
    # A torn set is detected by its ids...
    stale = json.loads((tmp_path / "last.json").read_text())
    stale["path"] = str(tmp_path / "last.json")
    with pytest.raises(ValueError, match="torn"):
        load_checkpoint_tensors(stale)
    # ...and a reader finishes the committed save: the new checkpoint, whole.
    _check(tmp_path, 2.0, 2)
    assert not (tmp_path / "last.commit.json").exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint found at .*expected a run folder"):
        resolve_checkpoint(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        load_checkpoint_meta(tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a gssf checkpoint"):
        load_checkpoint_meta(tmp_path / "x.safetensors")


def test_check_compatible_names_every_difference() -> None:
    meta = {"similarity": {"name": "gssf", "kwargs": {}}, "embed_dim": 256, "path": "ck.json"}
    check_compatible(meta, {"similarity": {"name": "gssf", "kwargs": {}}, "embed_dim": 256})
    with pytest.raises(ValueError) as exc:
        check_compatible(meta, {"similarity": {"name": "cosine", "kwargs": {}}, "embed_dim": 128})
    msg = str(exc.value)
    assert "incompatible checkpoint ck.json" in msg and "similarity" in msg and "embed_dim" in msg
    assert '"gssf"' in msg and '"cosine"' in msg and "256" in msg and "128" in msg


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ck")
    features = write_features(root / "feats")
    cfg = tiny_config(features, "train.epochs=2")
    res = run(cfg, root / "run", progress=False)
    return cfg, features, root / "run", res


def test_checkpoint_of_a_run_evaluates_to_the_reported_metrics(trained) -> None:
    cfg, _, run_dir, res = trained
    assert evaluate_checkpoint(run_dir, split="test") == res["test"]
    assert evaluate_checkpoint(run_dir / "checkpoints" / "best.safetensors", split="val") == res["val"]
    model, _, meta = load_model(run_dir / "checkpoints" / "last.json")
    assert meta["kind"] == "last" and not model.training
    assert model.similarity.name == "gssf"


@pytest.mark.parametrize(
    "overrides, words",
    [
        (("similarity.name=cosine", "similarity.kwargs={}"), ["similarity", '"gssf"', '"cosine"']),
        (("model.embed_dim=8", "similarity.kwargs={num_blocks: 2}"), ["embed_dim", "16", "8"]),
        (("model.head=mlp",), ["heads", "linear", "mlp"]),
    ],
)
def test_incompatible_checkpoint_is_a_clear_error(trained, overrides, words, tmp_path: Path) -> None:
    _, features, run_dir, _ = trained
    other = Trainer(tiny_config(features, "train.epochs=2", *overrides), tmp_path / "other", progress=False)
    meta = load_checkpoint_meta(run_dir)
    with pytest.raises(ValueError, match="incompatible checkpoint") as exc:
        other.load_weights(meta)
    for w in words:
        assert w in str(exc.value)
