"""Similarities under torch.export: no host-side data checks in the graph, same scores as eager."""
from __future__ import annotations

import pytest
import torch

import gssf
from gssf.errors import BadTensorError

from test_similarity_reference import D, build


class _Scores(torch.nn.Module):
    def __init__(self, sim: gssf.Similarity) -> None:
        super().__init__()
        self.sim = sim

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.sim(x, y)


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(5, D, generator=g) * 3, torch.randn(7, D, generator=g)


@pytest.mark.parametrize("name", gssf.list_similarities())
def test_every_member_exports_and_equals_eager(name: str) -> None:
    sim = build(name, {}, seed=1).float().eval()
    x, y = _inputs()
    program = torch.export.export(_Scores(sim), (x, y))
    with torch.no_grad():
        want = sim(x, y)
        got = program.module()(x, y)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    x2, y2 = _inputs(1)  # the exported graph is not specialised to the example's values
    torch.testing.assert_close(program.module()(x2, y2), sim(x2, y2), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["cosine", "gssf", "bilinear", "gssf_dynamic", "dot"])
def test_validate_off_gives_the_same_scores_and_skips_the_data_checks(name: str) -> None:
    sim = build(name, {}, seed=2).double()
    x, y = _inputs(3)
    x, y = x.double(), y.double()
    checked = sim(x, y)
    sim.validate = False
    assert torch.equal(sim(x, y), checked)  # the branch-free normalisation is exact on ordinary rows
    bad = x.clone()
    bad[1, 0] = float("nan")
    assert torch.isnan(sim(bad, y)[1]).all() and torch.isfinite(sim(bad, y)[0]).all()
    sim.validate = True
    with pytest.raises(BadTensorError, match="NaN or Inf"):
        sim(bad, y)
    with pytest.raises(BadTensorError, match="2-D"):  # shape checks stay on: they cost no sync
        sim.validate = False
        sim(x[0], y)
