"""One pretraining loop for every model family (images, text, DNA and gene expression).

The loop owns what is common: data order, the ratio sampler, AdamW with linear warmup + cosine decay,
bf16 autocast and ``torch.compile`` on CUDA, gradient clipping, atomic checkpoints with exact resume,
the history table and the progress bar. What is model-specific sits behind a small hook,
``step_fn(model, batch, ratios, generator, progress) -> loss | MAEOutput`` (``progress`` = step / total, for
steps that change over training such as a span curriculum); the default :func:`mae_step` draws an
exact-count random subset mask per row (``masking.random_subset_mask``) and calls ``model(x, mask)``.

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
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import masking
from ._rng import check_seed, child_seeds, torch_generator
from .losses import uniformity_loss
from .models.blocks import MAEOutput, as_token_mask, images_to_tensor

__all__ = ["pretrain", "mae_step", "TrainResult", "StepFn", "warmup_cosine", "history_frame", "HISTORY_COLUMNS",
           "run_fingerprint", "save_finished"]

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


def mae_step(model: nn.Module, batch: Tensor, ratios: Tensor, generator: torch.Generator, progress: float = 0.0,
             *, bucket: int = 1) -> MAEOutput:
    """Default step: exact-count random subset mask per row (MAE's argsort trick), then ``model(x, mask)``.

    The mask is drawn on the CPU from ``generator`` (so it is identical on every device) and moved to
    the batch's device. ``bucket`` pads the visible tokens for ``torch.compile`` (see module docstring);
    ``progress`` is not used (the mask does not change over training).
    """
    subset = masking.random_subset_mask(ratios, model.num_patches, generator=generator)
    return model(batch, as_token_mask(subset, bucket=bucket).to(batch.device))


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


def run_fingerprint(model: nn.Module, sampler, *, steps: int, batch_size: int, n_data: int, lr: float, seed: int,
                    weight_decay: float, warmup_steps: int, min_lr_ratio: float, uniformity_weight: float) -> dict:
    """What a checkpoint must match to be resumed or reloaded: the schedule, data size, seed, sampler and model."""
    return {"total_steps": steps, "batch_size": batch_size, "n_data": n_data, "lr": lr, "seed": seed,
            "weight_decay": weight_decay, "warmup": warmup_steps, "min_lr_ratio": min_lr_ratio,
            "uniformity_weight": uniformity_weight, "sampler": _describe(sampler),
            "model": _describe(getattr(model, "config", model))}


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


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)  # atomic: a reader sees the old or the new checkpoint, never half of one


def pretrain(model: nn.Module, data, *, sampler, steps: int | None = None, epochs: int | None = None,
             batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.05, warmup: float = 0.05,
             min_lr_ratio: float = 0.0, grad_clip: float | None = None, seed: int = 0,
             device: str | torch.device = "cpu", amp: bool | None = None, compile: bool = False,
             compile_buckets: int = 8, compile_kwargs: dict | None = None,
             checkpoint_path: str | Path | None = None, checkpoint_every: int | None = None,
             resume: bool = True, progress: bool = True,
             uniformity_weight: float = 0.0, step_fn: StepFn | None = None,
             callback: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Pretrain ``model`` with masks whose ratios come from ``sampler``.

    Parameters
    ----------
    model
        A masked model (``forward(x, mask) -> MAEOutput`` and ``num_patches`` for the default step).
    data
        uint8 images ``(N, H, W)``/``(N, C, H, W)`` (scaled to [0, 1]), a float/long tensor, or a
        map-style dataset (items collated with ``default_collate``). Batches are ``batch_size`` rows;
        the last partial batch of an epoch is dropped.
    sampler
        Ratio sampler: ``sampler.sample(batch_size, generator=g, progress=step / total_steps) -> (B,)``.
    steps, epochs
        Length of training: give exactly one.
    batch_size, lr, weight_decay
        AdamW (betas 0.9, 0.95 as MAE; no decay on biases/norm weights, i.e. parameters with ``ndim <= 1``).
        ``lr`` is the absolute peak rate (MAE's rule: ``1.5e-4 · batch_size / 256``).
    warmup
        Warmup length: a fraction of the steps if ``< 1``, else a number of steps.
    min_lr_ratio
        Final LR as a fraction of ``lr`` (cosine decay, :func:`warmup_cosine`).
    grad_clip
        Max global gradient norm (``None``: no clipping).
    seed
        Seeds data order and masks (init is seeded when the model is built).
    device, amp, compile
        ``amp=None`` means bf16 autocast on CUDA only; ``compile`` wraps the model in ``torch.compile``
        (meant for CUDA; visible tokens are bucketed, ``compile_buckets`` shapes at most);
        ``compile_kwargs`` go to ``torch.compile`` (default ``dynamic=False``).
    checkpoint_path, checkpoint_every, resume
        Save model/optimizer/scheduler/generator state/history every ``checkpoint_every`` steps and at the end
        (written to ``<path>.partial`` then renamed). With ``resume`` an existing checkpoint of the same run
        (same seed, sizes, schedule and sampler) is continued; a checkpoint of another run is an error.
    progress
        Show a tqdm bar.
    uniformity_weight
        λ of the U-MAE loss ``L_MAE + λ · L_unif(latent)`` (Zhang, Wang & Wang 2022; their λ is 0.01).
    step_fn
        ``step_fn(model, batch, ratios, generator, progress) -> loss or MAEOutput`` with ``progress`` =
        step / total; default :func:`mae_step`.
    callback
        Called as ``callback(step, row)`` after each step (and after its checkpoint).

    Returns
    -------
    TrainResult
    """
    seed = check_seed(seed)
    if (steps is None) == (epochs is None):
        raise ValueError(f"steps={steps!r}, epochs={epochs!r} is not allowed: give exactly one of them")
    data = _as_data(data)
    n = len(data)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size!r} is not allowed: use 1..{n} (the dataset size)")
    per_epoch = n // batch_size
    total = int(steps) if steps is not None else int(epochs) * per_epoch
    if total < 1:
        raise ValueError(f"steps/epochs giving {total} steps is not allowed: train at least one step")
    if not lr > 0 or weight_decay < 0 or not 0 <= min_lr_ratio <= 1 or warmup < 0:
        raise ValueError(f"lr={lr}, weight_decay={weight_decay}, min_lr_ratio={min_lr_ratio}, "
                         f"warmup={warmup}: need lr > 0, weight_decay >= 0, 0 <= min_lr_ratio <= 1, "
                         "warmup >= 0")
    n_warm = int(round(warmup * total)) if warmup < 1 else int(warmup)
    device = torch.device(device)
    amp = (device.type == "cuda") if amp is None else bool(amp)
    data_seed, mask_seed = child_seeds(seed, 2)

    model.to(device).train()
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, n_warm, min_lr_ratio))
    mask_gen = torch_generator(mask_seed)
    fingerprint = run_fingerprint(model, sampler, steps=total, batch_size=batch_size, n_data=n, lr=lr, seed=seed,
                                  weight_decay=weight_decay, warmup_steps=n_warm, min_lr_ratio=min_lr_ratio,
                                  uniformity_weight=uniformity_weight)
    hist: dict[str, list] = {c: [] for c in HISTORY_COLUMNS}
    start, seconds_before = 0, 0.0
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    if ckpt is not None and resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        diff = sorted(k for k in fingerprint if state["fingerprint"].get(k) != fingerprint[k])
        if diff:
            raise ValueError(f"checkpoint_path={str(ckpt)!r} holds another run (differs in {diff}): "
                             "use another path or resume=False")
        model.load_state_dict(state["model"])
        if state.get("optimizer") is None:  # a finished run saved without its optimizer (save_finished)
            history = history_frame({c: list(state["history"][c]) for c in HISTORY_COLUMNS})
            return TrainResult(model.to(device).eval(), history, total, int(state["step"]))
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        mask_gen.set_state(state["mask_generator"])
        hist = {c: list(state["history"][c]) for c in HISTORY_COLUMNS}
        start, seconds_before = int(state["step"]), float(state["seconds"])

    run_model = torch.compile(model, **{"dynamic": False, **(compile_kwargs or {})}) if compile else model
    if step_fn is None:
        bucket = math.ceil(model.num_patches / compile_buckets) if compile else 1

        def step_fn(m, b, r, g, t):
            return mae_step(m, b, r, g, t, bucket=bucket)

    pending: list[Tensor] = []  # (loss, uniformity) device tensors not yet copied to the host

    def flush():
        if pending:
            vals = torch.stack(pending).cpu().tolist()
            k = len(hist["loss"]) - len(pending)
            bad = [k + j for j, v in enumerate(vals) if not math.isfinite(v[0])]
            if bad:  # as MAE: stop rather than train on garbage
                raise FloatingPointError(f"pretrain: non-finite loss at step {bad[0]}")
            hist["loss"][k:] = [v[0] for v in vals]
            hist["uniformity"][k:] = [v[1] for v in vals]
            pending.clear()

    def checkpoint(step_done: int, elapsed: float):
        flush()
        _save(ckpt, {"format": 1, "fingerprint": fingerprint, "step": step_done, "seconds": elapsed,
                     "model": model.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "mask_generator": mask_gen.get_state(),
                     "history": hist})

    t0 = time.perf_counter()
    perm_epoch, perm = -1, None
    bar = tqdm(total=total, initial=start, disable=not progress, desc="pretrain", leave=False)
    for step in range(start, total):
        epoch, i = divmod(step, per_epoch)
        if epoch != perm_epoch:
            perm_epoch, perm = epoch, _epoch_perm(data_seed, epoch, n)
        batch = _to(_batch(data, perm[i * batch_size:(i + 1) * batch_size]), device)
        ratios = sampler.sample(batch_size, generator=mask_gen, progress=step / total)
        cur_lr = opt.param_groups[0]["lr"]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = step_fn(run_model, batch, ratios, mask_gen, step / total)
            loss = out.loss if isinstance(out, MAEOutput) else out
            unif = None
            if uniformity_weight:
                if not isinstance(out, MAEOutput) or out.latent is None:
                    raise ValueError(f"uniformity_weight={uniformity_weight} needs an MAEOutput.latent")
                unif = uniformity_loss(out.latent)
                loss = loss + uniformity_weight * unif
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        nan = torch.full((), math.nan, device=loss.device)
        pending.append(torch.stack([loss.detach().float(), nan if unif is None else unif.detach().float()]))
        elapsed = seconds_before + time.perf_counter() - t0
        row = {"step": step, "epoch": epoch, "loss": math.nan, "ratio_mean": float(ratios.float().mean()),
               "lr": cur_lr, "uniformity": math.nan, "seconds": elapsed}
        for c in HISTORY_COLUMNS:
            hist[c].append(row[c])
        if len(pending) >= _FLUSH_EVERY or step + 1 == total:
            flush()
            bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}")
        bar.update(1)
        due = step + 1 == total or (checkpoint_every and (step + 1) % checkpoint_every == 0)
        if ckpt is not None and due:
            checkpoint(step + 1, elapsed)
        if callback is not None:
            flush()
            callback(step, {c: hist[c][-1] for c in HISTORY_COLUMNS})
    bar.close()
    flush()
    return TrainResult(model.eval(), history_frame(hist), total, start)
