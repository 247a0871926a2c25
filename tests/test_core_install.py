"""``pip install gssf`` with torch only: the core works and every command that needs more names its extra.

The test builds that environment in a tmp folder without installing anything: a fresh
``python -m venv --without-pip`` whose site-packages holds one ``.pth`` file listing (1) a
folder of symlinks to exactly the distributions torch needs (found from torch's
``Requires-Dist``, recursively, in the environment running the tests) and (2) this
repository's ``src``. numpy, yaml, safetensors, PIL... are not there.
"""
from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SRC = Path(__file__).resolve().parents[1] / "src"


def _runtime_closure(root: str) -> Set[str]:
    """Canonical names of ``root`` and of every distribution it needs at run time (no extras)."""
    seen: Set[str] = set()
    pending = [root]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.distribution(name).requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                pending.append(req.name)
    return seen


def _link_distributions(names: Set[str], folder: Path) -> None:
    """Symlink the top-level files and folders (packages and .dist-info) of each distribution into ``folder``."""
    folder.mkdir()
    for name in names:
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = Path(str(dist.locate_file(top)))
            link = folder / top
            if target.exists() and not link.exists() and top != "__pycache__":
                link.symlink_to(target)


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of an environment holding only torch, its dependencies and gssf."""
    root = tmp_path_factory.mktemp("core")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip()  # fmt: skip
    deps = _runtime_closure("torch")
    assert "numpy" not in deps and "gssf" not in deps
    _link_distributions(deps, root / "torch-only")
    (Path(site) / "gssf-core-test.pth").write_text(f"{root / 'torch-only'}\n{SRC}\n")
    return python


def _clean_env(home: Optional[Path] = None) -> Dict[str, str]:
    """The environment without Python overrides (and, given ``home``, with HOME there and no data-home variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONNOUSERSITE"] = "1"
    if home is not None:
        env = {k: v for k, v in env.items() if k not in ("GSSF_DATA", "XDG_CACHE_HOME")}
        env["HOME"] = str(home)
    return env


def _run(python: Path, args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python args`` in ``cwd``, which is also its HOME, so the data home is an empty folder inside it."""
    return subprocess.run([str(python), *args], capture_output=True, text=True, env=_clean_env(cwd), cwd=cwd,
                          timeout=300)  # fmt: skip


def test_only_torch_is_there_and_gssf_works(core_python: Path, tmp_path: Path) -> None:
    code = """
import gssf, torch, importlib.util as u
print([m for m in ('numpy', 'yaml', 'safetensors', 'tqdm', 'PIL', 'scipy') if u.find_spec(m)])
print(gssf.__file__)
sim = gssf.create_similarity('gssf', dim=8)
print(tuple(sim(torch.randn(2, 8), torch.randn(3, 8)).shape))
for name in ('evaluation', 'train', 'features'):  # subpackages that need an extra say which
    try:
        getattr(gssf, name)
    except gssf.errors.MissingExtraError as exc:
        print(exc)
"""
    proc = _run(core_python, ["-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    found, where, shape, *missing = proc.stdout.splitlines()
    assert found == "[]"
    assert Path(where).resolve() == (SRC / "gssf" / "__init__.py").resolve()
    assert shape == "(2, 3)"
    assert missing == [
        f"gssf.{name} needs the optional dependency 'numpy', which is not installed: pip install 'gssf[{extra}]'"
        for name, extra in (("evaluation", "train"), ("train", "train"), ("features", "data"))
    ]
    assert proc.stderr == ""  # not even torch's warning about the missing numpy (gssf imports torch first)


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["similarities", "--dim", "16"], ["data", "list"]]
)
def test_core_commands_run(core_python: Path, tmp_path: Path, args: List[str]) -> None:
    # HOME is the tmp folder: `data list` shows the (empty) default data home there
    proc = _run(core_python, ["-m", "gssf.cli.main", *args], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout


@pytest.mark.parametrize(
    "args, extra",
    [
        (["train", "tux"], "train"),
        (["eval", "runs/x"], "train"),
        (["evaluate", "retrieval", "--scores", "s.npy", "--query-labels", "l.npy"], "train"),
        (["data", "info", "tux"], "data"),
        (["features", "info", "f.npz"], "data"),
        (["demo"], "train"),
    ],
)
def test_commands_that_need_an_extra_name_it(core_python: Path, tmp_path: Path, args: List[str], extra: str) -> None:
    proc = _run(core_python, ["-m", "gssf.cli.main", *args], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"gssf {args[0]}: error: ")
    assert f"pip install 'gssf[{extra}]'" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("module, extra", [("gssf.train", "train"), ("gssf.evaluation", "train")])
def test_importing_a_subpackage_directly_names_its_extra(core_python: Path, tmp_path: Path, module: str, extra: str) -> None:
    code = f"""
import gssf.errors
try:
    import {module}
except gssf.errors.MissingExtraError as exc:
    print(exc)
"""
    proc = _run(core_python, ["-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"{module} needs the optional dependency 'numpy', which is not installed: pip install 'gssf[{extra}]'"
    )
