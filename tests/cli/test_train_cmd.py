"""``gssf train`` and ``gssf eval`` called in-process."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from gssf.cli.main import main
from gssf.train import evaluate_checkpoint, save_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_synthetic import tiny_config, write_features  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli")
    cfg = tiny_config(write_features(root / "feats"), "train.epochs=2")
    save_config(cfg, root / "cfg.yaml")
    return root, root / "cfg.yaml"


def test_train_then_eval_json(setup, capsys: pytest.CaptureFixture) -> None:
    root, cfg = setup
    run_dir = root / "run"
    rc = main(["train", str(cfg), "--set", "model.embed_dim=8", "--set", "similarity.kwargs.num_blocks=2",
               "--run-dir", str(run_dir), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert f"run folder: {run_dir}" in out and "test rsum" in out
    test_line = next(line for line in out.splitlines() if line.startswith("test: "))
    for key in ("i2t_R@1", "i2t_R@5", "t2i_R@10", "i2t_medR", "rsum"):  # every protocol metric is printed
        assert f"{key} " in test_line
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["model"]["embed_dim"] == 8 and written["similarity"]["kwargs"] == {"num_blocks": 2}
    results = json.loads((run_dir / "results.json").read_text())

    rc = main(["eval", str(run_dir), "--split", "test", "--json", str(root / "m.json")])
    assert rc == 0
    metrics = json.loads((root / "m.json").read_text())
    assert metrics == results["test"] == evaluate_checkpoint(run_dir, split="test")
    assert "i2t_R@1" in capsys.readouterr().out
    assert main(["eval", str(run_dir / "checkpoints" / "last.safetensors"), "--split", "val", "--print-json"]) == 0
    assert "rsum" in json.loads(capsys.readouterr().out)

    # resuming with another similarity or dimension is refused with the keys named
    rc = main(["train", str(cfg), "--set", "similarity.name=cosine", "--set", "similarity.kwargs={}",
               "--resume", str(run_dir), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "different config" in err and "similarity.name" in err and "model.embed_dim" in err
    # resuming a finished run with its own config.yaml is a no-op that reports the results again
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "tux", "--set", "model.embd_dim=3"], ["unknown config key 'model.embd_dim'", "embed_dim"]),
        (["train", "tux", "--set", "similarity.name=gsf"], ["'gsf'", "valid choices", "gssf"]),
        (["train", "no-such-preset"], ["no config file or preset", "tux"]),
        (["train"], ["give a CONFIG"]),
        (["eval", "/no/such/run"], ["no checkpoint found at /no/such/run"]),
    ],
)
def test_errors_are_one_line_with_exit_2(argv, words, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for w in words:
        assert w in err


def test_print_config_and_list_presets(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "tux", "--set", "train.epochs=3", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["epochs"] == 3
    assert main(["train", "--list-presets"]) == 0
    assert "tux" in capsys.readouterr().out.split()
