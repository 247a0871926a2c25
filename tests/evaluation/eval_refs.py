"""Independent reference implementations and test similarities for the evaluation tests."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from types import ModuleType
from typing import List, Tuple

import torch

import gssf


def torchreid_module(relative: str) -> ModuleType:
    """Load one numpy-only file of the PyPI ``torchreid`` 0.2.5 package by path.

    Importing ``torchreid`` itself pulls opencv, torchvision, gdown, h5py... (undeclared
    by the wheel; torchvision would also upgrade torch). ``evaluate_rank`` and
    ``re_ranking`` need only numpy, so the files are executed on their own.
    """
    spec = importlib.util.find_spec("torchreid")  # locates the package without importing it
    assert spec is not None and spec.submodule_search_locations, "torchreid 0.2.5 is not installed"
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    mod_spec = importlib.util.spec_from_file_location(f"torchreid_ref_{path.stem}", path)
    module = importlib.util.module_from_spec(mod_spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Cython evaluation unavailable": we ask for use_cython=False
        mod_spec.loader.exec_module(module)
    return module


def make_similarities(dim: int, seed: int = 0) -> List[Tuple[str, gssf.Similarity]]:
    """Real similarities in float64: cosine, a perturbed (non-trivial) GSSF, a pair-conditioned GSSF."""
    torch.manual_seed(seed)
    out = [("cosine", gssf.create_similarity("cosine"))]
    for name in ("gssf", "gssf_dynamic"):
        sim = gssf.create_similarity(name, dim=dim, num_blocks=2)
        with torch.no_grad():
            for p in sim.parameters():
                p.add_(0.3 * torch.randn_like(p))  # leave the cosine initialisation
        out.append((name, sim.double()))
    return out
