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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import masking
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
    """

    mask_token_id: int
    first_eligible_id: int
    first_random_id: int
    span_start: float = 1.0
    span_end: float = 1.0
    curriculum: bool = False

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
        if self.curriculum:
            mask = masking.span_mask(ratios, tokens.shape[1], mean_span=self.mean_span(progress),
                                     generator=generator, eligible=eligible)
        else:
            mask = masking.random_subset_mask(ratios, tokens.shape[1], generator=generator, eligible=eligible).mask
        return masking.bert_corruption(tokens, mask, mask_token_id=self.mask_token_id, vocab_size=vocab_size,
                                       generator=generator, random_token_low=self.first_random_id)

    def __call__(self, model, batch: Tensor, ratios: Tensor, generator: torch.Generator, progress: float = 0.0):
        """``step_fn`` of :func:`r2mae_core.train.pretrain`: the model's MLM output on the corrupted batch."""
        corrupted, labels = self.corrupt(batch, ratios, generator, progress, model.config.vocab_size)
        return model(corrupted.to(batch.device), labels.to(batch.device))

    def draw(self, model, batch: Tensor, ratios: Tensor, generator: torch.Generator,
             progress: float) -> tuple[Tensor, Tensor]:
        """One ensemble member's inputs: ``(corrupted, labels)`` of its batch."""
        return self.corrupt(batch, ratios, generator, progress, model.config.vocab_size)

    @staticmethod
    def stack(draws: Sequence[tuple[Tensor, Tensor]], buckets: int = 0) -> tuple[tuple[Tensor, ...], None]:
        """The members' inputs stacked along a leading member dimension: tokens ``(k, B, L)``, positions and
        targets ``(k, M)`` with ``M`` the largest labelled count (rounded up to a multiple of
        ``ceil(B·L / buckets)`` when ``buckets`` > 0, so that a compiled step sees at most ``buckets`` shapes);
        the padding entries carry no loss."""
        count = max(int((labels != masking.IGNORE_INDEX).sum()) for _, labels in draws)
        if buckets:
            size = draws[0][1].numel()
            count = round_up_to_bucket(max(count, 1), math.ceil(size / buckets), size)
        padded = [mlm_targets(labels, count) for _, labels in draws]
        return (torch.stack([x for x, _ in draws]), torch.stack([t.positions for t in padded]),
                torch.stack([t.targets for t in padded])), None

    @staticmethod
    def call(model, tensors: tuple[Tensor, ...], static: None):
        """The member's forward on its slice of :meth:`stack`'s tensors (``model`` is the functional call)."""
        tokens, positions, targets = tensors
        return model(tokens, MLMTargets(positions, targets))

