"""The presets for the standard benchmarks users bring (Market-1501, DukeMTMC-reID, CUB-200-2011,
Cars196, SOP), each run end to end for one short epoch on a tiny generated tree in the dataset's
own layout: real EfficientNet-Lite0 features (at 32 px to stay fast), the preset's loss, sampler
and evaluation protocol; only sizes are overridden.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import torch

from gssf.train import load_config, run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from gssf_data_trees import cars_tree, cub_tree, market_tree, write_image  # noqa: E402

REID_KEYS = {"mAP", "mINP", "R@1", "R@5", "cmc", "rerank_mAP", "rerank_mINP", "rerank_R@1"}
RETRIEVAL_KEYS = {"R@1", "R@2", "MAP@R", "R-Precision"}
# Sizes only: a tiny tree holds 2 training identities with 2 images each, galleries of 5.
TINY = ["data.resolution=32", "model.embed_dim=16", "train.epochs=1", "train.batch_size=4", "train.pk_instances=2",
        "train.num_threads=1", "eval.batch_size=8"]  # fmt: skip


def sop_tree(root: Path) -> Path:
    """Stanford Online Products layout with enough classes of two images for a P x K batch."""
    rows = {
        "train": [(i, 1 + i // 2, 1 + i % 2, f"bicycle_final/{100 + i}_{i % 2}.JPG") for i in range(8)],
        "test": [(20 + i, 11 + i // 2, 1, f"chair_final/{200 + i}_{i % 2}.JPG") for i in range(6)],
    }
    for split, items in rows.items():
        text = "image_id class_id super_class_id path\n" + "".join(f"{a} {b} {c} {p}\n" for a, b, c, p in items)
        root.mkdir(parents=True, exist_ok=True)
        (root / f"Ebay_{split}.txt").write_text(text)
        for a, _, _, p in items:
            write_image(root / p, a)
    return root


TREES: Dict[str, Callable[[Path], Path]] = {
    "market1501": market_tree,
    "dukemtmc": lambda root: market_tree(root, duke=True),
    "cub": lambda root: cub_tree(root, classes=(1, 1, 1, 2, 2, 2, 101, 101, 150, 150, 150)),
    "cars196": lambda root: cars_tree(root, classes=(1, 1, 1, 98, 98, 99, 99, 196, 196, 196)),
    "sop": sop_tree,
}
EXTRA: Dict[str, List[str]] = {
    # 7 items in all (2 queries + 5 gallery): k1 must stay below 7; the gallery has 5 items.
    "market1501": ["eval.ks=[1,5]", "eval.rerank_k1=3", "eval.rerank_k2=2"],
    "dukemtmc": ["eval.ks=[1,5]", "eval.rerank_k1=3", "eval.rerank_k2=2"],
    "cub": ["eval.ks=[1,2,4]"],
    "cars196": ["eval.ks=[1,2,4]"],
    "sop": ["eval.ks=[1,2,5]"],
}


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Feature caches of the generated trees go to a throw-away data home.
    monkeypatch.setenv("GSSF_DATA", str(tmp_path / "home"))


@pytest.mark.parametrize("preset", sorted(TREES))
def test_standard_preset_runs_one_epoch_on_a_generated_tree(preset: str, tmp_path: Path) -> None:
    root = TREES[preset](tmp_path / preset)
    cfg = load_config(preset, overrides=[f"data.root={root}", *TINY, *EXTRA[preset]])
    res = run(cfg, tmp_path / "run", progress=False)
    assert len(res["history"]) == 1 and res["history"][0]["train_loss"] > 0
    # No validation split in the standard protocols: the last epoch is tested.
    assert res["val"] is None and res["best_epoch"] is None and res["history"][0]["val"] is None
    test = res["test"]
    if cfg.data.task == "reid":
        assert REID_KEYS <= set(test), sorted(test)
        # both queries keep a true match in another camera; the junk box is gone, the distractor stays
        assert test["num_valid_queries"] == 2 and len(test["cmc"]) == 5
        assert 0 < test["mAP"] <= 100 and 0 < test["rerank_mAP"] <= 100
    else:
        assert RETRIEVAL_KEYS <= set(test), sorted(test)
        assert 0 < test["MAP@R"] <= 100 and test["num_valid_queries"] > 0


@pytest.mark.parametrize("preset", sorted(TREES))
def test_standard_preset_without_root_names_the_missing_key(preset: str, tmp_path: Path) -> None:
    cfg = load_config(preset)
    assert cfg.data.root is None
    with pytest.raises(FileNotFoundError, match=r"data\.root.*required.*expected layout"):
        run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_standard_presets_keep_the_settings_of_the_field() -> None:
    market = load_config("market1501")
    assert (market.train.sampler, market.train.batch_size, market.train.pk_instances) == ("pk", 64, 4)
    assert (market.loss.name, market.loss.margin, market.model.embed_dim) == ("triplet+id_ce", 0.3, 512)
    assert market.eval.rerank and (market.eval.rerank_k1, market.eval.rerank_k2, market.eval.rerank_lambda) == (20, 6, 0.3)
    assert market.data.test_split == "query/gallery" and load_config("dukemtmc").data.test_split == "query/gallery"
    for name in ("cub", "cars196"):
        assert load_config(name).eval.ks == [1, 2, 4, 8]
    assert load_config("sop").eval.ks == [1, 10, 100, 1000]


def test_end_to_end_finetuning_on_a_reid_tree(tmp_path: Path) -> None:
    """model.finetune=image: the encoder is trained from pixels through the similarity."""
    root = market_tree(tmp_path / "market")
    cfg = load_config("market1501", overrides=[f"data.root={root}", *TINY, *EXTRA["market1501"],
                                               "model.finetune=image", "optim.encoder_lr=0.01"])
    res = run(cfg, tmp_path / "run", progress=False)
    assert res["history"][0]["train_loss"] > 0 and res["test"]["num_valid_queries"] == 2
    from safetensors.torch import load_file

    from gssf import encoders

    tuned = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    fresh = encoders.create("efficientnet-lite0", resolution=32).module.state_dict()
    prefix = "model.tower.encoder.net."
    changed = [k for k, v in fresh.items() if v.is_floating_point() and not torch.equal(tuned[prefix + k], v)]
    assert len(changed) > 0.5 * sum(v.is_floating_point() for v in fresh.values())


def test_a_bad_training_image_stops_before_training_or_is_skipped(tmp_path: Path) -> None:
    import json

    from gssf.errors import BadImageError

    root = TREES["cub"](tmp_path / "cub")
    bad = root / "images" / "001.Bird_1" / "img_2.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    base = [f"data.root={root}", *TINY, *EXTRA["cub"]]
    with pytest.raises(BadImageError, match="img_2.jpg"):
        run(load_config("cub", overrides=base), tmp_path / "strict", progress=False)
    assert not (tmp_path / "strict" / "checkpoints").exists()  # it stopped before the first step
    res = run(load_config("cub", overrides=[*base, "data.skip_bad_images=true"]), tmp_path / "skip", progress=False)
    assert len(res["history"]) == 1
    skipped = json.loads((tmp_path / "skip" / "skipped_images.json").read_text())
    assert [Path(s["path"]).name for s in skipped] == ["img_2.jpg"] and skipped[0]["split"] == "train"
