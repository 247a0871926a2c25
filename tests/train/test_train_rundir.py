"""The run folder: no silent overwrite, one writer at a time, damaged checkpoints named, fail fast."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

from gssf.errors import CheckpointDamagedError, RunDirError, RunLockedError, TrainingDivergedError
from gssf.train import run
from gssf.train.rundir import LOCK_NAME, RunDirLock
from gssf.train.trainer import Trainer, evaluate_checkpoint
from train_synthetic import tiny_config, write_features


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_features(tmp_path_factory.mktemp("feats"))


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(features: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    run(tiny_config(features, "train.epochs=2"), run_dir, progress=False, quiet=True)
    return run_dir


@pytest.mark.parametrize(
    "files",
    [
        {"notes.txt": b"my notes"},
        {"config.yaml": b"data: {}\n"},
        {"log.jsonl": b"{}\n"},
        {"results.json": b"{}"},
        {"checkpoints/best.safetensors": b"x", "checkpoints/best.json": b"{}"},
    ],
    ids=["foreign", "config", "log", "results", "checkpoint-without-last"],
)
def test_fresh_run_refuses_a_folder_that_holds_files(features: str, tmp_path: Path, files: Dict[str, bytes]) -> None:
    run_dir = tmp_path / "run"
    for name, data in files.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_bytes(data)
    before = _snapshot(run_dir)
    with pytest.raises(RunDirError, match="not empty") as info:
        run(tiny_config(features, "train.epochs=1"), run_dir, progress=False, quiet=True)
    for name in files:
        assert name in str(info.value)
    assert _snapshot(run_dir) == before  # nothing written, not even a lock file
    assert not (run_dir / LOCK_NAME).exists()


def test_empty_name_and_file_are_refused(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "train.epochs=1")
    with pytest.raises(RunDirError, match="empty"):
        run(cfg, "", progress=False, quiet=True)
    target = tmp_path / "a-file"
    target.write_text("keep me")
    with pytest.raises(RunDirError, match="is a file"):
        run(cfg, target, progress=False, quiet=True)
    assert target.read_text() == "keep me"


def test_a_finished_run_is_not_overwritten(features: str, trained: Path) -> None:
    before = _snapshot(trained)
    with pytest.raises(RunDirError, match="--resume"):
        run(tiny_config(features, "train.epochs=2"), trained, progress=False, quiet=True)
    assert _snapshot(trained) == before


def test_a_live_lock_stops_a_second_writer_at_once(features: str, trained: Path) -> None:
    before = _snapshot(trained)
    with RunDirLock(trained):
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            run(tiny_config(features, "train.epochs=3"), trained, progress=False, resume=True, quiet=True)
    after = _snapshot(trained)
    after.pop(LOCK_NAME), before.pop(LOCK_NAME, None)
    assert after == before


_TRAINER = """
import sys
sys.path.insert(0, sys.argv[3])
from gssf.train import run
from train_synthetic import tiny_config
run(tiny_config(sys.argv[1], "train.epochs=12", "train.checkpoint_every=1"), sys.argv[2], progress=False, quiet=True)
"""


def test_a_lock_left_by_a_killed_trainer_does_not_block_resume(features: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", _TRAINER, features, str(run_dir), str(Path(__file__).parent)]
    proc = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "last.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the trainer ended before its first checkpoint"
            time.sleep(0.05)
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            run(tiny_config(features, "train.epochs=12", "train.checkpoint_every=1"), run_dir,
                progress=False, resume=True, quiet=True)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (run_dir / LOCK_NAME).exists()  # the stale file stays; its lock died with the process
    res = run(tiny_config(features, "train.epochs=12", "train.checkpoint_every=1"), run_dir,
              progress=False, resume=True, quiet=True)
    assert len(res["history"]) == 12


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_or_zeroed_bytes_are_a_damaged_checkpoint(features: str, trained: Path, tmp_path: Path) -> None:
    import shutil

    good = evaluate_checkpoint(trained, split="test")
    # A flipped byte deep in the tensor data: safetensors itself would load it silently.
    copy = tmp_path / "flip"
    shutil.copytree(trained, copy)
    weights = copy / "checkpoints" / "best.safetensors"
    _flip_byte(weights, weights.stat().st_size - 3)
    with pytest.raises(CheckpointDamagedError, match="best.safetensors"):
        evaluate_checkpoint(copy, split="test")
    # Zeroed training state: resume names the state file.
    copy = tmp_path / "zero"
    shutil.copytree(trained, copy)
    state = copy / "checkpoints" / "last.state.pt"
    state.write_bytes(b"\0" * state.stat().st_size)
    with pytest.raises(CheckpointDamagedError, match="last.state.pt"):
        run(tiny_config(features, "train.epochs=2"), copy, progress=False, resume=True, quiet=True)
    # An edited description that is still valid JSON.
    copy = tmp_path / "edit"
    shutil.copytree(trained, copy)
    meta_path = copy / "checkpoints" / "best.json"
    meta = json.loads(meta_path.read_text())
    meta["similarity"]["kwargs"]["num_blocks"] = 4 if meta["similarity"]["kwargs"].get("num_blocks") != 4 else 2
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointDamagedError, match="best.json"):
        evaluate_checkpoint(copy, split="test")
    # A truncated description is damaged, not a JSON traceback.
    meta_path.write_bytes(meta_path.read_bytes()[:50])
    with pytest.raises(CheckpointDamagedError, match="not valid JSON"):
        evaluate_checkpoint(copy, split="test")
    assert evaluate_checkpoint(trained, split="test") == good  # the original is untouched


def test_a_diverging_run_stops_with_a_named_error_and_keeps_its_checkpoint(
    features: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(features, "train.epochs=3", "train.batch_size=32")
    trainer = Trainer(cfg, tmp_path / "run", progress=False, quiet=True)
    per_epoch = trainer.steps_per_epoch
    real_loss = trainer.task.loss
    calls = {"n": 0}

    def loss_that_blows_up(*args: object) -> torch.Tensor:
        calls["n"] += 1
        out = real_loss(*args)
        return out * float("nan") if calls["n"] > per_epoch + 1 else out

    monkeypatch.setattr(trainer.task, "loss", loss_that_blows_up)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.fit()
    msg = str(info.value)
    assert f"step {per_epoch + 2}" in msg and "learning rates" in msg and ", similarity 0.0" in msg
    assert "last.json (epoch 1" in msg
    meta = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert meta["epoch"] == 1 and meta["step"] == per_epoch
    # The kept checkpoint is a good one: it resumes.
    res = run(cfg, tmp_path / "run", progress=False, resume=True, quiet=True)
    assert len(res["history"]) == 3


def test_non_finite_gradients_never_reach_the_weights(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "train.epochs=1")
    trainer = Trainer(cfg, tmp_path / "run", progress=False, quiet=True)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    for p in trainer.model.parameters():
        p.register_hook(lambda g: g * float("inf"))
    with pytest.raises(TrainingDivergedError, match="gradient norm"):
        trainer.fit()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_every_split_is_checked_before_the_first_step(features: str, tmp_path: Path) -> None:
    feats = tmp_path / "feats"
    feats.mkdir()
    for split in ("train", "val", "test"):
        (feats / f"{split}.npz").write_bytes(Path(features.format(split=split)).read_bytes())
    with np.load(feats / "test.npz") as z:
        arrays = dict(z)
    arrays["image"] = np.concatenate([arrays["image"], arrays["image"][:, :3]], axis=1)  # 35 columns, not 32
    np.savez(feats / "test.npz", **arrays)
    cfg = tiny_config(str(feats / "{split}.npz"), "train.epochs=5")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"split 'test' has image features of size 35.*'train' has 32"):
        run(cfg, tmp_path / "run", progress=False, quiet=True)
    assert time.perf_counter() - t0 < 60
    assert not (tmp_path / "run" / "checkpoints").exists()  # no epoch was trained
    (feats / "test.npz").unlink()
    with pytest.raises(FileNotFoundError, match="test.npz"):
        run(cfg, tmp_path / "run2", progress=False, quiet=True)
    assert not (tmp_path / "run2" / "checkpoints").exists()


def test_piped_output_has_one_line_per_split_and_epoch(
    features: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run(tiny_config(features, "train.epochs=2"), tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["data"] * 3
    assert "split 'train' ready: 160 images, 214 texts" in lines[0]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2 and epochs[0].startswith("epoch 1/2 | loss ") and "val rsum" in epochs[0]
    assert "\r" not in err  # no progress bar off a terminal
    run(tiny_config(features, "train.epochs=2"), tmp_path / "quiet", progress=False)
    err = capsys.readouterr().err
    assert err.count("data: split") == 3 and "epoch 1/2" not in err


def test_a_cuda_device_without_cuda_is_a_named_error(monkeypatch: pytest.MonkeyPatch, trained: Path) -> None:
    from gssf.train.distributed import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="train.device=cuda: CUDA is not available"):
        resolve_device("cuda", where="config key train.device")
    with pytest.raises(ValueError, match="not a device name"):
        resolve_device("gpu0")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="device=cuda:1: CUDA is not available"):
        evaluate_checkpoint(trained, split="test", device="cuda:1")


def test_test_metrics_come_with_their_per_query_values(trained: Path) -> None:
    results = json.loads((trained / "results.json").read_text())
    per_query = json.loads((trained / "test_per_query.json").read_text())
    assert per_query["split"] == "test" and "per_query" not in results["test"]
    ranks = per_query["per_query"]["t2i_rank"]
    assert len(ranks) == 54  # one per test caption
    assert 100.0 * sum(r <= 1 for r in ranks) / len(ranks) == pytest.approx(results["test"]["t2i_R@1"])


def test_a_run_that_fails_before_it_starts_leaves_no_folder(tmp_path: Path) -> None:
    cfg = tiny_config(str(tmp_path / "missing" / "{split}.npz"))
    with pytest.raises(FileNotFoundError):
        run(cfg, tmp_path / "run", progress=False, quiet=True)
    assert not (tmp_path / "run").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(FileNotFoundError):
        run(cfg, tmp_path / "kept", progress=False, quiet=True)
    assert (tmp_path / "kept").is_dir() and not any((tmp_path / "kept").iterdir())


def test_a_model_with_nothing_to_learn_still_runs_and_evaluates(tmp_path: Path) -> None:
    from train_synthetic import write_unimodal_features

    pattern = write_unimodal_features(tmp_path / "uni")
    cfg = tiny_config(pattern, "data.task=retrieval", "loss.name=triplet", "model.head=identity", "model.embed_dim=16",
                      "similarity.name=cosine", "similarity.kwargs={}", "train.epochs=2", "train.batch_size=12")
    res = run(cfg, tmp_path / "run", progress=False, quiet=True)
    assert len(res["history"]) == 2 and res["test"]["R@1"] > 0
    assert res["history"][0]["val"] == res["history"][1]["val"]  # nothing moved
