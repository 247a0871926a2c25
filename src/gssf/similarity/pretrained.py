"""Save a similarity to a folder and load it back without its constructor arguments.

A folder written by :meth:`Similarity.save_pretrained` holds:

* ``similarity.json``: ``{"format": 1, "name": <registered name>, "kwargs": {...},
  "dtype": "float32", "gssf_version": ...}``, the constructor arguments the object was
  built with (recorded by the base class at construction) and its tensors' dtype;
* ``similarity.safetensors``: its state dict (parameters and buffers, e.g. the power
  iteration vectors of a spectral bound), float tensors as they are.

:func:`load_similarity` rebuilds the registered class from the JSON and loads the
tensors strictly: a missing, extra or reshaped tensor, an unknown name or a malformed file
is refused with a :class:`~gssf.errors.GssfError` naming the file. The files are untrusted
input: the JSON is size-capped and its kwargs go through the class's own argument checks;
safetensors holds no code.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, Union

from gssf.errors import GssfError

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "save_similarity", "load_similarity"]

CONFIG_FILE = "similarity.json"
WEIGHTS_FILE = "similarity.safetensors"
FORMAT = 1
MAX_CONFIG_BYTES = 1 << 20


def _jsonable(value: Any, where: str) -> Any:
    import torch

    if isinstance(value, torch.Tensor) and value.numel() <= 1 << 20 and not value.is_floating_point():
        value = value.tolist()  # an integer tensor argument (a channel permutation)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GssfError(f"cannot save {where}={value!r}: not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    raise GssfError(
        f"cannot save {where}: a {type(value).__name__} is not a plain value (numbers, strings, lists); "
        "a similarity built from other objects (e.g. gssf.search.TwoStage) is saved through its parts"
    )


def save_similarity(similarity: Any, directory: Union[str, Path]) -> Path:
    """Write ``similarity.json`` and ``similarity.safetensors`` into ``directory`` (created; files written atomically)."""
    from gssf import __version__
    from gssf.utils.io import atomic_path, atomic_write_json
    from gssf.utils.optional import require

    st = require("safetensors.torch", "train", "Similarity.save_pretrained")
    name = getattr(type(similarity), "name", "")
    from gssf.similarity.registry import SIMILARITIES

    if not name or SIMILARITIES.get(name) is not type(similarity):
        raise GssfError(f"cannot save a {type(similarity).__name__}: it is not a registered similarity")
    kwargs = {k: _jsonable(v, k) for k, v in similarity.config().items()}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in similarity.state_dict().items()}
    floating = sorted({str(v.dtype).replace("torch.", "") for v in tensors.values() if v.is_floating_point()})
    if len(floating) > 1:
        raise GssfError(f"cannot save a similarity whose tensors mix dtypes ({', '.join(floating)})")
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        st.save_file(tensors, str(tmp), metadata={"format": str(FORMAT), "similarity": name})
    doc = {"format": FORMAT, "name": name, "kwargs": kwargs, "dtype": floating[0] if floating else "float32",
           "gssf_version": __version__}  # fmt: skip
    atomic_write_json(out / CONFIG_FILE, doc)
    return out


def _read_config(path: Path) -> Dict[str, Any]:
    from gssf.utils.io import read_json_object

    doc = read_json_object(path, "Similarity.save_pretrained", MAX_CONFIG_BYTES, fmt=FORMAT)
    if not isinstance(doc.get("name"), str) or not isinstance(doc.get("kwargs"), dict):
        raise GssfError(f"{path} needs a 'name' (string) and 'kwargs' (object)")
    return doc


def load_similarity(directory: Union[str, Path], map_location: str = "cpu") -> Any:
    """The similarity saved in ``directory`` by :meth:`Similarity.save_pretrained`, in eval mode.

    Raises:
        FileNotFoundError: no ``similarity.json`` / ``similarity.safetensors`` there.
        GssfError: a malformed file, an unknown similarity, kwargs its class refuses, or
            tensors that do not match its parameters (each names the file and the problem).
    """
    import torch

    from gssf.similarity.registry import create_similarity
    from gssf.utils.optional import require

    st = require("safetensors.torch", "train", "gssf.load_similarity")
    folder = Path(directory)
    doc = _read_config(folder / CONFIG_FILE)
    try:
        similarity = create_similarity(doc["name"], **doc["kwargs"])
    except KeyError as exc:
        raise GssfError(f"{folder / CONFIG_FILE}: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise GssfError(f"{folder / CONFIG_FILE}: its kwargs do not build {doc['name']!r}: {exc}") from None
    dtype = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
             "bfloat16": torch.bfloat16}.get(doc.get("dtype", "float32"))  # fmt: skip
    if dtype is None:
        raise GssfError(f"{folder / CONFIG_FILE}: unknown dtype {doc.get('dtype')!r}")
    similarity = similarity.to(dtype)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} at {folder} (a folder written by Similarity.save_pretrained)")
    try:
        tensors = st.load_file(str(weights), device=map_location)
    except Exception as exc:  # safetensors raises its own error types on a damaged header or body
        raise GssfError(f"{weights} is not a readable safetensors file: {exc}") from None
    expected = similarity.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        raise GssfError(f"{weights} does not match {doc['name']!r}: missing {missing}, unexpected {extra}")
    for key, value in expected.items():
        if tensors[key].shape != value.shape or tensors[key].dtype != value.dtype:
            raise GssfError(
                f"{weights}: {key} has shape {tuple(tensors[key].shape)} {tensors[key].dtype}, "
                f"{doc['name']!r} expects {tuple(value.shape)} {value.dtype}"
            )
    similarity.load_state_dict(tensors, strict=True)
    return similarity.train(False)
