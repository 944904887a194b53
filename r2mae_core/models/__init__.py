"""Masked-model families and their factory.

Every family shares one interface: ``forward(x, mask) -> MAEOutput(loss, pred, mask, latent)`` (the
mask is an input, never drawn by the model), ``encode(x) -> (B, D)``, ``encode_tokens(x) -> (B, L, D)``,
``num_patches`` (tokens per input, ``L``) and ``feature_dim``. Build models with :func:`build_model`,
which seeds the initialisation; other modalities add their families with :func:`register_family`.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from .._rng import check_seed
from .blocks import MAEOutput, TokenMask, as_bool_mask, as_token_mask, seeded_init
from .cnn_mae import CNNMAE, CNNMAEConfig
from .mlp_mae import MLPMAE, MLPMAEConfig
from .vit_mae import ViTMAE, ViTMAEConfig

__all__ = [
    "build_model", "register_family", "families", "model_config", "MAEOutput", "TokenMask", "as_token_mask",
    "as_bool_mask", "ViTMAE", "ViTMAEConfig", "MLPMAE", "MLPMAEConfig", "CNNMAE", "CNNMAEConfig",
]

_REGISTRY: dict[str, tuple[type, type]] = {}


def register_family(name: str, config_cls: type, model_cls: type, *, aliases: tuple[str, ...] = ()) -> None:
    """Register a model family for :func:`build_model`.

    Parameters
    ----------
    name
        Family name (e.g. ``"bert"``).
    config_cls
        Frozen dataclass of sizes; validates itself in ``__post_init__``.
    model_cls
        ``nn.Module`` built as ``model_cls(config)``.
    aliases
        Other accepted names.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise ValueError(f"config_cls={config_cls!r} is not allowed: use a dataclass")
    for key in (name, *aliases):
        _REGISTRY[key] = (config_cls, model_cls)


def families() -> list[str]:
    """Registered family names (aliases included)."""
    return sorted(_REGISTRY)


def model_config(family: str, **config):
    """The validated config dataclass of ``family`` with ``config`` overrides (no model built)."""
    if family not in _REGISTRY:
        raise ValueError(f"family={family!r} is not allowed: use one of {families()}")
    config_cls, _ = _REGISTRY[family]
    allowed = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(f"config keys {unknown} are not allowed for family={family!r}: "
                         f"use {sorted(allowed)}")
    return config_cls(**config)


def build_model(family: str, *, seed: int = 0, **config) -> nn.Module:
    """Build a masked model with a seeded initialisation.

    Parameters
    ----------
    family
        ``"vit"`` (ViT-MAE), ``"mlp"`` (MLP-MAE), ``"cnn"`` (CNN-MAE), or a registered family.
    seed
        Initialisation seed; the global RNG state is left unchanged (``torch.random.fork_rng``).
    **config
        Fields of the family's config dataclass (e.g. ``dim=128, depth=4`` for ``"vit"``).

    Raises
    ------
    ValueError
        Unknown family, unknown config key, or inconsistent sizes (``dim % heads``,
        ``img_size % patch``, ...).
    """
    cfg = model_config(family, **config)
    _, model_cls = _REGISTRY[family]
    with seeded_init(check_seed(seed)):
        return model_cls(cfg)


register_family("vit", ViTMAEConfig, ViTMAE, aliases=("vit_mae",))
register_family("mlp", MLPMAEConfig, MLPMAE, aliases=("mlp_mae",))
register_family("cnn", CNNMAEConfig, CNNMAE, aliases=("cnn_mae",))

from .gene_mae import GeneMLPConfig, GeneMLPMAE, GeneTransformerConfig, GeneTransformerMAE  # noqa: E402

register_family("gene_mlp", GeneMLPConfig, GeneMLPMAE, aliases=("gene_mlp_mae",))
register_family("gene_transformer", GeneTransformerConfig, GeneTransformerMAE, aliases=("gene_transformer_mae",))
from .text_encoder import TextEncoder, TextEncoderConfig  # noqa: E402, I001  (language section)
register_family("text_encoder", TextEncoderConfig, TextEncoder, aliases=("bert",))
