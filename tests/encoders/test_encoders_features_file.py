"""load_features_file on damaged or wrong files: a named GssfError naming the file, never a raw one."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest

from gssf import data
from gssf.errors import GssfError
from gssf.features import load_features_file


def _valid(path: Path) -> Path:
    np.savez(path, image=np.ones((3, 4), np.float32), text=np.ones((2, 4), np.float32), txt2img=np.array([0, 2]))
    return path


def _bytes_of_valid() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, image=np.ones((30, 4), np.float32), labels=np.arange(30))
    return buf.getvalue()


DAMAGED: Dict[str, Callable[[Path], None]] = {
    "zero-byte": lambda p: p.write_bytes(b""),
    "zeroed": lambda p: p.write_bytes(bytes(len(_bytes_of_valid()))),
    "truncated": lambda p: p.write_bytes(_bytes_of_valid()[:300]),
    "cut member": lambda p: p.write_bytes(_bytes_of_valid()[:-120]),
    "npy": lambda p: np.save(open(p, "wb"), np.ones((3, 4))),
    "pickled": lambda p: np.savez(p, image=np.array([{"a": 1}, None], dtype=object), labels=np.array([1, 2])),
}


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_damaged_files_are_named_errors(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "features.npz"
    DAMAGED[kind](path)
    with pytest.raises(GssfError, match=rf"cannot read .*{path}"):
        load_features_file(path)


def test_a_folder_is_not_a_features_file(tmp_path: Path) -> None:
    (tmp_path / "features.npz").mkdir()
    with pytest.raises(GssfError, match=r"features\.npz is a folder, not a features file"):
        load_features_file(tmp_path / "features.npz")


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(image=np.array([["a"], ["b"]]), labels=np.array([1, 2])), r"'image' must hold real numbers, got dtype <U1"),
        (dict(image=np.ones(3), labels=np.array([1, 2, 3])), r"'image' must be 2-D or 3-D, got shape \(3,\)"),
        (dict(image=np.ones((0, 4)), labels=np.zeros(0, int)), r"'image' has no rows"),
        (dict(image=np.full((2, 2), np.nan), labels=np.array([1, 2])), r"'image' has 4 NaN or infinite values"),
        (dict(image=np.ones((2, 2)), labels=np.array([1.5, 2])), r"'labels' must hold whole numbers"),
        (dict(image=np.ones((2, 2)), labels=np.array([1 + 1j, 2])), r"'labels' must hold real numbers, got dtype complex128"),
        (dict(image=np.ones((2, 2)), text=np.ones((2, 3)), txt2img=np.array([[0, 1]])), r"'txt2img' must be 1-D"),
        (dict(image=np.ones((2, 2)), labels=np.array([1, 2]), captions=np.ones(2)), r"'captions' must be a 1-D string array"),
        (dict(image=np.ones((2, 2)), text=np.ones((3, 2)), txt2img=np.array([0, 1])), r"3 text rows but 2 txt2img entries"),
    ],
)
def test_wrong_arrays_are_named(tmp_path: Path, arrays: dict, match: str) -> None:
    path = tmp_path / "feats.npz"
    np.savez(path, **arrays)
    with pytest.raises(GssfError, match=rf"feats\.npz.*({match})"):
        load_features_file(path)


def test_integral_floats_and_byte_strings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, image=np.ones((2, 3), np.float64), labels=np.array([4.0, 5.0]), image_ids=np.array([b"x", b"y"]),
             meta=np.asarray("[1, 2]"))  # a meta that is not an object is ignored  # fmt: skip
    fs = load_features_file(path)
    assert fs.labels.dtype == np.int64 and fs.labels.tolist() == [4, 5] and fs.image_ids == ["x", "y"]
    assert fs.meta == {"source": str(path)}
    assert load_features_file(_valid(tmp_path / "ok.npz")).txt2img.tolist() == [0, 2]


def test_precomputed_npy_damage_is_named(tmp_path: Path) -> None:
    (tmp_path / "test_ims.npy").write_bytes(b"")
    (tmp_path / "test_caps.txt").write_text("a\nb\n")
    with pytest.raises(GssfError, match=r"cannot read .*test_ims\.npy \(EOFError"):
        data.load("precomp", root=tmp_path, split="test")
    np.savez(tmp_path / "test_ims.npy", a=np.ones(2))  # a .npz under a .npy name
    (tmp_path / "test_ims.npy.npz").rename(tmp_path / "test_ims.npy")
    with pytest.raises(GssfError, match=r"test_ims\.npy is a \.npz archive"):
        data.load("precomp", root=tmp_path, split="test")
    np.save(tmp_path / "test_ims.npy", np.array([["a", "b"]]))
    with pytest.raises(GssfError, match=r"test_ims\.npy has shape \(1, 2\) and dtype <U1"):
        data.load("precomp", root=tmp_path, split="test")
