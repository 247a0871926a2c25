"""Image-text retrieval (Flickr30K / MS-COCO protocol of the VSE++ lineage).

Images are the rows of the score matrix, texts the columns; ``txt2img[j]`` is the image
of text ``j`` (any number of captions per image, in any order).

* image -> text: rank of the image's best-ranked caption among all texts;
* text -> image: rank of the caption's image among all images;
* ``R@K`` = percentage of queries whose 0-based rank is below ``K``;
  ``medR = floor(median rank) + 1``, ``meanR = mean rank + 1``; ``rsum`` = sum of all R@K.

Ties follow the pessimistic policy of :mod:`gssf.evaluation.ranking`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from gssf.evaluation.ranking import (
    Block,
    Groups,
    as_chunk_size,
    as_int_labels,
    as_ks,
    as_score_matrix,
    checked_blocks,
    first_relevant_rank,
    float_block,
    gather_scores,
    hit_rate,
    matrix_blocks,
    mean_rank,
    median_rank,
)

__all__ = ["image_text_metrics", "image_text_metrics_from_embeddings"]

DEFAULT_KS = (1, 5, 10)


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
        shown = ", ".join(map(str, lonely[:10])) + (" ..." if len(lonely) > 10 else "")
        raise ValueError(f"{len(lonely)} image(s) have no caption, so image->text is undefined: images {shown}")
    return t2i


def _check_folds(folds: Optional[int], num_images: int) -> int:
    if folds is None:
        return 1
    if not isinstance(folds, (int, np.integer)) or isinstance(folds, bool) or folds <= 0:
        raise ValueError(f"folds must be a positive integer or None, got {folds!r}")
    if num_images % folds:
        raise ValueError(f"{num_images} images cannot be split into {folds} equal consecutive folds")
    return int(folds)


def _ranks_from_blocks(
    blocks: Iterable[Block], txt2img: Tensor, targets: Tensor, num_images: int
) -> Tuple[Tensor, Tensor]:
    """Both rank vectors in one pass over image-row blocks.

    ``targets[j]`` is the score of text ``j`` with its own image: knowing it in advance
    lets every block add to the text -> image count (column-wise) without keeping past
    blocks, so memory stays at one block.
    """
    captions = Groups(txt2img, num_images)
    i2t = torch.empty(num_images, dtype=torch.long)
    t2i = torch.zeros(txt2img.numel(), dtype=torch.long)
    seen = 0
    for start, block in blocks:
        dev, c = block.device, block.shape[0]
        rows = torch.arange(start, start + c)
        own = captions.members(rows).to(dev)  # (c, P) the texts of each image row
        i2t[start : start + c] = first_relevant_rank(block, own).cpu()
        # Text -> image, column-wise: every image of this block scoring >= the text's own
        # image counts, minus the own image itself when it is in this block.
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


def _fold_slices(txt2img: Tensor, num_images: int, folds: int) -> List[Tuple[slice, Tensor, Tensor]]:
    """``(image rows, text columns, fold-local txt2img)`` per consecutive image fold."""
    size = num_images // folds
    out = []
    for f in range(folds):
        lo, hi = f * size, (f + 1) * size
        cols = torch.nonzero((txt2img >= lo) & (txt2img < hi)).flatten()
        out.append((slice(lo, hi), cols, txt2img[cols] - lo))
    return out


def _evaluate(
    num_images: int,
    num_texts: int,
    txt2img: Any,
    ks: Sequence[int],
    folds: Optional[int],
    ranks: Callable[[slice, Optional[Tensor], Tensor], Tuple[Tensor, Tensor]],
) -> Dict[str, Any]:
    """Validate, split into folds, and summarise ``ranks(image rows, text columns, local txt2img)``."""
    t2i = _check_txt2img(txt2img, num_images, num_texts)
    nfolds = _check_folds(folds, num_images)
    parts = _fold_slices(t2i, num_images, nfolds) if folds is not None else [(slice(0, num_images), None, t2i)]
    per_fold = []
    for rows, cols, labels in parts:
        ks_ = as_ks(ks, min(rows.stop - rows.start, labels.numel()), "the number of images or texts per evaluation")
        per_fold.append(_summary(*ranks(rows, cols, labels), ks_))
    return per_fold[0] if folds is None else _average_folds(per_fold, tuple(ks))


def image_text_metrics(
    scores: Any, txt2img: Any, ks: Sequence[int] = DEFAULT_KS, *, folds: Optional[int] = None
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

    Returns:
        ``{"i2t_R@1", ..., "t2i_R@10", "i2t_medR", "i2t_meanR", "t2i_medR", "t2i_meanR", "rsum"}``,
        recalls in percent.

    Example:
        >>> s = torch.eye(3).repeat_interleave(2, dim=1)    # 3 images x 6 texts, 2 captions each
        >>> image_text_metrics(s, [0, 0, 1, 1, 2, 2], ks=(1,))["rsum"]
        200.0
    """
    scores = as_score_matrix(scores)

    def ranks(rows: slice, cols: Optional[Tensor], labels: Tensor) -> Tuple[Tensor, Tensor]:
        sub = scores[rows] if cols is None else _take_columns(scores[rows], cols)
        targets = _gather_targets(sub, labels)
        return _ranks_from_blocks(checked_blocks(matrix_blocks(sub)), labels, targets, sub.shape[0])

    return _evaluate(scores.shape[0], scores.shape[1], txt2img, ks, folds, ranks)


def _take_columns(rows: Any, cols: Tensor) -> Any:
    if isinstance(rows, np.ndarray):
        return rows[:, cols.numpy()]
    return rows.index_select(1, cols.to(rows.device))


def _gather_targets(scores: Any, txt2img: Tensor) -> Tensor:
    """``scores[txt2img[j], j]`` in the dtype the blocks are ranked in (so ties stay ties)."""
    cols = torch.arange(txt2img.numel())
    if isinstance(scores, np.ndarray):
        vals = np.asarray(scores[txt2img.numpy(), cols.numpy()])[None, :]
    else:
        vals = scores[txt2img.to(scores.device), cols.to(scores.device)].unsqueeze(0)
    return float_block(vals)[0]


@torch.no_grad()
def image_text_metrics_from_embeddings(
    images: Tensor,
    texts: Tensor,
    txt2img: Any,
    similarity: Any,
    chunk_size: int = 1024,
    ks: Sequence[int] = DEFAULT_KS,
    folds: Optional[int] = None,
) -> Dict[str, Any]:
    """Same metrics as :func:`image_text_metrics`, streamed over image chunks.

    Args:
        images: ``(N_images, D)`` embeddings (the rows: image -> text queries).
        texts: ``(N_texts, D)`` embeddings.
        txt2img: ``(N_texts,)`` image index of every text.
        similarity: a :class:`gssf.Similarity` (``score_chunks`` and ``pair`` are used).
        chunk_size: image rows scored at a time; peak memory ~ ``chunk_size x N_texts`` scores.

    The own-image score of every text is computed first with ``similarity.pair`` (N_texts
    pair scores, in batches smaller than one block), then one pass over
    ``similarity.score_chunks`` yields both directions. On a similarity whose matrix and
    pair scores differ by float rounding, a text->image rank can differ from the full path
    only when another image lies within that rounding of the true one (a near-tie).
    """
    chunk = as_chunk_size(chunk_size)
    if images.dim() != 2 or texts.dim() != 2:
        raise ValueError(f"images and texts must be 2-D (rows, D), got {tuple(images.shape)} and {tuple(texts.shape)}")

    def ranks(rows: slice, cols: Optional[Tensor], labels: Tensor) -> Tuple[Tensor, Tensor]:
        img = images[rows]
        txt = texts if cols is None else texts.index_select(0, cols.to(texts.device))
        blocks = checked_blocks(similarity.score_chunks(img, txt, chunk))
        return _ranks_from_blocks(blocks, labels, _own_image_scores(img, txt, labels, similarity, chunk), img.shape[0])

    return _evaluate(int(images.shape[0]), int(texts.shape[0]), txt2img, ks, folds, ranks)


def _own_image_scores(images: Tensor, texts: Tensor, txt2img: Tensor, similarity: Any, chunk: int) -> Tensor:
    """``(N_texts,)`` score of every text with its own image.

    Pairs go in batches holding about a quarter of one ``chunk x N_texts`` score block in
    features (gathering every text's image at once would copy ``N_texts x D`` features;
    tiny batches would spend their time in per-call overhead).
    """
    idx = txt2img.to(images.device)
    n = texts.shape[0]
    batch = max(chunk, chunk * n // (4 * max(int(texts.shape[1]), 1)))
    parts = [
        similarity.pair(images.index_select(0, idx[s : s + batch]), texts[s : s + batch]).detach()
        for s in range(0, n, batch)
    ]
    targets = torch.cat(parts)
    if not bool(torch.isfinite(targets).all()):
        raise ValueError("the similarity returned a non-finite score for some (image, own caption) pair")
    return targets
