"""MLP masked autoencoder: the main paper's "MLP" for validating the linear theory on images.

The input is the whole image with the masked patches set to zero, concatenated with a pixel-level
mask indicator (1 = masked), flattened; hidden layers of a chosen width/depth; a linear read-out
predicts every pixel. The loss is the MSE on masked pixels only. With ``act="identity"`` and
``depth=1`` the model is linear (a rank-``width`` linear predictor), the setting of the theory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses import mae_loss
from ..validation import check_int
from .blocks import MAEOutput, PatchGrid, as_bool_mask, init_weights_, patchify, token_mask_to_pixels, unpatchify

__all__ = ["MLPMAEConfig", "MLPMAE", "ACTIVATIONS"]

#: Activations by name (``identity`` gives a linear model).
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}


@dataclass(frozen=True)
class MLPMAEConfig(PatchGrid):
    """Sizes of an MLP-MAE.

    Attributes
    ----------
    img_size, in_chans, patch
        Square image side, channels, square patch side of the token mask.
    width, depth
        Hidden width and number of hidden layers (``encode`` returns the last one).
    act
        ``"gelu"``, ``"relu"``, ``"tanh"`` or ``"identity"``.
    norm_pix
        Per-patch normalised pixel target.
    mask_indicator
        Append the pixel mask as extra input features (otherwise a masked pixel looks like a zero pixel).
    """

    img_size: int = 28
    in_chans: int = 1
    patch: int = 4
    width: int = 512
    depth: int = 1
    act: str = "gelu"
    norm_pix: bool = False
    mask_indicator: bool = True

    def __post_init__(self):
        for name in ("img_size", "in_chans", "patch", "width", "depth"):
            check_int(name, getattr(self, name), 1)
        self.check_patch_grid()
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act={self.act!r} is not allowed: use one of {sorted(ACTIVATIONS)}")


class MLPMAE(nn.Module):
    """MLP-MAE with ``forward(x, mask) -> MAEOutput`` and ``encode(x) -> (B, width)``."""

    family = "mlp"

    def __init__(self, config: MLPMAEConfig):
        super().__init__()
        c = self.config = config
        n_pix = c.img_size * c.img_size
        n_in = n_pix * c.in_chans + (n_pix if c.mask_indicator else 0)
        layers: list[nn.Module] = []
        for i in range(c.depth):
            layers += [nn.Linear(n_in if i == 0 else c.width, c.width), ACTIVATIONS[c.act]()]
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(c.width, n_pix * c.in_chans)
        self.num_patches = c.num_patches
        init_weights_(self)

    @property
    def feature_dim(self) -> int:
        """Width of :meth:`encode`."""
        return self.config.width

    def _hidden(self, x: Tensor, pix_mask: Tensor) -> Tensor:
        inp = (x * (1.0 - pix_mask)).flatten(1)  # masked pixels zeroed, (B, C·H·W)
        if self.config.mask_indicator:
            inp = torch.cat([inp, pix_mask.flatten(1)], dim=1)
        return self.hidden(inp)  # (B, width)

    def encode(self, x: Tensor) -> Tensor:
        """Last hidden layer for the unmasked image ``(B, width)``."""
        return self._hidden(x, x.new_zeros(x.shape[0], 1, *x.shape[2:]))

    def encode_tokens(self, x: Tensor) -> Tensor:
        """Not defined: an MLP has no per-token features."""
        raise NotImplementedError("MLPMAE has no token features: use encode(x), or the 'vit'/'cnn' families")

    def forward(self, x: Tensor, mask) -> MAEOutput:
        """Reconstruct the masked patches of ``x`` ``(B, C, H, W)`` from the rest; ``mask`` ``(B, L)``."""
        c = self.config
        m = as_bool_mask(mask)
        pix_mask = token_mask_to_pixels(m, c.patch, c.grid).to(x.dtype)  # (B, 1, H, W)
        h = self._hidden(x, pix_mask)
        out = self.head(h).reshape(x.shape)  # (B, C, H, W)
        pred = patchify(out, c.patch)  # (B, L, P)
        loss = mae_loss(pred, patchify(x, c.patch), m, c.norm_pix)
        return MAEOutput(loss, pred, m, h)

    def reconstruct(self, pred: Tensor) -> Tensor:
        """Predicted patches ``(B, L, P)`` -> images ``(B, C, H, W)``."""
        return unpatchify(pred, self.config.patch, self.config.grid, self.config.in_chans)
