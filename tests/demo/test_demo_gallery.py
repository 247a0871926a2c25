"""Which test queries the side-by-side retrieval gallery of the demo shows."""
from __future__ import annotations

import torch

from gssf.demo.run import choose_queries


def _ranks(*values: int) -> torch.Tensor:
    return torch.tensor(values)


def test_both_sides_show_and_near_hits_come_first() -> None:
    gssf = _ranks(50, 3, 9, 40, 2, 7, 1)
    cosine = _ranks(60, 4, 1, 30, 5, 20, 1)
    valid = torch.ones(7, dtype=torch.bool)
    # gssf better: 0 (miss for both), 1 (hit), 4 (hit), 5 (miss at k=5) -> hits 1, 4 first
    # cosine better: 2 (hit), 3 (miss) -> 2, then 3
    assert choose_queries(gssf, cosine, valid, k=5, per_side=2) == [1, 4, 2, 3]
    assert choose_queries(gssf, cosine, valid, k=5, per_side=1) == [1, 2]


def test_too_few_differences_are_filled_in_query_order_and_invalid_queries_are_skipped() -> None:
    same = _ranks(1, 2, 3, 4)
    valid = torch.tensor([False, True, True, True])
    assert choose_queries(same, same, valid, k=5, per_side=2) == [1, 2, 3]
    better = _ranks(1, 1, 3, 4)
    assert choose_queries(better, same, valid, k=5, per_side=2) == [1, 2, 3]  # query 1: gssf better, then fill
    assert choose_queries(_ranks(1, 9), _ranks(9, 9), torch.tensor([False, True]), k=5, per_side=1) == [1]
