"""The schema of a training configuration: typed dataclasses with help texts and choices.

Reading and writing configs is :mod:`gssf.train.config_io`, the cross-field checks are
:mod:`gssf.train.config_validation`; :mod:`gssf.train.config` gathers all three.

A run is described by one :class:`TrainConfig` with seven sections (``data``, ``model``,
``similarity``, ``loss``, ``optim``, ``train``, ``eval``). Every field carries a help
text and, where it has a closed set of values, its choices; both are used by the error
messages and by the commented YAML written into each run folder.

Sources, later ones win: the dataclass defaults, a preset (``configs/<name>.yaml``, or
any YAML path), then ``--set section.key=value`` overrides (values parsed as YAML, so
``--set train.epochs=5``, ``--set eval.ks=[1,5]``, ``--set data.root=null``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "TASKS",
    "DataConfig",
    "ModelConfig",
    "SimilarityConfig",
    "LossConfig",
    "OptimConfig",
    "LoopConfig",
    "DistillConfig",
    "EvalConfig",
    "TrainConfig",
    "SECTIONS",
    "PRESET_DIR_ENV",
    "register_validator",
    "loss_names",
    "loss_terms",
    "legacy_loss_kwargs",
    "legacy_loss_terms",
    "LEGACY_LOSS_ARGS",
    "LEGACY_LOSS_KEYS",
]

#: Task types: cross-modal retrieval, person re-identification, fine-grained retrieval.
TASKS = ("image_text", "reid", "retrieval")
#: Environment variable naming extra folders (``os.pathsep``-separated) searched for presets.
PRESET_DIR_ENV = "GSSF_CONFIG_PATH"

Choices = Union[Tuple[str, ...], Callable[[], Sequence[str]]]

#: The checks :meth:`TrainConfig.validate` runs, in order (see :func:`register_validator`).
_VALIDATORS: List[Callable[["TrainConfig"], None]] = []


def register_validator(check: Callable[["TrainConfig"], None]) -> Callable[["TrainConfig"], None]:
    """Add a cross-field check to :meth:`TrainConfig.validate` (once; returns it, so it decorates)."""
    if check not in _VALIDATORS:
        _VALIDATORS.append(check)
    return check


def _f(default: Any, help: str, choices: Optional[Choices] = None) -> Any:
    """A dataclass field with its help text and (optional) valid choices."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _similarity_names() -> List[str]:
    from gssf.similarity import list_similarities

    return list_similarities()


def _loss_names() -> List[str]:
    from gssf.losses import list_losses

    return list_losses()


@dataclass
class DataConfig:
    """Which data to train and evaluate on."""

    task: str = _f("image_text", "task type: image_text (cross-modal), reid or retrieval (uni-modal)", TASKS)
    dataset: Optional[str] = _f("tux", "dataset name for gssf.features.get_features (null when features_file is set)")
    root: Optional[str] = _f(None, "dataset root (user data, e.g. a captions.jsonl or *_precomp folder); null = data home")
    features_file: Optional[str] = _f(
        None, "precomputed features .npz per split, a path containing {split} (keys image, text, txt2img)"
    )
    image_encoder: str = _f("efficientnet-lite0", "image encoder whose cached features are used (or fine-tuned)")
    text_encoder: str = _f("minilm", "text encoder whose cached features are used (or fine-tuned)")
    resolution: int = _f(224, "image resolution given to the image encoder")
    train_split: str = _f("train", "split used for training")
    val_split: Optional[str] = _f(
        "val", "split used for model selection (null: no validation, the last epoch is tested; reid: see test_split)"
    )
    test_split: str = _f(
        "test",
        "split evaluated with the selected checkpoint at the end (reid: split S is the pair S-query / S-gallery; "
        "QUERY/GALLERY names the pair, e.g. query/gallery)",
    )
    max_train_items: int = _f(
        0, "uni-modal: train on a fixed random subset of this many training items, the same for every seed (0 = all)"
    )
    skip_bad_images: bool = _f(
        False,
        "leave out images that cannot be read or exceed the size limits (listed in the run folder's "
        "skipped_images.json) instead of stopping at the first one",
    )


@dataclass
class ModelConfig:
    """The towers that map encoder features into the embedding space."""

    embed_dim: int = _f(256, "size of the joint embedding scored by the similarity")
    head: str = _f(
        "linear", "projection head on top of each encoder (pooled: sets of regions / tokens)",
        ("linear", "mlp", "identity", "pooled"),
    )
    pool: str = _f(
        "gpo", "pooled head: generalized pooling (gpo), mean, max, attention over the set, or none (the set itself)",
        ("gpo", "mean", "max", "attention", "none"),
    )
    attention_similarity: str = _f(
        "cosine", "pool=attention: the similarity member that gives the attention logits of every head",
        _similarity_names,
    )
    attention_kwargs: Dict[str, Any] = _f({}, "pool=attention: keyword arguments of that member")
    attention_heads: int = _f(1, "pool=attention: number of heads (embed_dim must be a multiple)")
    attention_temperature: float = _f(0.1, "pool=attention: initial softmax temperature (learnable)")
    element_dims: Dict[str, int] = _f(
        {}, "pooled head: size of one set element per modality, e.g. {image: 1280, text: 384} (default: the encoder's)"
    )
    hidden_dim: int = _f(1024, "hidden width of an mlp head (pooled head: of its residual MLP)")
    num_layers: int = _f(2, "number of linear layers of the mlp branch (>= 2)")
    dropout: float = _f(0.0, "dropout inside an mlp head")
    finetune: str = _f(
        "none", "encoders trained end to end from images/text (slow on CPU)", ("none", "image", "text", "both")
    )
    heads_from: Optional[str] = _f(
        None, "run folder (or checkpoint .json) whose towers initialise this run's (its best checkpoint, else last)"
    )
    freeze_heads: bool = _f(False, "keep the towers fixed: only the similarity (and the loss's own parameters) learn")


@dataclass
class SimilarityConfig:
    """The similarity (a member of the gssf registry) and its constructor arguments."""

    name: str = _f("gssf", "registered similarity (gssf similarities lists them)", _similarity_names)
    kwargs: Dict[str, Any] = _f({}, "keyword arguments of the similarity, e.g. num_blocks: 16")


@dataclass
class LossConfig:
    """The training loss: ``terms``, a list of {name, weight, kwargs}; or the older name/weights/per-loss keys.

    The older form (``name`` joining several with '+', e.g. triplet+id_ce) is read as the terms it
    stands for (:func:`legacy_loss_terms`).
    """

    name: str = _f("hinge", "loss (or losses joined by '+'): hinge, infonce, triplet, id_ce", _loss_names)
    weights: Dict[str, float] = _f({}, "weight per loss name when several are joined (default 1)")
    terms: List[Dict[str, Any]] = _f(
        [], "the losses as a list of {name, weight, kwargs} (kwargs checked against the loss's signature); when "
        "set it replaces name, weights and the per-loss keys below; name pml takes a pytorch-metric-learning "
        "loss, e.g. {name: pml, kwargs: {loss: MultiSimilarityLoss}}",
    )
    margin: float = _f(0.2, "hinge/triplet margin")
    max_violation: bool = _f(True, "hinge: hardest negative per positive (VSE++ MH) instead of the sum")
    reduction: str = _f("sum", "hinge: sum (VSE++) or mean over positive pairs", ("sum", "mean"))
    hardest_after_epochs: int = _f(0, "hinge: use the sum over negatives for this many first epochs (warm-up)")
    soft_margin: bool = _f(False, "triplet: softplus instead of a hinge with margin")
    temperature: float = _f(0.05, "infonce: initial temperature")
    learn_temperature: bool = _f(True, "infonce: learn the (log-)temperature")
    min_temperature: float = _f(0.01, "infonce: lower clamp of the temperature")
    max_temperature: float = _f(1.0, "infonce: upper clamp of the temperature")
    id_temperature: float = _f(1.0 / 16, "id_ce: fixed logit temperature")
    label_smoothing: float = _f(0.0, "id_ce: label smoothing")


def loss_names(lo: "LossConfig") -> List[str]:
    """The names of the losses of a config: of ``loss.terms`` when set, else ``loss.name`` split at '+'."""
    return [t["name"] for t in loss_terms(lo)]


#: The older form's per-loss keys: which constructor argument of which loss each one gives
#: (``loss.soft_margin`` makes triplet's margin None, see :func:`legacy_loss_kwargs`).
LEGACY_LOSS_ARGS: Dict[str, Dict[str, str]] = {
    "hinge": {"margin": "margin", "max_violation": "max_violation", "reduction": "reduction",
              "hardest_after_epochs": "hardest_after_epochs"},
    "infonce": {"temperature": "temperature", "learn_temperature": "learn_temperature",
                "min_temperature": "min_temperature", "max_temperature": "max_temperature"},
    "triplet": {"margin": "margin", "soft_margin": "margin"},
    "id_ce": {"id_temperature": "temperature", "label_smoothing": "label_smoothing"},
}  # fmt: skip
#: The keys of the older form besides ``name`` and ``weights``: legacy key -> the losses that read it.
LEGACY_LOSS_KEYS: Dict[str, Tuple[str, ...]] = {
    key: tuple(loss for loss, args in LEGACY_LOSS_ARGS.items() if key in args)
    for key in dict.fromkeys(k for args in LEGACY_LOSS_ARGS.values() for k in args)
}


def legacy_loss_kwargs(name: str, lo: "LossConfig") -> Dict[str, Any]:
    """The constructor arguments the per-loss keys of ``lo`` give loss ``name`` (``{}`` for a loss they don't name)."""
    kwargs = {arg: getattr(lo, key) for key, arg in LEGACY_LOSS_ARGS.get(name, {}).items() if key != "soft_margin"}
    if name == "triplet" and lo.soft_margin:
        kwargs["margin"] = None  # the soft-margin (softplus) version
    return kwargs


def legacy_loss_terms(lo: "LossConfig") -> List[Dict[str, Any]]:
    """The ``loss.terms`` that the older form of ``lo`` (``name``, ``weights``, per-loss keys) stands for.

    One term per name of ``loss.name`` (a name given twice is one loss, as it always was), weighted by
    ``loss.weights`` (default 1), with every argument that the per-loss keys give it, e.g.
    ``name: triplet+id_ce, margin: 0.3, weights: {id_ce: 0.5}`` ->
    ``[{name: triplet, weight: 1.0, kwargs: {margin: 0.3}},
    {name: id_ce, weight: 0.5, kwargs: {temperature: 0.0625, label_smoothing: 0.0}}]``.
    """
    return [
        {"name": name, "weight": float(lo.weights.get(name, 1.0)), "kwargs": legacy_loss_kwargs(name, lo)}
        for name in dict.fromkeys(lo.name.split("+"))
    ]


def loss_terms(lo: "LossConfig") -> List[Dict[str, Any]]:
    """The losses of a config as {name, weight, kwargs}: ``loss.terms`` when set, else :func:`legacy_loss_terms`."""
    if not lo.terms:
        return legacy_loss_terms(lo)
    return [
        {"name": str(t.get("name")), "weight": t.get("weight", 1.0), "kwargs": t.get("kwargs") or {}}
        for t in lo.terms
    ]


@dataclass
class OptimConfig:
    """Optimizer, parameter groups and learning-rate schedule."""

    optimizer: str = _f("adamw", "optimizer", ("adamw", "adam", "sgd"))
    lr: float = _f(1e-3, "learning rate of the heads")
    weight_decay: float = _f(1e-4, "weight decay of the heads' weight matrices (biases and norms get none)")
    similarity_lr: Optional[float] = _f(None, "learning rate of the similarity's parameters (null = lr)")
    similarity_weight_decay: float = _f(0.0, "weight decay of the similarity's parameters")
    loss_lr: Optional[float] = _f(None, "learning rate of the loss's own parameters: temperature, proxies (null = lr)")
    encoder_lr: float = _f(1e-5, "learning rate of fine-tuned encoders")
    encoder_weight_decay: float = _f(1e-4, "weight decay of fine-tuned encoders")
    momentum: float = _f(0.9, "sgd momentum")
    betas: List[float] = _f([0.9, 0.999], "adam/adamw betas")
    scheduler: str = _f("cosine", "learning-rate schedule (per step)", ("cosine", "constant", "step"))
    warmup_epochs: float = _f(0.0, "linear warm-up length in epochs (fractions allowed)")
    min_lr_ratio: float = _f(0.0, "cosine: final learning rate as a fraction of the initial one")
    step_epochs: int = _f(15, "step: decay the learning rate every this many epochs")
    gamma: float = _f(0.1, "step: decay factor")
    grad_clip: float = _f(2.0, "clip the global gradient norm to this value (0 = off)")


@dataclass
class LoopConfig:
    """The training loop (the ``train:`` section)."""

    epochs: int = _f(40, "number of epochs")
    batch_size: int = _f(128, "global batch size (split across data-parallel processes)")
    seed: int = _f(0, "seed of initialisation and data order")
    drop_last: bool = _f(True, "drop the last incomplete batch of each epoch")
    sampler: str = _f("random", "batch sampler: random, or pk (P identities x K instances, re-ID)", ("random", "pk"))
    pk_instances: int = _f(4, "pk: instances per identity in a batch (K)")
    checkpoint_every: int = _f(0, "also save the last checkpoint every this many steps (0 = per epoch only)")
    log_every: int = _f(10, "write a train record to log.jsonl every this many steps")
    eval_every: int = _f(1, "validate every this many epochs (and after the last)")
    precision: str = _f("fp32", "autocast precision of the towers; scores are always fp32", ("fp32", "bf16"))
    device: str = _f("auto", "device: auto (cuda if available), cpu, cuda", ("auto", "cpu", "cuda"))
    num_threads: int = _f(0, "torch CPU threads (0 = leave torch's default)")
    deterministic: bool = _f(True, "deterministic algorithms on CUDA (CPU kernels already are, for a fixed thread count)")
    tensorboard: bool = _f(False, "also write TensorBoard events into the run folder (needs tensorboard)")
    max_steps_per_epoch: int = _f(0, "stop each epoch after this many steps (0 = full epoch; for smoke runs)")


@dataclass
class EvalConfig:
    """Validation and test evaluation."""

    metric: str = _f("auto", "model-selection metric (auto: rsum, mAP or R@1 by task)")
    ks: Optional[List[int]] = _f(None, "recall cut-offs (null: 1,5,10 for image_text, 1,2,4,8 for retrieval)")
    folds: Optional[int] = _f(None, "image_text: average metrics over this many folds (COCO 1K protocol)")
    max_rank: int = _f(50, "reid: length of the CMC curve")
    chunk_size: int = _f(1024, "query rows scored at a time")
    batch_size: int = _f(1024, "items embedded at a time")
    test: bool = _f(True, "evaluate the test split with the selected checkpoint at the end")
    rerank: bool = _f(False, "reid: also report k-reciprocal re-ranked metrics (rerank_ keys) from the learned similarity")
    rerank_k1: int = _f(20, "reid re-ranking: k1 (k-reciprocal neighbours)")
    rerank_k2: int = _f(6, "reid re-ranking: k2 (query expansion neighbours)")
    rerank_lambda: float = _f(0.3, "reid re-ranking: weight of the original distance against the Jaccard distance")


@dataclass
class DistillConfig:
    """Relational knowledge distillation from a trained teacher run (image-text tasks)."""

    teacher: Optional[str] = _f(
        None, "run folder (or checkpoint .json) of the teacher, trained on the same dataset and training split"
    )
    weight: float = _f(1.0, "weight of the distillation term added to the task loss")
    temperature: float = _f(0.1, "softmax temperature of both score distributions")
    symmetric: bool = _f(True, "match the text->image distributions (columns) as well as the image->text rows")


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "data"})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "model"})
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig, metadata={"help": "similarity"})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"help": "loss"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimizer"})
    train: LoopConfig = field(default_factory=LoopConfig, metadata={"help": "training loop"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "evaluation"})
    distill: DistillConfig = field(default_factory=DistillConfig, metadata={"help": "distillation"})

    def validate(self) -> "TrainConfig":
        """Check cross-field constraints; raise ``ValueError`` naming the key. Returns ``self``.

        The checks are the functions registered with :func:`register_validator` (those of
        :mod:`gssf.train.config_validation`, registered when :mod:`gssf.train` is imported).
        """
        if not _VALIDATORS:
            raise RuntimeError("no config validator is registered: import gssf.train.config")
        for check in _VALIDATORS:
            check(self)
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


#: Section names, in order.
SECTIONS = [f.name for f in dataclasses.fields(TrainConfig)]
