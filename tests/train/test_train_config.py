"""Typed config: presets, --set overrides, readable errors, round trip through the written YAML."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import gssf
from gssf.train import TrainConfig, config_to_yaml, list_presets, load_config, save_config
from gssf.train.config import apply_overrides, config_from_dict, find_preset

REPO = Path(__file__).resolve().parents[2]


def test_presets_are_found_and_valid() -> None:
    names = list_presets()
    assert {"tux", "captions-jsonl", "precomp"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert isinstance(cfg, TrainConfig)
    tux = load_config("tux")
    assert (tux.data.task, tux.data.dataset, tux.model.embed_dim) == ("image_text", "tux", 256)
    # presets ship in the package; the repository's configs/ is a link to that folder
    assert find_preset("tux") == (REPO / "configs" / "tux.yaml").resolve()


def test_overrides_are_typed_and_nested() -> None:
    cfg = load_config(
        "tux",
        overrides=[
            "model.embed_dim=128", "similarity.name=gssf", "similarity.kwargs.num_blocks=8",
            "optim.lr=1e-4", "eval.ks=[1, 5]", "data.root=null", "loss.name=hinge",
            "loss.max_violation=false", "optim.similarity_lr=3e-3",
        ],
    )
    assert cfg.model.embed_dim == 128 and cfg.similarity.kwargs == {"num_blocks": 8}
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)  # "1e-4" is a float, not a YAML string
    assert cfg.eval.ks == [1, 5] and cfg.data.root is None and cfg.loss.max_violation is False
    # the preset itself is not modified by overrides
    assert load_config("tux").model.embed_dim == 256


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.embd_dim=3", ["'model.embd_dim'", "embed_dim", "head", "finetune"]),
        ("modle.embed_dim=3", ["'modle.embed_dim'", "data", "model", "similarity"]),
        ("model.head=transformer", ["'transformer'", "'model.head'", "linear, mlp, identity"]),
        ("similarity.name=gsf", ["'gsf'", "similarity.name", "gssf", "cosine", "block_diagonal"]),
        ("loss.name=hinge+nope", ["'nope'", "infonce", "triplet"]),
        ("train.epochs=ten", ["'train.epochs'", "an integer", "'ten'"]),
        ("train.epochs=0", ["'train.epochs'", "positive"]),
        ("optim.lr=fast", ["'optim.lr'", "a number"]),
        ("similarity.kwargs.num_blokcs=4", ["similarity.kwargs.num_blokcs", "num_blocks", "block_size"]),
        ("loss.name=triplet", ["triplet", "cross_modal", "hinge, infonce"]),
        ("train.precision=fp16", ["fp32, bf16"]),
        ("model.embed_dim", ["section.key=value"]),
        ("model=3", ["must name a key"]),
        ("data.features_file=feats.npz", ["{split}"]),
    ],
)
def test_errors_name_the_key_and_the_valid_choices(override: str, words) -> None:
    with pytest.raises(ValueError) as exc:
        load_config("tux", overrides=[override])
    for w in words:
        assert w in str(exc.value), (w, str(exc.value))


def test_switching_similarity_reports_kwargs_it_does_not_take() -> None:
    cfg = load_config("tux", overrides=["similarity.kwargs.num_blocks=8"])
    with pytest.raises(ValueError, match="similarity.kwargs=\\{\\}"):
        apply_overrides(cfg, ["similarity.name=cosine"]).validate()
    assert apply_overrides(cfg, ["similarity.name=cosine", "similarity.kwargs={}"]).validate().similarity.name == "cosine"


def test_yaml_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  embed_dimm: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown config key 'model.embed_dimm'"):
        load_config(bad)
    (tmp_path / "broken.yaml").write_text("model: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(FileNotFoundError, match="presets: .*tux"):
        load_config("no-such-preset")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_written_yaml_round_trips_with_comments(tmp_path: Path) -> None:
    cfg = load_config("tux", overrides=["similarity.kwargs.num_blocks=8", "loss.weights={}", "eval.folds=5"])
    save_config(cfg, tmp_path / "config.yaml", header="test")
    text = (tmp_path / "config.yaml").read_text()
    assert text.startswith("# test\n") and "  embed_dim: 256  # " in text
    assert load_config(tmp_path / "config.yaml") == cfg
    assert config_from_dict(yaml.safe_load(config_to_yaml(cfg))) == cfg


def test_every_field_has_help_text() -> None:
    import dataclasses

    for section in dataclasses.fields(TrainConfig):
        for f in dataclasses.fields(getattr(TrainConfig(), section.name)):
            assert f.metadata.get("help"), f"{section.name}.{f.name}"


def test_similarity_choices_follow_the_registry() -> None:
    for name in gssf.list_similarities():
        assert load_config("tux", overrides=[f"similarity.name={name}"]).similarity.name == name


def test_every_field_is_documented() -> None:
    import dataclasses

    doc = (REPO / "docs" / "training.md").read_text()
    for section in dataclasses.fields(TrainConfig):
        assert f"**`{section.name}`**" in doc
        for f in dataclasses.fields(getattr(TrainConfig(), section.name)):
            assert f"| `{f.name}` |" in doc, f"{section.name}.{f.name} missing from docs/training.md"


def test_a_preset_may_inherit_another_and_change_only_some_keys(tmp_path: Path) -> None:
    frozen = load_config("emoji-reid-frozen")
    base = load_config("emoji-reid")
    assert (frozen.model.head, frozen.model.embed_dim) == ("identity", 1280)
    assert frozen.data == base.data and frozen.loss.margin == base.loss.margin and frozen.loss.name == "triplet"
    assert (frozen.train.batch_size, frozen.train.epochs, base.train.epochs) == (base.train.batch_size, 15, 25)
    child = tmp_path / "child.yaml"
    child.write_text("inherit: tux\ntrain:\n  epochs: 3\n")
    cfg = load_config(str(child))
    assert cfg.train.epochs == 3 and cfg.optim == load_config("tux").optim
    grand = tmp_path / "grand.yaml"
    grand.write_text(f"inherit: {child}\nmodel:\n  embed_dim: 64\n")
    assert (load_config(str(grand)).train.epochs, load_config(str(grand)).model.embed_dim) == (3, 64)
    loop_a, loop_b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    loop_a.write_text(f"inherit: {loop_b}\n")
    loop_b.write_text(f"inherit: {loop_a}\n")
    with pytest.raises(ValueError, match="'inherit' makes a cycle"):
        load_config(str(loop_a))
    bad = tmp_path / "bad.yaml"
    bad.write_text("inherit: [tux]\n")
    with pytest.raises(ValueError, match="'inherit' must name a preset"):
        load_config(str(bad))
    missing = tmp_path / "missing.yaml"
    missing.write_text("inherit: no-such-preset\n")
    with pytest.raises(FileNotFoundError, match="no config file or preset named 'no-such-preset'"):
        load_config(str(missing))
