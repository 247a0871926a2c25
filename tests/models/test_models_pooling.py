"""Pooled heads over sets of region / token features: masks, the pools, gradients."""
from __future__ import annotations

import pytest
import torch

from gssf.models.heads import build_head
from gssf.models.pooling import GeneralizedPooling, PooledHead, set_mask


def _sets(b: int = 4, n: int = 6, d: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sets = torch.randn(b, n, d, generator=g, dtype=torch.float64)
    sets[1, 3:] = 0.0  # a caption of 3 tokens
    sets[2, 1:] = 0.0  # of 1 token
    return sets


def test_mask_marks_padding_and_keeps_an_all_zero_set_whole() -> None:
    sets = _sets()
    sets[3] = 0.0
    mask = set_mask(sets)
    assert mask.sum(dim=1).tolist() == [6, 3, 1, 6]


@pytest.mark.parametrize("pool", ["mean", "max", "gpo", "attention"])
def test_pools_ignore_padding_and_the_order_of_elements(pool: str) -> None:
    attention = {"similarity": "gssf", "similarity_kwargs": {"num_blocks": 1}} if pool == "attention" else None
    head = build_head(6 * 5, 3, kind="pooled", element_dim=5, pool=pool, hidden_dim=7, attention=attention).double()
    if pool == "attention":  # move the learned query and the kernel off their start, so both get gradients
        with torch.no_grad():
            for p in head.attention.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype))
    sets = _sets()
    out = head(sets.reshape(4, -1))
    assert out.shape == (4, 3)
    perm = torch.tensor([2, 0, 1, 3, 4, 5])  # shuffles only the valid tokens of set 1
    shuffled = sets.clone()
    shuffled[1] = sets[1, perm]
    assert torch.allclose(head(shuffled.reshape(4, -1)), out, atol=1e-12)
    e = head.proj(sets) + head.mlp(sets)  # the per-element embeddings
    if pool == "mean":
        assert torch.allclose(out[1], e[1, :3].mean(dim=0)) and torch.allclose(out[2], e[2, 0])
    if pool == "max":
        assert torch.allclose(out[1], e[1, :3].amax(dim=0)) and torch.allclose(out[2], e[2, 0])
    if pool == "attention":  # one valid token: attention over one key returns it
        assert torch.allclose(out[2], e[2, 0])
        q = e[1, :3].mean(dim=0) + head.attention.query
        kernel = head.attention.attention.kernels[0]
        w = torch.softmax(kernel(q[None], e[1, :3])[0] / head.attention.attention.temperature, dim=0)
        assert torch.allclose(out[1], (w[:, None] * e[1, :3]).sum(dim=0))
    out.sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in head.parameters())


def test_gpo_weights_the_sorted_values_and_reduces_to_mean_or_max() -> None:
    gpo = GeneralizedPooling().double()
    e, mask = _sets(), set_mask(_sets())
    w = gpo.weights(mask)
    assert torch.allclose(w.sum(dim=1), torch.ones(4, dtype=torch.float64))
    assert (w[1, 3:] == 0).all() and float(w[2, 0]) == 1.0
    manual = torch.stack([(w[i, :int(mask[i].sum())].unsqueeze(1)
                           * e[i, mask[i]].sort(dim=0, descending=True).values).sum(dim=0) for i in range(4)])
    assert torch.allclose(gpo(e, mask), manual)
    with torch.no_grad():  # constant scores: uniform weights, i.e. mean pooling
        gpo.score[-1].weight.zero_()
    mean = torch.stack([e[i, mask[i]].mean(dim=0) for i in range(4)])
    assert torch.allclose(gpo(e, mask), mean)


def test_a_pooled_head_checks_its_sizes() -> None:
    with pytest.raises(ValueError, match="whole number of elements"):
        build_head(31, 4, kind="pooled", element_dim=5)
    with pytest.raises(ValueError, match="needs element_dim"):
        build_head(30, 4, kind="pooled")
    with pytest.raises(ValueError, match="unknown pool"):
        PooledHead(30, 4, 5, pool="sum")


def test_no_pooling_returns_the_projected_set_with_zero_padding() -> None:
    head = build_head(6 * 5, 3, kind="pooled", element_dim=5, pool="none", hidden_dim=7).double()
    sets = _sets()
    out = head(sets.reshape(4, -1)).view(4, 6, 3)
    e = head.proj(sets) + head.mlp(sets)
    assert torch.allclose(out[0], e[0])
    assert torch.allclose(out[1, :3], e[1, :3]) and (out[1, 3:] == 0).all() and (out[2, 1:] == 0).all()
    with pytest.raises(ValueError, match="attention settings are for pool='attention'"):
        build_head(30, 3, kind="pooled", element_dim=5, pool="none", attention={"similarity": "gssf"})
