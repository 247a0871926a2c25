"""Models scored by a similarity: projection heads, one- and two-tower models, end-to-end towers."""
from gssf.models.end_to_end import EncoderTower
from gssf.models.heads import HEADS, LinearHead, MLPHead, build_head
from gssf.models.towers import DualEncoder, SingleEncoder

__all__ = ["HEADS", "LinearHead", "MLPHead", "build_head", "DualEncoder", "SingleEncoder", "EncoderTower"]
