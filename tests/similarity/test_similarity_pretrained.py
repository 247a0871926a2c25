"""save_pretrained / load_similarity: every member round-trips without its constructor arguments."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gssf
from gssf.errors import GssfError
from gssf.search import TwoStage

from test_similarity_reference import CONFIGS, IDS, D, build


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_every_configuration_round_trips_exactly(name: str, kwargs: dict, tmp_path: Path) -> None:
    sim = build(name, kwargs, seed=3)  # perturbed off its initial (cosine-equal) values, float64
    sim.save_pretrained(tmp_path / "sim")
    back = gssf.load_similarity(tmp_path / "sim")
    assert type(back) is type(sim) and not back.training
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(6, D, generator=g, dtype=torch.float64), torch.randn(7, D, generator=g, dtype=torch.float64)
    assert torch.equal(back(x, y), sim(x, y))
    saved = json.loads((tmp_path / "sim" / "similarity.json").read_text())
    assert saved["name"] == name and saved["kwargs"]["dim"] == D
    assert saved["dtype"] == ("float64" if list(sim.parameters()) else "float32")


def test_every_registered_member_records_its_arguments(tmp_path: Path) -> None:
    for name in gssf.list_similarities():
        sim = gssf.create_similarity(name, dim=8)
        assert sim.config()["dim"] == 8, name
        sim.save_pretrained(tmp_path / name)
        assert type(gssf.load_similarity(tmp_path / name)) is type(sim)
    sim = gssf.create_similarity("gssf", dim=16, num_blocks=4, w_max=3.0)
    assert {k: sim.config()[k] for k in ("num_blocks", "w_max")} == {"num_blocks": 4, "w_max": 3.0}
    assert isinstance(gssf.get_similarity_class("gssf").from_pretrained(tmp_path / "gssf"), gssf.Similarity)
    with pytest.raises(GssfError, match="not a CosineSimilarity"):
        gssf.get_similarity_class("cosine").from_pretrained(tmp_path / "gssf")


def _saved(tmp_path: Path) -> Path:
    sim = gssf.create_similarity("gssf", dim=16, num_blocks=4)
    return sim.save_pretrained(tmp_path / "sim")


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / "similarity.json").unlink(), "no similarity.json"),
        (lambda d: (d / "similarity.safetensors").unlink(), "no similarity.safetensors"),
        (lambda d: (d / "similarity.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "similarity.json").write_text('{"format": 9}'), "format 9"),
        (lambda d: _edit(d, name="nope"), "unknown similarity 'nope'"),
        (lambda d: _edit(d, kwargs={"dim": 16, "num_blocks": 5}), "do not build 'gssf'"),
        (lambda d: _edit(d, kwargs={"dim": 16, "num_blocks": 4, "colour": 1}), "do not build 'gssf'"),
        (lambda d: _edit(d, kwargs={"dim": 32, "num_blocks": 4}), "expects"),
        (lambda d: _edit(d, name="diagonal", kwargs={"dim": 16}), "does not match 'diagonal'"),
        (lambda d: _edit(d, dtype="int3"), "unknown dtype"),
        (lambda d: (d / "similarity.safetensors").write_bytes(b"\x00" * 40), "not a readable safetensors"),
        (lambda d: (d / "similarity.json").write_bytes(b" " * (2 << 20)), "larger than 1 MB"),
    ],
)
def test_damaged_or_foreign_folders_are_refused_by_name(damage, message: str, tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    damage(folder)
    with pytest.raises((GssfError, FileNotFoundError), match=message):
        gssf.load_similarity(folder)


def _edit(folder: Path, **changes) -> None:
    doc = json.loads((folder / "similarity.json").read_text())
    doc.update(changes)
    (folder / "similarity.json").write_text(json.dumps(doc))


def test_what_cannot_be_saved_says_why(tmp_path: Path) -> None:
    two = TwoStage(gssf.create_similarity("gssf_dynamic", dim=16, num_blocks=4), shortlist=5)
    with pytest.raises(GssfError, match="not a registered similarity|not a plain value"):
        two.save_pretrained(tmp_path / "two")

    class Unregistered(gssf.get_similarity_class("cosine")):
        pass

    with pytest.raises(GssfError, match="not a registered similarity"):
        Unregistered().save_pretrained(tmp_path / "u")
    mixed = gssf.create_similarity("gssf", dim=16, num_blocks=4)
    mixed.diagonal.double()
    with pytest.raises(GssfError, match="mix dtypes"):
        mixed.save_pretrained(tmp_path / "m")
