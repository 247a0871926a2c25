"""The one error path of the command line: bad input gives one line and exit 2, never a traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

import gssf.errors
from gssf.cli import main as cli_main
from gssf.cli import similarities_cmd
from gssf.cli.main import error_message, main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_synthetic import tiny_config, write_features  # noqa: E402

# sysfs refuses to create files even for root (these tests may run as root, whom a chmod does not stop).
READ_ONLY_DIR = "/sys"


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Good and bad input files, and a checkpoint whose weights are zero bytes / garbage."""
    from gssf.train import run

    root = tmp_path_factory.mktemp("bad")
    files: Dict[str, Path] = {"dir": root, "folder": root / "folder"}
    files["folder"].mkdir()
    np.save(root / "scores.npy", np.random.default_rng(0).standard_normal((20, 20)).astype(np.float32))
    np.save(root / "labels.npy", np.arange(20) % 2)
    for name, data in {"zero.npy": b"", "zero.npz": b"", "corrupt.npy": b"\x93NUMPY\x01\x00garbage",
                       "corrupt.npz": b"PK\x03\x04 not a zip", "binary.txt": b"\xff\xfe\x00\x81"}.items():  # fmt: skip
        (root / name).write_bytes(data)
    for name in ("scores.npy", "labels.npy", "zero.npy", "zero.npz", "corrupt.npy", "corrupt.npz", "binary.txt"):
        files[name.replace(".npy", "") if name[0] in "sl" else name.replace(".", "_")] = root / name

    cfg = tiny_config(write_features(root / "feats"), "train.epochs=1", "model.embed_dim=8",
                      "similarity.kwargs={num_blocks: 2}")  # fmt: skip
    run(cfg, root / "run", progress=False)
    for kind, data in (("zero", b""), ("corrupt", b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")):
        ck = root / f"ck_{kind}"
        shutil.copytree(root / "run" / "checkpoints", ck)
        (ck / "last.safetensors").write_bytes(data)
        files[f"{kind}_safetensors"] = ck / "last.safetensors"
    flipped = root / "ck_flipped"  # one flipped bit deep in the tensor bytes: safetensors loads it silently
    shutil.copytree(root / "run" / "checkpoints", flipped)
    data = bytearray((flipped / "best.safetensors").read_bytes())
    data[-2] ^= 0x01
    (flipped / "best.safetensors").write_bytes(bytes(data))
    files["flipped_safetensors"] = flipped / "best.safetensors"
    files["run_config"] = root / "run" / "config.yaml"
    return {k: str(v) for k, v in files.items()}


def _retrieval(scores: str, labels: str = "{labels}") -> List[str]:
    return ["evaluate", "retrieval", "--scores", scores, "--query-labels", labels]


# (argv with {placeholders} from the `bad` fixture, words the error line must contain)
BAD_INPUTS = [
    pytest.param(_retrieval("{zero_npy}"), ["{zero_npy}"], id="evaluate-zero-byte-npy-scores"),
    pytest.param(_retrieval("{corrupt_npy}"), ["{corrupt_npy}"], id="evaluate-corrupt-npy-scores"),
    pytest.param(_retrieval("{scores}", "{zero_npy}"), ["{zero_npy}"], id="evaluate-zero-byte-npy-labels"),
    pytest.param(_retrieval("{scores}", "{corrupt_npy}"), ["{corrupt_npy}"], id="evaluate-corrupt-npy-labels"),
    pytest.param(_retrieval("{zero_npz}"), ["{zero_npz}"], id="evaluate-zero-byte-npz-scores"),
    pytest.param(_retrieval("{scores}", "{corrupt_npz}"), ["{corrupt_npz}"], id="evaluate-corrupt-npz-labels"),
    pytest.param(_retrieval("{scores}", "{binary_txt}"), ["{binary_txt}"], id="evaluate-binary-text-labels"),
    pytest.param(_retrieval("{folder}"), ["{folder}", "not a folder"], id="evaluate-folder-as-scores"),
    pytest.param(_retrieval("{scores}", "{folder}"), ["{folder}"], id="evaluate-folder-as-labels"),
    pytest.param(_retrieval("{dir}/missing.npy"), ["{dir}/missing.npy", "not found"], id="evaluate-missing-file"),
    pytest.param(_retrieval("{scores}") + ["--json", f"{READ_ONLY_DIR}/m.json"], [f"{READ_ONLY_DIR}/m.json"],
                 id="evaluate-json-into-read-only-folder"),  # fmt: skip
    pytest.param(["features", "info", "{zero_npz}"], ["{zero_npz}"], id="features-info-zero-byte-npz"),
    pytest.param(["features", "info", "{corrupt_npz}"], ["{corrupt_npz}"], id="features-info-corrupt-npz"),
    pytest.param(["train", "no-such-preset"], ["no-such-preset"], id="train-unknown-preset"),
    pytest.param(["train", "{folder}"], ["{folder}"], id="train-folder-as-config"),
    pytest.param(["train", "tux", "--set", "model.embd_dim=3"], ["model.embd_dim"], id="train-unknown-set-key"),
    pytest.param(["train", "tux", "--set", "train.epochs=abc"], ["train.epochs", "abc"], id="train-bad-set-type"),
    pytest.param(["train", "tux", "--set", "train.device=cuda"], ["train.device", "CUDA is not available"],
                 id="train-config-device-cuda"),  # fmt: skip
    pytest.param(["eval", "{dir}/run", "--device", "cuda"], ["--device", "CUDA is not available"], id="eval-device-cuda"),
    pytest.param(["eval", "{dir}/run", "--device", "gpu"], ["--device", "gpu"], id="eval-device-misspelt"),
    pytest.param(["features", "extract", "--dataset", "tux", "--device", "cuda"], ["--device", "CUDA"],
                 id="features-device-cuda"),  # fmt: skip
    pytest.param(["eval", "{zero_safetensors}"], ["{zero_safetensors}"], id="eval-zero-byte-safetensors"),
    pytest.param(["eval", "{corrupt_safetensors}"], ["{corrupt_safetensors}"], id="eval-corrupt-safetensors"),
    pytest.param(["eval", "{dir}/nothing-here"], ["{dir}/nothing-here"], id="eval-missing-checkpoint"),
    pytest.param(["data", "info", "nope"], ["'nope'"], id="data-unknown-dataset"),
    pytest.param(["eval", "{flipped_safetensors}"], ["checkpoint is damaged", "{flipped_safetensors}"],
                 id="eval-flipped-bit-safetensors"),  # fmt: skip
    pytest.param(["train", "{run_config}", "--run-dir", ""], ["--run-dir is empty"], id="train-empty-run-dir"),
    pytest.param(["train", "{run_config}", "--run-dir", "{scores}"], ["{scores}", "is a file"], id="train-run-dir-is-file"),
    pytest.param(["train", "{run_config}", "--run-dir", "{dir}"], ["{dir}", "not empty", "binary.txt"],
                 id="train-run-dir-holds-foreign-files"),  # fmt: skip
    pytest.param(["train", "{run_config}", "--run-dir", "{dir}/run"], ["already holds a run", "--resume"],
                 id="train-run-dir-holds-a-run"),  # fmt: skip
]


@pytest.mark.parametrize("argv, words", BAD_INPUTS)
def test_bad_input_is_one_named_line_and_exit_2(
    bad: Dict[str, str], argv: List[str], words: List[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a machine with a GPU
    argv = [a.format(**bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"gssf {argv[0]}: error: "), lines[0]
    for word in words:
        assert word.format(**bad) in lines[0], (word, lines[0])


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(bad: Dict[str, str], where: str, capsys: pytest.CaptureFixture) -> None:
    argv = _retrieval(bad["zero_npy"])
    argv = ["--debug"] + argv if where == "before" else argv + ["--debug"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "EOFError" in err  # the cause is shown, not only the one-line summary
    assert err.splitlines()[-1].startswith("gssf evaluate: error: ")


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "retrieval", "--scores", "s.npy"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--query-labels" in err
    assert err.startswith("gssf evaluate retrieval: error: ")


def _raising(exc: BaseException):
    def describe(dim: int, **kwargs):
        raise exc

    return describe


def test_interrupt_is_one_line_exit_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(similarities_cmd, "describe_similarities", _raising(KeyboardInterrupt()))
    assert main(["similarities"]) == 130
    assert capsys.readouterr().err == "gssf similarities: interrupted\n"


def test_unclassified_error_is_an_internal_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(similarities_cmd, "describe_similarities", _raising(ZeroDivisionError("division by zero")))
    assert main(["similarities"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "gssf similarities: internal error: ZeroDivisionError: division by zero (run with --debug for the traceback)"
    ]


def test_a_stray_missing_module_names_its_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    exc = ModuleNotFoundError("No module named 'yaml'", name="yaml")
    monkeypatch.setattr(similarities_cmd, "describe_similarities", _raising(exc))
    assert main(["similarities"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "gssf similarities: error: gssf similarities needs the optional dependency 'yaml', which is not installed: "
        "pip install 'gssf[train]'"
    ]


@pytest.mark.parametrize(
    "module, command, extra",
    [
        ("yaml", "train", "train"), ("safetensors.torch", "eval", "train"), ("tqdm", "train", "train"),
        ("PIL", "features", "data"), ("cairosvg", "data", "data"), ("scipy.io", "data", "data"),
        ("efficientnet_lite_pytorch", "features", "data"), ("faiss", "evaluate", "index"),
        ("matplotlib.pyplot", "demo", "plots"), ("pytorch_metric_learning", "train", "pml"),
        ("tensorboard", "train", "tensorboard"), ("numpy", "evaluate", "train"), ("numpy", "train", "train"),
        ("numpy", "data", "data"), ("numpy", "features", "data"),
    ],
)  # fmt: skip
def test_missing_module_maps_to_the_extra_of_pyproject(module: str, command: str, extra: str) -> None:
    top = module.split(".")[0]
    message = error_message(ModuleNotFoundError(f"No module named {module!r}", name=module), command)
    assert message == (
        f"gssf {command} needs the optional dependency {top!r}, which is not installed: pip install 'gssf[{extra}]'"
    )


def test_missing_module_of_gssf_itself_is_internal() -> None:
    assert error_message(ModuleNotFoundError("No module named 'gssf.nope'", name="gssf.nope"), "train") is None


@pytest.mark.parametrize(
    "exc, words",
    [
        (PermissionError(13, "Permission denied", "/x/out.json"), ["/x/out.json", "Permission denied"]),
        (IsADirectoryError(21, "Is a directory", "/x/dir"), ["/x/dir", "Is a directory"]),
        (NotADirectoryError(20, "Not a directory", "/x/f/g"), ["/x/f/g"]),
        (FileExistsError(17, "File exists", "/x/a", None, "/x/b"), ["/x/a -> /x/b"]),
        (KeyError("image"), ["missing key 'image'"]),
        (KeyError("no dataset named 'x' in the catalog"), ["no dataset named 'x'"]),
        (EOFError("No data left in file"), ["EOFError", "No data left"]),
        (RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory"),
         ["RuntimeError", "PytorchStreamReader"]),
        (RuntimeError("Found no NVIDIA driver on your system"), ["NVIDIA driver"]),
        (AssertionError("Torch not compiled with CUDA enabled"), ["CUDA"]),
    ],
)
def test_error_message_of_library_errors(exc: BaseException, words: List[str]) -> None:
    message = error_message(exc, "train")
    assert message is not None
    for word in words:
        assert word in message


def test_unrelated_runtime_error_is_internal() -> None:
    assert error_message(RuntimeError("shape mismatch"), "train") is None


def test_cli_error_is_the_shared_class() -> None:
    assert cli_main.CLIError is gssf.errors.CLIError
    from gssf.data.home import ENV_VAR

    assert cli_main.DATA_HOME_ENV == ENV_VAR


def _python_m(args: List[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "gssf.cli.main", *args], env=env, **kwargs)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["evaluate", "retrieval", "--scores", "{zero_npy}", "--query-labels", "{labels}"], ["{zero_npy}"]),
        (["train"], ["give a CONFIG"]),  # a CLIError raised by a subcommand module
    ],
)
def test_python_m_form_behaves_like_gssf(bad: Dict[str, str], argv: List[str], words: List[str]) -> None:
    proc = _python_m([a.format(**bad) for a in argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"gssf {argv[0]}: error: "), proc.stderr
    assert all(w.format(**bad) in lines[0] for w in words)


def test_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    """``gssf data list | head -1`` where the reader is gone before the first write (the strict case)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = _python_m(["data", "list", "--home", str(tmp_path)], stdout=write_end, stderr=subprocess.PIPE,
                         text=True, timeout=300)  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141  # what a shell reports for a program ended by SIGPIPE


@pytest.mark.parametrize(
    "argv",
    [["data", "--home", "{home}", "list"], ["data", "list", "--home", "{home}"]],
)
def test_home_before_or_after_the_action(tmp_path: Path, argv: List[str], capsys: pytest.CaptureFixture) -> None:
    assert main([a.format(home=tmp_path) for a in argv]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"data home: {tmp_path}"


@pytest.mark.parametrize(
    "module, func, argv",
    [
        ("train_cmd", "_run", ["train", "--home", "{home}", "tux"]),
        ("train_cmd", "_run", ["train", "tux", "--home", "{home}"]),
        ("eval_cmd", "_run", ["eval", "RUN", "--home", "{home}"]),
        ("demo_cmd", "_run", ["demo", "--home", "{home}"]),
        ("features_cmd", "_extract", ["features", "--home", "{home}", "extract", "--dataset", "tux"]),
        ("features_cmd", "_extract", ["features", "extract", "--dataset", "tux", "--home", "{home}"]),
    ],
)
def test_home_is_the_data_home_while_the_command_runs(
    tmp_path: Path, module: str, func: str, argv: List[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    seen = {}

    def spy(args) -> int:
        seen["env"], seen["home"] = os.environ.get("GSSF_DATA"), args.home
        return 0

    monkeypatch.setattr(importlib.import_module(f"gssf.cli.{module}"), func, spy)
    monkeypatch.setenv("GSSF_DATA", "/before")
    assert main([a.format(home=tmp_path) for a in argv]) == 0
    assert seen == {"env": str(tmp_path), "home": str(tmp_path)}
    assert os.environ["GSSF_DATA"] == "/before"  # restored afterwards
