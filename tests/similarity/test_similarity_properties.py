"""Properties of the family: special cases, folding, registry, bad input, dtypes, scale."""
from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

import gssf
from gssf.losses import constrain_parameters
from gssf.similarity.terms import SCALES
from gssf.similarity import BilinearFormMixin

D = 16


def rand(n: int, d: int = D, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def perturb(sim: torch.nn.Module, seed: int = 0, scale: float = 0.7) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


LEARNABLE = [n for n in gssf.list_similarities() if gssf.get_similarity_class(n).requires_dim]


def test_registry_lists_every_member() -> None:
    assert set(gssf.list_similarities()) >= {
        "cosine", "dot", "euclidean", "bilinear", "mahalanobis", "diagonal", "block_diagonal", "gssf", "gssf_dynamic"
    }
    with pytest.raises(KeyError, match="unknown similarity 'cosin'.*cosine"):
        gssf.create_similarity("cosin")


@pytest.mark.parametrize("name", LEARNABLE)
def test_fresh_learnable_member_equals_cosine(name: str) -> None:
    sim = gssf.create_similarity(name, dim=D).double()
    x, y = rand(6, seed=1, dtype=torch.float64), rand(9, seed=2, dtype=torch.float64)
    torch.testing.assert_close(sim(x, y), gssf.create_similarity("cosine")(x, y), rtol=1e-12, atol=1e-12)


def test_one_block_of_size_d_equals_bilinear() -> None:
    blocks = gssf.create_similarity("block_diagonal", dim=D, num_blocks=1).double()
    perturb(blocks, 3)
    bil = gssf.create_similarity("bilinear", dim=D).double()
    with torch.no_grad():
        bil.raw.copy_(blocks.blocks.raw[0])
    x, y = rand(5, seed=4, dtype=torch.float64), rand(8, seed=5, dtype=torch.float64)
    torch.testing.assert_close(blocks(x, y), bil(x, y), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(blocks.weight_matrix(), bil.weight_matrix(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("parameterization", ["full", "scalar"])
def test_blocks_of_size_one_equal_diagonal(parameterization: str, scale: str) -> None:
    blocks = gssf.create_similarity(
        "block_diagonal", dim=D, block_size=1, parameterization=parameterization, scale=scale
    ).double()
    perturb(blocks, 6)
    constrain_parameters(blocks)  # the norm-ball scales keep |a| < 1: weights 1 + a in (0, 2)
    diag = gssf.create_similarity("diagonal", dim=D).double()
    with torch.no_grad():
        if scale == "entrywise":  # 1 + tanh(a) == 2 sigmoid(2a): the same weights in (0, 2)
            diag.diagonal.theta.copy_(2.0 * blocks.blocks.raw.reshape(D))
        else:
            a = blocks.blocks.raw.reshape(D).clamp(-0.999, 0.999)
            blocks.blocks.raw.copy_(a.view_as(blocks.blocks.raw))
            diag.diagonal.set_weights(1.0 + a)
    x, y = rand(5, seed=7, dtype=torch.float64), rand(8, seed=8, dtype=torch.float64)
    torch.testing.assert_close(blocks(x, y), diag(x, y), rtol=1e-12, atol=1e-12)


def test_gssf_with_unit_diagonal_equals_block_diagonal() -> None:
    g = gssf.create_similarity("gssf", dim=D, num_blocks=4).double()
    b = gssf.create_similarity("block_diagonal", dim=D, num_blocks=4).double()
    perturb(b, 9)
    g.blocks.load_state_dict(b.blocks.state_dict())
    x, y = rand(5, seed=10, dtype=torch.float64), rand(8, seed=11, dtype=torch.float64)
    torch.testing.assert_close(g(x, y), b(x, y), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["gssf_dynamic", "gssf_dynamic_mlp"])
def test_dynamic_static_part_shares_terms_and_equals_gssf_when_gates_are_neutral(name: str) -> None:
    dyn = gssf.create_similarity(name, dim=D, num_blocks=4).double()
    with torch.no_grad():
        dyn.diagonal.theta.normal_()
        dyn.blocks.raw.normal_()
    static = dyn.static_part()
    assert static.is_static and static.diagonal is dyn.diagonal
    x, y = rand(5, seed=12, dtype=torch.float64), rand(8, seed=13, dtype=torch.float64)
    # fresh gates: the dynamic part is exactly zero (gssf_dynamic) / every gate exactly 1 (mlp)
    torch.testing.assert_close(dyn(x, y), static(x, y), rtol=1e-12, atol=1e-12)
    if name == "gssf_dynamic":
        with torch.no_grad():
            dyn.gate_diag.normal_(std=0.05)
            dyn.gate_block.normal_(std=0.05)
    else:
        perturb(dyn.gate, 14)
    assert (dyn(x, y) - static(x, y)).abs().max() > 1e-3


def test_dynamic_gates_stay_in_their_bound_and_the_score_in_score_bound() -> None:
    """constrain_ rescales the gates so that sum_k ||M_k|| <= gate_bound; |s| <= score_bound for any pair."""
    dyn = gssf.create_similarity("gssf_dynamic", dim=D, num_blocks=4, hidden=3, gate_bound=0.5).double()
    perturb(dyn, 30, scale=3.0)
    from gssf.losses.base import constrain_parameters

    constrain_parameters(dyn)
    assert float(dyn.gate_norms().detach().sum()) <= 0.5 + 1e-12
    before = dyn.gate_diag.detach().clone()
    constrain_parameters(dyn)  # inside the bound: unchanged
    torch.testing.assert_close(dyn.gate_diag.detach(), before, rtol=0, atol=0)
    x, y = rand(200, seed=31, dtype=torch.float64), rand(300, seed=32, dtype=torch.float64)
    s = dyn(x, y)
    assert float(s.detach().abs().max()) <= dyn.score_bound
    assert float((s - dyn.static_part()(x, y)).detach().abs().max()) <= 0.5 + 1e-12


STATIC = [n for n in gssf.list_similarities() if gssf.get_similarity_class(n).is_static]


@pytest.mark.parametrize("name", STATIC)
def test_fold_inner_product_equals_score(name: str) -> None:
    sim = gssf.create_similarity(name, dim=D).double()
    perturb(sim, 15)
    x, y = rand(7, seed=16, dtype=torch.float64), rand(9, seed=17, dtype=torch.float64)
    torch.testing.assert_close(sim.fold_query(x) @ sim.fold_gallery(y).T, sim(x, y), rtol=1e-12, atol=1e-12)
    if isinstance(sim, BilinearFormMixin):
        xn, yn = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
        if not sim.normalizes:
            xn, yn = x, y
        torch.testing.assert_close(xn @ sim.weight_matrix().to(xn.dtype) @ yn.T, sim(x, y), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["gssf", "block_diagonal", "bilinear", "mahalanobis", "euclidean", "diagonal"])
def test_faiss_index_over_folded_vectors_returns_exhaustive_top10(name: str) -> None:
    dim = 64
    sim = gssf.create_similarity(name, dim=dim)
    perturb(sim, 18, scale=1.0)
    queries, gallery = rand(50, dim, seed=19), rand(2000, dim, seed=20)
    with torch.no_grad():
        q = sim.fold_query(queries).numpy().astype(np.float32)
        g = sim.fold_gallery(gallery).numpy().astype(np.float32)
        exhaustive = torch.topk(sim(queries, gallery), k=10, dim=1).indices.numpy()
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(np.ascontiguousarray(g))
    _, found = index.search(np.ascontiguousarray(q), 10)
    np.testing.assert_array_equal(found, exhaustive)


def test_dynamic_member_refuses_to_fold() -> None:
    dyn = gssf.create_similarity("gssf_dynamic", dim=D)
    assert not dyn.is_static
    with pytest.raises(TypeError, match="pair-conditioned.*static_part"):
        dyn.fold_query(rand(2))
    with pytest.raises(TypeError, match="pair-conditioned"):
        dyn.fold_gallery(rand(2))


@pytest.mark.parametrize("name", gssf.list_similarities())
def test_every_member_is_finite_and_every_parameter_gets_a_gradient(name: str) -> None:
    # cross_attention reads a row as a set of dim-sized elements: with one element its
    # attention is a softmax over one key and its kernel can get no gradient, so use four.
    sim = gssf.create_similarity(name, dim=D // 4 if name == "cross_attention" else D)
    x, y = rand(5, seed=21).requires_grad_(), rand(6, seed=22).requires_grad_()
    out = sim(x, y)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in sim.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all()
    # Zero-initialised factors (the gate's last layer, a low-rank V) block the gradient of
    # their partner at init only: after a move away from init every parameter gets one.
    sim.zero_grad()
    perturb(sim, 23, scale=0.5)
    sim(x, y).square().sum().backward()
    for pname, p in sim.named_parameters():
        assert p.grad.abs().sum() > 0, f"{name}.{pname} has a zero gradient"


@pytest.mark.parametrize("name", gssf.list_similarities())
def test_zero_vector_gives_finite_scores_and_gradients(name: str) -> None:
    sim = gssf.create_similarity(name, dim=D)
    x = torch.zeros(2, D).requires_grad_()
    y = rand(3, seed=24).requires_grad_()
    out = sim(x, y)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["cosine", "gssf", "gssf_dynamic", "bilinear"])
def test_low_precision_inputs_are_scored_in_fp32(name: str, dtype: torch.dtype) -> None:
    sim = gssf.create_similarity(name, dim=D)
    x, y = rand(4, seed=25), rand(5, seed=26)
    out = sim(x.to(dtype), y.to(dtype))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, sim(x.to(dtype).float(), y.to(dtype).float()))


def test_autocast_region_still_scores_in_fp32() -> None:
    sim = gssf.create_similarity("gssf", dim=D)
    x, y = rand(4, seed=27), rand(5, seed=28)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sim(x, y)
        chunks = sim.scores(x, y, chunk_size=3)
    assert out.dtype == torch.float32 and chunks.dtype == torch.float32
    torch.testing.assert_close(out, sim(x, y))


class TestBadInput:
    sim = gssf.create_similarity("gssf", dim=D, num_blocks=4)

    def test_nan_and_inf_rows_are_named(self) -> None:
        x = rand(6)
        x[2, 3] = float("nan")
        x[4, 0] = float("inf")
        with pytest.raises(ValueError, match=r"x has 2 row\(s\) with NaN or Inf values: rows 2, 4"):
            self.sim(x, rand(3))
        with pytest.raises(ValueError, match=r"y has 2 row"):
            self.sim(rand(3), x)

    def test_dimension_mismatch(self) -> None:
        with pytest.raises(ValueError, match="x has 8 features but similarity 'gssf' was built for dim=16"):
            self.sim(rand(3, 8), rand(3))
        with pytest.raises(ValueError, match="x has 8 features but y has 9"):
            gssf.create_similarity("cosine")(rand(3, 8), rand(3, 9))

    def test_wrong_rank(self) -> None:
        with pytest.raises(ValueError, match=r"x must be 2-D .* got shape \(16,\)"):
            self.sim(torch.randn(D), rand(3))
        with pytest.raises(ValueError, match="y must be 2-D"):
            self.sim(rand(3), torch.randn(2, 3, D))

    def test_empty_inputs(self) -> None:
        with pytest.raises(ValueError, match="x is empty"):
            self.sim(torch.zeros(0, D), rand(3))
        with pytest.raises(ValueError, match="y is empty"):
            self.sim.pair(rand(3), torch.zeros(0, D))

    def test_misaligned_pairs(self) -> None:
        with pytest.raises(ValueError, match="aligned rows: x has 3 rows, y has 4"):
            self.sim.pair(rand(3), rand(4))

    def test_integer_input(self) -> None:
        with pytest.raises(TypeError, match="floating-point"):
            self.sim(torch.ones(2, D, dtype=torch.long), rand(2))

    def test_block_count_must_divide_dim(self) -> None:
        with pytest.raises(ValueError, match=r"num_blocks=5 does not divide dim=16; valid block counts: \[1, 2, 4, 8, 16\]"):
            gssf.create_similarity("gssf", dim=16, num_blocks=5)
        with pytest.raises(ValueError, match="block_size=3 does not divide dim=16"):
            gssf.create_similarity("block_diagonal", dim=16, block_size=3)

    def test_default_block_size_is_largest_divisor_up_to_16(self) -> None:
        assert gssf.create_similarity("gssf", dim=1024).blocks.block_size == 16
        assert gssf.create_similarity("gssf", dim=60).blocks.block_size == 15
        assert gssf.create_similarity("gssf", dim=13).blocks.block_size == 13

    def test_bad_constructor_arguments(self) -> None:
        with pytest.raises(ValueError, match="needs dim"):
            gssf.create_similarity("gssf")
        with pytest.raises(ValueError, match="unknown block parameterization 'dense'"):
            gssf.create_similarity("gssf", dim=D, parameterization="dense")
        with pytest.raises(ValueError, match="rank must be an integer in"):
            gssf.create_similarity("gssf", dim=D, num_blocks=4, parameterization="lowrank", rank=9)
        with pytest.raises(ValueError, match="permutation must be a permutation"):
            gssf.create_similarity("gssf", dim=D, permutation=[0] * D)
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            list(self.sim.score_chunks(rand(2), rand(2), chunk_size=0))


def _hinge(scores: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    pos = scores.diagonal()
    mask = torch.eye(scores.shape[0], dtype=torch.bool)
    cost_r = (margin + scores - pos[:, None]).clamp_min(0).masked_fill(mask, 0)
    cost_c = (margin + scores - pos[None, :]).clamp_min(0).masked_fill(mask, 0)
    return cost_r.sum() + cost_c.sum()


def _scale_up_run(score_fn, params, steps: int = 300) -> torch.Tensor:
    """Aligned pairs and a margin of 4: past ranking them right, only larger scores cut the loss.

    After each step the members' projections run, as the trainer runs them.
    """
    x = rand(32, seed=29)
    y = x + 0.8 * rand(32, seed=30)
    opt = torch.optim.Adam(params, lr=0.5)
    for _ in range(steps):
        loss = _hinge(score_fn(x, y), margin=4.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if isinstance(score_fn, torch.nn.Module):
            constrain_parameters(score_fn)
    with torch.no_grad():
        return score_fn(x, y)


def test_scale_control_unbounded_bilinear_grows_past_the_bound() -> None:
    """Control for the test below: without the mechanism the same loss inflates the scores."""
    w = torch.nn.Parameter(torch.eye(D))
    norm = torch.nn.functional.normalize
    scores = _scale_up_run(lambda a, b: norm(a, dim=1) @ w @ norm(b, dim=1).T, [w])
    assert scores.abs().max() > 4 * gssf.create_similarity("bilinear", dim=D).score_bound


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", ["diagonal", "block_diagonal", "gssf", "bilinear", "mahalanobis", "gssf_dynamic"])
def test_scale_stays_bounded_under_a_margin_loss(name: str, scale: str) -> None:
    torch.manual_seed(0)
    kwargs = {"num_blocks": 4, "parameterization": "lowrank", "rank": 3} if name == "block_diagonal" else {}
    if name != "diagonal":
        kwargs["scale"] = scale
    sim = gssf.create_similarity(name, dim=D, **kwargs)
    scores = _scale_up_run(sim, list(sim.parameters()))
    with torch.no_grad():
        probe = sim(rand(200, seed=31), rand(200, seed=32))
    bound = sim.score_bound
    assert scores.abs().max() > 1.1  # the loss did push the scale beyond cosine's range
    assert scores.abs().max() <= bound + 1e-5 and probe.abs().max() <= bound + 1e-5
    if isinstance(sim, BilinearFormMixin):
        assert torch.linalg.matrix_norm(sim.weight_matrix().detach(), ord=2) <= bound + 1e-5


@pytest.mark.parametrize("name", gssf.list_similarities())
def test_streaming_over_raw_gallery_matches_full_in_float32(name: str) -> None:
    """The no-copy streaming path (column scaling by 1/||y||) agrees with the full call."""
    sim = gssf.create_similarity(name, dim=D)
    perturb(sim, 33, scale=0.5)
    x, y = rand(11, seed=34) * 5, rand(23, seed=35) * 0.01
    y[3] = 0.0  # a zero gallery row: eps keeps it finite on both paths
    with torch.no_grad():
        torch.testing.assert_close(sim.scores(x, y, chunk_size=4), sim(x, y), rtol=1e-5, atol=1e-6)


def test_streaming_does_not_copy_the_gallery() -> None:
    """Peak extra memory of streaming stays near one chunk, not a normalised gallery copy."""
    sim = gssf.create_similarity("gssf", dim=D)
    y = rand(5000, seed=36)
    seen = []
    orig = sim._cast_normalize

    def spy(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        seen.append(t.shape[0])
        return orig(t, dtype)

    sim._cast_normalize = spy  # type: ignore[method-assign]
    with torch.no_grad():
        for _ in sim.score_chunks(rand(10, seed=37), y, chunk_size=4):
            pass
    assert max(seen) <= 4  # only query chunks were normalised; the 5000-row gallery never was


def test_overflowing_but_finite_rows_are_accepted_and_bad_rows_found() -> None:
    """The fast finiteness check falls back to a per-row check when the sum overflows."""
    sim = gssf.create_similarity("cosine")
    x = torch.full((3, 8), 6e4, dtype=torch.float16)  # finite; its float32 sum is finite too
    big = torch.full((2, 8), 3e38)  # finite rows whose float32 sum overflows to inf
    assert torch.isfinite(sim(big, big)).all() and torch.isfinite(sim(x, x)).all()
    big[1, 2] = float("-inf")
    with pytest.raises(ValueError, match=r"x has 1 row\(s\) with NaN or Inf values: rows 1"):
        sim(big, rand(2, 8))


@pytest.mark.parametrize("name", gssf.list_similarities())
def test_static_part_is_the_member_itself_or_a_static_similarity(name: str) -> None:
    sim = gssf.create_similarity(name, dim=D)
    part = sim.static_part()
    if sim.is_static:
        assert part is sim
    else:
        assert part.is_static and part is not sim
        shared = {id(p) for p in sim.parameters()}
        assert all(id(p) in shared for p in part.parameters())  # shares, never copies
        sim.eval()
        sim.validate = False
        part = sim.static_part()
        assert not part.training and part.validate is False


@pytest.mark.parametrize("name", [n for n in LEARNABLE if gssf.get_similarity_class(n).gallery_fold_is_unit])
def test_the_cosine_index_serves_a_learned_member_through_folded_queries(name: str) -> None:
    """The frozen setting: the gallery index of a cosine model is not rebuilt for a learned static member."""
    dim = 64
    sim = gssf.create_similarity(name, dim=dim)
    perturb(sim, 21, scale=1.0)
    queries, gallery = rand(40, dim, seed=22), rand(1500, dim, seed=23)
    cosine_index = faiss.IndexFlatIP(dim)  # what the cosine deployment built: unit gallery rows
    cosine_index.add(np.ascontiguousarray(torch.nn.functional.normalize(gallery, dim=1).numpy()))
    with torch.no_grad():
        scores, found = cosine_index.search(np.ascontiguousarray(sim.fold_query(queries).numpy()), 10)
        exact = sim(queries, gallery)
    np.testing.assert_array_equal(found, torch.topk(exact, k=10, dim=1).indices.numpy())
    np.testing.assert_allclose(scores, torch.topk(exact, k=10, dim=1).values.numpy(), rtol=1e-5, atol=1e-5)


def test_the_protocol_is_checked_when_a_member_class_is_created() -> None:
    from gssf.similarity import BilinearFormMixin, Similarity

    with pytest.raises(TypeError, match="overrides _fold_gallery"):

        class _Unit(BilinearFormMixin, Similarity):
            def _fold_gallery(self, y: torch.Tensor) -> torch.Tensor:
                return 2 * y

    with pytest.raises(TypeError, match="must write _score_matrix, _score_pairs"):

        class _Dynamic(Similarity):
            is_static = False

    with pytest.raises(TypeError, match="normalises its rows"):

        class _Raw(BilinearFormMixin, Similarity):
            normalizes = False

    assert gssf.create_similarity("dot").score_bound == float("inf")
    assert gssf.create_similarity("cosine").score_bound == 1.0


@pytest.mark.parametrize("name", gssf.list_similarities())
def test_score_candidates_equals_the_matrix_entries(name: str) -> None:
    dim = D // 4 if name == "cross_attention" else D
    sim = gssf.create_similarity(name, dim=dim).double()
    perturb(sim, 31, scale=0.3)
    x, cand = rand(4, dim, seed=32).double(), rand(12, dim, seed=33).double().view(4, 3, dim)
    want = torch.stack([sim(x[i : i + 1], cand[i])[0] for i in range(4)])
    torch.testing.assert_close(sim.score_candidates(x, cand), want)
    with pytest.raises(gssf.errors.BadTensorError, match="candidates"):
        sim.score_candidates(x, cand[:3])
