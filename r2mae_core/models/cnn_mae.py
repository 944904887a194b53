"""CNN masked autoencoder: the main paper's "CNN" for validating the linear theory on images.

Fully convolutional at full resolution: the image with masked patches set to zero plus a mask
indicator channel goes through ``len(channels)`` 3×3 conv layers; a 1×1 conv predicts the pixels.
The loss is the MSE on masked pixels only. ``encode`` is the global average of the last feature map;
``encode_tokens`` averages it over each patch (one feature per token, for patch-level analyses).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import mae_loss
from ..validation import check_int
from .blocks import MAEOutput, PatchGrid, as_bool_mask, init_weights_, patchify, token_mask_to_pixels, unpatchify
from .mlp_mae import ACTIVATIONS

__all__ = ["CNNMAEConfig", "CNNMAE"]


@dataclass(frozen=True)
class CNNMAEConfig(PatchGrid):
    """Sizes of a CNN-MAE.

    Attributes
    ----------
    img_size, in_chans, patch
        Square image side, channels, square patch side of the token mask.
    channels
        Output channels of each conv layer (depth = its length).
    kernel
        Odd kernel side; with dilation 1 the receptive field is ``1 + depth·(kernel − 1)``.
    dilation
        Dilation of every conv (widens the receptive field so masked patches see context).
    act
        ``"gelu"``, ``"relu"``, ``"tanh"`` or ``"identity"``.
    norm_pix
        Per-patch normalised pixel target.
    """

    img_size: int = 28
    in_chans: int = 1
    patch: int = 4
    channels: tuple[int, ...] = (32, 64, 64)
    kernel: int = 3
    dilation: int = 2
    act: str = "gelu"
    norm_pix: bool = False

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))  # YAML gives lists
        for name in ("img_size", "in_chans", "patch", "kernel", "dilation"):
            check_int(name, getattr(self, name), 1)
        if not self.channels or any(isinstance(ch, bool) or not isinstance(ch, int) or ch < 1
                                    for ch in self.channels):
            raise ValueError(f"channels={self.channels!r} is not allowed: "
                             "use a non-empty list of positive integers")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel={self.kernel} is not allowed: use an odd kernel side")
        self.check_patch_grid()
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act={self.act!r} is not allowed: use one of {sorted(ACTIVATIONS)}")


class CNNMAE(nn.Module):
    """CNN-MAE: ``forward(x, mask)``, ``encode(x) -> (B, C_last)``, ``encode_tokens(x) -> (B, L, C_last)``."""

    family = "cnn"

    def __init__(self, config: CNNMAEConfig):
        super().__init__()
        c = self.config = config
        layers: list[nn.Module] = []
        c_in = c.in_chans + 1  # + mask indicator channel
        for ch in c.channels:
            pad = c.dilation * (c.kernel // 2)
            layers += [nn.Conv2d(c_in, ch, c.kernel, padding=pad, dilation=c.dilation), ACTIVATIONS[c.act]()]
            c_in = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(c_in, c.in_chans, kernel_size=1)
        self.num_patches = c.num_patches
        init_weights_(self)

    @property
    def feature_dim(self) -> int:
        """Width of :meth:`encode`."""
        return self.config.channels[-1]

    def _feature_map(self, x: Tensor, pix_mask: Tensor) -> Tensor:
        return self.features(torch.cat([x * (1.0 - pix_mask), pix_mask], dim=1))  # (B, C_last, H, W)

    def encode_tokens(self, x: Tensor) -> Tensor:
        """Feature map of the unmasked image averaged over each patch: ``(B, L, channels[-1])``."""
        fmap = self._feature_map(x, x.new_zeros(x.shape[0], 1, *x.shape[2:]))
        return F.avg_pool2d(fmap, self.config.patch).flatten(2).transpose(1, 2)

    def encode(self, x: Tensor) -> Tensor:
        """Global-average-pooled last feature map of the unmasked image ``(B, channels[-1])``."""
        return self._feature_map(x, x.new_zeros(x.shape[0], 1, *x.shape[2:])).mean(dim=(2, 3))

    def forward(self, x: Tensor, mask) -> MAEOutput:
        """Reconstruct the masked patches of ``x`` ``(B, C, H, W)``; ``mask`` ``(B, L)``, True = masked."""
        c = self.config
        m = as_bool_mask(mask)
        pix_mask = token_mask_to_pixels(m, c.patch, c.grid).to(x.dtype)  # (B, 1, H, W)
        fmap = self._feature_map(x, pix_mask)
        pred = patchify(self.head(fmap), c.patch)  # (B, L, P)
        loss = mae_loss(pred, patchify(x, c.patch), m, c.norm_pix)
        return MAEOutput(loss, pred, m, fmap.mean(dim=(2, 3)))

    def reconstruct(self, pred: Tensor) -> Tensor:
        """Predicted patches ``(B, L, P)`` -> images ``(B, C, H, W)``."""
        return unpatchify(pred, self.config.patch, self.config.grid, self.config.in_chans)
