"""Masked autoencoders over genes (05_single_cell): an MLP and a small scGPT-like gene-token Transformer.

A cell is a vector ``x`` of ``G`` log-normalised expression values; a "token" is one gene, so the token mask is
boolean ``(B, G)`` (``True`` = masked, docs/ARCHITECTURE.md §4) and ``num_patches = G``: the shared loop's default step
(:func:`r2mae_core.train.mae_step`) draws an exact-count random subset of genes per cell and calls
``model(x, mask)``. Both models reconstruct the masked genes only:

.. math:: \\mathcal L = \\frac{1}{\\sum_{b,g} m_{bg}} \\sum_{b,g} m_{bg}\\, (\\hat x_{bg} - x_{bg})^2 .

* :class:`GeneMLPMAE` — the MLP masked autoencoder of single-cell SSL benchmarks: masked genes zeroed, the mask
  indicator appended (so a masked gene differs from a zero count), an MLP encoder to a ``latent``-dim cell
  embedding and an MLP decoder back to every gene.
* :class:`GeneTransformerMAE` — scGPT-like (Cui et al., Nat. Methods 2024): token ``g`` is the sum of a
  gene-identity embedding and an expression-value embedding (scGPT's continuous value encoder, Linear-ReLU-Linear
  + LayerNorm); a masked gene keeps its identity but gets a learned mask-value embedding instead. A ``<cls>``
  token is prepended; pre-norm Transformer blocks; an MLP head predicts each gene's value from its output
  token. The cell embedding is the mean of the gene output tokens (``pool="mean"``, default) or the ``<cls>``
  output (``pool="cls"``, scGPT's cell embedding). Why mean by default: the masked-gene loss reads only the gene
  tokens, so the last layer's ``<cls>`` output is never trained by it; scGPT trains ``<cls>`` with an extra
  objective (MVC, expression prediction from the cell embedding) that this small model does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses import mae_loss
from ..validation import check_int
from .blocks import Block, MAEOutput, as_bool_mask, init_weights_
from .mlp_mae import ACTIVATIONS

__all__ = ["GeneMLPConfig", "GeneMLPMAE", "GeneTransformerConfig", "GeneTransformerMAE"]


def _check_positive(config, *names: str) -> None:
    for name in names:
        check_int(name, getattr(config, name), 1)


def _check_input(x: Tensor, n_genes: int) -> None:
    if x.ndim != 2 or x.shape[1] != n_genes:
        raise ValueError(f"x of shape {tuple(x.shape)} is not allowed: use (cells, {n_genes}) expression values")


@dataclass(frozen=True)
class GeneMLPConfig:
    """Sizes of a :class:`GeneMLPMAE`.

    Attributes
    ----------
    n_genes
        Input genes ``G``.
    width
        Hidden width of encoder and decoder.
    depth
        Hidden layers of the encoder (the decoder mirrors it).
    latent
        Cell-embedding size (``encode`` output).
    act
        ``"gelu"``, ``"relu"``, ``"tanh"`` or ``"identity"``.
    mask_indicator
        Append the ``(B, G)`` mask to the input (otherwise a masked gene looks like a zero).
    """

    n_genes: int = 765
    width: int = 256
    depth: int = 1
    latent: int = 32
    act: str = "gelu"
    mask_indicator: bool = True

    def __post_init__(self):
        _check_positive(self, "n_genes", "width", "depth", "latent")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act={self.act!r} is not allowed: use one of {sorted(ACTIVATIONS)}")


class GeneMLPMAE(nn.Module):
    """MLP masked autoencoder over genes: ``forward(x, mask) -> MAEOutput``, ``encode(x) -> (B, latent)``."""

    family = "gene_mlp"

    def __init__(self, config: GeneMLPConfig):
        super().__init__()
        c = self.config = config
        act = ACTIVATIONS[c.act]
        n_in = c.n_genes * (2 if c.mask_indicator else 1)
        enc: list[nn.Module] = []
        for i in range(c.depth):
            enc += [nn.Linear(n_in if i == 0 else c.width, c.width), act()]
        self.encoder = nn.Sequential(*enc, nn.Linear(c.width, c.latent))
        dec: list[nn.Module] = []
        for i in range(c.depth):
            dec += [nn.Linear(c.latent if i == 0 else c.width, c.width), act()]
        self.decoder = nn.Sequential(*dec, nn.Linear(c.width, c.n_genes))
        self.num_patches = c.n_genes
        init_weights_(self)

    @property
    def feature_dim(self) -> int:
        """Width of :meth:`encode`."""
        return self.config.latent

    def _latent(self, x: Tensor, m: Tensor) -> Tensor:
        mf = m.to(x.dtype)
        inp = x * (1.0 - mf)  # masked genes zeroed, (B, G)
        if self.config.mask_indicator:
            inp = torch.cat([inp, mf], dim=1)  # (B, 2G)
        return self.encoder(inp)  # (B, latent)

    def encode(self, x: Tensor) -> Tensor:
        """Cell embedding of the unmasked profile ``(B, latent)``."""
        _check_input(x, self.config.n_genes)
        return self._latent(x, torch.zeros_like(x, dtype=torch.bool))

    def encode_tokens(self, x: Tensor) -> Tensor:
        """Not defined: an MLP has no per-gene features."""
        raise NotImplementedError("GeneMLPMAE has no token features: use encode(x)")

    def forward(self, x: Tensor, mask) -> MAEOutput:
        """Reconstruct the masked genes of ``x`` ``(B, G)``; ``mask`` ``(B, G)``, True = masked."""
        _check_input(x, self.config.n_genes)
        m = as_bool_mask(mask)
        z = self._latent(x, m)
        pred = self.decoder(z)[..., None]  # (B, G, 1)
        return MAEOutput(mae_loss(pred, x[..., None], m), pred, m, z)


@dataclass(frozen=True)
class GeneTransformerConfig:
    """Sizes of a :class:`GeneTransformerMAE`.

    Attributes
    ----------
    n_genes
        Gene tokens per cell ``G`` (the gene vocabulary; sequence length ``G + 1`` with ``<cls>``).
    dim, depth, heads, mlp_ratio
        Transformer width, blocks, attention heads (``dim % heads == 0``) and MLP expansion.
    pool
        Cell embedding: ``"mean"`` of the gene output tokens or the ``"cls"`` output token.
    """

    n_genes: int = 128
    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    pool: str = "mean"

    def __post_init__(self):
        _check_positive(self, "n_genes", "dim", "depth", "heads")
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} is not allowed: dim={self.dim} must be divisible by it")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio={self.mlp_ratio!r} is not allowed: use a number > 0")
        if self.pool not in ("mean", "cls"):
            raise ValueError(f"pool={self.pool!r} is not allowed: use 'mean' or 'cls'")


class GeneTransformerMAE(nn.Module):
    """scGPT-like gene-token Transformer MAE: ``forward(x, mask)``, ``encode(x) -> (B, dim)`` (pooled)."""

    family = "gene_transformer"

    def __init__(self, config: GeneTransformerConfig):
        super().__init__()
        c = self.config = config
        self.gene_embed = nn.Embedding(c.n_genes, c.dim)
        # scGPT's ContinuousValueEncoder: Linear(1, d) -> ReLU -> Linear(d, d) -> LayerNorm
        self.value_embed = nn.Sequential(nn.Linear(1, c.dim), nn.ReLU(), nn.Linear(c.dim, c.dim),
                                         nn.LayerNorm(c.dim))
        self.mask_value = nn.Parameter(torch.zeros(c.dim))  # value embedding of a masked gene
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.blocks = nn.ModuleList([Block(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head = nn.Sequential(nn.Linear(c.dim, c.dim), nn.GELU(), nn.Linear(c.dim, 1))  # scGPT ExprDecoder
        self.num_patches = c.n_genes
        init_weights_(self)
        nn.init.normal_(self.gene_embed.weight, std=0.02)
        nn.init.normal_(self.mask_value, std=0.02)
        nn.init.normal_(self.cls_token, std=0.02)

    @property
    def feature_dim(self) -> int:
        """Width of :meth:`encode`."""
        return self.config.dim

    def _tokens(self, x: Tensor, m: Tensor) -> Tensor:
        B, G = x.shape
        values = self.value_embed(x[..., None])  # (B, G, D)
        values = torch.where(m[..., None], self.mask_value.to(values.dtype), values)  # hide masked values
        tok = values + self.gene_embed.weight[None]  # (B, G, D): gene identity is always visible
        tok = torch.cat([self.cls_token.expand(B, -1, -1).to(tok.dtype), tok], dim=1)  # (B, G+1, D)
        for blk in self.blocks:
            tok = blk(tok)
        return self.norm(tok)  # (B, G+1, D)

    def _pool(self, tok: Tensor) -> Tensor:
        return tok[:, 1:].mean(dim=1) if self.config.pool == "mean" else tok[:, 0]  # (B, D)

    def encode(self, x: Tensor) -> Tensor:
        """Cell embedding of the unmasked profile ``(B, dim)``: mean gene token or ``<cls>`` (``config.pool``)."""
        _check_input(x, self.config.n_genes)
        return self._pool(self._tokens(x, torch.zeros_like(x, dtype=torch.bool)))

    def encode_tokens(self, x: Tensor) -> Tensor:
        """Per-gene output tokens of the unmasked profile ``(B, G, dim)``."""
        _check_input(x, self.config.n_genes)
        return self._tokens(x, torch.zeros_like(x, dtype=torch.bool))[:, 1:]

    def forward(self, x: Tensor, mask) -> MAEOutput:
        """Reconstruct the masked genes of ``x`` ``(B, G)``; ``mask`` ``(B, G)``, True = masked."""
        _check_input(x, self.config.n_genes)
        m = as_bool_mask(mask)
        tok = self._tokens(x, m)
        pred = self.head(tok[:, 1:])  # (B, G, 1)
        return MAEOutput(mae_loss(pred, x[..., None], m), pred, m, self._pool(tok))
