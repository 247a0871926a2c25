"""What every task shares: the config, the splits, the towers and similarity it builds, and
the encoder adapter for end-to-end fine-tuning (:class:`EncoderModule`)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from gssf.losses import SimilarityLoss
from gssf.models import EncoderTower, build_head
from gssf.similarity import Similarity, create_similarity
from gssf.train.config_schema import TrainConfig, loss_names
from gssf.train.data import SplitData, load_split
from gssf.train.samplers import RandomBatchSampler

__all__ = ["EncoderModule", "Task"]


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


class Task:
    """Shared task logic; subclasses define items, the loss call and evaluation.

    A task class declares what it needs from a config: the input convention of its losses
    (``loss_kind``), the modalities its splits carry, its default selection metric, and the
    checks of the config keys that depend on it (:meth:`check_config`, called by
    :meth:`gssf.train.TrainConfig.validate` through the task registry).
    """

    #: ``data.task`` of this class (set when it is registered).
    kind = ""
    #: The convention of the losses it trains with (:data:`gssf.losses.base.LOSS_KINDS`).
    loss_kind = "unimodal"
    #: What a split of this task holds.
    modalities: Tuple[str, ...] = ("image",)
    default_metric = ""
    lower_is_better = ("medR", "meanR")

    @classmethod
    def check_config(cls, cfg: TrainConfig) -> None:
        """Raise ``ValueError`` naming the key when ``cfg`` asks this task for what it cannot do."""
        from gssf.losses import get_loss_class, list_losses

        d, m, lo = cfg.data, cfg.model, cfg.loss
        for name in loss_names(lo):
            loss = get_loss_class(name)
            if loss.kind != cls.loss_kind:
                raise ValueError(
                    f"loss {name!r} is {loss.kind} but task {d.task!r} needs a {cls.loss_kind} loss; "
                    f"valid choices: {', '.join(list_losses(cls.loss_kind))}"
                )
        if m.finetune in ("text", "both") and "text" not in cls.modalities:
            raise ValueError(f"model.finetune={m.finetune!r} needs captions: task {d.task!r} has none")
        if cfg.eval.rerank and not cls.reranks:
            raise ValueError(f"config key 'eval.rerank' is for task reid, not {d.task!r}")

    #: Whether its evaluation offers k-reciprocal re-ranking (``eval.rerank``).
    reranks = False

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
            self._splits[name] = load_split(self.cfg, name, raw=bool(self.finetune), progress=self.progress,
                                            modalities=self.modalities)  # fmt: skip
        return self._splits[name]

    def train_split(self) -> SplitData:
        d = self.cfg.data
        if not d.max_train_items:
            return self.split(d.train_split)
        key = f"{d.train_split}[subset {d.max_train_items}]"
        if key not in self._splits:
            self._splits[key] = load_split(
                self.cfg, d.train_split, raw=bool(self.finetune), progress=self.progress, max_items=d.max_train_items,
                modalities=self.modalities,
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
        """Before epoch ``epoch``: every loss of the criterion gets its ``set_epoch`` hook."""
        for m in criterion.modules():
            if isinstance(m, SimilarityLoss):
                m.set_epoch(epoch)

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

    def _embedded(
        self, encode: Callable[[Any], Tensor], data: SplitData, modality: str, n: int
    ) -> Iterator[Tuple[Tensor, Tensor]]:
        """``(rows, embeddings)`` of the first ``n`` items of ``data``, ``eval.batch_size`` at a time."""
        bs = self.cfg.eval.batch_size
        for start in range(0, n, bs):
            idx = torch.arange(start, min(n, start + bs))
            with self._autocast():
                yield idx, encode(self._inputs(data, modality, idx)).float()

    def _embed(self, encode: Callable[[Any], Tensor], data: SplitData, modality: str, n: int) -> Tensor:
        """The embeddings of the first ``n`` items of ``data``, as one ``(n, D)`` tensor."""
        return torch.cat([emb for _, emb in self._embedded(encode, data, modality, n)])

    @staticmethod
    def _compute(evaluator: Any, model: nn.Module, per_query: bool) -> Dict[str, Any]:
        """The metrics of an evaluator built with ``distributed=False`` (it always computes)."""
        result = evaluator.compute(model.similarity, per_query=per_query)
        assert result is not None
        return result

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
