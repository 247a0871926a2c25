"""Shared checks of the demo tests."""
from __future__ import annotations

import base64
import binascii
import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest
from PIL import Image


class _ImageSources(HTMLParser):
    """Collects the ``src`` of every ``<img>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: List[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def _images_show(page: Path) -> int:
    """Every ``<img>`` of ``page`` is a data URI of a valid image, or a relative file next to the page."""
    parser = _ImageSources()
    parser.feed(page.read_text(encoding="utf-8"))
    for src in parser.sources:
        if src.startswith("data:"):
            header, _, payload = src.partition(",")
            assert header == "data:image/png;base64", header
            try:
                data = base64.b64decode(payload, validate=True)
            except binascii.Error as exc:
                raise AssertionError(f"bad base64 in an <img> of {page}") from exc
            with Image.open(io.BytesIO(data)) as im:
                im.verify()  # raises on a truncated or corrupt PNG
                assert im.format == "PNG"
        else:
            assert not Path(src).is_absolute() and "://" not in src, src
            with Image.open(page.parent / src) as im:
                im.verify()
    return len(parser.sources)


@pytest.fixture
def images_show() -> Callable[[Path], int]:
    """``images_show(page)``: checks that every ``<img>`` of the HTML ``page`` shows; returns their number."""
    return _images_show


IMAGE_TEXT_KS = (1, 5, 10)


def fake_per_query(sim: str, seed: int, queries: int = 40, gain: float = 0.0) -> Dict[str, Any]:
    """Deterministic per-query image-text values of one fake run: ``{"per_query": {...}}``.

    ``i2t_R@K`` / ``t2i_R@K`` are 0/100 hits (nested in K, as real ranks give), drawn from
    ranks that depend on the seed; ``gain`` > 0 moves every rank of the member up by that
    many places, so it is better than cosine on every query.
    """
    rng = np.random.default_rng(1000 * seed + 7)
    pq: Dict[str, Any] = {}
    for d in ("i2t", "t2i"):
        ranks = rng.integers(1, 30, size=queries) + (len(sim) % 3)  # members differ a little at gain 0
        ranks = np.maximum(1, ranks - int(gain))
        pq[f"{d}_rank"] = ranks.astype(float).tolist()
        for k in IMAGE_TEXT_KS:
            pq[f"{d}_R@{k}"] = (100.0 * (ranks <= k)).tolist()
    return {"per_query": pq}


def metrics_of(per_query: Dict[str, Any]) -> Dict[str, float]:
    """The aggregate image-text metrics that go with :func:`fake_per_query`'s values."""
    pq = per_query["per_query"]
    out = {f"{d}_R@{k}": float(np.mean(pq[f"{d}_R@{k}"])) for d in ("i2t", "t2i") for k in IMAGE_TEXT_KS}
    out["rsum"] = sum(out.values())
    return out


def fake_demo_training(monkeypatch: pytest.MonkeyPatch, gains: Optional[Dict[str, float]] = None
                       ) -> List[Tuple[str, int]]:
    """Replace data preparation, config loading and training of ``run_demo`` by instant fakes whose
    metrics and per-query values agree; returns the (similarity, seed) runs made."""
    from gssf.demo import run as demo_run

    made: List[Tuple[str, int]] = []
    gains = gains or {}

    def load_config(preset: str, overrides: List[str]) -> Any:
        return dict(o.split("=", 1) for o in overrides)

    def train_one(cfg: Any, run_dir: Path, progress: bool) -> Tuple[dict, bool]:
        sim, seed = cfg["similarity.name"], int(cfg["train.seed"])
        made.append((sim, seed))
        pq = fake_per_query(sim, seed, gain=gains.get(sim, 0.0))
        metrics = metrics_of(pq)
        learned = None if sim == "cosine" else {
            "norm_M_minus_I": 0.01, "diagonal_of": "w", "diagonal_min": 0.99, "diagonal_max": 1.01,
            "diagonal_std": 0.004, "max_abs_block": 0.002, "source": "weight_matrix()"}
        res = {"val": metrics, "test": metrics, "params": 0 if sim == "cosine" else 4352, "train_seconds": 0.5,
               "score_seconds": 0.001, "dataset": "tux", "config_sha256": f"{sim}-{seed}", "learned": learned,
               "test_per_query": pq}
        return res, False

    monkeypatch.setattr("gssf.data.prepare.prepare_many", lambda names: None)
    monkeypatch.setattr("gssf.train.load_config", load_config)
    monkeypatch.setattr(demo_run, "_train_one", train_one)
    return made


@pytest.fixture
def per_query_fake() -> Callable[..., Dict[str, Any]]:
    """:func:`fake_per_query`: ``per_query_fake(sim, seed, queries=40, gain=0.0)``."""
    return fake_per_query


@pytest.fixture
def fake_demo(monkeypatch: pytest.MonkeyPatch) -> Callable[..., List[Tuple[str, int]]]:
    """``fake_demo(gains=None)``: :func:`fake_demo_training` with this test's monkeypatch."""
    return lambda gains=None: fake_demo_training(monkeypatch, gains)
