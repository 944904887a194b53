"""Losses of masked pretraining: MAE reconstruction, the U-MAE uniformity regulariser, and MLM.

Mask convention (docs/ARCHITECTURE.md §4): boolean ``(B, L)``, ``True`` = masked. Losses are computed in float32
even under bf16 autocast (the reductions are where low precision hurts).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["mae_loss", "normalize_pixels", "uniformity_loss", "mlm_loss"]


def normalize_pixels(target: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-patch normalised target of MAE's ``norm_pix_loss`` (He et al. 2022, §4 "Reconstruction target").

    .. math:: \\tilde x_{l} = (x_{l} - \\mu_l) / \\sqrt{\\sigma_l^2 + \\epsilon}

    with ``μ_l`` and ``σ²_l`` the mean and (unbiased, as in the MAE code) variance of the pixels
    of patch ``l``.

    Parameters
    ----------
    target
        ``(B, L, P)`` patchified pixels.
    eps
        Added to the variance (MAE uses 1e-6).
    """
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


def mae_loss(pred: Tensor, target: Tensor, mask: Tensor, norm_pix: bool = False, eps: float = 1e-6) -> Tensor:
    """Masked-patch mean squared error of MAE (He et al. 2022, eq. in §3 "Reconstruction target").

    .. math:: \\mathcal L = \\frac{1}{\\sum_{b,l} m_{bl}} \\sum_{b,l} m_{bl}\\,
              \\frac{1}{P}\\lVert \\hat x_{bl} - x_{bl} \\rVert^2

    i.e. the mean over all masked patches of the batch of the per-patch MSE (visible patches do not count).
    Since patches have equal size this is also the MSE over masked pixels.

    Parameters
    ----------
    pred, target
        ``(B, L, P)`` predicted and true patches.
    mask
        ``(B, L)`` bool, ``True`` = masked (the patches the loss is on).
    norm_pix
        Use the per-patch normalised target (:func:`normalize_pixels`).
    eps
        Variance floor of the normalised target.

    Returns
    -------
    Tensor
        Scalar float32 loss (0 when nothing is masked).
    """
    if pred.shape != target.shape or mask.shape != pred.shape[:2]:
        raise ValueError(f"shapes pred={tuple(pred.shape)}, target={tuple(target.shape)}, "
                         f"mask={tuple(mask.shape)} are not allowed: use (B, L, P), (B, L, P), (B, L)")
    target = target.float()
    if norm_pix:
        target = normalize_pixels(target, eps)
    per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # (B, L)
    m = mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum().clamp_min(1.0)


def uniformity_loss(z: Tensor, tau: float = 1.0) -> Tensor:
    """Uniformity regulariser of U-MAE (Zhang, Wang & Wang, NeurIPS 2022, "How Mask Matters"; the U-MAE loss).

    .. math:: \\mathcal L_{\\mathrm{unif}} = \\frac{1}{B(B-1)} \\sum_{i \\ne j}
              \\left(\\hat z_i^\\top \\hat z_j / \\tau\\right)^2, \\qquad \\hat z = z / \\lVert z \\rVert

    the squared-similarity (spectral contrastive, HaoChen et al. 2021) penalty over all pairs of distinct
    samples; it pushes features apart and counters dimensional collapse. U-MAE minimises
    ``L_MAE + λ · L_unif`` with ``z`` the encoder feature of the masked input (λ = 0.01 by default here).
    The authors' code (``zhangq327/U-MAE``, ``loss_func.py``) averages ``sim²`` over all ``B²`` pairs including
    ``i = j`` (gathered across devices), with plain cosine similarities (τ = 1) in one version of the file and
    τ = 0.1 in another, and applies the term to the encoder's CLS feature of the masked input (the mean of the
    visible tokens with global pooling). Here: distinct pairs only, τ = 1 by default, and ``z`` the mean of the
    visible tokens. The diagonal is the constant ``1/τ²``, so the all-pairs variant has the same gradient up to
    the factor ``(B − 1) / B`` (a rescaled λ).

    Parameters
    ----------
    z
        ``(B, D)`` features, ``B ≥ 2``.
    tau
        Similarity temperature (1 = plain cosine similarity).

    Returns
    -------
    Tensor
        Scalar in ``[0, 1/τ²]``: 0 for mutually orthogonal features, ``1/τ²`` when all are parallel.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z of shape {tuple(z.shape)} is not allowed: use (B, D) with B >= 2")
    zn = F.normalize(z.float(), dim=-1)
    sim2 = (zn @ zn.T / tau).pow(2)  # (B, B)
    B = z.shape[0]
    return (sim2.sum() - sim2.diagonal().sum()) / (B * (B - 1))


def mlm_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100) -> Tensor:
    """Masked-language-modelling cross-entropy (Devlin et al. 2019): mean over labelled tokens.

    .. math:: \\mathcal L = -\\frac{1}{|M|}\\sum_{(b,l) \\in M} \\log \\mathrm{softmax}(s_{bl})_{y_{bl}}

    with ``M`` the positions whose label is not ``ignore_index`` (the corrupted tokens).

    Parameters
    ----------
    logits
        ``(..., V)`` scores.
    labels
        ``(...)`` long targets, ``ignore_index`` (−100) where no loss is taken.

    Returns
    -------
    Tensor
        Scalar float32 loss; 0 (with a gradient) when no position is labelled.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} are not allowed: "
                         "use logits (..., V) and labels (...)")
    flat_logits, flat_labels = logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1)
    n = (flat_labels != ignore_index).sum()
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=ignore_index, reduction="sum")
    return total / n.clamp_min(1)
