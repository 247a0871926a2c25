"""Task ``image_text``: cross-modal retrieval between images and captions (relevance by image or by group)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from gssf.evaluation import ImageTextEvaluator
from gssf.models import DualEncoder
from gssf.train.config_schema import TrainConfig
from gssf.train.distributed import all_gather_nograd, all_gather_with_grad
from gssf.train.tasks.base import Task

__all__ = ["ImageTextTask"]


def _many_to_many(image_groups: Tensor, text_groups: Tensor) -> bool:
    """Whether some group has more than one image and more than one caption."""
    n_img = torch.bincount(image_groups)
    n_txt = torch.bincount(text_groups, minlength=n_img.numel())
    n_img = torch.nn.functional.pad(n_img, (0, n_txt.numel() - n_img.numel()))
    return bool(((n_img > 1) & (n_txt > 1)).any())


def _covering_pairs(image_groups: Tensor, text_groups: Tensor, seed: int) -> Tuple[Tensor, Tensor]:
    """Per group, ``max(images, captions)`` (image, caption) pairs using each of both at least once.

    Pair ``j`` of a group takes image ``p[j mod n_images]`` and caption ``q[j mod n_captions]``
    of random orders ``p`` and ``q`` (drawn from ``seed``), so the extra pairs of the larger
    side meet random partners. Groups in increasing order; a group without images or captions
    gives none.
    """
    gen = torch.Generator().manual_seed(int(seed) % (1 << 63))
    img_order = torch.argsort(image_groups, stable=True)
    txt_order = torch.argsort(text_groups, stable=True)
    groups = torch.unique(torch.cat([image_groups, text_groups]))
    n_img = torch.bincount(image_groups, minlength=int(groups.max()) + 1)
    n_txt = torch.bincount(text_groups, minlength=int(groups.max()) + 1)
    start_img = torch.cumsum(n_img, 0) - n_img
    start_txt = torch.cumsum(n_txt, 0) - n_txt
    imgs, txts = [], []
    for g in groups.tolist():
        a, b = int(n_img[g]), int(n_txt[g])
        if not a or not b:
            continue
        m = max(a, b)
        j = torch.arange(m)
        p = img_order[int(start_img[g]) + torch.randperm(a, generator=gen)]
        q = txt_order[int(start_txt[g]) + torch.randperm(b, generator=gen)]
        imgs.append(p[j % a])
        txts.append(q[j % b])
    if not imgs:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(imgs), torch.cat(txts)


class ImageTextTask(Task):
    """Image <-> caption retrieval (``image_text``): items are (image, caption) pairs (rsum)."""

    default_metric = "rsum"
    loss_kind = "cross_modal"
    modalities = ("image", "text")

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        super().check_config(cfg)
        if cfg.data.max_train_items:
            raise ValueError("config key 'data.max_train_items' is for the uni-modal tasks (reid, retrieval)")
        if cfg.train.sampler == "pk":
            raise ValueError("config key 'train.sampler': pk needs labels; use random for task image_text")

    def input_dims(self) -> Dict[str, int]:
        dims = {}
        tr = self.train_split()
        for modality in ("image", "text"):
            if modality in self.finetune:
                dims[modality] = int(self._encoder(modality).dim)
            else:
                feats = tr.image if modality == "image" else tr.text
                if feats is None:
                    raise ValueError(f"split {self.cfg.data.train_split!r} has no {modality} features")
                dims[modality] = int(feats.shape[1])
        return dims

    def build_model(self, input_dims: Dict[str, int]) -> nn.Module:
        return DualEncoder(self._tower("image", input_dims["image"]), self._tower("text", input_dims["text"]), self.build_similarity())

    def pairs(self) -> Tuple[Tensor, Tensor, Tensor]:
        """The training pairs of the current epoch: ``(image index, caption index, id)`` per item.

        Without groups an item is a caption, paired with its image, id = the image. With
        groups, id = the group, so two images of one caption are never negatives of each
        other: where a group has one caption (or one image) its items are all its (image,
        caption) pairs; where it has several of both (captions in 28 locales of an emoji
        drawn in 9 styles) all pairs would be their product, so it gives ``max(images,
        captions)`` pairs that use every image and every caption once or more, re-drawn
        each epoch from the run's seed (:meth:`set_epoch`). The number of items never changes.
        """
        epoch = getattr(self, "_epoch", 0)
        if getattr(self, "_pairs_epoch", None) in (epoch, "fixed"):
            return self._pairs
        tr = self.train_split()
        if tr.txt2img is None:
            raise ValueError(f"split {self.cfg.data.train_split!r} has no txt2img: not an image-text split")
        if tr.image_groups is None or tr.text_groups is None:
            txt = torch.arange(tr.txt2img.shape[0])
            self._pairs, self._pairs_epoch = (tr.txt2img, txt, tr.txt2img), "fixed"
        elif not _many_to_many(tr.image_groups, tr.text_groups):
            same = tr.image_groups.reshape(-1, 1) == tr.text_groups.reshape(1, -1)
            img, txt = same.nonzero(as_tuple=True)
            self._pairs, self._pairs_epoch = (img, txt, tr.image_groups.index_select(0, img)), "fixed"
        else:
            img, txt = _covering_pairs(tr.image_groups, tr.text_groups, seed=self.cfg.train.seed * 1_000_003 + epoch)
            self._pairs, self._pairs_epoch = (img, txt, tr.image_groups.index_select(0, img)), epoch
        return self._pairs

    def set_epoch(self, criterion: nn.Module, epoch: int) -> None:
        super().set_epoch(criterion, epoch)
        self._epoch = int(epoch)

    def num_items(self) -> int:
        return int(self.pairs()[0].shape[0])

    def loss(self, model: nn.Module, criterion: nn.Module, idx: Tensor) -> Tensor:
        tr = self.train_split()
        img_of, txt_of, id_of = self.pairs()
        img_idx, txt_idx = img_of.index_select(0, idx), txt_of.index_select(0, idx)
        with self._autocast():
            img = model.encode_image(self._inputs(tr, "image", img_idx))
            txt = model.encode_text(self._inputs(tr, "text", txt_idx))
        # distillation on this process's batch: the teacher's embeddings of the same items
        kd = None if self.teacher is None else self.teacher.term(img, txt, img_idx, txt_idx)
        img, txt = all_gather_with_grad(img), all_gather_with_grad(txt)
        ids = all_gather_nograd(id_of.index_select(0, idx).to(self.device))
        loss = criterion(img, txt, ids, ids)
        return loss if kd is None else loss + kd

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, per_query: bool = False) -> Dict[str, Any]:
        data = self.split(split)
        if data.txt2img is None:
            raise ValueError(f"split {split!r} has no txt2img: not an image-text split")
        e = self.cfg.eval
        ev = ImageTextEvaluator(ks=tuple(e.ks or (1, 5, 10)), folds=e.folds, chunk_size=e.chunk_size, distributed=False)
        by_group = data.image_groups is not None and data.text_groups is not None
        for rows, emb in self._embedded(model.encode_image, data, "image", data.num_images):
            ev.update_images(emb, rows, groups=data.image_groups[rows] if by_group else None)
        for rows, emb in self._embedded(model.encode_text, data, "text", int(data.txt2img.shape[0])):
            groups = data.text_groups[rows] if by_group else None
            ev.update_texts(emb, image_ids=data.txt2img[rows], text_ids=rows, groups=groups)
        return self._compute(ev, model, per_query)

    def query_clusters(self, split: str) -> Optional[Dict[str, List[int]]]:
        """One cluster per group (an image and its captions without groups): what was sampled.

        An emoji with 9 drawings and 28 captions is one draw of the benchmark, not 37; a Tux
        Paint stamp and its caption are one draw too (both directions move together).
        """
        data = self.split(split)
        if data.txt2img is None:
            return None
        if data.image_groups is not None and data.text_groups is not None:
            return {"i2t": data.image_groups.tolist(), "t2i": data.text_groups.tolist()}
        return {"i2t": list(range(data.num_images)), "t2i": data.txt2img.tolist()}
