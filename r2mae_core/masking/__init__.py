"""Mask-ratio samplers and mask generators (``True`` = masked, everywhere).

A *ratio sampler* (:mod:`.samplers`) answers "which mask ratio(s) for this step": :class:`Fixed`,
:class:`R2MAE` (the main paper, Dong, Wang & Kluger, NeurIPS 2025: the ratio is drawn from U[low, high]
during pretraining), :class:`Scheduled` and :func:`masking_ratio_decay` (Yang et al. 2023),
:class:`MaskGITCosine` (Chang et al. 2022), :class:`TruncatedGaussian` (MAGE, Li et al. 2023),
:class:`Choice` (scGPT) and :class:`MaskedDiffusion` (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025:
t ~ U[eps, 1) per sequence, with the 1/t loss weight of :func:`r2mae_core.losses.masked_diffusion_loss`); build
them from YAML specs with :func:`make_sampler`.

A *mask generator* (:mod:`.generators`) answers "which positions": :func:`random_subset_mask` (exact count by
MAE's argsort of noise, He et al. 2022; rounded counts by default, MAE's own with ``count="mae"``) with
:func:`gather_visible` and :func:`restore`, :func:`bernoulli_mask`, :func:`span_mask` (exact count, SpanBERT/T5
spans), :func:`block_mask` (rectangles on a patch grid, BEiT's blockwise masking, Bao et al. 2022) and
:func:`bert_corruption` (80/10/10, Devlin et al. 2019).

Every random function takes an explicit generator and never touches global RNG state: the same generator
state gives the same output bit for bit. Without torch installed the samplers still draw from a
``numpy.random.Generator`` and give their laws (what :mod:`r2mae_core.theory` needs); the generators need torch.
"""

from ._backend import torch
from .samplers import (
    R2MAE,
    SAMPLER_REGISTRY,
    Choice,
    Fixed,
    MaskedDiffusion,
    MaskGITCosine,
    RatioSampler,
    Scheduled,
    TruncatedGaussian,
    make_sampler,
    masking_ratio_decay,
)

__all__ = ["RatioSampler", "Fixed", "R2MAE", "Scheduled", "MaskGITCosine", "TruncatedGaussian", "Choice",
           "MaskedDiffusion", "masking_ratio_decay", "make_sampler", "SAMPLER_REGISTRY"]

if torch is not None:  # the mask generators need torch; the samplers and their laws do not
    from .generators import (
        IGNORE_INDEX,
        BlockMask,
        SubsetMask,
        bernoulli_mask,
        bert_corruption,
        block_mask,
        gather_visible,
        random_subset_mask,
        restore,
        span_mask,
    )

    __all__ += ["SubsetMask", "random_subset_mask", "gather_visible", "restore", "bernoulli_mask", "span_mask",
                "block_mask", "BlockMask", "bert_corruption", "IGNORE_INDEX"]
