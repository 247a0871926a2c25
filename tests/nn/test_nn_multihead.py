"""Multi-head attention with similarity logits against ordinary SDPA and a per-pair float64 loop."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import gssf
from gssf.nn import MultiHeadSimilarityAttention


def perturb(m: torch.nn.Module, seed: int, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def qkv(b: int = 3, lq: int = 4, lk: int = 5, d: int = 8, dv: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, n, c, generator=g, dtype=torch.float64) for n, c in ((lq, d), (lk, d), (lk, dv)))


def heads_of(t: torch.Tensor, h: int) -> torch.Tensor:
    b, n, c = t.shape
    return t.view(b, n, h, c // h).transpose(1, 2)


def merge(t: torch.Tensor) -> torch.Tensor:
    b, h, n, c = t.shape
    return t.transpose(1, 2).reshape(b, n, h * c)


def loop_reference(attn: MultiHeadSimilarityAttention, q, k, v, mask=None) -> torch.Tensor:
    """Every (batch, head, query, key) logit from the member's own pair score, softmax, weighted sum."""
    b, lq, _ = q.shape
    lk = k.shape[1]
    h, dh = attn.heads, attn.head_dim
    dv = v.shape[2] // h
    out = torch.zeros(b, lq, v.shape[2], dtype=torch.float64)
    tau = float(attn.temperature.detach())
    for i in range(b):
        for head, sim in enumerate(attn.kernels):
            sl, vl = slice(head * dh, (head + 1) * dh), slice(head * dv, (head + 1) * dv)
            for a in range(lq):
                logits = []
                for j in range(lk):
                    keep = mask is None or bool(mask[i, j])
                    score = float(sim.pair(q[i, a, sl][None], k[i, j, sl][None]).detach()[0]) / tau
                    logits.append(score if keep else -math.inf)
                w = torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=0)
                out[i, a, vl] = (w[:, None] * v[i, :, vl]).sum(dim=0)
    return out


def test_dot_with_temperature_sqrt_d_is_ordinary_sdpa() -> None:
    q, k, v = qkv()
    attn = MultiHeadSimilarityAttention("dot", dim=8, heads=2, temperature=2.0, learn_temperature=False).double()
    with torch.no_grad():
        attn.log_temperature.fill_(math.log(2.0))  # sqrt(head_dim = 4), in float64
    want = merge(F.scaled_dot_product_attention(heads_of(q, 2), heads_of(k, 2), heads_of(v, 2)))
    torch.testing.assert_close(attn(q, k, v), want)


@pytest.mark.parametrize("name", ["cosine", "gssf", "diagonal", "bilinear", "mahalanobis", "gssf_dynamic"])
def test_every_member_starts_as_sdpa_of_unit_rows(name: str) -> None:
    q, k, v = qkv(seed=1)
    attn = MultiHeadSimilarityAttention(name, dim=8, heads=2, temperature=0.5).double()
    with torch.no_grad():
        attn.log_temperature.fill_(math.log(0.5))
    qh, kh = F.normalize(heads_of(q, 2), dim=-1), F.normalize(heads_of(k, 2), dim=-1)
    want = merge(F.scaled_dot_product_attention(qh, kh, heads_of(v, 2), scale=2.0))
    torch.testing.assert_close(attn(q, k, v), want)


@pytest.mark.parametrize("name", ["gssf", "bilinear", "mahalanobis", "block_diagonal", "gssf_dynamic"])
def test_learned_members_equal_the_per_pair_loop_with_a_mask(name: str) -> None:
    q, k, v = qkv(seed=2)
    attn = MultiHeadSimilarityAttention(name, dim=8, heads=2, temperature=0.3).double()
    perturb(attn, 3)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 0] = False
    got = attn(q, k, v, mask)
    torch.testing.assert_close(got, loop_reference(attn, q, k, v, mask))
    # the explicit-logits path agrees with the folded SDPA path
    logits = attn.logits(q, k).masked_fill(~mask[:, None, None, :], float("-inf"))
    torch.testing.assert_close(merge(torch.softmax(logits, dim=-1) @ heads_of(v, 2)), got)


def test_gradients_reach_every_head_and_the_temperature() -> None:
    q, k, v = (t.float().requires_grad_() for t in qkv(seed=4))
    attn = MultiHeadSimilarityAttention("gssf", dim=8, heads=2)
    perturb(attn, 5, scale=0.1)
    attn(q, k, v).square().sum().backward()
    for head in attn.kernels:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert attn.log_temperature.grad is not None and q.grad.abs().sum() > 0 and k.grad.abs().sum() > 0


def test_bad_shapes_and_masks_are_refused() -> None:
    q, k, v = qkv()
    with pytest.raises(ValueError, match="multiple of heads"):
        MultiHeadSimilarityAttention("cosine", dim=8, heads=3)
    attn = MultiHeadSimilarityAttention("cosine", dim=8, heads=2).double()
    with pytest.raises(ValueError, match="expected q"):
        attn(q[..., :6], k, v)
    with pytest.raises(ValueError, match="bool"):
        attn(q, k, v, torch.ones(3, 5))
    with pytest.raises(ValueError, match="no key to attend"):
        attn(q, k, v, torch.zeros(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be"):
        attn(q, k, v, torch.ones(3, 4, dtype=torch.bool))
