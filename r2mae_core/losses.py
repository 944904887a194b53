"""Losses of masked pretraining: MAE reconstruction, the U-MAE uniformity regulariser, MLM, and the 1/t-weighted
masked-token loss of masked-diffusion language models.

Mask convention (docs/ARCHITECTURE.md §4): boolean ``(B, L)``, ``True`` = masked. Losses are computed in float32
even under bf16 autocast (the reductions are where low precision hurts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["mae_loss", "normalize_pixels", "uniformity_loss", "mlm_loss", "weighted_mlm_loss",
           "masked_diffusion_weights", "masked_diffusion_loss"]


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


def weighted_mlm_loss(logits: Tensor, labels: Tensor, weights: Tensor, ignore_index: int = -100) -> Tensor:
    """Weighted sum of token cross-entropies: ``Σ_i w_i · (−log softmax(s_i)_{y_i})`` over labelled tokens.

    With the weights of :func:`masked_diffusion_weights` this is the masked-diffusion loss; with
    ``w_i = 1 / |M|`` it is :func:`mlm_loss`.

    Parameters
    ----------
    logits
        ``(..., V)`` scores.
    labels
        ``(...)`` long targets, ``ignore_index`` where no loss is taken (such entries add 0 whatever their weight).
    weights
        ``(...)`` float weights (the labels' shape).

    Returns
    -------
    Tensor
        Scalar float32 loss.
    """
    if logits.shape[:-1] != labels.shape or weights.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)}, labels {tuple(labels.shape)} and weights "
                         f"{tuple(weights.shape)} are not allowed: use logits (..., V), labels and weights (...)")
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                         ignore_index=ignore_index, reduction="none")  # (N,), 0 where ignored
    return (ce * weights.reshape(-1).float()).sum()


def masked_diffusion_weights(mask: Tensor, ratios: Tensor, eligible: Tensor) -> Tensor:
    """Per-token weights ``w_bl = m_bl / (B · t_b · n_b)`` of the masked-diffusion loss (:func:`masked_diffusion_loss`).

    ``m_bl`` = 1 where token l of row b is masked, ``t_b`` the row's masking probability (noise level), ``n_b``
    the row's number of eligible tokens (those a mask may select); a row with ``n_b = 0`` has weight 0.

    Parameters
    ----------
    mask
        ``(B, L)`` bool, True = masked (each eligible token masked independently with probability ``t_b``).
    ratios
        ``(B,)`` noise levels t_b in (0, 1].
    eligible
        ``(B, L)`` bool, True where a token may be masked.

    Returns
    -------
    Tensor
        ``(B, L)`` float32 weights (0 where not masked).
    """
    if mask.ndim != 2 or mask.dtype != torch.bool or eligible.shape != mask.shape or eligible.dtype != torch.bool:
        raise ValueError(f"mask {tuple(mask.shape)} ({mask.dtype}) and eligible {tuple(eligible.shape)} "
                         f"({eligible.dtype}) are not allowed: use two bool tensors (B, L)")
    if ratios.shape != (mask.shape[0],) or not ratios.is_floating_point():
        raise ValueError(f"ratios of shape {tuple(ratios.shape)} and dtype {ratios.dtype} are not allowed: use a "
                         f"float tensor (B,) = ({mask.shape[0]},)")
    t = ratios.to(device=mask.device, dtype=torch.float64)
    bad = ~((t > 0) & (t <= 1))  # also NaN
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"ratios[{i}]={float(t[i])!r} is not allowed: a masked-diffusion weight 1/t needs a noise "
                         "level t in (0, 1] (draw t with masking.MaskedDiffusion, whose eps keeps it >= eps)")
    n = eligible.sum(1).to(torch.float64)  # (B,)
    row = torch.where(n > 0, 1.0 / (mask.shape[0] * t * n.clamp(min=1.0)), 0.0)  # (B,)
    return (mask.to(torch.float64) * row[:, None]).float()


def masked_diffusion_loss(logits: Tensor, labels: Tensor, ratios: Tensor, eligible: Tensor,
                          ignore_index: int = -100) -> Tensor:
    """The 1/t-weighted masked-token loss of masked-diffusion language models (MDLM, LLaDA), per token.

    .. math:: \\hat{\\mathcal L} = \\frac1B \\sum_{b=1}^{B} \\frac{1}{t_b\\, n_b} \\sum_{l} \\mathbb 1[x^{l}_{t,b} = M]
              \\left(-\\log p_\\theta(x^{l}_{b} \\mid x_{t,b})\\right)

    with ``t_b ~ U[ε, 1)`` (:class:`r2mae_core.masking.MaskedDiffusion`), each of the ``n_b`` eligible tokens of
    row b masked independently with probability ``t_b`` (:func:`r2mae_core.masking.bernoulli_mask`; every masked
    token shown as [MASK]) and ``p_θ(· | x_t)`` the model's prediction from the masked row.

    **What it estimates.** Over the draws of t and of the mask, E[L̂] = (1/B) Σ_b ℒ_ε(x_b) / n_b with

    .. math:: \\mathcal L_\\varepsilon(x) = \\frac{1}{1-\\varepsilon}\\int_\\varepsilon^1 \\frac1t\\,
              \\mathbb E_{x_t \\mid x, t}\\Big[\\sum_l \\mathbb 1[x_t^l = M]\\,
              (-\\log p_\\theta(x^l \\mid x_t))\\Big]\\,dt,

    since t has density 1/(1 − ε) on [ε, 1) and x_t is drawn from q(x_t | x, t) (each token masked with
    probability t): L̂ is an unbiased Monte Carlo estimate of the per-token masked-diffusion bound. For
    ε → 0, ℒ_0(x) is the continuous-time negative ELBO of absorbing-state (masked) diffusion,
    −log p_θ(x) ≤ ℒ_0(x) (Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language Models", eq. 10
    with the linear schedule α_t = 1 − t, whose weight α'_t / (1 − α_t) = −1/t; Nie et al. 2025, "Large
    Language Diffusion Models", eq. 3; Shi et al. 2024, MD4). The clamp ε drops ∫_0^ε, at most ε · n_b times
    the largest single-token loss of the row. LLaDA divides by the sequence length L; here by the eligible count
    n_b (padding and special tokens are never masked), so L̂ is on the scale of a per-token cross-entropy.
    ``tests/test_masked_diffusion.py`` checks the unbiasedness against the exact ℒ_ε of a real encoder.

    Parameters
    ----------
    logits
        ``(B, L, V)`` scores of the masked rows.
    labels
        ``(B, L)`` the original token where masked, ``ignore_index`` elsewhere.
    ratios
        ``(B,)`` noise levels t_b.
    eligible
        ``(B, L)`` bool, True where a token may be masked.

    Returns
    -------
    Tensor
        Scalar float32 loss.
    """
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} are not allowed: use "
                         "logits (B, L, V) and labels (B, L)")
    weights = masked_diffusion_weights(labels != ignore_index, ratios, eligible)
    return weighted_mlm_loss(logits, labels, weights, ignore_index)
