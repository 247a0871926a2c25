"""The scale mechanism: bounded, and every matrix of a member's structure up to the bound is reachable.

Representability: each learnable member fits, by Adam on its own parameters (with the
projection the trainer runs after every step), a random target of its own structure
whose spectral norm is at the bound, to a small relative error in a fixed number of steps,
for blocks of 16, 80 and D = 160 channels. Targets include a few large entries, which the
first release's entrywise map cannot reach (entries below bound / b): the control test
shows that, so the representability tests can fail.
"""
from __future__ import annotations

from typing import Callable, Tuple

import pytest
import torch

import gssf
from gssf.losses import constrain_parameters

D = 160
STEPS = 400


def _block_target(num_blocks: int, b: int, kind: str, g: torch.Generator, bound: float = 1.0) -> torch.Tensor:
    """``(K, b, b)`` blocks of spectral norm exactly ``bound``: dense random, or 3 large entries."""
    if kind == "dense":
        t = torch.randn(num_blocks, b, b, generator=g, dtype=torch.float64)
    else:
        t = torch.zeros(num_blocks, b, b, dtype=torch.float64)
        for k in range(num_blocks):
            idx = torch.randperm(b * b, generator=g)[:3]
            t[k].view(-1)[idx] = torch.tensor([1.0, -0.7, 0.5], dtype=torch.float64)
    return t * (bound / torch.linalg.matrix_norm(t, ord=2)).view(-1, 1, 1)


def _fit(sim: gssf.Similarity, matrix: Callable[[], torch.Tensor], target: torch.Tensor) -> float:
    """Adam on ``||matrix() - target||_F^2`` with the projections after each step; relative error."""
    opt = torch.optim.Adam(sim.parameters(), lr=0.03)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, STEPS)
    for _ in range(STEPS):
        loss = (matrix() - target).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        constrain_parameters(sim)
    with torch.no_grad():
        return float((matrix() - target).norm() / target.norm())


def _block_member(name: str, b: int, scale: str) -> Tuple[gssf.Similarity, Callable[[], torch.Tensor]]:
    if name == "bilinear":
        sim = gssf.create_similarity("bilinear", dim=D, scale=scale).double()
        eye = torch.eye(D, dtype=torch.float64)
        return sim, lambda: sim.weight_matrix() - eye
    sim = gssf.create_similarity("block_diagonal", dim=D, block_size=b, scale=scale).double()
    return sim, sim.blocks.blocks


CASES = [("block_diagonal", 16), ("block_diagonal", 80), ("block_diagonal", D), ("bilinear", D)]


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("name,b", CASES, ids=[f"{n}-b{b}" for n, b in CASES])
@pytest.mark.parametrize("scale", ["spectral", "frobenius"])
def test_block_targets_at_the_bound_are_reachable(name: str, b: int, kind: str, scale: str) -> None:
    g = torch.Generator().manual_seed(b)
    target = _block_target(D // b, b, kind, g)
    if scale == "frobenius":  # its ball is smaller: a target at its own bound (Frobenius norm 1)
        target = target / target.flatten(1).norm(dim=1).view(-1, 1, 1)
    sim, matrix = _block_member(name, b, scale)
    if name == "bilinear":
        target = target[0]
    err = _fit(sim, matrix, target)
    assert err < 0.02, f"relative error {err:.4f}"
    with torch.no_grad():
        norms = torch.linalg.matrix_norm(matrix().reshape(-1, b, b), ord=2 if scale == "spectral" else "fro")
    assert float(norms.max()) <= 1.0 + 1e-3  # and it stays inside the ball


@pytest.mark.parametrize("b", [16, 80])
def test_control_entrywise_map_cannot_reach_large_entries(b: int) -> None:
    g = torch.Generator().manual_seed(b)
    target = _block_target(D // b, b, "sparse", g)
    sim, matrix = _block_member("block_diagonal", b, "entrywise")
    assert _fit(sim, matrix, target) > 0.5  # entries are capped at bound / b


def test_gssf_diagonal_plus_blocks_is_reachable() -> None:
    g = torch.Generator().manual_seed(1)
    b = 16
    w = 0.2 + 1.6 * torch.rand(D, generator=g, dtype=torch.float64)  # inside (0, w_max = 2)
    blocks = _block_target(D // b, b, "sparse", g)
    target = torch.diag(w) + torch.block_diag(*blocks.unbind(0))
    sim = gssf.create_similarity("gssf", dim=D, block_size=b).double()
    assert _fit(sim, sim.weight_matrix, target) < 0.02


@pytest.mark.parametrize("parameterization,extra", [("lowrank", {"rank": 2}), ("scalar", {})])
def test_lowrank_and_scalar_blocks_are_reachable(parameterization: str, extra: dict) -> None:
    g = torch.Generator().manual_seed(2)
    b, k = 16, D // 16
    if parameterization == "lowrank":
        t = torch.randn(k, b, 2, generator=g, dtype=torch.float64) @ torch.randn(k, 2, b, generator=g, dtype=torch.float64)
    else:
        t = torch.randn(k, 1, 1, generator=g, dtype=torch.float64) * torch.ones(k, b, b, dtype=torch.float64)
    t = t / torch.linalg.matrix_norm(t, ord=2).view(-1, 1, 1)
    sim = gssf.create_similarity(
        "block_diagonal", dim=D, block_size=b, parameterization=parameterization, **extra
    ).double()
    assert _fit(sim, sim.blocks.blocks, t) < 0.02


def test_mahalanobis_factor_is_reachable() -> None:
    g = torch.Generator().manual_seed(3)
    d = 32
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    a = 0.9 * a / torch.linalg.matrix_norm(a, ord=2)
    sim = gssf.create_similarity("mahalanobis", dim=d).double()
    target = torch.eye(d, dtype=torch.float64) + a
    assert _fit(sim, sim.matrix, target) < 0.02


def test_diagonal_weights_are_reachable() -> None:
    g = torch.Generator().manual_seed(4)
    w = 0.1 + 1.8 * torch.rand(D, generator=g, dtype=torch.float64)
    sim = gssf.create_similarity("diagonal", dim=D).double()
    assert _fit(sim, sim.diagonal.weights, w) < 0.02


def test_the_spectral_estimate_is_saved_and_resumes_exactly() -> None:
    torch.manual_seed(0)
    sim = gssf.create_similarity("gssf", dim=32, block_size=8)
    with torch.no_grad():
        sim.blocks.raw.normal_(0, 1)
    constrain_parameters(sim)
    state = sim.state_dict()
    assert {"blocks.norm_ball.u", "blocks.norm_ball.v"} <= set(state)
    other = gssf.create_similarity("gssf", dim=32, block_size=8)
    other.load_state_dict(state)
    for _ in range(3):
        for s in (sim, other):
            with torch.no_grad():
                s.blocks.raw.mul_(1.5)
            constrain_parameters(s)
    assert torch.equal(sim.blocks.raw, other.blocks.raw)
    # A jump far outside the ball (x 1.5, three times) is projected with a warm-started estimate
    # that may still lag (up to 5.8 % over the bound after these four projections, over 30 seeds);
    # it converges as the projections go on (below 2e-4 after 20 more, 1e-7 after 50).
    for _ in range(50):
        constrain_parameters(sim)
    exact = torch.linalg.matrix_norm(sim.blocks.blocks().detach(), ord=2)
    assert float(exact.max()) == pytest.approx(1.0, abs=1e-5)
