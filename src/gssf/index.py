"""A searchable index of a trained run's gallery (``gssf index build``, ``gssf search``).

An index folder holds:

* ``model/``: the run's export (:func:`gssf.export.export_run`, without ONNX): similarity,
  heads, fold;
* ``index.faiss``: the gallery's index vectors in a faiss inner-product index
  (``IndexFlatIP``, exact, by default; ``ivf`` and ``hnsw`` as options), so that a query's
  inner products are the learned scores;
* ``embeddings.npy``: the gallery's embeddings (what the heads output), for cosine
  scoring on the same items and for re-scoring a pair-conditioned member's shortlist;
* ``manifest.json``: what was indexed (side, items with their paths or captions, count),
  the index kind and its parameters, the metric, and SHA-256 digests of the model files
  and of the vectors.

The index side: a similarity ``s(x, y)`` folds its first argument (images of an
image-text run, queries of a uni-modal one) with ``fold_query`` and its second (captions,
the gallery) with ``fold_gallery``; the indexed items get their side's fold and a query
the other side's, so the inner product is ``s`` whichever side is indexed. A text query
searches an image index (text -> image), an image query a caption index (image -> text)
or, for a uni-modal run, an image index (image -> image).

A pair-conditioned member (``gssf_dynamic``) is searched in two stages: ``shortlist``
candidates from its static part's index vectors, re-scored with the member itself.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from gssf.errors import GssfError
from gssf.utils.io import read_json_object, sha256_file

__all__ = ["Hit", "SearchIndex", "build_index", "KINDS"]

MANIFEST = "manifest.json"
FORMAT = 1
KINDS = ("flat", "ivf", "hnsw")
PathLike = Union[str, Path]
MAX_QUERY_CHARS = 2000
MAX_MANIFEST_BYTES = 512 << 20
#: The model files whose digests the manifest records and loading checks.
MODEL_FILES = ("towers.safetensors", "similarity/similarity.safetensors", "similarity/similarity.json", "export.json")


@dataclass(frozen=True)
class Hit:
    """One search result: 1-based ``rank``, the learned ``score``, the item's ``index`` and what it is."""

    rank: int
    score: float
    index: int
    id: str
    path: Optional[str] = None
    caption: Optional[str] = None


def _faiss() -> Any:
    from gssf.utils.optional import require

    return require("faiss", "index", "gssf index / gssf search")


def _make_index(vectors: np.ndarray, kind: str, nlist: int, m: int) -> Any:
    faiss = _faiss()
    d = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        nlist = max(1, min(nlist, vectors.shape[0] // 39 or 1))  # faiss wants ~39 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
    else:
        raise GssfError(f"unknown index kind {kind!r}; choose from {', '.join(KINDS)}")
    index.add(vectors)
    return index


class _Model:
    """The exported heads and similarity, rebuilt for query embedding (no training code)."""

    def __init__(self, folder: Path) -> None:
        from safetensors.torch import load_file

        from gssf import load_similarity
        from gssf.export import read_export
        from gssf.models.heads import build_head

        self.doc = read_export(folder)
        self.similarity = load_similarity(folder / "similarity")
        weights = load_file(str(folder / "towers.safetensors"))
        head = self.doc["head"]
        self.heads: Dict[str, torch.nn.Module] = {}
        for side, info in self.doc["sides"].items():
            tower = info["tower"]
            module = build_head(int(info["input_dim"]), int(self.doc["embed_dim"]), kind=head["kind"],
                                hidden_dim=int(head["hidden_dim"]), num_layers=int(head["num_layers"]))  # fmt: skip
            state = {k[len(tower) + 1 :]: v for k, v in weights.items() if k.startswith(tower + ".")}
            module.load_state_dict(state, strict=True)
            self.heads[side] = module.train(False)  # inference mode

    def embed(self, side: str, features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.heads[side](features.float())

    def index_vectors(self, side: str, emb: torch.Tensor) -> torch.Tensor:
        """The side's fold of embeddings (of the static part for a pair-conditioned member)."""
        sim = self.similarity.static_part()
        role = self.doc["sides"][side]["role"]
        with torch.no_grad():
            return sim.fold_query(emb) if role == "query" else sim.fold_gallery(emb)


def _other(doc: Dict[str, Any], side: str) -> str:
    sides = list(doc["sides"])
    return sides[1] if side == sides[0] else sides[0]


def build_index(
    run: PathLike,
    out: PathLike,
    *,
    split: Optional[str] = "test",
    features: Optional[PathLike] = None,
    images: Optional[PathLike] = None,
    side: Optional[str] = None,
    kind: str = "flat",
    nlist: int = 64,
    m: int = 32,
) -> Path:
    """Index the gallery of ``run``'s ``split`` (or of a ``features`` npz) into the folder ``out``.

    Args:
        run: a run folder or checkpoint.
        split: the data split whose items are indexed (its cached features; the run's dataset).
        features: instead of ``split``, an ``.npz`` with ``image`` (and for image-text
            ``text``) feature arrays and optional ``ids`` / ``paths`` / ``captions``.
        images: instead of ``split``, a folder of image files (PNG, JPEG, GIF, WebP, BMP,
            SVG; searched recursively, at most :data:`MAX_FOLDER_IMAGES`), encoded with the
            run's image encoder at its resolution; unreadable files are refused by name.
        side: what to index: ``image`` or ``text`` for an image-text run (default ``image``:
            text -> image search), ``gallery`` for a uni-modal one (default).
        kind: ``flat`` (exact), ``ivf`` (``nlist`` lists) or ``hnsw`` (``m`` links).
    """
    from gssf.export import export_run
    from gssf.utils.io import atomic_path, atomic_write_json

    faiss = _faiss()
    if kind not in KINDS:
        raise GssfError(f"unknown index kind {kind!r}; choose from {', '.join(KINDS)}")
    out = Path(out)
    export_run(run, out / "model", onnx=False)
    model = _Model(out / "model")
    sides = list(model.doc["sides"])
    side = side or ("image" if "image" in sides else "gallery")
    if side not in sides:
        raise GssfError(f"side {side!r} is not a side of this run; choose from {', '.join(sides)}")
    if sum(x is not None for x in (features, images)) > 1:
        raise GssfError("give one of split, features or images")
    if images is not None:
        if side == "text" or (model.doc["task"] == "image_text" and side != "image"):
            raise GssfError(f"a folder of images is indexed on the image side, not {side!r}")
        feats, items = _folder(Path(images), model.doc)
    else:
        feats, items = _gallery(run, model.doc, side, split, features)
    emb = model.embed(side, feats)
    vectors = model.index_vectors(side, emb).float().numpy()
    index = _make_index(np.ascontiguousarray(vectors), kind, nlist, m)
    with atomic_path(out / "index.faiss") as tmp:
        faiss.write_index(index, str(tmp))
    with atomic_path(out / "embeddings.npy", suffix=".npy") as tmp:
        np.save(tmp, emb.numpy().astype(np.float32))
    manifest = {
        "format": FORMAT, "side": side, "query_side": _other(model.doc, side), "count": len(items),
        "kind": kind, "params": {"nlist": int(getattr(index, "nlist", 0)), "m": m if kind == "hnsw" else 0},
        "metric": "inner product of index vectors = the learned score", "similarity": model.doc["similarity"],
        "static": model.doc["static"], "source": {"split": None if features or images else split,
                                                  "features": str(features) if features else None,
                                                  "images": str(images) if images else None},
        "digests": {name: sha256_file(out / "model" / name) for name in MODEL_FILES}
        | {"index.faiss": sha256_file(out / "index.faiss"), "embeddings.npy": sha256_file(out / "embeddings.npy")},
        "encoders": model.doc["source"]["encoders"], "resolution": model.doc["source"]["resolution"],
        "items": items,
    }  # fmt: skip
    atomic_write_json(out / MANIFEST, manifest, indent=1)
    return out


def _gallery(run: PathLike, doc: Dict[str, Any], side: str, split: Optional[str],
             features: Optional[PathLike]) -> Tuple[torch.Tensor, List[Dict[str, Any]]]:
    """``(features (N, F), items)`` of the side to index."""
    modality = "text" if side == "text" else "image"
    if features is not None:
        with np.load(str(features), allow_pickle=False) as z:
            if modality not in z:
                raise GssfError(f"{features} has no {modality!r} array (keys: {sorted(z.keys())})")
            feats = np.asarray(z[modality], dtype=np.float32)
            n = feats.shape[0]
            ids = [str(v) for v in z["ids"]] if "ids" in z else [str(i) for i in range(n)]
            paths = [str(v) for v in z["paths"]] if "paths" in z and modality == "image" else None
            captions = [str(v) for v in z["captions"]] if "captions" in z and modality == "text" else None
    else:
        from gssf.train import load_model

        _, task, _ = load_model(run)
        data = task.split(split)
        feats_t = data.text if modality == "text" else data.image
        if feats_t is None:
            raise GssfError(f"split {split!r} of {run} has no cached {modality} features")
        feats = feats_t.numpy()
        n = feats.shape[0]
        paths, captions, ids = _split_items(task, split, modality, n)
    if feats.ndim != 2 or feats.shape[1] != int(doc["sides"][side]["input_dim"]):
        raise GssfError(f"{modality} features of shape {feats.shape}; the {side} head takes (N, {doc['sides'][side]['input_dim']})")
    if not np.isfinite(feats).all():
        raise GssfError(f"the {modality} features to index have NaN or Inf values")
    items = [{"id": ids[i], **({"path": paths[i]} if paths else {}), **({"caption": captions[i]} if captions else {})}
             for i in range(n)]  # fmt: skip
    return torch.from_numpy(feats), items


MAX_FOLDER_IMAGES = 200_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg")


def _folder(folder: Path, doc: Dict[str, Any]) -> Tuple[torch.Tensor, List[Dict[str, Any]]]:
    """Features of every image file under ``folder`` (sorted paths), with the run's image encoder."""
    from gssf import encoders
    from gssf.data.images import load_rgb

    if not folder.is_dir():
        raise FileNotFoundError(f"no folder of images at {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise GssfError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    if len(paths) > MAX_FOLDER_IMAGES:
        raise GssfError(f"{folder} holds {len(paths)} images; at most {MAX_FOLDER_IMAGES} (index a features file)")
    enc = encoders.create(doc["source"]["encoders"]["image"], resolution=int(doc["source"]["resolution"]))
    out = []
    for start in range(0, len(paths), 64):
        batch = []
        for p in paths[start : start + 64]:
            try:
                batch.append(load_rgb(p))
            except (ValueError, OSError) as exc:
                raise GssfError(f"cannot index {p}: {exc}") from None
        out.append(enc.encode_images(batch))
    items = [{"id": p.relative_to(folder).as_posix(), "path": str(p)} for p in paths]
    return torch.cat(out), items


def _split_items(task: Any, split: str, modality: str, n: int) -> Tuple[Optional[List[str]], Optional[List[str]], List[str]]:
    """Paths (images) or captions (texts) and ids of a split's items, from the run's dataset."""
    from gssf import data as gdata

    cfg = task.cfg
    if cfg.data.features_file is not None:
        return None, None, [str(i) for i in range(n)]
    ds = gdata.load(cfg.data.dataset, split=split, root=cfg.data.root)
    if modality == "text":
        captions = list(ds.captions)
        return None, captions, [str(i) for i in range(len(captions))]
    paths = [str(r.path) if r.path is not None else "" for r in ds.images]
    ids = [r.id for r in ds.images]
    if len(paths) != n:  # images left out as unreadable: ids no longer line up
        raise GssfError(f"split {split!r} has {len(paths)} images but {n} features; re-extract its features")
    return paths, None, ids


class SearchIndex:
    """An index folder, searchable by text, by image or by raw feature vectors."""

    def __init__(self, folder: PathLike) -> None:
        faiss = _faiss()
        self.folder = Path(folder)
        # the items list grows with the gallery: a larger cap than for config files
        self.manifest = read_json_object(self.folder / MANIFEST, "gssf index build", MAX_MANIFEST_BYTES, fmt=FORMAT)
        digests = self.manifest.get("digests", {})
        files = {"index.faiss": self.folder / "index.faiss", "embeddings.npy": self.folder / "embeddings.npy",
                 **{name: self.folder / "model" / name for name in MODEL_FILES}}  # fmt: skip
        for name, path in files.items():
            if not path.is_file() or sha256_file(path) != digests.get(name):
                raise GssfError(f"{path} does not match the digest in {MANIFEST}: rebuild the index")
        self.index = faiss.read_index(str(self.folder / "index.faiss"))
        self.embeddings = torch.from_numpy(np.load(self.folder / "embeddings.npy", allow_pickle=False))
        self.model = _Model(self.folder / "model")
        self.items: List[Dict[str, Any]] = self.manifest["items"]
        if self.index.ntotal != len(self.items) or self.embeddings.shape[0] != len(self.items):
            raise GssfError(f"{self.folder}: {self.index.ntotal} vectors for {len(self.items)} items; rebuild the index")
        self._encoders: Dict[str, Any] = {}

    # ------------------------------------------------------------------ queries
    def search_features(self, features: torch.Tensor, k: int = 10, *, cosine: bool = False,
                        shortlist: int = 100, nprobe: int = 8, ef_search: int = 64) -> List[List[Hit]]:
        """Hits of each row of raw encoder ``features`` of the query side."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise GssfError(f"k must be a positive integer, got {k!r}")
        side = self.manifest["query_side"]
        feats = torch.as_tensor(features, dtype=torch.float32)
        want = int(self.model.doc["sides"][side]["input_dim"])
        if feats.dim() != 2 or feats.shape[1] != want:
            raise GssfError(f"query features of shape {tuple(feats.shape)}; the {side} head takes (N, {want})")
        if not bool(torch.isfinite(feats).all()):
            raise GssfError("the query features have NaN or Inf values")
        emb = self.model.embed(side, feats)
        k = min(k, len(self.items))
        if cosine:  # the same items, scored by cosine of the embeddings (exact)
            scores = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(self.embeddings, dim=1).T
            top = torch.topk(scores, k, dim=1)
            return [self._hits(s.tolist(), i.tolist()) for s, i in zip(top.values, top.indices)]
        q = self.model.index_vectors(side, emb).float().numpy()
        if hasattr(self.index, "nprobe"):
            self.index.nprobe = int(nprobe)
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = int(ef_search)
        first = k if self.manifest["static"] else max(k, min(int(shortlist), len(self.items)))
        scores, ids = self.index.search(np.ascontiguousarray(q), first)
        if self.manifest["static"]:
            return [self._hits(s.tolist(), i.tolist()) for s, i in zip(scores, ids)]
        return [self._rescore(emb[r : r + 1], ids[r], k) for r in range(ids.shape[0])]

    def _rescore(self, query: torch.Tensor, candidates: np.ndarray, k: int) -> List[Hit]:
        """Second stage for a pair-conditioned member: its own scores of the shortlist."""
        cand = [int(c) for c in candidates if c >= 0]
        gallery = self.embeddings[cand]
        sim = self.model.similarity
        with torch.no_grad():
            first_arg = self.model.doc["sides"][self.manifest["side"]]["role"] == "query"
            s = sim(gallery, query)[:, 0] if first_arg else sim(query, gallery)[0]
        top = torch.topk(s, min(k, len(cand)))
        return self._hits(top.values.tolist(), [cand[i] for i in top.indices.tolist()])

    def _hits(self, scores: Sequence[float], ids: Sequence[int]) -> List[Hit]:
        out = []
        for rank, (score, i) in enumerate(((s, i) for s, i in zip(scores, ids) if i >= 0), start=1):
            item = self.items[i]
            out.append(Hit(rank, float(score), int(i), str(item["id"]), item.get("path"), item.get("caption")))
        return out

    def _encoder(self, modality: str) -> Any:
        if modality not in self._encoders:
            from gssf import encoders

            name = self.manifest["encoders"][modality]
            kw = {"resolution": int(self.manifest["resolution"])} if modality == "image" else {}
            self._encoders[modality] = encoders.create(name, **kw)
        return self._encoders[modality]

    def search_text(self, text: str, k: int = 10, **options: Any) -> List[Hit]:
        """Hits of a caption query (an index of images)."""
        if self.manifest["query_side"] != "text":
            raise GssfError(f"this index holds {self.manifest['side']} items for {self.manifest['query_side']} queries, not text")
        if not isinstance(text, str) or not text.strip():
            raise GssfError("the query text is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise GssfError(f"the query text has {len(text)} characters; at most {MAX_QUERY_CHARS}")
        return self.search_features(self._encoder("text").encode_texts([text]), k, **options)[0]

    def search_image(self, image: Any, k: int = 10, **options: Any) -> List[Hit]:
        """Hits of an image query (a path, PIL image or array): captions, or images of a uni-modal run."""
        if self.manifest["query_side"] == "text":
            raise GssfError("this index holds images for text queries; build one with --side text for image queries")
        from gssf.data.images import load_rgb

        img = load_rgb(image)  # size, pixel and SVG limits of gssf.data.images: an upload is untrusted
        return self.search_features(self._encoder("image").encode_images([img]), k, **options)[0]

    @staticmethod
    def as_dicts(hits: Sequence[Hit]) -> List[Dict[str, Any]]:
        return [{k: v for k, v in asdict(h).items() if v is not None} for h in hits]
