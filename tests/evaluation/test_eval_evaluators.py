"""Accumulating evaluators: batch-wise == one-shot, deduplication by id, DDP gather on rank 0."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gssf
from gssf.evaluation import (
    ImageTextEvaluator,
    ReIDEvaluator,
    RetrievalEvaluator,
    image_text_metrics,
    reid_metrics,
    retrieval_metrics,
)


def _pairs(n_images: int = 24, per: int = 3, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, dim, generator=g)
    image_ids = torch.arange(n_images).repeat_interleave(per)
    texts = images[image_ids] + torch.randn(len(image_ids), dim, generator=g)
    return images, texts, image_ids


def _reid(n: int = 60, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, 8, (n,), generator=g)
    emb = torch.randn(8, dim, generator=g)[pids] + torch.randn(n, dim, generator=g)
    cams = torch.randint(0, 3, (n,), generator=g)
    is_query = torch.arange(n) < 15
    return emb, pids, cams, is_query


def test_image_text_evaluator_equals_the_function():
    images, texts, image_ids = _pairs()
    sim = gssf.create_similarity("cosine")
    ev = ImageTextEvaluator(folds=2, chunk_size=5)
    order = torch.randperm(len(image_ids), generator=torch.Generator().manual_seed(1))
    for batch in order.split(7):  # any batch order: images are ordered by id at compute
        ev.update(images[image_ids[batch]], texts[batch], image_ids[batch], text_ids=batch)
    assert len(ev) == len(image_ids)
    got = ev.compute(sim)
    assert got == image_text_metrics(sim(images, texts), image_ids, folds=2)
    ev.reset()
    assert len(ev) == 0
    with pytest.raises(ValueError, match="update"):
        ev.compute(sim)


def test_duplicated_samples_are_counted_once_when_ids_are_given():
    emb, pids, cams, is_query = _reid()
    sim = gssf.create_similarity("cosine")
    ev = ReIDEvaluator(max_rank=10, chunk_size=4)
    ids = torch.arange(len(pids))
    ev.update(emb, pids, cams, is_query, ids=ids)
    ev.update(emb[:5], pids[:5], cams[:5], is_query[:5], ids=ids[:5])  # e.g. sampler padding
    want = reid_metrics(sim(emb[is_query], emb[~is_query]), pids[is_query], pids[~is_query],
                        cams[is_query], cams[~is_query], max_rank=10)
    assert ev.compute(sim) == want


def test_reid_evaluator_accepts_a_flag_per_batch():
    emb, pids, cams, is_query = _reid(seed=2)
    sim = gssf.create_similarity("cosine")
    ev = ReIDEvaluator(max_rank=10)
    ev.update(emb[is_query], pids[is_query], cams[is_query], True)
    ev.update(emb[~is_query], pids[~is_query], cams[~is_query], False)
    want = reid_metrics(sim(emb[is_query], emb[~is_query]), pids[is_query], pids[~is_query],
                        cams[is_query], cams[~is_query], max_rank=10)
    assert ev.compute(sim) == want
    only_queries = ReIDEvaluator(max_rank=10)
    only_queries.update(emb, pids, cams, True)
    with pytest.raises(ValueError, match="both query and gallery"):
        only_queries.compute(sim)


def test_retrieval_evaluator_leave_one_out_and_split():
    emb, labels, _, is_query = _reid(seed=3)
    sim = gssf.create_similarity("cosine")
    loo = RetrievalEvaluator(chunk_size=9)
    for part in torch.arange(len(labels)).split(11):
        loo.update(emb[part], labels[part])
    assert loo.compute(sim) == retrieval_metrics(sim(emb, emb), labels)
    split = RetrievalEvaluator(ks=(1, 5))
    split.update(emb, labels, is_query=is_query)
    want = retrieval_metrics(sim(emb[is_query], emb[~is_query]), labels[is_query], labels[~is_query], ks=(1, 5))
    assert split.compute(sim) == want


def test_update_checks_lengths():
    ev = RetrievalEvaluator()
    with pytest.raises(ValueError, match="one entry per embedding"):
        ev.update(torch.randn(4, 3), torch.arange(3))
    with pytest.raises(ValueError, match="2-D"):
        ev.update(torch.randn(4), torch.arange(4))


def _ddp_worker(rank: int, world: int, init: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        sim = gssf.create_similarity("cosine")
        images, texts, image_ids = _pairs(seed=5)
        # Uneven shards plus a padded duplicate, as a DistributedSampler would produce.
        mine = torch.arange(len(image_ids))[rank::world]
        if rank == 1:
            mine = torch.cat([mine, mine[:1]])
        it = ImageTextEvaluator(ks=(1, 5))
        it.update(images[image_ids[mine]], texts[mine], image_ids[mine], text_ids=mine)
        res_it = it.compute(sim)
        emb, labels, _, _ = _reid(seed=6)
        shard = torch.arange(len(labels))[rank * 25 : (rank + 1) * 35]  # overlapping, variable sizes
        rt = RetrievalEvaluator()
        rt.update(emb[shard], labels[shard], ids=shard)
        res_rt = rt.compute(sim, broadcast=True)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"it": res_it, "rt": res_rt}))
    finally:
        dist.destroy_process_group()


def test_ddp_gathers_all_ranks_and_computes_on_rank_zero(tmp_path):
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_ddp_worker, args=(2, init, str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    sim = gssf.create_similarity("cosine")
    images, texts, image_ids = _pairs(seed=5)
    assert r0["it"] == image_text_metrics(sim(images, texts), image_ids, ks=(1, 5))
    assert r1["it"] is None  # other ranks get None unless broadcast=True
    emb, labels, _, _ = _reid(seed=6)
    want = retrieval_metrics(sim(emb, emb), labels)
    assert r0["rt"] == want and r1["rt"] == want
