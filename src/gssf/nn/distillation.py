"""Relational knowledge distillation through similarity objects.

The student learns to reproduce the teacher's *ranking structure*: for each query row,
the distribution ``softmax(s_T(q, g) / tau)`` over a gallery (in-batch items) from the
teacher's similarity, matched by the student's ``softmax(s_S(q, g) / tau)`` with a KL
divergence. Teacher and student may have different feature sizes; each side scores with
its own similarity object (e.g. cosine for a frozen teacher, GSSF for the student).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gssf.similarity.base import Similarity

__all__ = ["SimilarityDistillationLoss"]


class SimilarityDistillationLoss(nn.Module):
    """``KL(p_teacher || p_student)`` of row-wise softmax score distributions, times ``tau^2``.

    Args:
        student_similarity: scores the student's features (its parameters are trained).
        teacher_similarity: scores the teacher's features (evaluated without gradient).
        temperature: softmax temperature ``tau`` of both sides.
        exclude_diagonal: drop the self-pairs when queries and gallery are the same set.
        symmetric: also match the column distributions (gallery -> queries, e.g. text ->
            image retrieval of the same score matrix); the loss is then the mean of both.
    """

    def __init__(
        self,
        student_similarity: Similarity,
        teacher_similarity: Similarity,
        temperature: float = 0.1,
        exclude_diagonal: bool = False,
        symmetric: bool = False,
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.student_similarity = student_similarity
        self.teacher_similarity = teacher_similarity
        self.temperature = float(temperature)
        self.exclude_diagonal = exclude_diagonal
        self.symmetric = symmetric

    def forward(self, student_q: Tensor, student_g: Tensor, teacher_q: Tensor, teacher_g: Tensor) -> Tensor:
        """Student features ``(N, Ds)``, ``(M, Ds)`` and teacher features ``(N, Dt)``, ``(M, Dt)``."""
        if student_q.shape[0] != teacher_q.shape[0] or student_g.shape[0] != teacher_g.shape[0]:
            raise ValueError(
                f"student and teacher must score the same items: got {student_q.shape[0]}x{student_g.shape[0]} "
                f"student rows and {teacher_q.shape[0]}x{teacher_g.shape[0]} teacher rows"
            )
        s = self.student_similarity(student_q, student_g) / self.temperature
        with torch.no_grad():
            t = self.teacher_similarity(teacher_q, teacher_g).to(s.dtype) / self.temperature
        if self.exclude_diagonal:
            if s.shape[0] != s.shape[1]:
                raise ValueError("exclude_diagonal needs queries and gallery to be the same set (square scores)")
            eye = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
            low = torch.finfo(s.dtype).min
            s, t = s.masked_fill(eye, low), t.masked_fill(eye, low)
        rows = self._kl(s, t, dim=1)
        if not self.symmetric:
            return rows * self.temperature**2
        return 0.5 * (rows + self._kl(s, t, dim=0)) * self.temperature**2

    def _kl(self, s: Tensor, t: Tensor, dim: int) -> Tensor:
        """Mean over rows (``dim=1``) or columns (``dim=0``) of ``KL(softmax(t) || softmax(s))``."""
        log_p_s = F.log_softmax(s, dim=dim)
        log_p_t = F.log_softmax(t, dim=dim)
        kl = log_p_t.exp() * (log_p_t - log_p_s)
        if self.exclude_diagonal:
            kl = kl.masked_fill(torch.eye(s.shape[0], dtype=torch.bool, device=s.device), 0.0)
        return kl.sum(dim=dim).mean()
