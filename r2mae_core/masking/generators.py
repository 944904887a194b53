"""Mask generators: which positions to hide, given per-row ratios (``True`` = masked).

All functions are batched, torch-only and take an explicit ``torch.Generator`` (outputs live on its device).
Exact-count generators mask ``n_mask = clamp(round(ratio·n), 1, n − 1)`` of the ``n`` eligible tokens of a
row (at least one visible and one masked token; ``round`` is round-half-to-even, ``torch.round``); a row with
fewer than 2 eligible tokens gets no masked token. Every notebook uses this rule; :func:`random_subset_mask`
also offers MAE's own, ``int(n·(1 − ratio))`` tokens kept (``count="mae"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..validation import check_ratio, check_torch_generator, is_int, is_real

__all__ = ["SubsetMask", "random_subset_mask", "gather_visible", "restore", "bernoulli_mask", "span_mask",
           "BlockMask", "block_mask", "BLOCK_PATIENCE", "bert_corruption", "IGNORE_INDEX", "COUNT_RULES"]

#: Label of unmasked positions in :func:`bert_corruption` (PyTorch's cross-entropy ``ignore_index``).
IGNORE_INDEX = -100


def _ratios_and_eligible(owner: str, ratios: torch.Tensor | np.ndarray | float, n_tokens: int,
                         batch_size: int | None, eligible: torch.Tensor | None,
                         gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate; return ratios as float64 (B,) on the generator's device and eligible (B, L) or None."""
    if not is_int(n_tokens) or n_tokens < 2:
        raise ValueError(f"{owner}: n_tokens={n_tokens!r} is not allowed: use an integer >= 2")
    if is_real(ratios) or isinstance(ratios, float):
        if not is_int(batch_size) or batch_size < 1:
            check_ratio("ratios", ratios, owner=owner)  # a bad ratio is named before the missing batch size
            raise ValueError(f"{owner}: batch_size={batch_size!r} is not allowed: a scalar ratio needs an "
                             "integer batch_size >= 1")
        ratios = torch.full((int(batch_size),), float(ratios), dtype=torch.float64)
    elif isinstance(ratios, torch.Tensor | np.ndarray):
        ratios = torch.as_tensor(ratios)
        if ratios.ndim != 1 or ratios.numel() == 0 or not ratios.is_floating_point():
            raise ValueError(f"{owner}: ratios of shape {tuple(ratios.shape)} and dtype {ratios.dtype} is "
                             "not allowed: use a non-empty 1-D float tensor (B,) or a float with batch_size")
        if batch_size is not None and batch_size != ratios.numel():
            raise ValueError(f"{owner}: batch_size={batch_size!r} is not allowed: it must equal len(ratios)="
                             f"{ratios.numel()} (or be omitted)")
    else:
        raise ValueError(f"{owner}: ratios={ratios!r} is not allowed: use a 1-D float tensor (B,) or a float")
    ratios = ratios.to(device=gen.device, dtype=torch.float64 if gen.device.type != "mps" else torch.float32)
    bad = ~((ratios > 0) & (ratios < 1))  # also catches NaN
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{owner}: ratios[{i}]={float(ratios[i])!r} is not allowed: use mask ratios in the "
                         "open interval (0, 1)")
    if eligible is not None:
        if not isinstance(eligible, torch.Tensor) or eligible.dtype != torch.bool \
                or tuple(eligible.shape) != (ratios.numel(), n_tokens):
            got = tuple(eligible.shape) if isinstance(eligible, torch.Tensor) else type(eligible).__name__
            raise ValueError(f"{owner}: eligible={got} is not allowed: use a bool tensor of shape "
                             f"(B, n_tokens)=({ratios.numel()}, {n_tokens}), False = never masked")
        eligible = eligible.to(gen.device)
    return ratios, eligible


#: The count rules of :func:`random_subset_mask`: ``"round"`` masks clamp(round(ratio·n), 1, n − 1) tokens (at
#: least one visible and one masked; every notebook uses it), ``"mae"`` keeps int(n·(1 − ratio)) tokens as MAE's
#: ``random_masking`` does (He et al. 2022; no clamp: a ratio above 1 − 1/n keeps none). They differ by one token
#: for some (n, ratio), e.g. n = 16 at ratio 0.9: 14 masked by ``"round"``, 15 by ``"mae"``.
COUNT_RULES = ("round", "mae")


def _mask_counts(ratios: torch.Tensor, n_tokens: int, eligible: torch.Tensor | None,
                 rule: str = "round") -> torch.Tensor:
    """n_mask per row by ``rule`` (:data:`COUNT_RULES`), n = eligible count (0 when n < 2). Long (B,)."""
    n = eligible.sum(1) if eligible is not None else torch.full_like(ratios, n_tokens, dtype=torch.long)
    if rule == "mae":
        counts = n - torch.floor(n * (1.0 - ratios)).long()  # float64, as Python's int(L * (1 - mask_ratio))
        return torch.where(n >= 2, counts, torch.zeros_like(n))
    counts = torch.round(ratios * n).long()
    return torch.where(n >= 2, torch.minimum(counts.clamp(min=1), n - 1), torch.zeros_like(n))


@dataclass(frozen=True, eq=False)
class SubsetMask:
    """An exact-count random subset mask and the MAE keep/restore indices (He et al. 2022).

    Attributes
    ----------
    mask
        (B, L) bool, True = masked.
    ids_keep
        (B, K_max) long, visible positions in shuffled order; entries where ``keep_valid`` is False are
        padding (valid but masked positions), present only when rows keep different counts.
    keep_valid
        (B, K_max) bool, ``arange(K_max) < n_keep[:, None]``.
    ids_restore
        (B, L) long, inverse permutation of the shuffle: ``x_full = x_shuffled.gather(1, ids_restore)``.
    n_keep
        (B,) long, visible tokens per row.
    """

    mask: torch.Tensor
    ids_keep: torch.Tensor
    keep_valid: torch.Tensor
    ids_restore: torch.Tensor
    n_keep: torch.Tensor

    def gather_visible(self, x: torch.Tensor) -> torch.Tensor:
        """See :func:`gather_visible`."""
        return gather_visible(x, self)

    def restore(self, x: torch.Tensor, *, mask_token: torch.Tensor | None = None) -> torch.Tensor:
        """See :func:`restore`."""
        return restore(x, self, mask_token=mask_token)


def random_subset_mask(ratios: torch.Tensor | np.ndarray | float, n_tokens: int, *,
                       generator: torch.Generator, batch_size: int | None = None,
                       eligible: torch.Tensor | None = None, count: str = "round") -> SubsetMask:
    """Exact-count random subset mask per row by MAE's argsort of uniform noise (He et al. 2022, Alg. 1).

    noise ~ U(0, 1) of shape (B, L); ids_shuffle = argsort(noise); ids_restore = argsort(ids_shuffle); the
    first n_keep = L − n_mask of ids_shuffle are visible. ``count`` says how many (:data:`COUNT_RULES`): by
    default n_mask = clamp(round(ratio·L), 1, L − 1); ``count="mae"`` keeps n_keep = int(L·(1 − ratio)), MAE's
    own rule, and then equals MAE's ``random_masking`` given the same noise. With
    ``eligible`` (False for padding/special tokens) the ineligible tokens are sorted first, so they are always
    kept (and appear in ``ids_keep``), and n_mask uses the eligible count (module docstring).

    Parameters
    ----------
    ratios
        (B,) float tensor (or array) of mask ratios in (0, 1), or one float together with ``batch_size``.
    n_tokens
        Sequence length L >= 2.
    generator
        ``torch.Generator``; outputs live on its device; consumes one (B, L) ``torch.rand`` draw.
    batch_size
        B, only with a float ``ratios``.
    eligible
        Optional (B, L) bool, False where a token must never be masked (padding, special tokens).
    count
        ``"round"`` (default) or ``"mae"``: how many tokens a ratio masks (:data:`COUNT_RULES`).

    Returns
    -------
    SubsetMask
        ``mask`` (B, L) bool (True = masked), ``ids_keep``/``keep_valid`` (B, K_max), ``ids_restore`` (B, L),
        ``n_keep`` (B,). With one count for all rows (e.g. a per-batch ratio), K_max = n_keep, no padding.
    """
    if count not in COUNT_RULES:
        raise ValueError(f"random_subset_mask: count={count!r} is not allowed: use one of {', '.join(COUNT_RULES)}")
    gen = check_torch_generator("generator", generator, owner="random_subset_mask")
    ratios, eligible = _ratios_and_eligible("random_subset_mask", ratios, n_tokens, batch_size, eligible, gen)
    n_keep = n_tokens - _mask_counts(ratios, n_tokens, eligible, count)  # (B,)
    noise = torch.rand((ratios.numel(), n_tokens), generator=gen, device=gen.device)  # (B, L)
    if eligible is not None:
        noise = torch.where(eligible, noise, noise - 2.0)  # ineligible first: always kept
    ids_shuffle = torch.argsort(noise, dim=1, stable=True)  # (B, L)
    positions = torch.arange(n_tokens, device=gen.device).expand_as(ids_shuffle)
    ids_restore = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle, positions)  # inverse permutation
    k_max = int(n_keep.max())
    return SubsetMask(mask=ids_restore >= n_keep[:, None], ids_keep=ids_shuffle[:, :k_max].contiguous(),
                      keep_valid=positions[:, :k_max] < n_keep[:, None], ids_restore=ids_restore,
                      n_keep=n_keep)


def _index_like(ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return ids.reshape(*ids.shape, *([1] * (x.ndim - 2))).expand(*ids.shape, *x.shape[2:])


def gather_visible(x: torch.Tensor, subset: SubsetMask) -> torch.Tensor:
    """Visible tokens ``out[b, k] = x[b, ids_keep[b, k]]``, in shuffled order (MAE encoder input).

    Parameters
    ----------
    x
        (B, L, *D) tokens (or (B, L)).
    subset
        The :class:`SubsetMask` of the step.

    Returns
    -------
    torch.Tensor
        (B, K_max, *D); rows with fewer visible tokens (one ratio per sample) are padded with zeros where
        ``subset.keep_valid`` is False, so no masked token's content reaches the encoder; an encoder that
        attends should still take ``~subset.keep_valid`` as its key-padding mask (a zero token is a token).
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or tuple(x.shape[:2]) != tuple(subset.mask.shape):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"gather_visible: x of shape {got} is not allowed: use shape (B, L, ...) = "
                         f"{tuple(subset.mask.shape)} + (...)")
    visible = x.gather(1, _index_like(subset.ids_keep, x))
    if bool(subset.keep_valid.all()):
        return visible
    valid = subset.keep_valid.reshape(*subset.keep_valid.shape, *([1] * (x.ndim - 2)))
    return visible.masked_fill(~valid, 0)


def restore(x: torch.Tensor, subset: SubsetMask, *, mask_token: torch.Tensor | None = None) -> torch.Tensor:
    """Unshuffle back to the original token order: ``out[b, i] = x[b, ids_restore[b, i]]`` (MAE decoder).

    Parameters
    ----------
    x
        Either the full shuffled sequence (B, L, *D) (visible tokens then mask tokens, as in the MAE decoder)
        or the visible tokens only (B, K_max, *D), which needs ``mask_token`` to fill the rest.
    subset
        The :class:`SubsetMask` that made the shuffle.
    mask_token
        Optional token broadcastable to ``x.shape[2:]`` (e.g. (D,) or (1, 1, D)); when given, every masked
        position of the output holds it (the padding of ragged rows included). Gradients flow to it.

    Returns
    -------
    torch.Tensor
        (B, L, *D) in the original order.
    """
    b, n_tokens = subset.mask.shape
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[0] != b \
            or x.shape[1] not in (n_tokens, subset.ids_keep.shape[1]):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"restore: x of shape {got} is not allowed: use (B, L, ...) with L={n_tokens} or "
                         f"(B, K_max, ...) with K_max={subset.ids_keep.shape[1]} and a mask_token")
    if x.shape[1] != n_tokens:
        if mask_token is None:
            raise ValueError(f"restore: mask_token=None is not allowed with visible-only x of length "
                             f"{x.shape[1]}: give the mask token (shape x.shape[2:])")
        pad = mask_token.to(x).expand(b, n_tokens - x.shape[1], *x.shape[2:])
        x = torch.cat([x, pad], dim=1)  # (B, L, *D) in shuffled order
    out = x.gather(1, _index_like(subset.ids_restore, x))  # (B, L, *D)
    if mask_token is not None:
        hide = subset.mask.reshape(*subset.mask.shape, *([1] * (x.ndim - 2)))
        out = torch.where(hide, mask_token.to(out), out)
    return out


def bernoulli_mask(ratios: torch.Tensor | np.ndarray | float, n_tokens: int, *, generator: torch.Generator,
                   batch_size: int | None = None, eligible: torch.Tensor | None = None) -> torch.Tensor:
    """Independent masking: ``mask[b, i] ~ Bernoulli(ratio_b)`` (BERT-style, Devlin et al. 2019).

    The count is random (Binomial(n, ratio)): a row may have no masked or no visible token. Parameters as in
    :func:`random_subset_mask`; ineligible tokens are never masked. Consumes one (B, L) ``torch.rand`` draw.

    Returns
    -------
    torch.Tensor
        (B, L) bool, True = masked.
    """
    gen = check_torch_generator("generator", generator, owner="bernoulli_mask")
    ratios, eligible = _ratios_and_eligible("bernoulli_mask", ratios, n_tokens, batch_size, eligible, gen)
    mask = torch.rand((ratios.numel(), n_tokens), generator=gen, device=gen.device, dtype=ratios.dtype) \
        < ratios[:, None]  # (B, L)
    return mask if eligible is None else mask & eligible


def _random_cuts(n_candidates: torch.Tensor, n_cuts: torch.Tensor, width: int,
                 gen: torch.Generator) -> torch.Tensor:
    """(B, width) bool: ``n_cuts[b]`` distinct positions chosen uniformly from {1, ..., n_candidates[b]}."""
    pos = torch.arange(width, device=gen.device)
    valid = (pos >= 1) & (pos <= n_candidates[:, None])  # (B, width)
    noise = torch.where(valid, torch.rand((n_cuts.numel(), width), generator=gen, device=gen.device), 2.0)
    rank = torch.empty_like(pos.expand_as(noise)).scatter_(1, torch.argsort(noise, dim=1, stable=True),
                                                          pos.expand_as(noise))
    return valid & (rank < n_cuts[:, None])


def span_mask(ratios: torch.Tensor | np.ndarray | float, n_tokens: int, *, mean_span: float,
              generator: torch.Generator, batch_size: int | None = None,
              eligible: torch.Tensor | None = None) -> torch.Tensor:
    """Exact-count contiguous-span mask (SpanBERT, Joshi et al. 2020; T5 span corruption, Raffel et al. 2020).

    Each row masks exactly n_mask of its n eligible tokens (module docstring) in
    k = clamp(round(n_mask / mean_span), 1, min(n_mask, n − n_mask)) spans. The row is laid out as a circle of
    alternating spans and gaps: span lengths are a uniform random composition of n_mask into k positive parts
    (mean n_mask / k ≈ ``mean_span``; P(length = 1) = (k − 1)/(n_mask − 1), close to geometric), gap lengths a
    uniform composition of n − n_mask into k positive parts (so spans never touch); masked token j of span s
    sits at j + c_s, with c_s the total gap before span s. The circle is then rotated by a uniform offset, so
    every eligible position is masked with probability exactly n_mask / n (no edge effect); a span crossing
    the end continues at the start (two runs). Spans live on the eligible positions in order (an ineligible
    token inside a span splits it; padding at the ends does not). Vectorised: three (B, L) sorts.

    Parameters
    ----------
    ratios, n_tokens, generator, batch_size, eligible
        As in :func:`random_subset_mask` (consumes two (B, L) and one (B,) ``torch.rand`` draws).
    mean_span
        Target mean span length in tokens, >= 1.

    Returns
    -------
    torch.Tensor
        (B, L) bool, True = masked.
    """
    gen = check_torch_generator("generator", generator, owner="span_mask")
    if not is_real(mean_span) or not mean_span >= 1:
        raise ValueError(f"span_mask: mean_span={mean_span!r} is not allowed: use a number >= 1 (tokens)")
    ratios, eligible = _ratios_and_eligible("span_mask", ratios, n_tokens, batch_size, eligible, gen)
    b, dev = ratios.numel(), gen.device
    n_elig = eligible.sum(1) if eligible is not None else torch.full((b,), n_tokens, device=dev)  # (B,)
    n_mask = _mask_counts(ratios, n_tokens, eligible)  # (B,)
    n_vis = n_elig - n_mask
    k = torch.round(n_mask / float(mean_span)).long().clamp(min=1)
    k = torch.where(n_mask > 0, torch.minimum(torch.minimum(k, n_mask), n_vis), 0)  # (B,) spans
    # span starts among the masked tokens: token 0 and k - 1 distinct cuts in {1, ..., n_mask - 1}
    starts = _random_cuts(n_mask - 1, k - 1, n_tokens, gen)  # (B, L)
    starts[:, 0] = True
    span_id = starts.long().cumsum(1) - 1  # (B, L), span index s of masked token j
    # gap composition: k - 1 distinct cuts c_1 < ... < c_{k-1} in {1, ..., n_vis - 1}, c_0 = 0
    cuts = _random_cuts(n_vis - 1, k - 1, n_tokens, gen)  # (B, L)
    slots = torch.arange(n_tokens, device=dev).expand_as(cuts)
    c = torch.where(cuts, slots, n_tokens).sort(dim=1).values  # (B, L), first k - 1 are the cuts
    c = torch.cat([torch.zeros_like(c[:, :1]), c], dim=1)  # (B, L + 1), c[:, s] = gap before span s
    offset = (torch.rand(b, generator=gen, device=dev, dtype=ratios.dtype) * n_elig).long()  # (B,) rotation
    j = torch.arange(n_tokens, device=dev).expand(b, n_tokens)
    pos = (j + c.gather(1, span_id.clamp(max=n_tokens)) + offset[:, None]) % n_elig.clamp(min=1)[:, None]
    pos = torch.where(j < n_mask[:, None], pos, n_tokens)  # (B, L) among eligible; unused j -> dummy column
    if eligible is not None:  # eligible slot -> real position (eligible positions in order first)
        order = torch.argsort((~eligible).to(torch.uint8), dim=1, stable=True)  # (B, L)
        pos = torch.where(pos < n_tokens, order.gather(1, pos.clamp(max=n_tokens - 1)), n_tokens)
    mask = torch.zeros((b, n_tokens + 1), dtype=torch.bool, device=dev)
    mask.scatter_(1, pos, True)
    return mask[:, :n_tokens]


@dataclass(frozen=True, eq=False)
class BlockMask:
    """A block mask and the rectangles of patches it is the union of (:func:`block_mask`).

    Models take it where they take a boolean mask (its ``mask`` field; :func:`r2mae_core.models.blocks.as_bool_mask`).

    Attributes
    ----------
    mask
        (B, L) bool, True = masked, row-major over the (H, W) patch grid (L = H·W, the patch order of
        :func:`r2mae_core.models.blocks.patchify`).
    blocks
        (B, K, 4) long: (top, left, height, width) of each rectangle placed, in the order placed; entries where
        ``block_valid`` is False are padding.
    block_valid
        (B, K) bool.
    grid
        (H, W).
    """

    mask: torch.Tensor
    blocks: torch.Tensor
    block_valid: torch.Tensor
    grid: tuple[int, int]


def _check_block_args(grid: object, min_block: object, max_block: object, aspect: object,
                      exact: object) -> tuple[int, int]:
    """Validate :func:`block_mask`'s shape arguments; return (H, W)."""
    if not isinstance(grid, Sequence) or isinstance(grid, str) or len(grid) != 2 \
            or not all(is_int(g) and g >= 1 for g in grid) or grid[0] * grid[1] < 2:
        raise ValueError(f"block_mask: grid={grid!r} is not allowed: use (H, W), two integers >= 1 with H·W >= 2 "
                         "(the patch grid)")
    if not is_real(min_block) or not min_block >= 1:
        raise ValueError(f"block_mask: min_block={min_block!r} is not allowed: use a number of patches >= 1")
    if max_block is not None and (not is_real(max_block) or not max_block >= min_block):
        raise ValueError(f"block_mask: max_block={max_block!r} is not allowed: use None or a number of patches "
                         f">= min_block={min_block!r}")
    if not isinstance(aspect, Sequence) or isinstance(aspect, str) or len(aspect) != 2 \
            or not all(is_real(a) and a > 0 for a in aspect) or not aspect[0] <= aspect[1]:
        raise ValueError(f"block_mask: aspect={aspect!r} is not allowed: use (low, high) with 0 < low <= high "
                         "(height/width of a block; BEiT: (0.3, 1/0.3))")
    if not isinstance(exact, bool):
        raise ValueError(f"block_mask: exact={exact!r} is not allowed: use True or False")
    return int(grid[0]), int(grid[1])


#: Consecutive failed placements after which BEiT's generator stops (its 10 attempts per block); with
#: ``exact=True`` :func:`block_mask` instead lowers the smallest block area to one patch and goes on.
BLOCK_PATIENCE = 10
_ROUNDS_PER_DRAW = 16  # block-placement rounds whose uniforms are drawn at once


def block_mask(ratios: torch.Tensor | np.ndarray | float, grid: Sequence[int], *, generator: torch.Generator,
               batch_size: int | None = None, min_block: float = 4, max_block: float | None = None,
               aspect: Sequence[float] = (0.3, 1 / 0.3), exact: bool = True) -> BlockMask:
    """Blockwise mask of BEiT (Bao et al. 2022, "BEiT: BERT Pre-Training of Image Transformers", ICLR, Alg. 1):
    rectangles of patches on the (H, W) grid until a row's target count is masked (I-JEPA's target blocks,
    Assran et al. 2023, are drawn the same way).

    Each row's target is n_mask = clamp(round(ratio·L), 1, L − 1) (module docstring; the count of
    :func:`random_subset_mask`, so a model sees the same number of visible tokens under either generator). A
    block draws its area s ~ U[min_block, min(remaining, max_block)] and aspect ratio r with log r ~
    U[log aspect[0], log aspect[1]]; height round(√(s·r)), width round(√(s/r)) (at most H and W; BEiT asks
    for strictly less, which leaves no 4×4 block on a 4×4 grid), top-left corner uniform over the positions
    where it fits. It is kept when it adds between 1 and ``remaining`` new patches (so the count never
    overshoots), else the row tries again; after :data:`BLOCK_PATIENCE` failures in a row BEiT stops short of
    its target (``exact=False``). With ``exact=True`` (default) the row goes on with blocks of area from 1
    patch up, and after 10·L + 100 rounds (not reached in practice; then every row has met its target) the
    rows still short get single-patch blocks at random unmasked positions: every row masks exactly n_mask
    patches, each of them inside a recorded block. All rows draw their blocks at once, one candidate per row
    per round (the uniforms are one (16, 4, B) ``torch.rand`` draw every 16 rounds).

    Parameters
    ----------
    ratios, batch_size, generator
        As in :func:`random_subset_mask` (per-row ratios in (0, 1), or one float with ``batch_size``).
    grid
        (H, W) patch grid; positions are row-major (token index i·W + j).
    min_block, max_block
        Smallest and largest block area in patches (BEiT: 16 and None on its 14×14 grid; 4 is the same 8% of a
        7×7 grid). None: no cap but the row's remaining count.
    aspect
        (low, high) range of the block's height/width ratio, drawn log-uniformly (BEiT: 0.3 to 1/0.3).
    exact
        Mask exactly n_mask patches per row (default), or stop as BEiT does (then at most n_mask).

    Returns
    -------
    BlockMask
        ``mask`` (B, H·W) bool (True = masked) and the rectangles placed.
    """
    gen = check_torch_generator("generator", generator, owner="block_mask")
    h_grid, w_grid = _check_block_args(grid, min_block, max_block, aspect, exact)
    n = h_grid * w_grid
    ratios, _ = _ratios_and_eligible("block_mask", ratios, n, batch_size, None, gen)
    target = _mask_counts(ratios, n, None)  # (B,)
    state = _BlockState(target, (h_grid, w_grid), gen, float(min_block),
                        float(n if max_block is None else max_block), (float(aspect[0]), float(aspect[1])))
    for _ in range(10 * n + 100):
        active = state.active(exact)
        if not active.any():
            break
        state.place(active, lower_area=exact)
    if exact:
        state.fill_single_patches()
    mask, blocks, valid = state.result(gen.device)
    return BlockMask(mask, blocks, valid, (h_grid, w_grid))


class _BlockState:
    """The rows' masks, counts, failure streaks and placed rectangles while :func:`block_mask` runs (numpy on
    the host: the arrays are tiny and a round is ~20 elementwise operations; the uniforms come from the torch
    generator, :data:`_ROUNDS_PER_DRAW` rounds per draw)."""

    def __init__(self, target: torch.Tensor, grid: tuple[int, int], gen: torch.Generator, min_block: float,
                 max_block: float, aspect: tuple[float, float]) -> None:
        b = target.numel()
        self.target, self.grid, self.gen, self.max_block = target.cpu().numpy(), grid, gen, max_block
        self.low_area = np.full(b, min_block)
        self.log_aspect = (np.log(aspect[0]), np.log(aspect[1]))
        self.mask = np.zeros((b, *grid), dtype=bool)
        self.count = np.zeros(b, dtype=np.int64)
        self.fails = np.zeros(b, dtype=np.int64)
        self.rows, self.cols = np.arange(grid[0]), np.arange(grid[1])
        self.placed: list[tuple[np.ndarray, np.ndarray]] = []
        self.uniforms = np.zeros((0, 4, b))

    def _uniforms(self) -> np.ndarray:
        if not len(self.uniforms):
            shape = (_ROUNDS_PER_DRAW, 4, self.target.size)
            self.uniforms = torch.rand(shape, generator=self.gen, device=self.gen.device,
                                       dtype=torch.float64).cpu().numpy()
        u, self.uniforms = self.uniforms[0], self.uniforms[1:]
        return u

    def active(self, exact: bool) -> np.ndarray:
        return (self.target > self.count) & (exact | (self.fails < BLOCK_PATIENCE))

    def place(self, active: np.ndarray, *, lower_area: bool) -> None:
        """One candidate block per active row; keep it where it adds 1..remaining new patches."""
        (h_grid, w_grid), b = self.grid, self.target.size
        u = self._uniforms()
        idx = np.flatnonzero(active)
        u = u[:, idx]
        remaining = self.target[idx] - self.count[idx]
        low = self.low_area[idx]
        area = low + (np.minimum(remaining, self.max_block) - low) * u[0]  # BEiT's uniform(min, max), also max < min
        ratio = np.exp(self.log_aspect[0] + (self.log_aspect[1] - self.log_aspect[0]) * u[1])
        h, w = np.rint(np.sqrt(area * ratio)).astype(np.int64), np.rint(np.sqrt(area / ratio)).astype(np.int64)
        fits = (h >= 1) & (w >= 1) & (h <= h_grid) & (w <= w_grid)
        h, w = h.clip(1, h_grid), w.clip(1, w_grid)
        top = np.floor(u[2] * (h_grid - h + 1)).astype(np.int64)
        left = np.floor(u[3] * (w_grid - w + 1)).astype(np.int64)
        in_rows = (self.rows >= top[:, None]) & (self.rows < (top + h)[:, None])  # (b, H)
        in_cols = (self.cols >= left[:, None]) & (self.cols < (left + w)[:, None])  # (b, W)
        rect = in_rows[:, :, None] & in_cols[:, None, :]  # (b, H, W)
        new = (rect & ~self.mask[idx]).sum((1, 2))
        ok = fits & (new > 0) & (new <= remaining)
        self.mask[idx[ok]] |= rect[ok]
        self.count[idx] += np.where(ok, new, 0)
        self.fails[idx] = np.where(ok, 0, self.fails[idx] + 1)
        if lower_area:
            self.low_area = np.where(self.fails >= BLOCK_PATIENCE, 1.0, self.low_area)
        rects, kept = np.zeros((b, 1, 4), np.int64), np.zeros((b, 1), bool)
        rects[idx, 0], kept[idx, 0] = np.stack([top, left, h, w], axis=1), ok
        self.placed.append((rects, kept))

    def fill_single_patches(self) -> None:
        """Rows still short of their target get single-patch blocks at uniformly random unmasked positions."""
        short = self.target - self.count  # (B,)
        if not (short > 0).any():
            return
        b, n = self.mask.shape[0], self.grid[0] * self.grid[1]
        flat = self.mask.reshape(b, n)
        noise = torch.rand((b, n), generator=self.gen, device=self.gen.device, dtype=torch.float64).cpu().numpy()
        order = np.argsort(np.where(flat, 2.0, noise), axis=1, kind="stable")  # unmasked first, shuffled
        k = int(short.max())
        pos, ok = order[:, :k], np.arange(k)[None] < short[:, None]
        np.put_along_axis(flat, pos, ok | np.take_along_axis(flat, pos, 1), 1)
        self.count += short.clip(min=0)
        ones = np.ones_like(pos)
        self.placed.append((np.stack([pos // self.grid[1], pos % self.grid[1], ones, ones], axis=2), ok))

    def result(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The (B, L) mask, the (B, K, 4) rectangles in the order placed and their (B, K) validity (padding
        last), as tensors on ``device``."""
        b = self.mask.shape[0]
        rects = np.concatenate([r for r, _ in self.placed], axis=1) if self.placed else np.zeros((b, 0, 4), int)
        valid = np.concatenate([v for _, v in self.placed], axis=1) if self.placed else np.zeros((b, 0), bool)
        order = np.argsort(~valid, axis=1, kind="stable")
        k = int(valid.sum(1).max()) if b else 0
        rects = np.take_along_axis(rects, order[:, :k, None], 1)
        valid = np.take_along_axis(valid, order[:, :k], 1)
        return (torch.from_numpy(self.mask.reshape(b, -1)).to(device), torch.from_numpy(rects).to(device),
                torch.from_numpy(valid).to(device))

def bert_corruption(tokens: torch.Tensor, mask: torch.Tensor, *, mask_token_id: int, vocab_size: int,
                    generator: torch.Generator, replace_probs: Sequence[float] = (0.8, 0.1, 0.1),
                    random_token_low: int = 0, special_token_ids: Sequence[int] = ()) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """BERT 80/10/10 corruption of masked positions (Devlin et al. 2019, §3.1).

    Of the masked positions, a fraction p_mask becomes ``mask_token_id``, p_random a token drawn uniformly
    from [random_token_low, vocab_size) minus ``special_token_ids``, and p_keep stays unchanged
    (``replace_probs = (p_mask, p_random, p_keep)``, summing to 1). Returns ``(corrupted, labels)``, both
    (B, L) long; ``labels`` is the original token where masked and ``IGNORE_INDEX`` (−100) elsewhere.

    Parameters
    ----------
    tokens
        (B, L) integer token ids.
    mask
        (B, L) bool, True = masked (from any mask generator).
    mask_token_id, vocab_size
        The [MASK] id and the vocabulary size (``0 <= mask_token_id < vocab_size``).
    generator
        ``torch.Generator``; consumes one (B, L) ``torch.rand`` and one (B, L) ``torch.randint`` draw.
    replace_probs
        (p_mask, p_random, p_keep), default BERT's (0.8, 0.1, 0.1).
    random_token_low, special_token_ids
        Random replacements are drawn from [random_token_low, vocab_size) without ``special_token_ids``.

    Returns
    -------
    tuple of torch.Tensor
        ``(corrupted, labels)``, both (B, L) with the dtype of ``tokens``.
    """
    gen = check_torch_generator("generator", generator, owner="bert_corruption")
    if not isinstance(tokens, torch.Tensor) or tokens.dtype.is_floating_point or tokens.dtype == torch.bool \
            or tokens.is_complex():
        got = tokens.dtype if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"bert_corruption: tokens of dtype {got} is not allowed: use an integer tensor of "
                         "token ids")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != tokens.shape:
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"bert_corruption: mask={got} is not allowed: use a bool tensor of shape "
                         f"{tuple(tokens.shape)} (tokens.shape)")
    if not is_int(vocab_size) or vocab_size < 1:
        raise ValueError(f"bert_corruption: vocab_size={vocab_size!r} is not allowed: use an integer >= 1")
    if not is_int(mask_token_id) or not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"bert_corruption: mask_token_id={mask_token_id!r} is not allowed: use an "
                         f"integer in [0, vocab_size={vocab_size})")
    if not is_int(random_token_low) or not 0 <= random_token_low < vocab_size:
        raise ValueError(f"bert_corruption: random_token_low={random_token_low!r} is not allowed: use an "
                         f"integer in [0, vocab_size={vocab_size})")
    probs = tuple(replace_probs) if isinstance(replace_probs, Sequence) else ()
    if len(probs) != 3 or not all(is_real(p) and p >= 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"bert_corruption: replace_probs={replace_probs!r} is not allowed: use 3 numbers "
                         ">= 0 (mask, random, keep) summing to 1")
    if isinstance(special_token_ids, str | bytes) or not all(is_int(s) for s in special_token_ids):
        raise ValueError(f"bert_corruption: special_token_ids={special_token_ids!r} is not allowed: use a "
                         "sequence of integer token ids")
    pool = torch.arange(random_token_low, vocab_size, device=gen.device)
    pool = pool[~torch.isin(pool, torch.tensor([int(s) for s in special_token_ids], dtype=torch.long,
                                                device=gen.device))]
    if pool.numel() == 0:
        raise ValueError(f"bert_corruption: special_token_ids={special_token_ids!r} is not allowed: it "
                         f"removes every token of [{random_token_low}, {vocab_size}) from the random pool")
    tokens, mask = tokens.to(gen.device), mask.to(gen.device)
    u = torch.rand(tokens.shape, generator=gen, device=gen.device, dtype=torch.float64)  # (B, L)
    random_tokens = pool[torch.randint(pool.numel(), tokens.shape, generator=gen, device=gen.device)]
    use_mask, use_random = mask & (u < probs[0]), mask & (u >= probs[0]) & (u < probs[0] + probs[1])
    corrupted = torch.where(use_mask, torch.full_like(tokens, int(mask_token_id)), tokens)
    corrupted = torch.where(use_random, random_tokens.to(tokens.dtype), corrupted)
    labels = torch.where(mask, tokens, torch.full_like(tokens, IGNORE_INDEX))
    return corrupted, labels
