"""The trainer on synthetic cached features: learning, determinism, outputs, optimizer groups."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gssf
from gssf.train import load_config, run
from gssf.train.trainer import Trainer, build_param_groups
from train_synthetic import tiny_config, write_features, write_grouped_features, write_unimodal_features


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_features(tmp_path_factory.mktemp("feats"))


def test_training_learns_and_writes_the_run_folder(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "train.epochs=6")
    res = run(cfg, tmp_path / "run", progress=False)
    hist = res["history"]
    assert len(hist) == 6
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]
    # 40 test images: chance R@1 is 2.5%.
    assert res["test"]["t2i_R@1"] > 40 and res["test"]["i2t_R@1"] > 40
    assert res["val"]["rsum"] == max(h["val"]["rsum"] for h in hist)
    assert res["params"] == gssf.create_similarity("gssf", dim=16, num_blocks=4).num_parameters
    assert res["train_seconds"] > 0
    run_dir = tmp_path / "run"
    # the resolved config is written, commented, and loads back to the same config
    text = (run_dir / "config.yaml").read_text()
    assert "# size of the joint embedding" in text
    assert load_config(run_dir / "config.yaml") == cfg
    # the JSONL log: train records with loss and lr per group, validation per epoch, test at the end
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    events = [r["event"] for r in records]
    assert events[0] == "start" and events[-1] == "end"
    train = [r for r in records if r["event"] == "train"]
    assert train and {"loss", "lr", "step", "epoch"} <= set(train[0])
    assert set(train[0]["lr"]) == {"heads", "heads_no_decay", "similarity", "loss"}
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == list(range(1, 7)) and all("rsum" in r["val"] for r in epochs)
    assert [r for r in records if r["event"] == "test"][0]["metrics"] == res["test"]
    assert json.loads((run_dir / "results.json").read_text()) == res
    for name in ("last.safetensors", "last.json", "last.state.pt", "best.safetensors", "best.json"):
        assert (run_dir / "checkpoints" / name).is_file()


def test_two_runs_with_one_seed_are_identical(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "train.epochs=2", "model.head=mlp", "model.hidden_dim=32", "model.dropout=0.1")
    a = run(cfg, tmp_path / "a", progress=False)
    b = run(cfg, tmp_path / "b", progress=False)
    strip = lambda r: [{k: v for k, v in h.items() if k != "seconds"} for h in r["history"]]  # noqa: E731
    assert strip(a) == strip(b)
    assert a["test"] == b["test"] and a["val"] == b["val"]
    c = run(tiny_config(features, "train.epochs=2", "model.head=mlp", "model.hidden_dim=32",
                        "model.dropout=0.1", "train.seed=1"), tmp_path / "c", progress=False)
    assert strip(c) != strip(a)


def test_similarity_has_its_own_learning_rate_and_weight_decay(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "optim.lr=0.003", "optim.weight_decay=0.01", "optim.similarity_lr=0.05",
                      "optim.similarity_weight_decay=0.2", "optim.loss_lr=0.5", "optim.scheduler=constant")
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert set(groups) == {"heads", "heads_no_decay", "similarity", "loss"}
    sim_ids = {id(p) for p in trainer.model.similarity.parameters()}
    assert {id(p) for p in groups["similarity"]["params"]} == sim_ids
    assert (groups["similarity"]["lr"], groups["similarity"]["weight_decay"]) == (0.05, 0.2)
    assert (groups["heads"]["lr"], groups["heads"]["weight_decay"]) == (0.003, 0.01)
    assert groups["heads_no_decay"]["weight_decay"] == 0.0 and all(p.ndim == 1 for p in groups["heads_no_decay"]["params"])
    assert groups["loss"]["params"] == [trainer.criterion.log_tau] and groups["loss"]["lr"] == 0.5
    # every trainable parameter is in exactly one group
    all_ids = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    expected = {id(p) for p in list(trainer.model.parameters()) + list(trainer.criterion.parameters())}
    assert len(all_ids) == len(set(all_ids)) and set(all_ids) == expected
    # a cosine model has no similarity group
    cos = Trainer(tiny_config(features, "similarity.name=cosine", "similarity.kwargs={}"), tmp_path / "c", progress=False)
    assert "similarity" not in {g["name"] for g in cos.optimizer.param_groups}
    assert build_param_groups(cos.model, cos.criterion, cos.cfg.optim)[0]["name"] == "heads"


def test_hinge_loss_and_warmup_to_hardest_negatives(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "loss.name=hinge", "loss.hardest_after_epochs=1", "train.epochs=3")
    res = run(cfg, tmp_path / "run", progress=False)
    assert res["test"]["rsum"] > 150


def test_bf16_autocast_runs_with_fp32_scores(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "train.precision=bf16", "train.epochs=2")
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    seen = []
    sim = trainer.model.similarity
    hook = sim.register_forward_hook(lambda m, inp, out: seen.append((inp[0].dtype, out.dtype)))
    res = trainer.fit()
    hook.remove()
    assert seen and all(i == torch.bfloat16 for i, _ in seen[:3])  # training: bf16 embeddings in
    assert all(o == torch.float32 for _, o in seen)  # ...fp32 scores out
    assert res["test"]["rsum"] > 100


def test_retrieval_task_with_triplet_and_id_losses(tmp_path: Path) -> None:
    pattern = write_unimodal_features(tmp_path / "uni")
    cfg = tiny_config(pattern, "data.task=retrieval", "loss.name=triplet+id_ce", "loss.weights={id_ce: 0.5}",
                      "train.sampler=pk", "train.pk_instances=3", "train.batch_size=12", "train.epochs=10",
                      "optim.lr=0.02")
    res = run(cfg, tmp_path / "run", progress=False)
    # Unseen test classes; the untrained model (raw features, cosine) reaches R@1 19.4.
    assert res["metric"] == "R@1" and res["test"]["R@1"] > 35


def test_reid_task_uses_query_and_gallery_splits(tmp_path: Path) -> None:
    pattern = write_unimodal_features(tmp_path / "uni")
    cfg = tiny_config(pattern, "data.task=reid", "loss.name=triplet", "train.epochs=10", "train.batch_size=16",
                      "optim.lr=0.02")
    res = run(cfg, tmp_path / "run", progress=False)
    assert res["metric"] == "mAP" and {"mAP", "R@1"} <= set(res["test"])
    assert res["test"]["mAP"] > 32  # untrained: 22.7


def test_run_folder_is_not_overwritten(features: str, tmp_path: Path) -> None:
    cfg = tiny_config(features, "train.epochs=1", "eval.test=false")
    res = run(cfg, tmp_path / "run", progress=False)
    assert res["test"] is None
    with pytest.raises(ValueError, match="--resume"):
        run(cfg, tmp_path / "run", progress=False)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        run(cfg, tmp_path / "other", progress=False, resume=True)
    with pytest.raises(ValueError, match="different config: train.epochs"):
        run(tiny_config(features, "train.epochs=2", "eval.test=false"), tmp_path / "run", progress=False, resume=True)


def test_optional_tensorboard_events(features: str, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(tiny_config(features, "train.epochs=2", "train.tensorboard=true"), tmp_path / "run", progress=False)
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr_similarity", "val/rsum", "test/rsum"} <= tags
    assert len(acc.Scalars("val/rsum")) == 2


def test_tensorboard_shows_what_the_similarity_learned(features: str, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(tiny_config(features, "train.epochs=2", "train.tensorboard=true"), tmp_path / "run", progress=False)
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"similarity/norm_M_minus_I", "similarity/diagonal_std", "similarity/max_abs_block",
            "similarity/temperature"} <= tags  # fmt: skip
    moved = acc.Scalars("similarity/norm_M_minus_I")
    assert len(moved) == 2 and moved[-1].value > 0  # it learned, and the board shows it
    assert 0.01 <= acc.Scalars("similarity/temperature")[-1].value <= 1.0  # the learned InfoNCE temperature


def test_progress_bars_do_not_change_results(features: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(features, "train.epochs=1")
    quiet = run(cfg, tmp_path / "a", progress=False)
    shown = run(cfg, tmp_path / "b", progress=True)
    assert quiet["test"] == shown["test"]


def test_grouped_image_text_trains_on_covering_pairs_and_evaluates_by_group(tmp_path: Path) -> None:
    """Many images per caption: items are (image, caption) pairs of one group, id = the group; a
    group with one caption gives all its pairs, one with several captions and images gives
    max(images, captions) pairs that use each of both, re-drawn each epoch; evaluation counts an
    image and a caption as a match when their groups are equal."""
    import numpy as np

    from gssf.train.tasks import make_task

    pattern = write_grouped_features(tmp_path / "feats")
    cfg = tiny_config(pattern, "train.epochs=6", "train.batch_size=16")
    task = make_task(cfg, torch.device("cpu"))
    tr = np.load(pattern.format(split="train"))
    ig, tg = tr["image_groups"], tr["text_groups"]
    te = np.load(pattern.format(split="test"))  # the bootstrap draws a group with all its images and captions
    assert task.query_clusters("test") == {"i2t": te["image_groups"].tolist(), "t2i": te["text_groups"].tolist()}
    drawn = []
    for epoch in (0, 1, 2):
        task.set_epoch(torch.nn.Module(), epoch)
        img, txt, ids = task.pairs()
        assert (ids == torch.as_tensor(ig)[img]).all() and (ids == torch.as_tensor(tg)[txt]).all()
        assert task.num_items() == sum(max((ig == g).sum(), (tg == g).sum()) for g in np.unique(ig))
        assert set(img.tolist()) == set(range(len(ig))) and set(txt.tolist()) == set(range(len(tg)))
        for g in np.unique(ig):
            pairs = {(i, j) for i, j in zip(img.tolist(), txt.tolist()) if ig[i] == g}
            if (tg == g).sum() == 1:  # one caption: every pair of the group
                assert pairs == {(i, int(np.flatnonzero(tg == g)[0])) for i in np.flatnonzero(ig == g)}
        drawn.append(sorted(zip(img.tolist(), txt.tolist())))
    assert drawn[0] != drawn[1] or drawn[1] != drawn[2]  # the many-to-many groups are re-paired
    task.set_epoch(torch.nn.Module(), 1)
    assert sorted(zip(task.pairs()[0].tolist(), task.pairs()[1].tolist())) == drawn[1]  # same epoch, same pairs
    res = run(cfg, tmp_path / "run", progress=False)
    assert res["history"][-1]["train_loss"] < 0.7 * res["history"][0]["train_loss"]
    # the reported test metrics are those of the group protocol on the best checkpoint's embeddings
    from gssf.train import load_model

    model, mtask = load_model(tmp_path / "run")[:2]
    data = mtask.split("test")
    with torch.no_grad():
        images = model.encode_image(data.image)
        texts = model.encode_text(data.text)
        scores = model.similarity(images, texts).double().numpy()
    same = data.image_groups.numpy()[:, None] == data.text_groups.numpy()[None, :]

    def first_hit(row: "np.ndarray", relevant: "np.ndarray") -> int:  # 1-based, ties broken against the query
        best = row[relevant].max()
        return int((row > best).sum()) + 1

    i2t = [first_hit(scores[i], same[i]) for i in range(scores.shape[0])]
    t2i = [first_hit(scores[:, j], same[:, j]) for j in range(scores.shape[1])]
    assert res["test"]["i2t_R@1"] == pytest.approx(100.0 * float(np.mean(np.asarray(i2t) == 1)), abs=1e-6)
    assert res["test"]["t2i_R@5"] == pytest.approx(100.0 * float(np.mean(np.asarray(t2i) <= 5)), abs=1e-6)
    # 12 test groups, 36 images: chance i2t R@1 is about 8 %
    assert res["test"]["i2t_R@1"] > 40, res["test"]


def test_heads_from_a_cosine_run_frozen_while_only_the_similarity_learns(features: str, tmp_path: Path) -> None:
    """The frozen setting: towers trained with cosine, then fixed; a similarity learns on top."""
    from safetensors.torch import load_file

    base = run(tiny_config(features, "similarity.name=cosine", "similarity.kwargs={}", "train.epochs=3"),
               tmp_path / "cosine", progress=False)
    frozen_cos = run(tiny_config(features, "similarity.name=cosine", "similarity.kwargs={}", "train.epochs=2",
                                 f"model.heads_from={tmp_path / 'cosine'}", "model.freeze_heads=true"),
                     tmp_path / "frozen-cosine", progress=False)
    # nothing that ranks learns: the cosine baseline of the frozen setting is the source run itself
    assert frozen_cos["test"] == base["test"]
    assert frozen_cos["towers_from"]["path"].endswith("best.json") and frozen_cos["towers_from"]["sha256"]["weights"]
    res = run(tiny_config(features, "train.epochs=2", "optim.similarity_lr=0.05",
                          f"model.heads_from={tmp_path / 'cosine'}", "model.freeze_heads=true"),
              tmp_path / "frozen-gssf", progress=False)
    src = load_file(str(tmp_path / "cosine" / "checkpoints" / "best.safetensors"))
    out = load_file(str(tmp_path / "frozen-gssf" / "checkpoints" / "last.safetensors"))
    towers = [k for k in src if k.startswith("model.") and not k.startswith("model.similarity.")]
    assert towers and all(torch.equal(src[k], out[k]) for k in towers)  # the heads did not move
    fresh = gssf.create_similarity("gssf", dim=16, num_blocks=4).state_dict()
    moved = [k for k in fresh if not torch.equal(out[f"model.similarity.{k}"], fresh[k])]
    assert moved  # the similarity did
    assert res["test"] != base["test"]
    # the optimizer holds no tower parameter
    t = Trainer(tiny_config(features, f"model.heads_from={tmp_path / 'cosine'}", "model.freeze_heads=true"),
                tmp_path / "t", progress=False)
    names = {g["name"] for g in t.optimizer.param_groups}
    assert "heads" not in names and "heads_no_decay" not in names and "similarity" in names


def test_heads_from_refuses_a_run_of_another_architecture(features: str, tmp_path: Path) -> None:
    run(tiny_config(features, "train.epochs=1"), tmp_path / "src", progress=False)
    with pytest.raises(ValueError, match="embed_dim"):
        Trainer(tiny_config(features, "model.embed_dim=8", f"model.heads_from={tmp_path / 'src'}"),
                tmp_path / "t", progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        Trainer(tiny_config(features, f"model.heads_from={tmp_path / 'nowhere'}"), tmp_path / "u", progress=False)
    with pytest.raises(ValueError, match="model.freeze_heads.*model.heads_from"):
        Trainer(tiny_config(features, "model.freeze_heads=true"), tmp_path / "v", progress=False)


@pytest.mark.parametrize("setting", ["attention-pool", "cross-attention"])
def test_the_attention_setting_trains_its_kernel_end_to_end(setting: str, features: str, tmp_path: Path) -> None:
    """Setting "attention": the member is the attention kernel (pooling attention, or words over regions)."""
    sets = ["model.head=pooled", "model.hidden_dim=16", "model.element_dims={image: 8, text: 4}"]
    if setting == "attention-pool":
        extra = ["model.pool=attention", "model.attention_similarity=gssf", "model.attention_heads=2",
                 "model.attention_kwargs={num_blocks: 2}", "similarity.name=cosine", "similarity.kwargs={}"]
    else:
        extra = ["model.pool=none", "model.embed_dim=8", "similarity.name=cross_attention",
                 "similarity.kwargs={kernel: gssf, kernel_kwargs: {num_blocks: 2}}"]
    res = run(tiny_config(features, "train.epochs=3", *sets, *extra), tmp_path / "run", progress=False)
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert res["test"]["rsum"] > 60  # chance: about 6 x 2.5 = 15
    from gssf.train import load_model

    model, _, _ = load_model(tmp_path / "run")
    if setting == "attention-pool":
        kernels = list(model.image_tower.attention.attention.kernels) + list(model.text_tower.attention.attention.kernels)
        assert res["params"] == sum(k.num_parameters for k in kernels)  # cosine scores the pooled pair: no parameters
    else:
        kernels = [model.similarity.kernel]
        assert res["params"] == model.similarity.num_parameters == kernels[0].num_parameters + 1  # + temperature
    fresh = gssf.create_similarity("gssf", dim=kernels[0].diagonal.dim, num_blocks=2)
    moved = max(float((k.diagonal.weights() - fresh.diagonal.weights()).detach().abs().max()) for k in kernels)
    assert moved > 1e-3  # the kernel learned, at the similarity learning rate
    with pytest.raises(ValueError, match="model.attention_heads"):
        tiny_config(features, *sets, "model.pool=attention", "model.attention_heads=3").validate()
    with pytest.raises(ValueError, match="unknown config key 'model.attention_kwargs.blocks'"):
        tiny_config(features, *sets, "model.pool=attention", "model.attention_kwargs={blocks: 2}").validate()


def test_a_pooled_head_trains_on_set_features_and_its_sizes_are_checked(features: str, tmp_path: Path) -> None:
    """Setting "pooled": each 32-d image row read as 4 regions of 8, each 24-d caption as 6 tokens of 4."""
    res = run(tiny_config(features, "train.epochs=3", "model.head=pooled", "model.pool=gpo", "model.hidden_dim=16",
                          "model.element_dims={image: 8, text: 4}"), tmp_path / "gpo", progress=False)
    assert res["history"][-1]["train_loss"] < res["history"][0]["train_loss"]
    assert res["test"]["rsum"] > 60  # chance: about 6 x 2.5 = 15
    from gssf.train import load_model

    model, _, meta = load_model(tmp_path / "gpo")
    assert meta["heads"] == {"kind": "pooled", "hidden_dim": 16, "pool": "gpo", "element_dims": {"image": 8, "text": 4}}
    assert type(model.image_tower).__name__ == "PooledHead" and model.image_tower.num_elements == 4
    with pytest.raises(ValueError, match="whole number of elements"):
        Trainer(tiny_config(features, "model.head=pooled", "model.element_dims={image: 5, text: 4}"), tmp_path / "bad",
                progress=False)
    with pytest.raises(ValueError, match="needs a set encoder"):  # no element size known for plain features
        Trainer(tiny_config(features, "model.head=pooled"), tmp_path / "bad2", progress=False)
