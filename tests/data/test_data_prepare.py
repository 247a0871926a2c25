"""``gssf data prepare``: the .deb route on a generated package, idempotence, clear errors."""
from __future__ import annotations

import gzip
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import gssf_data_trees as trees
from gssf import data
from gssf.data import prepare as prep
from gssf.data._deb import open_deb_data, package_version
from gssf.errors import GssfError, UnsafeInputError

STAMPS = "usr/share/tuxpaint/stamps/"


def _fake_tux_files() -> dict:
    return {
        STAMPS + "animals/cat.txt": "A cat.\nfr.utf8=Un chat.\n".encode(),
        STAMPS + "animals/cat.png": trees.png_bytes((200, 10, 10, 0)),  # fully transparent
        STAMPS + "food/apple.txt": "\ufeffAn apple.\n".encode(),
        STAMPS + "food/apple.svg": trees.SVG.encode(),
        STAMPS + "food/both.txt": b"Both formats.\n",
        STAMPS + "food/both.png": trees.png_bytes((0, 0, 255, 255)),
        STAMPS + "food/both.svg": trees.SVG.encode(),
        STAMPS + "seasonal/gift.txt": b"A gift.\n",  # no image: skipped
        STAMPS + "symbols/alphabets/a.txt": b"A.\n",
        STAMPS + "symbols/alphabets/a.png": trees.png_bytes((0, 0, 0, 255)),
        STAMPS + "animals/cat.dat": b"ignored",
        "usr/share/doc/tuxpaint-stamps-default/copyright": b"GPL-2",
    }


def test_deb_reader(tmp_path: Path) -> None:
    deb = trees.fake_tux_deb(tmp_path / "tuxpaint-stamps-default_2022.06.04-1_all.deb", {"a/b.txt": b"hello"})
    with open_deb_data(deb) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    assert members == {"./a/b.txt": b"hello"}
    assert package_version(deb) == "2022.06.04-1"
    (tmp_path / "x.deb").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="is not a Debian package"):
        with open_deb_data(tmp_path / "x.deb"):
            pass


def test_prepare_tux_from_local_deb(tmp_path: Path) -> None:
    deb = trees.fake_tux_deb(tmp_path / "tuxpaint-stamps-default_2022.06.04-1_all.deb", _fake_tux_files())
    home = tmp_path / "home"
    logs: list = []
    res = prep.prepare("tux", home=home, deb=deb, log=logs.append, progress=False)
    assert not res.skipped and res.path == home / "tux"
    assert (home / "tux" / "COPYRIGHT").read_text() == "GPL-2"
    assert not (home / "tux" / "stamps" / "animals" / "cat.dat").exists()
    assert res.details["items"] == {"captioned_stamps": 4, "svg": 1, "alphabets": 1}
    assert res.details["sources"][0]["version"] == "2022.06.04-1"
    assert any("rendering 1 SVG" in m for m in logs)
    # no scratch folders or downloads left behind
    assert sorted(p.name for p in home.iterdir()) == [".downloads", "tux"]
    assert list((home / ".downloads").iterdir()) == []

    ds = {s: data.load("tux", split=s, home=home) for s in ("train", "val", "test")}
    keys = sorted(r.id for d in ds.values() if d is not None for r in d.images)
    assert keys == ["animals/cat", "food/apple", "food/both"]  # letters and gift excluded
    everything = [d for d in ds.values()]
    by_key = {r.id: (d, i) for d in everything for i, r in enumerate(d.images)}
    d, i = by_key["food/apple"]
    assert d.captions[i] == "An apple."  # BOM stripped, line 1 only
    assert d.images[i].path == home / "tux" / "rendered" / "food" / "apple.png"
    img = d.image(i)
    assert max(img.size) == 384 and img.getpixel((5, 5)) == (255, 0, 0)  # SVG rendered at 384 px
    d, i = by_key["food/both"]
    assert d.images[i].path.suffix == ".png" and "stamps" in d.images[i].path.parts  # PNG preferred
    d, i = by_key["animals/cat"]
    assert d.captions[i] == "A cat." and d.image(i).getpixel((0, 0)) == (255, 255, 255)  # alpha onto white
    with_letters = sum(len(data.load("tux", split=s, home=home, include_alphabets=True)) for s in ("train", "val", "test"))
    assert with_letters == 4

    # idempotent: the second call finds the marker and does nothing
    t0 = time.perf_counter()
    again = prep.prepare("tux", home=home, deb=deb, log=logs.append, progress=False)
    assert again.skipped and time.perf_counter() - t0 < 1.0
    assert again.num_files == res.num_files and again.size_bytes == res.size_bytes
    # a marker from an older format is rebuilt
    marker = home / "tux" / "prepared.json"
    m = json.loads(marker.read_text())
    marker.write_text(json.dumps({**m, "format": -1}))
    assert not prep.is_prepared("tux", home)
    assert not prep.prepare("tux", home=home, deb=deb, log=logs.append, progress=False).skipped


def test_prepare_fashion_mnist_from_local_deb(tmp_path: Path) -> None:
    def idx(arr: np.ndarray) -> bytes:
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        return gzip.compress(header + arr.astype(np.uint8).tobytes())

    rng = np.random.default_rng(0)
    base = "usr/share/datasets/fashion-mnist/"
    files = {
        base + "train-images-idx3-ubyte.gz": idx(rng.integers(0, 255, (20, 28, 28))),
        base + "train-labels-idx1-ubyte.gz": idx(np.arange(20) % 10),
        base + "t10k-images-idx3-ubyte.gz": idx(rng.integers(0, 255, (10, 28, 28))),
        base + "t10k-labels-idx1-ubyte.gz": idx(np.arange(10)),
        "usr/share/doc/dataset-fashion-mnist/copyright": b"MIT",
    }
    deb = trees.fake_tux_deb(tmp_path / "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb", files)
    home = tmp_path / "home"
    prep.prepare("fashion-mnist", home=home, deb=deb, log=lambda m: None, progress=False)
    train = data.load("fashion-mnist", split="train", home=home)
    val = data.load("fashion-mnist", split="val", home=home)
    test = data.load("fashion-mnist", split="test", home=home)
    assert len(train) == 10 and set(train.labels.tolist()) == {0, 1, 2, 3, 4}
    assert val.labels.tolist() == [0, 1, 2, 3, 4] and test.labels.tolist() == [5, 6, 7, 8, 9]
    assert test.images[0].id == "t10k/00005" and test.image(0).size == (28, 28)
    # truncated IDX file: a clear error
    path = home / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"\x00" * 3))
    with pytest.raises(ValueError, match="truncated"):
        data.load("fashion-mnist", split="test", home=home)
    path.write_bytes(gzip.compress(b"\0\0\x08\x01" + bytes(20))[:-9])  # a gzip stream cut short
    with pytest.raises(GssfError, match=r"cannot read .*t10k-labels-idx1-ubyte\.gz \(EOFError"):
        data.load("fashion-mnist", split="test", home=home)


def test_prepare_says_what_to_run_without_apt_or_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(prep.PrepareError, match=r"apt-get not found.*gssf data prepare <name> --deb PATH"):
        prep.prepare("tux", home=tmp_path, log=lambda m: None, progress=False)
    with pytest.raises(prep.PrepareError, match=r"npm not found.*apt-get install nodejs npm"):
        prep.prepare("emoji", home=tmp_path, log=lambda m: None, progress=False)
    # failures leave nothing half-built
    assert not (tmp_path / "tux").exists() and not (tmp_path / "emoji").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tux")]


def test_prepare_rejects_unknown_and_missing_deb(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot prepare 'coco'"):
        prep.prepare("coco", home=tmp_path)
    with pytest.raises(FileNotFoundError, match="Debian package not found at"):
        prep.prepare("tux", home=tmp_path, deb=tmp_path / "missing.deb", log=lambda m: None)
    assert prep.expand_names(["tux", "all"]) == ["tux", "emoji", "fashion-mnist"]


@pytest.mark.slow
def test_real_prepare_is_idempotent_and_fast_when_done() -> None:
    """The real datasets (prepared by `make test` or here): a second call returns at once."""
    results = prep.prepare_many(["all"], log=lambda m: None, progress=False)
    t0 = time.perf_counter()
    again = prep.prepare_many(["all"], log=lambda m: None, progress=False)
    assert time.perf_counter() - t0 < 1.0 and all(r.skipped for r in again)
    sizes = {r.name: r.details["items"] for r in results}
    assert sizes["tux"] == {"captioned_stamps": 950, "svg": 165, "alphabets": 158}
    assert sizes["emoji"] == {"identities": 1906, "cameras": 3}
    sources = {r.name: r.details["sources"] for r in results}
    assert sources["tux"][0]["version"] == "2022.06.04-1"
    assert [s["version"] for s in sources["emoji"]] == ["16.0.0", "16.0.0", "17.0.0"]


# --------------------------------------------------------------------------- hostile packages


def _hostile(tmp_path: Path, *members) -> Path:
    good = [(trees.tar_file("./" + STAMPS + "animals/cat.txt", 7), b"A cat.\n"),
            (trees.tar_file("./" + STAMPS + "animals/cat.png", len(CAT)), CAT)]  # fmt: skip
    return trees.fake_deb(tmp_path / "tuxpaint-stamps-default_2022.06.04-1_all.deb", good + list(members))


CAT = trees.png_bytes((200, 10, 10, 255))


@pytest.mark.parametrize(
    "member, match",
    [
        ((trees.tar_file("./" + STAMPS + "../../../../../../escaped.png", 3), b"bad"), r"leaves its root"),
        ((trees.tar_link("./" + STAMPS + "animals/dog.png", "/etc/passwd"), None), r"a link to '/etc/passwd'"),
        ((trees.tar_link("./" + STAMPS + "animals/dog.png", "../../../../../etc/passwd"), None), r"a link to '\.\./"),
        ((trees.tar_link("./" + STAMPS + "animals/dog.png", "./etc/shadow", hard=True), None), r"a link to '\./etc/shadow'"),
    ],
)
def test_deb_members_leaving_the_destination_are_refused(tmp_path: Path, member: tuple, match: str) -> None:
    deb = _hostile(tmp_path, member)
    home = tmp_path / "home"
    with pytest.raises(UnsafeInputError, match=rf"tuxpaint-stamps-default_2022\.06\.04-1_all\.deb: member .*{match}"):
        prep.prepare("tux", home=home, deb=deb, log=lambda m: None, progress=False)
    assert not (tmp_path / "escaped.png").exists() and not list(tmp_path.rglob("escaped.png"))
    assert not (home / "tux").exists() and not [p for p in home.iterdir() if "partial" in p.name]


def test_deb_links_inside_the_destination_are_skipped(tmp_path: Path) -> None:
    deb = _hostile(tmp_path, (trees.tar_link("./" + STAMPS + "animals/kitten.png", "cat.png"), None))
    res = prep.prepare("tux", home=tmp_path / "home", deb=deb, log=lambda m: None, progress=False)
    assert res.details["extracted_files"] == 2 and not (res.path / "stamps" / "animals" / "kitten.png").exists()


def test_damaged_deb_is_a_named_error(tmp_path: Path) -> None:
    deb = _hostile(tmp_path)
    raw = deb.read_bytes()
    (tmp_path / "cut.deb").write_bytes(raw[: len(raw) - 200])  # the xz stream loses its end
    with pytest.raises(GssfError, match=r"cut\.deb is damaged or truncated"):
        prep.prepare("tux", home=tmp_path / "home", deb=tmp_path / "cut.deb", log=lambda m: None, progress=False)
    (tmp_path / "hdr.deb").write_bytes(b"!<arch>\n" + b"data.tar.xz     " + b"x" * 44)
    with pytest.raises(GssfError, match=r"hdr\.deb is not a Debian package \(damaged ar member header at byte 8"):
        with open_deb_data(tmp_path / "hdr.deb"):
            pass


def test_prepare_removes_only_its_own_stale_scratch_folders(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stale = [home / ".tux.partial-abcd1234", home / ".downloads" / "tux-k2j4_x9z"]
    kept = [home / ".emoji.partial-abcd1234", home / ".tux.partial-keep", home / ".downloads" / "emoji-abcd1234",
            home / ".downloads" / "tux-abcd1234.deb"]  # fmt: skip
    for p in stale + kept[:3]:
        (p / "sub").mkdir(parents=True)
        (p / "sub" / "half.png").write_bytes(b"half")
    kept[3].write_bytes(b"a file, not a scratch folder")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    (home / ".tux.partial-linklink").symlink_to(elsewhere)  # a link named like a scratch folder
    logs: list = []
    prep.prepare("tux", home=home, deb=_hostile(tmp_path), log=logs.append, progress=False)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and (elsewhere / "precious.txt").read_text() == "keep me"
    assert sum("left by an interrupted prepare" in m for m in logs) == 2
    assert not (home / ".tux.lock").exists()


def test_progress_off_a_terminal_is_one_line_per_stage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    deb = trees.fake_tux_deb(tmp_path / "tuxpaint-stamps-default_2022.06.04-1_all.deb", _fake_tux_files())
    prep.prepare("tux", home=tmp_path / "home", deb=deb, progress=True)  # capsys: stderr is not a terminal
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err
    lines = err.splitlines()
    assert [ln for ln in lines if ln.startswith("tux: unpack")] == [f"tux: unpack: {deb.stat().st_size / 1e6:.1f} MB"]
    assert [ln for ln in lines if ln.startswith("tux: render SVG")] == ["tux: render SVG: 1 it"]


def test_progress_bar_kinds() -> None:
    import io

    from gssf.data.progress import progress_bar

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, tty = io.StringIO(), Tty()
    bar = progress_bar(3, "stage", unit="file", stream=pipe)
    for _ in range(3):
        bar.update()
    bar.close()
    bar.close()
    assert pipe.getvalue() == "stage: 3 file\n"
    quiet = io.StringIO()
    progress_bar(3, "stage", enabled=False, stream=quiet).close()
    assert quiet.getvalue() == ""
    from tqdm import tqdm

    live = progress_bar(3, "stage", stream=tty)
    assert isinstance(live, tqdm)
    live.close()


def test_npm_keeps_its_cache_inside_the_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    calls: list = []
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(prep, "_run", lambda cmd, cwd, progress: calls.append(cmd) or subprocess.CompletedProcess(cmd, 1, "", "E404"))
    with pytest.raises(prep.PrepareError, match="npm install failed"):
        prep.prepare("emoji", home=tmp_path / "home", log=lambda m: None, progress=False)
    cmd = calls[0]
    assert cmd[cmd.index("--cache") + 1] == str(tmp_path / "home" / ".downloads" / "npm-cache")
    assert "--ignore-scripts" in cmd and Path(cmd[cmd.index("--prefix") + 1]).is_relative_to(tmp_path / "home")
