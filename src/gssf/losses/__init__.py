"""Losses that train a similarity: each takes ``similarity=`` and never branches on its type.

========  ===========  ========================================================
name      kind         loss
========  ===========  ========================================================
hinge     cross_modal  VSE++ bidirectional hinge (sum or hardest negative)
infonce   cross_modal  symmetric InfoNCE, learnable clamped log-temperature
triplet   unimodal     batch-hard triplet (hinge or soft margin)
id_ce     unimodal     identity cross-entropy against learnable proxies
pml       unimodal     any pytorch-metric-learning loss, scored by the similarity
========  ===========  ========================================================

Positives are given by ids: in a cross-modal batch, two captions of one image share the
image's id and are never each other's negatives. The ``pytorch-metric-learning``
adapter lives in :mod:`gssf.losses.pml` (optional extra).
"""
from gssf.losses.base import (
    LOSSES,
    PairLoss,
    SimilarityLoss,
    constrain_parameters,
    create_loss,
    get_loss_class,
    list_losses,
    positive_mask,
    register_loss,
)
from gssf.losses.adapter import PMLLoss
from gssf.losses.hinge import BidirectionalHingeLoss
from gssf.losses.identity import IdentityCrossEntropyLoss
from gssf.losses.infonce import InfoNCELoss
from gssf.losses.triplet import BatchHardTripletLoss

__all__ = [
    "LOSSES",
    "SimilarityLoss",
    "PairLoss",
    "register_loss",
    "create_loss",
    "get_loss_class",
    "list_losses",
    "positive_mask",
    "constrain_parameters",
    "BidirectionalHingeLoss",
    "PMLLoss",
    "InfoNCELoss",
    "BatchHardTripletLoss",
    "IdentityCrossEntropyLoss",
]
