"""The training program: config in, a run folder and a metrics dict out.

``run(config, run_dir)`` trains, validates each epoch (model selection by the task's main
metric), checkpoints, and finally evaluates the test split with the selected
checkpoint. The run folder holds::

    config.yaml                 the resolved config (commented; ``gssf train`` accepts it)
    log.jsonl                   one JSON record per line: train steps, validation, test
    results.json                the dict returned by :func:`run`
    test_per_query.json         per-query values of the test metrics (``gssf.stats`` builds CIs from them)
    checkpoints/last.*          latest state (weights, description, optimizer/scheduler/RNG)
    checkpoints/best.*          weights of the best validation epoch
    tensorboard/                (optional) TensorBoard events

Determinism: the data order is a function of ``(seed, epoch)``, initialisation is seeded,
and the RNG state is checkpointed, so a run resumed from any checkpoint (also one taken
mid-epoch) ends with exactly the metrics of an uninterrupted run on the same machine.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

import gssf
from gssf.losses import constrain_parameters
from gssf.similarity.base import Similarity
from gssf.train.checkpoint import (
    check_compatible,
    checkpoint_exists,
    load_checkpoint_meta,
    load_checkpoint_tensors,
    load_towers,
    load_training_state,
    save_checkpoint,
)
from gssf.train.config import LoopConfig, OptimConfig, TrainConfig, config_from_dict, config_to_dict, save_config
from gssf.train.distributed import (
    DistEnv,
    average_gradients,
    barrier,
    broadcast_object,
    cleanup_distributed,
    init_distributed,
    resolve_device,
    shard_bounds,
)
from gssf.errors import TrainingDivergedError
from gssf.train.rundir import RunDirLock, check_run_dir, run_dir_path
from gssf.train.tasks import EncoderModule, Task, build_criterion, make_task
from gssf.utils.io import atomic_write_json
from gssf.utils.seed import seed_everything

__all__ = [
    "run",
    "Trainer",
    "build_param_groups",
    "build_optimizer",
    "build_scheduler",
    "describe_model",
    "load_model",
    "evaluate_checkpoint",
    "RUNTIME_KEYS",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Config keys that may change when a run is resumed (they do not change the results).
RUNTIME_KEYS = frozenset(
    {"train.device", "train.num_threads", "train.tensorboard", "eval.chunk_size", "eval.batch_size", "data.root"}
)


# --------------------------------------------------------------------------- optimisation


def similarity_parameters(model: nn.Module) -> int:
    """Learnable scalars of every similarity in ``model`` (the score's and any attention kernels), each once."""
    seen: Dict[int, int] = {}
    for m in model.modules():
        if isinstance(m, Similarity):
            seen.update({id(p): p.numel() for p in m.parameters() if p.requires_grad})
    return sum(seen.values())


def build_param_groups(model: nn.Module, criterion: nn.Module, optim: OptimConfig) -> List[Dict[str, Any]]:
    """Named parameter groups with their own learning rate and weight decay.

    ``heads`` (weight matrices, decayed) and ``heads_no_decay`` (biases, norms),
    ``similarity`` (``optim.similarity_lr`` / ``similarity_weight_decay``: the parameters of
    every similarity in the model, the score's and attention kernels'), ``loss`` (the
    loss's own parameters, e.g. the temperature; no decay), and ``encoders`` /
    ``encoders_no_decay`` when encoders are fine-tuned. Empty groups are left out.
    """
    similarity = getattr(model, "similarity")
    seen = set()

    def take(params: Any) -> List[nn.Parameter]:
        out = []
        for p in params:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    # every similarity of the model: the score's own, and any inside the towers (attention kernels)
    sim = take(similarity.parameters())
    for m in model.modules():
        if isinstance(m, Similarity):
            sim += take(m.parameters())
    enc: List[nn.Parameter] = []
    for m in model.modules():
        if isinstance(m, EncoderModule):
            enc += take(m.parameters())
    loss = take(criterion.parameters())
    rest = take(model.parameters())
    groups = [
        {"name": "heads", "params": [p for p in rest if p.ndim >= 2], "lr": optim.lr, "weight_decay": optim.weight_decay},
        {"name": "heads_no_decay", "params": [p for p in rest if p.ndim < 2], "lr": optim.lr, "weight_decay": 0.0},
        {
            "name": "similarity",
            "params": sim,
            "lr": optim.similarity_lr if optim.similarity_lr is not None else optim.lr,
            "weight_decay": optim.similarity_weight_decay,
        },
        {"name": "loss", "params": loss, "lr": optim.loss_lr if optim.loss_lr is not None else optim.lr, "weight_decay": 0.0},
        {"name": "encoders", "params": [p for p in enc if p.ndim >= 2], "lr": optim.encoder_lr, "weight_decay": optim.encoder_weight_decay},
        {"name": "encoders_no_decay", "params": [p for p in enc if p.ndim < 2], "lr": optim.encoder_lr, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        # Nothing learns (a frozen baseline: identity heads and a parameter-free similarity).
        # An empty placeholder keeps the loop, the schedule and the checkpoints uniform.
        groups = [{"name": "none", "params": [nn.Parameter(torch.zeros(0))], "lr": optim.lr, "weight_decay": 0.0}]
    return groups


def build_optimizer(groups: List[Dict[str, Any]], optim: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``optim.optimizer`` over ``groups``."""
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum)
    cls = torch.optim.AdamW if optim.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=optim.lr, betas=(optim.betas[0], optim.betas[1]))


def build_scheduler(
    optimizer: torch.optim.Optimizer, optim: OptimConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule: linear warm-up, then cosine / constant / step decay."""
    total = max(1, steps_per_epoch * epochs)
    warmup = int(round(optim.warmup_epochs * steps_per_epoch))
    kind, floor, every, gamma = optim.scheduler, optim.min_lr_ratio, optim.step_epochs, optim.gamma

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        if kind == "step":
            return gamma ** ((step // max(1, steps_per_epoch)) // every)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------- helpers


def describe_model(cfg: TrainConfig, input_dims: Mapping[str, int], num_classes: int = 0) -> Dict[str, Any]:
    """The architectural facts a checkpoint must share with a model to load into it."""
    m = cfg.model
    heads: Dict[str, Any] = {"kind": m.head}
    if m.head == "mlp":
        heads.update(hidden_dim=m.hidden_dim, num_layers=m.num_layers)
    if m.head == "pooled":
        heads.update(hidden_dim=m.hidden_dim, pool=m.pool, element_dims=dict(m.element_dims))
    return {
        "task": cfg.data.task,
        "similarity": {"name": cfg.similarity.name, "kwargs": dict(cfg.similarity.kwargs)},
        "embed_dim": m.embed_dim,
        "input_dims": dict(input_dims),
        "heads": heads,
        "finetune": m.finetune,
        "loss": {"name": cfg.loss.name, "num_classes": int(num_classes)},
    }


def _loss_state(criterion: nn.Module, similarity: nn.Module) -> Dict[str, Tensor]:
    """The loss's own tensors (temperature, proxies); the similarity is saved with the model."""
    shared = {id(t) for t in similarity.state_dict(keep_vars=True).values()}
    return {k: v.detach() for k, v in criterion.state_dict(keep_vars=True).items() if id(v) not in shared}


def _load_loss_state(criterion: nn.Module, similarity: nn.Module, tensors: Mapping[str, Tensor]) -> None:
    current = criterion.state_dict(keep_vars=True)
    shared = {id(t) for t in similarity.state_dict(keep_vars=True).values()}
    own = {k for k, v in current.items() if id(v) not in shared}
    if set(tensors) != own:
        raise ValueError(f"checkpoint loss tensors {sorted(tensors)} do not match the loss's {sorted(own)}")
    merged = {k: (tensors[k] if k in own else v.detach()) for k, v in current.items()}
    criterion.load_state_dict(merged, strict=True)


def _split_tensors(tensors: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    model = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    loss = {k[len("loss.") :]: v for k, v in tensors.items() if k.startswith("loss.")}
    return model, loss


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return _jsonable(value.tolist())
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and prefix == "":
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


@contextlib.contextmanager
def _runtime(loop: LoopConfig, device: torch.device) -> Iterator[None]:
    """Thread count and deterministic algorithms for the run; restored afterwards.

    Deterministic algorithms are switched on for CUDA only: the CPU kernels used here are
    already deterministic for a fixed thread count, and the switch costs seconds of
    imports (it loads the compiler stack) in every process.
    """
    prev_threads = torch.get_num_threads()
    if loop.num_threads:
        torch.set_num_threads(loop.num_threads)
    cuda_det = loop.deterministic and device.type == "cuda"
    if cuda_det:
        prev_det = torch.are_deterministic_algorithms_enabled()
        prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        if cuda_det:
            torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


class _JsonlLog:
    """Append-only JSON-lines log; ``offset`` lets a resumed run cut records written after its checkpoint."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def reset(self, offset: int = 0) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            fh.truncate(offset)

    @property
    def offset(self) -> int:
        return self.path.stat().st_size if self.enabled and self.path.exists() else 0

    def write(self, record: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(_jsonable(record), allow_nan=False) + "\n")

    def sync(self) -> None:
        """fsync the log: called before a checkpoint records the log's length."""
        if self.enabled and self.path.exists():
            with open(self.path, "rb") as fh:
                os.fsync(fh.fileno())


def _structure_scalars(model: nn.Module, criterion: Optional[nn.Module] = None) -> Dict[str, float]:
    """What the similarity learned (``||M - I||_2``, diagonal spread, largest block entry) and any
    learned temperature, as TensorBoard scalars."""
    from gssf.similarity.structure import learned_parameters

    module = model.module if hasattr(model, "module") else model  # DDP
    out = {k: v for k, v in (learned_parameters(module.similarity) or {}).items() if isinstance(v, float)}
    for name, m in (criterion.named_modules() if criterion is not None else ()):
        temperature = getattr(type(m), "temperature", None)
        if isinstance(temperature, property):
            out[f"temperature{'/' + name if name else ''}"] = float(m.temperature.detach())
    return out


class _Board:
    """Optional TensorBoard scalars."""

    def __init__(self, directory: Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ValueError(
                    "config key 'train.tensorboard' is true but tensorboard is not installed: pip install tensorboard"
                ) from exc
            self.writer = SummaryWriter(str(directory))

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _bar(total: int, initial: int, desc: str, enabled: bool) -> Any:
    # A bar only on a terminal: piped output gets the one line per epoch instead.
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)


def claim_run_dir(run_dir: PathLike, resume: bool, env: DistEnv) -> Optional[RunDirLock]:
    """Check ``run_dir`` (see :mod:`gssf.train.rundir`) and lock it; every process raises the same error.

    Only the main process checks and holds the lock (the others return ``None``). When a
    lock file is already there its lock is taken first, so a live run is reported as
    such; a folder without one is checked before anything is created in it.
    """
    error: Optional[BaseException] = None
    lock: Optional[RunDirLock] = None
    if env.is_main:
        try:
            path = run_dir_path(run_dir)
            lock = RunDirLock(path)
            if not lock.path.exists():
                check_run_dir(path, resume)  # nothing is created in a folder that is refused
            lock.acquire()
            check_run_dir(path, resume)  # again under the lock: another process may have started
        except (ValueError, OSError) as exc:
            if lock is not None:
                lock.release()
            error = exc
    error = broadcast_object(error)
    if error is not None:
        raise error
    barrier()
    return lock


def _epoch_line(record: Mapping[str, Any], epochs: int, metric: str, improved: bool) -> str:
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['train_loss']:.4f}"]
    value = (record.get("val") or {}).get(metric)
    if value is not None:
        parts.append(f"val {metric} {value:.2f}" + (" (best)" if improved else ""))
    parts.append(f"{record['seconds']:.1f} s")
    return " | ".join(parts)


def _stderr_line(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- trainer


class Trainer:
    """One training run; use :func:`run` unless you need the pieces."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: PathLike,
        env: Optional[DistEnv] = None,
        progress: bool = True,
        quiet: bool = False,
        claimed: bool = False,
    ) -> None:
        self.cfg = cfg
        self.env = env or DistEnv()
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.main = self.env.is_main
        self.progress = progress and self.main
        self.quiet = quiet or not self.main
        # ``claimed``: the caller (``run``) already checked and locked the run folder.
        self._claimed = claimed
        if cfg.train.batch_size < self.env.world_size:
            raise ValueError(
                f"config key 'train.batch_size' ({cfg.train.batch_size}) is smaller than the {self.env.world_size} processes"
            )
        self.task: Task = make_task(cfg, self.env.device, progress=self.progress)
        # Rank 0 loads (and on first use extracts and caches) the training features first;
        # the other processes then read the cache instead of extracting it again.
        if not self.main:
            barrier()
        self.input_dims = self.task.input_dims()
        if self.main:
            barrier()
        self._check_splits()
        seed_everything(cfg.train.seed)
        self.model = self.task.build_model(self.input_dims).to(self.env.device)
        self.num_classes = self.task.num_classes()
        #: The checkpoint whose towers initialised this run (``model.heads_from``), recorded in results.json.
        self.towers_from: Optional[Dict[str, Any]] = None
        if cfg.model.heads_from:
            self.towers_from = load_towers(self.model, cfg.model.heads_from, self.describe())
        elif cfg.model.freeze_heads and cfg.model.head != "identity":
            # checked here, not in the config: a preset (tux-frozen) leaves the run to name
            raise ValueError(
                "model.freeze_heads keeps randomly initialised heads fixed: set model.heads_from to a trained run "
                "(or model.head: identity to score the encoder features themselves)"
            )
        if cfg.model.freeze_heads:  # the towers leave the optimizer: only the similarity (and the loss) learn
            for name, p in self.model.named_parameters():
                if not name.startswith("similarity."):
                    p.requires_grad_(False)
        #: The teacher checkpoint of a distillation run (``distill.teacher``), recorded in results.json.
        self.teacher_from: Optional[Dict[str, Any]] = None
        if cfg.distill.teacher:
            from gssf.train.distill import load_teacher

            self.task.teacher = load_teacher(cfg.distill, self.task, self.model.similarity)
            self.teacher_from = self.task.teacher.source
        self.criterion = build_criterion(cfg, self.model.similarity, self.num_classes).to(self.env.device)
        self.sampler = self.task.sampler()
        n_batches = len(self.sampler)
        if n_batches == 0:
            raise ValueError("no training batch: the training split is smaller than train.batch_size")
        cap = cfg.train.max_steps_per_epoch
        self.steps_per_epoch = min(n_batches, cap) if cap else n_batches
        self.optimizer = build_optimizer(build_param_groups(self.model, self.criterion, cfg.optim), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.steps_per_epoch, cfg.train.epochs)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        # Progress counters (restored on resume).
        self.epoch = 0  # epochs completed
        self.batches_done = 0  # batches completed in the current epoch
        self.step = 0
        self.epoch_loss_sum = 0.0
        self.history: List[Dict[str, Any]] = []
        self.best: Dict[str, Any] = {"metric": self.task.metric, "value": None, "epoch": None, "val": None}
        self.seconds_before = 0.0
        self.log = _JsonlLog(self.run_dir / "log.jsonl", enabled=self.main)
        self.board: Optional[_Board] = None
        self._saved: Optional[Tuple[int, int]] = None  # (epoch, step) of checkpoints/last

    def _say(self, message: str) -> None:
        if not self.quiet:
            _stderr_line(message)

    def _check_splits(self) -> None:
        """Load (extracting on first use) every split the run will evaluate, before the first step.

        A bad test image or a test split whose feature sizes differ from the training
        split's then fails now, not after the last epoch. Only the main process evaluates.
        """
        self.skipped_images: List[Dict[str, Any]] = []
        if not self.main:
            return
        d = self.cfg.data
        names = [d.train_split]
        for split in (d.val_split, d.test_split if self.cfg.eval.test else None):
            names += self.task.data_splits(split) if split else []
        skipped: List[Dict[str, Any]] = []
        for name in dict.fromkeys(names):
            t0 = time.perf_counter()
            data = self.task.train_split() if name == d.train_split else self.task.split(name)
            for modality, feats in (("image", data.image), ("text", data.text)):
                want = self.input_dims.get(modality)
                if feats is not None and want is not None and feats.ndim >= 2 and int(feats.shape[-1]) != want:
                    raise ValueError(
                        f"split {name!r} has {modality} features of size {int(feats.shape[-1])}, but the training "
                        f"split {d.train_split!r} has {want}: every split must come from the same encoder"
                    )
            skipped += [{**item, "split": name} for item in data.skipped]
            counts = f"{data.num_images} images" + (f", {data.text.shape[0]} texts" if data.text is not None else "")
            self._say(f"data: split {name!r} ready: {counts} ({time.perf_counter() - t0:.1f} s)")
        self.skipped_images = skipped

    # ---- checkpoints
    def describe(self) -> Dict[str, Any]:
        return describe_model(self.cfg, self.input_dims, self.num_classes)

    def _elapsed(self) -> float:
        return self.seconds_before + (time.perf_counter() - self._t_start)

    def _tensors(self) -> Dict[str, Tensor]:
        out = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        out.update({f"loss.{k}": v for k, v in _loss_state(self.criterion, self.model.similarity).items()})
        return out

    def _meta(self, kind: str) -> Dict[str, Any]:
        return _jsonable(
            {
                **self.describe(),
                "kind": kind,
                "gssf_version": gssf.__version__,
                "torch_version": torch.__version__,
                "epoch": self.epoch,
                "batches_done": self.batches_done,
                "step": self.step,
                "epoch_loss_sum": self.epoch_loss_sum,
                "best": self.best,
                "history": self.history,
                "train_seconds": self._elapsed(),
                "log_offset": self.log.offset,
                "world_size": self.env.world_size,
                "config": config_to_dict(self.cfg),
            }
        )

    def save_last(self) -> None:
        if not self.main:
            return
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        # Logged first so that the offset stored in the checkpoint includes this record.
        self.log.write({"event": "checkpoint", "name": "last", "epoch": self.epoch, "step": self.step})
        self.log.sync()
        save_checkpoint(self.ckpt_dir, "last", self._tensors(), self._meta("last"), state=state)
        self._saved = (self.epoch, self.step)

    def save_best(self) -> None:
        if self.main:
            save_checkpoint(self.ckpt_dir, "best", self._tensors(), self._meta("best"))

    def load_weights(self, meta: Mapping[str, Any]) -> None:
        check_compatible(meta, self.describe())
        model_t, loss_t = _split_tensors(load_checkpoint_tensors(meta, device=self.env.device))
        self.model.load_state_dict(model_t, strict=True)
        _load_loss_state(self.criterion, self.model.similarity, loss_t)

    def _check_resume_config(self, saved: Mapping[str, Any]) -> None:
        now, then = _flatten(config_to_dict(self.cfg)), _flatten(saved)
        diffs = [
            f"{k}: run has {then.get(k)!r}, now {now.get(k)!r}"
            for k in sorted(set(now) | set(then))
            if k not in RUNTIME_KEYS and now.get(k) != then.get(k)
        ]
        if diffs:
            raise ValueError(f"cannot resume {self.run_dir} with a different config: " + "; ".join(diffs))

    def restore(self) -> None:
        """Load the ``last`` checkpoint of the run folder (weights, optimizer, scheduler, RNG, counters)."""
        meta = load_checkpoint_meta(self.ckpt_dir / "last.json")
        self._check_resume_config(meta["config"])
        self.load_weights(meta)
        state = load_training_state(meta)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if state.get("rng_cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.epoch, self.batches_done, self.step = meta["epoch"], meta["batches_done"], meta["step"]
        self.epoch_loss_sum = float(meta["epoch_loss_sum"])
        self.history = list(meta["history"])
        self.best = dict(meta["best"])
        self.seconds_before = float(meta["train_seconds"])
        self.log.reset(int(meta["log_offset"]))
        self._saved = (self.epoch, self.step)
        self.log.write({"event": "resume", "epoch": self.epoch, "batches_done": self.batches_done, "step": self.step,
                        "world_size": self.env.world_size, "run_world_size": meta.get("world_size", 1)})

    # ---- loop
    def _diverged(self, what: str, value: float) -> TrainingDivergedError:
        lrs = ", ".join(f"{k} {v:.3g}" for k, v in self._lrs().items())
        kept = (
            f"the last good checkpoint {self.ckpt_dir / 'last.json'} (epoch {self._saved[0]}, step {self._saved[1]}) "
            "is kept: resume from it with a lower learning rate, or start a new run"
            if self._saved is not None else "no checkpoint had been written yet"
        )
        return TrainingDivergedError(
            f"training diverged: {what} is {value} at step {self.step + 1} (epoch {self.epoch + 1}) "
            f"with learning rates {lrs}; {kept}"
        )

    def _train_step(self, batch: Tensor) -> float:
        start, stop = shard_bounds(batch.numel(), self.env.rank, self.env.world_size)
        loss = self.task.loss(self.model, self.criterion, batch[start:stop])
        if not torch.isfinite(loss):
            raise self._diverged("the loss", float(loss.detach()))
        self.optimizer.zero_grad(set_to_none=True)
        if not loss.requires_grad:  # nothing learns (see build_param_groups): step the empty placeholder
            self.optimizer.step()
            self.scheduler.step()
            return float(loss.detach())
        loss.backward()
        average_gradients(self.params)
        # The gradient norm is checked before the step, so non-finite gradients never reach
        # the weights (nor, through them, a checkpoint).
        clip = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        if not torch.isfinite(norm):
            raise self._diverged("the gradient norm", float(norm))
        self.optimizer.step()
        constrain_parameters(self.criterion, self.model)
        self.scheduler.step()
        return float(loss.detach())

    def _lrs(self) -> Dict[str, float]:
        return {g.get("name", str(i)): float(g["lr"]) for i, g in enumerate(self.optimizer.param_groups)}

    def _validate(self) -> Dict[str, Any]:
        split = self.cfg.data.val_split
        assert split is not None, "no validation split (data.val_split is null)"
        metrics: Any = None
        if self.main:
            self.model.eval()
            metrics = _jsonable(self.task.evaluate(self.model, split))
            self.model.train()
        return broadcast_object(metrics)

    def fit(self, resume: bool = False) -> Dict[str, Any]:
        """Train (or, with ``resume``, continue) into the run folder; returns the results dict."""
        if self._claimed:
            return self._fit(resume)
        lock = claim_run_dir(self.run_dir, resume, self.env)
        try:
            return self._fit(resume)
        finally:
            if lock is not None:
                lock.release()

    def _fit(self, resume: bool) -> Dict[str, Any]:
        cfg, loop = self.cfg, self.cfg.train
        self._t_start = time.perf_counter()
        if resume:
            self.restore()
        else:
            self.log.reset(0)
            if self.main:
                save_config(cfg, self.run_dir / "config.yaml", header=f"resolved config written by gssf {gssf.__version__}")
            self.log.write({"event": "start", "config": config_to_dict(cfg), "world_size": self.env.world_size,
                            "similarity_params": self.model.similarity.num_parameters})
        if self.main and self.skipped_images:
            atomic_write_json(self.run_dir / "skipped_images.json", self.skipped_images)
            self._say(f"data: {len(self.skipped_images)} unreadable or oversized images left out "
                      f"(listed in {self.run_dir / 'skipped_images.json'})")
        self.board = _Board(self.run_dir / "tensorboard", enabled=loop.tensorboard and self.main)
        try:
            self._loop()
            results = self._finish()
        finally:
            self.board.close()
        return results

    def _loop(self) -> None:
        loop = self.cfg.train
        self.model.train()
        self.criterion.train()
        for epoch in range(self.epoch, loop.epochs):
            t_epoch = time.perf_counter()
            self.task.set_epoch(self.criterion, epoch)
            batches = self.sampler.batches(epoch)[: self.steps_per_epoch]
            bar = _bar(len(batches), self.batches_done, f"epoch {epoch + 1}/{loop.epochs}", self.progress)
            for b in range(self.batches_done, len(batches)):
                loss = self._train_step(batches[b])
                self.step += 1
                self.batches_done = b + 1
                self.epoch_loss_sum += loss
                if self.step % loop.log_every == 0:
                    lrs = self._lrs()
                    self.log.write({"event": "train", "epoch": epoch + 1, "step": self.step, "loss": loss, "lr": lrs})
                    if self.board is not None:
                        self.board.scalars("train", {"loss": loss, **{f"lr_{k}": v for k, v in lrs.items()}}, self.step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                if loop.checkpoint_every and self.step % loop.checkpoint_every == 0 and self.batches_done < len(batches):
                    self.save_last()
            if bar is not None:
                bar.close()
            record: Dict[str, Any] = {
                "epoch": epoch + 1,
                "step": self.step,
                "train_loss": self.epoch_loss_sum / max(1, len(batches)),
                "lr": self._lrs(),
                "val": None,
            }
            improved = False
            # data.val_split null: no validation, no selection; the last epoch is tested.
            validate = self.cfg.data.val_split is not None
            if validate and ((epoch + 1) % loop.eval_every == 0 or epoch + 1 == loop.epochs):
                metrics = self._validate()
                record["val"] = metrics
                value = metrics.get(self.task.metric)
                if value is None:
                    raise ValueError(
                        f"config key 'eval.metric' is {self.task.metric!r}, not one of the metrics: {', '.join(metrics)}"
                    )
                if self.task.better(float(value), self.best["value"]):
                    improved = True
                    self.best = {"metric": self.task.metric, "value": float(value), "epoch": epoch + 1, "val": metrics}
            record["seconds"] = time.perf_counter() - t_epoch
            self.history.append(record)
            self.epoch, self.batches_done, self.epoch_loss_sum = epoch + 1, 0, 0.0
            self.log.write({"event": "epoch", **record, "best": improved})
            if self.progress:
                self._say(_epoch_line(record, loop.epochs, self.task.metric, improved))
            if self.board is not None:
                self.board.scalars("epoch", {"train_loss": record["train_loss"]}, self.step)
                if record["val"]:
                    self.board.scalars("val", record["val"], self.step)
                self.board.scalars("similarity", _structure_scalars(self.model, self.criterion), self.step)
            if improved:
                self.save_best()
            self.save_last()

    def _finish(self) -> Dict[str, Any]:
        train_seconds = self._elapsed()
        test: Optional[Dict[str, Any]] = None
        if self.cfg.eval.test and self.main:
            name = "best" if checkpoint_exists(self.ckpt_dir, "best") else "last"
            self.load_weights(load_checkpoint_meta(self.ckpt_dir / f"{name}.json"))
            self.model.eval()
            test = _jsonable(self.task.evaluate(self.model, self.cfg.data.test_split, per_query=True))
            # Per-query values (for confidence intervals over queries and seeds) in their own file.
            per_query = {k: test.pop(k) for k in ("per_query", "rerank_per_query") if k in test}
            atomic_write_json(self.run_dir / "test_per_query.json", {"split": self.cfg.data.test_split, **per_query})
            self.log.write({"event": "test", "split": self.cfg.data.test_split, "checkpoint": name, "metrics": test})
            if self.board is not None:
                self.board.scalars("test", test, self.step)
        results = {
            "val": self.best["val"],
            "test": test,
            "params": similarity_parameters(self.model),
            "train_seconds": train_seconds,
            "history": self.history,
            "best_epoch": self.best["epoch"],
            "metric": self.best["metric"],
            "run_dir": str(self.run_dir),
        }
        if self.towers_from is not None:
            results["towers_from"] = self.towers_from
        if self.teacher_from is not None:
            results["teacher_from"] = self.teacher_from
        results = broadcast_object(_jsonable(results))
        if self.main:
            atomic_write_json(self.run_dir / "results.json", results)
            self.log.write({"event": "end", "train_seconds": train_seconds})
        return results


def run(
    config: TrainConfig, run_dir: PathLike, progress: bool = True, resume: bool = False, quiet: bool = False
) -> Dict[str, Any]:
    """Train with ``config``, writing everything into ``run_dir``; returns the results.

    Returns ``{"val": best validation metrics (None when data.val_split is null: then the
    last epoch is tested), "test": test metrics of the selected checkpoint (None when
    eval.test is false), "params": similarity parameter count,
    "train_seconds": float, "history": [per-epoch dicts], "best_epoch": int or None,
    "metric": selection metric, "run_dir": str}``. ``resume=True`` continues the run in
    ``run_dir`` from its last checkpoint. ``progress``: a bar per epoch on a terminal and
    one line per epoch on stderr; ``quiet``: not even the per-split data lines. The run
    folder is checked and locked before any data is loaded (:mod:`gssf.train.rundir`).
    Under ``torchrun`` every process calls this.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig (see gssf.train.load_config), got {type(config).__name__}")
    config.validate()
    env = init_distributed(config.train.device)
    lock: Optional[RunDirLock] = None
    failed = True
    try:
        lock = claim_run_dir(run_dir, resume, env)
        with _runtime(config.train, env.device):
            trainer = Trainer(config, run_dir, env=env, progress=progress, quiet=quiet, claimed=True)
            results = trainer.fit(resume=resume)
        failed = False
        return results
    finally:
        if lock is not None:
            lock.release(tidy=failed)  # a run that failed before writing anything leaves no folder
        cleanup_distributed(env)


# --------------------------------------------------------------------------- loading for evaluation


def load_model(
    checkpoint: PathLike, device: Union[str, torch.device] = "cpu", data_root: Optional[str] = None
) -> Tuple[nn.Module, Task, Dict[str, Any]]:
    """Rebuild the model of a checkpoint (run folder or file) and load its weights.

    Returns ``(model in eval mode, task, checkpoint description)``; ``task.evaluate(model,
    split)`` evaluates a split of the data the run was trained on.
    """
    meta = load_checkpoint_meta(checkpoint)
    data = dict(meta["config"])
    if data_root is not None:
        data["data"] = {**data["data"], "root": data_root}
    cfg = config_from_dict(data).validate()
    dev = resolve_device(device, where="device")
    task = make_task(cfg, dev)
    model = task.build_model(dict(meta["input_dims"])).to(dev)
    check_compatible(meta, describe_model(cfg, meta["input_dims"], meta.get("loss", {}).get("num_classes", 0)))
    model_t, _ = _split_tensors(load_checkpoint_tensors(meta, device=dev))
    missing, unexpected = model.load_state_dict(model_t, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {meta['path']} does not fit the model: missing {missing}, unexpected {unexpected}")
    model.eval()
    return model, task, meta


def evaluate_checkpoint(
    checkpoint: PathLike,
    split: str = "test",
    device: Union[str, torch.device] = "cpu",
    data_root: Optional[str] = None,
    chunk_size: Optional[int] = None,
) -> Dict[str, Any]:
    """Metrics of a checkpoint on ``split`` (the dict of the task's evaluator)."""
    model, task, _ = load_model(checkpoint, device=device, data_root=data_root)
    if chunk_size is not None:
        task.cfg.eval.chunk_size = chunk_size
    with torch.no_grad():
        return _jsonable(task.evaluate(model, split))
