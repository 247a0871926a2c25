"""The three task types the trainer knows: what a batch is, which loss call, which evaluator.

* ``image_text``: a training item is a caption; its image's index is the id of both the
  caption and the image, so captions of one image are never negatives of each other.
  Datasets with groups (many images per caption) train on every (image, caption) pair of
  a group, id = the group, and evaluate "relevant if same group" on both sides.
  Evaluation: :func:`gssf.evaluation.image_text_metrics_from_embeddings` (rsum).
* ``retrieval``: items are images with class labels; leave-one-out evaluation with
  :func:`gssf.evaluation.retrieval_metrics_from_embeddings` (R@1).
* ``reid``: items are images with identity labels; split ``S`` is evaluated with the
  splits ``S-query`` and ``S-gallery`` (or the pair ``QUERY/GALLERY`` named explicitly,
  e.g. ``query/gallery`` for Market-1501) through
  :func:`gssf.evaluation.reid_metrics_from_embeddings` (mAP), optionally with
  k-reciprocal re-ranking computed from the learned similarity (``rerank_`` keys).

A task turns config into explicit arguments of library functions; the library functions
themselves (heads, losses, evaluators) never see the config.
"""
from __future__ import annotations

import torch

from gssf.train.config_schema import TrainConfig
from gssf.train.criterion import LossSum, build_criterion
from gssf.train.data import SplitData, load_split, reid_pair, subset_indices
from gssf.train.tasks.base import EncoderModule, Task
from gssf.train.tasks.image_text import ImageTextTask
from gssf.train.tasks.unimodal import ReidTask, RetrievalTask, UniModalTask
from gssf.utils.registry import Registry

__all__ = [
    "SplitData", "Task", "ImageTextTask", "UniModalTask", "make_task", "LossSum", "EncoderModule", "reid_pair",
    "subset_indices", "TASKS", "build_criterion", "load_split", "ReidTask", "RetrievalTask",
]  # fmt: skip


#: The task registry (:class:`gssf.utils.registry.Registry`): ``data.task`` -> task class.
TASKS: Registry[type] = Registry("task")
for _kind, _cls in (("image_text", ImageTextTask), ("reid", ReidTask), ("retrieval", RetrievalTask)):
    _cls.kind = _kind
    TASKS.register(_kind, _cls)


def make_task(cfg: TrainConfig, device: torch.device, progress: bool = False) -> Task:
    """The task object of ``cfg.data.task``."""
    return TASKS.create(cfg.data.task, cfg, device, progress)
