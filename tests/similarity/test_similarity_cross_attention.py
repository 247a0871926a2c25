"""cross_attention (words attend over regions) against a float64 loop over words and regions."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gssf
from gssf.errors import BadTensorError

D = 4  # element size


def perturb(m: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def sets(n: int, elements: int, seed: int, lengths=None) -> torch.Tensor:
    """``n`` flattened sets of ``elements`` D-sized elements; set ``i`` keeps ``lengths[i]`` (the rest zero)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, elements, D, generator=g, dtype=torch.float64)
    for i, keep in enumerate(lengths or []):
        t[i, keep:] = 0
    return t.reshape(n, elements * D)


def reference(sim, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Python loops: per word, softmax of kernel scores over the regions, cosine with the attended vector."""
    tau = float(sim.temperature.detach())
    out = torch.zeros(x.shape[0], y.shape[0], dtype=torch.float64)
    for i in range(x.shape[0]):
        regions = [r for r in x[i].view(-1, D) if bool(r.abs().max() > 0)]
        for j in range(y.shape[0]):
            words = [w for w in y[j].view(-1, D) if bool(w.abs().max() > 0)]
            per_word = []
            for w in words:
                logits = torch.tensor([float(sim.kernel(w[None], r[None]).detach()) / tau for r in regions])
                p = torch.softmax(logits.double(), dim=0)
                attended = sum(float(p[k]) * regions[k] for k in range(len(regions)))
                per_word.append(float(F.cosine_similarity(w, attended, dim=0)))
            out[i, j] = sum(per_word) / len(per_word)
    return out


@pytest.mark.parametrize("kernel", ["cosine", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"])
def test_scores_equal_the_loop_with_padding_tiles_and_chunks(kernel: str) -> None:
    sim = gssf.create_similarity("cross_attention", dim=D, kernel=kernel, temperature=0.2).double()
    perturb(sim, 1)
    x = sets(5, 3, seed=2, lengths=[3, 2, 3, 1, 3])  # regions (padding too: a set may be shorter)
    y = sets(6, 4, seed=3, lengths=[4, 2, 1, 3, 4, 2])  # words
    want = reference(sim, x, y)
    torch.testing.assert_close(sim(x, y), want)
    sim.pair_budget = 7  # tiles of one or two sets each way
    torch.testing.assert_close(sim(x, y), want)
    torch.testing.assert_close(sim.scores(x, y, chunk_size=2), want)
    torch.testing.assert_close(sim.pair(x, y[:5]), torch.diagonal(want[:, :5]))
    # trailing padding elements change nothing (rows of another width, same sets)
    pad = torch.zeros(6, 2 * D, dtype=torch.float64)
    torch.testing.assert_close(sim(x, torch.cat([y, pad], dim=1)), want)


def test_gradcheck_and_every_parameter_learns() -> None:
    sim = gssf.create_similarity("cross_attention", dim=D, kernel="gssf", kernel_kwargs={"num_blocks": 2}).double()
    perturb(sim, 4)
    x = sets(2, 3, seed=5).requires_grad_()
    y = sets(3, 2, seed=6).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: sim(a, b), (x, y))
    sim(x, y).sum().backward()
    for name, p in sim.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_cosine_kernel_on_one_element_sets_is_cosine() -> None:
    sim = gssf.create_similarity("cross_attention", dim=D).double()
    x, y = sets(4, 1, seed=7), sets(5, 1, seed=8)
    torch.testing.assert_close(sim(x, y), F.normalize(x, dim=1) @ F.normalize(y, dim=1).T)


def test_static_part_is_the_cosine_of_set_means_and_folds() -> None:
    sim = gssf.create_similarity("cross_attention", dim=D, kernel="gssf")
    part = sim.static_part()
    assert part.is_static and part.name == "set_cosine" and part.num_parameters == 0
    x = sets(4, 3, seed=9, lengths=[3, 1, 2, 3]).float()
    y = sets(5, 2, seed=10, lengths=[2, 1, 2, 2, 1]).float()

    def means(t: torch.Tensor) -> torch.Tensor:
        rows = []
        for s in t.view(t.shape[0], -1, D):
            kept = s[s.abs().amax(dim=1) > 0]
            rows.append(F.normalize(kept.mean(dim=0), dim=0))
        return torch.stack(rows)

    torch.testing.assert_close(part(x, y), means(x) @ means(y).T)
    torch.testing.assert_close(part.fold_query(x) @ part.fold_gallery(y).T, part(x, y))


def test_bad_inputs_and_arguments_are_refused() -> None:
    sim = gssf.create_similarity("cross_attention", dim=D)
    with pytest.raises(BadTensorError, match="whole number of elements of size 4"):
        sim(torch.randn(2, 6), torch.randn(2, 8))
    with pytest.raises(ValueError, match="needs dim"):
        gssf.create_similarity("cross_attention")
    with pytest.raises(ValueError, match="cannot be cross_attention"):
        gssf.create_similarity("cross_attention", dim=D, kernel="cross_attention")
    with pytest.raises(ValueError, match="temperature"):
        gssf.create_similarity("cross_attention", dim=D, temperature=0.0)
    with pytest.raises(BadTensorError, match="NaN"):
        sim(torch.full((2, 8), float("nan")), torch.randn(2, 8))
