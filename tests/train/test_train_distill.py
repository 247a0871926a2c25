"""Knowledge distillation from a teacher run (config section distill) on synthetic cached features."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gssf.train import load_config, run
from gssf.train.trainer import Trainer
from train_synthetic import tiny_config, write_features


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_features(tmp_path_factory.mktemp("feats"))


@pytest.fixture(scope="module")
def teacher(features: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "run"
    run(tiny_config(features, "model.embed_dim=32", "similarity.name=cosine", "similarity.kwargs={}",
                    "train.epochs=3"), out, progress=False)
    return out


def test_the_student_learns_from_the_teacher_through_its_similarity(features: str, teacher: Path, tmp_path: Path) -> None:
    t = Trainer(tiny_config(features, f"distill.teacher={teacher}"), tmp_path / "t", progress=False)
    tr = t.task.train_split()
    assert t.task.teacher.image.shape == (tr.num_images, 32) and t.task.teacher.text.shape == (tr.txt2img.shape[0], 32)
    assert not any(p.requires_grad for p in t.task.teacher.loss.teacher_similarity.parameters())
    # the distillation term adds to the task loss and reaches the student's similarity
    idx = torch.arange(32)
    with_kd = t.task.loss(t.model, t.criterion, idx)
    teacher_obj, t.task.teacher = t.task.teacher, None
    without = t.task.loss(t.model, t.criterion, idx)
    t.task.teacher = teacher_obj
    assert float(with_kd.detach()) > float(without.detach())
    t.model.zero_grad()
    (with_kd - without).backward()
    sim_grads = [p.grad for p in t.model.similarity.parameters() if p.grad is not None]
    assert sim_grads and any(float(g.abs().sum()) > 0 for g in sim_grads)

    kd = run(tiny_config(features, "train.epochs=2", f"distill.teacher={teacher}"), tmp_path / "kd", progress=False)
    plain = run(tiny_config(features, "train.epochs=2"), tmp_path / "plain", progress=False)
    assert kd["teacher_from"]["path"].endswith("best.json") and kd["teacher_from"]["sha256"]["weights"]
    assert "teacher_from" not in plain
    assert kd["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    # a weight of zero is the plain student exactly
    zero = run(tiny_config(features, "train.epochs=2", f"distill.teacher={teacher}", "distill.weight=0"),
               tmp_path / "zero", progress=False)
    assert zero["test"] == plain["test"]


def test_a_teacher_of_other_items_or_a_bad_section_is_refused(features: str, teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_train_items"):
        Trainer(tiny_config(features, f"distill.teacher={teacher}", "data.max_train_items=50"), tmp_path / "a",
                progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        Trainer(tiny_config(features, f"distill.teacher={tmp_path / 'nowhere'}"), tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="distill.temperature"):
        tiny_config(features, "distill.teacher=x", "distill.temperature=0").validate()
    with pytest.raises(ValueError, match="distill.teacher.*image_text"):
        load_config("wesnoth", overrides=["distill.teacher=x"]).validate()


def test_grouped_image_text_items_distil_by_image_and_caption_index(tmp_path: Path) -> None:
    """Many images per caption: the teacher's embeddings are looked up by each pair's image and caption."""
    from train_synthetic import write_grouped_features

    pattern = write_grouped_features(tmp_path / "feats")
    run(tiny_config(pattern, "model.embed_dim=32", "similarity.name=cosine", "similarity.kwargs={}",
                    "train.epochs=2", "train.batch_size=16"), tmp_path / "teacher", progress=False)
    t = Trainer(tiny_config(pattern, "train.batch_size=16", f"distill.teacher={tmp_path / 'teacher'}"),
                tmp_path / "student", progress=False)
    tr = t.task.train_split()
    assert tr.image_groups is not None and t.task.teacher.image.shape[0] == tr.num_images
    idx = torch.arange(16)
    loss = t.task.loss(t.model, t.criterion, idx)
    assert torch.isfinite(loss)
    res = run(tiny_config(pattern, "train.epochs=2", "train.batch_size=16", f"distill.teacher={tmp_path / 'teacher'}"),
              tmp_path / "student", progress=False)
    assert res["teacher_from"]["checkpoint_id"]
