"""ViT masked autoencoder (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners").

Asymmetric encoder-decoder: the encoder (ViT with a CLS token and fixed 2-D sin-cos position
embeddings) sees only the visible patches; a light decoder gets the encoded visible tokens plus a
learned mask token at every masked position, in the original order, and predicts the pixels of
every patch. The loss is the MSE on masked patches only (optionally on per-patch normalised pixels).

Per-sample mask ratios (R²MAE "per sample") give rows with different visible counts: the visible
tokens are padded to the longest row and a key-padding mask keeps the padding out of attention, so
each row's result is the one it would get alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses import mae_loss
from ..validation import check_int
from .blocks import (
    Block,
    MAEOutput,
    PatchGrid,
    TokenMask,
    as_token_mask,
    gather_tokens,
    init_weights_,
    patchify,
    sincos_pos_embed_2d,
    unpatchify,
)

__all__ = ["ViTMAEConfig", "ViTMAE"]


@dataclass(frozen=True)
class ViTMAEConfig(PatchGrid):
    """Sizes of a ViT-MAE.

    Attributes
    ----------
    img_size, in_chans, patch
        Square image side, channels, square patch side (``img_size % patch == 0``).
    dim, depth, heads, mlp_ratio
        Encoder width, blocks, attention heads (``dim % heads == 0``; the attention-heads ablation
        varies ``heads``), MLP hidden = ``mlp_ratio · dim``.
    dec_dim, dec_depth, dec_heads
        Decoder width, blocks and heads.
    norm_pix
        Reconstruct per-patch normalised pixels (MAE's ``norm_pix_loss``).
    pool
        ``"cls"`` (CLS token) or ``"mean"`` (mean of patch tokens) for :meth:`ViTMAE.encode`.
    """

    img_size: int = 28
    in_chans: int = 1
    patch: int = 4
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dec_dim: int = 64
    dec_depth: int = 2
    dec_heads: int = 4
    norm_pix: bool = False
    pool: str = "cls"

    def __post_init__(self):
        for name in ("img_size", "in_chans", "patch", "dim", "depth", "heads", "dec_dim", "dec_depth",
                     "dec_heads"):
            check_int(name, getattr(self, name), 1)
        self.check_patch_grid()
        for d, h, tag in ((self.dim, self.heads, ""), (self.dec_dim, self.dec_heads, "dec_")):
            if d % h:
                raise ValueError(f"{tag}heads={h} is not allowed: {tag}dim={d} must be divisible by it")
            if d % 4:
                raise ValueError(f"{tag}dim={d} is not allowed: the 2-D sin-cos embedding needs "
                                 "a multiple of 4")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio={self.mlp_ratio!r} is not allowed: use a positive number")
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool={self.pool!r} is not allowed: use 'cls' or 'mean'")

    @property
    def patch_dim(self) -> int:
        """Pixels per patch ``P = patch² · in_chans``."""
        return self.patch * self.patch * self.in_chans


class ViTMAE(nn.Module):
    """ViT-MAE: ``forward(x, mask) -> MAEOutput``, ``encode(x) -> (B, D)``, ``encode_tokens(x) -> (B, L, D)``.

    Parameters
    ----------
    config
        A :class:`ViTMAEConfig`. Build through :func:`r2mae_core.models.build_model` to seed the init.
    """

    family = "vit"

    def __init__(self, config: ViTMAEConfig):
        super().__init__()
        c = self.config = config
        L = c.num_patches
        # Linear on patchified pixels == Conv2d(kernel = stride = patch) on the image
        self.patch_embed = nn.Linear(c.patch_dim, c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(c.dim, *c.grid, cls_token=True)[None],
                             persistent=False)  # (1, 1 + L, D), fixed
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.decoder_embed = nn.Linear(c.dim, c.dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.dec_dim))
        dec_pos = sincos_pos_embed_2d(c.dec_dim, *c.grid, cls_token=True)[None]
        self.register_buffer("decoder_pos_embed", dec_pos, persistent=False)  # (1, 1 + L, Dd)
        self.decoder_blocks = nn.ModuleList(Block(c.dec_dim, c.dec_heads, c.mlp_ratio)
                                            for _ in range(c.dec_depth))
        self.decoder_norm = nn.LayerNorm(c.dec_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(c.dec_dim, c.patch_dim)
        self.num_patches = L
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MAE init: xavier-uniform linears (patch embedding as a flattened conv), N(0, 0.02) tokens."""
        init_weights_(self)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def last_qkv(self) -> nn.Linear:
        """The last encoder block's ``qkv`` projection (trained by partial fine-tuning)."""
        return self.blocks[-1].attn.qkv

    @property
    def feature_dim(self) -> int:
        """Width ``D`` of :meth:`encode`."""
        return self.config.dim

    # ---- encoder ---------------------------------------------------------------------------------
    def _embed(self, x: Tensor) -> Tensor:
        return self.patch_embed(patchify(x, self.config.patch)) + self.pos_embed[:, 1:]  # (B, L, D)

    def _encode(self, tokens: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        h = torch.cat([cls, tokens], dim=1)  # (B, 1 + K, D)
        if key_padding_mask is not None:
            cls_valid = key_padding_mask.new_zeros(tokens.shape[0], 1)
            key_padding_mask = torch.cat([cls_valid, key_padding_mask], dim=1)
        for blk in self.blocks:
            h = blk(h, key_padding_mask)
        return self.norm(h)

    def _pool(self, h: Tensor, valid: Tensor | None = None) -> Tensor:
        if self.config.pool == "cls":
            return h[:, 0]
        if valid is None:
            return h[:, 1:].mean(dim=1)
        w = valid.to(h.dtype).unsqueeze(-1)  # (B, K, 1)
        return (h[:, 1:] * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)

    def encode_tokens(self, x: Tensor) -> Tensor:
        """Patch features of the unmasked image: ``(B, C, H, W)`` -> ``(B, L, D)`` (after the final norm)."""
        return self._encode(self._embed(x), None)[:, 1:]

    def encode(self, x: Tensor) -> Tensor:
        """Image feature of the unmasked image ``(B, D)``: CLS token or mean of patch tokens (``pool``)."""
        return self._pool(self._encode(self._embed(x), None))

    # ---- masked autoencoding ---------------------------------------------------------------------
    def forward(self, x: Tensor, mask) -> MAEOutput:
        """Encode the visible patches, decode every patch, MSE on the masked ones.

        Parameters
        ----------
        x
            Images ``(B, C, H, W)``.
        mask
            Bool ``(B, L)`` (``True`` = masked), a ``masking.SubsetMask`` or a :class:`TokenMask`.

        Returns
        -------
        MAEOutput
            ``loss``, ``pred`` ``(B, L, P)``, ``mask`` ``(B, L)``, ``latent`` = pooled encoder feature of
            the masked input (CLS, or mean of the visible tokens).
        """
        tm: TokenMask = as_token_mask(mask)
        B = x.shape[0]
        kpm = ~tm.keep_valid if tm.padded else None  # (B, K) True = padding
        vis = gather_tokens(self._embed(x), tm.ids_keep)  # (B, K, D)
        h = self._encode(vis, kpm)  # (B, 1 + K, D)
        latent = self._pool(h, tm.keep_valid if tm.padded else None)
        d = self.decoder_embed(h)  # (B, 1 + K, Dd)
        # slot K of `slots` is the mask token; `inverse` unshuffles visible tokens back to their positions
        slots = torch.cat([d[:, 1:], self.mask_token.expand(B, 1, -1)], dim=1)  # (B, K + 1, Dd)
        full = torch.cat([d[:, :1], gather_tokens(slots, tm.inverse)], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            full = blk(full)
        pred = self.decoder_pred(self.decoder_norm(full))[:, 1:]  # (B, L, P)
        loss = mae_loss(pred, patchify(x, self.config.patch), tm.mask, self.config.norm_pix)
        return MAEOutput(loss, pred, tm.mask, latent)

    def reconstruct(self, pred: Tensor) -> Tensor:
        """Predicted patches ``(B, L, P)`` -> images ``(B, C, H, W)`` (normalised units if norm_pix)."""
        return unpatchify(pred, self.config.patch, self.config.grid, self.config.in_chans)
