"""Reuse of finished demo runs: a run without per-query test values is trained again (training faked)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

import pytest
import torch

from gssf.demo import run as demo_run
from gssf.similarity import create_similarity
from gssf.train import load_config


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.similarity = create_similarity("gssf", dim=8, block_size=4)


def _fake_trainer(monkeypatch: pytest.MonkeyPatch) -> List[dict]:
    """``gssf.train.run`` writes what the trainer writes (results, per-query values); returns its calls."""
    calls: List[dict] = []

    def run(cfg: Any, run_dir: Path, progress: bool, resume: bool, quiet: bool) -> dict:
        calls.append({"resume": resume, "files": sorted(p.name for p in Path(run_dir).glob("*"))})
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        res = {"val": {"rsum": 1.0}, "test": {"rsum": 2.0}, "params": 4352, "train_seconds": 0.1, "history": []}
        (Path(run_dir) / "results.json").write_text(json.dumps(res))
        (Path(run_dir) / "test_per_query.json").write_text(json.dumps({"split": "test", "per_query": {"x": [1.0]}}))
        return res

    monkeypatch.setattr("gssf.train.run", run)
    monkeypatch.setattr("gssf.train.load_model", lambda run_dir: (_Model(), None, {}))
    monkeypatch.setattr(demo_run, "_score_seconds", lambda model, task, split: 0.001)
    return calls


def test_a_finished_run_without_per_query_values_is_trained_again_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _fake_trainer(monkeypatch)
    cfg = load_config("tux", overrides=["similarity.name=gssf", "train.seed=0"])
    run_dir = tmp_path / "tux" / "gssf" / "seed0"
    # a run finished by an older trainer: same config, results.json, but no test_per_query.json
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"val": {}, "test": {}, "params": 0, "train_seconds": 1.0}))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.json").write_text("{}")
    (tmp_path / "tux" / "gssf" / "seed0.demo.json").write_text(json.dumps(demo_run._config_key(cfg)))

    res, reused = demo_run._train_one(cfg, run_dir, progress=False)
    assert not reused and calls == [{"resume": False, "files": []}]  # started afresh in an emptied folder
    assert res["test_per_query"] == {"per_query": {"x": [1.0]}} and res["dataset"] == "tux"
    assert res["config_sha256"] == demo_run._config_sha256(demo_run._config_key(cfg))
    assert res["learned"]["norm_M_minus_I"] == pytest.approx(0.0, abs=1e-12)

    res, reused = demo_run._train_one(cfg, run_dir, progress=False)
    assert reused and len(calls) == 1 and res["test"] == {"rsum": 2.0}


def test_the_config_hash_changes_with_any_setting() -> None:
    a = demo_run._config_key(load_config("tux", overrides=["train.seed=0"]))
    b = demo_run._config_key(load_config("tux", overrides=["train.seed=1"]))
    assert demo_run._config_sha256(a) != demo_run._config_sha256(b)
    assert demo_run._config_sha256(a) == demo_run._config_sha256(json.loads(json.dumps(a)))
    assert len(demo_run._config_sha256(a)) == 64
