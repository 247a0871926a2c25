"""Real data: the emoji-styles (re-ID), wesnoth (fine-grained), emoji-captions and
wesnoth-descriptions (image-text, many images per caption) presets train one short epoch and
report their protocols' metrics (prepared by `gssf data prepare emoji-captions wesnoth`).

Marked slow; the data is prepared here when missing (never skipped). Images are encoded at
64 px and training uses a fixed subset, so a cold feature cache costs a minute or two.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from gssf.data.prepare import prepare_many
from gssf.train import load_config, load_model, run

pytestmark = pytest.mark.slow

SMALL = ["data.resolution=64", "data.max_train_items=1500", "train.epochs=1", "train.num_threads=2"]


@pytest.fixture(scope="module", autouse=True)
def prepared() -> None:
    prepare_many(["emoji-styles", "emoji-captions", "wesnoth"], log=lambda m: None, progress=False)


def test_emoji_styles_preset_reports_the_cross_style_reid_protocol(tmp_path: Path) -> None:
    cfg = load_config("emoji-styles", overrides=SMALL)
    assert (cfg.data.task, cfg.train.pk_instances, cfg.eval.rerank) == ("reid", 4, True)
    res = run(cfg, tmp_path / "run", progress=False)
    test, val = res["test"], res["val"]
    for metrics in (test, val):
        assert {"mAP", "mINP", "R@1", "R@5", "R@10", "rerank_mAP", "rerank_R@1"} <= set(metrics)
    # one query per test identity (488), none filtered: its gallery matches are in other styles
    assert (test["num_valid_queries"], test["num_skipped_queries"]) == (488, 0)
    assert (val["num_valid_queries"], val["num_skipped_queries"]) == (151, 0)
    # chance mAP is about 1.5 % (6.4 true matches among 3,119); one short epoch is far above it
    # (about 19 mAP, 37 R@1 here)
    assert test["mAP"] > 10 and test["R@10"] >= test["R@5"] >= test["R@1"] > 20, test


def test_wesnoth_preset_is_class_disjoint_leave_one_out(tmp_path: Path) -> None:
    cfg = load_config("wesnoth", overrides=SMALL)
    assert cfg.data.task == "retrieval" and cfg.eval.ks == [1, 2, 4, 8]
    res = run(cfg, tmp_path / "run", progress=False)
    test = res["test"]
    assert {"R@1", "R@2", "R@4", "R@8", "MAP@R", "R-Precision"} <= set(test)
    # every one of the 1,443 test frames (62 unseen unit types) queries all the others
    assert test["num_valid_queries"] == 1443
    # chance R@1 is about 3 % (23 relevant among 1,442 on average); frames of one unit look alike,
    # so pretrained features already find most neighbours (about 83 R@1, 30 MAP@R here)
    assert test["R@1"] > 60 and test["R@8"] >= test["R@1"] and 10 < test["MAP@R"] < test["R@1"], test


@pytest.mark.parametrize("preset, images, captions", [("emoji-captions", 3607, 488), ("wesnoth-descriptions", 1443, 62)])
def test_grouped_caption_presets_evaluate_by_group(preset: str, images: int, captions: int, tmp_path: Path) -> None:
    # image-text presets train on every pair (no max_train_items): 6,821 / 3,269 pairs, one epoch
    cfg = load_config(preset, overrides=[o for o in SMALL if not o.startswith("data.max_train_items")])
    assert cfg.data.task == "image_text" and cfg.eval.metric == "rsum"
    res = run(cfg, tmp_path / "run", progress=False)
    test = res["test"]
    # every test image queries the captions and every caption the images: relevance by group
    data = load_model(tmp_path / "run")[1].split("test")
    assert (data.image.shape[0], data.text.shape[0]) == (images, captions)
    assert data.image_groups is not None and set(data.text_groups.tolist()) == set(data.image_groups.tolist())
    assert test["t2i_R@10"] >= test["t2i_R@1"] and test["i2t_R@10"] >= test["i2t_R@1"]
    # chance i2t R@1 is 1 / captions (0.2 % and 1.6 %); one short epoch is far above it
    assert test["i2t_R@1"] > 10 * 100 / captions, test


@pytest.mark.parametrize("preset", ["emoji-captions-multilingual", "wesnoth-descriptions-multilingual"])
def test_multilingual_presets_name_their_dataset_and_the_multilingual_encoder(preset: str) -> None:
    # A real run needs e5-small features of 6,000 / 44,000 captions (minutes to encode on 2 cores):
    # the trainer's many-to-many path is covered on synthetic groups (test_train_trainer), the
    # loaders on the real data (tests/data/test_data_grouped_captions).
    from gssf.data import get_dataset_info
    from gssf.encoders import get_encoder_info

    cfg = load_config(preset)
    assert cfg.data.dataset == preset and cfg.data.task == "image_text" and cfg.model.finetune == "none"
    assert get_dataset_info(preset).task == "image-text"
    assert get_encoder_info(cfg.data.text_encoder).name == "e5-small"
