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
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

import gssf
from gssf.train.checkpoint import (
    check_compatible,
    load_checkpoint_meta,
    load_checkpoint_tensors,
    load_towers,
    load_training_state,
    save_checkpoint,
)
from gssf.train.config_io import config_to_dict, save_config
from gssf.train.config_schema import LoopConfig, TrainConfig
from gssf.train.distributed import DistEnv, barrier, cleanup_distributed, init_distributed
from gssf.train.loading import evaluate_checkpoint, load_model
from gssf.train.logs import _Board, _JsonlLog, _stderr_line
from gssf.train.loop import TrainingLoop
from gssf.train.optim import build_optimizer, build_param_groups, build_scheduler
from gssf.train.rundir import RunDirLock, claim_run_dir
from gssf.train.state import _flatten, _jsonable, _load_loss_state, _loss_state, _split_tensors, describe_model
from gssf.train.tasks import Task, build_criterion, make_task
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
    "claim_run_dir",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Config keys that may change when a run is resumed (they do not change the results).
RUNTIME_KEYS = frozenset(
    {"train.device", "train.num_threads", "train.tensorboard", "eval.chunk_size", "eval.batch_size", "data.root"}
)


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


class Trainer(TrainingLoop):
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
