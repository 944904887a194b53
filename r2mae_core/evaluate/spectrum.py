"""Singular-value spectrum and effective rank of a feature matrix (dimensional collapse)."""

from __future__ import annotations

import numpy as np

__all__ = ["singular_values", "effective_rank"]
def singular_values(features, *, center: bool = True, normalize: bool = False) -> np.ndarray:
    """Singular values (descending) of the ``(N, D)`` feature matrix, centred per column by default.

    With ``normalize`` they are divided by their sum (the distribution used by :func:`effective_rank`).
    """
    z = np.asarray(features, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) == 0:
        raise ValueError(f"features of shape {z.shape} are not allowed: use a non-empty (N, D) matrix")
    if center:
        z = z - z.mean(axis=0, keepdims=True)
    s = np.linalg.svd(z, compute_uv=False)
    if normalize:
        total = s.sum()
        s = s / total if total > 0 else s
    return s


def effective_rank(features, *, center: bool = True) -> float:
    """Effective rank (Roy & Vetterli 2007, EUSIPCO, eq. 2-3) of the centred feature matrix.

    .. math:: \\operatorname{erank}(Z) = \\exp\\Big(-\\sum_k p_k \\log p_k\\Big),
              \\qquad p_k = \\sigma_k / \\textstyle\\sum_j \\sigma_j

    with ``σ_k`` the singular values (``0 log 0 = 0``). It lies in ``[1, rank(Z)]``: ``r`` for ``r`` equal
    singular values; dimensional collapse (U-MAE, Zhang, Wang & Wang 2022) lowers it. 0 for a zero matrix.
    """
    s = singular_values(features, center=center)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
