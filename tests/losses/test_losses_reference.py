"""Each loss against a plain Python loop over explicit pairs (float64), plus gradcheck."""
from __future__ import annotations

import math
from typing import List

import pytest
import torch

import gssf
from gssf.losses import (
    BatchHardTripletLoss,
    BidirectionalHingeLoss,
    IdentityCrossEntropyLoss,
    InfoNCELoss,
    create_loss,
    get_loss_class,
    list_losses,
)

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def _sim(name: str = "gssf", dim: int = 6, seed: int = 0) -> gssf.Similarity:
    """A learnable similarity moved away from its (cosine) initialisation, in float64."""
    torch.manual_seed(seed)
    sim = gssf.create_similarity(name, dim=dim).double()
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return sim


def _score(sim: gssf.Similarity, a: torch.Tensor, b: torch.Tensor) -> float:
    with torch.no_grad():
        return float(sim.pair(a[None], b[None])[0])


# ------------------------------------------------------------------ references (loops)


def ref_hinge(sim, x, y, xi: List[int], yi: List[int], margin: float, max_violation: bool, reduction: str) -> float:
    total, n_pos = 0.0, 0
    # image -> text: anchor x[i], positive y[p], negatives y[n] with another id
    for i in range(len(x)):
        for p in range(len(y)):
            if xi[i] != yi[p]:
                continue
            n_pos += 1
            s_pos = _score(sim, x[i], y[p])
            costs = [max(0.0, margin + _score(sim, x[i], y[n]) - s_pos) for n in range(len(y)) if yi[n] != xi[i]]
            total += (max(costs) if costs else 0.0) if max_violation else sum(costs)
    # text -> image: anchor y[p], positive x[i], negatives x[n]
    for p in range(len(y)):
        for i in range(len(x)):
            if xi[i] != yi[p]:
                continue
            s_pos = _score(sim, x[i], y[p])
            costs = [max(0.0, margin + _score(sim, x[n], y[p]) - s_pos) for n in range(len(x)) if xi[n] != yi[p]]
            total += (max(costs) if costs else 0.0) if max_violation else sum(costs)
    return total / n_pos if reduction == "mean" else total


def ref_infonce(sim, x, y, xi: List[int], yi: List[int], tau: float) -> float:
    def direction(anchors, others, ai, oi, score) -> float:
        terms = []
        for a in range(len(anchors)):
            negs = [score(a, n) / tau for n in range(len(others)) if oi[n] != ai[a]]
            for p in range(len(others)):
                if oi[p] != ai[a]:
                    continue
                if not negs:
                    terms.append(0.0)
                    continue
                z = score(a, p) / tau
                denom = math.exp(z) + sum(math.exp(v) for v in negs)
                terms.append(-(z - math.log(denom)))
        return sum(terms) / len(terms)

    i2t = direction(x, y, xi, yi, lambda a, b: _score(sim, x[a], y[b]))
    t2i = direction(y, x, yi, xi, lambda a, b: _score(sim, x[b], y[a]))
    return 0.5 * (i2t + t2i)


def ref_triplet(sim, e, labels: List[int], margin) -> float:
    losses = []
    for a in range(len(e)):
        pos = [_score(sim, e[a], e[p]) for p in range(len(e)) if p != a and labels[p] == labels[a]]
        neg = [_score(sim, e[a], e[n]) for n in range(len(e)) if labels[n] != labels[a]]
        if not pos or not neg:
            continue
        gap = max(neg) - min(pos)
        losses.append(math.log1p(math.exp(gap)) if margin is None else max(0.0, margin + gap))
    return sum(losses) / len(losses)


# ------------------------------------------------------------------ data

# Images 0..3; captions 0 and 1 belong to image 0 (two positives of one image in a batch),
# and image 2 appears twice as a row (the same image sampled twice).
X_IDS = [0, 1, 2, 2, 3]
Y_IDS = [0, 0, 1, 2, 3, 3]


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(X_IDS), 6, generator=g, dtype=torch.float64)
    y = torch.randn(len(Y_IDS), 6, generator=g, dtype=torch.float64)
    return x, y, torch.tensor(X_IDS), torch.tensor(Y_IDS)


@pytest.mark.parametrize("max_violation", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("margin", [0.2, 0.7])
def test_hinge_matches_loop(max_violation: bool, reduction: str, margin: float) -> None:
    sim = _sim()
    x, y, xi, yi = _batch()
    loss = BidirectionalHingeLoss(sim, margin=margin, max_violation=max_violation, reduction=reduction)(x, y, xi, yi)
    ref = ref_hinge(sim, x, y, X_IDS, Y_IDS, margin, max_violation, reduction)
    assert loss.dtype == torch.float64
    assert float(loss) == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_hinge_hardest_differs_from_sum_and_is_smaller() -> None:
    sim = _sim()
    x, y, xi, yi = _batch()
    hard = BidirectionalHingeLoss(sim, margin=0.5, max_violation=True)(x, y, xi, yi)
    total = BidirectionalHingeLoss(sim, margin=0.5, max_violation=False)(x, y, xi, yi)
    assert 0 < float(hard) < float(total)


def test_captions_of_one_image_are_not_negatives() -> None:
    """A batch of aligned pairs where image A was sampled twice (with its captions a1, a2).

    Caption a2 is made identical to image A. Masked by id it is a positive of both rows of
    A and costs little; a naive diagonal-positive loss (distinct ids) treats it as a hard
    negative of the first row and pays a large cost.
    """
    sim = gssf.create_similarity("cosine")
    g = torch.Generator().manual_seed(2)
    a, b, c = (torch.randn(6, generator=g, dtype=torch.float64) for _ in range(3))
    x = torch.stack([a, a, b, c])
    y = torch.stack([a + 0.3 * torch.randn(6, generator=g, dtype=torch.float64), a, b + 0.1, c - 0.1])
    ids = [0, 0, 1, 2]
    for max_violation in (True, False):
        loss_fn = BidirectionalHingeLoss(sim, margin=0.2, max_violation=max_violation)
        masked = loss_fn(x, y, torch.tensor(ids), torch.tensor(ids))
        naive = loss_fn(x, y, torch.arange(4), torch.arange(4))
        assert float(masked) == pytest.approx(ref_hinge(sim, x, y, ids, ids, 0.2, max_violation, "sum"), rel=1e-10)
        assert float(naive) > float(masked) + 0.5
    infonce = InfoNCELoss(sim, temperature=0.1).double()
    assert float(infonce(x, y, torch.arange(4), torch.arange(4))) > float(infonce(x, y, torch.tensor(ids), torch.tensor(ids))) + 0.2


def test_infonce_matches_loop_with_multiple_positives() -> None:
    sim = _sim()
    x, y, xi, yi = _batch()
    loss_fn = InfoNCELoss(sim, temperature=0.1, min_temperature=0.01, max_temperature=1.0).double()
    tau = float(loss_fn.temperature)  # 0.1 up to the float32 rounding of its stored log
    assert tau == pytest.approx(0.1, rel=1e-6)
    ref = ref_infonce(sim, x, y, X_IDS, Y_IDS, tau=tau)
    assert float(loss_fn(x, y, xi, yi)) == pytest.approx(ref, rel=1e-9)


def test_infonce_with_unique_ids_is_clip_cross_entropy() -> None:
    sim = _sim()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randn(5, 6, generator=g, dtype=torch.float64)
    ids = torch.arange(5)
    loss_fn = InfoNCELoss(sim, temperature=0.2).double()
    logits = sim(x, y) / float(loss_fn.temperature)
    clip = 0.5 * (torch.nn.functional.cross_entropy(logits, ids) + torch.nn.functional.cross_entropy(logits.T, ids))
    assert float(loss_fn(x, y, ids, ids)) == pytest.approx(float(clip), rel=1e-10)


def test_infonce_temperature_is_clamped_and_projected() -> None:
    sim = gssf.create_similarity("cosine")
    loss_fn = InfoNCELoss(sim, temperature=0.05, min_temperature=0.02, max_temperature=0.5)
    with torch.no_grad():
        loss_fn.log_tau.fill_(math.log(1e-4))  # far below the range, as an optimizer step could leave it
    assert float(loss_fn.temperature) == pytest.approx(0.02, rel=1e-6)
    x, y, xi, yi = _batch()
    # The forward pass uses the clamped value: same loss as with tau = 0.02 exactly.
    ref = InfoNCELoss(sim, temperature=0.02, min_temperature=0.02, max_temperature=0.5, learn_temperature=False)
    assert float(loss_fn(x, y, xi, yi)) == pytest.approx(float(ref(x, y, xi, yi)), rel=1e-6)
    loss_fn.constrain_()
    assert float(loss_fn.log_tau) == pytest.approx(math.log(0.02), rel=1e-6)
    with torch.no_grad():
        loss_fn.log_tau.fill_(math.log(5.0))
    assert float(loss_fn.temperature) == pytest.approx(0.5, rel=1e-6)
    with pytest.raises(ValueError, match="outside"):
        InfoNCELoss(sim, temperature=2.0, max_temperature=1.0)


def test_infonce_temperature_gets_gradient_inside_range() -> None:
    sim = gssf.create_similarity("cosine")
    loss_fn = InfoNCELoss(sim, temperature=0.1)
    x, y, xi, yi = _batch()
    loss_fn(x.float(), y.float(), xi, yi).backward()
    assert loss_fn.log_tau.grad is not None and float(loss_fn.log_tau.grad.abs()) > 0
    frozen = InfoNCELoss(sim, temperature=0.1, learn_temperature=False)
    assert not list(frozen.parameters())


@pytest.mark.parametrize("margin", [0.3, None])
def test_batch_hard_triplet_matches_loop(margin) -> None:
    sim = _sim()
    g = torch.Generator().manual_seed(5)
    e = torch.randn(8, 6, generator=g, dtype=torch.float64)
    labels = [0, 0, 1, 1, 1, 2, 2, 3]  # label 3 has no positive: not an anchor
    loss = BatchHardTripletLoss(sim, margin=margin)(e, torch.tensor(labels))
    assert float(loss) == pytest.approx(ref_triplet(sim, e, labels, margin), rel=1e-10)


def test_batch_hard_triplet_without_valid_anchor_is_zero_and_differentiable() -> None:
    sim = _sim()
    e = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    loss = BatchHardTripletLoss(sim)(e, torch.tensor([0, 1, 2]))
    loss.backward()
    assert float(loss) == 0.0 and e.grad is not None


def test_identity_cross_entropy_matches_manual_softmax() -> None:
    sim = _sim()
    torch.manual_seed(0)
    loss_fn = IdentityCrossEntropyLoss(sim, num_classes=3, dim=6, temperature=0.1).double()
    e = torch.randn(5, 6, dtype=torch.float64)
    labels = [0, 2, 1, 1, 0]
    total = 0.0
    for i, c in enumerate(labels):
        logits = [_score(sim, e[i], loss_fn.proxies[k]) / 0.1 for k in range(3)]
        total += -(logits[c] - math.log(sum(math.exp(v) for v in logits)))
    assert float(loss_fn(e, torch.tensor(labels))) == pytest.approx(total / len(labels), rel=1e-10)
    with pytest.raises(ValueError, match="labels must lie"):
        loss_fn(e, torch.tensor([0, 1, 2, 3, 0]))


def test_gradcheck_every_loss() -> None:
    sim = _sim(dim=4)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    xi, yi = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 0, 1, 2, 3])
    for loss_fn in (
        BidirectionalHingeLoss(sim, margin=0.3, max_violation=False),
        BidirectionalHingeLoss(sim, margin=0.3, max_violation=True),
        InfoNCELoss(sim, temperature=0.3).double(),
    ):
        assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, xi, yi), (x, y), eps=1e-6, atol=1e-6)
    labels = torch.tensor([0, 0, 1, 1])
    for loss_fn in (BatchHardTripletLoss(sim, margin=0.3), BatchHardTripletLoss(sim, margin=None)):
        assert torch.autograd.gradcheck(lambda a: loss_fn(a, labels), (x,), eps=1e-6, atol=1e-6)
    torch.manual_seed(1)
    ce = IdentityCrossEntropyLoss(sim, num_classes=2, dim=4).double()
    assert torch.autograd.gradcheck(lambda a: ce(a, labels), (x,), eps=1e-6, atol=1e-6)


def test_gradcheck_through_similarity_parameters() -> None:
    """Gradients w.r.t. the similarity's own parameters (the learned metric) are right too."""
    sim = _sim("gssf", dim=4)
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    ids = torch.arange(3)
    loss_fn = InfoNCELoss(sim, temperature=0.3).double()
    params = list(sim.parameters())

    # Differentiate through the parameters by functional substitution.
    from torch.func import functional_call

    names = [n for n, _ in sim.named_parameters()]

    def g(*values):
        scores = functional_call(sim, dict(zip(names, values)), (x, y))
        return loss_fn.from_scores(scores, torch.eye(3, dtype=torch.bool))

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in params)
    assert torch.autograd.gradcheck(g, inputs, eps=1e-6, atol=1e-6)


CROSS = ["hinge", "infonce"]
UNI = ["triplet", "id_ce", "pml"]  # pml: the pytorch-metric-learning adapter (gssf.losses.adapter)


def test_registry_lists_losses_by_kind() -> None:
    assert list_losses("cross_modal") == sorted(CROSS)
    assert list_losses("unimodal") == sorted(UNI)
    with pytest.raises(KeyError, match="choose one of"):
        get_loss_class("nope")
    with pytest.raises(ValueError, match="valid arguments"):
        create_loss("hinge", similarity=gssf.create_similarity("cosine"), margn=0.1)


@pytest.mark.parametrize("sim_name", gssf.list_similarities())
def test_every_loss_works_with_every_similarity(sim_name: str) -> None:
    dim = 8
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, dim, generator=g, requires_grad=True)
    y = torch.randn(6, dim, generator=g, requires_grad=True)
    ids = torch.tensor([0, 0, 1, 2, 3, 3])
    cases = [(n, {}) for n in CROSS + ["triplet"]]
    cases += [("id_ce", {"num_classes": 4, "dim": dim}), ("id_ce", {"num_classes": 4, "dim": dim, "proxy_scores": "full"})]
    for name, kw in cases:
        # cross_attention scores sets: four elements of size 2 per row, so its kernel learns
        sim = gssf.create_similarity(sim_name, dim=dim // 4 if sim_name == "cross_attention" else dim)
        loss_fn = create_loss(name, similarity=sim, **kw)
        loss = loss_fn(x, y, ids, ids) if name in CROSS else loss_fn(x, ids)
        assert loss.dim() == 0 and torch.isfinite(loss), (sim_name, name)
        loss.backward()
        # id_ce scores its proxies with the static part unless proxy_scores="full"
        trained = sim.static_part() if name == "id_ce" and "proxy_scores" not in kw else sim
        params = list(trained.parameters())
        if params:
            assert all(p.grad is not None for p in params), (sim_name, name)
            assert any(float(p.grad.abs().sum()) > 0 for p in params), (sim_name, name)
        assert x.grad is not None and torch.isfinite(x.grad).all()
        x.grad = y.grad = None


def test_id_ce_scores_proxies_with_the_static_part() -> None:
    torch.manual_seed(0)
    sim = gssf.create_similarity("gssf_dynamic", dim=8, hidden=3)
    with torch.no_grad():
        sim.gate_diag.normal_(0, 0.1)  # a dynamic part that changes the scores
    x, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    static = create_loss("id_ce", similarity=sim, num_classes=3, dim=8)
    full = create_loss("id_ce", similarity=sim, num_classes=3, dim=8, proxy_scores="full")
    full.proxies.data.copy_(static.proxies.data)
    f = torch.nn.functional
    expect_static = f.cross_entropy(sim.static_part()(x, static.proxies) / static.temperature, labels)
    expect_full = f.cross_entropy(sim(x, static.proxies) / static.temperature, labels)
    assert torch.allclose(static(x, labels), expect_static) and torch.allclose(full(x, labels), expect_full)
    assert not torch.allclose(expect_static, expect_full)
    static(x, labels).backward()
    assert sim.gate_diag.grad is None and sim.diagonal.theta.grad is not None
    with pytest.raises(ValueError, match="proxy_scores"):
        create_loss("id_ce", similarity=sim, num_classes=3, dim=8, proxy_scores="gates")


def test_hinge_warm_up_is_the_losss_own_set_epoch_hook() -> None:
    sim = gssf.create_similarity("cosine")
    loss = BidirectionalHingeLoss(sim, max_violation=True, hardest_after_epochs=2)
    seen = []
    for epoch in range(4):
        loss.set_epoch(epoch)
        seen.append(loss.max_violation)
    assert seen == [False, False, True, True]
    plain = BidirectionalHingeLoss(sim, max_violation=False, hardest_after_epochs=2)
    plain.set_epoch(5)
    assert plain.max_violation is False  # the warm-up never turns the hardest negative on by itself
    with pytest.raises(ValueError, match="hardest_after_epochs"):
        BidirectionalHingeLoss(sim, hardest_after_epochs=-1)
