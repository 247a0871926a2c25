"""Plug-in modules that take a similarity object: attention and relational distillation."""
from gssf.nn.attention import MultiHeadSimilarityAttention, SimilarityAttention, batched_scores
from gssf.nn.distillation import SimilarityDistillationLoss

__all__ = ["MultiHeadSimilarityAttention", "SimilarityAttention", "SimilarityDistillationLoss", "batched_scores"]
