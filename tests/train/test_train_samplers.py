"""Batch samplers: order is a function of (seed, epoch); P x K batches for re-ID."""
from __future__ import annotations

import pytest
import torch

from gssf.train.samplers import PKBatchSampler, RandomBatchSampler


def test_random_batches_depend_only_on_seed_and_epoch() -> None:
    s = RandomBatchSampler(50, 8, seed=3, drop_last=True)
    a, b = s.batches(2), RandomBatchSampler(50, 8, seed=3).batches(2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert len(a) == len(s) == 6 and all(x.numel() == 8 for x in a)
    assert not torch.equal(torch.cat(s.batches(0)), torch.cat(s.batches(1)))
    assert not torch.equal(torch.cat(a), torch.cat(RandomBatchSampler(50, 8, seed=4).batches(2)))
    full = RandomBatchSampler(50, 8, seed=3, drop_last=False)
    assert len(full) == 7 and sorted(torch.cat(full.batches(5)).tolist()) == list(range(50))
    with pytest.raises(ValueError, match="larger than"):
        RandomBatchSampler(5, 8, drop_last=True)


def test_pk_batches_hold_p_identities_with_k_instances() -> None:
    labels = torch.tensor(sum([[c] * n for c, n in enumerate([5, 4, 2, 8, 6, 1, 3, 4])], []))
    s = PKBatchSampler(labels, batch_size=12, instances=3, seed=0)
    batches = s.batches(0)
    assert batches and len(batches) == len(s)
    for b in batches:
        assert b.numel() == 12
        ids, counts = torch.unique(labels[b], return_counts=True)
        assert len(ids) == 4 and bool((counts == 3).all())
        assert 5 not in ids.tolist()  # a single-image identity has no positive
    assert all(torch.equal(x, y) for x, y in zip(batches, PKBatchSampler(labels, 12, 3, seed=0).batches(0)))
    with pytest.raises(ValueError, match="multiple"):
        PKBatchSampler(labels, batch_size=10, instances=3)
    with pytest.raises(ValueError, match="identities"):
        PKBatchSampler(labels, batch_size=60, instances=3)
