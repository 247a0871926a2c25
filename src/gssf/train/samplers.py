"""Deterministic batch samplers whose order is a function of ``(seed, epoch)`` only.

Nothing is carried between epochs, so a resumed run rebuilds the exact batches of the
interrupted epoch and skips those already done; every data-parallel process builds the
same global batches and takes its own slice.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import Tensor

__all__ = ["epoch_generator", "RandomBatchSampler", "PKBatchSampler"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, epoch)``."""
    g = torch.Generator()
    # Distinct, well-spread seeds per (seed, epoch) pair; any injective map works.
    g.manual_seed((int(seed) * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63 - 1))
    return g


class RandomBatchSampler:
    """Shuffled batches of indices ``0..n-1``; a new permutation each epoch.

    Args:
        n: number of items.
        batch_size: items per (global) batch.
        seed: base seed.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, drop_last: bool = True) -> None:
        if n <= 0:
            raise ValueError(f"cannot sample batches from {n} items")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        if drop_last and n < batch_size:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {n} training items and drop_last is on: "
                "no batch would be left; lower train.batch_size or set train.drop_last=false"
            )

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def batches(self, epoch: int) -> List[Tensor]:
        perm = torch.randperm(self.n, generator=epoch_generator(self.seed, epoch))
        out = list(perm.split(self.batch_size))
        if self.drop_last and out and out[-1].numel() < self.batch_size:
            out.pop()
        return out


class PKBatchSampler:
    """Identity-balanced batches: ``P`` identities x ``K`` instances (re-identification).

    Each epoch, every identity's items are shuffled and cut into groups of ``K`` (an
    identity with fewer than ``K`` items is sampled with replacement up to ``K``; leftover
    items short of a full group are dropped for the epoch); the groups are shuffled and
    packed ``P`` at a time, round-robin over identities so that a batch holds ``P``
    distinct identities while enough identities have groups left. Identities with a single item give no positive pair and are skipped.

    Args:
        labels: identity of each item, ``(N,)``.
        batch_size: ``P * K``; must be a multiple of ``instances``.
        instances: ``K``.
        seed: base seed.
    """

    def __init__(self, labels: Sequence[int], batch_size: int, instances: int = 4, seed: int = 0) -> None:
        labels_t = torch.as_tensor(labels, dtype=torch.long).flatten()
        if instances < 2:
            raise ValueError(f"instances (K) must be >= 2 to form positive pairs, got {instances}")
        if batch_size % instances:
            raise ValueError(f"batch_size={batch_size} must be a multiple of instances K={instances}")
        self.p, self.k, self.seed = batch_size // instances, instances, seed
        if self.p < 2:
            raise ValueError(f"batch_size={batch_size} holds fewer than 2 identities of K={instances}: no negatives")
        ids, inverse, counts = torch.unique(labels_t, return_inverse=True, return_counts=True)
        order = torch.argsort(inverse, stable=True)
        groups = order.split(counts.tolist())
        self.groups = [g for g, c in zip(groups, counts.tolist()) if c >= 2]
        if len(self.groups) < self.p:
            raise ValueError(
                f"only {len(self.groups)} identities have >= 2 items; a batch needs P={self.p} "
                f"(batch_size={batch_size} / K={instances})"
            )

    def batches(self, epoch: int) -> List[Tensor]:
        g = epoch_generator(self.seed, epoch)
        chunks: List[List[Tensor]] = []  # per identity, its K-sized groups
        for items in self.groups:
            items = items[torch.randperm(items.numel(), generator=g)]
            if items.numel() < self.k:
                extra = items[torch.randint(items.numel(), (self.k - items.numel(),), generator=g)]
                items = torch.cat([items, extra])
            n_full = items.numel() // self.k
            chunks.append(list(items[: n_full * self.k].split(self.k)))
        # Round-robin over shuffled identities: consecutive groups come from distinct identities.
        ident_order = torch.randperm(len(chunks), generator=g).tolist()
        flat: List[Tensor] = []
        while any(chunks[i] for i in ident_order):
            for i in ident_order:
                if chunks[i]:
                    flat.append(chunks[i].pop(0))
        batches = [torch.cat(flat[j : j + self.p]) for j in range(0, len(flat) - self.p + 1, self.p)]
        return batches

    def __len__(self) -> int:
        return len(self.batches(0))
