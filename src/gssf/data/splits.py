"""Deterministic splits derived from item names.

A split never depends on file-system order, the machine, or a random seed: each item
(or identity, or class) goes to the split where the SHA-1 of its stable key falls.
"""
from __future__ import annotations

import hashlib
from typing import Sequence, Tuple

#: (split, fraction) pairs; fractions sum to 1.
Fractions = Sequence[Tuple[str, float]]

DEFAULT_FRACTIONS: Fractions = (("train", 0.6), ("val", 0.1), ("test", 0.3))

#: Changing the salt reshuffles every split; it is part of the documented protocol.
SALT = "gssf-split-v1"


def hash_unit(key: str, salt: str = SALT) -> float:
    """Map ``key`` to a number in [0, 1) that is uniform over keys and stable forever."""
    digest = hashlib.sha1(f"{salt}\0{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(key: str, fractions: Fractions = DEFAULT_FRACTIONS, salt: str = SALT) -> str:
    """The split that ``key`` belongs to under ``fractions``."""
    total = sum(f for _, f in fractions)
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {total}")
    u = hash_unit(key, salt)
    acc = 0.0
    for name, frac in fractions:
        acc += frac
        if u < acc:
            return name
    return fractions[-1][0]
