"""The training configuration: typed dataclasses, YAML presets and ``key=value`` overrides.

A run is described by one :class:`TrainConfig` with seven sections (``data``, ``model``,
``similarity``, ``loss``, ``optim``, ``train``, ``eval``). Every field carries a help
text and, where it has a closed set of values, its choices; both are used by the error
messages and by the commented YAML written into each run folder.

Sources, later ones win: the dataclass defaults, a preset (``configs/<name>.yaml``, or
any YAML path), then ``--set section.key=value`` overrides (values parsed as YAML, so
``--set train.epochs=5``, ``--set eval.ks=[1,5]``, ``--set data.root=null``).
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

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
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "save_config",
    "list_presets",
    "find_preset",
    "PRESET_DIR_ENV",
]

#: Task types: cross-modal retrieval, person re-identification, fine-grained retrieval.
TASKS = ("image_text", "reid", "retrieval")
#: Environment variable naming extra folders (``os.pathsep``-separated) searched for presets.
PRESET_DIR_ENV = "GSSF_CONFIG_PATH"

Choices = Union[Tuple[str, ...], Callable[[], Sequence[str]]]


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
    """The training loss; ``name`` may join several with '+', e.g. triplet+id_ce."""

    name: str = _f("hinge", "loss (or losses joined by '+'): hinge, infonce, triplet, id_ce", _loss_names)
    weights: Dict[str, float] = _f({}, "weight per loss name when several are joined (default 1)")
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
        """Check cross-field constraints; raise ``ValueError`` naming the key. Returns ``self``."""
        _validate(self)
        return self

    def to_dict(self) -> Dict[str, Any]:
        return config_to_dict(self)


# --------------------------------------------------------------------------- parsing

_SECTIONS = [f.name for f in dataclasses.fields(TrainConfig)]


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _choices(f: dataclasses.Field) -> Optional[List[str]]:
    c = f.metadata.get("choices")
    if c is None:
        return None
    return list(c() if callable(c) else c)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return f"{_type_name(args[0])} or null"
    if origin in (list, List):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (dict, Dict):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; errors name the key."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    bad = ValueError(f"config key {key!r} expects {_type_name(tp)}, got {value!r}")
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise bad
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise bad
        _, vt = typing.get_args(tp)
        return {str(k): (v if vt is Any else _coerce(v, vt, f"{key}.{k}")) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads ``1e-4`` (no dot) as a string; accept it as the number it means.
            try:
                return float(value)
            except ValueError:
                raise bad from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    return value


def _unknown_key(key: str, valid: Sequence[str], where: str) -> ValueError:
    return ValueError(f"unknown config key {key!r}; valid keys of {where}: {', '.join(valid)}")


def _check_choice(value: Any, f: dataclasses.Field, key: str) -> None:
    choices = _choices(f)
    if choices is None or value is None:
        return
    parts = value.split("+") if key == "loss.name" and isinstance(value, str) else [value]
    for part in parts:
        if part not in choices:
            raise ValueError(f"invalid value {part!r} for config key {key!r}; valid choices: {', '.join(choices)}")


def _section_from_dict(cls: type, data: Mapping[str, Any], prefix: str, base: Any = None) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"config section {prefix!r} must be a mapping, got {data!r}")
    obj = base if base is not None else cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _hints(cls)
    for k, v in data.items():
        if k not in fields:
            raise _unknown_key(f"{prefix}.{k}", list(fields), repr(prefix))
        key = f"{prefix}.{k}"
        value = _coerce(v, hints[k], key)
        _check_choice(value, fields[k], key)
        setattr(obj, k, value)
    return obj


def config_from_dict(data: Mapping[str, Any], base: Optional[TrainConfig] = None) -> TrainConfig:
    """Build (or update ``base`` with) a config from a nested mapping; unknown keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"a config must be a mapping of sections, got {type(data).__name__}")
    cfg = copy.deepcopy(base) if base is not None else TrainConfig()
    hints = _hints(TrainConfig)
    for section, values in data.items():
        if section not in _SECTIONS:
            raise _unknown_key(str(section), _SECTIONS, "the config")
        current = getattr(cfg, section)
        setattr(cfg, section, _section_from_dict(hints[section], values or {}, section, base=current))
    return cfg


def config_to_dict(cfg: TrainConfig) -> Dict[str, Any]:
    """The config as a plain nested dict (YAML/JSON-ready)."""
    return dataclasses.asdict(cfg)


def _parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(cfg: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a copy of ``cfg``.

    Mapping fields take sub-keys: ``similarity.kwargs.num_blocks=8``, ``loss.weights.id_ce=0.5``.
    """
    data = config_to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form section.key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        section = parts[0]
        if section not in _SECTIONS:
            raise _unknown_key(key, _SECTIONS, "the config")
        if len(parts) == 1:
            raise ValueError(f"override {item!r} must name a key inside section {section!r}, e.g. {section}.<key>=value")
        cls = _hints(TrainConfig)[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        name = parts[1]
        if name not in fields:
            raise _unknown_key(key, list(fields), repr(section))
        value = _parse_value(text)
        if len(parts) == 2:
            data[section][name] = value
        else:
            tp = _hints(cls)[name]
            if typing.get_origin(tp) not in (dict, Dict):
                raise ValueError(f"config key '{section}.{name}' is not a mapping: cannot set {key!r}")
            target = data[section][name]
            for p in parts[2:-1]:
                target = target.setdefault(p, {})
                if not isinstance(target, dict):
                    raise ValueError(f"cannot set {key!r}: {p!r} is not a mapping")
            target[parts[-1]] = value
    return config_from_dict(data)


# --------------------------------------------------------------------------- presets


def _preset_dirs() -> List[Path]:
    dirs: List[Path] = []
    env = os.environ.get(PRESET_DIR_ENV)
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    # Presets ship inside the package (src/gssf/configs); the repository's configs/ links there.
    dirs.append(Path(__file__).resolve().parents[1] / "configs")
    return [d for d in dirs if d.is_dir()]


def list_presets() -> List[str]:
    """Names of the YAML presets found (``configs/<name>.yaml``)."""
    names = set()
    for d in _preset_dirs():
        names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def find_preset(name_or_path: Union[str, "os.PathLike[str]"]) -> Path:
    """The YAML file of a preset name or path; a clear error lists the presets."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        raise FileNotFoundError(f"config file not found: {p}")
    for d in _preset_dirs():
        candidate = d / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no config file or preset named {str(name_or_path)!r}; presets: {', '.join(list_presets()) or '(none found)'}"
    )


def load_config(
    source: Union[None, str, "os.PathLike[str]", Mapping[str, Any]] = None, overrides: Sequence[str] = ()
) -> TrainConfig:
    """Defaults, then a preset name / YAML path / mapping, then ``key=value`` overrides; validated.

    A YAML file may start from another preset: ``inherit: <preset name or path>`` at its top
    level, then only the keys that differ (the ``*-frozen`` presets do this).
    """
    if source is None:
        cfg = TrainConfig()
    elif isinstance(source, Mapping):
        cfg = config_from_dict(source)
    else:
        cfg = _read_preset(find_preset(source), ())
    cfg = apply_overrides(cfg, overrides)
    return cfg.validate()


def _read_preset(path: Path, chain: Tuple[Path, ...]) -> TrainConfig:
    """The config of one YAML file, on top of the preset it names under ``inherit`` (if any)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from None
    base = None
    if isinstance(data, dict) and "inherit" in data:
        data = dict(data)
        parent = data.pop("inherit")
        if not isinstance(parent, str) or not parent:
            raise ValueError(f"{path}: 'inherit' must name a preset or a YAML file, got {parent!r}")
        parent_path = find_preset(parent)
        seen = chain + (path.resolve(),)
        if parent_path.resolve() in seen:
            raise ValueError(f"{path}: 'inherit' makes a cycle: {' -> '.join(str(p) for p in seen + (parent_path,))}")
        base = _read_preset(parent_path, seen)
    try:
        return config_from_dict(data or {}, base=base)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- validation


def _validate(cfg: TrainConfig) -> None:
    d, m, s, lo, o, t, e = cfg.data, cfg.model, cfg.similarity, cfg.loss, cfg.optim, cfg.train, cfg.eval
    # Choices are re-checked here too: a config may also be built in Python.
    for section in _SECTIONS:
        obj = getattr(cfg, section)
        for f in dataclasses.fields(obj):
            _check_choice(getattr(obj, f.name), f, f"{section}.{f.name}")
    if d.dataset is None and d.features_file is None:
        raise ValueError("set one of data.dataset or data.features_file")
    if d.features_file is not None and "{split}" not in d.features_file:
        raise ValueError(
            f"data.features_file must contain '{{split}}' (e.g. feats/{{split}}.npz), got {d.features_file!r}"
        )
    positive = [
        ("model.embed_dim", m.embed_dim),
        ("model.hidden_dim", m.hidden_dim),
        ("data.resolution", d.resolution),
        ("train.epochs", t.epochs),
        ("train.batch_size", t.batch_size),
        ("train.log_every", t.log_every),
        ("train.eval_every", t.eval_every),
        ("train.pk_instances", t.pk_instances),
        ("eval.chunk_size", e.chunk_size),
        ("eval.batch_size", e.batch_size),
        ("eval.max_rank", e.max_rank),
        ("optim.step_epochs", o.step_epochs),
    ]
    for key, value in positive:
        if value <= 0:
            raise ValueError(f"config key {key!r} must be positive, got {value}")
    non_negative = [
        ("train.checkpoint_every", t.checkpoint_every),
        ("train.num_threads", t.num_threads),
        ("train.max_steps_per_epoch", t.max_steps_per_epoch),
        ("optim.weight_decay", o.weight_decay),
        ("optim.similarity_weight_decay", o.similarity_weight_decay),
        ("optim.encoder_weight_decay", o.encoder_weight_decay),
        ("optim.warmup_epochs", o.warmup_epochs),
        ("optim.grad_clip", o.grad_clip),
        ("loss.margin", lo.margin),
        ("loss.hardest_after_epochs", lo.hardest_after_epochs),
        ("model.dropout", m.dropout),
    ]
    for key, value in non_negative:
        if value < 0:
            raise ValueError(f"config key {key!r} must be >= 0, got {value}")
    for key, value in (("optim.lr", o.lr), ("optim.similarity_lr", o.similarity_lr), ("optim.loss_lr", o.loss_lr)):
        if value is not None and not value > 0:
            raise ValueError(f"config key {key!r} must be positive, got {value}")
    if len(o.betas) != 2:
        raise ValueError(f"config key 'optim.betas' needs two numbers, got {o.betas}")
    if m.num_layers < 2 and m.head == "mlp":
        raise ValueError(f"config key 'model.num_layers' must be >= 2 for an mlp head, got {m.num_layers}")
    if not 0.0 <= o.min_lr_ratio <= 1.0:
        raise ValueError(f"config key 'optim.min_lr_ratio' must be in [0, 1], got {o.min_lr_ratio}")
    if e.ks is not None and (not e.ks or any(k <= 0 for k in e.ks)):
        raise ValueError(f"config key 'eval.ks' must be a non-empty list of positive integers, got {e.ks}")
    if e.folds is not None and e.folds <= 0:
        raise ValueError(f"config key 'eval.folds' must be positive or null, got {e.folds}")
    if cfg.distill.teacher is not None:
        if d.task != "image_text":
            raise ValueError(f"config key 'distill.teacher' needs data.task image_text, got {d.task!r}")
        if not cfg.distill.temperature > 0:
            raise ValueError(f"config key 'distill.temperature' must be positive, got {cfg.distill.temperature}")
        if cfg.distill.weight < 0:
            raise ValueError(f"config key 'distill.weight' must be >= 0, got {cfg.distill.weight}")
    if d.max_train_items < 0:
        raise ValueError(f"config key 'data.max_train_items' must be >= 0, got {d.max_train_items}")
    if d.max_train_items and d.task == "image_text":
        raise ValueError("config key 'data.max_train_items' is for the uni-modal tasks (reid, retrieval)")
    if d.task == "reid":
        from gssf.train.tasks import reid_pair

        for key, split in (("data.val_split", d.val_split), ("data.test_split", d.test_split)):
            if split is not None:
                try:
                    reid_pair(split)
                except ValueError as exc:
                    raise ValueError(f"config key {key!r}: {exc}") from None
    if e.rerank:
        if d.task != "reid":
            raise ValueError(f"config key 'eval.rerank' is for task reid, not {d.task!r}")
        if e.rerank_k1 < 1:
            raise ValueError(f"config key 'eval.rerank_k1' must be positive, got {e.rerank_k1}")
        if not 1 <= e.rerank_k2 <= e.rerank_k1 + 1:
            raise ValueError(f"config key 'eval.rerank_k2' must be in [1, rerank_k1 + 1], got {e.rerank_k2}")
        if not 0.0 <= e.rerank_lambda <= 1.0:
            raise ValueError(f"config key 'eval.rerank_lambda' must be in [0, 1], got {e.rerank_lambda}")
    # Losses must match the task's input convention.
    from gssf.losses import get_loss_class

    kind = "cross_modal" if d.task == "image_text" else "unimodal"
    names = lo.name.split("+")
    for name in names:
        cls = get_loss_class(name)
        if cls.kind != kind:
            from gssf.losses import list_losses

            raise ValueError(
                f"loss {name!r} is {cls.kind} but task {d.task!r} needs a {kind} loss; "
                f"valid choices: {', '.join(list_losses(kind))}"
            )
    for key in lo.weights:
        if key not in names:
            raise ValueError(f"unknown key 'loss.weights.{key}'; valid keys: {', '.join(names)}")
    if t.sampler == "pk" and d.task == "image_text":
        raise ValueError("config key 'train.sampler': pk needs labels; use random for task image_text")
    if m.finetune != "none" and d.features_file is not None:
        raise ValueError("model.finetune needs raw images/text: set data.dataset instead of data.features_file")
    if m.finetune in ("text", "both") and d.task != "image_text":
        raise ValueError(f"model.finetune={m.finetune!r} needs captions: task {d.task!r} has none")
    _validate_similarity_kwargs(s.name, s.kwargs, "similarity.kwargs")
    if m.pool == "attention" and m.head == "pooled":
        if m.attention_heads < 1 or m.embed_dim % m.attention_heads:
            raise ValueError(
                f"config key 'model.attention_heads': {m.attention_heads} does not divide model.embed_dim={m.embed_dim}"
            )
        if not m.attention_temperature > 0:
            raise ValueError(f"config key 'model.attention_temperature' must be positive, got {m.attention_temperature}")
        _validate_similarity_kwargs(m.attention_similarity, m.attention_kwargs, "model.attention_kwargs")
    elif m.attention_kwargs:
        raise ValueError("config key 'model.attention_kwargs' is for model.head=pooled with model.pool=attention")


def _validate_similarity_kwargs(name: str, kwargs: Dict[str, Any], key_prefix: str) -> None:
    """Every key of ``kwargs`` is a constructor argument of similarity ``name`` (dim excluded)."""
    from gssf.similarity import get_similarity_class

    cls = get_similarity_class(name)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in ("self", "dim")]
    for key in kwargs:
        if key == "dim":
            raise ValueError(f"config key '{key_prefix}.dim' is set from model.embed_dim; remove it")
        if key not in valid:
            raise ValueError(
                f"unknown config key '{key_prefix}.{key}' for similarity {name!r}; valid keys: "
                f"{', '.join(valid) or '(none)'} (use --set {key_prefix}={{}} to clear inherited ones)"
            )


# --------------------------------------------------------------------------- YAML output


def _yaml_scalar(value: Any) -> str:
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
    if text.endswith("\n...") or text.endswith("..."):
        text = text[: text.rfind("...")].strip()
    return text


def config_to_yaml(cfg: TrainConfig, header: str = "") -> str:
    """The config as YAML with each field's help as a comment (loadable by :func:`load_config`)."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    for section in _SECTIONS:
        obj = getattr(cfg, section)
        lines.append(f"{section}:  # {type(obj).__doc__.strip().splitlines()[0]}")
        for f in dataclasses.fields(obj):
            value = _yaml_scalar(getattr(obj, f.name))
            note = f.metadata.get("help", "")
            choices = _choices(f)
            if choices and f.name != "name":
                note += f" [{' | '.join(choices)}]"
            lines.append(f"  {f.name}: {value}  # {note}")
    return "\n".join(lines) + "\n"


def save_config(cfg: TrainConfig, path: Union[str, "os.PathLike[str]"], header: str = "") -> Path:
    """Write the resolved config as commented YAML, atomically."""
    from gssf.utils.io import atomic_write_text

    return atomic_write_text(path, config_to_yaml(cfg, header=header))
