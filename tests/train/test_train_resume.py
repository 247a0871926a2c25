"""A run killed with SIGKILL mid-epoch and resumed ends exactly like an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gssf.train import run, save_config
from train_synthetic import tiny_config, write_features


def _records(run_dir: Path, event: str) -> list:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def _strip(history: list) -> list:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    features = write_features(tmp_path / "feats", splits={"train": 400, "val": 40, "test": 40})
    cfg = tiny_config(
        features, "train.epochs=8", "train.batch_size=16", "train.checkpoint_every=5",
        "model.head=mlp", "model.hidden_dim=32", "model.dropout=0.1",  # dropout: the RNG state must resume too
    )
    save_config(cfg, tmp_path / "cfg.yaml")
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gssf.cli.main", "train", str(tmp_path / "cfg.yaml"), "--run-dir", str(run_dir), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = None
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            meta = _read_json(run_dir / "checkpoints" / "last.json")
            # a mid-epoch checkpoint after at least one full epoch (so history and best exist)
            if meta and meta["epoch"] >= 1 and meta["batches_done"] > 0:
                seen = meta
                break
            if proc.poll() is not None:
                pytest.fail(f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert seen is not None, "no mid-epoch checkpoint appeared"
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "results.json").exists()
    killed_at = _read_json(run_dir / "checkpoints" / "last.json")
    assert killed_at["epoch"] < 8

    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads((run_dir / "results.json").read_text())
    reference = run(cfg, tmp_path / "reference", progress=False)

    assert resumed["val"] == reference["val"]
    assert resumed["test"] == reference["test"]
    assert resumed["best_epoch"] == reference["best_epoch"]
    assert _strip(resumed["history"]) == _strip(reference["history"])
    # every logged training step (loss and learning rates) is the same, none missing or doubled
    strip_time = lambda rs: [{k: v for k, v in r.items()} for r in rs]  # noqa: E731
    assert strip_time(_records(run_dir, "train")) == strip_time(_records(tmp_path / "reference", "train"))
    assert len(_records(run_dir, "resume")) == 1
    # and the final weights are bit-identical
    a = load_file(str(run_dir / "checkpoints" / "last.safetensors"))
    b = load_file(str(tmp_path / "reference" / "checkpoints" / "last.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
