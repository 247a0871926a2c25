"""Image-text retrieval (Flickr30K / MS-COCO protocol of the VSE++ lineage).

Images are the rows of the score matrix, texts the columns. Who is relevant to whom is
given one of two ways:

* ``txt2img[j]``: the image of text ``j`` (any number of captions per image, in any order);
* ``image_groups (N_images,)`` and ``text_groups (N_texts,)``: image ``i`` and text ``j``
  are relevant to each other iff their groups are equal (many images per caption, many
  captions per image, or both). ``txt2img`` is the special case
  ``image_groups = arange(N_images)``, ``text_groups = txt2img``.

* image -> text: rank of the image's best-ranked relevant text among all texts;
* text -> image: rank of the text's best-ranked relevant image among all images;
* ``R@K`` = percentage of queries whose 0-based rank is below ``K``;
  ``medR = floor(median rank) + 1``, ``meanR = mean rank + 1``; ``rsum`` = sum of all R@K.

Ties follow the pessimistic policy of :mod:`gssf.evaluation.ranking`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from gssf.evaluation.ranking import (
    Block,
    Groups,
    as_chunk_size,
    check_similarity,
    as_int_labels,
    as_ks,
    as_score_matrix,
    checked_blocks,
    encode_labels,
    first_relevant_rank,
    float_block,
    gather_scores,
    hit_rate,
    matrix_blocks,
    mean_rank,
    median_rank,
    per_query_hits,
)

__all__ = ["image_text_metrics", "image_text_metrics_from_embeddings"]

DEFAULT_KS = (1, 5, 10)

# Relevant (image, text) index pairs are built for this many member slots at a time, so
# a protocol with large groups never needs an (N_texts x largest group) index table.
_PAIR_SLOTS = 1 << 22

#: ``(image rows, text columns or None for all, image groups, text groups)`` of one evaluation.
Part = Tuple[slice, Optional[Tensor], Tensor, Tensor]


# --------------------------------------------------------------------------- relevance
def _check_txt2img(txt2img: Any, num_images: int, num_texts: int) -> Tensor:
    t2i = as_int_labels(txt2img, "txt2img", num_texts, "the text set (score columns)")
    if t2i.numel() and (int(t2i.min()) < 0 or int(t2i.max()) >= num_images):
        bad = int(torch.nonzero((t2i < 0) | (t2i >= num_images))[0])
        raise ValueError(
            f"txt2img[{bad}] = {int(t2i[bad])} points at a missing image: there are {num_images} images "
            f"(valid ids 0..{num_images - 1})"
        )
    captions = torch.bincount(t2i, minlength=num_images)
    if bool((captions == 0).any()):
        lonely = torch.nonzero(captions == 0).flatten().tolist()
        raise ValueError(
            f"{len(lonely)} image(s) have no caption, so image->text is undefined: images {_shown(lonely)}"
        )
    return t2i


def _shown(indices: List[int]) -> str:
    return ", ".join(map(str, indices[:10])) + (" ..." if len(indices) > 10 else "")


def _check_groups(image_groups: Any, text_groups: Any, num_images: int, num_texts: int) -> Tuple[Tensor, Tensor]:
    """Joint int64 codes of both group arrays; every image and every text needs a relevant partner."""
    ig, tg = encode_labels(
        image_groups,
        text_groups,
        names=["image_groups", "text_groups"],
        lengths=[num_images, num_texts],
        whats=["the image set (score rows)", "the text set (score columns)"],
    )
    for name, mine, other, what, partner in (
        ("image", ig, tg, "image->text", "text"),
        ("text", tg, ig, "text->image", "image"),
    ):
        alone = torch.nonzero(~torch.isin(mine, other)).flatten().tolist()
        if alone:
            raise ValueError(
                f"{len(alone)} {name}(s) share their group with no {partner}, so {what} is undefined: "
                f"{name}s {_shown(alone)} (drop them, or give them a {partner} of their group)"
            )
    return ig, tg


def _relevance(
    num_images: int, num_texts: int, txt2img: Any, image_groups: Any, text_groups: Any
) -> Tuple[Tensor, Tensor]:
    """``(image_groups, text_groups)`` codes from either form of the protocol."""
    if txt2img is not None:
        if image_groups is not None or text_groups is not None:
            raise ValueError("give either txt2img or image_groups with text_groups, not both")
        return torch.arange(num_images), _check_txt2img(txt2img, num_images, num_texts)
    if image_groups is None or text_groups is None:
        raise ValueError("give txt2img, or both image_groups and text_groups (one of them is missing)")
    return _check_groups(image_groups, text_groups, num_images, num_texts)


def _num_groups(ig: Tensor, tg: Tensor) -> int:
    return int(max(int(ig.max()), int(tg.max()))) + 1


def _relevant_pairs(ig: Tensor, tg: Tensor) -> Iterator[Tuple[Tensor, Tensor]]:
    """Every relevant ``(image index, text index)`` pair, in text order, in bounded batches."""
    images_of = Groups(ig, _num_groups(ig, tg))
    widest = int(images_of.counts.max())
    step = max(1, _PAIR_SLOTS // max(widest, 1))
    for s in range(0, tg.numel(), step):
        idx = images_of.members(tg[s : s + step])  # (b, P) relevant images of each text, -1 padded
        keep = idx >= 0
        txt = (torch.arange(s, s + idx.shape[0]).unsqueeze(1).expand_as(idx))[keep]
        yield idx[keep], txt


def _best_relevant(values: Iterable[Tuple[Tensor, Tensor]], num_texts: int) -> Tensor:
    """``(N_texts,)`` maximum of ``(scores, text indices)`` batches per text."""
    out: Optional[Tensor] = None
    for vals, txt in values:
        if out is None:
            out = torch.full((num_texts,), float("-inf"), dtype=vals.dtype)
        out.scatter_reduce_(0, txt, vals.cpu(), reduce="amax")
    assert out is not None  # every text has a relevant image (checked before)
    return out


# --------------------------------------------------------------------------- ranking
def _check_folds(folds: Optional[int], num_images: int) -> int:
    if folds is None:
        return 1
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds <= 0:
        raise ValueError(f"folds must be a positive integer or None, got {folds!r}")
    if num_images % folds:
        raise ValueError(f"{num_images} images cannot be split into {folds} equal consecutive folds")
    return int(folds)


def _ranks_from_blocks(blocks: Iterable[Block], ig: Tensor, tg: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
    """Both 0-based rank vectors in one pass over image-row blocks.

    ``targets[j]`` is the best score of text ``j`` with a relevant image: knowing it in
    advance lets every block add to the text -> image count (column-wise) without keeping
    past blocks, so memory stays at one block.
    """
    num_images = ig.numel()
    texts_of = Groups(tg, _num_groups(ig, tg))
    i2t = torch.empty(num_images, dtype=torch.long)
    t2i = torch.zeros(tg.numel(), dtype=torch.long)
    seen = 0
    for start, block in blocks:
        dev, c = block.device, block.shape[0]
        own = texts_of.members(ig[start : start + c]).to(dev)  # (c, P) the relevant texts of each image row
        i2t[start : start + c] = first_relevant_rank(block, own).cpu()
        # Text -> image, column-wise: every image of this block scoring >= the text's best
        # relevant score counts, minus the relevant images of this block among them.
        tgt = targets.to(dev, block.dtype)
        counts = (block >= tgt.unsqueeze(0)).sum(dim=0, dtype=torch.int32).long()
        own_hit = (gather_scores(block, own) >= tgt[own.clamp_min(0)]) & (own >= 0)
        counts.index_add_(0, own[own_hit], torch.full_like(own[own_hit], -1))
        t2i += counts.cpu()
        seen += c
        del block  # free it before the next block is computed, not after
    if seen != num_images:
        raise ValueError(f"the score blocks covered {seen} image rows, expected {num_images}")
    return i2t, t2i


def _summary(i2t: Tensor, t2i: Tensor, ks: Sequence[int]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in ks:
            out[f"{name}_R@{k}"] = hit_rate(ranks, k)
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        out[f"{name}_medR"] = median_rank(ranks)
        out[f"{name}_meanR"] = mean_rank(ranks)
    out["rsum"] = sum(out[f"{name}_R@{k}"] for name in ("i2t", "t2i") for k in ks)
    return out


def _average_folds(per_fold: List[Dict[str, float]], ks: Sequence[int]) -> Dict[str, Any]:
    """Mean of every metric over folds; rsum is recomputed from the averaged recalls.

    This is where public code printed 6 x the mean i2t recall (or 6 x rsum): rsum is the
    sum of the six averaged recalls, which equals the mean of the per-fold rsums.
    """
    keys = [k for k in per_fold[0] if k != "rsum"]
    out: Dict[str, Any] = {k: float(np.mean([f[k] for f in per_fold])) for k in keys}
    out["rsum"] = sum(out[f"{name}_R@{k}"] for name in ("i2t", "t2i") for k in ks)
    out["folds"] = per_fold
    return out


def _fold_parts(ig: Tensor, tg: Tensor, folds: int) -> List[Part]:
    """One part per consecutive image fold; each text follows the fold of its relevant images.

    A group whose images fall into two folds would leave some text with relevant images
    in two evaluations, so it is refused.
    """
    num_images = ig.numel()
    size = num_images // folds
    fold_of_image = torch.arange(num_images) // size
    g = _num_groups(ig, tg)
    lo = torch.full((g,), folds, dtype=torch.long).scatter_reduce(0, ig, fold_of_image, reduce="amin")
    hi = torch.full((g,), -1, dtype=torch.long).scatter_reduce(0, ig, fold_of_image, reduce="amax")
    split = torch.nonzero((lo[ig] != hi[ig])).flatten()
    if split.numel():
        i = int(split[0])
        raise ValueError(
            f"image {i} shares its group with images in folds {int(lo[ig[i]])} and {int(hi[ig[i]])}: "
            f"with folds={folds} ({size} consecutive images each), every group's images must lie in one fold"
        )
    text_fold = lo[tg]
    parts: List[Part] = []
    for f in range(folds):
        cols = torch.nonzero(text_fold == f).flatten()
        parts.append((slice(f * size, (f + 1) * size), cols, ig[f * size : (f + 1) * size], tg[cols]))
    return parts


def _per_query(
    ranks: List[Tuple[Tensor, Tensor]], parts: List[Part], num_texts: int, ks: Sequence[int], folds: bool
) -> Dict[str, List[Any]]:
    """Per-query values over all folds, images in row order and texts in column order."""
    i2t = torch.cat([r[0] for r in ranks])
    t2i = torch.empty(num_texts, dtype=torch.long)
    t2i_fold = torch.empty(num_texts, dtype=torch.long)
    for f, ((_, cols, _, _), (_, t)) in enumerate(zip(parts, ranks)):
        where = torch.arange(num_texts) if cols is None else cols
        t2i[where], t2i_fold[where] = t, f
    out: Dict[str, List[Any]] = {**per_query_hits(i2t, ks, "i2t_"), **per_query_hits(t2i, ks, "t2i_")}
    out["i2t_rank"] = (i2t + 1).tolist()
    out["t2i_rank"] = (t2i + 1).tolist()
    if folds:
        out["i2t_fold"] = torch.cat([torch.full((r[0].numel(),), f) for f, r in enumerate(ranks)]).tolist()
        out["t2i_fold"] = t2i_fold.tolist()
    return out


def _evaluate(
    num_images: int,
    num_texts: int,
    relevance: Tuple[Any, Any, Any],
    ks: Sequence[int],
    folds: Optional[int],
    per_query: bool,
    ranks: Callable[[Part], Tuple[Tensor, Tensor]],
) -> Dict[str, Any]:
    """Validate, split into folds, and summarise ``ranks(part)`` (0-based rank vectors of both directions)."""
    ig, tg = _relevance(num_images, num_texts, *relevance)
    nfolds = _check_folds(folds, num_images)
    parts = _fold_parts(ig, tg, nfolds) if folds is not None else [(slice(0, num_images), None, ig, tg)]
    per_fold, found = [], []
    for part in parts:
        rows, _, part_ig, part_tg = part
        ks_ = as_ks(ks, min(part_ig.numel(), part_tg.numel()), "the number of images or texts per evaluation")
        found.append(ranks(part))
        per_fold.append(_summary(*found[-1], ks_))
    out = per_fold[0] if folds is None else _average_folds(per_fold, tuple(ks))
    if per_query:
        out["per_query"] = _per_query(found, parts, num_texts, tuple(ks), folds is not None)
    return out


# --------------------------------------------------------------------------- public API
def image_text_metrics(
    scores: Any,
    txt2img: Any = None,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    folds: Optional[int] = None,
    image_groups: Any = None,
    text_groups: Any = None,
    per_query: bool = False,
) -> Dict[str, Any]:
    """Image<->text retrieval metrics from a score matrix.

    Args:
        scores: ``(N_images, N_texts)`` tensor or array (a ``np.load(..., mmap_mode="r")``
            map works), larger = more similar.
        txt2img: ``(N_texts,)`` image index of every text.
        ks: recall cut-offs.
        folds: ``None`` for one evaluation over everything; ``F`` splits the images into
            ``F`` equal consecutive folds, each text following its image (COCO 1K: ``5``),
            averages every metric and adds ``"folds"``: the list of per-fold dicts.
        image_groups, text_groups: instead of ``txt2img``, ``(N_images,)`` and
            ``(N_texts,)`` labels (ints or strings): image ``i`` and text ``j`` are
            relevant iff their groups are equal. Every image and every text needs a
            partner of its group (else ``ValueError``); with ``folds`` every group's
            images must lie in one fold.
        per_query: add ``"per_query"``: per-query values whose mean is the reported metric
            (see ``docs/evaluation.md``).

    Returns:
        ``{"i2t_R@1", ..., "t2i_R@10", "i2t_medR", "i2t_meanR", "t2i_medR", "t2i_meanR", "rsum"}``,
        recalls in percent.

    Example:
        >>> s = torch.eye(3).repeat_interleave(2, dim=1)    # 3 images x 6 texts, 2 captions each
        >>> image_text_metrics(s, [0, 0, 1, 1, 2, 2], ks=(1,))["rsum"]
        200.0
        >>> image_text_metrics(s, image_groups=[7, 8, 9], text_groups=[7, 7, 8, 8, 9, 9], ks=(1,))["rsum"]
        200.0
    """
    scores = as_score_matrix(scores)

    def ranks(part: Part) -> Tuple[Tensor, Tensor]:
        rows, cols, ig, tg = part
        sub = scores[rows] if cols is None else _take_columns(scores[rows], cols)
        targets = _best_relevant(((_gather(sub, i, t), t) for i, t in _relevant_pairs(ig, tg)), tg.numel())
        return _ranks_from_blocks(checked_blocks(matrix_blocks(sub)), ig, tg, targets)

    relevance = (txt2img, image_groups, text_groups)
    return _evaluate(scores.shape[0], scores.shape[1], relevance, ks, folds, per_query, ranks)


def _take_columns(rows: Any, cols: Tensor) -> Any:
    if isinstance(rows, np.ndarray):
        return rows[:, cols.numpy()]
    return rows.index_select(1, cols.to(rows.device))


def _gather(scores: Any, rows: Tensor, cols: Tensor) -> Tensor:
    """``scores[rows[p], cols[p]]`` in the dtype the blocks are ranked in (so ties stay ties)."""
    if isinstance(scores, np.ndarray):
        vals = np.asarray(scores[rows.numpy(), cols.numpy()])
    else:
        vals = scores[rows.to(scores.device), cols.to(scores.device)]
    return float_block(vals)


@torch.no_grad()
def image_text_metrics_from_embeddings(
    images: Tensor,
    texts: Tensor,
    similarity: Any,
    *,
    txt2img: Any = None,
    chunk_size: int = 1024,
    ks: Sequence[int] = DEFAULT_KS,
    folds: Optional[int] = None,
    image_groups: Any = None,
    text_groups: Any = None,
    per_query: bool = False,
) -> Dict[str, Any]:
    """Same metrics as :func:`image_text_metrics`, streamed over image chunks.

    Args:
        images: ``(N_images, D)`` embeddings (the rows: image -> text queries).
        texts: ``(N_texts, D)`` embeddings.
        similarity: a :class:`gssf.Similarity` (``score_chunks`` and ``pair`` are used).
        txt2img: ``(N_texts,)`` image index of every text, or ``None`` with
            ``image_groups`` and ``text_groups`` (see :func:`image_text_metrics`).
        chunk_size: image rows scored at a time; peak memory ~ ``chunk_size x N_texts`` scores.

    The best relevant score of every text is computed first with ``similarity.pair`` on
    every relevant (image, text) pair (N_texts pairs for ``txt2img``; the sum over groups
    of images x texts for groups), in batches smaller than one block; then one pass over
    ``similarity.score_chunks`` yields both directions. On a similarity whose matrix and
    pair scores differ by float rounding, a text->image rank can differ from the full path
    only when another image lies within that rounding of the best relevant one (a near-tie).
    """
    chunk = as_chunk_size(chunk_size)
    check_similarity(similarity)
    if images.dim() != 2 or texts.dim() != 2:
        raise ValueError(f"images and texts must be 2-D (rows, D), got {tuple(images.shape)} and {tuple(texts.shape)}")

    def ranks(part: Part) -> Tuple[Tensor, Tensor]:
        rows, cols, ig, tg = part
        img = images[rows]
        txt = texts if cols is None else texts.index_select(0, cols.to(texts.device))
        blocks = checked_blocks(similarity.score_chunks(img, txt, chunk))
        return _ranks_from_blocks(blocks, ig, tg, _best_pair_scores(img, txt, ig, tg, similarity, chunk))

    relevance = (txt2img, image_groups, text_groups)
    return _evaluate(int(images.shape[0]), int(texts.shape[0]), relevance, ks, folds, per_query, ranks)


def _best_pair_scores(images: Tensor, texts: Tensor, ig: Tensor, tg: Tensor, similarity: Any, chunk: int) -> Tensor:
    """``(N_texts,)`` best score of every text with a relevant image, from ``similarity.pair``.

    Pairs go in batches holding about a quarter of one ``chunk x N_texts`` score block in
    features (gathering every pair at once would copy ``pairs x D`` features; tiny batches
    would spend their time in per-call overhead).
    """
    n = texts.shape[0]
    batch = max(chunk, chunk * n // (4 * max(int(texts.shape[1]), 1)))

    def scored() -> Iterator[Tuple[Tensor, Tensor]]:
        for img_idx, txt_idx in _relevant_pairs(ig, tg):
            for s in range(0, img_idx.numel(), batch):
                i, t = img_idx[s : s + batch], txt_idx[s : s + batch]
                vals = similarity.pair(images.index_select(0, i.to(images.device)), texts.index_select(0, t.to(texts.device)))
                yield vals.detach(), t

    targets = _best_relevant(scored(), n)
    if not bool(torch.isfinite(targets).all()):
        raise ValueError("the similarity returned a non-finite score for some relevant (image, text) pair")
    return targets
