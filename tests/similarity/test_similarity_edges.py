"""The edges of the similarity family: huge and tiny rows, bad dtypes, overflowing dot products, dtype following.

Every check loops over the registry, so a new member is covered without editing this file.
"""
from __future__ import annotations

from typing import Callable, Dict, List

import pytest
import torch
import torch.nn.functional as F

import gssf
from gssf.errors import BadTensorError, GssfError, ScoreOverflowError, TensorTypeError
from gssf.similarity import BilinearFormMixin, Similarity
from gssf.similarity.base import _unit_rows, _unit_rows_rescaled

D = 8
NAMES = gssf.list_similarities()
NORMALISING = [n for n in NAMES if gssf.get_similarity_class(n).normalizes]


def member(name: str, dtype: torch.dtype = torch.float32, **kwargs) -> Similarity:
    """A member moved off its initial point (so learnable terms matter), in ``dtype``."""
    sim = gssf.create_similarity(name, dim=D, **kwargs).to(dtype)
    gen = torch.Generator().manual_seed(len(name))
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return sim


def unit_rows(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n, D)`` rows of norm 1: scaled by ``s`` their largest entry stays below ``s``."""
    t = torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return F.normalize(t, dim=1).to(dtype)


def every_score(sim: Similarity, x: torch.Tensor, y: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The scores of ``x`` against ``y`` by every public route: matrix, pairs, streaming, folding."""
    with torch.no_grad():
        out = {"forward": sim(x, y), "pair": sim.pair(x, y[: len(x)]), "scores": sim.scores(x, y, chunk_size=2)}
        if sim.is_static:
            out["fold"] = sim.fold_query(x) @ sim.fold_gallery(y).T
    return out


def assert_same_scores(got: Dict[str, torch.Tensor], want: Dict[str, torch.Tensor], tol: float) -> None:
    for route, value in want.items():
        torch.testing.assert_close(got[route], value, rtol=tol, atol=tol, msg=lambda m: f"{route}: {m}")


# ---------------------------------------------------------------------------- magnitudes
@pytest.mark.parametrize("name", NORMALISING)
@pytest.mark.parametrize(
    "dtype, scale", [(torch.float32, 2e19), (torch.float32, 1e30), (torch.float32, 3e38), (torch.float64, 1e200),
                     (torch.float64, 1e300)],
)
def test_huge_rows_score_as_their_unit_vectors(name: str, dtype: torch.dtype, scale: float) -> None:
    """Squared norms of these rows overflow (unit rows times 2e19 have ``||x||^2 = 4e38``, above
    float32's max); every route still scores them as their unit vectors."""
    sim = member(name, dtype)
    x, y = unit_rows(4, 1, dtype), unit_rows(5, 2, dtype)
    want = every_score(sim, x, y)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert_same_scores(every_score(sim, x * scale, y), want, tol)
    assert_same_scores(every_score(sim, x, y * scale), want, tol)  # the streamed gallery too
    mixed = y.clone()
    mixed[1] *= scale  # one huge row among ordinary ones
    assert_same_scores(every_score(sim, x, mixed), want, tol)


@pytest.mark.parametrize("name", NORMALISING)
def test_tiny_rows_above_a_tiny_eps_score_as_their_unit_vectors(name: str) -> None:
    """With eps=1e-37 a row of norm 1e-25 must be normalised, but its squares underflow float32."""
    sim = member(name, eps=1e-37)
    x, y = unit_rows(4, 3), unit_rows(5, 4)
    want = every_score(sim, x, y)
    assert_same_scores(every_score(sim, x * 1e-25, y * 1e-25), want, 1e-5)


@pytest.mark.parametrize("name", NORMALISING)
def test_zero_rows_keep_the_eps_behaviour(name: str) -> None:
    """A zero row normalises to zero (score of a zero vector), also next to a huge row."""
    sim = member(name, torch.float64)
    y = unit_rows(5, 6, torch.float64)
    zero = torch.zeros(2, D, dtype=torch.float64)
    unit = unit_rows(1, 7, torch.float64)
    want = sim(torch.cat([unit, zero]), y)
    huge_and_zero = torch.cat([unit * 1e300, zero])  # takes the rescaled path for every row
    torch.testing.assert_close(sim(huge_and_zero, y), want, rtol=0, atol=1e-12)
    assert torch.equal(_unit_rows(huge_and_zero, 1e-8)[1:], zero)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ordinary_rows_normalise_to_the_same_bits_on_both_paths(dtype: torch.dtype) -> None:
    """The common path is unchanged, and the rescaled path is exact (power-of-two scale)."""
    gen = torch.Generator().manual_seed(8)
    t = torch.randn(300, 64, generator=gen, dtype=dtype) * torch.logspace(-6, 6, 300, dtype=dtype)[:, None]
    t[7] = 0.0
    direct = t / torch.linalg.vector_norm(t, dim=1, keepdim=True).clamp_min(1e-8)
    assert torch.equal(_unit_rows(t, 1e-8), direct)
    assert torch.equal(_unit_rows_rescaled(t, 1e-8), direct)


# ---------------------------------------------------------------------------- gradients
def test_rescaled_normalisation_passes_gradcheck() -> None:
    gen = torch.Generator().manual_seed(9)
    t = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    t[1] *= 1e-3
    t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: _unit_rows_rescaled(a, 1e-8), (t,))
    assert torch.autograd.gradcheck(lambda a: _unit_rows(a, 1e-8), (t,))


@pytest.mark.parametrize("name", NAMES)
def test_scores_pass_gradcheck(name: str) -> None:
    sim = member(name, torch.float64)
    x = unit_rows(2, 10, torch.float64).mul(3.0).requires_grad_(True)
    y = unit_rows(3, 11, torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: sim(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: sim.pair(a, b), (x, y[:2]))


@pytest.mark.parametrize("name", NORMALISING)
def test_gradients_of_huge_rows_are_the_scaled_gradients_of_unit_rows(name: str) -> None:
    """``s(c x, y) = s(x, y)``, so the gradient at ``c x`` is the gradient at ``x`` divided by ``c``."""
    sim = member(name, torch.float64)
    y = unit_rows(5, 12, torch.float64)
    grads = []
    for c in (1.0, 1e250):
        x = (unit_rows(4, 13, torch.float64) * c).requires_grad_(True)
        sim(x, y).sum().backward()
        grads.append(x.grad * c)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_zero_rows_get_finite_gradients(name: str) -> None:
    sim = member(name, torch.float64)
    x = unit_rows(3, 14, torch.float64)
    x[1] = 0.0
    for other in (None, 1e300):  # the direct path, and the rescaled one (a huge row elsewhere)
        if other is not None and not sim.normalizes:
            continue  # dot scores raw features: a 1e300 row is an overflow, tested below
        a = x.clone()
        if other is not None:
            a[0] *= other
        a.requires_grad_(True)
        y = torch.cat([unit_rows(2, 15, torch.float64), torch.zeros(1, D, dtype=torch.float64)]).requires_grad_(True)
        (sim(a, y).sum() + sim.pair(a, y).sum()).backward()
        assert torch.isfinite(a.grad).all() and torch.isfinite(y.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in sim.parameters() if p.grad is not None)
        sim.zero_grad()


# ---------------------------------------------------------------------------- dtypes
BAD_DTYPES = [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64, torch.complex128]


def _entry_points(sim: Similarity) -> Dict[str, Callable[[torch.Tensor, torch.Tensor], object]]:
    """Each public entry point as ``f(x, y)``; folding takes only its own argument."""
    calls: Dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
        "forward": lambda x, y: sim(x, y),
        "pair": lambda x, y: sim.pair(x, y),
        # no iteration: the inputs are checked when score_chunks is called
        "score_chunks": lambda x, y: sim.score_chunks(x, y, chunk_size=2),
        "scores": lambda x, y: sim.scores(x, y),
    }
    if sim.is_static:
        calls["fold_query"] = lambda x, y: sim.fold_query(x)
        calls["fold_gallery"] = lambda x, y: sim.fold_gallery(y)
    return calls


@pytest.mark.parametrize("name", NAMES)
def test_non_real_dtypes_are_refused_by_every_entry_point(name: str) -> None:
    sim = member(name)
    good = unit_rows(3, 16)
    checked: List[str] = []
    for entry, call in _entry_points(sim).items():
        for dtype in BAD_DTYPES:
            bad = torch.ones(3, D, dtype=dtype)
            for arg, args in (("x", (bad, good)), ("y", (good, bad))):
                if (entry, arg) in {("fold_query", "y"), ("fold_gallery", "x")}:
                    continue  # that argument is not used by this entry point
                with pytest.raises(TensorTypeError, match=rf"^{arg} must be a real floating-point .* got {dtype}$"):
                    call(*args)
                checked.append(entry)
    assert set(checked) == set(_entry_points(sim))
    assert issubclass(TensorTypeError, GssfError) and issubclass(TensorTypeError, ValueError)
    assert issubclass(TensorTypeError, TypeError)  # code written against the older TypeError keeps working


def test_other_bad_inputs_are_named_errors() -> None:
    sim = member("gssf")
    nan = unit_rows(3, 17)
    nan[1, 0] = float("nan")
    cases = [
        (lambda: sim(nan, unit_rows(2, 18)), BadTensorError, r"x has 1 row\(s\) with NaN"),
        (lambda: sim(unit_rows(2, 18), torch.ones(2, D + 1)), BadTensorError, "y has 9 features"),
        (lambda: sim.pair(unit_rows(2, 18), unit_rows(3, 19)), BadTensorError, "aligned rows"),
        (lambda: sim.score_chunks(torch.ones(D), unit_rows(2, 18)), BadTensorError, "x must be 2-D"),
        (lambda: sim([[1.0] * D], unit_rows(2, 18)), TensorTypeError, "x must be a torch.Tensor, got list"),
        (lambda: sim.score_chunks(unit_rows(2, 18), unit_rows(2, 18), chunk_size=0), GssfError, "chunk_size"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


# ---------------------------------------------------------------------------- dot overflow
@pytest.mark.parametrize("dtype, value", [(torch.float32, 1e19), (torch.float16, 6e4), (torch.float64, 1e160)])
def test_dot_reports_overflow_instead_of_returning_inf(dtype: torch.dtype, value: float) -> None:
    dot = gssf.create_similarity("dot")
    x = torch.full((3, D), value, dtype=dtype)
    y = torch.ones(4, D, dtype=dtype)
    y[2] = value
    if dtype == torch.float16:  # fp16 features are scored in float32: 6e4 * 6e4 * 8 is finite
        assert torch.isfinite(dot(x, y)).all() and torch.isfinite(dot.scores(x, y)).all()
        return
    for route, call in {"forward": lambda: dot(x, y), "scores": lambda: dot.scores(x, y, chunk_size=1)}.items():
        with pytest.raises(ScoreOverflowError, match=r"'dot'.*overflow.*first at x row 0, y row 2"):
            call()
    with pytest.raises(ScoreOverflowError, match="first at pair 2"):
        dot.pair(x, y[:3])
    assert issubclass(ScoreOverflowError, GssfError) and issubclass(ScoreOverflowError, OverflowError)


def test_dot_with_large_but_representable_scores_is_exact() -> None:
    """No false alarm near the top of the range: 8 * (1.4e19)^2 = 1.6e39 would overflow, 8 * 6e18^2 does not."""
    dot = gssf.create_similarity("dot")
    x = torch.full((2, D), 6e18)
    want = torch.full((2, 2), 8 * 6e18 * 6e18, dtype=torch.float64)
    torch.testing.assert_close(dot(x, x).double(), want, rtol=1e-6, atol=0)
    torch.testing.assert_close(dot.scores(x, x, chunk_size=1).double(), want, rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------- dtype following
def test_weight_matrix_follows_the_module_dtype_and_device() -> None:
    checked = []
    for name in NAMES:
        sim = gssf.create_similarity(name, dim=D)
        if not isinstance(sim, BilinearFormMixin):
            continue
        assert sim.weight_matrix().dtype == torch.float32
        assert sim.double().weight_matrix().dtype == torch.float64, name
        assert sim.to(torch.float16).weight_matrix().dtype == torch.float16, name
        assert sim.to("meta").weight_matrix().device.type == "meta", name
        checked.append(name)
    assert {"cosine", "dot", "diagonal", "block_diagonal", "gssf", "bilinear"} <= set(checked)


def test_parameter_free_members_still_save_nothing() -> None:
    """The dtype anchor of cosine/dot is not saved: their checkpoints stay empty and old ones load."""
    for name in ("cosine", "dot"):
        sim = gssf.create_similarity(name, dim=D)
        assert sim.state_dict() == {}
        sim.load_state_dict({})
