"""Trainer options the uni-modal presets rely on, on synthetic features (seconds).

* ``data.val_split: null``: no validation, the last epoch is tested (standard re-ID / DML splits);
* ``QUERY/GALLERY`` re-ID split pairs (Market-1501's ``query/gallery``);
* ``eval.rerank``: k-reciprocal re-ranked metrics from the learned similarity, as ``rerank_`` keys;
* ``data.max_train_items``: a fixed training subset, identical for every seed.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gssf.evaluation import k_reciprocal_rerank, reid_metrics
from gssf.train import load_config, load_model, run
from gssf.train.tasks import reid_pair, subset_indices
from train_synthetic import tiny_config, write_unimodal_features

REID = ["data.task=reid", "loss.name=triplet+id_ce", "train.sampler=pk", "train.pk_instances=3",
        "train.batch_size=12", "train.epochs=3", "optim.lr=0.02", "eval.ks=[1,5]"]  # fmt: skip


@pytest.fixture(scope="module")
def uni(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_unimodal_features(tmp_path_factory.mktemp("uni"))


def test_reid_pair_names_query_and_gallery() -> None:
    assert reid_pair("val") == ("val-query", "val-gallery")
    assert reid_pair("query/gallery") == ("query", "gallery")
    for bad in ("query/", "/gallery", "a/b/c"):
        with pytest.raises(ValueError, match="QUERY/GALLERY"):
            reid_pair(bad)
    with pytest.raises(ValueError, match="data.test_split"):
        load_config("market1501", overrides=["data.test_split=query/"])


def test_explicit_split_pair_and_no_validation(uni: str, tmp_path: Path) -> None:
    # The synthetic files name the pairs test-query/test-gallery; given explicitly they must
    # evaluate exactly like the implicit pair of split "test".
    pairs = tiny_config(uni, *REID, "data.val_split=null", "data.test_split=test-query/test-gallery")
    plain = tiny_config(uni, *REID, "data.val_split=null")
    a, b = run(pairs, tmp_path / "a", progress=False), run(plain, tmp_path / "b", progress=False)
    assert a["test"] == b["test"] and a["test"]["num_valid_queries"] > 0
    assert a["val"] is None and a["best_epoch"] is None
    assert all(h["val"] is None for h in a["history"]) and len(a["history"]) == 3
    # the last checkpoint is the one tested (no best.* without validation)
    assert not (tmp_path / "a" / "checkpoints" / "best.json").exists()
    model, task, _ = load_model(tmp_path / "a")
    with torch.no_grad():
        again = task.evaluate(model, "test-query/test-gallery")
    assert {k: again[k] for k in ("mAP", "mINP", "R@1")} == pytest.approx({k: a["test"][k] for k in ("mAP", "mINP", "R@1")})


def test_rerank_metrics_come_from_the_learned_similarity(uni: str, tmp_path: Path) -> None:
    cfg = tiny_config(uni, *REID, "eval.rerank=true", "eval.rerank_k1=5", "eval.rerank_k2=3", "eval.rerank_lambda=0.4")
    res = run(cfg, tmp_path / "run", progress=False)
    test = res["test"]
    assert {"mAP", "mINP", "R@1", "rerank_mAP", "rerank_mINP", "rerank_R@1"} <= set(test)
    assert {"rerank_mAP", "mAP"} <= set(res["val"])
    # Recompute by hand: embeddings of the selected model, the library's re-ranking on its similarity.
    model, task, _ = load_model(tmp_path / "run")
    q, g = task.split("test-query"), task.split("test-gallery")
    with torch.no_grad():
        qe, ge = model.encode(q.image), model.encode(g.image)
        scores = k_reciprocal_rerank(qe, ge, model.similarity, k1=5, k2=3, lambda_value=0.4)
    ref = reid_metrics(scores, q.labels, g.labels, q.cams, g.cams, max_rank=g.num_images, ks=(1, 5))
    assert test["rerank_mAP"] == pytest.approx(ref["mAP"], abs=1e-4)
    assert test["rerank_R@1"] == pytest.approx(ref["R@1"], abs=1e-4)
    # the CMC curve is cut at the gallery size (max_rank 50 > gallery)
    assert len(test["cmc"]) == min(50, g.num_images)


def test_rerank_options_are_validated() -> None:
    with pytest.raises(ValueError, match="eval.rerank.*task reid"):
        load_config("fashion-mnist", overrides=["eval.rerank=true"])
    with pytest.raises(ValueError, match="rerank_k2"):
        load_config("emoji-reid", overrides=["eval.rerank_k1=3", "eval.rerank_k2=9"])
    with pytest.raises(ValueError, match="rerank_lambda"):
        load_config("emoji-reid", overrides=["eval.rerank_lambda=1.5"])


def test_max_train_items_is_a_fixed_subset(uni: str, tmp_path: Path) -> None:
    idx = subset_indices(100, 30)
    assert idx.numel() == 30 and torch.equal(idx, idx.sort().values) and torch.equal(idx, subset_indices(100, 30))
    assert torch.equal(subset_indices(10, 0), torch.arange(10)) and torch.equal(subset_indices(10, 50), torch.arange(10))
    base = ["data.task=retrieval", "loss.name=triplet", "train.batch_size=8", "train.epochs=1"]
    from gssf.train.trainer import Trainer

    seen = []
    for seed in (0, 1):
        t = Trainer(tiny_config(uni, *base, "data.max_train_items=40", f"train.seed={seed}"), tmp_path / f"s{seed}",
                    progress=False)
        tr = t.task.train_split()
        assert tr.image.shape[0] == 40 and t.task.num_items() == 40 and len(t.sampler) == 5
        seen.append(tr.image)
    full = np.load(uni.format(split="train"))["image"]
    rows = subset_indices(full.shape[0], 40).numpy()
    assert torch.equal(seen[0], seen[1]) and np.array_equal(seen[0].numpy(), full[rows])
    with pytest.raises(ValueError, match="max_train_items"):
        load_config("tux", overrides=["data.max_train_items=10"])
    with pytest.raises(ValueError, match="max_train_items"):
        load_config("fashion-mnist", overrides=["data.max_train_items=-1"])
    shutil.rmtree(tmp_path, ignore_errors=True)
