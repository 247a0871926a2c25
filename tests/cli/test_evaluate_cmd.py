"""``gssf evaluate`` called in-process: tables, JSON output, one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gssf.cli.main import main
from gssf.evaluation import image_text_metrics, k_reciprocal_rerank_from_scores, reid_metrics, retrieval_metrics


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    t2i = np.repeat(np.arange(20), 5)
    paths = {
        "it_scores": rng.standard_normal((20, 100)).astype(np.float32),
        "txt2img": t2i,
        "loo": rng.standard_normal((30, 30)),
        "qg": rng.standard_normal((12, 40)),
        "qq": rng.standard_normal((12, 12)),
        "gg": rng.standard_normal((40, 40)),
        "qp": rng.integers(0, 6, 12),
        "gp": rng.integers(0, 6, 40),
        "qc": np.zeros(12, int),
        "gc": np.ones(40, int),
    }
    out = {}
    for name, arr in paths.items():
        out[name] = tmp_path / f"{name}.npy"
        np.save(out[name], arr)
    out["labels_txt"] = tmp_path / "labels.txt"
    out["labels_txt"].write_text("\n".join(["bird", "bird", "cat"] * 10) + "\n")
    out["arrays"] = paths
    out["dir"] = tmp_path
    return out


def test_image_text_with_folds_writes_json(files, capsys):
    out_json = files["dir"] / "res" / "it.json"
    rc = main(["evaluate", "image-text", "--scores", str(files["it_scores"]), "--txt2img", str(files["txt2img"]),
               "--folds", "2", "--json", str(out_json)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "rsum" in printed and "fold 1" in printed
    want = image_text_metrics(files["arrays"]["it_scores"], files["arrays"]["txt2img"], folds=2)
    assert json.loads(out_json.read_text()) == want


def test_reid_with_distance_and_rerank(files, capsys):
    a = files["arrays"]
    out_json = files["dir"] / "reid.json"
    argv = ["evaluate", "reid", "--scores", str(files["qg"]), "--distance",
            "--query-pids", str(files["qp"]), "--gallery-pids", str(files["gp"]),
            "--query-cams", str(files["qc"]), "--gallery-cams", str(files["gc"]),
            "--max-rank", "10", "--ap", "trapezoid", "--rerank", "--qq-scores", str(files["qq"]),
            "--gg-scores", str(files["gg"]), "--k1", "5", "--k2", "2", "--json", str(out_json)]
    assert main(argv) == 0
    got = json.loads(out_json.read_text())
    labels = (a["qp"], a["gp"], a["qc"], a["gc"])
    plain = reid_metrics(-a["qg"], *labels, max_rank=10, ap="trapezoid")
    assert {k: got[k] for k in plain} == plain
    rr = k_reciprocal_rerank_from_scores(-a["qg"], -a["qq"], -a["gg"], k1=5, k2=2)
    again = reid_metrics(rr, *labels, max_rank=10, ap="trapezoid")
    assert {k: got[f"rerank_{k}"] for k in again} == again
    assert "rerank_mAP" in capsys.readouterr().out


def test_retrieval_leave_one_out_with_text_labels(files, capsys):
    assert main(["evaluate", "retrieval", "--scores", str(files["loo"]), "--query-labels", str(files["labels_txt"]),
                 "--ks", "1", "2"]) == 0
    printed = capsys.readouterr().out
    want = retrieval_metrics(files["arrays"]["loo"], ["bird", "bird", "cat"] * 10, ks=(1, 2))
    assert f"{want['MAP@R']:.2f}" in printed


def test_retrieval_with_gallery(files):
    out_json = files["dir"] / "r.json"
    assert main(["evaluate", "retrieval", "--scores", str(files["qg"]), "--query-labels", str(files["qp"]),
                 "--gallery-labels", str(files["gp"]), "--json", str(out_json)]) == 0
    a = files["arrays"]
    assert json.loads(out_json.read_text()) == retrieval_metrics(a["qg"], a["qp"], a["gp"])


@pytest.mark.parametrize(
    "argv_tail,message",
    [
        (["image-text", "--scores", "{it_scores}", "--txt2img", "{qp}"], "txt2img has 12 entries"),
        (["retrieval", "--scores", "{qg}", "--query-labels", "{qp}"], "square"),
        (["retrieval", "--scores", "{dir}/missing.npy", "--query-labels", "{qp}"], "not found"),
        (["reid", "--scores", "{qg}", "--query-pids", "{qp}", "--gallery-pids", "{gp}", "--query-cams", "{qc}",
          "--gallery-cams", "{gc}", "--max-rank", "10", "--rerank"], "--qq-scores"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(files, capsys, argv_tail, message):
    fmt = {k: str(v) for k, v in files.items() if k != "arrays"}
    rc = main(["evaluate"] + [a.format(**fmt) for a in argv_tail])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("gssf evaluate: error:")
