"""``loss.terms``: losses as a list of {name, weight, kwargs}, pytorch-metric-learning ones by name."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gssf.train import load_config, run
from gssf.train.criterion import LossSum, build_criterion
from gssf.train.tasks import make_task
from train_synthetic import tiny_config, write_unimodal_features

REID = ["data.task=reid", "train.sampler=pk", "train.pk_instances=3", "train.batch_size=12", "train.epochs=3",
        "optim.lr=0.02", "eval.ks=[1,5]"]  # fmt: skip


@pytest.fixture(scope="module")
def uni(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_unimodal_features(tmp_path_factory.mktemp("uni"))


def _criterion(cfg):
    task = make_task(cfg, torch.device("cpu"))
    model = task.build_model(task.input_dims())
    return build_criterion(cfg, model.similarity, task.num_classes()), model


def test_terms_build_the_same_losses_as_name_and_weights(uni: str) -> None:
    old = tiny_config(uni, *REID, "loss.name=triplet+id_ce", "loss.weights={id_ce: 0.5}", "loss.margin=0.3")
    new = tiny_config(uni, *REID, "loss.terms=[{name: triplet, kwargs: {margin: 0.3}}, {name: id_ce, weight: 0.5}]")
    (a, ma), (b, mb) = _criterion(old), _criterion(new)
    assert isinstance(a, LossSum) and isinstance(b, LossSum) and a.weights == b.weights == {"triplet": 1.0, "id_ce": 0.5}
    mb.load_state_dict(ma.state_dict())
    b.load_state_dict(a.state_dict())
    emb, labels = torch.randn(12, 16, generator=torch.Generator().manual_seed(0)), torch.arange(4).repeat(3)
    assert torch.allclose(a(ma.encode(emb), labels), b(mb.encode(emb), labels))


def test_a_pytorch_metric_learning_loss_trains_by_name(uni: str, tmp_path: Path) -> None:
    cfg = tiny_config(uni, *REID, "loss.terms=[{name: pml, kwargs: {loss: MultiSimilarityLoss, alpha: 2.0}}]")
    res = run(cfg, tmp_path / "run", progress=False)
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert res["test"]["mAP"] > 30
    crit, _ = _criterion(cfg)
    assert type(crit).__name__ == "PMLLoss" and type(crit.loss).__name__ == "MultiSimilarityLoss"


@pytest.mark.parametrize("terms, match", [
    ("[{name: nope}]", "loss.terms\\[0\\].name"),
    ("[{name: triplet, kwargs: {margn: 0.2}}]", "unknown config key 'loss.terms\\[0\\].kwargs.margn'"),
    ("[{name: id_ce, kwargs: {num_classes: 3}}]", "set by the task"),
    ("[{name: triplet, weight: -1}]", "weight' must be a number >= 0"),
    ("[{name: triplet, wieght: 1}]", "unknown config key\\(s\\) \\['wieght'\\]"),
    ("[{name: infonce}]", "needs a unimodal loss"),
])  # fmt: skip
def test_bad_terms_name_the_key(uni: str, terms: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_config(uni, *REID, f"loss.terms={terms}")
    with pytest.raises(ValueError, match="unknown pytorch-metric-learning loss 'Nope'"):
        _criterion(tiny_config(uni, *REID, "loss.terms=[{name: pml, kwargs: {loss: Nope}}]"))
    assert load_config("tux").loss.terms == []
