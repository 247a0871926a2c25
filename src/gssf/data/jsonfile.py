"""Reading the JSON files that ``gssf data prepare`` writes next to a dataset (index, manifest)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from gssf.errors import GssfError


def read_prepared_json(path: Path, what: str, key: str, fmt: int, layout: str, prepare: str) -> Dict[str, Any]:
    """The object in ``path``, checked to hold a list under ``key`` and ``"format": fmt``.

    Args:
        what: how errors name the file, e.g. ``"emoji-styles index"``.
        layout: the expected layout, shown when the file is missing.
        prepare: the dataset name for the ``gssf data prepare NAME --force`` hint.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path}; expected layout: {layout}")
    try:
        with open(path, encoding="utf-8") as fh:
            content = json.load(fh)
        if not isinstance(content, dict) or content.get("format") != fmt or not isinstance(content.get(key), list):
            found = content.get("format") if isinstance(content, dict) else type(content).__name__
            raise ValueError(f"format {found!r} with a list {key!r} expected format {fmt}")
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise GssfError(f"{path} is not a valid {what} ({exc}); run `gssf data prepare {prepare} --force`") from exc
    return content
