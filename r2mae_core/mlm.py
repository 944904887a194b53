"""The masked-token (MLM) pretraining step of the token sections: which tokens are masked, how they are corrupted.

One record, :class:`MLMStep`, serves every token model (03 language, 04 DNA): the ids a mask may select, the
[MASK] id, the ids random replacements come from and, optionally, a span curriculum. It is the ``step_fn`` of
:func:`r2mae_core.train.pretrain` and, through :meth:`MLMStep.draw` / :meth:`MLMStep.stack` /
:meth:`MLMStep.call`, the member step of :func:`r2mae_core.ensemble.pretrain_ensemble`; both draw the same masks
and corruptions from the same generator in the same order.

Masking (per row, at the row's ratio ``m``): exactly ``round(m · n_eligible)`` of the eligible tokens, chosen
independently (random subset: BERT, Devlin et al. 2019; DNABERT; Nucleotide Transformer) or, with the
curriculum, in contiguous spans of mean length ``span_start + (span_end − span_start) · t`` at training
progress ``t`` (in the spirit of RandomMask, Liang et al. 2023, whose masked spans widen during training); then
BERT's 80/10/10 corruption (:func:`r2mae_core.masking.bert_corruption`).

Masked diffusion (``diffusion=True``; MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025): the row's ratio is its
noise level t (drawn by :class:`r2mae_core.masking.MaskedDiffusion`), each eligible token is masked independently
with probability t (:func:`r2mae_core.masking.bernoulli_mask`) and shown as [MASK] (no random or kept tokens), and
the loss is the 1/t-weighted masked-token loss (:func:`r2mae_core.losses.masked_diffusion_loss`), passed to the
model as per-token weights of its :class:`~r2mae_core.models.text_encoder.MLMTargets`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import masking
from .losses import masked_diffusion_weights
from .models.blocks import round_up_to_bucket
from .models.text_encoder import MLMTargets, mlm_targets

__all__ = ["MLMStep"]


@dataclass(frozen=True)
class MLMStep:
    """The MLM step of a token model (module docstring).

    Attributes
    ----------
    mask_token_id
        The [MASK] id.
    first_eligible_id
        Ids from here up may be masked (specials, padding and, for DNA, ``N`` lie below).
    first_random_id
        Random replacements are drawn from ``[first_random_id, vocab_size)``.
    span_start, span_end, curriculum
        With ``curriculum``, masked spans of mean length ``span_start + (span_end − span_start) · progress``;
        without, an independent random subset.
    diffusion
        Masked diffusion (module docstring): Bernoulli masks at each row's noise level, all [MASK], 1/t-weighted
        loss. Not with ``curriculum``.
    """

    mask_token_id: int
    first_eligible_id: int
    first_random_id: int
    span_start: float = 1.0
    span_end: float = 1.0
    curriculum: bool = False
    diffusion: bool = False

    def __post_init__(self) -> None:
        if self.diffusion and self.curriculum:
            raise ValueError("MLMStep: diffusion=True with curriculum=True is not allowed: masked diffusion masks "
                             "tokens independently (Bernoulli), a curriculum in spans; choose one")

    @classmethod
    def for_mask(cls, mask_token_id: int, first_eligible_id: int, first_random_id: int,
                 mask: dict | None = None) -> MLMStep:
        """The step of a method's mask options (``runs.Method.mask``): ``None`` or empty for independent masks,
        ``{"span_start": a, "span_end": b}`` for the span curriculum from mean length ``a`` to ``b``."""
        if not mask:
            return cls(mask_token_id, first_eligible_id, first_random_id)
        return cls(mask_token_id, first_eligible_id, first_random_id, float(mask["span_start"]),
                   float(mask["span_end"]), curriculum=True)

    def mean_span(self, progress: float) -> float:
        return self.span_start + (self.span_end - self.span_start) * float(progress)

    def corrupt(self, tokens: Tensor, ratios: Tensor, generator: torch.Generator, progress: float,
                vocab_size: int) -> tuple[Tensor, Tensor]:
        """``(corrupted, labels)`` of ``tokens`` ``(B, L)`` (on the CPU): the mask at ``ratios``, then 80/10/10."""
        tokens = tokens.cpu()
        eligible = tokens >= self.first_eligible_id  # (B, L)
        if self.diffusion:
            mask = masking.bernoulli_mask(ratios, tokens.shape[1], generator=generator, eligible=eligible)
            return (torch.where(mask, self.mask_token_id, tokens),
                    torch.where(mask, tokens, masking.IGNORE_INDEX))
        if self.curriculum:
            mask = masking.span_mask(ratios, tokens.shape[1], mean_span=self.mean_span(progress),
                                     generator=generator, eligible=eligible)
        else:
            mask = masking.random_subset_mask(ratios, tokens.shape[1], generator=generator, eligible=eligible).mask
        return masking.bert_corruption(tokens, mask, mask_token_id=self.mask_token_id, vocab_size=vocab_size,
                                       generator=generator, random_token_low=self.first_random_id)

    def weights(self, tokens: Tensor, labels: Tensor, ratios: Tensor) -> Tensor:
        """The masked-diffusion loss weights ``(B, L)`` of a corrupted batch
        (:func:`r2mae_core.losses.masked_diffusion_weights`: masked / (B · t · eligible count))."""
        tokens = tokens.cpu()
        return masked_diffusion_weights(labels != masking.IGNORE_INDEX, ratios.cpu(), tokens >= self.first_eligible_id)

    def __call__(self, model, batch: Tensor, ratios: Tensor, generator: torch.Generator, progress: float = 0.0):
        """``step_fn`` of :func:`r2mae_core.train.pretrain`: the model's MLM output on the corrupted batch."""
        corrupted, labels = self.corrupt(batch, ratios, generator, progress, model.config.vocab_size)
        if self.diffusion:
            targets = mlm_targets(labels, weights=self.weights(batch, labels, ratios))
            return model(corrupted.to(batch.device), MLMTargets(*(t.to(batch.device) for t in targets)))
        return model(corrupted.to(batch.device), labels.to(batch.device))

    def draw(self, model, batch: Tensor, ratios: Tensor, generator: torch.Generator,
             progress: float) -> tuple[Tensor, ...]:
        """One ensemble member's inputs: ``(corrupted, labels)`` of its batch, and with ``diffusion`` its loss
        weights (:meth:`weights`)."""
        corrupted, labels = self.corrupt(batch, ratios, generator, progress, model.config.vocab_size)
        if self.diffusion:
            return corrupted, labels, self.weights(batch, labels, ratios)
        return corrupted, labels

    @staticmethod
    def stack(draws: Sequence[tuple[Tensor, ...]], buckets: int = 0) -> tuple[tuple[Tensor, ...], None]:
        """The members' inputs stacked along a leading member dimension: tokens ``(k, B, L)``, positions and
        targets ``(k, M)`` with ``M`` the largest labelled count (rounded up to a multiple of
        ``ceil(B·L / buckets)`` when ``buckets`` > 0, so that a compiled step sees at most ``buckets`` shapes),
        and the loss weights ``(k, M)`` when the draws carry them; the padding entries carry no loss."""
        count = max(int((d[1] != masking.IGNORE_INDEX).sum()) for d in draws)
        if buckets:
            size = draws[0][1].numel()
            count = round_up_to_bucket(max(count, 1), math.ceil(size / buckets), size)
        padded = [mlm_targets(d[1], count, d[2] if len(d) > 2 else None) for d in draws]
        out = (torch.stack([d[0] for d in draws]), torch.stack([t.positions for t in padded]),
               torch.stack([t.targets for t in padded]))
        if padded[0].weights is not None:
            out += (torch.stack([t.weights for t in padded]),)
        return out, None

    @staticmethod
    def call(model, tensors: tuple[Tensor, ...], static: None):
        """The member's forward on its slice of :meth:`stack`'s tensors (``model`` is the functional call)."""
        return model(tensors[0], MLMTargets(*tensors[1:]))

