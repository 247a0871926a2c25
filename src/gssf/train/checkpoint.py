"""Checkpoints: safetensors weights + a JSON description + a ``weights_only`` training state.

A checkpoint named ``last`` in ``run/checkpoints/`` is three files::

    last.safetensors   model (and loss) tensors; metadata holds the checkpoint id
    last.json          what the tensors are: similarity name + kwargs, dimensions, the
                       resolved config, epoch/step, metrics; never a pickled object
    last.state.pt      optimizer, scheduler and RNG state (``torch.load(weights_only=True)``)

Saving is crash-safe for the set, not only for each file. Every file is first written
in full under a temporary name and fsynced; then a small journal ``last.commit.json``
naming them is written atomically (the commit point); then the files are renamed into
place and the journal is removed. A crash before the commit leaves the previous
checkpoint untouched (the staged files are cleaned up at the next save); a crash after
it is rolled forward by the next reader. All three files carry the same checkpoint id,
so a reader can tell a consistent set from a torn one.

Every file is also checksummed: the description records the SHA-256 of the weights and
state files and of its own content (``sha256``), and every load verifies them, so a
flipped or zeroed byte is a :class:`~gssf.errors.CheckpointDamagedError`, never a silently
different model.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import Tensor

from gssf.errors import CheckpointDamagedError
from gssf.utils.io import atomic_write_json, sha256_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "resolve_checkpoint",
    "load_checkpoint_meta",
    "load_checkpoint_tensors",
    "load_training_state",
    "check_compatible",
    "checkpoint_exists",
    "load_towers",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Version of the checkpoint layout written by :func:`save_checkpoint` (2: SHA-256 checksums).
CHECKPOINT_FORMAT = 2
_WEIGHTS, _META, _STATE, _JOURNAL = ".safetensors", ".json", ".state.pt", ".commit.json"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _meta_digest(meta: Mapping[str, Any]) -> str:
    """SHA-256 of the description itself, over a canonical JSON form without ``path`` and the digest."""
    body = {k: v for k, v in meta.items() if k not in ("path", "meta_sha256")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode("utf-8")).hexdigest()


def _verify_file(path: Path, meta: Mapping[str, Any], role: str) -> None:
    expected = (meta.get("sha256") or {}).get(role)
    if not expected:
        raise CheckpointDamagedError(f"checkpoint is damaged: {meta['path']} records no checksum for its {role} file")
    actual = sha256_file(path)
    if actual != expected:
        raise CheckpointDamagedError(
            f"checkpoint is damaged: {path} does not match the SHA-256 recorded in {meta['path']} "
            f"(expected {expected[:12]}..., found {actual[:12]}...); restore it from a copy or retrain"
        )


def _apply_journal(directory: Path, name: str) -> None:
    """Finish an interrupted save of ``name`` whose journal was committed."""
    journal = directory / f"{name}{_JOURNAL}"
    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return
    except (ValueError, KeyError):  # pragma: no cover - the journal is written atomically
        journal.unlink(missing_ok=True)
        return
    for staged, final in entries:
        try:
            os.replace(directory / staged, directory / final)
        except FileNotFoundError:  # already moved (by the writer or another reader)
            pass
    _fsync_dir(directory)
    journal.unlink(missing_ok=True)


def _remove_stale(directory: Path, name: str) -> None:
    """Delete staged files of ``name`` left by a save that crashed before its commit."""
    for p in directory.glob(f".{name}.*.pending"):
        p.unlink(missing_ok=True)


def save_checkpoint(
    directory: PathLike,
    name: str,
    tensors: Mapping[str, Tensor],
    meta: Mapping[str, Any],
    state: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write checkpoint ``directory/name.*`` crash-safely; returns the ``.json`` path.

    Args:
        tensors: flat name -> tensor mapping (a ``state_dict``); stored with safetensors.
        meta: JSON-serialisable description (dims, similarity, config, metrics).
        state: optional training state (optimizer/scheduler ``state_dict``s, RNG tensors,
            counters): anything ``torch.load(weights_only=True)`` accepts.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _apply_journal(directory, name)
    _remove_stale(directory, name)
    token = uuid.uuid4().hex[:16]
    meta = {**meta, "format": CHECKPOINT_FORMAT, "checkpoint_id": token, "has_state": state is not None}
    digests: Dict[str, str] = {}

    def staged(suffix: str) -> Path:
        return directory / f".{name}.{token}{suffix}.pending"

    plan = []
    weights = staged(_WEIGHTS)
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(flat, str(weights), metadata={"checkpoint_id": token, "format": f"gssf-{CHECKPOINT_FORMAT}"})
    _fsync_file(weights)
    digests["weights"] = sha256_file(weights)
    plan.append((weights.name, f"{name}{_WEIGHTS}"))
    if state is not None:
        state_path = staged(_STATE)
        torch.save({**state, "checkpoint_id": token}, state_path)
        _fsync_file(state_path)
        digests["state"] = sha256_file(state_path)
        plan.append((state_path.name, f"{name}{_STATE}"))
    meta["sha256"] = digests
    meta["meta_sha256"] = _meta_digest(meta)
    meta_path = staged(_META)
    meta_path.write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    _fsync_file(meta_path)
    plan.append((meta_path.name, f"{name}{_META}"))
    # Commit point: from here on the new checkpoint wins, even after a crash.
    atomic_write_json(directory / f"{name}{_JOURNAL}", {"checkpoint_id": token, "files": plan})
    _apply_journal(directory, name)
    if state is None:  # a state file of an older save would not match this id
        (directory / f"{name}{_STATE}").unlink(missing_ok=True)
    return directory / f"{name}{_META}"


def resolve_checkpoint(path: PathLike, prefer: str = "best") -> Path:
    """The ``.json`` of a checkpoint given a run folder, a checkpoints folder or a file.

    Accepts ``RUN/`` (uses ``RUN/checkpoints/<prefer>``, falling back to ``last``),
    ``RUN/checkpoints/``, ``NAME.safetensors``, ``NAME.json``, ``NAME.state.pt`` or the
    stem ``NAME``. Raises ``FileNotFoundError`` with the expected layout.
    """
    p = Path(path)
    candidates = []
    if p.is_dir():
        ckdir = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        names = [prefer] + [n for n in ("best", "last") if n != prefer]
        candidates = [ckdir / f"{n}{_META}" for n in names]
    else:
        s = str(p)
        for suffix in (_STATE, _JOURNAL, _WEIGHTS, _META):
            if s.endswith(suffix):
                s = s[: -len(suffix)]
                break
        candidates = [Path(s + _META)]
    for c in candidates:
        _apply_journal(c.parent, c.name[: -len(_META)])
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"no checkpoint found at {p}; expected a run folder containing checkpoints/best.json "
        f"(or last.json), or a checkpoint file NAME.safetensors with NAME.json next to it"
    )


def load_checkpoint_meta(path: PathLike) -> Dict[str, Any]:
    """The JSON description of a checkpoint (see :func:`resolve_checkpoint` for ``path``)."""
    meta_path = resolve_checkpoint(path)
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointDamagedError(f"checkpoint is damaged: {meta_path} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "format" not in meta or "checkpoint_id" not in meta:
        raise ValueError(f"{meta_path} is not a gssf checkpoint description")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{meta_path} has checkpoint format {meta.get('format')!r}; this gssf reads format {CHECKPOINT_FORMAT}"
        )
    if meta.get("meta_sha256") != _meta_digest(meta):
        raise CheckpointDamagedError(
            f"checkpoint is damaged: {meta_path} does not match its own SHA-256 (edited or corrupted)"
        )
    meta["path"] = str(meta_path)
    return meta


def checkpoint_exists(directory: PathLike, name: str) -> bool:
    """Whether ``directory/name.json`` exists (after rolling a committed save forward)."""
    directory = Path(directory)
    _apply_journal(directory, name)
    return (directory / f"{name}{_META}").is_file()


def _stem(meta: Mapping[str, Any]) -> str:
    return str(meta["path"])[: -len(_META)]


def load_checkpoint_tensors(meta: Mapping[str, Any], device: Union[str, torch.device] = "cpu") -> Dict[str, Tensor]:
    """The tensors of the checkpoint described by ``meta`` (from :func:`load_checkpoint_meta`)."""
    from safetensors import safe_open

    path = _stem(meta) + _WEIGHTS
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint weights missing: {path}")
    try:
        fh_cm = safe_open(path, framework="pt", device=str(device))
    except Exception as exc:  # safetensors raises its own error type for a bad header
        raise CheckpointDamagedError(f"checkpoint is damaged: {path} is not a readable safetensors file ({exc})") from None
    with fh_cm as fh:
        token = (fh.metadata() or {}).get("checkpoint_id")
        if token != meta.get("checkpoint_id"):
            raise ValueError(f"checkpoint {path} does not match its description (torn write?): ids {token} != {meta.get('checkpoint_id')}")
        _verify_file(Path(path), meta, "weights")
        return {k: fh.get_tensor(k) for k in fh.keys()}


def load_training_state(meta: Mapping[str, Any]) -> Dict[str, Any]:
    """Optimizer/scheduler/RNG state of a checkpoint, loaded with ``weights_only=True``."""
    path = _stem(meta) + _STATE
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {meta['path']} has no training state ({path}); it cannot be resumed")
    _verify_file(Path(path), meta, "state")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("checkpoint_id") != meta.get("checkpoint_id"):
        raise ValueError(f"training state {path} does not match its checkpoint description (torn write?)")
    return state


#: Keys of the checkpoint description that must match for weights to load.
COMPATIBILITY_KEYS = ("task", "similarity", "embed_dim", "input_dims", "heads", "finetune", "loss")


#: What two runs must share for one's towers to initialise the other's (the similarity and the loss may differ).
TOWER_KEYS = ("task", "embed_dim", "input_dims", "heads", "finetune")


def load_towers(model: torch.nn.Module, source: PathLike, expected: Mapping[str, Any]) -> Dict[str, Any]:
    """Load every weight of ``model`` but its similarity's from the checkpoint at ``source``.

    ``source``: a run folder (its best checkpoint, else last) or a checkpoint file;
    ``expected``: this run's description (``Trainer.describe()``), checked on
    :data:`TOWER_KEYS` before any tensor is read. Returns ``{"path", "checkpoint_id",
    "sha256"}`` of the checkpoint used, which the run records.
    """
    meta = load_checkpoint_meta(source)
    check_compatible(meta, {k: expected[k] for k in TOWER_KEYS if k in expected})
    prefix, skip = "model.", "model.similarity."
    tensors = {k[len(prefix):]: v for k, v in load_checkpoint_tensors(meta).items() if k.startswith(prefix) and not k.startswith(skip)}
    wanted = {k for k in model.state_dict() if not k.startswith("similarity.")}
    if set(tensors) != wanted:
        raise ValueError(
            f"checkpoint {meta['path']} does not hold this model's towers: missing {sorted(wanted - set(tensors))}, "
            f"unexpected {sorted(set(tensors) - wanted)}"
        )
    model.load_state_dict(tensors, strict=False)
    return checkpoint_record(meta)


def checkpoint_record(meta: Mapping[str, Any]) -> Dict[str, Any]:
    """``{"path", "checkpoint_id", "sha256"}`` of a checkpoint: what a run records of one it started from."""
    return {"path": meta["path"], "checkpoint_id": meta["checkpoint_id"], "sha256": dict(meta.get("sha256") or {})}


def check_compatible(meta: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming every architectural difference between ``meta`` and ``expected``.

    Checked before any tensor is read, so a checkpoint of another similarity or
    dimension fails with a readable message rather than a ``state_dict`` key error.
    """
    diffs = []
    for key in COMPATIBILITY_KEYS:
        if key in expected and meta.get(key) != expected[key]:
            diffs.append(f"{key}: checkpoint has {_show(meta.get(key))}, the model has {_show(expected[key])}")
    if diffs:
        where = meta.get("path", "checkpoint")
        raise ValueError(f"incompatible checkpoint {where}: " + "; ".join(diffs))


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
