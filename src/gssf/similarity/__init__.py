"""The similarity family: one base class, a registry, and its members.

========================  =========================================  =========
name                      matrix ``M`` (``s = x^T M y``, unit x, y)  static
========================  =========================================  =========
``cosine``                ``I``                                      yes
``dot``                   ``I`` on raw features                      yes
``euclidean``             ``-||x - y||^2``                           yes
``diagonal``              ``diag(w)``                                yes
``block_diagonal``        ``I + B`` (B block-diagonal)               yes
``gssf``                  ``diag(w) + B``                            yes
``bilinear``              dense ``W``                                yes
``mahalanobis``           ``1 - (x-y)^T L L^T (x-y) / 2``            yes
``gssf_dynamic``          ``M_0 + sum_k a_k(x, y) M_k`` (gated GSSF)  no
``gssf_dynamic_mlp``      ``gssf`` with MLP gates per channel/block  no
``cross_attention``       sets: words attend over regions (kernel)   no
``set_cosine``            sets: cosine of the set means              yes
========================  =========================================  =========
"""
from gssf.similarity.base import (
    SIMILARITIES,
    BilinearFormMixin,
    Similarity,
    create_similarity,
    get_similarity_class,
    list_similarities,
    register_similarity,
)
from gssf.similarity.baselines import CosineSimilarity, DotProductSimilarity, EuclideanSimilarity
from gssf.similarity.cross_attention import CrossAttentionSimilarity, SetMeanCosineSimilarity
from gssf.similarity.dense import BilinearSimilarity, MahalanobisSimilarity
from gssf.similarity.dynamic import DynamicGSSFSimilarity, MLPGatedGSSFSimilarity
from gssf.similarity.structured import BlockDiagonalSimilarity, DiagonalSimilarity, GSSFSimilarity
from gssf.similarity.terms import BLOCK_PARAMETERIZATIONS, BlockSpec, BlockTerm, DiagonalTerm

__all__ = [
    "SIMILARITIES",
    "Similarity",
    "BilinearFormMixin",
    "register_similarity",
    "create_similarity",
    "get_similarity_class",
    "list_similarities",
    "CosineSimilarity",
    "DotProductSimilarity",
    "EuclideanSimilarity",
    "DiagonalSimilarity",
    "BlockDiagonalSimilarity",
    "GSSFSimilarity",
    "BilinearSimilarity",
    "MahalanobisSimilarity",
    "DynamicGSSFSimilarity",
    "MLPGatedGSSFSimilarity",
    "CrossAttentionSimilarity",
    "SetMeanCosineSimilarity",
    "DiagonalTerm",
    "BlockSpec",
    "BlockTerm",
    "BLOCK_PARAMETERIZATIONS",
]
