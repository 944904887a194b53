"""Building blocks shared by every masked model: patchify helpers, sin-cos position embeddings,
a generic pre-norm Transformer block, token-mask bookkeeping and seeded initialisation.

The Transformer block is modality-agnostic (vision here, language/DNA encoders later): pre-norm,
multi-head self-attention through :func:`torch.nn.functional.scaled_dot_product_attention` with an
optional key-padding mask, and a GELU MLP (Vaswani et al. 2017; the ViT/MAE variant of
Dosovitskiy et al. 2021 and He et al. 2022).

Mask convention (docs/ARCHITECTURE.md §4): a token mask is boolean ``(B, L)`` with ``True`` = masked (hidden). A
key-padding mask follows PyTorch's ``nn.MultiheadAttention``: ``True`` = padding, ignored as a key.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PatchGrid", "MAEOutput", "TokenMask", "as_token_mask", "as_bool_mask", "images_to_tensor", "patchify",
    "unpatchify",
    "token_mask_to_pixels", "sincos_pos_embed_1d", "sincos_pos_embed_2d", "Attention", "Mlp", "Block",
    "gather_tokens", "init_weights_", "seeded_init",
]


class PatchGrid:
    """Mixin for image-model configs with ``img_size`` and ``patch`` fields: the patch grid and its checks."""

    img_size: int
    patch: int

    def check_patch_grid(self) -> None:
        """Raise a one-line ValueError unless ``patch`` divides ``img_size``."""
        if self.img_size % self.patch:
            raise ValueError(f"patch={self.patch} is not allowed: img_size={self.img_size} "
                             "must be divisible by it")

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid ``(h, w)``."""
        return self.img_size // self.patch, self.img_size // self.patch

    @property
    def num_patches(self) -> int:
        """Tokens per image ``L``."""
        return self.grid[0] * self.grid[1]


class MAEOutput(NamedTuple):
    """What every masked model's ``forward(x, mask)`` returns.

    Attributes
    ----------
    loss
        Scalar reconstruction loss (masked tokens/patches only).
    pred
        Reconstruction, ``(B, L, P)`` per-token (patch pixels, or vocabulary logits for token models).
    mask
        The boolean ``(B, L)`` token mask used, ``True`` = masked.
    latent
        Pooled encoder feature of the *masked* input ``(B, D)`` (the ``z`` of the U-MAE uniformity term).
    """

    loss: Tensor
    pred: Tensor
    mask: Tensor
    latent: Tensor | None = None


class TokenMask(NamedTuple):
    """Index bookkeeping of a token mask, ready for an encoder that sees visible tokens only.

    Attributes
    ----------
    mask
        ``(B, L)`` bool, ``True`` = masked.
    ids_keep
        ``(B, K)`` long: positions of the visible tokens; slots past a row's count are padding (point to 0).
    keep_valid
        ``(B, K)`` bool: ``True`` where ``ids_keep`` is a real visible token.
    inverse
        ``(B, L)`` long: for each position its slot in ``ids_keep``, or ``K`` (the mask-token slot) if masked.
    padded
        ``True`` when some slot is padding (then attention needs a key-padding mask).
    """

    mask: Tensor
    ids_keep: Tensor
    keep_valid: Tensor
    inverse: Tensor
    padded: bool

    def to(self, device: torch.device | str) -> TokenMask:
        """The same mask with every tensor on ``device``."""
        return TokenMask(self.mask.to(device), self.ids_keep.to(device), self.keep_valid.to(device),
                         self.inverse.to(device), self.padded)


def as_bool_mask(mask) -> Tensor:
    """The boolean ``(B, L)`` mask of a bool tensor, a ``masking.SubsetMask`` or a :class:`TokenMask`."""
    m = mask if isinstance(mask, Tensor) else getattr(mask, "mask", None)
    if not isinstance(m, Tensor) or m.dtype != torch.bool or m.ndim != 2:
        raise ValueError(f"mask={type(mask).__name__} is not allowed: use a bool (B, L) tensor "
                         "(True = masked), a masking.SubsetMask or a TokenMask")
    return m


def round_up_to_bucket(count: int, bucket: int, cap: int) -> int:
    """``count`` rounded up to a multiple of ``bucket``, at most ``cap``: the padded token count under
    ``torch.compile``, so that a compiled step sees at most ``ceil(cap / bucket)`` shapes."""
    return min(cap, math.ceil(count / bucket) * bucket)


def as_token_mask(mask, *, bucket: int = 1) -> TokenMask:
    """Turn a bool ``(B, L)`` mask or a ``masking.SubsetMask`` into a :class:`TokenMask`.

    Parameters
    ----------
    mask
        Bool tensor (``True`` = masked), an object with ``mask``/``ids_keep``/``keep_valid`` fields
        (``masking.SubsetMask``; its visible order is kept) or a :class:`TokenMask` (returned as is).
    bucket
        Pad the visible length ``K`` up to a multiple of ``bucket`` (capped at ``L``) with invalid slots.
        Used under ``torch.compile``: the encoder then sees at most ``ceil(L / bucket)`` distinct shapes
        whatever the ratio sampler draws, while the padded keys are ignored (exact same loss). With
        ``bucket > 1`` the result is always flagged ``padded`` (the key-padding mask is always passed), so
        that the shape alone, not also the presence of padding, selects the compiled graph.
    """
    if isinstance(mask, TokenMask):
        return mask
    m = as_bool_mask(mask)
    B, L = m.shape
    if hasattr(mask, "ids_keep") and hasattr(mask, "keep_valid"):
        ids_keep, keep_valid = mask.ids_keep.long(), mask.keep_valid.bool()
    else:
        n_keep = (~m).sum(1)  # (B,)
        # stable argsort puts visible positions first, in increasing order
        ids_keep = torch.argsort(m.to(torch.int8), dim=1, stable=True)[:, : int(n_keep.max())]
        keep_valid = torch.arange(ids_keep.shape[1], device=m.device)[None] < n_keep[:, None]
    if bucket > 1:
        K = ids_keep.shape[1]
        K_b = round_up_to_bucket(K, bucket, L)
        if K_b > K:
            ids_keep = F.pad(ids_keep, (0, K_b - K))
            keep_valid = F.pad(keep_valid, (0, K_b - K), value=False)
    K = ids_keep.shape[1]
    ids_keep = torch.where(keep_valid, ids_keep, torch.zeros_like(ids_keep))
    # inverse map: position -> slot; masked positions keep K (the mask-token slot); padding goes to column L
    inverse = torch.full((B, L + 1), K, dtype=torch.long, device=m.device)
    slots = torch.arange(K, device=m.device).expand(B, K)
    inverse.scatter_(1, torch.where(keep_valid, ids_keep, torch.full_like(ids_keep, L)), slots)
    return TokenMask(m, ids_keep, keep_valid, inverse[:, :L], bucket > 1 or bool((~keep_valid).any()))


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """``out[b, k] = x[b, index[b, k]]`` for ``x`` of shape ``(B, N, D)`` and ``index`` ``(B, K)``."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def images_to_tensor(images, in_chans: int | None = None) -> Tensor:
    """Images as float32 ``(N, C, H, W)``: uint8 is scaled to [0, 1]; ``(N, H, W)`` gets a channel axis.

    Channels-last ``(N, H, W, C)`` input (``C`` in {1, 3} and ``in_chans`` matching) is transposed.
    """
    if isinstance(images, Tensor):
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    else:
        a = np.asarray(images)
        x = torch.from_numpy(a.astype(np.float32) / np.float32(255.0) if a.dtype == np.uint8
                             else np.array(a, dtype=np.float32))  # a copy: inputs may be read-only
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and in_chans is not None and x.shape[1] != in_chans and x.shape[-1] == in_chans:
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4:
        raise ValueError(f"images of shape {tuple(x.shape)} are not allowed: use (N, H, W) or (N, C, H, W)")
    return x.contiguous()


def patchify(imgs: Tensor, patch: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, L, patch² · C)``, row-major over the patch grid (MAE's layout)."""
    B, C, H, W = imgs.shape
    h, w = H // patch, W // patch
    x = imgs.reshape(B, C, h, patch, w, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(B, h * w, patch * patch * C)


def unpatchify(x: Tensor, patch: int, grid: tuple[int, int], in_chans: int) -> Tensor:
    """Inverse of :func:`patchify`: ``(B, L, patch² · C)`` -> ``(B, C, H, W)``."""
    h, w = grid
    x = x.reshape(x.shape[0], h, w, patch, patch, in_chans)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], in_chans, h * patch, w * patch)


def token_mask_to_pixels(mask: Tensor, patch: int, grid: tuple[int, int]) -> Tensor:
    """Token mask ``(B, L)`` -> pixel mask ``(B, 1, H, W)`` (float, 1 = masked pixel)."""
    m = mask.reshape(mask.shape[0], 1, grid[0], grid[1]).float()
    return m.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)


def sincos_pos_embed_1d(dim: int, positions: Tensor | np.ndarray) -> Tensor:
    """Fixed sin-cos embedding (Vaswani et al. 2017) of 1-D ``positions``: ``(N,)`` -> ``(N, dim)``.

    ``emb[n] = [sin(pos_n ω_0..ω_{d/2-1}), cos(pos_n ω_0..)]`` with ``ω_i = 10000^{-2i/d}`` (MAE layout).
    """
    if dim % 2:
        raise ValueError(f"dim={dim} is not allowed: the sin-cos embedding needs an even dim")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = torch.as_tensor(positions, dtype=torch.float64).reshape(-1)[:, None] * omega[None]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1).float()


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int, cls_token: bool = False) -> Tensor:
    """Fixed 2-D sin-cos position embedding of MAE (He et al. 2022): ``(grid_h · grid_w [+1], dim)``.

    Half of the channels encode the column, half the row (each a 1-D sin-cos code); the optional
    CLS row is all zeros.
    """
    if dim % 4:
        raise ValueError(f"dim={dim} is not allowed: the 2-D sin-cos embedding needs dim % 4 == 0")
    gw, gh = np.meshgrid(np.arange(grid_w, dtype=np.float64), np.arange(grid_h, dtype=np.float64))
    emb = torch.cat([sincos_pos_embed_1d(dim // 2, gw), sincos_pos_embed_1d(dim // 2, gh)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim), emb], dim=0)
    return emb


class Attention(nn.Module):
    """Multi-head self-attention; ``qkv`` is one named ``Linear`` (partial fine-tuning trains it)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} is not allowed: dim={dim} must be divisible by heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """``x`` ``(B, S, D)``; ``key_padding_mask`` ``(B, S)`` bool, ``True`` = ignore that key."""
        B, S, D = x.shape
        q, k, v = self.qkv(x).reshape(B, S, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # True = attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, S, D/H)
        return self.proj(out.transpose(1, 2).reshape(B, S, D))


class Mlp(nn.Module):
    """Two-layer GELU MLP ``D -> hidden -> D``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm Transformer block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), key_padding_mask)
        return x + self.mlp(self.norm2(x))


def init_weights_(module: nn.Module) -> None:
    """MAE init: xavier-uniform ``Linear`` weights, zero biases, unit ``LayerNorm``; convs kaiming."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Run parameter initialisation from ``seed`` without leaving the global RNG state changed.

    ``nn.init`` draws from the global generator; ``torch.random.fork_rng`` saves and restores it, so
    model init is a pure function of ``seed`` and the caller's random state is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
