"""Tasks ``reid`` and ``retrieval``: images with identity or class labels (re-ID query/gallery, leave-one-out)."""
from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import Tensor, nn

from gssf.evaluation import ReIDEvaluator, RetrievalEvaluator
from gssf.models import SingleEncoder
from gssf.train.config_schema import TrainConfig
from gssf.train.data import reid_pair
from gssf.train.distributed import all_gather_nograd, all_gather_with_grad
from gssf.train.samplers import PKBatchSampler
from gssf.train.tasks.base import Task

__all__ = ["ReidTask", "RetrievalTask", "UniModalTask"]


class UniModalTask(Task):
    """Images with labels: the shared part of re-identification and fine-grained retrieval."""

    loss_kind = "unimodal"
    modalities = ("image",)

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        super().check_config(cfg)
        if cfg.distill.teacher is not None:
            raise ValueError(f"config key 'distill.teacher' needs data.task image_text, got {cfg.data.task!r}")

    def _train_labels(self) -> Tensor:
        tr = self.train_split()
        if tr.labels is None:
            raise ValueError(f"split {self.cfg.data.train_split!r} has no labels")
        if not hasattr(self, "_label_index"):
            # Contiguous class indices 0..C-1 (identity cross-entropy needs them).
            self._classes, self._label_index = torch.unique(tr.labels, return_inverse=True)
        return self._label_index

    def num_classes(self) -> int:
        self._train_labels()
        return int(self._classes.numel())

    def input_dims(self) -> Dict[str, int]:
        if "image" in self.finetune:
            return {"image": int(self._encoder("image").dim)}
        tr = self.train_split()
        assert tr.image is not None
        return {"image": int(tr.image.shape[1])}

    def build_model(self, input_dims: Dict[str, int]) -> nn.Module:
        return SingleEncoder(self._tower("image", input_dims["image"]), self.build_similarity())

    def num_items(self) -> int:
        return int(self._train_labels().shape[0])


    def sampler(self) -> Any:
        t = self.cfg.train
        if t.sampler == "pk":
            return PKBatchSampler(self._train_labels(), t.batch_size, instances=t.pk_instances, seed=t.seed)
        return super().sampler()

    def loss(self, model: nn.Module, criterion: nn.Module, idx: Tensor) -> Tensor:
        tr = self.train_split()
        labels = self._train_labels().index_select(0, idx)
        with self._autocast():
            emb = model.encode(self._inputs(tr, "image", idx))
        emb = all_gather_with_grad(emb)
        labels = all_gather_nograd(labels.to(self.device))
        return criterion(emb, labels)


class RetrievalTask(UniModalTask):
    """Fine-grained retrieval (``retrieval``): leave-one-out over a split's items (R@1)."""

    default_metric = "R@1"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, per_query: bool = False) -> Dict[str, Any]:
        e = self.cfg.eval
        data = self.split(split)
        ev = RetrievalEvaluator(ks=tuple(e.ks or (1, 2, 4, 8)), chunk_size=e.chunk_size, distributed=False)
        for rows, emb in self._embedded(model.encode, data, "image", data.num_images):
            ev.update(emb, data.labels[rows])
        return self._compute(ev, model, per_query)


class ReidTask(UniModalTask):
    """Re-identification (``reid``): split ``S`` is the pair ``S-query`` / ``S-gallery`` (mAP)."""

    default_metric = "mAP"
    reranks = True

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        super().check_config(cfg)
        d = cfg.data
        for key, split in (("data.val_split", d.val_split), ("data.test_split", d.test_split)):
            if split is not None:
                try:
                    reid_pair(split)
                except ValueError as exc:
                    raise ValueError(f"config key {key!r}: {exc}") from None

    def data_splits(self, split: str) -> List[str]:
        return list(reid_pair(split))

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, per_query: bool = False) -> Dict[str, Any]:
        e = self.cfg.eval
        q_name, g_name = reid_pair(split)
        q, g = self.split(q_name), self.split(g_name)
        rerank = dict(k1=e.rerank_k1, k2=e.rerank_k2, lambda_value=e.rerank_lambda) if e.rerank else None
        ev = ReIDEvaluator(
            max_rank=min(e.max_rank, g.num_images), ks=tuple(e.ks or (1, 5, 10)), chunk_size=e.chunk_size,
            rerank=rerank, distributed=False,
        )
        for data, is_query in ((q, True), (g, False)):
            for rows, emb in self._embedded(model.encode, data, "image", data.num_images):
                ev.update(emb, data.labels[rows], data.cams[rows], is_query)
        return self._compute(ev, model, per_query)

