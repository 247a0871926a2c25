"""gssf index / gssf search: faiss over folded vectors equals exhaustive scoring with the learned similarity."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gssf.cli.main import main
from gssf.errors import GssfError
from gssf.index import SearchIndex, build_index
from gssf.train import load_model, run

sys.path.insert(0, str(Path(__file__).resolve().parent / "train"))
from train_synthetic import tiny_config, write_features, write_unimodal_features  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("index")
    run(tiny_config(write_features(tmp / "feats"), "train.epochs=3"), tmp / "run", progress=False)
    return tmp


def _test_features(tmp: Path):
    z = np.load(str(tmp / "feats" / "test.npz"))
    return torch.from_numpy(z["image"]), torch.from_numpy(z["text"])


def test_exact_index_equals_exhaustive_scoring_both_ways(trained: Path) -> None:
    model = load_model(trained / "run")[0]
    images, texts = _test_features(trained)
    with torch.no_grad():
        scores = model(images, texts)  # (images, texts): the learned similarity
    for side, queries, want in (("image", texts, scores.T), ("text", images, scores)):
        index = SearchIndex(build_index(trained / "run", trained / f"idx-{side}", split="test", side=side))
        assert index.manifest["side"] == side and index.manifest["count"] == want.shape[1]
        hits = index.search_features(queries, k=5)
        top = torch.topk(want, 5, dim=1)
        for r, row in enumerate(hits):
            assert [h.index for h in row] == top.indices[r].tolist()
            np.testing.assert_allclose([h.score for h in row], top.values[r].numpy(), rtol=1e-5, atol=1e-6)
        # cosine on the same items: the plain cosine of the embeddings
        with torch.no_grad():
            a, b = (model.encode_text(texts), model.encode_image(images)) if side == "image" else \
                (model.encode_image(images), model.encode_text(texts))  # fmt: skip
        cos = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T
        assert [h.index for h in index.search_features(queries[:1], k=3, cosine=True)[0]] == \
            torch.topk(cos[0], 3).indices.tolist()  # fmt: skip


def test_approximate_indexes_find_most_of_the_exact_top_10(trained: Path) -> None:
    images, texts = _test_features(trained)
    exact = SearchIndex(build_index(trained / "run", trained / "idx-flat", split="test"))
    want = [{h.index for h in row} for row in exact.search_features(texts, k=10)]
    for kind in ("ivf", "hnsw"):
        index = SearchIndex(build_index(trained / "run", trained / f"idx-{kind}", split="test", kind=kind, nlist=2, m=8))
        got = index.search_features(texts, k=10, nprobe=2, ef_search=64)
        recall = np.mean([len(w & {h.index for h in g}) / 10 for w, g in zip(want, got)])
        assert recall == 1.0 if kind == "ivf" else recall > 0.9, (kind, recall)  # nprobe = nlist is exhaustive
        assert index.manifest["kind"] == kind


def test_a_dynamic_member_is_searched_in_two_stages(tmp_path: Path) -> None:
    pattern = write_unimodal_features(tmp_path / "feats")
    cfg = tiny_config(pattern, "data.task=retrieval", "loss.name=triplet", "train.batch_size=8", "train.epochs=1",
                      "similarity.name=gssf_dynamic", "similarity.kwargs={num_blocks: 4, hidden: 3}")  # fmt: skip
    run(cfg, tmp_path / "run", progress=False)
    index = SearchIndex(build_index(tmp_path / "run", tmp_path / "idx", split="test"))
    model = load_model(tmp_path / "run")[0]
    x = torch.from_numpy(np.load(str(tmp_path / "feats" / "test.npz"))["image"])
    with torch.no_grad():
        want = model(x[:4], x)  # queries x gallery, the pair-conditioned score
    hits = index.search_features(x[:4], k=5, shortlist=len(x))  # the whole gallery shortlisted: exhaustive
    for r, row in enumerate(hits):
        assert [h.index for h in row] == torch.topk(want[r], 5).indices.tolist()
    assert index.manifest["side"] == "gallery" and index.manifest["query_side"] == "query"


def test_bad_queries_and_damaged_indexes_are_refused(trained: Path, tmp_path: Path) -> None:
    folder = build_index(trained / "run", tmp_path / "idx", split="test")
    index = SearchIndex(folder)
    with pytest.raises(GssfError, match="query features of shape"):
        index.search_features(torch.zeros(2, 5))
    with pytest.raises(GssfError, match="NaN or Inf"):
        index.search_features(torch.full((1, 24), float("nan")))
    with pytest.raises(GssfError, match="k must be a positive integer"):
        index.search_features(torch.zeros(1, 24), k=0)
    with pytest.raises(GssfError, match="not text"):
        SearchIndex(build_index(trained / "run", tmp_path / "idx-t", split="test", side="text")).search_text("a cat")
    with pytest.raises(GssfError, match="side 'gallery'"):
        build_index(trained / "run", tmp_path / "x", split="test", side="gallery")
    with pytest.raises(GssfError, match="unknown index kind"):
        build_index(trained / "run", tmp_path / "y", split="test", kind="lsh")
    other = build_index(trained / "run", tmp_path / "idx-m", split="test")
    (other / "model" / "towers.safetensors").write_bytes((other / "model" / "towers.safetensors").read_bytes() + b" ")
    with pytest.raises(GssfError, match="towers.safetensors does not match the digest"):
        SearchIndex(other)  # a swapped model would give other scores than the indexed vectors
    (folder / "index.faiss").write_bytes((folder / "index.faiss").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(GssfError, match="does not match the digest"):
        SearchIndex(folder)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        SearchIndex(tmp_path)


@pytest.mark.slow
def test_text_search_on_tux_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "tux", "--set", "train.epochs=2", "--run-dir", "run", "--no-progress"]) == 0
    assert main(["index", "build", "run", "--out", "idx"]) == 0
    capsys.readouterr()
    assert main(["search", "idx", "a red mushroom", "-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "a red mushroom" and [h["rank"] for h in out["hits"]] == [1, 2, 3, 4, 5]
    assert all(Path(h["path"]).is_file() for h in out["hits"])
    scores = [h["score"] for h in out["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert main(["search", "idx", "a red mushroom", "-k", "3"]) == 0
    assert "top 3 of 229 image items (gssf)" in capsys.readouterr().out
    assert main(["search", "idx", "   "]) != 0
    assert "the query text is empty" in capsys.readouterr().err
    assert main(["search", "idx"]) != 0


@pytest.mark.slow
def test_a_folder_of_images_is_encoded_and_indexed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    assert main(["train", "tux", "--set", "train.epochs=1", "--run-dir", "run", "--no-progress"]) == 0
    folder = tmp_path / "photos" / "sub"
    folder.mkdir(parents=True)
    for name, colour in (("red.png", (220, 20, 20)), ("green.jpg", (20, 200, 30))):
        Image.new("RGB", (64, 48), colour).save(folder / name)
    (folder / "notes.txt").write_text("not an image, not indexed")
    index = SearchIndex(build_index("run", "idx", images=tmp_path / "photos"))
    assert [i["id"] for i in index.items] == ["sub/green.jpg", "sub/red.png"] and index.manifest["count"] == 2
    assert {h.path for h in index.search_text("a red square", 2)} == {str(folder / "green.jpg"), str(folder / "red.png")}
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(GssfError, match="cannot index .*broken.png"):
        build_index("run", "idx2", images=tmp_path / "photos")
    with pytest.raises(GssfError, match="image side"):
        build_index("run", "idx3", images=tmp_path / "photos", side="text")
