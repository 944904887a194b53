"""Frozen features of a masked image model and its masked-reconstruction loss."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import masking
from .._rng import check_seed, torch_generator
from ..models.blocks import as_token_mask, images_to_tensor
from ._common import autocast as _autocast

__all__ = ["extract_features", "reconstruction_loss"]

@torch.no_grad()
def extract_features(model: nn.Module, images, *, batch_size: int = 256, device: str | torch.device = "cpu",
                     tokens: bool = False, amp: bool | None = None) -> np.ndarray:
    """Frozen features of unmasked inputs: ``encode`` ``(N, D)`` or ``encode_tokens`` ``(N, L, D)``.

    Parameters
    ----------
    model
        A masked model; moved to ``device`` and put in eval mode (restored to its previous mode afterwards).
    images
        uint8 ``(N, H, W)`` / ``(N, C, H, W)`` or float images (see ``models.blocks.images_to_tensor``).
    batch_size, device, amp
        Batching; ``amp=None`` means bf16 autocast on CUDA only.
    tokens
        Return per-token features instead of pooled ones.

    Returns
    -------
    numpy.ndarray
        float32 features.
    """
    device = torch.device(device)
    x = images_to_tensor(images)
    was_training = model.training
    model.to(device).eval()
    fn = model.encode_tokens if tokens else model.encode
    out = []
    with _autocast(device, amp):
        for i in range(0, len(x), batch_size):
            out.append(fn(x[i:i + batch_size].to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def reconstruction_loss(model: nn.Module, images, ratio: float, *, seed: int = 0, batch_size: int = 256,
                        device: str | torch.device = "cpu", amp: bool | None = None) -> float:
    """Masked-reconstruction test loss at a fixed mask ratio.

    Each image gets an exact-count random subset mask of ``round(ratio · L)`` patches
    (``masking.random_subset_mask``) drawn from ``seed``: the same seed gives every model the same
    masks, so losses of different models are paired. The value is the model's own loss (masked-patch
    MSE, normalised pixels if the model uses ``norm_pix``) averaged over all masked patches.

    Returns
    -------
    float
        :math:`\\sum_b \\mathcal L_b\\, n_b / \\sum_b n_b` with ``n_b`` the masked patches of batch ``b``.
    """
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio={ratio!r} is not allowed: use a mask ratio in (0, 1)")
    device = torch.device(device)
    x = images_to_tensor(images)
    gen = torch_generator(check_seed(seed))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    with _autocast(device, amp):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            ratios = torch.full((len(xb),), float(ratio))
            subset = masking.random_subset_mask(ratios, model.num_patches, generator=gen)
            out = model(xb, as_token_mask(subset).to(device))
            n = float(out.mask.sum())
            total += float(out.loss) * n
            count += n
    model.train(was_training)
    return total / count
