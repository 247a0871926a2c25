"""Deterministic seeding for the random generators the library touches."""
from __future__ import annotations

import random

import torch


def seed_everything(seed: int) -> None:
    """Seed Python, torch (CPU and CUDA) and NumPy when it is installed."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
    except ImportError:  # numpy is optional for the core
        return
    np.random.seed(seed % (2**32))
