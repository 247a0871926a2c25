"""Data parallelism: 2 gloo processes with half a batch each == 1 process with the whole batch."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gssf
from gssf.losses import create_loss
from gssf.models import DualEncoder, LinearHead
from gssf.train import save_config
from gssf.train.distributed import all_gather_nograd, all_gather_with_grad, average_gradients, shard_bounds
from train_synthetic import tiny_config, write_features

BATCH = 7  # odd: the two processes hold 4 and 3 rows (uneven all-gather)
IDS = torch.tensor([0, 1, 1, 2, 3, 4, 4])  # repeated ids: positives masked across processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(loss_name: str):
    torch.manual_seed(0)
    sim = gssf.create_similarity("gssf", dim=8, num_blocks=2)
    model = DualEncoder(LinearHead(12, 8), LinearHead(10, 8), sim).double()
    with torch.no_grad():  # leave the cosine starting point so the similarity's gradient is generic
        for p in sim.parameters():
            p.add_(0.2 * torch.randn_like(p))
    criterion = create_loss(loss_name, similarity=sim).double()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(BATCH, 12, generator=g, dtype=torch.float64)
    texts = torch.randn(BATCH, 10, generator=g, dtype=torch.float64)
    return model, criterion, images, texts


def _loss_and_grads(loss_name: str, rank: int, world: int):
    model, criterion, images, texts = _setup(loss_name)
    start, stop = shard_bounds(BATCH, rank, world)
    img = all_gather_with_grad(model.encode_image(images[start:stop]))
    txt = all_gather_with_grad(model.encode_text(texts[start:stop]))
    ids = all_gather_nograd(IDS[start:stop])
    loss = criterion(img, txt, ids, ids)
    loss.backward()
    params = dict(model.named_parameters())
    params.update({f"loss.{n}": p for n, p in criterion.named_parameters() if not n.startswith("similarity.")})
    average_gradients(list(params.values()))
    return float(loss.detach()), {n: p.grad.detach().clone() for n, p in params.items()}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        results = {name: _loss_and_grads(name, rank, world) for name in ("hinge", "infonce")}
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_with_half_batches_equal_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for name in ("hinge", "infonce"):
        loss1, grads1 = _loss_and_grads(name, 0, 1)
        for rank in range(2):
            loss2, grads2 = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)[name]
            assert loss2 == pytest.approx(loss1, rel=1e-12, abs=1e-12), (name, rank)
            assert set(grads2) == set(grads1)
            for key in grads1:
                assert float(grads1[key].abs().max()) > 0 or key.startswith("loss."), key
                torch.testing.assert_close(grads2[key], grads1[key], rtol=1e-9, atol=1e-12, msg=f"{name} {key} rank {rank}")


def test_helpers_are_identity_in_one_process() -> None:
    t = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(t) is t and all_gather_nograd(t) is t
    assert [shard_bounds(7, r, 2) for r in range(2)] == [(0, 4), (4, 7)]
    assert [shard_bounds(5, r, 3) for r in range(3)] == [(0, 2), (2, 4), (4, 5)]


def _history(results: Dict) -> list:
    return [h["train_loss"] for h in results["history"]]


def test_torchrun_training_matches_single_process(tmp_path: Path) -> None:
    """The real program under torchrun (2 gloo processes) vs. one process: same global batches."""
    features = write_features(tmp_path / "feats")
    cfg = tiny_config(features, "train.epochs=3", "train.batch_size=32", "loss.name=hinge")
    save_config(cfg, tmp_path / "cfg.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "gssf.cli.main", "train", str(tmp_path / "cfg.yaml"), "--run-dir", str(tmp_path / "ddp"), "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    from gssf.train import run

    single = run(cfg, tmp_path / "single", progress=False)
    assert ddp["history"][0]["train_loss"] == pytest.approx(single["history"][0]["train_loss"], rel=1e-5)
    assert _history(ddp) == pytest.approx(_history(single), rel=1e-3)
    assert ddp["test"]["rsum"] == pytest.approx(single["test"]["rsum"], abs=15)
    start = json.loads((tmp_path / "ddp" / "log.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2
