"""Knowledge distillation from a trained teacher run (config section ``distill``).

The teacher is any finished image-text run on the same dataset and training split (for
example 1024-d heads over EfficientNet-Lite2 and all-mpnet-base-v2 features, scored with
cosine). Its embeddings of every training image and caption are computed once, when the
student's run starts; each training batch then adds

    weight * SimilarityDistillationLoss(student similarity, teacher similarity)

over the batch's image x caption score matrix: the student matches the teacher's
row-wise (and, with ``symmetric``, column-wise) softmax score distributions, each side
scored by its own similarity object. So the student's similarity (cosine, GSSF, ...) is
what learns to reproduce the teacher's ranking structure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict

import torch
from torch import Tensor

from gssf.nn.distillation import SimilarityDistillationLoss
from gssf.similarity.base import Similarity

if TYPE_CHECKING:  # pragma: no cover
    from gssf.train.config_schema import DistillConfig
    from gssf.train.tasks import Task

__all__ = ["Teacher", "load_teacher"]


@dataclass
class Teacher:
    """The teacher's fixed training-split embeddings and the distillation term."""

    image: Tensor  # (N_images, D_teacher)
    text: Tensor  # (N_captions, D_teacher)
    loss: SimilarityDistillationLoss
    weight: float
    source: Dict[str, Any]  # path, checkpoint_id, sha256 of the teacher checkpoint

    def term(self, image: Tensor, text: Tensor, image_index: Tensor, text_index: Tensor) -> Tensor:
        """``weight * KD`` of the student's batch embeddings against the teacher's of the same items."""
        dev = image.device
        t_img = self.image.index_select(0, image_index.to(self.image.device)).to(dev)
        t_txt = self.text.index_select(0, text_index.to(self.text.device)).to(dev)
        return self.weight * self.loss(image, text, t_img, t_txt)


def load_teacher(distill: "DistillConfig", student: "Task", similarity: Similarity) -> Teacher:
    """Load the teacher run named by ``distill.teacher`` and embed the student's training items with it.

    Raises ``ValueError`` when the teacher was trained on another dataset or training split,
    or when its training items differ from the student's (counts or caption -> image map).
    """
    from gssf.train.checkpoint import checkpoint_record
    from gssf.train.loading import load_model

    assert distill.teacher is not None
    model, task, meta = load_model(distill.teacher, device=student.device)
    mine, theirs = student.cfg.data, task.cfg.data
    diffs = [
        f"{key}: teacher {getattr(theirs, key)!r}, student {getattr(mine, key)!r}"
        for key in ("task", "dataset", "train_split", "max_train_items", "features_file")
        if getattr(theirs, key) != getattr(mine, key)
    ]
    if diffs:
        raise ValueError(f"distill.teacher {distill.teacher}: not trained on the student's training items ({'; '.join(diffs)})")
    if task.cfg.model.finetune != "none":
        raise ValueError(f"distill.teacher {distill.teacher} fine-tunes an encoder: a teacher must score cached features")
    tr_s, tr_t = student.train_split(), task.train_split()
    same = tr_s.num_images == tr_t.num_images and tr_s.txt2img is not None and tr_t.txt2img is not None
    same = same and torch.equal(tr_s.txt2img.cpu(), tr_t.txt2img.cpu())
    for mine_g, theirs_g in ((tr_s.image_groups, tr_t.image_groups), (tr_s.text_groups, tr_t.text_groups)):
        if (mine_g is None) != (theirs_g is None) or (mine_g is not None and not torch.equal(mine_g.cpu(), theirs_g.cpu())):
            same = False
    if not same:
        raise ValueError(f"distill.teacher {distill.teacher}: its training split holds other items than the student's")
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        image = task._embed(model.encode_image, tr_t, "image", tr_t.num_images)
        text = task._embed(model.encode_text, tr_t, "text", int(tr_t.txt2img.shape[0]))
    loss = SimilarityDistillationLoss(
        similarity, model.similarity, temperature=distill.temperature, symmetric=distill.symmetric
    )
    return Teacher(image=image, text=text, loss=loss, weight=float(distill.weight), source=checkpoint_record(meta))
