"""A small bidirectional Transformer encoder for masked token modelling (BERT-style; language, later DNA).

Architecture (Devlin et al. 2019, with pre-norm blocks as in most recent encoders): token embedding + learned
position embedding → ``depth`` pre-norm blocks (:class:`r2mae_core.models.blocks.Block`, padding keys masked
out of attention) → final LayerNorm. The MLM head is BERT's: ``Linear → GELU → LayerNorm`` then the *tied*
output projection (the token-embedding matrix transposed) plus a per-token bias.

Interface (the family interface of :mod:`r2mae_core.models`, adapted to corrupted-input models): the mask
enters as MLM ``labels`` — the original token at corrupted positions, ``IGNORE_INDEX`` (−100) elsewhere, as
:func:`r2mae_core.masking.bert_corruption` returns — since a BERT sees the corrupted tokens rather than a
subset of them. ``forward(tokens, labels) -> MAEOutput``; ``encode(tokens) -> (B, D)`` (mean over real tokens);
``encode_tokens(tokens) -> (B, L, D)``. The padding mask defaults to ``tokens != pad_id``.

The labels can also come as :class:`MLMTargets` (flat positions and their targets, padded to a fixed count):
then nothing in the forward depends on the values of the inputs (no range check, no boolean indexing), so
``torch.vmap`` and ``torch.compile`` trace it with static shapes, as an ensemble of encoders needs
(:mod:`r2mae_core.ensemble`). The loss is the same mean over the same labelled positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import mlm_loss, weighted_mlm_loss
from ..masking import IGNORE_INDEX
from ..validation import check_int
from .blocks import Block, MAEOutput

__all__ = ["TextEncoderConfig", "TextEncoder", "MLMTargets", "mlm_targets"]


class MLMTargets(NamedTuple):
    """MLM labels as flat positions: the loss is taken at ``positions`` (indices into the flattened ``(B·L,)``
    tokens) against ``targets``; padding entries have target ``IGNORE_INDEX`` (−100) and no loss. With
    ``weights`` (one per entry, 0 on padding) the loss is their weighted sum of cross-entropies
    (:func:`r2mae_core.losses.weighted_mlm_loss`; the masked-diffusion loss) instead of the mean."""

    positions: Tensor
    targets: Tensor
    weights: Tensor | None = None


def mlm_targets(labels: Tensor, count: int | None = None, weights: Tensor | None = None) -> MLMTargets:
    """The labelled positions of ``labels`` ``(B, L)`` (row-major) and their targets, padded with position 0 and
    target ``IGNORE_INDEX`` up to ``count`` entries (default: the number of labelled positions); with
    ``weights`` ``(B, L)`` also the weights at those positions (padding weight 0)."""
    flat = labels.reshape(-1)
    positions = torch.nonzero(flat != IGNORE_INDEX).squeeze(1)
    count = len(positions) if count is None else int(count)
    if count < len(positions):
        raise ValueError(f"count={count} is not allowed: the labels have {len(positions)} labelled positions")
    if weights is not None and weights.shape != labels.shape:
        raise ValueError(f"weights of shape {tuple(weights.shape)} are not allowed: use the labels' shape "
                         f"{tuple(labels.shape)}")
    pad = count - len(positions)
    w = None if weights is None else F.pad(weights.reshape(-1)[positions], (0, pad))
    return MLMTargets(F.pad(positions, (0, pad)), F.pad(flat[positions], (0, pad), value=IGNORE_INDEX), w)


@dataclass(frozen=True)
class TextEncoderConfig:
    """Sizes of a :class:`TextEncoder`.

    Attributes
    ----------
    vocab_size
        Token vocabulary (specials included): ~4k BPE merges for English, ~10 for DNA bases.
    max_len
        Longest sequence (learned position embeddings).
    dim, depth, heads, mlp_ratio
        Width, blocks, attention heads (``dim % heads == 0``), MLP hidden = ``mlp_ratio · dim``.
    pad_id
        Padding id: never attended to, excluded from pooling.
    """

    vocab_size: int = 4096
    max_len: int = 128
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    pad_id: int = 0

    def __post_init__(self):
        for name, low in (("vocab_size", 2), ("max_len", 1), ("dim", 1), ("depth", 1), ("heads", 1)):
            check_int(name, getattr(self, name), low)
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} is not allowed: dim={self.dim} must be divisible by heads")
        if isinstance(self.mlp_ratio, bool) or not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio={self.mlp_ratio!r} is not allowed: use a number > 0")
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id!r} is not allowed: use an id in [0, vocab_size={self.vocab_size})")


class TextEncoder(nn.Module):
    """Bidirectional Transformer encoder with a tied MLM head (module docstring).

    Parameters
    ----------
    config
        A :class:`TextEncoderConfig`. Build through :func:`r2mae_core.models.build_model` to seed the init.
    """

    family = "text_encoder"

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        c = self.config = config
        self.tok_embed = nn.Embedding(c.vocab_size, c.dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.max_len, c.dim))
        self.blocks = nn.ModuleList(Block(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head_transform = nn.Linear(c.dim, c.dim)  # BERT's MLM head: dense → GELU → LN → tied decoder
        self.head_norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.num_patches = c.max_len
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT init: N(0, 0.02) (truncated at ±2σ) embeddings and linears, zero biases, unit LayerNorms."""
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-0.04, b=0.04)
        nn.init.zeros_(self.head_bias)

    @property
    def feature_dim(self) -> int:
        """Width ``D`` of :meth:`encode`."""
        return self.config.dim

    def _check(self, tokens: Tensor, attention_mask: Tensor | None) -> Tensor:
        """Validate; return the attention mask (B, L) bool, True = real token."""
        c = self.config
        if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
            got = (tuple(tokens.shape), tokens.dtype) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ValueError(f"tokens={got} is not allowed: use an int64 tensor (B, L)")
        if not 1 <= tokens.shape[1] <= c.max_len:
            raise ValueError(f"tokens of length {tokens.shape[1]} is not allowed: use 1..max_len={c.max_len}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= c.vocab_size):
            raise ValueError(f"token ids in [{int(tokens.min())}, {int(tokens.max())}] are not allowed: use "
                             f"ids in [0, vocab_size={c.vocab_size})")
        if attention_mask is None:
            return tokens != c.pad_id
        if not isinstance(attention_mask, Tensor) or attention_mask.shape != tokens.shape:
            got = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
            raise ValueError(f"attention_mask={got} is not allowed: use a bool tensor of shape {tuple(tokens.shape)}")
        return attention_mask.to(torch.bool)

    def encode_tokens(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Final-layer token features ``(B, L, D)`` (padding positions hold values but attend to nothing real)."""
        return self._encode(tokens, self._check(tokens, attention_mask))

    def _encode(self, tokens: Tensor, valid: Tensor) -> Tensor:
        ignore = ~valid  # (B, L) True = padding key
        ignore[:, 0] &= ~ignore.all(1)  # an all-padding row attends to position 0 (no NaN)
        x = self.tok_embed(tokens) + self.pos_embed[:, :tokens.shape[1]]  # (B, L, D)
        for block in self.blocks:
            x = block(x, ignore)
        return self.norm(x)

    def _pool(self, h: Tensor, valid: Tensor) -> Tensor:
        w = valid.to(h.dtype)[..., None]  # (B, L, 1)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, D)

    def encode(self, tokens: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Mean of the final-layer features over real tokens (``[CLS]``/``[SEP]`` included): ``(B, D)``."""
        valid = self._check(tokens, attention_mask)
        return self._pool(self._encode(tokens, valid), valid)

    def logits(self, h: Tensor) -> Tensor:
        """MLM scores ``(..., V)`` of features ``(..., D)`` through the tied head."""
        z = self.head_norm(F.gelu(self.head_transform(h)))
        return z @ self.tok_embed.weight.T + self.head_bias

    def forward(self, tokens: Tensor, labels: Tensor | MLMTargets, attention_mask: Tensor | None = None) -> MAEOutput:
        """MLM loss of corrupted ``tokens`` ``(B, L)`` against ``labels`` ``(B, L)`` (−100 = no loss) or
        :class:`MLMTargets`.

        Returns
        -------
        MAEOutput
            ``loss`` (mean cross-entropy over labelled positions, :func:`r2mae_core.losses.mlm_loss`; with
            :class:`MLMTargets` weights their weighted sum, :func:`r2mae_core.losses.weighted_mlm_loss`),
            ``pred`` the logits ``(M, V)`` of the ``M`` labelled positions only (the head is applied only
            where the loss is, in row-major order; with :class:`MLMTargets` the logits of its ``positions``,
            padding included), ``mask`` ``(B, L)`` bool = labelled (None with :class:`MLMTargets`), ``latent``
            the pooled feature ``(B, D)`` of the corrupted input.
        """
        if isinstance(labels, MLMTargets):
            return self._forward_at(tokens, labels, attention_mask)
        valid = self._check(tokens, attention_mask)
        if not isinstance(labels, Tensor) or labels.shape != tokens.shape:
            got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(f"labels={got} is not allowed: use a long tensor of shape {tuple(tokens.shape)}")
        h = self._encode(tokens, valid)  # (B, L, D)
        mask = labels != IGNORE_INDEX  # (B, L)
        pred = self.logits(h[mask])  # (M, V)
        return MAEOutput(mlm_loss(pred, labels[mask]), pred, mask, self._pool(h, valid))

    def _forward_at(self, tokens: Tensor, labels: MLMTargets, attention_mask: Tensor | None) -> MAEOutput:
        """The forward with :class:`MLMTargets`: shapes checked, values not (traceable under vmap/compile)."""
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.config.max_len:
            raise ValueError(f"tokens={tuple(tokens.shape)} is not allowed: use (B, L) with L <= max_len="
                             f"{self.config.max_len}")
        if labels.positions.shape != labels.targets.shape or labels.positions.ndim != 1:
            raise ValueError(f"MLMTargets of shapes {tuple(labels.positions.shape)} and "
                             f"{tuple(labels.targets.shape)} are not allowed: use two (M,) tensors")
        valid = tokens != self.config.pad_id if attention_mask is None else attention_mask.to(torch.bool)
        h = self._encode(tokens, valid)  # (B, L, D)
        pred = self.logits(h.reshape(-1, h.shape[-1])[labels.positions])  # (M, V)
        loss = mlm_loss(pred, labels.targets) if labels.weights is None \
            else weighted_mlm_loss(pred, labels.targets, labels.weights)
        return MAEOutput(loss, pred, None, self._pool(h, valid))
