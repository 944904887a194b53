"""One pretraining loop for every model family (images, text, DNA and gene expression).

The loop owns what is common: data order, the ratio sampler, AdamW with linear warmup + cosine decay,
bf16 autocast and ``torch.compile`` on CUDA, gradient clipping, atomic checkpoints with exact resume,
the history table and the progress bar. What is model-specific sits behind a small hook,
``step_fn(model, batch, ratios, generator, progress) -> loss | MAEOutput`` (``progress`` = step / total, for
steps that change over training such as a span curriculum); the default :func:`mae_step` draws an
exact-count random subset mask per row (``masking.random_subset_mask``; ``mask_generator="block"``: rectangles of
patches, ``masking.block_mask``) and calls ``model(x, mask)``.

Determinism: every random draw comes from generators derived from ``seed`` (epoch permutations from
``SeedSequence([data_seed, epoch])``, masks and ratios from one CPU ``torch.Generator`` whose state is
checkpointed; model init is seeded by :func:`r2mae_core.models.build_model`). On CPU the same seed gives
the same history bit for bit, and an interrupted run resumed from its checkpoint ends with the same
weights and history as an uninterrupted one.

``torch.compile`` and random ratios: a new visible-token count is a new input shape, and a per-step
ratio would recompile the encoder again and again. With ``compile=True`` the default step pads the
visible tokens up to a bucket of ``ceil(L / compile_buckets)`` tokens (padding slots are masked out of
attention, so the loss is unchanged): at most ``compile_buckets`` shapes are ever compiled (≤ 8 by
default, dynamo's default recompile limit), and the sampled ratios themselves are not altered.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import distributed, masking
from ._rng import check_seed, child_seeds, torch_generator
from .losses import uniformity_loss
from .models.blocks import MAEOutput, as_token_mask, images_to_tensor

__all__ = ["pretrain", "TrainConfig", "mae_step", "image_mask", "IMAGE_MASKS", "TrainResult", "StepFn",
           "warmup_cosine", "adamw", "lr_schedule",
           "history_frame", "HISTORY_COLUMNS", "run_fingerprint", "save_finished"]

#: ``step_fn(model, batch, ratios, generator, progress)``: the model-specific part of a training step
#: (``progress`` = step / total steps, in [0, 1)).
StepFn = Callable[[nn.Module, Any, Tensor, torch.Generator, float], "Tensor | MAEOutput"]
HISTORY_COLUMNS = ("step", "epoch", "loss", "ratio_mean", "lr", "uniformity", "seconds")
_FLUSH_EVERY = 50  # steps between host syncs of the loss (keeps the GPU queue full)


@dataclass
class TrainResult:
    """Outcome of :func:`pretrain`.

    Attributes
    ----------
    model
        The trained (uncompiled) model, in eval mode.
    history
        One row per step: ``step`` (0-based), ``epoch``, ``loss`` (total, incl. uniformity term),
        ``ratio_mean`` (mean sampled ratio), ``lr``, ``uniformity`` (NaN when off), ``seconds`` (cumulative
        training wall time, across resumes; on CUDA exact only every 50 steps, where the loop syncs).
    total_steps
        Steps of the schedule.
    resumed_from
        Step the run restarted from (0 for a fresh run).
    """

    model: nn.Module
    history: pd.DataFrame
    total_steps: int
    resumed_from: int = 0


#: The mask generators of image models: ``random`` = exact-count random subset (MAE), ``block`` = exact-count
#: rectangles of patches on the model's patch grid (BEiT's blockwise masking). Both mask the same count per row.
IMAGE_MASKS = ("random", "block")


def image_mask(model: nn.Module, ratios: Tensor, generator: torch.Generator, kind: str = "random"):
    """The mask of an image model's batch at ``ratios``: :func:`r2mae_core.masking.random_subset_mask` over its
    ``num_patches`` tokens (``kind="random"``) or :func:`r2mae_core.masking.block_mask` on its ``config.grid``
    (``kind="block"``); both mask clamp(round(ratio · L), 1, L − 1) patches per row."""
    if kind == "block":
        return masking.block_mask(ratios, model.config.grid, generator=generator)
    if kind == "random":
        return masking.random_subset_mask(ratios, model.num_patches, generator=generator)
    raise ValueError(f"mask_generator={kind!r} is not allowed: use one of {', '.join(IMAGE_MASKS)}")


def mae_step(model: nn.Module, batch: Tensor, ratios: Tensor, generator: torch.Generator, progress: float = 0.0,
             *, bucket: int = 1, mask: str = "random") -> MAEOutput:
    """Default step: an exact-count mask per row (:func:`image_mask`: MAE's random subset by default, or blocks),
    then ``model(x, mask)``.

    The mask is drawn on the CPU from ``generator`` (so it is identical on every device) and moved to
    the batch's device. ``bucket`` pads the visible tokens for ``torch.compile`` (see module docstring);
    ``progress`` is not used (the mask does not change over training).
    """
    return model(batch, as_token_mask(image_mask(model, ratios, generator, mask), bucket=bucket).to(batch.device))


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warmup ``(s + 1) / w`` for ``s < w``, then cosine decay to ``min_ratio``.

    .. math:: f(s) = m + (1 - m)\\,\\tfrac12\\left(1 + \\cos\\frac{\\pi (s - w)}{T - w}\\right),
              \\quad s \\ge w

    (the per-iteration schedule of MAE, He et al. 2022, appendix A.1).
    """
    if step < warmup:
        return (step + 1) / warmup
    frac = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * frac))


def _as_data(data):
    if isinstance(data, np.ndarray | Tensor):
        return images_to_tensor(data) if data.dtype in (np.uint8, torch.uint8) else torch.as_tensor(data)
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return data
    raise ValueError(f"data of type {type(data).__name__} is not allowed: use an array/tensor or a Dataset")


def _batch(data, idx: Tensor):
    if isinstance(data, Tensor):
        return data[idx]
    return torch.utils.data.default_collate([data[int(i)] for i in idx])


def _to(batch, device):
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def _epoch_perm(data_seed: int, epoch: int, n: int) -> Tensor:
    s = np.random.SeedSequence([data_seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)
    return torch.randperm(n, generator=torch_generator(int(s)))


def _describe(obj) -> str:
    if is_dataclass(obj):
        return f"{type(obj).__name__}({', '.join(f'{f.name}={getattr(obj, f.name)!r}' for f in fields(obj))})"
    return type(obj).__name__


def history_frame(hist: dict[str, list]) -> pd.DataFrame:
    """The history table of a run from its per-step lists (columns :data:`HISTORY_COLUMNS`, typed)."""
    return pd.DataFrame(hist, columns=list(HISTORY_COLUMNS)).astype(
        {"step": "int64", "epoch": "int64", "loss": "float64", "ratio_mean": "float64", "lr": "float64",
         "uniformity": "float64", "seconds": "float64"})


@dataclass(frozen=True)
class TrainConfig:
    """The pretraining schedule of a run: its length, batch, AdamW and learning-rate schedule, clipping and
    checkpoint interval (the same for every member of an ensemble).

    Attributes
    ----------
    steps, epochs
        Length of training: give exactly one (``epochs`` counts full passes; the last partial batch of an epoch
        is dropped).
    batch_size, lr, weight_decay
        AdamW (betas 0.9, 0.95 as MAE; no decay on biases and norm weights, i.e. parameters with ``ndim <= 1``).
        ``lr`` is the absolute peak rate (MAE's rule: ``1.5e-4 · batch_size / 256``).
    warmup, min_lr_ratio
        Linear warmup over ``warmup`` (a fraction of the steps if < 1, else a number of steps), then cosine
        decay to ``min_lr_ratio · lr`` (:func:`warmup_cosine`).
    grad_clip
        Max global gradient norm (None: no clipping).
    checkpoint_every
        Steps between resumable checkpoints when a checkpoint path is given (0: at the end only).
    """

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"steps={self.steps!r}, epochs={self.epochs!r} is not allowed: give exactly one of them")
        for name in ("steps", "epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r} is not allowed: use an integer >= 1")
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"checkpoint_every={every!r} is not allowed: use an integer >= 0")
        for name in ("lr", "weight_decay", "warmup", "min_lr_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
                    or not math.isfinite(value):
                raise ValueError(f"{name}={value!r} is not allowed: use a finite number")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.min_lr_ratio <= 1 or self.warmup < 0:
            raise ValueError(f"lr={self.lr}, weight_decay={self.weight_decay}, min_lr_ratio={self.min_lr_ratio}, "
                             f"warmup={self.warmup}: need lr > 0, weight_decay >= 0, 0 <= min_lr_ratio <= 1, "
                             "warmup >= 0")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip={self.grad_clip!r} is not allowed: use a number > 0 or None")

    def total_steps(self, n_data: int) -> int:
        """Steps of the schedule on ``n_data`` examples (``batch_size`` must fit in the data)."""
        if not self.batch_size <= n_data:
            raise ValueError(f"batch_size={self.batch_size!r} is not allowed: use 1..{n_data} (the dataset size)")
        return self.steps if self.steps is not None else self.epochs * (n_data // self.batch_size)

    def warmup_steps(self, total: int) -> int:
        """Warmup length in steps: ``round(warmup · total)`` for a fraction, else ``warmup``."""
        return int(round(self.warmup * total)) if self.warmup < 1 else int(self.warmup)

    def capped(self, n_data: int) -> TrainConfig:
        """The same schedule with the batch capped at ``n_data`` examples."""
        return replace(self, batch_size=min(self.batch_size, n_data))


def run_fingerprint(model: nn.Module, sampler, train: TrainConfig, *, n_data: int, seed: int,
                    uniformity_weight: float) -> dict:
    """What a checkpoint must match to be resumed or reloaded: the schedule, data size, seed, sampler and model."""
    total = train.total_steps(n_data)
    return {"total_steps": total, "batch_size": train.batch_size, "n_data": n_data, "lr": train.lr, "seed": seed,
            "weight_decay": train.weight_decay, "warmup": train.warmup_steps(total),
            "min_lr_ratio": train.min_lr_ratio, "uniformity_weight": uniformity_weight,
            "sampler": _describe(sampler), "model": _describe(getattr(model, "config", model))}


def save_finished(path: str | Path, fingerprint: dict, model: nn.Module, history: pd.DataFrame) -> None:
    """Store a finished run's weights and history (no optimizer state) where :func:`pretrain` reloads them.

    For runs trained elsewhere than :func:`pretrain` (an ensemble member): ``pretrain`` with the same run and
    ``checkpoint_path=path`` then returns these weights without training.
    """
    hist = {c: history[c].tolist() for c in HISTORY_COLUMNS}
    _save(Path(path), {"format": 1, "fingerprint": fingerprint, "step": fingerprint["total_steps"],
                       "seconds": float(history["seconds"].iloc[-1]) if len(history) else 0.0,
                       "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                       "optimizer": None, "scheduler": None, "mask_generator": None, "history": hist})


def _write_checkpoint(path: Path, history: _History, *, fingerprint: dict, step: int, seconds: float,
                      model: nn.Module, opt: torch.optim.Optimizer, sched, mask_gen: torch.Generator) -> None:
    """Save a run's state after ``step`` steps for :func:`pretrain` to resume. Under data parallelism the ranks'
    states are equal and rank 0 writes; every rank waits for the write, so that none goes on (and may resume
    from the file) before it is there."""
    history.flush()
    if distributed.is_main():
        _save(path, {"format": 1, "fingerprint": fingerprint, "step": step, "seconds": seconds,
                     "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "mask_generator": mask_gen.get_state(), "history": history.rows})
    distributed.barrier()


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a reader sees the old or the new checkpoint, never half of one
    finally:
        Path(tmp).unlink(missing_ok=True)


def adamw(params: dict[str, Tensor] | list[Tensor], train: TrainConfig, *, member_ndim: int = 0) -> torch.optim.AdamW:
    """MAE's AdamW (betas 0.9, 0.95): weight decay on matrices only, none on biases and norm weights.

    ``member_ndim`` leading dimensions are not the parameter's own (1 for stacked ensemble weights).
    """
    params = list(params.values()) if isinstance(params, dict) else list(params)
    decay = [p for p in params if p.requires_grad and p.ndim - member_ndim > 1]
    no_decay = [p for p in params if p.requires_grad and p.ndim - member_ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": train.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=train.lr, betas=(0.9, 0.95))


def lr_schedule(opt: torch.optim.Optimizer, train: TrainConfig, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step warmup + cosine multiplier of ``opt``'s rate (:func:`warmup_cosine`)."""
    warm = train.warmup_steps(total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, warm, train.min_lr_ratio))


class _History:
    """Per-step history; device losses are copied to the host every :data:`_FLUSH_EVERY` steps (one sync)."""

    def __init__(self, rows: dict[str, list] | None = None):
        self.rows = rows or {c: [] for c in HISTORY_COLUMNS}
        self.pending: list[Tensor] = []

    def append(self, row: dict, losses: Tensor) -> None:
        for c in HISTORY_COLUMNS:
            self.rows[c].append(row[c])
        self.pending.append(losses)

    def flush(self) -> None:
        if not self.pending:
            return
        vals = torch.stack(self.pending).cpu().tolist()
        k = len(self.rows["loss"]) - len(self.pending)
        bad = [k + j for j, v in enumerate(vals) if not math.isfinite(v[0])]
        if bad:  # as MAE: stop rather than train on garbage
            raise FloatingPointError(f"pretrain: non-finite loss at step {bad[0]}")
        self.rows["loss"][k:] = [v[0] for v in vals]
        self.rows["uniformity"][k:] = [v[1] for v in vals]
        self.pending.clear()

    def last(self) -> dict:
        return {c: self.rows[c][-1] for c in HISTORY_COLUMNS}


def _default_step(model: nn.Module, compile: bool, compile_buckets: int, mask: str = "random") -> StepFn:
    bucket = math.ceil(model.num_patches / compile_buckets) if compile else 1

    def step_fn(m, b, r, g, t):
        return mae_step(m, b, r, g, t, bucket=bucket, mask=mask)

    return step_fn


def _loss(out, uniformity_weight: float) -> tuple[Tensor, Tensor | None]:
    """The step's loss plus U-MAE's ``λ · L_unif(latent)`` (and the uniformity term, None when off)."""
    loss = out.loss if isinstance(out, MAEOutput) else out
    if not uniformity_weight:
        return loss, None
    if not isinstance(out, MAEOutput) or out.latent is None:
        raise ValueError(f"uniformity_weight={uniformity_weight} needs an MAEOutput.latent")
    unif = uniformity_loss(distributed.gather_rows(out.latent))  # over the global batch's pairs
    return loss + uniformity_weight * unif, unif


def _logged(loss: Tensor, unif: Tensor | None) -> Tensor:
    """The step's ``(loss, uniformity)`` as the history logs them: the mean over data-parallel ranks
    (:func:`r2mae_core.distributed.mean_across`), NaN for the uniformity when it is off."""
    nan = torch.full((), math.nan, device=loss.device)
    return distributed.mean_across(torch.stack([loss.detach().float(), nan if unif is None else unif.detach().float()]))


def _compiler(compile: bool, compile_kwargs: dict | None) -> Callable[[nn.Module], Callable]:
    """``torch.compile`` with the run's options (default ``dynamic=False``), or the identity."""
    if not compile:
        return lambda module: module
    return lambda module: torch.compile(module, **{"dynamic": False, **(compile_kwargs or {})})


def _update(model: nn.Module, opt, sched, loss: Tensor, grad_clip: float | None) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    sched.step()


def pretrain(model: nn.Module, data, *, sampler, train: TrainConfig, seed: int = 0, uniformity_weight: float = 0.0,
             step_fn: StepFn | None = None, device: str | torch.device = "cpu", amp: bool | None = None,
             compile: bool = False, compile_buckets: int = 8, compile_kwargs: dict | None = None,
             checkpoint_path: str | Path | None = None, resume: bool = True, progress: bool = True,
             callback: Callable[[int, dict], None] | None = None, mask_generator: str = "random") -> TrainResult:
    """Pretrain ``model`` with masks whose ratios come from ``sampler``, on the schedule ``train``.

    Parameters
    ----------
    model
        A masked model (``forward(x, mask) -> MAEOutput`` and ``num_patches`` for the default step).
    data
        uint8 images ``(N, H, W)``/``(N, C, H, W)`` (scaled to [0, 1]), a float/long tensor, or a
        map-style dataset (items collated with ``default_collate``). Batches are ``train.batch_size`` rows;
        the last partial batch of an epoch is dropped.
    sampler
        Ratio sampler: ``sampler.sample(batch_size, generator=g, progress=step / total_steps) -> (B,)``.
    train
        The schedule (:class:`TrainConfig`: length, batch, AdamW, warmup + cosine, clipping, checkpoint
        interval).
    seed
        Seeds data order and masks (init is seeded when the model is built).
    uniformity_weight
        λ of the U-MAE loss ``L_MAE + λ · L_unif(latent)`` (Zhang, Wang & Wang 2022; their λ is 0.01).
    step_fn
        ``step_fn(model, batch, ratios, generator, progress) -> loss or MAEOutput`` with ``progress`` =
        step / total; default :func:`mae_step`.
    device, amp, compile
        ``amp=None`` means bf16 autocast on CUDA only; ``compile`` wraps the model in ``torch.compile``
        (meant for CUDA; visible tokens are bucketed, ``compile_buckets`` shapes at most);
        ``compile_kwargs`` go to ``torch.compile`` (default ``dynamic=False``).
    checkpoint_path, resume
        Save model/optimizer/scheduler/generator state/history every ``train.checkpoint_every`` steps and at the
        end (written to a temporary file, then renamed; under data parallelism by rank 0, every rank waiting for
        the write). With ``resume`` an existing checkpoint of the same run
        (same seed, sizes, schedule and sampler) is continued, or returned as is if finished; a checkpoint of
        another run is an error.
    progress
        Show a tqdm bar.
    callback
        Called as ``callback(step, row)`` after each step (and after its checkpoint).
    mask_generator
        The default step's mask (:data:`IMAGE_MASKS`): ``"random"`` subset or ``"block"`` rectangles.

    Returns
    -------
    TrainResult
    """
    seed = check_seed(seed)
    if mask_generator not in IMAGE_MASKS:
        raise ValueError(f"mask_generator={mask_generator!r} is not allowed: use one of {', '.join(IMAGE_MASKS)}")
    data = _as_data(data)
    n = len(data)
    total = train.total_steps(n)
    per_epoch = n // train.batch_size
    device = torch.device(device)
    amp = (device.type == "cuda") if amp is None else bool(amp)
    data_seed, mask_seed = child_seeds(seed, 2)

    model.to(device).train()
    opt = adamw(model.parameters(), train)
    sched = lr_schedule(opt, train, total)
    mask_gen = torch_generator(mask_seed)
    fingerprint = run_fingerprint(model, sampler, train, n_data=n, seed=seed, uniformity_weight=uniformity_weight)
    history = _History()
    start, seconds_before = 0, 0.0
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    if ckpt is not None and resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        diff = sorted(k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k])
        if diff:
            raise ValueError(f"checkpoint_path={str(ckpt)!r} holds another run (differs in {diff}): "
                             "use another path or resume=False")
        model.load_state_dict(state["model"])
        history = _History({c: list(state["history"][c]) for c in HISTORY_COLUMNS})
        if state.get("optimizer") is None:  # a finished run saved without its optimizer (save_finished)
            return TrainResult(model.to(device).eval(), history_frame(history.rows), total, int(state["step"]))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        mask_gen.set_state(state["mask_generator"])
        start, seconds_before = int(state["step"]), float(state["seconds"])

    run_model = distributed.wrap(model, _compiler(compile, compile_kwargs))
    step_fn = step_fn or _default_step(model, compile, compile_buckets, mask_generator)

    t0 = time.perf_counter()
    perm_epoch, perm = -1, None
    bar = tqdm(total=total, initial=start, disable=not (progress and distributed.is_main()), desc="pretrain",
               leave=False)
    for step in range(start, total):
        epoch, i = divmod(step, per_epoch)
        if epoch != perm_epoch:
            perm_epoch, perm = epoch, _epoch_perm(data_seed, epoch, n)
        batch = _to(_batch(data, perm[i * train.batch_size:(i + 1) * train.batch_size]), device)
        ratios = sampler.sample(train.batch_size, generator=mask_gen, progress=step / total)
        cur_lr = opt.param_groups[0]["lr"]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, unif = _loss(step_fn(run_model, batch, ratios, mask_gen, step / total), uniformity_weight)
        _update(model, opt, sched, loss, train.grad_clip)
        elapsed = seconds_before + time.perf_counter() - t0
        history.append({"step": step, "epoch": epoch, "loss": math.nan, "ratio_mean": float(ratios.float().mean()),
                        "lr": cur_lr, "uniformity": math.nan, "seconds": elapsed}, _logged(loss, unif))
        if len(history.pending) >= _FLUSH_EVERY or step + 1 == total:
            history.flush()
            bar.set_postfix(loss=f"{history.rows['loss'][-1]:.4f}")
        bar.update(1)
        due = step + 1 == total or (train.checkpoint_every and (step + 1) % train.checkpoint_every == 0)
        if ckpt is not None and due:
            _write_checkpoint(ckpt, history, fingerprint=fingerprint, step=step + 1, seconds=elapsed, model=model,
                              opt=opt, sched=sched, mask_gen=mask_gen)
        if callback is not None:
            history.flush()
            callback(step, history.last())
    bar.close()
    history.flush()
    return TrainResult(model.eval(), history_frame(history.rows), total, start)
