"""Data-parallel helpers: process-group setup, an all-gather that keeps gradients, gradient averaging.

Launch with ``torchrun --nproc_per_node N -m gssf.cli.main train CONFIG`` (gloo on CPU,
NCCL on GPU). Each process embeds its slice of the global batch; the embeddings of all
processes are gathered (gradients flow back to each local slice) so every process sees
the whole batch as in-batch negatives and computes the same loss as one process with
the whole batch. Gradients are then averaged across processes.

Why the averaged gradient is the single-process gradient: every process computes the
same loss ``L`` on the gathered batch. The backward of :func:`all_gather_with_grad`
sums the incoming gradients of all processes (``W`` identical copies) for the local
slice, so process ``r`` holds ``W * dL/dθ`` restricted to its own samples for the tower
parameters, and the full ``dL/dθ`` for the similarity (applied after the gather).
Averaging over the ``W`` processes gives exactly ``dL/dθ`` for both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from gssf.utils.device import resolve_device

__all__ = [
    "DistEnv",
    "init_distributed",
    "resolve_device",
    "cleanup_distributed",
    "is_distributed",
    "all_gather_with_grad",
    "all_gather_nograd",
    "average_gradients",
    "broadcast_object",
    "barrier",
    "shard_bounds",
]


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size``, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1).

    Uses NCCL for CUDA devices and gloo otherwise. Without ``WORLD_SIZE`` (or with 1)
    this is a single process and no group is created. A group that already exists (a
    test that initialised it) is reused and not destroyed by :func:`cleanup_distributed`.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        dev = resolve_device(device, local, where="config key train.device")
        return DistEnv(rank, world, local, dev, owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(device=resolve_device(device, 0, where="config key train.device"))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local, where="config key train.device")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(rank, world, local, dev, owns_group=True)


def cleanup_distributed(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard_bounds(n: int, rank: int, world_size: int) -> tuple:
    """``(start, stop)`` of process ``rank``'s contiguous slice of ``n`` items (sizes differ by <= 1)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _gather_sizes(n: int, device: torch.device) -> List[int]:
    t = torch.tensor([n], dtype=torch.long, device=device)
    out = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [int(x.item()) for x in out]


def _padded_gather(t: Tensor, sizes: List[int]) -> List[Tensor]:
    largest = max(sizes)
    if t.shape[0] < largest:
        pad = t.new_zeros((largest - t.shape[0],) + tuple(t.shape[1:]))
        t = torch.cat([t, pad], dim=0)
    out = [torch.empty_like(t) for _ in sizes]
    dist.all_gather(out, t.contiguous())
    return [o[:n] for o, n in zip(out, sizes)]


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: concatenate every process's rows. Backward: sum over processes, keep own rows."""

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:  # type: ignore[override]
        sizes = _gather_sizes(t.shape[0], t.device)
        rank = dist.get_rank()
        ctx.start = sum(sizes[:rank])
        ctx.stop = ctx.start + sizes[rank]
        return torch.cat(_padded_gather(t, sizes), dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        # all_reduce (not reduce_scatter): gloo has no reduce_scatter, and uneven slices are simple this way.
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop]


def all_gather_with_grad(t: Tensor) -> Tensor:
    """Rows of ``t`` from every process, in rank order; gradients reach the local rows.

    Slices may differ in length between processes. Single process: returns ``t``.
    """
    if not is_distributed():
        return t
    return _AllGatherWithGrad.apply(t)


def all_gather_nograd(t: Tensor) -> Tensor:
    """Rows of ``t`` (e.g. ids) from every process, in rank order, without autograd."""
    if not is_distributed():
        return t
    sizes = _gather_sizes(t.shape[0], t.device)
    return torch.cat(_padded_gather(t.detach(), sizes), dim=0)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Average ``.grad`` over processes in one flat all-reduce (parameters without a grad count as zero)."""
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from process ``src`` on every process (a no-op in a single process)."""
    if not is_distributed():
        return obj
    box: List[Optional[Any]] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
