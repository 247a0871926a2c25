"""The older loss form (``loss.name``/``weights``/per-loss keys) read as the ``loss.terms`` it stands for."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Dict, List

import pytest
import torch
from torch import nn

from gssf.losses import get_loss_class, list_losses
from gssf.similarity import create_similarity
from gssf.train import LossConfig, load_config
from gssf.train.config import apply_overrides
from gssf.train.config_schema import LEGACY_LOSS_KEYS, legacy_loss_terms, loss_terms
from gssf.train.criterion import LossSum, build_criterion
from gssf.train.state import _load_loss_state, _loss_state, describe_model

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.stem for p in (REPO / "src" / "gssf" / "configs").glob("*.yaml"))

#: What the per-loss keys give each registered loss at their defaults.
DEFAULT_KWARGS: Dict[str, Dict[str, Any]] = {
    "hinge": {"margin": 0.2, "max_violation": True, "reduction": "sum", "hardest_after_epochs": 0},
    "infonce": {"temperature": 0.05, "learn_temperature": True, "min_temperature": 0.01, "max_temperature": 1.0},
    "triplet": {"margin": 0.2},
    "id_ce": {"temperature": 1.0 / 16, "label_smoothing": 0.0},
    "pml": {},
}


def _task(name: str) -> str:
    return "image_text" if get_loss_class(name).kind == "cross_modal" else "retrieval"


def _build(cfg, num_classes: int = 7) -> nn.Module:
    sim = create_similarity(cfg.similarity.name, dim=cfg.model.embed_dim, **cfg.similarity.kwargs)
    torch.manual_seed(0)
    return build_criterion(cfg, sim, num_classes), sim


def _structure(criterion: nn.Module, sim: nn.Module) -> List[Any]:
    """Module names and types, their plain attributes, state keys and the loss's own tensors."""
    mods = [
        (n, type(m).__name__, {k: repr(v) for k, v in vars(m).items() if not k.startswith("_") and k != "training"})
        for n, m in criterion.named_modules() if "similarity" not in n.split(".")
    ]  # fmt: skip
    own = _loss_state(criterion, sim)
    return [mods, sorted(criterion.state_dict()), {k: v.tolist() for k, v in own.items()}]


# ---------------------------------------------------------------- the conversion


def test_every_registered_loss_has_its_legacy_arguments() -> None:
    assert set(list_losses()) <= set(DEFAULT_KWARGS), "add the new loss's per-loss keys here"
    for name in list_losses():
        (term,) = legacy_loss_terms(LossConfig(name=name))
        assert term == {"name": name, "weight": 1.0, "kwargs": DEFAULT_KWARGS[name]}
        params = inspect.signature(get_loss_class(name).__init__).parameters
        assert set(term["kwargs"]) <= set(params), name
    for key, losses in LEGACY_LOSS_KEYS.items():
        assert hasattr(LossConfig(), key) and set(losses) <= set(list_losses()), key


def test_per_loss_keys_become_the_arguments_of_their_loss() -> None:
    lo = LossConfig(name="hinge", margin=0.4, max_violation=False, reduction="mean", hardest_after_epochs=2,
                    temperature=0.3)  # fmt: skip
    assert legacy_loss_terms(lo) == [{"name": "hinge", "weight": 1.0, "kwargs": {
        "margin": 0.4, "max_violation": False, "reduction": "mean", "hardest_after_epochs": 2}}]  # fmt: skip
    lo = LossConfig(name="infonce", temperature=0.1, learn_temperature=False, min_temperature=0.02, max_temperature=0.5)
    assert legacy_loss_terms(lo)[0]["kwargs"] == {"temperature": 0.1, "learn_temperature": False,
                                                  "min_temperature": 0.02, "max_temperature": 0.5}  # fmt: skip
    assert legacy_loss_terms(LossConfig(name="triplet", margin=0.3, soft_margin=True))[0]["kwargs"] == {"margin": None}
    lo = LossConfig(name="id_ce", id_temperature=0.1, label_smoothing=0.1, temperature=0.9)
    assert legacy_loss_terms(lo)[0]["kwargs"] == {"temperature": 0.1, "label_smoothing": 0.1}


def test_joined_names_and_weights_become_weighted_terms() -> None:
    lo = LossConfig(name="triplet+id_ce", margin=0.3, id_temperature=0.1, weights={"id_ce": 0.5})
    assert legacy_loss_terms(lo) == [
        {"name": "triplet", "weight": 1.0, "kwargs": {"margin": 0.3}},
        {"name": "id_ce", "weight": 0.5, "kwargs": {"temperature": 0.1, "label_smoothing": 0.0}},
    ]
    lo = LossConfig(name="infonce+hinge", weights={"hinge": 2, "infonce": 0.25})
    assert [(t["name"], t["weight"]) for t in legacy_loss_terms(lo)] == [("infonce", 0.25), ("hinge", 2.0)]
    assert [t["name"] for t in legacy_loss_terms(LossConfig(name="hinge+hinge"))] == ["hinge"]  # one loss, as before
    # loss.terms, when set, are the terms (defaults filled in); the older keys beside them are not read
    lo = LossConfig(name="hinge", margin=0.9, terms=[{"name": "triplet"}, {"name": "id_ce", "weight": 2}])
    assert loss_terms(lo) == [{"name": "triplet", "weight": 1.0, "kwargs": {}},
                              {"name": "id_ce", "weight": 2.0, "kwargs": {}}]  # fmt: skip


# ---------------------------------------------------------------- the built modules


def _legacy_cases() -> List[List[str]]:
    cases = []
    for name in list_losses():
        cases += [[f"loss.name={name}"], [f"loss.name={name}", f"loss.weights={{{name}: 1.0}}"],
                  [f"loss.name={name}", f"loss.weights={{{name}: 3.0}}"]]  # fmt: skip
    return cases + [
        ["loss.name=hinge+infonce", "loss.weights={infonce: 0.5}", "loss.margin=0.3", "loss.temperature=0.1"],
        ["loss.name=triplet+id_ce", "loss.weights={id_ce: 0.5}", "loss.soft_margin=true", "loss.label_smoothing=0.1"],
        ["loss.name=id_ce+triplet+pml"],
    ]


@pytest.mark.parametrize("overrides", _legacy_cases(), ids=" ".join)
def test_the_older_form_builds_what_its_terms_build(overrides: List[str]) -> None:
    task = _task(overrides[0].split("=")[1].split("+")[0])
    base = [f"data.task={task}", "model.embed_dim=16", "similarity.name=cosine"]
    old = load_config(None, overrides=base + overrides)
    terms = [{"name": t["name"], "weight": t["weight"], "kwargs": t["kwargs"]} for t in legacy_loss_terms(old.loss)]
    new = load_config({"data": {"task": task}, "model": {"embed_dim": 16}, "similarity": {"name": "cosine"},
                       "loss": {"terms": terms}})  # fmt: skip
    (a, sa), (b, sb) = _build(old), _build(new)
    if old.loss.weights and len(terms) == 1 and terms[0]["weight"] == 1.0:
        # the older form sums even one loss once weights are given (its checkpoints say terms.<name>)
        assert isinstance(a, LossSum) and not isinstance(b, LossSum) and type(a.terms[terms[0]["name"]]) is type(b)
        return
    assert _structure(a, sa) == _structure(b, sb)
    assert describe_model(old, {}, 7)["loss"] == describe_model(new, {}, 7)["loss"]


def test_repeated_loss_names_in_terms_build() -> None:
    terms = "[{name: triplet}, {name: triplet, weight: 0.5, kwargs: {margin: 1.0}}]"
    cfg = load_config(None, overrides=["data.task=retrieval", "model.embed_dim=16", "similarity.name=cosine",
                                       f"loss.terms={terms}"])
    crit, _ = _build(cfg)
    assert list(crit.terms) == ["triplet", "triplet_1"] and crit.weights == {"triplet": 1.0, "triplet_1": 0.5}
    assert crit.terms["triplet_1"].margin == 1.0


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_its_criterion(preset: str) -> None:
    cfg = load_config(preset)
    crit, sim = _build(cfg)
    terms = loss_terms(cfg.loss)
    assert terms and all(t["name"] in list_losses() for t in terms)
    if len(terms) == 1:
        assert type(crit) is get_loss_class(terms[0]["name"])
    else:
        assert isinstance(crit, LossSum) and list(crit.terms) == [t["name"] for t in terms]
    own = _loss_state(crit, sim)
    _load_loss_state(crit, sim, own)


def test_terms_presets_keep_the_losses_of_the_older_form() -> None:
    reid = load_config("emoji-reid")
    assert reid.loss.terms == [{"name": "triplet", "kwargs": {"margin": 0.3}},
                               {"name": "id_ce", "kwargs": {"temperature": 0.1}}]  # fmt: skip
    old = apply_overrides(reid, ["loss.terms=[]", "loss.name=triplet+id_ce", "loss.margin=0.3",
                                 "loss.id_temperature=0.1"])
    (a, sa), (b, sb) = _build(old.validate()), _build(reid)
    assert _structure(a, sa) == _structure(b, sb)
    # a checkpoint of the older form loads into the terms form: the loss's tensors have the same keys
    assert set(_loss_state(a, sa)) == {"terms.id_ce.proxies"}
    _load_loss_state(b, sb, _loss_state(a, sa))
    frozen = load_config("emoji-reid-frozen")  # inherits emoji-reid's terms, sets loss.name: triplet
    assert loss_terms(frozen.loss) == [{"name": "triplet", "weight": 1.0, "kwargs": {"margin": 0.3}}]


def test_an_old_form_config_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text("data: {task: retrieval}\nmodel: {embed_dim: 16}\nsimilarity: {name: cosine}\n"
                    "loss:\n  name: triplet+id_ce\n  margin: 0.3\n  id_temperature: 0.1\n  weights: {id_ce: 0.5}\n")
    cfg = load_config(path)
    assert cfg.loss.terms == [] and [t["weight"] for t in loss_terms(cfg.loss)] == [1.0, 0.5]
    crit, _ = _build(cfg)
    assert crit.weights == {"triplet": 1.0, "id_ce": 0.5} and crit.terms["triplet"].margin == 0.3
    assert crit.terms["id_ce"].temperature == 0.1


# ---------------------------------------------------------------- older keys on top of terms


def test_older_keys_set_on_a_terms_preset_edit_its_terms() -> None:
    def terms(*overrides: str) -> List[Dict[str, Any]]:
        return loss_terms(load_config("emoji-reid", overrides=list(overrides)).loss)

    assert terms("loss.name=triplet") == [{"name": "triplet", "weight": 1.0, "kwargs": {"margin": 0.3}}]
    assert terms("loss.margin=0.5")[0]["kwargs"] == {"margin": 0.5}
    assert terms("loss.soft_margin=true")[0]["kwargs"] == {"margin": None}
    assert terms("loss.label_smoothing=0.1")[1]["kwargs"] == {"temperature": 0.1, "label_smoothing": 0.1}
    assert [t["weight"] for t in terms("loss.weights.id_ce=0.5")] == [1.0, 0.5]
    assert [t["name"] for t in terms("loss.name=id_ce+triplet")] == ["id_ce", "triplet"]
    assert terms("loss.name=id_ce+triplet")[0]["kwargs"] == {"temperature": 0.1}
    # a layer that sets loss.terms itself is taken as it is
    plain = [{"name": "triplet", "weight": 1.0, "kwargs": {}}]
    assert terms("loss.terms=[{name: triplet}]", "loss.margin=0.5") == plain


@pytest.mark.parametrize("override, match", [
    ("loss.temperature=0.1", "'loss.temperature' is for infonce.*would do nothing"),
    ("loss.weights.nope=0.5", "unknown key 'loss.weights.nope'; valid keys: triplet, id_ce"),
])  # fmt: skip
def test_older_keys_that_would_do_nothing_on_terms_are_errors(override: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_config("emoji-reid", overrides=[override])


def test_a_preset_inheriting_terms_may_set_older_keys(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("inherit: emoji-reid\nloss:\n  weights: {id_ce: 0.25}\n  margin: 0.1\n")
    cfg = load_config(child)
    assert cfg.loss.weights == {} and loss_terms(cfg.loss) == [
        {"name": "triplet", "weight": 1.0, "kwargs": {"margin": 0.1}},
        {"name": "id_ce", "weight": 0.25, "kwargs": {"temperature": 0.1}},
    ]
    # in one file, terms beside loss.weights is refused as before
    both = tmp_path / "both.yaml"
    both.write_text("data: {task: retrieval}\nloss:\n  terms: [{name: triplet}]\n  weights: {triplet: 2}\n")
    with pytest.raises(ValueError, match="loss.weights' is for loss.name"):
        load_config(both)
