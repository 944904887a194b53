"""The run loop shared by the token-MLM sections (03_language, 04_dna): the torch thread setting around a study,
the cache key and the pretrain-then-evaluate step of one run, the sweep plan over sizes, methods and seeds, the
reference rows and the pooled features the probes read."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ..cache import cache_key, cache_root
from ..train import pretrain

__all__ = ["with_threads", "run_key", "pretrain_and_evaluate", "run_sweep", "reference_rows", "history_table",
           "features"]


def with_threads(threads: int, fn: Callable, *args):
    """``fn(*args)`` with torch's intra-op threads set to ``threads`` (> 0; 0 keeps them), restored on return."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(previous)


def _train_config(config) -> dict:
    return {"steps": config.steps, "batch_size": config.batch_size, "lr": config.lr, "warmup": config.warmup,
            "weight_decay": config.weight_decay}


def run_key(config, model_cfg: dict, spec: dict | None, seed: int, corpus_spec: dict) -> dict:
    """Cache key of one run: model, sampler spec, training (None for random init), seed, corpus, test ratios and,
    only with fine-tuning, its epochs and learning rates (profiles without it keep their keys)."""
    key = {"model": model_cfg, "sampler": spec, "train": _train_config(config) if spec is not None else None,
           "seed": seed, "corpus": corpus_spec, "test_ratios": config.test_ratios, "format": 1}
    if config.finetune_epochs:
        key["finetune"] = {"epochs": config.finetune_epochs, "lrs": sorted(config.finetune_lrs)}
    return key


def pretrain_and_evaluate(model, ids: torch.Tensor, *, config, spec: dict | None, seed: int, key: dict,
                          models_cache: str, make_sampler: Callable, make_step: Callable,
                          evaluate: Callable) -> dict:
    """Pretrain ``model`` (unless ``spec`` is None: random init) then ``evaluate(model)``.

    Pretraining is checkpointed under ``<cache root>/<models_cache>/<key hash>.pt`` (resumable; removed at the
    end) with ``sampler = make_sampler(spec)`` and ``step_fn = make_step(sampler)``, gradient clipping 1.0. The
    history keeps every ``max(1, steps // 50)``-th step.

    Returns
    -------
    dict
        ``metrics`` (rows of ``evaluate``), ``history`` (step, loss, ratio_mean) and ``seconds`` of pretraining.
    """
    history, seconds = pd.DataFrame(), 0.0
    if spec is not None:
        ckpt = cache_root() / models_cache / f"{cache_key(models_cache, key)}.pt"
        sampler = make_sampler(spec)
        res = pretrain(model, ids, sampler=sampler, seed=seed, device=config.device, grad_clip=1.0,
                       step_fn=make_step(sampler), progress=False, checkpoint_path=ckpt,
                       checkpoint_every=max(500, config.steps // 4), **_train_config(config))
        model, seconds = res.model, float(res.history["seconds"].iloc[-1])
        every = max(1, config.steps // 50)
        history = res.history.iloc[::every][["step", "loss", "ratio_mean"]].reset_index(drop=True)
        ckpt.unlink(missing_ok=True)  # the cache entry of the run replaces it
    return {"metrics": evaluate(model), "history": history, "seconds": seconds}


def _worker_init(threads: int, parent_pid: int) -> None:
    """Start of a sweep worker process: torch's intra-op threads (and BLAS's) as the study asks, and a watcher
    that ends the worker once its parent is gone (a killed kernel must not leave workers behind)."""
    if threads:
        torch.set_num_threads(threads)
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Exit this process (status 1, at once) when its parent is no longer ``parent_pid``."""
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)


def run_sweep(config, train_and_evaluate: Callable, *, desc: str, progress: bool) -> tuple[list, list, list]:
    """Every run of the study, seed index outermost: the fixed-ratio sweep at the sizes other than the main one,
    every method of ``config.methods()`` and random init at the main size.

    ``config.workers`` > 1 runs that many runs at once, each in its own process (``spawn``; each with
    ``config.threads`` torch threads): on a 2-core CPU two one-thread workers take about half the wall time of
    one. Every run is seeded by its own (spec, seed index) and cached on its own key, so the results, their order
    and the cache do not depend on the number of workers; ``train_and_evaluate`` must be a module-level function.
    A worker exits within a second of its parent's death (a killed kernel leaves none behind); a re-run then
    takes the finished runs from the cache and resumes the others from their checkpoints.

    Returns
    -------
    tuple of list
        Metric rows tagged (method, kind, ratio, size, seed), history frames and run rows (method, size, seed,
        seconds, tokens = steps · batch size · sequence length, 0 for random init).
    """
    from tqdm.auto import tqdm

    plan = [(f"fixed {r:g}", "fixed", {"kind": "fixed", "ratio": float(r)}, size)
            for size in config.sizes if size != config.main_size for r in config.sweep_ratios]
    plan += [(*m, config.main_size) for m in config.methods()]
    plan.append(("random init", "reference", None, config.main_size))
    jobs = [(p, i) for i in range(config.n_seeds) for p in plan]
    args = [(config, method, kind, spec, size, i) for (method, kind, spec, size), i in jobs]
    workers = min(config.workers, len(jobs))
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress)
    if workers <= 1:
        outs = []
        for a in args:
            outs.append(train_and_evaluate(*a))
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        outs = [None] * len(args)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(config.threads, os.getpid()))
        try:
            futures = {pool.submit(train_and_evaluate, *a): k for k, a in enumerate(args)}
            for f in as_completed(futures):
                outs[futures[f]] = f.result()  # the first failure is raised here
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # after a failure: the runs not yet started never start
    bar.close()
    metrics, history, runs = [], [], []
    for ((method, kind, spec, size), i), out in zip(jobs, outs, strict=True):
        ratio = spec["ratio"] if kind == "fixed" else float("nan")
        tag = {"method": method, "kind": kind, "ratio": ratio, "size": size, "seed": i}
        metrics += [{**tag, **row} for row in out["metrics"]]
        if len(out["history"]):
            history.append(out["history"].assign(method=method, size=size, seed=i))
        runs.append({"method": method, "size": size, "seed": i, "seconds": out["seconds"],
                     "tokens": config.steps * config.batch_size * config.seq_len if spec is not None else 0})
    return metrics, history, runs


def reference_rows(method: str, rows: list[dict], n_seeds: int) -> list[dict]:
    """Rows of a seed-free reference (kind ``reference``, size ``"-"``) repeated for every seed index."""
    tag = {"method": method, "kind": "reference", "ratio": float("nan"), "size": "-"}
    return [{**tag, "seed": i, **row} for row in rows for i in range(n_seeds)]


def history_table(history: list[pd.DataFrame]) -> pd.DataFrame:
    """The history frames in one table (an empty one with its columns if there are none)."""
    return pd.concat(history, ignore_index=True) if history else pd.DataFrame(
        columns=["step", "loss", "ratio_mean", "method", "size", "seed"])


@torch.no_grad()
def features(model, ids: np.ndarray, attn: np.ndarray, device, rows=None, cols=None, batch: int = 256):
    """Mean-pooled features (N, D) and, if ``rows``/``cols`` are given, token features at those positions.

    Pooled feature of row n: ``Σ_l a_nl h_nl / max(Σ_l a_nl, 1)`` with ``a`` the attention mask and ``h`` the
    encoder's token states (float64 on return).
    """
    pooled, tokens = [], []
    for i in range(0, len(ids), batch):
        x = torch.as_tensor(ids[i:i + batch], device=device)
        a = torch.as_tensor(attn[i:i + batch], device=device)
        h = model.encode_tokens(x, a).float()  # (b, L, D)
        w = a.to(h.dtype)[..., None]
        pooled.append(((h * w).sum(1) / w.sum(1).clamp_min(1.0)).cpu())
        if rows is not None:
            sel = (rows >= i) & (rows < i + batch)
            tokens.append(h[torch.as_tensor(rows[sel] - i, device=device),
                            torch.as_tensor(cols[sel], device=device)].cpu())
    z = torch.cat(pooled).double().numpy()
    return (z, torch.cat(tokens).double().numpy()) if rows is not None else z
