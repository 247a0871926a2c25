"""gssf export: the similarity, the heads, the fold as matrices and ONNX sides reproduce the trained model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gssf
from gssf.cli.main import main
from gssf.export import export_run, read_export
from gssf.errors import GssfError
from gssf.train import load_model, run

sys.path.insert(0, str(Path(__file__).resolve().parent / "train"))
from train_synthetic import tiny_config, write_features, write_unimodal_features  # noqa: E402

ort = pytest.importorskip("onnxruntime")  # in the test extra: a missing one is an install error, not a skip


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=1, keepdim=True)


def _onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


@pytest.fixture(scope="module")
def image_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("export")
    cfg = tiny_config(write_features(tmp / "feats"), "train.epochs=3")
    run(cfg, tmp / "run", progress=False)
    return tmp


def test_image_text_export_reproduces_the_scores_every_way(image_text: Path) -> None:
    out = image_text / "out"
    written = export_run(image_text / "run", out)
    assert set(written) == {"similarity", "towers", "fold", "image.onnx", "text.onnx", "export"}
    model = load_model(image_text / "run")[0]
    feats = np.load(str(image_text / "feats" / "test.npz"))
    f, g = torch.from_numpy(feats["image"]), torch.from_numpy(feats["text"])
    with torch.no_grad():
        want = model(f, g)
        emb_i, emb_t = model.encode_image(f), model.encode_text(g)
    # 1. the saved similarity, rebuilt without its arguments
    torch.testing.assert_close(gssf.load_similarity(out / "similarity")(emb_i, emb_t), want)
    # 2. the fold as plain matrices: no gssf needed to score
    from safetensors.torch import load_file

    fold = load_file(str(out / "fold.safetensors"))
    torch.testing.assert_close((_unit(emb_i) @ fold["query"]) @ (_unit(emb_t) @ fold["gallery"]).T, want,
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    # 3. ONNX sides: an inner product of the two sides' outputs is the score, in both directions
    torch.testing.assert_close(_onnx(out / "image.onnx", f) @ _onnx(out / "text.onnx", g).T, want, rtol=1e-4, atol=1e-5)
    # 4. the heads' weights, under the side names
    towers = load_file(str(out / "towers.safetensors"))
    torch.testing.assert_close(towers["image.fc.weight"], model.image_tower.fc.weight.detach())
    doc = read_export(out)
    assert doc["similarity"] == "gssf" and doc["static"] and doc["sides"]["text"] == {
        "input_dim": 24, "role": "gallery", "tower": "text", "onnx": "text.onnx"}


def test_a_trained_two_tower_model_exports_with_torch_export(image_text: Path) -> None:
    model = load_model(image_text / "run")[0]
    f, g = torch.randn(4, 32), torch.randn(6, 24)
    program = torch.export.export(model, (f, g))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(f, g), model(f, g))


def test_unimodal_and_dynamic_runs_export_their_static_part(tmp_path: Path) -> None:
    pattern = write_unimodal_features(tmp_path / "feats")
    cfg = tiny_config(pattern, "data.task=retrieval", "loss.name=triplet", "train.batch_size=8", "train.epochs=1",
                      "similarity.name=gssf_dynamic", "similarity.kwargs={num_blocks: 4, hidden: 3}")  # fmt: skip
    run(cfg, tmp_path / "run", progress=False)
    export_run(tmp_path / "run", tmp_path / "out")
    doc = read_export(tmp_path / "out")
    assert not doc["static"] and set(doc["sides"]) == {"query", "gallery"} and "re-score the shortlist" in doc["score"]
    model = load_model(tmp_path / "run")[0]
    x = torch.from_numpy(np.load(str(tmp_path / "feats" / "test.npz"))["image"])[:10]
    with torch.no_grad():
        static = model.similarity.static_part()(model.encode(x), model.encode(x))
    shortlist = _onnx(tmp_path / "out" / "query.onnx", x) @ _onnx(tmp_path / "out" / "gallery.onnx", x).T
    torch.testing.assert_close(shortlist, static, rtol=1e-4, atol=1e-5)  # the first stage of two-stage search
    back = gssf.load_similarity(tmp_path / "out" / "similarity")
    with torch.no_grad():
        torch.testing.assert_close(back(model.encode(x), model.encode(x)), model(x, x))


def test_the_command_line_and_bad_folders(image_text: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(image_text / "run"), "--out", str(image_text / "cli"), "--no-onnx"]) == 0
    printed = capsys.readouterr().out
    assert "fold" in printed and "image.onnx" not in printed and not (image_text / "cli" / "image.onnx").exists()
    assert json.loads((image_text / "cli" / "export.json").read_text())["sides"]["image"]["onnx"] is None
    with pytest.raises(FileNotFoundError, match="no export.json"):
        read_export(image_text)
    (image_text / "bad").mkdir()
    (image_text / "bad" / "export.json").write_text('{"format": 7}')
    with pytest.raises(GssfError, match="not a gssf export"):
        read_export(image_text / "bad")
    assert main(["export", str(image_text / "nope"), "--out", str(image_text / "x")]) != 0
