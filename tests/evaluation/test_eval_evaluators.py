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
    image_text_metrics_from_embeddings,
    reid_metrics,
    reid_metrics_from_embeddings,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
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


def test_image_text_evaluator_takes_images_and_captions_separately_with_groups():
    # 10 images in 4 groups; 14 captions, each relevant to every image of its group; images 8, 9
    # have no caption of their own (a pair-only evaluator would lose them).
    g = torch.Generator().manual_seed(4)
    images, texts = torch.randn(10, 6, generator=g), torch.randn(14, 6, generator=g)
    image_groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 0, 2])
    txt2img = torch.arange(14) % 8
    text_groups = image_groups[txt2img]
    sim = gssf.create_similarity("cosine")
    want = image_text_metrics(sim(images, texts), image_groups=image_groups, text_groups=text_groups, ks=(1, 5))
    ev = ImageTextEvaluator(ks=(1, 5), chunk_size=3)
    for rows in torch.arange(10).flip(0).split(4):  # any order: images are ordered by id
        ev.update_images(images[rows], rows, groups=image_groups[rows])
    for rows in torch.arange(14).split(5):
        ev.update_texts(texts[rows], image_ids=txt2img[rows], text_ids=rows, groups=text_groups[rows])
    assert ev.compute(sim) == want
    by_image = ImageTextEvaluator(ks=(1, 5))
    by_image.update_images(images[:8], torch.arange(8))  # without groups every image needs a caption
    by_image.update_texts(texts, image_ids=txt2img)
    assert by_image.compute(sim) == image_text_metrics(sim(images[:8], texts), txt2img, ks=(1, 5))


def test_image_text_evaluator_rejects_inconsistent_relevance():
    sim = gssf.create_similarity("cosine")
    x = torch.randn(4, 3)
    half = ImageTextEvaluator()
    half.update_images(x, torch.arange(4), groups=torch.arange(4))
    half.update_texts(x, image_ids=torch.arange(4))
    with pytest.raises(ValueError, match="groups for every image and every caption"):
        half.compute(sim)
    stray = ImageTextEvaluator()
    stray.update_images(x, torch.arange(4))
    stray.update_texts(x, image_ids=torch.tensor([0, 1, 2, 7]))
    with pytest.raises(ValueError, match=r"never added: \[7\]"):
        stray.compute(sim)
    with pytest.raises(ValueError, match="image_ids of the captions, or their groups"):
        ImageTextEvaluator().update_texts(x)
    with pytest.raises(ValueError, match="different lengths"):
        ImageTextEvaluator().update(x, x[:3], torch.arange(4))


def test_options_are_checked_once_at_construction():
    for make in (ImageTextEvaluator, ReIDEvaluator, RetrievalEvaluator):
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            make(chunk_size=0)
        with pytest.raises(ValueError, match="distributed must be None"):
            make(distributed=True)
        assert make(chunk_size=7).chunk_size == 7
        with pytest.raises(AttributeError):
            make().chunk_size = 3  # read-only: what was checked is what is used


def test_streaming_functions_share_one_argument_order():
    sim = gssf.create_similarity("cosine")
    x, labels = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    # the old retrieval order (queries, similarity, labels) names the misplaced argument
    with pytest.raises(TypeError, match=r"similarity must be a gssf.Similarity.*\(queries, gallery, similarity"):
        retrieval_metrics_from_embeddings(x, sim, labels, query_labels=labels)
    with pytest.raises(TypeError, match="similarity must be a gssf.Similarity"):
        image_text_metrics_from_embeddings(x, x, torch.arange(6))
    with pytest.raises(TypeError, match="positional"):
        reid_metrics_from_embeddings(x, x, sim, labels, labels, labels, labels)  # labels are keyword-only
    loo = retrieval_metrics_from_embeddings(x, None, sim, query_labels=labels, ks=(1,))
    assert loo == retrieval_metrics(sim(x, x), labels, ks=(1,))


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
        local = RetrievalEvaluator(distributed=False)  # no collective: each rank scores its own rows
        local.update(emb[shard], labels[shard], ids=shard)
        res_local = local.compute(sim) if rank == 1 else None  # rank 0 skips it: a collective would hang
        out = {"it": res_it, "rt": res_rt, "local": res_local, "shard": shard.tolist()}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(out))
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
    mine = torch.tensor(r1["shard"])
    assert r1["local"] == retrieval_metrics(sim(emb[mine], emb[mine]), labels[mine])
