"""Every member against a slow, obviously-correct float64 reference.

The references rebuild each matrix entry by entry from the raw parameters (not through
the library's ``dense()``/``weight_matrix()``) and score pairs in a Python loop.
"""
from __future__ import annotations

import math

import pytest
import torch

import gssf
from gssf.similarity import BilinearFormMixin, BlockTerm, DiagonalTerm

D = 12


def perturb(sim: torch.nn.Module, seed: int = 0, scale: float = 0.7) -> None:
    """Move every parameter away from its initial value so no term is trivially zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sim.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def unit(v: torch.Tensor) -> torch.Tensor:
    n = math.sqrt(sum(float(a) ** 2 for a in v))
    return v / max(n, 1e-8)


def ref_diag_weights(term: DiagonalTerm) -> list:
    out = []
    for t in term.theta.tolist():
        out.append(term.w_max / (1.0 + math.exp(-(t + math.log(1.0 / (term.w_max - 1.0))))))
    return out


def ref_block_matrix(term: BlockTerm) -> torch.Tensor:
    """The (D, D) block matrix built entry by entry in permuted coordinates."""
    d, b = term.dim, term.block_size
    perm = term.permutation.tolist() if term.permutation is not None else list(range(d))
    m = torch.zeros(d, d, dtype=torch.float64)
    # "entrywise": the first release's bounded map; the norm-ball scales use the parameters
    # as they are (they are projected after optimizer steps, not in the forward pass).
    entrywise = term.scale == "entrywise"
    squash = (lambda a: term.bound / b * math.tanh(a)) if entrywise else (lambda a: a)  # noqa: E731
    for k in range(term.num_blocks):
        if term.parameterization == "lowrank":
            u, v = term.u[k].double(), term.v[k].double()
            fro = float(u.norm()) * float(v.norm())
            scale = min(1.0, term.bound / fro) if fro > 0 and entrywise else 1.0
        for i in range(b):
            for j in range(b):
                if term.parameterization == "full":
                    val = squash(float(term.raw[k, i, j]))
                elif term.parameterization == "scalar":
                    val = squash(float(term.raw[k]))
                else:
                    val = scale * sum(float(u[i, r]) * float(v[j, r]) for r in range(term.rank))
                m[perm[k * b + i], perm[k * b + j]] = val
    return m


def ref_matrix(sim: gssf.Similarity) -> torch.Tensor:
    """Explicit M of a bilinear-form member, from raw parameters."""
    name = sim.name
    eye = torch.eye(D, dtype=torch.float64)
    if name in ("cosine", "dot"):
        return eye
    if name == "diagonal":
        return torch.diag(torch.tensor(ref_diag_weights(sim.diagonal), dtype=torch.float64))
    if name == "block_diagonal":
        return eye + ref_block_matrix(sim.blocks)
    if name in ("gssf", "gssf_dynamic", "gssf_dynamic_mlp"):
        return torch.diag(torch.tensor(ref_diag_weights(sim.diagonal), dtype=torch.float64)) + ref_block_matrix(
            sim.blocks
        )
    if name in ("bilinear", "mahalanobis"):
        m = eye.clone()
        for i in range(D):
            for j in range(D):
                a = float(sim.raw[i, j])
                m[i, j] += sim.bound / D * math.tanh(a) if sim.scale == "entrywise" else a
        return m
    raise AssertionError(name)


def ref_pair(sim: gssf.Similarity, x: torch.Tensor, y: torch.Tensor) -> float:
    """Score of one pair, from the definitions."""
    name = sim.name
    if name == "dot":
        return sum(float(a) * float(b) for a, b in zip(x, y))
    xn, yn = unit(x.double()), unit(y.double())
    if name == "euclidean":
        return -sum((float(a) - float(b)) ** 2 for a, b in zip(xn, yn))
    m = ref_matrix(sim)
    if name == "mahalanobis":
        diff = xn - yn
        proj = [sum(float(diff[i]) * float(m[i, j]) for i in range(D)) for j in range(D)]
        return 1.0 - 0.5 * sum(p * p for p in proj)
    if name == "gssf_dynamic":
        # s = x^T M0 y + sum_k tanh(D x^T diag(u_k) y + c_k) x^T (diag(v_k) + B scaled per block by g_k) y
        bm = ref_block_matrix(sim.blocks)
        w = ref_diag_weights(sim.diagonal)
        b = sim.blocks.block_size
        perm = sim.blocks.permutation.tolist() if sim.blocks.permutation is not None else list(range(D))
        block_of = {c: k for k in range(sim.blocks.num_blocks) for c in perm[k * b : (k + 1) * b]}
        s = sum(float(xn[i]) * (w[i] * (i == j) + float(bm[i, j])) * float(yn[j]) for i in range(D) for j in range(D))
        for k in range(sim.hidden):
            pre = D * sum(float(sim.gate_in[k, c]) * float(xn[c]) * float(yn[c]) for c in range(D))
            a = math.tanh(pre + float(sim.gate_bias[k]))
            mk = sum(float(sim.gate_diag[k, c]) * float(xn[c]) * float(yn[c]) for c in range(D))
            mk += sum(float(sim.gate_block[k, block_of[i]]) * float(xn[i]) * float(bm[i, j]) * float(yn[j])
                      for i in range(D) for j in range(D) if bm[i, j] != 0)  # fmt: skip
            s += a * mk
        return s
    if name == "gssf_dynamic_mlp":
        h = xn * yn
        lin1, lin2 = sim.gate[0], sim.gate[2]
        z = lin2(torch.relu(lin1(h.to(lin1.weight.dtype)))).double()
        gates = [2.0 / (1.0 + math.exp(-float(v))) for v in z]
        w = ref_diag_weights(sim.diagonal)
        s = sum(gates[c] * w[c] * float(h[c]) for c in range(D))
        bm = ref_block_matrix(sim.blocks)
        b = sim.blocks.block_size
        perm = sim.blocks.permutation.tolist() if sim.blocks.permutation is not None else list(range(D))
        for k in range(sim.blocks.num_blocks):
            chans = perm[k * b : (k + 1) * b]
            t = sum(float(xn[i]) * float(bm[i, j]) * float(yn[j]) for i in chans for j in chans)
            s += gates[D + k] * t
        return s
    return sum(float(xn[i]) * float(m[i, j]) * float(yn[j]) for i in range(D) for j in range(D))


CONFIGS = [
    ("cosine", {}),
    ("dot", {}),
    ("euclidean", {}),
    ("diagonal", {}),
    ("bilinear", {}),
    ("mahalanobis", {}),
    ("block_diagonal", {"num_blocks": 3}),
    ("block_diagonal", {"block_size": 4, "parameterization": "lowrank", "rank": 2}),
    ("block_diagonal", {"num_blocks": 4, "parameterization": "scalar"}),
    ("gssf", {"num_blocks": 3}),
    ("gssf", {"num_blocks": 2, "parameterization": "lowrank", "rank": 3}),
    ("gssf", {"num_blocks": 6, "parameterization": "scalar"}),
    ("gssf", {"num_blocks": 3, "permutation": torch.randperm(D, generator=torch.Generator().manual_seed(3))}),
    ("gssf_dynamic", {"num_blocks": 3, "hidden": 5}),
    ("gssf_dynamic", {"num_blocks": 4, "parameterization": "lowrank", "rank": 1, "hidden": 4}),
    ("gssf_dynamic", {"num_blocks": 3, "hidden": 2, "permutation": torch.randperm(D, generator=torch.Generator().manual_seed(4))}),
    ("gssf_dynamic_mlp", {"num_blocks": 3, "hidden": 5}),
    ("gssf_dynamic_mlp", {"num_blocks": 4, "parameterization": "lowrank", "rank": 1, "hidden": 4}),
    # the first release's entrywise scale mechanism
    ("gssf", {"num_blocks": 3, "scale": "entrywise"}),
    ("block_diagonal", {"block_size": 4, "parameterization": "lowrank", "rank": 2, "scale": "entrywise"}),
    ("gssf", {"num_blocks": 6, "parameterization": "scalar", "scale": "entrywise"}),
    ("bilinear", {"scale": "entrywise"}),
    ("mahalanobis", {"scale": "frobenius"}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items() if k != 'permutation') or 'default'}"
       + ("-perm" if "permutation" in kw else "") for n, kw in CONFIGS]


def build(name: str, kwargs: dict, seed: int = 0) -> gssf.Similarity:
    sim = gssf.create_similarity(name, dim=D, **kwargs).double()
    perturb(sim, seed)
    return sim


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_matrix_matches_loop_reference(name: str, kwargs: dict) -> None:
    sim = build(name, kwargs)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, D, generator=g, dtype=torch.float64) * 3
    y = torch.randn(5, D, generator=g, dtype=torch.float64)
    got = sim(x, y)
    assert got.shape == (4, 5) and got.dtype == torch.float64
    with torch.no_grad():
        want = torch.tensor([[ref_pair(sim, x[i], y[j]) for j in range(5)] for i in range(4)], dtype=torch.float64)
        inference = sim(x, y)  # without autograd (gssf_dynamic: sigmoid-form gates, preallocated result)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(inference, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_weight_matrix_matches_reference(name: str, kwargs: dict) -> None:
    sim = build(name, kwargs)
    if not isinstance(sim, BilinearFormMixin):
        assert name in ("euclidean", "mahalanobis", "gssf_dynamic", "gssf_dynamic_mlp")
        return
    with torch.no_grad():
        torch.testing.assert_close(sim.weight_matrix().double(), ref_matrix(sim), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_pair_equals_matrix_diagonal(name: str, kwargs: dict) -> None:
    sim = build(name, kwargs, seed=2)
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(9, D, generator=g), torch.randn(9, D, generator=g)
    torch.testing.assert_close(sim.float().pair(x, y), torch.diagonal(sim.float()(x, y)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("chunk", [1, 3, 4, 10, 64])
def test_chunked_equals_full(name: str, kwargs: dict, chunk: int) -> None:
    sim = build(name, kwargs, seed=4)
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(10, D, generator=g, dtype=torch.float64), torch.randn(7, D, generator=g, dtype=torch.float64)
    full = sim(x, y)
    blocks = list(sim.score_chunks(x, y, chunk_size=chunk))
    assert [s for s, _ in blocks] == list(range(0, 10, chunk))
    assert all(b.shape[0] <= chunk and b.shape[1] == 7 for _, b in blocks)
    torch.testing.assert_close(sim.scores(x, y, chunk_size=chunk), full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, budget", [("gssf_dynamic", 13 * 5), ("gssf_dynamic", 13), ("gssf_dynamic_mlp", D * 5)])
def test_dynamic_pair_budget_chunks_equal_unchunked(name: str, budget: int) -> None:
    """The pairwise work is split by pair_budget; any budget gives the same matrix."""
    big = gssf.create_similarity(name, dim=D, num_blocks=3, hidden=6, pair_budget=10**9).double()
    perturb(big, 7)
    small = gssf.create_similarity(name, dim=D, num_blocks=3, hidden=6, pair_budget=budget).double()
    small.load_state_dict(big.state_dict())
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(13, D, generator=g, dtype=torch.float64), torch.randn(11, D, generator=g, dtype=torch.float64)
    reference = big(x, y)
    torch.testing.assert_close(small(x, y), reference, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the inference path writes chunks into a preallocated matrix
        torch.testing.assert_close(small(x, y), reference, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(big(x, y), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_gradcheck(name: str, kwargs: dict) -> None:
    sim = gssf.create_similarity(name, dim=D, **kwargs).double()
    perturb(sim, 9, scale=0.3)
    g = torch.Generator().manual_seed(10)
    x = torch.randn(3, D, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, D, generator=g, dtype=torch.float64, requires_grad=True)
    params = [p for p in sim.parameters()]
    assert torch.autograd.gradcheck(lambda a, b, *ps: sim(a, b), (x, y, *params), eps=1e-6, atol=1e-5)
