"""Train k masked models of one architecture at once: stacked weights, one vmapped step, one optimizer.

A small model leaves a GPU almost idle (on one H200 a ViT-MAE of width 64 at batch 256 reaches under 0.1% of
the bf16 matrix peak, ``results/gpu_checks/``), and on a CPU the per-step overhead of a small model dominates.
Training the runs of a sweep that share an architecture as one *ensemble* turns k small steps into one wider
step: the members' weights are stacked along a new leading dimension (``torch.func.stack_module_state``), the
step is ``torch.vmap`` of the model's ``functional_call`` over that dimension, and one AdamW updates the stacked
tensors (AdamW is elementwise, so this is k independent AdamWs with the same hyperparameters).

Each member is exactly the run :func:`r2mae_core.train.pretrain` would make with its own seed and sampler: its
own initialisation (the models passed in), its own data order (``SeedSequence([data_seed, epoch])``), its own
mask generator from which its ratios and masks are drawn in the same order, its own gradient clipping (the global
norm over its own parameters) and its own history. The members' visible-token counts can differ (different
ratios): each member's :class:`~r2mae_core.models.blocks.TokenMask` is padded to the group's largest count, the
padding slots are masked out of attention (as the models already do for per-sample ratios) and its masked
positions point at the mask-token slot of the padded layout, so each member's loss is the one it has alone.
Token models (:class:`r2mae_core.mlm.MLMStep`) see their whole corrupted sequence; their labelled positions are
passed as flat indices padded to the group's largest count, the padding without loss.
Attention runs on PyTorch's math backend: the fused CPU and CUDA attention kernels have no batching rule for
``vmap`` (it would loop over the members), the math backend's matrix products batch. The result equals the k
runs trained one by one up to floating-point rounding: batched matrix products and the
key-padding mask change the order of the sums (``tests/test_ensemble.py`` states the measured tolerance).

On CUDA use ``compile=True`` (``torch.compile`` of the vmapped step, visible counts bucketed as in ``pretrain``):
eager vmap with bf16 autocast fails in PyTorch 2.11's attention backward, the compiled step runs (measured on an
H200, ``results/gpu_checks/2026-12-04_nvidia-h200.json``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ._rng import check_seed, child_seeds, torch_generator
from .losses import uniformity_loss
from .models.blocks import TokenMask, as_token_mask, round_up_to_bucket
from .train import (
    _FLUSH_EVERY,
    HISTORY_COLUMNS,
    IMAGE_MASKS,
    TrainConfig,
    TrainResult,
    _as_data,
    _batch,
    _epoch_perm,
    _save,
    adamw,
    history_frame,
    image_mask,
    lr_schedule,
    run_fingerprint,
)

__all__ = ["stack_members", "pad_token_mask", "ImageMasking", "pretrain_ensemble"]


def stack_members(models: Sequence[nn.Module], device: str | torch.device = "cpu"):
    """Stacked parameters and buffers of ``models`` and a stateless copy of their architecture.

    Returns
    -------
    params, buffers, base
        ``{name: (k, ...)}`` leaf tensors on ``device`` (parameters require grad), the same for buffers, and a
        copy of ``models[0]`` on the ``meta`` device to call with :func:`torch.func.functional_call`.

    Raises
    ------
    ValueError
        No models, or models whose parameters differ in names or shapes (another architecture).
    """
    if not models:
        raise ValueError("models=[] is not allowed: give at least one model")
    shapes = [{n: tuple(p.shape) for n, p in m.named_parameters()} for m in models]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("models of different architectures cannot form an ensemble: their parameters differ")
    params, buffers = torch.func.stack_module_state(list(models))
    params = {n: p.detach().to(device).requires_grad_(True) for n, p in params.items()}
    buffers = {n: b.to(device) for n, b in buffers.items()}
    return params, buffers, copy.deepcopy(models[0]).to("meta")


def pad_token_mask(tm: TokenMask, K: int) -> TokenMask:
    """``tm`` with its visible slots padded to ``K``: new slots are invalid and masked positions point at slot
    ``K`` (the mask-token slot of the padded layout), so a model computes the same loss from either."""
    k0 = tm.ids_keep.shape[1]
    if K < k0:
        raise ValueError(f"K={K} is not allowed: the mask already has {k0} visible slots")
    if K == k0:
        return tm
    inverse = torch.where(tm.inverse == k0, torch.full_like(tm.inverse, K), tm.inverse)
    return TokenMask(tm.mask, F.pad(tm.ids_keep, (0, K - k0)), F.pad(tm.keep_valid, (0, K - k0), value=False),
                     inverse, True)


@dataclass(frozen=True)
class ImageMasking:
    """The member step of masked image models (the default of :func:`pretrain_ensemble`): each member masks its
    images with an exact-count mask at its ratios (:func:`r2mae_core.train.image_mask`, as
    :func:`r2mae_core.train.mae_step`: a random subset, or with ``generator="block"`` rectangles of patches);
    the members' :class:`~r2mae_core.models.blocks.TokenMask` are padded to the group's largest visible count. A
    step for another family offers the same three methods (e.g. :class:`r2mae_core.mlm.MLMStep`)."""

    generator: str = "random"

    def __post_init__(self) -> None:
        if self.generator not in IMAGE_MASKS:
            raise ValueError(f"ImageMasking: generator={self.generator!r} is not allowed: use one of "
                             f"{', '.join(IMAGE_MASKS)}")

    def draw(self, model, batch: Tensor, ratios: Tensor, generator: torch.Generator, progress: float):
        """One member's inputs: its images and its mask."""
        return batch, as_token_mask(image_mask(model, ratios, generator, self.generator))

    @staticmethod
    def stack(draws, buckets: int = 0) -> tuple[tuple[Tensor, ...], bool]:
        """Images ``(k, B, ...)`` and the mask's fields ``(k, B, ...)``, visible slots padded to the largest count
        (rounded up to a multiple of ``ceil(L / buckets)`` when ``buckets`` > 0, as :func:`as_token_mask`'s
        ``bucket``); the static part is whether the attention needs a key-padding mask."""
        K = max(tm.ids_keep.shape[1] for _, tm in draws)
        if buckets:
            L = draws[0][1].mask.shape[1]
            K = round_up_to_bucket(max(K, 1), math.ceil(L / buckets), L)
        masks = [pad_token_mask(tm, K) for _, tm in draws]
        padded = bool(buckets) or any(tm.padded for tm in masks)
        fields = tuple(torch.stack([getattr(tm, f) for tm in masks]) for f in ("mask", "ids_keep", "keep_valid",
                                                                                 "inverse"))
        return (torch.stack([x for x, _ in draws]), *fields), padded

    @staticmethod
    def call(model, tensors: tuple[Tensor, ...], static: bool):
        """The member's forward on its slice of :meth:`stack`'s tensors (``model`` is the functional call)."""
        x, mask, ids_keep, keep_valid, inverse = tensors
        return model(x, TokenMask(mask, ids_keep, keep_valid, inverse, static))


def _clip_per_member(params: dict[str, Tensor], max_norm: float) -> None:
    """Scale each member's gradients so that their global L2 norm is at most ``max_norm`` (as
    ``clip_grad_norm_``: factor ``max_norm / (norm + 1e-6)`` clamped at 1)."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    norms = torch.stack([g.detach().float().pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()  # (k,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.ndim - 1))).to(g.dtype))


def _flush(pending: list[Tensor], hist: list[dict], first_step: int, uniformity: bool) -> None:
    """Copy the device losses of the steps since the last flush into the members' histories (one host sync)."""
    values = torch.stack(pending).cpu().numpy()  # (steps, 2, k)
    pending.clear()
    for m, h in enumerate(hist):
        bad = [first_step + j for j, v in enumerate(values[:, 0, m]) if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"pretrain_ensemble: non-finite loss of member {m} at step {bad[0]}")
        h["loss"][first_step:] = values[:, 0, m].tolist()
        if uniformity:
            h["uniformity"][first_step:] = values[:, 1, m].tolist()


def _resume(ckpt: Path, prints: list[dict], params: dict[str, Tensor], opt, sched,
            mask_gens: list[torch.Generator]) -> tuple[int, float, list[dict]]:
    """Load a group checkpoint into the training state; returns its step, seconds and histories.

    Raises
    ------
    ValueError
        The checkpoint holds other members (their fingerprints differ).
    """
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if state["fingerprints"] != prints:
        raise ValueError(f"checkpoint_path={str(ckpt)!r} holds another ensemble (its members' fingerprints "
                         "differ): use another path or remove it")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state["params"][name])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    for gen, gen_state in zip(mask_gens, state["mask_generators"], strict=True):
        gen.set_state(gen_state)
    hist = [{c: list(h[c]) for c in HISTORY_COLUMNS} for h in state["history"]]
    return int(state["step"]), float(state["seconds"]), hist


class _Member:
    """One member's data order and mask generator (the runs one by one derive both from the run's seed)."""

    def __init__(self, data_seed: int, mask_seed: int):
        self.data_seed = data_seed
        self.mask_gen = torch_generator(mask_seed)
        self.epoch, self.perm = -1, None

    def rows(self, step_i: int, per_epoch: int, batch_size: int, n: int) -> Tensor:
        """The data rows of step ``step_i`` (the epoch's permutation drawn once per epoch)."""
        epoch, i = divmod(step_i, per_epoch)
        if self.epoch != epoch:
            self.epoch, self.perm = epoch, _epoch_perm(self.data_seed, epoch, n)
        return self.perm[i * batch_size:(i + 1) * batch_size]


def _draw_members(members: list[_Member], samplers: Sequence, steps_of: Sequence, model: nn.Module, data,
                  batch_size: int, *, step_i: int, steps: int) -> tuple[list, list[float]]:
    """Each member's batch, ratios and masking draw (with its own step's ``draw``) at step ``step_i``, in member
    order; and its mean ratio."""
    draws, ratio_means = [], []
    for member, sampler, step in zip(members, samplers, steps_of, strict=True):
        batch = _batch(data, member.rows(step_i, len(data) // batch_size, batch_size, len(data)))
        ratios = sampler.sample(batch_size, generator=member.mask_gen, progress=step_i / steps)
        draws.append(step.draw(model, batch, ratios, member.mask_gen, step_i / steps))
        ratio_means.append(float(ratios.float().mean()))
    return draws, ratio_means


def _vmapped_steps(step, base: nn.Module, uniformity_weight: float, compile: bool):
    """``step_fn(static)``: the members' loss and uniformity term as one vmapped function of the stacked weights,
    built (and compiled, with ``compile``) once per static masking shape."""
    def member_step(p, b, *tensors, static):
        out = step.call(lambda *args: torch.func.functional_call(base, (p, b), args), tensors, static)
        unif = uniformity_loss(out.latent) if uniformity_weight else torch.zeros((), device=out.loss.device)
        return out.loss + uniformity_weight * unif, unif

    built = {}

    def step_fn(static):
        if static not in built:
            fn = torch.vmap(lambda p, b, *t: member_step(p, b, *t, static=static))
            built[static] = torch.compile(fn, dynamic=False) if compile else fn
        return built[static]

    return step_fn


def _append_rows(hist: list[dict], shared: dict, ratio_means: list[float]) -> None:
    """One history row per member (loss and uniformity filled in later by :func:`_flush`)."""
    for h, ratio_mean in zip(hist, ratio_means, strict=True):
        row = {**shared, "loss": math.nan, "ratio_mean": ratio_mean, "uniformity": math.nan}
        for c in HISTORY_COLUMNS:
            h[c].append(row[c])


def _unstacked(models: Sequence[nn.Module], params: dict[str, Tensor], hist: list[dict], steps: int,
               device: torch.device) -> list[TrainResult]:
    """Each member's trained weights loaded back into its model, with its history."""
    results = []
    for m, model in enumerate(models):
        state = {name: p[m].detach().to("cpu") for name, p in params.items()}
        model.load_state_dict({**model.state_dict(), **state})
        results.append(TrainResult(model.to(device).eval(), history_frame(hist[m]), steps, 0))
    return results


def pretrain_ensemble(models: Sequence[nn.Module], data, *, samplers: Sequence, seeds: Sequence[int],
                      train: TrainConfig, uniformity_weight: float = 0.0, step=None,
                      device: str | torch.device = "cpu", amp: bool | None = None, compile: bool = False,
                      compile_buckets: int = 8, checkpoint_path: str | Path | None = None) -> list[TrainResult]:
    """Pretrain ``models`` (one architecture) together; member ``m`` is the run ``pretrain(models[m], data,
    sampler=samplers[m], seed=seeds[m], train=train, ...)`` would make (module docstring).

    Parameters
    ----------
    models
        k masked models of one architecture (``forward(x, mask) -> MAEOutput``), each initialised with its own
        seed (:func:`r2mae_core.models.build_model`). Trained in place.
    data
        As for :func:`~r2mae_core.train.pretrain`: uint8 images or a float tensor, shared by the members (each
        draws its own order).
    samplers, seeds
        One ratio sampler and one seed per member.
    train
        The schedule (:class:`~r2mae_core.train.TrainConfig`), the same for every member; ``grad_clip`` applies
        to each member's own gradient norm.
    uniformity_weight, device, amp, compile, compile_buckets
        As for :func:`~r2mae_core.train.pretrain`.
    checkpoint_path
        With ``train.checkpoint_every`` > 0, the group's state (stacked weights, optimizer, schedule, each
        member's mask generator and history) is saved here every ``checkpoint_every`` steps (atomically), and
        an existing checkpoint of the same members (each member's
        :func:`~r2mae_core.train.run_fingerprint`, in order) is continued: on the CPU the result is the
        uninterrupted one bit for bit. Removed when the group finishes (the caller stores the members).
    step
        How each member masks its batch and calls the model: an object with ``draw``, ``stack`` and ``call``
        (:class:`ImageMasking`, the default, or :class:`r2mae_core.mlm.MLMStep` for token models); it must draw
        from the member's generator exactly as the ``step_fn`` of the runs one by one does. A list gives each
        member its own step (their ``draw`` differ, e.g. random or block masks; ``stack`` and ``call`` are the
        first's).

    Returns
    -------
    list[TrainResult]
        One per member, in order: its model (trained weights, eval mode) and its history.
    """
    k = len(models)
    if not (len(samplers) == len(seeds) == k) or k == 0:
        raise ValueError(f"models={k}, samplers={len(samplers)}, seeds={len(seeds)}: give one sampler and one "
                         "seed per model (at least one model)")
    seeds = [check_seed(s) for s in seeds]
    data = _as_data(data)
    n = len(data)
    steps = train.total_steps(n)
    device = torch.device(device)
    amp = (device.type == "cuda") if amp is None else bool(amp)
    member_steps = list(step) if isinstance(step, Sequence) else [step or ImageMasking()] * k
    if len(member_steps) != k:
        raise ValueError(f"step: {len(member_steps)} steps for {k} models is not allowed: give one step, or one "
                         "per model")
    step = member_steps[0]

    params, buffers, base = stack_members(models, device)
    opt = adamw(params, train, member_ndim=1)
    sched = lr_schedule(opt, train, steps)
    members = [_Member(*child_seeds(s, 2)) for s in seeds]
    step_fn = _vmapped_steps(step, base, uniformity_weight, compile)
    hist = [{c: [] for c in HISTORY_COLUMNS} for _ in range(k)]
    pending: list[Tensor] = []
    prints = [run_fingerprint(m, sp, train, n_data=n, seed=s, uniformity_weight=uniformity_weight)
              for m, sp, s in zip(models, samplers, seeds, strict=True)]
    ckpt = Path(checkpoint_path) if checkpoint_path is not None and train.checkpoint_every else None
    start, seconds_before = 0, 0.0
    if ckpt is not None and ckpt.exists():
        start, seconds_before, hist = _resume(ckpt, prints, params, opt, sched, [m.mask_gen for m in members])
    t0 = time.perf_counter()
    for step_i in range(start, steps):
        epoch = step_i // (n // train.batch_size)
        draws, ratio_means = _draw_members(members, samplers, member_steps, models[0], data, train.batch_size,
                                           step_i=step_i, steps=steps)
        tensors, static = step.stack(draws, compile_buckets if compile else 0)
        tensors = [t.to(device, non_blocking=True) for t in tensors]
        cur_lr = opt.param_groups[0]["lr"]
        with sdpa_kernel([SDPBackend.MATH]), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            losses, unifs = step_fn(static)(params, buffers, *tensors)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
        if train.grad_clip is not None:
            _clip_per_member(params, train.grad_clip)
        opt.step()
        sched.step()
        pending.append(torch.stack([losses.detach().float(), unifs.detach().float()]))  # (2, k)
        elapsed = seconds_before + time.perf_counter() - t0
        _append_rows(hist, {"step": step_i, "epoch": epoch, "lr": cur_lr, "seconds": elapsed}, ratio_means)
        due = ckpt is not None and (step_i + 1) % train.checkpoint_every == 0 and step_i + 1 < steps
        if len(pending) >= _FLUSH_EVERY or step_i + 1 == steps or due:
            _flush(pending, hist, step_i + 1 - len(pending), bool(uniformity_weight))
        if due:
            _save(ckpt, {"format": 1, "fingerprints": prints, "step": step_i + 1, "seconds": elapsed,
                         "params": {name: p.detach().cpu() for name, p in params.items()},
                         "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "mask_generators": [m.mask_gen.get_state() for m in members], "history": hist})
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    return _unstacked(models, params, hist, steps, device)

