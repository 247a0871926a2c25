"""Every registry of the library is a gssf.utils.registry.Registry with the same verbs."""
from __future__ import annotations

import pytest
import torch

from gssf.data import DATASETS
from gssf.encoders import ENCODERS
from gssf.losses import LOSSES
from gssf.similarity import SIMILARITIES
from gssf.train import TASKS
from gssf.utils.registry import Registry

ALL = {"similarity": SIMILARITIES, "loss": LOSSES, "encoder": ENCODERS, "dataset": DATASETS, "task": TASKS}


@pytest.mark.parametrize("kind", sorted(ALL))
def test_every_registry_has_the_same_api(kind: str) -> None:
    reg = ALL[kind]
    assert isinstance(reg, Registry) and reg.kind == kind
    names = reg.list()
    assert names and names == sorted(names)
    for name in names:
        assert reg.lookup(name) is reg[name]
    first = names[0]
    assert reg.list(where=lambda e: e is reg[first]) == [n for n in names if reg[n] is reg[first]]
    with pytest.raises(KeyError, match=f"unknown {kind} 'no-such-name'; choose one of: .*{first}"):
        reg.lookup("no-such-name")
    with pytest.raises(KeyError, match=f"unknown {kind} 'no-such-name'"):
        reg.create("no-such-name")
    with pytest.raises(ValueError, match=f"{kind} '{first}' is already registered"):
        reg.register(first, object())  # type: ignore[arg-type]
    reg.register(first, reg[first])  # the same entry again: allowed, nothing changes
    assert reg.list() == names


def test_create_builds_through_each_registrys_factory() -> None:
    sim = SIMILARITIES.create("gssf", dim=8, num_blocks=2)
    assert sim.name == "gssf" and sim.dim == 8
    loss = LOSSES.create("infonce", similarity=sim)
    assert loss.similarity is sim
    with pytest.raises(ValueError, match="unknown argument"):
        LOSSES.create("infonce", similarity=sim, margin=0.1)
    assert ENCODERS.lookup("efflite0").name == "efficientnet-lite0"  # aliases resolve
    from gssf.train import load_config

    task = TASKS.create("image_text", load_config("tux"), torch.device("cpu"))
    assert type(task).__name__ == "ImageTextTask"


def test_a_registry_loads_its_entries_once_before_the_first_lookup() -> None:
    calls = []
    reg: Registry[int] = Registry("thing", load=lambda: calls.append(reg.register("one", 1)))
    assert calls == []
    assert reg.list() == ["one"] and reg.create is not None and reg.lookup("one") == 1
    assert reg.list(where=lambda e: e > 1) == [] and len(calls) == 1
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", 2)
