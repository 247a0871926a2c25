"""Accumulating evaluators for training loops: ``update`` with batches, ``compute`` at the end.

Each evaluator stores detached embeddings (on their own device) and labels. ``compute``
scores them with the similarity given at that point (so a learned similarity is
evaluated with its current parameters) through the streaming functions, never building
the full score matrix.

Distributed (``torch.distributed`` initialised, world size > 1): ``compute`` is a
collective. Every rank must call it; embeddings of all ranks are gathered (variable
sizes allowed), rank 0 computes, and the other ranks get ``None`` -- or the same dict
when ``broadcast=True``. Samplers that pad ranks with repeated samples
(``DistributedSampler``) create duplicates: pass ``ids`` (unique sample ids) to
``update`` and each id is kept once, in id order, whatever the gathering order. With
NCCL, give every rank at least one batch (an empty rank has no device to gather on).
``distributed=False`` turns the collective off: ``compute`` scores this process's rows only
(the trainer evaluates the whole split on rank 0 this way).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor

from gssf.evaluation.image_text import DEFAULT_KS as IT_KS
from gssf.evaluation.image_text import image_text_metrics_from_embeddings
from gssf.evaluation.ranking import as_chunk_size
from gssf.evaluation.reid import DEFAULT_KS as REID_KS
from gssf.evaluation.reid import reid_metrics_from_embeddings
from gssf.evaluation.retrieval import DEFAULT_KS as RET_KS
from gssf.evaluation.retrieval import retrieval_metrics_from_embeddings

__all__ = ["ImageTextEvaluator", "ReIDEvaluator", "RetrievalEvaluator"]

Flag = Union[bool, Tensor]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather(t: Tensor) -> Tensor:
    """All ranks' rows of ``t``, concatenated in rank order (row counts may differ between ranks)."""
    meta = [None] * dist.get_world_size()
    dist.all_gather_object(meta, (t.shape[0], tuple(t.shape[1:]), t.dtype))
    longest = max(m[0] for m in meta)
    shape, dtype = next(((m[1], m[2]) for m in meta if m[0] > 0), (tuple(t.shape[1:]), t.dtype))
    padded = torch.zeros((longest,) + shape, dtype=dtype, device=t.device)
    if t.shape[0]:  # a rank without rows only receives
        padded[: t.shape[0]] = t
    out = [torch.empty_like(padded) for _ in meta]
    dist.all_gather(out, padded)
    return torch.cat([o[: m[0]] for o, m in zip(out, meta)])


def _first_of_each_id(ids: Tensor) -> Tensor:
    """Row indices keeping the first row of every id, ordered by ascending id."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    rows = torch.arange(ids.numel(), device=ids.device)
    first = torch.full((uniq.numel(),), ids.numel(), dtype=torch.long, device=ids.device)
    return first.scatter_reduce_(0, inverse, rows, reduce="amin")


class _Store:
    """Named columns of rows, appended batch by batch; gathered across ranks on demand."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.reset()

    def reset(self) -> None:
        self.parts: Dict[str, List[Tensor]] = {n: [] for n in self.names}

    def add(self, **cols: Tensor) -> None:
        lengths = {n: int(t.shape[0]) for n, t in cols.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"batch fields have different lengths: {lengths}")
        for n, t in cols.items():
            self.parts[n].append(t.detach())

    def __len__(self) -> int:
        return sum(int(t.shape[0]) for t in self.parts[self.names[0]])

    def columns(self, gather: bool, what: str = "update()") -> Dict[str, Tensor]:
        """The stored columns; with ``gather``, every rank's rows (a collective)."""
        out = {}
        for n in self.names:
            if not self.parts[n] and not gather:
                raise ValueError(f"nothing to evaluate: {what} was never called")
            local = torch.cat(self.parts[n]) if self.parts[n] else torch.zeros(0)
            out[n] = _gather(local) if gather else local
        if out[self.names[0]].shape[0] == 0:
            raise ValueError(f"nothing to evaluate: {what} was never called on any rank")
        return out


def _as_column(x: Any, n: int, name: str, device: torch.device, dtype: torch.dtype = torch.long) -> Tensor:
    t = torch.as_tensor(x, device=device)
    if t.dim() == 0:  # one flag for the whole batch
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"{name} must have one entry per embedding ({n}), got shape {tuple(t.shape)}")
    return t.to(dtype)


def _embeddings(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor (batch, D), got {getattr(x, 'shape', type(x))}")
    return x


class _Evaluator:
    """Shared machinery: validated options, a row store, and the (optionally collective) finish.

    ``distributed``: ``None`` (default) gathers every rank's rows when a process group of
    more than one rank is initialised; ``False`` evaluates this process's rows only, with no
    collective (a loop that evaluates on one rank while the others wait).
    """

    def __init__(self, names: Sequence[str], chunk_size: int, distributed: Optional[bool]) -> None:
        if distributed not in (None, False):
            raise ValueError(f"distributed must be None (auto) or False (this process only), got {distributed!r}")
        self._chunk_size = as_chunk_size(chunk_size)
        self._local = distributed is False
        self._store = _Store(names)

    @property
    def chunk_size(self) -> int:
        """Query rows scored at a time (checked once, at construction)."""
        return self._chunk_size

    def reset(self) -> None:
        """Forget every stored batch."""
        self._store.reset()

    def __len__(self) -> int:
        """Rows stored on this rank."""
        return len(self._store)

    def _collective(self) -> bool:
        return not self._local and _distributed()

    def _add_items(self, embeddings: Tensor, ids: Optional[Any], is_query: Flag, **labels: Any) -> None:
        """Store one batch of ``embeddings (B, D)`` with per-row label columns, query flags and ids."""
        emb = _embeddings(embeddings, "embeddings")
        n, dev = emb.shape[0], emb.device
        cols = {name: _as_column(v, n, name, dev) for name, v in labels.items()}
        cols["is_query"] = _as_column(is_query, n, "is_query", dev, torch.bool)
        cols["ids"] = _ids(ids, n, "ids", dev)
        self._store.add(emb=emb, **cols)

    def _finish(self, run: Any, broadcast: bool, *stores: _Store) -> Optional[Dict[str, Any]]:
        gather = self._collective()
        cols = [store.columns(gather) for store in (stores or (self._store,))]  # collective when gathering
        result = run(*cols) if not gather or dist.get_rank() == 0 else None
        if gather and broadcast:
            box = [result]
            dist.broadcast_object_list(box, src=0)
            result = box[0]
        return result


def _ids(ids: Optional[Any], n: int, name: str, device: torch.device) -> Tensor:
    """Unique sample ids as a column, ``-1`` for every row when none were given."""
    return torch.full((n,), -1, dtype=torch.long, device=device) if ids is None else _as_column(ids, n, name, device)


def _groups(groups: Optional[Any], n: int, name: str, device: torch.device) -> Tensor:
    """Relevance groups as a column, ``-1`` for every row when none were given (groups are >= 0)."""
    if groups is None:
        return torch.full((n,), -1, dtype=torch.long, device=device)
    col = _as_column(groups, n, name, device)
    if bool((col < 0).any()):
        raise ValueError(f"{name} must be non-negative integers")
    return col


class ImageTextEvaluator(_Evaluator):
    """Accumulates images and captions; images are deduplicated by ``image_ids``.

    Feed (image, caption) pairs with :meth:`update`, or images and captions separately with
    :meth:`update_images` and :meth:`update_texts` (a split whose images need not all have a
    caption). Relevance is each caption's image, or by group when every image and caption
    was given a ``groups`` label (image ``i`` and caption ``j`` match when the groups are equal).

    Example:
        >>> import gssf
        >>> ev = ImageTextEvaluator(ks=(1,))
        >>> img = torch.eye(4)
        >>> ev.update(img.repeat_interleave(2, 0), img.repeat_interleave(2, 0), torch.arange(4).repeat_interleave(2))
        >>> ev.compute(gssf.create_similarity("cosine"))["rsum"]
        200.0
    """

    def __init__(
        self,
        ks: Sequence[int] = IT_KS,
        folds: Optional[int] = None,
        chunk_size: int = 1024,
        *,
        distributed: Optional[bool] = None,
    ) -> None:
        super().__init__(("texts", "image_ids", "text_ids", "text_groups"), chunk_size, distributed)
        self._images = _Store(("images", "image_ids", "image_groups"))
        self.ks, self.folds = tuple(ks), folds

    def reset(self) -> None:
        super().reset()
        self._images.reset()

    def update(self, images: Tensor, texts: Tensor, image_ids: Any, text_ids: Optional[Any] = None) -> None:
        """Add a batch of pairs: ``images (B, D)`` (repeated per caption is fine), ``texts (B, D)``,
        ``image_ids (B,)`` the image of each pair, optional unique ``text_ids (B,)``.

        Images are ordered by id at ``compute`` (``folds`` follow that order); texts by
        ``text_ids`` when given, else by arrival.
        """
        images, texts = _embeddings(images, "images"), _embeddings(texts, "texts")
        if images.shape[0] != texts.shape[0]:
            raise ValueError(f"batch fields have different lengths: images {images.shape[0]}, texts {texts.shape[0]}")
        self.update_images(images, image_ids)
        self.update_texts(texts, image_ids, text_ids)

    def update_images(self, images: Tensor, image_ids: Any, groups: Optional[Any] = None) -> None:
        """Add ``images (B, D)`` with their ids ``(B,)`` and, for relevance by group, ``groups (B,)``."""
        images = _embeddings(images, "images")
        n, dev = images.shape[0], images.device
        self._images.add(
            images=images, image_ids=_as_column(image_ids, n, "image_ids", dev),
            image_groups=_groups(groups, n, "image groups", dev),
        )

    def update_texts(
        self, texts: Tensor, image_ids: Optional[Any] = None, text_ids: Optional[Any] = None,
        groups: Optional[Any] = None,
    ) -> None:
        """Add captions ``texts (B, D)``: each with its image's id ``image_ids (B,)``, or (relevance by
        group) with ``groups (B,)``; optional unique ``text_ids (B,)``."""
        texts = _embeddings(texts, "texts")
        n, dev = texts.shape[0], texts.device
        if image_ids is None and groups is None:
            raise ValueError("update_texts needs the image_ids of the captions, or their groups")
        self._store.add(
            texts=texts, image_ids=_ids(image_ids, n, "image_ids", dev), text_ids=_ids(text_ids, n, "text_ids", dev),
            text_groups=_groups(groups, n, "text groups", dev),
        )

    def compute(
        self,
        similarity: Any,
        *,
        ks: Optional[Sequence[int]] = None,
        folds: Optional[int] = None,
        broadcast: bool = False,
        per_query: bool = False,
    ) -> Optional[Dict[str, Any]]:
        """Metrics of :func:`~gssf.evaluation.image_text_metrics` (``None`` on ranks other than 0 unless ``broadcast``).

        ``per_query=True`` adds the per-query values: images in id order, texts in
        ``text_ids`` order (arrival order without ids).
        """

        def run(t: Dict[str, Tensor], i: Dict[str, Tensor]) -> Dict[str, Any]:
            keep_img = _first_of_each_id(i["image_ids"])
            uniq, image_groups = i["image_ids"][keep_img], i["image_groups"][keep_img]
            if bool((t["text_ids"] >= 0).all()):
                t = {k: v[_first_of_each_id(t["text_ids"])] for k, v in t.items()}
            relevance = _relevance(uniq, image_groups, t)
            return image_text_metrics_from_embeddings(
                i["images"][keep_img], t["texts"], similarity, **relevance, chunk_size=self.chunk_size,
                ks=tuple(ks or self.ks), folds=folds if folds is not None else self.folds, per_query=per_query,
            )

        return self._finish(run, broadcast, self._store, self._images)


def _relevance(image_ids: Tensor, image_groups: Tensor, texts: Dict[str, Tensor]) -> Dict[str, Any]:
    """``txt2img`` from the captions' image ids, or the groups when every row has one."""
    if bool((image_groups >= 0).all()) and bool((texts["text_groups"] >= 0).all()):
        return dict(image_groups=image_groups.cpu(), text_groups=texts["text_groups"].cpu())
    if bool((image_groups >= 0).any()) or bool((texts["text_groups"] >= 0).any()):
        raise ValueError("give groups for every image and every caption, or for none")
    of_text = texts["image_ids"]
    if bool((of_text < 0).any()):
        raise ValueError("a caption was added without its image id (update_texts(image_ids=...))")
    txt2img = torch.searchsorted(image_ids, of_text).clamp_(max=max(image_ids.numel() - 1, 0))
    missing = image_ids[txt2img] != of_text
    if bool(missing.any()):
        raise ValueError(f"captions refer to image ids that were never added: {of_text[missing][:5].tolist()}")
    return dict(txt2img=txt2img.cpu())


class ReIDEvaluator(_Evaluator):
    """Accumulates query and gallery embeddings with identities and cameras."""

    def __init__(
        self,
        max_rank: int = 50,
        ks: Sequence[int] = REID_KS,
        ap: str = "standard",
        chunk_size: int = 1024,
        rerank: Optional[Dict[str, Any]] = None,
        *,
        distributed: Optional[bool] = None,
    ) -> None:
        super().__init__(("emb", "pids", "cams", "is_query", "ids"), chunk_size, distributed)
        self.max_rank, self.ks, self.ap, self.rerank = max_rank, tuple(ks), ap, rerank

    def update(self, embeddings: Tensor, pids: Any, cams: Any, is_query: Flag, ids: Optional[Any] = None) -> None:
        """Add ``embeddings (B, D)`` with ``pids (B,)``, ``cams (B,)``; ``is_query``: one bool
        for the batch or ``(B,)``; optional unique sample ``ids (B,)`` (deduplication, order)."""
        self._add_items(embeddings, ids, is_query, pids=pids, cams=cams)

    def compute(self, similarity: Any, *, broadcast: bool = False, per_query: bool = False) -> Optional[Dict[str, Any]]:
        """Metrics of :func:`~gssf.evaluation.reid_metrics` (plus ``rerank_*`` when configured).

        With ``per_query``, ``query_index`` counts the queries in ``ids`` order (arrival order without ids).
        """

        def run(c: Dict[str, Tensor]) -> Dict[str, Any]:
            c = _dedupe(c)
            q, g = c["is_query"], ~c["is_query"]
            if not bool(q.any()) or not bool(g.any()):
                raise ValueError("re-ID needs both query and gallery embeddings (see is_query in update())")
            return reid_metrics_from_embeddings(
                c["emb"][q], c["emb"][g], similarity,
                query_pids=c["pids"][q].cpu(), gallery_pids=c["pids"][g].cpu(),
                query_cams=c["cams"][q].cpu(), gallery_cams=c["cams"][g].cpu(),
                chunk_size=self.chunk_size, max_rank=self.max_rank, ks=self.ks, ap=self.ap, rerank=self.rerank,
                per_query=per_query,
            )

        return self._finish(run, broadcast)


class RetrievalEvaluator(_Evaluator):
    """Accumulates embeddings with class labels; leave-one-out unless some are gallery items."""

    def __init__(
        self, ks: Sequence[int] = RET_KS, chunk_size: int = 1024, *, distributed: Optional[bool] = None
    ) -> None:
        super().__init__(("emb", "labels", "is_query", "ids"), chunk_size, distributed)
        self.ks = tuple(ks)

    def update(self, embeddings: Tensor, labels: Any, ids: Optional[Any] = None, is_query: Flag = True) -> None:
        """Add ``embeddings (B, D)`` with integer ``labels (B,)``; ``is_query=False`` marks
        gallery items of a query/gallery split; optional unique ``ids (B,)``."""
        self._add_items(embeddings, ids, is_query, labels=labels)

    def compute(self, similarity: Any, *, broadcast: bool = False, per_query: bool = False) -> Optional[Dict[str, Any]]:
        """Metrics of :func:`~gssf.evaluation.retrieval_metrics`.

        With ``per_query``, ``query_index`` counts the queries in ``ids`` order (arrival order without ids).
        """

        def run(c: Dict[str, Tensor]) -> Dict[str, Any]:
            c = _dedupe(c)
            q, g = c["is_query"], ~c["is_query"]
            if not bool(g.any()):
                gallery, gallery_labels = None, None
            else:
                gallery, gallery_labels = c["emb"][g], c["labels"][g].cpu()
            return retrieval_metrics_from_embeddings(
                c["emb"][q], gallery, similarity, query_labels=c["labels"][q].cpu(), gallery_labels=gallery_labels,
                ks=self.ks, chunk_size=self.chunk_size, per_query=per_query,
            )

        return self._finish(run, broadcast)


def _dedupe(c: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Keep the first row of each sample id (all rows when no ids were given)."""
    if bool((c["ids"] < 0).any()):
        return c
    keep = _first_of_each_id(c["ids"])
    return {k: v[keep] for k, v in c.items()}
