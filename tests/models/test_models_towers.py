"""Heads, one/two-tower models and the end-to-end encoder tower."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import gssf
from gssf.losses import InfoNCELoss
from gssf.models import DualEncoder, EncoderTower, LinearHead, MLPHead, SingleEncoder, build_head


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_heads_map_to_the_embedding_size(kind: str) -> None:
    head = build_head(12, 8, kind=kind, hidden_dim=16, num_layers=3)
    out = head(torch.randn(5, 12))
    assert out.shape == (5, 8)


def test_mlp_head_starts_equal_to_its_linear_branch() -> None:
    torch.manual_seed(0)
    mlp = MLPHead(12, 8, hidden_dim=16)
    x = torch.randn(4, 12)
    assert torch.equal(mlp(x), mlp.fc(x))
    # ...but its residual branch learns: the zero-initialised last layer gets a gradient.
    mlp(x).sum().backward()
    assert float(mlp.mlp[-1].weight.grad.abs().sum()) > 0


def test_head_argument_errors() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        build_head(4, 4, kind="transformer")
    with pytest.raises(ValueError, match="in_dim == out_dim"):
        build_head(4, 8, kind="identity")
    assert isinstance(build_head(4, 4, kind="identity"), nn.Identity)
    with pytest.raises(ValueError, match="num_layers"):
        build_head(4, 4, kind="mlp", num_layers=1)


def test_dual_encoder_scores_with_its_similarity() -> None:
    sim = gssf.create_similarity("gssf", dim=8)
    model = DualEncoder(LinearHead(12, 8), LinearHead(6, 8), sim)
    img, txt = torch.randn(3, 12), torch.randn(5, 6)
    scores = model(img, txt)
    assert scores.shape == (3, 5)
    assert torch.allclose(scores, sim(model.encode_image(img), model.encode_text(txt)))
    assert model.similarity is sim and any(p is q for p in model.parameters() for q in sim.parameters())
    with pytest.raises(TypeError):
        DualEncoder(LinearHead(2, 2), LinearHead(2, 2), nn.Identity())  # type: ignore[arg-type]


def test_single_encoder_shares_its_tower() -> None:
    model = SingleEncoder(LinearHead(6, 4), gssf.create_similarity("cosine"))
    x = torch.randn(3, 6)
    assert torch.allclose(model(x, x).diagonal(), torch.ones(3), atol=1e-6)


def test_scores_are_fp32_under_bf16_autocast() -> None:
    sim = gssf.create_similarity("gssf", dim=8)
    model = DualEncoder(LinearHead(12, 8), LinearHead(6, 8), sim)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img, txt = model.encode_image(torch.randn(3, 12)), model.encode_text(torch.randn(4, 6))
        scores = model.similarity(img, txt)
    assert img.dtype == torch.bfloat16
    assert scores.dtype == torch.float32


class TinyConvEncoder(nn.Module):
    """A stand-in image encoder: (N, 3, H, W) -> (N, 10), with BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 10, 3), nn.BatchNorm2d(10), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_end_to_end_steps_update_the_encoder() -> None:
    torch.manual_seed(0)
    encoder = TinyConvEncoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    sim = gssf.create_similarity("gssf", dim=8)
    model = DualEncoder(EncoderTower(encoder, LinearHead(10, 8)), LinearHead(5, 8), sim)
    loss_fn = InfoNCELoss(sim, temperature=0.1)
    opt = torch.optim.AdamW(list(model.parameters()) + list(loss_fn.own_parameters()), lr=1e-2)
    pixels, texts, ids = torch.randn(6, 3, 12, 12), torch.randn(6, 5), torch.arange(6)
    losses = []
    for _ in range(5):
        loss = loss_fn(model.encode_image(pixels), model.encode_text(texts), ids, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    after = encoder.state_dict()
    assert not torch.equal(before["net.0.weight"], after["net.0.weight"])
    assert not torch.equal(before["net.1.running_mean"], after["net.1.running_mean"])
    assert losses[-1] < losses[0]


def test_frozen_encoder_tower_trains_only_the_head() -> None:
    encoder = TinyConvEncoder()
    tower = EncoderTower(encoder, LinearHead(10, 8), trainable=False)
    tower.train()
    assert not encoder.training and all(not p.requires_grad for p in encoder.parameters())
    running = encoder.net[1].running_mean.clone()
    tower(torch.randn(4, 3, 12, 12)).sum().backward()
    assert torch.equal(running, encoder.net[1].running_mean)
    assert tower.head.fc.weight.grad is not None
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        EncoderTower(nn.Identity(), nn.Identity())(torch.randn(2, 3, 4))
