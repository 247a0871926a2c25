"""The pytorch-metric-learning adapter: PML losses scored by a gssf similarity."""
from __future__ import annotations

import pytest
import torch

import gssf

import pytorch_metric_learning.losses as pml_losses  # the `pml` extra, part of the test install

from gssf.losses.pml import SimilarityDistance

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    sim = gssf.create_similarity("gssf", dim=6, num_blocks=2).double()
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(0.3 * torch.randn_like(p))
    e = torch.randn(9, 6, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])
    return sim, e, labels


def _s(sim, a, b) -> float:
    with torch.no_grad():
        return float(sim.pair(a[None], b[None])[0])


def test_triplet_margin_loss_matches_loop_over_all_triplets() -> None:
    sim, e, labels = _setup()
    margin = 0.3
    loss = pml_losses.TripletMarginLoss(margin=margin, distance=SimilarityDistance(sim))(e, labels)
    values = []
    lab = labels.tolist()
    for a in range(len(e)):
        for p in range(len(e)):
            if p == a or lab[p] != lab[a]:
                continue
            for n in range(len(e)):
                if lab[n] == lab[a]:
                    continue
                values.append(max(0.0, _s(sim, e[a], e[n]) - _s(sim, e[a], e[p]) + margin))
    nonzero = [v for v in values if v > 0]
    assert nonzero, "the test needs violating triplets"
    assert float(loss) == pytest.approx(sum(nonzero) / len(nonzero), rel=1e-10)


def test_contrastive_loss_matches_loop() -> None:
    sim, e, labels = _setup(1)
    pos_margin, neg_margin = 0.9, 0.1
    loss = pml_losses.ContrastiveLoss(pos_margin=pos_margin, neg_margin=neg_margin, distance=SimilarityDistance(sim))(e, labels)
    lab = labels.tolist()
    pos, neg = [], []
    for i in range(len(e)):
        for j in range(len(e)):
            if i == j:
                continue
            s = _s(sim, e[i], e[j])
            if lab[i] == lab[j]:
                pos.append(max(0.0, pos_margin - s))
            else:
                neg.append(max(0.0, s - neg_margin))
    avg = lambda v: sum(x for x in v if x > 0) / max(1, sum(1 for x in v if x > 0))  # noqa: E731
    assert float(loss) == pytest.approx(avg(pos) + avg(neg), rel=1e-10)


def test_pml_loss_trains_the_similarity() -> None:
    sim, e, labels = _setup(2)
    loss_fn = pml_losses.TripletMarginLoss(margin=0.3, distance=SimilarityDistance(sim))
    assert {id(p) for p in sim.parameters()} <= {id(p) for p in loss_fn.parameters()}
    loss_fn(e, labels).backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in sim.parameters())


def test_adapter_rejects_overrides_of_fixed_settings() -> None:
    sim = gssf.create_similarity("cosine")
    with pytest.raises(ValueError, match="is_inverted"):
        SimilarityDistance(sim, is_inverted=False)
    with pytest.raises(TypeError):
        SimilarityDistance(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
