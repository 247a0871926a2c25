"""From a trained run to files a search system can use without training code (``gssf export``).

``export_run(run, out)`` writes, into ``out``:

* ``similarity/``: the similarity (:meth:`gssf.Similarity.save_pretrained`);
* ``towers.safetensors`` + ``export.json``: the heads of the run's towers (``image.*`` and
  ``text.*``, or ``tower.*`` for the one tower of a uni-modal run), the run's task,
  embedding size and which vector of each side goes into an index;
* ``fold.safetensors`` (static members): the fold as plain matrices, usable without gssf:
  ``score(x, y) = (normalize(x) @ query) . (normalize(y) @ gallery)`` with ``x`` an
  embedding of the similarity's first argument (images; queries of a uni-modal task) and
  ``y`` of its second (captions; the gallery); ``normalize`` divides a row by its L2 norm;
* ``<side>.onnx`` (with ``onnx=True``): for each side, features -> head -> the side's
  index vector (``fold_query`` for the first argument, ``fold_gallery`` for the second),
  so that an inner product of the two sides' outputs is the learned score in both
  directions (text -> image search puts images in the index, image -> text the captions).

Only static members fold into vectors; a pair-conditioned member (``gssf_dynamic``)
exports its similarity and towers, and the ONNX / fold files of its static part
(``static_part()``) for a first-stage shortlist, re-scored with the similarity itself.
Runs that fine-tune an encoder are refused: the export covers heads over cached features.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import torch
from torch import Tensor, nn

from gssf.errors import GssfError

__all__ = ["EXPORT_FILE", "export_run", "read_export"]

EXPORT_FILE = "export.json"
FORMAT = 1
PathLike = Union[str, Path]


class _Side(nn.Module):
    """Features -> head -> the side's index vectors (``fold_query`` or ``fold_gallery``)."""

    def __init__(self, head: nn.Module, similarity: Any, role: str) -> None:
        super().__init__()
        self.head = head
        self.similarity = similarity
        self.role = role

    def forward(self, features: Tensor) -> Tensor:
        emb = self.head(features)
        return self.similarity.fold_query(emb) if self.role == "query" else self.similarity.fold_gallery(emb)


def _sides(model: nn.Module) -> List[Tuple[str, str, nn.Module, str]]:
    """``(side, tower name, head, role)``: the first argument of the similarity folds as the query."""
    if hasattr(model, "image_tower"):
        return [("image", "image", model.image_tower, "query"), ("text", "text", model.text_tower, "gallery")]
    return [("query", "tower", model.tower, "query"), ("gallery", "tower", model.tower, "gallery")]


def _fold_matrices(similarity: Any, dim: int) -> Dict[str, Tensor]:
    """``{"query": (D, Fq), "gallery": (D, Fg)}`` such that fold(x) == normalize(x) @ matrix, or {} when not linear."""
    eye = torch.eye(dim, dtype=torch.float64)
    sim = copy.deepcopy(similarity).double()  # float64 to read the matrices; the model keeps its dtype
    with torch.no_grad():
        mats = {"query": sim.fold_query(eye), "gallery": sim.fold_gallery(eye)}
        g = torch.Generator().manual_seed(0)
        x = torch.randn(16, dim, generator=g, dtype=torch.float64)
        unit = x / x.norm(dim=1, keepdim=True)
        linear = all(torch.allclose(getattr(sim, f"fold_{k}")(x), unit @ m, rtol=1e-9, atol=1e-12) for k, m in mats.items())
    return {k: m.float().contiguous() for k, m in mats.items()} if linear else {}


def export_run(run: PathLike, out: PathLike, *, onnx: bool = True, device: str = "cpu") -> Dict[str, Path]:
    """Export the checkpoint of ``run`` (a run folder or checkpoint file) into ``out``; returns the files written.

    Raises:
        GssfError: a run that fine-tunes an encoder, or an ONNX export that does not match eager.
    """
    from gssf.train import load_model
    from gssf.utils.io import atomic_path, atomic_write_json
    from gssf.utils.optional import require

    st = require("safetensors.torch", "train", "gssf export")
    model, task, meta = load_model(run, device=device)
    cfg = task.cfg
    if cfg.model.finetune != "none":
        raise GssfError(f"{run} fine-tunes its {cfg.model.finetune} encoder: gssf export covers heads over cached features")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: Dict[str, Path] = {}
    sim = model.similarity
    written["similarity"] = sim.save_pretrained(out / "similarity")
    index_sim = sim.static_part()
    dims = {k: int(v) for k, v in meta["input_dims"].items()}
    sides = _sides(model)
    heads = {tower: head for _, tower, head, _ in sides}  # a uni-modal model has one tower for both sides
    towers = {f"{tower}.{k}": v.detach().cpu().contiguous() for tower, head in heads.items() for k, v in head.state_dict().items()}
    with atomic_path(out / "towers.safetensors") as tmp:
        st.save_file(towers, str(tmp))
    written["towers"] = out / "towers.safetensors"
    fold = _fold_matrices(index_sim, cfg.model.embed_dim)
    if fold:
        with atomic_path(out / "fold.safetensors") as tmp:
            st.save_file(fold, str(tmp))
        written["fold"] = out / "fold.safetensors"
    input_dim = {name: dims["text" if name == "text" else "image"] for name, _, _, _ in sides}
    if onnx:
        for name, _, head, role in sides:
            side = _Side(head, index_sim, role).train(False)  # inference mode (dropout off)
            written[f"{name}.onnx"] = _export_onnx(side, input_dim[name], out / f"{name}.onnx")
    doc = {
        "format": FORMAT,
        "task": cfg.data.task,
        "dataset": cfg.data.dataset,
        "similarity": sim.name,
        "static": bool(sim.is_static),
        "embed_dim": int(cfg.model.embed_dim),
        "head": {"kind": cfg.model.head, "hidden_dim": cfg.model.hidden_dim, "num_layers": cfg.model.num_layers},
        "sides": {name: {"input_dim": input_dim[name], "role": role, "tower": tower,
                         "onnx": f"{name}.onnx" if onnx else None} for name, tower, _, role in sides},  # fmt: skip
        "fold": "fold.safetensors" if fold else None,
        "score": ("(normalize(x) @ fold['query']) . (normalize(y) @ fold['gallery']); x: first side, y: second side"
                  if fold else "not an inner product of per-item vectors: score with the similarity")
        + ("" if sim.is_static else "; fold and ONNX sides are the static part's (a shortlist): re-score the "
           "shortlist with similarity/, the pair-conditioned member"),
        "source": {"checkpoint": str(meta.get("path", run)), "encoders": {"image": cfg.data.image_encoder,
                   "text": cfg.data.text_encoder}, "resolution": cfg.data.resolution},  # fmt: skip
    }
    written["export"] = atomic_write_json(out / EXPORT_FILE, doc)
    return written


def _export_onnx(module: nn.Module, in_dim: int, path: Path) -> Path:
    """``module`` (features (N, in_dim) -> vectors) as ONNX with a dynamic batch size, checked against eager."""
    from gssf.utils.io import atomic_path
    from gssf.utils.optional import require

    require("onnxscript", "export", "gssf export (ONNX)")
    ort = require("onnxruntime", "export", "gssf export (ONNX check)")
    import logging
    import warnings

    x = torch.randn(3, in_dim, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" and the like: not about this model
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False)
            program.save(str(tmp))
    finally:
        quiet.setLevel(level)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probe = torch.randn(5, in_dim, generator=torch.Generator().manual_seed(1))
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: probe.numpy()})[0])
    with torch.no_grad():
        want = module(probe)
    if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise GssfError(f"{path}: the ONNX model does not reproduce the eager one (max diff "
                        f"{float((got - want).abs().max()) if got.shape == want.shape else 'shape'}); not exported")  # fmt: skip
    return path


def read_export(directory: PathLike) -> Dict[str, Any]:
    """``export.json`` of an export folder (checked)."""
    from gssf.utils.io import read_json_object

    path = Path(directory) / EXPORT_FILE
    doc = read_json_object(path, "gssf export")
    if doc.get("format") != FORMAT or not isinstance(doc.get("sides"), dict):
        raise GssfError(f"{path} is not a gssf export (format {FORMAT} with 'sides')")
    return doc
