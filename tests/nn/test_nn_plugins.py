"""Attention and distillation plug-ins against direct computations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import gssf
from gssf.nn import SimilarityAttention, SimilarityDistillationLoss, batched_scores


def perturb(m: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)


@pytest.mark.parametrize("name", ["cosine", "gssf", "gssf_dynamic", "euclidean"])
def test_batched_scores_equal_per_element_scores(name: str) -> None:
    sim = gssf.create_similarity(name, dim=8).double()
    perturb(sim, 0)
    q, k = torch.randn(3, 4, 8, dtype=torch.float64), torch.randn(3, 5, 8, dtype=torch.float64)
    got = batched_scores(sim, q, k)
    torch.testing.assert_close(got, torch.stack([sim(q[i], k[i]) for i in range(3)]))


def test_attention_with_cosine_is_softmax_of_cosine_over_tau() -> None:
    attn = SimilarityAttention(gssf.create_similarity("cosine"), temperature=0.5, learn_temperature=False).double()
    q, k, v = (torch.randn(2, 3, 6, dtype=torch.float64), torch.randn(2, 4, 6, dtype=torch.float64),
               torch.randn(2, 4, 5, dtype=torch.float64))
    cos = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(1, 2)
    want = torch.softmax(cos / 0.5, dim=-1) @ v
    torch.testing.assert_close(attn(q, k, v), want)
    assert not attn.log_temperature.requires_grad


def test_attention_mask_and_gradients() -> None:
    sim = gssf.create_similarity("gssf", dim=8, num_blocks=2)
    attn = SimilarityAttention(sim, dim=8, project=True)
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 4, 8), torch.randn(2, 4, 8)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    w = attn.attention_weights(q, k, mask)
    assert torch.all(w[0, :, 2:] == 0) and torch.allclose(w.sum(-1), torch.ones(2, 3))
    attn(q, k, v, mask).sum().backward()
    assert sim.blocks.raw.grad is not None and attn.log_temperature.grad is not None
    with pytest.raises(ValueError, match="no key to attend"):
        attn(q, k, v, torch.zeros(2, 4, dtype=torch.bool))


def test_attention_temperature_is_clamped() -> None:
    attn = SimilarityAttention(gssf.create_similarity("cosine"), temperature=0.1, min_temperature=0.05)
    with torch.no_grad():
        attn.log_temperature.fill_(-100.0)
    assert math.isclose(float(attn.temperature.detach()), 0.05, rel_tol=1e-6)


def test_distillation_matches_direct_kl_and_is_zero_for_identical_models() -> None:
    student = gssf.create_similarity("gssf", dim=6, num_blocks=2).double()
    perturb(student, 1)
    teacher = gssf.create_similarity("cosine").double()
    loss_fn = SimilarityDistillationLoss(student, teacher, temperature=0.2)
    sq, sg = torch.randn(5, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64)
    tq, tg = torch.randn(5, 9, dtype=torch.float64), torch.randn(7, 9, dtype=torch.float64)
    got = loss_fn(sq, sg, tq, tg)
    p_t = torch.softmax(teacher(tq, tg) / 0.2, dim=1)
    log_p_s = torch.log_softmax(student(sq, sg) / 0.2, dim=1)
    want = sum(float(p_t[i, j] * (math.log(p_t[i, j]) - log_p_s[i, j])) for i in range(5) for j in range(7)) / 5
    assert math.isclose(float(got), want * 0.04, rel_tol=1e-9)
    same = SimilarityDistillationLoss(gssf.create_similarity("cosine"), gssf.create_similarity("cosine"))
    assert float(same(tq.float(), tg.float(), tq.float(), tg.float())) == pytest.approx(0.0, abs=1e-6)
    got.backward()
    assert student.blocks.raw.grad.abs().sum() > 0


def test_distillation_exclude_diagonal_and_errors() -> None:
    loss_fn = SimilarityDistillationLoss(gssf.create_similarity("cosine"), gssf.create_similarity("cosine"),
                                         exclude_diagonal=True)
    x = torch.randn(4, 3)
    assert torch.isfinite(loss_fn(x, x, torch.randn(4, 5), torch.randn(4, 5)))
    with pytest.raises(ValueError, match="same items"):
        loss_fn(x, x, torch.randn(3, 5), torch.randn(4, 5))


def test_symmetric_distillation_also_matches_the_column_distributions() -> None:
    student, teacher = gssf.create_similarity("gssf", dim=6, num_blocks=2).double(), gssf.create_similarity("cosine")
    perturb(student, 3)
    sq, sg = torch.randn(5, 6, dtype=torch.float64), torch.randn(7, 6, dtype=torch.float64)
    tq, tg = torch.randn(5, 9, dtype=torch.float64), torch.randn(7, 9, dtype=torch.float64)
    got = SimilarityDistillationLoss(student, teacher, temperature=0.2, symmetric=True)(sq, sg, tq, tg)
    s, t = student(sq, sg) / 0.2, teacher(tq, tg) / 0.2

    def kl(a: torch.Tensor, b: torch.Tensor) -> float:  # mean over rows of KL(softmax(b_i) || softmax(a_i))
        total = 0.0
        for i in range(a.shape[0]):
            p = [math.exp(v) for v in b[i].tolist()]
            q = [math.exp(v) for v in a[i].tolist()]
            zp, zq = sum(p), sum(q)
            total += sum(pi / zp * (math.log(pi / zp) - math.log(qi / zq)) for pi, qi in zip(p, q))
        return total / a.shape[0]

    want = 0.5 * (kl(s, t) + kl(s.T, t.T)) * 0.04
    assert math.isclose(float(got), want, rel_tol=1e-9)
    rows = SimilarityDistillationLoss(student, teacher, temperature=0.2)(sq, sg, tq, tg)
    assert math.isclose(float(rows), kl(s, t) * 0.04, rel_tol=1e-9) and not math.isclose(float(rows), want)
