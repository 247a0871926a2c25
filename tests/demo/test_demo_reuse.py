"""Reuse of finished demo runs: a run without per-query test values gets them from its checkpoint
(training and evaluation faked)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch

from gssf.demo import run as demo_run
from gssf.similarity import create_similarity
from gssf.train import load_config


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.similarity = create_similarity("gssf", dim=8, block_size=4)


class _Task:
    """Evaluates like a task: metrics plus per-query values (numpy, as the evaluators return them)."""

    def __init__(self, calls: List[Any]) -> None:
        self.calls = calls

    def evaluate(self, model: torch.nn.Module, split: str, per_query: bool = False) -> Dict[str, Any]:
        import numpy as np

        self.calls.append(("evaluate", split, per_query))
        return {"rsum": 50.0, "per_query": {"i2t_R@1": np.array([100.0, 0.0])}}

    def query_clusters(self, split: str) -> Dict[str, List[int]]:
        return {"i2t": [0, 1]}


def _fake_trainer(monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """``gssf.train.run`` writes what the trainer writes (results, per-query values); returns the calls."""
    calls: List[Any] = []

    def run(cfg: Any, run_dir: Path, progress: bool, resume: bool, quiet: bool) -> dict:
        calls.append(("train", resume))
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        res = {"val": {"rsum": 1.0}, "test": {"rsum": 2.0}, "params": 4352, "train_seconds": 0.1, "history": []}
        (Path(run_dir) / "results.json").write_text(json.dumps(res))
        (Path(run_dir) / "test_per_query.json").write_text(json.dumps({"split": "test", "per_query": {"x": [1.0]}}))
        return res

    monkeypatch.setattr("gssf.train.run", run)
    monkeypatch.setattr("gssf.train.load_model", lambda run_dir: (_Model(), _Task(calls), {}))
    monkeypatch.setattr(demo_run, "_score_seconds", lambda model, task, split: 0.001)
    return calls


def _old_run(tmp_path: Path, cfg: Any) -> Path:
    """A run finished by an older trainer: same config, results.json, checkpoints, no test_per_query.json."""
    run_dir = tmp_path / "tux" / "gssf" / "seed0"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"val": {"rsum": 3.0}, "test": {"rsum": 50.0}, "params": 4352,
                                                      "train_seconds": 1.0}))
    (run_dir / "checkpoints" / "best.json").write_text("{}")
    (tmp_path / "tux" / "gssf" / "seed0.demo.json").write_text(json.dumps(demo_run._config_key(cfg)))
    return run_dir


def test_a_finished_run_without_per_query_values_is_evaluated_again_not_retrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_trainer(monkeypatch)
    cfg = load_config("tux", overrides=["similarity.name=gssf", "train.seed=0"])
    run_dir = _old_run(tmp_path, cfg)

    res, reused = demo_run._train_one(cfg, run_dir, progress=False)
    assert reused and calls == [("evaluate", "test", True)]  # nothing trained, nothing removed
    assert (run_dir / "checkpoints" / "best.json").exists() and res["test"] == {"rsum": 50.0}
    written = json.loads((run_dir / "test_per_query.json").read_text())
    assert written == {"split": "test", "per_query": {"i2t_R@1": [100.0, 0.0]}}
    assert res["test_per_query"] == {"per_query": {"i2t_R@1": [100.0, 0.0]}} and res["dataset"] == "tux"
    assert res["config_sha256"] == demo_run._config_sha256(demo_run._config_key(cfg))
    assert res["learned"]["norm_M_minus_I"] == pytest.approx(0.0, abs=1e-12)

    res, reused = demo_run._train_one(cfg, run_dir, progress=False)
    assert reused and len(calls) == 1  # the second time the file is there


def test_a_run_of_another_config_is_trained_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_trainer(monkeypatch)
    run_dir = _old_run(tmp_path, load_config("tux", overrides=["similarity.name=gssf", "train.seed=1"]))
    cfg = load_config("tux", overrides=["similarity.name=gssf", "train.seed=0"])
    res, reused = demo_run._train_one(cfg, run_dir, progress=False)
    assert not reused and calls == [("train", False)] and res["test_per_query"] == {"per_query": {"x": [1.0]}}


def test_the_config_hash_changes_with_any_setting() -> None:
    a = demo_run._config_key(load_config("tux", overrides=["train.seed=0"]))
    b = demo_run._config_key(load_config("tux", overrides=["train.seed=1"]))
    assert demo_run._config_sha256(a) != demo_run._config_sha256(b)
    assert demo_run._config_sha256(a) == demo_run._config_sha256(json.loads(json.dumps(a)))
    assert len(demo_run._config_sha256(a)) == 64
