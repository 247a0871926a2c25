"""The block term's spec: validation in one place, ``build`` equal to what the members build, round trips."""
from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
import torch

import gssf
from gssf.similarity import BlockSpec, BlockTerm

D = 16

#: The members with a block term; each builds it from a ``BlockSpec`` of its flat arguments.
BLOCK_MEMBERS = ["block_diagonal", "gssf", "gssf_dynamic", "gssf_dynamic_mlp"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": "dense"}, "unknown scale mechanism 'dense'"),
        ({"parameterization": "dense"}, "unknown block parameterization 'dense'"),
        ({"bound": 0.0}, "bound must be positive, got 0.0"),
        ({"bound": float("nan")}, "bound must be positive"),
        ({"num_blocks": 0}, "num_blocks must be a positive integer, got 0"),
        ({"num_blocks": 2.0}, "num_blocks must be a positive integer, got 2.0"),
        ({"block_size": -4}, "block_size must be a positive integer, got -4"),
        ({"block_size": True}, "block_size must be a positive integer, got True"),
        ({"parameterization": "lowrank", "rank": 0}, r"rank must be an integer in \[1, block_size\], got 0"),
        ({"parameterization": "lowrank", "rank": 1.5}, r"rank must be an integer in \[1, block_size\], got 1.5"),
        (
            {"parameterization": "lowrank", "block_size": 4, "rank": 5},
            r"rank must be an integer in \[1, block_size=4\], got 5",
        ),
        ({"init_std": -0.1}, "init_std must be non-negative, got -0.1"),
        ({"permutation": [0, 0, 1]}, r"permutation must be a permutation of range\(3\)"),
        ({"permutation": [1, 2, 3]}, r"permutation must be a permutation of range\(3\)"),
    ],
)
def test_spec_rejects_a_bad_field_by_name(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BlockSpec(**kwargs)


def test_rank_is_only_checked_for_lowrank_blocks() -> None:
    assert BlockSpec(parameterization="full", rank=0).rank == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_blocks": 5}, r"num_blocks=5 does not divide dim=16; valid block counts: \[1, 2, 4, 8, 16\]"),
        ({"block_size": 3}, "block_size=3 does not divide dim=16"),
        ({"num_blocks": 2, "block_size": 4}, "num_blocks=2 x block_size=4 != dim=16"),
        ({"num_blocks": 4, "parameterization": "lowrank", "rank": 9}, r"rank must be an integer in \[1, block_size=4\], got 9"),
        ({"permutation": list(range(8))}, r"permutation must be a permutation of range\(16\)"),
    ],
)
def test_build_checks_what_depends_on_the_dimension(kwargs: dict, message: str) -> None:
    spec = BlockSpec(**kwargs)  # valid on its own
    with pytest.raises(ValueError, match=message):
        spec.build(D)


def test_the_members_report_the_spec_errors() -> None:
    for name in BLOCK_MEMBERS:
        with pytest.raises(ValueError, match="bound must be positive"):
            gssf.create_similarity(name, dim=D, bound=-1.0)
        with pytest.raises(ValueError, match="num_blocks=5 does not divide dim=16"):
            gssf.create_similarity(name, dim=D, num_blocks=5)


SPEC_CASES = [
    {},
    {"num_blocks": 4, "parameterization": "lowrank", "rank": 3, "bound": 0.5},
    {"block_size": 8, "parameterization": "scalar", "scale": "entrywise"},
    {"num_blocks": 2, "scale": "frobenius", "permutation": list(reversed(range(D)))},
]


def _same_term(a: BlockTerm, b: BlockTerm) -> None:
    assert a.spec == b.spec
    assert repr(a) == repr(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("name", BLOCK_MEMBERS)
@pytest.mark.parametrize("kwargs", SPEC_CASES)
def test_build_equals_the_term_a_member_builds(name: str, kwargs: dict) -> None:
    torch.manual_seed(3)  # lowrank U is random: both draw it from the same state
    sim = gssf.create_similarity(name, dim=D, **kwargs)
    torch.manual_seed(3)
    term = BlockSpec(**kwargs).build(D)
    _same_term(sim.blocks, term)


@pytest.mark.parametrize("kwargs", SPEC_CASES)
def test_spec_round_trip(kwargs: dict) -> None:
    spec = BlockSpec(**kwargs)
    again = BlockSpec(**dataclasses.asdict(spec))
    assert again == spec and hash(again) == hash(spec)
    assert pickle.loads(pickle.dumps(spec)) == spec
    torch.manual_seed(5)
    term = spec.build(D)
    assert term.spec is spec
    torch.manual_seed(5)
    _same_term(term.spec.build(term.dim), term)
    _same_term(copy.deepcopy(term), term)


def test_permutation_is_stored_by_value() -> None:
    order = list(reversed(range(D)))
    specs = [BlockSpec(permutation=p) for p in (order, tuple(order), torch.tensor(order), torch.tensor([order]))]
    assert all(s == specs[0] for s in specs) and len(set(specs)) == 1
    assert specs[0].permutation == tuple(order)
    assert specs[0].build(D).permutation.tolist() == order


def test_spec_is_frozen_and_replace_revalidates() -> None:
    spec = BlockSpec(num_blocks=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.bound = 2.0  # type: ignore[misc]
    assert dataclasses.replace(spec, bound=2).bound == 2.0
    with pytest.raises(ValueError, match="bound must be positive"):
        dataclasses.replace(spec, bound=0)


def test_block_term_takes_a_spec() -> None:
    torch.manual_seed(0)
    default = BlockTerm(D)
    torch.manual_seed(0)
    _same_term(default, BlockSpec().build(D))
    with pytest.raises(TypeError, match="spec must be a BlockSpec, got int"):
        BlockTerm(D, 4)  # type: ignore[arg-type]
