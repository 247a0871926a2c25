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

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from gssf.losses import BidirectionalHingeLoss, create_loss
from gssf.models import DualEncoder, EncoderTower, SingleEncoder, build_head
from gssf.similarity import Similarity, create_similarity
from gssf.train.config import TrainConfig
from gssf.train.distributed import all_gather_nograd, all_gather_with_grad
from gssf.train.samplers import PKBatchSampler, RandomBatchSampler
from gssf.utils.registry import Registry

__all__ = [
    "SplitData", "Task", "ImageTextTask", "UniModalTask", "make_task", "LossSum", "EncoderModule", "reid_pair",
    "subset_indices",
]  # fmt: skip


# --------------------------------------------------------------------------- data


@dataclass
class SplitData:
    """One split: feature tensors and/or the raw dataset (when an encoder is fine-tuned)."""

    image: Optional[Tensor] = None  # (N_img, Di) float32 cached features
    text: Optional[Tensor] = None  # (N_txt, Dt)
    txt2img: Optional[Tensor] = None  # (N_txt,) int64
    image_groups: Optional[Tensor] = None  # (N_img,) int64: relevance by group (with text_groups)
    text_groups: Optional[Tensor] = None  # (N_txt,) int64
    labels: Optional[Tensor] = None  # (N_img,) int64
    cams: Optional[Tensor] = None  # (N_img,) int64
    dataset: Any = None  # gssf.data dataset: raw images / captions
    skipped: List[Dict[str, Any]] = field(default_factory=list)  # images left out (data.skip_bad_images)

    @property
    def num_images(self) -> int:
        if self.image is not None:
            return int(self.image.shape[0])
        return len(self.dataset.images)


def _as_tensor(array: Any, dtype: torch.dtype) -> Optional[Tensor]:
    if array is None:
        return None
    t = torch.as_tensor(np.ascontiguousarray(array)).to(dtype)
    if dtype.is_floating_point and t.dim() == 3:
        t = t.mean(dim=1)  # region features (N, R, D): mean-pooled to one vector per image
    return t


def _call_with_supported(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    params = inspect.signature(fn).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return fn(*args, **{k: v for k, v in kwargs.items() if accepts_any or k in params})


def reid_pair(split: str) -> Tuple[str, str]:
    """The ``(query, gallery)`` splits that evaluate re-ID split ``split``.

    ``"S"`` -> ``("S-query", "S-gallery")``; ``"QUERY/GALLERY"`` names the pair explicitly
    (Market-1501 and DukeMTMC-reID: ``"query/gallery"``).
    """
    if "/" not in split:
        return f"{split}-query", f"{split}-gallery"
    parts = split.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a re-ID split pair is written QUERY/GALLERY (e.g. query/gallery), got {split!r}")
    return parts[0], parts[1]


def subset_indices(n: int, size: int) -> Tensor:
    """A fixed random subset of ``size`` of ``n`` items, sorted (seed-independent: identical data for every seed)."""
    if size <= 0 or size >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(0)
    return torch.randperm(n, generator=g)[:size].sort().values


def _check_root(cfg: TrainConfig) -> None:
    """A dataset the user brings needs ``data.root``: say so before anything else fails."""
    d = cfg.data
    if d.features_file is not None or d.dataset is None or d.root is not None:
        return
    from gssf.data.registry import get_dataset_info

    try:
        info = get_dataset_info(d.dataset)
    except KeyError:
        return  # the loader reports unknown names itself
    if not info.embedded:
        raise FileNotFoundError(
            f"config key 'data.root' is required for dataset {d.dataset!r} (not shipped with gssf): "
            f"--set data.root=/path/to/your/copy; expected layout: {info.layout}"
        )


def _take(ds: Any, rows: Tensor) -> Any:
    """The items ``rows`` of a uni-modal dataset, as a dataset of its own (its own feature cache key)."""
    from gssf.data.base import UniModalDataset

    idx = rows.numpy()
    pick = lambda seq: None if seq is None else [seq[i] for i in idx]  # noqa: E731
    return UniModalDataset(
        name=ds.name,
        split=ds.split,
        images=pick(ds.images),
        labels=ds.labels[idx],
        cams=None if ds.cams is None else ds.cams[idx],
        categories=pick(ds.categories),
        label_names=ds.label_names,
        image_features=None if ds.image_features is None else ds.image_features[idx],
        root=ds.root,
        meta={**ds.meta, "subset": int(idx.size)},
    )


def load_split(
    cfg: TrainConfig, split: str, raw: bool = False, progress: bool = False, max_items: int = 0
) -> SplitData:
    """Features (and, with ``raw``, the dataset itself) of ``split`` as described by ``cfg.data``.

    ``max_items``: keep the fixed random subset :func:`subset_indices` of the split's items
    (uni-modal splits); only those are encoded.
    """
    d = cfg.data
    _check_root(cfg)
    modalities = {"image", "text"} if d.task == "image_text" else {"image"}
    finetuned = {"both": {"image", "text"}, "none": set()}.get(cfg.model.finetune, {cfg.model.finetune})
    dataset: Any = None
    if d.features_file is None and (raw or max_items):
        from gssf import data as gdata

        dataset = gdata.load(d.dataset, split=split, root=d.root)
        if max_items and max_items < len(dataset):
            dataset = _take(dataset, subset_indices(len(dataset), max_items))
    if raw and modalities <= finetuned:  # every tower runs its encoder: no cached features needed
        ds = dataset
        return SplitData(
            txt2img=_as_tensor(getattr(ds, "txt2img", None), torch.long),
            labels=_as_tensor(getattr(ds, "labels", None), torch.long),
            cams=_as_tensor(getattr(ds, "cams", None), torch.long),
            image_groups=_as_tensor(getattr(ds, "image_groups", None), torch.long),
            text_groups=_as_tensor(getattr(ds, "text_groups", None), torch.long),
            dataset=ds,
        )
    if d.features_file is not None:
        from gssf.features import load_features_file

        fs = load_features_file(d.features_file.format(split=split))
    else:
        from gssf.features import get_features

        kwargs: Dict[str, Any] = dict(
            image_encoder=d.image_encoder, text_encoder=d.text_encoder, resolution=d.resolution, progress=progress,
        )
        if d.skip_bad_images:
            kwargs["skip_bad_images"] = True
        if dataset is not None:  # already loaded (and perhaps cut to a subset)
            fs = _call_with_supported(get_features, dataset, **kwargs)
        else:
            if d.root is not None:
                kwargs["root"] = d.root
            fs = _call_with_supported(get_features, d.dataset, split, **kwargs)
    if d.features_file is not None and max_items and max_items < fs.num_images:
        rows = subset_indices(fs.num_images, max_items).numpy()
        fs.image = fs.image[rows]
        fs.labels = None if fs.labels is None else fs.labels[rows]
        fs.cams = None if fs.cams is None else fs.cams[rows]
    data = SplitData(
        image=_as_tensor(getattr(fs, "image", None), torch.float32),
        text=_as_tensor(getattr(fs, "text", None), torch.float32),
        txt2img=_as_tensor(getattr(fs, "txt2img", None), torch.long),
        labels=_as_tensor(getattr(fs, "labels", None), torch.long),
        cams=_as_tensor(getattr(fs, "cams", None), torch.long),
        image_groups=_as_tensor(getattr(fs, "image_groups", None), torch.long),
        text_groups=_as_tensor(getattr(fs, "text_groups", None), torch.long),
    )
    if raw:
        data.dataset = dataset
    data.skipped = list(getattr(fs, "meta", {}).get("skipped_images", []))
    return data


# --------------------------------------------------------------------------- losses


class LossSum(nn.Module):
    """A weighted sum of losses sharing one similarity: ``sum_k w_k * loss_k(*inputs)``."""

    def __init__(self, terms: Dict[str, nn.Module], weights: Dict[str, float]) -> None:
        super().__init__()
        self.terms = nn.ModuleDict(terms)
        self.weights = {k: float(weights.get(k, 1.0)) for k in terms}

    def forward(self, *inputs: Any) -> Tensor:
        total: Optional[Tensor] = None
        for name, term in self.terms.items():
            value = self.weights[name] * term(*inputs)
            total = value if total is None else total + value
        assert total is not None
        return total


def build_criterion(cfg: TrainConfig, similarity: Similarity, num_classes: int = 0) -> nn.Module:
    """The loss (or weighted sum of losses) named by ``cfg.loss``, scoring with ``similarity``."""
    lo = cfg.loss
    per_loss: Dict[str, Dict[str, Any]] = {
        "hinge": dict(margin=lo.margin, max_violation=lo.max_violation, reduction=lo.reduction),
        "infonce": dict(
            temperature=lo.temperature,
            learn_temperature=lo.learn_temperature,
            min_temperature=lo.min_temperature,
            max_temperature=lo.max_temperature,
        ),
        "triplet": dict(margin=None if lo.soft_margin else lo.margin),
        "id_ce": dict(
            num_classes=num_classes, dim=cfg.model.embed_dim, temperature=lo.id_temperature,
            label_smoothing=lo.label_smoothing,
        ),
    }
    names = lo.name.split("+")
    terms = {n: create_loss(n, similarity=similarity, **per_loss.get(n, {})) for n in names}
    if len(terms) == 1 and not lo.weights:
        return terms[names[0]]
    return LossSum(terms, lo.weights)


# --------------------------------------------------------------------------- encoders


class EncoderModule(nn.Module):
    """A :class:`gssf.encoders` encoder as a module: its weights become trainable submodules.

    ``prepare`` turns raw items (images or captions) into the encoder's input tensors;
    ``forward`` runs the encoder with autograd.
    """

    def __init__(self, encoder: Any, modality: str) -> None:
        super().__init__()
        if modality not in ("image", "text"):
            raise ValueError(f"modality must be image or text, got {modality!r}")
        self.net = encoder.module
        object.__setattr__(self, "_encoder", encoder)  # not a Module: keep out of the registry
        self.modality = modality

    def prepare(self, items: Sequence[Any]) -> Any:
        enc = self._encoder
        return enc.preprocess(list(items)) if self.modality == "image" else enc.tokenize([str(t) for t in items])

    def forward(self, inputs: Any) -> Tensor:
        enc = self._encoder
        return enc.forward_images(inputs) if self.modality == "image" else enc.forward_texts(inputs)


def _to_device(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, Tensor):
        return inputs.to(device)
    if isinstance(inputs, dict) or hasattr(inputs, "items"):
        return {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in inputs.items()}
    return inputs


# --------------------------------------------------------------------------- tasks


class Task:
    """Shared task logic; subclasses define items, the loss call and evaluation."""

    default_metric = ""
    lower_is_better = ("medR", "meanR")

    def __init__(self, cfg: TrainConfig, device: torch.device, progress: bool = False) -> None:
        self.cfg = cfg
        self.device = device
        self.progress = progress
        self._splits: Dict[str, SplitData] = {}
        self.encoders: Dict[str, Any] = {}
        #: Set by the trainer when ``distill.teacher`` names a teacher run (:mod:`gssf.train.distill`).
        self.teacher: Optional[Any] = None

    # ---- data
    @property
    def finetune(self) -> List[str]:
        f = self.cfg.model.finetune
        return [] if f == "none" else (["image", "text"] if f == "both" else [f])

    def split(self, name: str) -> SplitData:
        if name not in self._splits:
            self._splits[name] = load_split(self.cfg, name, raw=bool(self.finetune), progress=self.progress)
        return self._splits[name]

    def train_split(self) -> SplitData:
        d = self.cfg.data
        if not d.max_train_items:
            return self.split(d.train_split)
        key = f"{d.train_split}[subset {d.max_train_items}]"
        if key not in self._splits:
            self._splits[key] = load_split(
                self.cfg, d.train_split, raw=bool(self.finetune), progress=self.progress, max_items=d.max_train_items
            )
        return self._splits[key]

    @property
    def metric(self) -> str:
        return self.default_metric if self.cfg.eval.metric == "auto" else self.cfg.eval.metric

    def better(self, new: float, old: Optional[float]) -> bool:
        if old is None:
            return True
        if any(self.metric.endswith(s) for s in self.lower_is_better):
            return new < old
        return new > old

    # ---- model
    def _encoder(self, modality: str) -> Any:
        if modality not in self.encoders:
            from gssf import encoders

            name = self.cfg.data.image_encoder if modality == "image" else self.cfg.data.text_encoder
            kw = {"resolution": self.cfg.data.resolution} if modality == "image" else {}
            enc = encoders.create(name, device=self.device, **kw)
            self.encoders[modality] = enc
        return self.encoders[modality]

    def input_dims(self) -> Dict[str, int]:
        raise NotImplementedError

    def _tower(self, modality: str, in_dim: int) -> nn.Module:
        m = self.cfg.model
        element_dim = None
        if m.head == "pooled":
            element_dim = m.element_dims.get(modality) or self._element_dim(modality)
        attention = None
        if m.head == "pooled" and m.pool == "attention":
            attention = {"similarity": m.attention_similarity, "heads": m.attention_heads,
                         "similarity_kwargs": m.attention_kwargs, "temperature": m.attention_temperature}  # fmt: skip
        head = build_head(
            in_dim, m.embed_dim, kind=m.head, hidden_dim=m.hidden_dim, num_layers=m.num_layers, dropout=m.dropout,
            element_dim=element_dim, pool=m.pool, attention=attention,
        )
        if modality in self.finetune:
            enc = self._encoder(modality)
            if not getattr(enc, "trainable", True):
                raise ValueError(
                    f"model.finetune={self.cfg.model.finetune!r} asks to fine-tune the {modality} encoder {enc.name!r}, "
                    "which is inference-only: train on its cached features (model.finetune: none)"
                )
            return EncoderTower(EncoderModule(enc, modality), head, trainable=True)
        return head

    def _element_dim(self, modality: str) -> int:
        """The set-element size a pooled head reads, from the set encoder's class (no weights loaded)."""
        from gssf.encoders.registry import get_encoder_info

        name = self.cfg.data.image_encoder if modality == "image" else self.cfg.data.text_encoder
        size = getattr(get_encoder_info(name).factory, "element_dim", None)
        if not size:
            raise ValueError(
                f"model.head=pooled needs a set encoder for the {modality} side ({name!r} gives one vector per item): "
                f"use e.g. efficientnet-lite0-regions / minilm-tokens, or set model.element_dims.{modality}"
            )
        return int(size)

    def build_similarity(self) -> Similarity:
        s = self.cfg.similarity
        return create_similarity(s.name, dim=self.cfg.model.embed_dim, **s.kwargs)

    def build_model(self, input_dims: Dict[str, int]) -> nn.Module:
        raise NotImplementedError

    def num_classes(self) -> int:
        return 0

    def set_epoch(self, criterion: nn.Module, epoch: int) -> None:
        """Per-epoch loss settings (the hinge's hardest-negative warm-up)."""
        lo = self.cfg.loss
        for m in criterion.modules():
            if isinstance(m, BidirectionalHingeLoss):
                m.max_violation = lo.max_violation and epoch >= lo.hardest_after_epochs

    # ---- inputs
    def _inputs(self, data: SplitData, modality: str, idx: Tensor) -> Any:
        if modality in self.finetune:
            enc = self._encoder(modality)
            ds = data.dataset
            items = [ds.image(int(i)) for i in idx] if modality == "image" else [ds.captions[int(i)] for i in idx]
            tower_in = enc.preprocess(items) if modality == "image" else enc.tokenize([str(t) for t in items])
            return _to_device(tower_in, self.device)
        feats = data.image if modality == "image" else data.text
        assert feats is not None, f"no {modality} features"
        return feats.index_select(0, idx).to(self.device)

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.train.precision == "bf16")

    def _embed(self, encode: Callable[[Any], Tensor], data: SplitData, modality: str, n: int) -> Tensor:
        bs = self.cfg.eval.batch_size
        out = []
        for start in range(0, n, bs):
            idx = torch.arange(start, min(n, start + bs))
            with self._autocast():
                out.append(encode(self._inputs(data, modality, idx)).float())
        return torch.cat(out)

    # ---- per task
    def data_splits(self, split: str) -> List[str]:
        """The data splits that evaluating ``split`` reads."""
        return [split]

    def num_items(self) -> int:
        raise NotImplementedError

    def sampler(self) -> Any:
        t = self.cfg.train
        return RandomBatchSampler(self.num_items(), t.batch_size, seed=t.seed, drop_last=t.drop_last)

    def loss(self, model: nn.Module, criterion: nn.Module, idx: Tensor) -> Tensor:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, split: str, per_query: bool = False) -> Dict[str, Any]:
        """The protocol's metrics of ``split``; ``per_query`` adds the per-query values (for CIs)."""
        raise NotImplementedError

    def query_clusters(self, split: str) -> Optional[Dict[str, List[int]]]:
        """Queries of ``split`` that a bootstrap must resample together (:func:`gssf.stats.paired_bootstrap`).

        ``{query set: one label per query}`` or None (every query an independent draw).
        """
        return None


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
    default_metric = "rsum"

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
        from gssf.evaluation import image_text_metrics_from_embeddings

        data = self.split(split)
        if data.txt2img is None:
            raise ValueError(f"split {split!r} has no txt2img: not an image-text split")
        images = self._embed(model.encode_image, data, "image", data.num_images)
        texts = self._embed(model.encode_text, data, "text", int(data.txt2img.shape[0]))
        e = self.cfg.eval
        if data.image_groups is not None and data.text_groups is not None:
            relevance: Dict[str, Any] = dict(txt2img=None, image_groups=data.image_groups, text_groups=data.text_groups)
        else:
            relevance = dict(txt2img=data.txt2img.to(images.device))
        return image_text_metrics_from_embeddings(
            images, texts, similarity=model.similarity, **relevance,
            chunk_size=e.chunk_size, ks=tuple(e.ks or (1, 5, 10)), folds=e.folds, per_query=per_query,
        )


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


class UniModalTask(Task):
    """Re-identification (``reid``) and fine-grained retrieval (``retrieval``)."""

    @property
    def default_metric(self) -> str:  # type: ignore[override]
        return "mAP" if self.cfg.data.task == "reid" else "R@1"

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

    def data_splits(self, split: str) -> List[str]:
        return list(reid_pair(split)) if self.cfg.data.task == "reid" else [split]

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

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str, per_query: bool = False) -> Dict[str, Any]:
        from gssf.evaluation import reid_metrics_from_embeddings, retrieval_metrics_from_embeddings

        e = self.cfg.eval
        if self.cfg.data.task == "retrieval":
            data = self.split(split)
            emb = self._embed(model.encode, data, "image", data.num_images)
            return retrieval_metrics_from_embeddings(
                emb, model.similarity, data.labels, ks=tuple(e.ks or (1, 2, 4, 8)), chunk_size=e.chunk_size,
                per_query=per_query,
            )
        q_name, g_name = reid_pair(split)
        q, g = self.split(q_name), self.split(g_name)
        qe = self._embed(model.encode, q, "image", q.num_images)
        ge = self._embed(model.encode, g, "image", g.num_images)
        rerank = dict(k1=e.rerank_k1, k2=e.rerank_k2, lambda_value=e.rerank_lambda) if e.rerank else None
        return reid_metrics_from_embeddings(
            qe, ge, model.similarity, q.labels, g.labels, q.cams, g.cams,
            chunk_size=e.chunk_size, max_rank=min(e.max_rank, g.num_images), ks=tuple(e.ks or (1, 5, 10)),
            rerank=rerank, per_query=per_query,
        )


#: The task registry (:class:`gssf.utils.registry.Registry`): ``data.task`` -> task class.
TASKS: Registry[type] = Registry("task")
TASKS.register("image_text", ImageTextTask)
TASKS.register("reid", UniModalTask)
TASKS.register("retrieval", UniModalTask)


def make_task(cfg: TrainConfig, device: torch.device, progress: bool = False) -> Task:
    """The task object of ``cfg.data.task``."""
    return TASKS.create(cfg.data.task, cfg, device, progress)
