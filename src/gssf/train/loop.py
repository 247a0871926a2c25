"""The training loop: epochs of steps, validation and model selection, then the test of the
selected checkpoint (mixed into :class:`gssf.train.trainer.Trainer`)."""
from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

from gssf.errors import TrainingDivergedError
from gssf.losses import constrain_parameters
from gssf.train.checkpoint import checkpoint_exists, load_checkpoint_meta
from gssf.train.config_schema import TrainConfig
from gssf.train.distributed import average_gradients, broadcast_object, shard_bounds
from gssf.train.logs import _bar, _epoch_line, _structure_scalars
from gssf.train.optim import similarity_parameters
from gssf.train.state import _jsonable
from gssf.train.tasks import Task
from gssf.utils.io import atomic_write_json

__all__ = ["TrainingLoop"]


class TrainingLoop:
    """The steps of a run that :class:`~gssf.train.trainer.Trainer` sets up: the split check
    before the first step, the epochs (train steps, validation, model selection,
    checkpoints) and the final test of the selected checkpoint."""

    # set by Trainer.__init__
    cfg: TrainConfig
    task: Task
    model: nn.Module
    criterion: nn.Module

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
