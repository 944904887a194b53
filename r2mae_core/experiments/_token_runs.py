"""What the token-MLM sections (03_language, 04_dna) share on the run engine (:mod:`r2mae_core.runs`): the
torch thread setting around a study, the plan over sizes, methods and seeds, the pretraining of one run or of an
ensemble group, the
tables built from the results, the reference rows, the pooled features the probes read, the encoder sizes and the
settings of their linear probe and fine-tune (:mod:`r2mae_core.evaluate`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from .. import evaluate
from ..cache import cache_key, cache_root
from ..ensemble import pretrain_ensemble
from ..masking import make_sampler
from ..runs import (
    Method,
    Options,
    RunSpec,
    TrainConfig,
    equivalent_control,
    fixed_method,
    group_checkpoint_path,
    reference_method,
)
from ..train import pretrain
from ..validation import check_device, check_learning_rates, count, param

__all__ = ["SIZES", "PROBE_CS", "PROBE_MAX_ITER", "FINETUNE_BATCH", "probe", "finetune",
           "evaluated_records", "with_threads", "train_config", "equal_effect_controls", "token_plan", "pretrain_run",
           "pretrain_group", "tables", "reference_rows", "history_table", "features", "TokenRunSettings"]

#: Encoder sizes of the token sections (the "model size" axis): width, blocks, heads.
SIZES: dict[str, dict] = {
    "XS": {"dim": 32, "depth": 1, "heads": 2}, "S": {"dim": 64, "depth": 2, "heads": 2},
    "M": {"dim": 128, "depth": 4, "heads": 4}, "L": {"dim": 256, "depth": 6, "heads": 8},
    "XL": {"dim": 384, "depth": 8, "heads": 8},
}
#: Inverse L2 strengths of the token sections' linear probes.
PROBE_CS = (0.1, 1.0, 10.0)
#: L-BFGS iteration cap of the token sections' linear probes per fit: the token features (3000 POS tokens of 17
#: tags) reach the accuracy of the converged fit well before 1000 iterations, which took 6× longer.
PROBE_MAX_ITER = 100
#: Batch size of the token sections' fine-tuning.
FINETUNE_BATCH = 32


def probe(train: tuple, val: tuple, test: tuple, *, metric: str, **kwargs) -> dict:
    """The token sections' linear probe (:func:`r2mae_core.evaluate.linear_probe`, torch solver on the CPU, at
    most :data:`PROBE_MAX_ITER` iterations per fit, ``C`` from :data:`PROBE_CS` chosen on the validation set of its
    own by ``metric``); ``kwargs`` override (the sparse references: ``solver="sklearn", standardize=False``). Each
    set is ``(features, labels)``.

    Returns ``C`` and ``{val,test}_{acc,macro_f1,f1,mcc}``."""
    kwargs = {"Cs": PROBE_CS, "solver": "torch", "max_iter": PROBE_MAX_ITER, **kwargs}
    res = evaluate.linear_probe(*train, *test, val=val, select=metric, metrics=evaluate.METRICS, **kwargs)
    return {"C": res.C, **res.scores}


def finetune(model, train: tuple, val: tuple, test: tuple, *, metric: str, epochs: int, lr, device) -> dict:
    """The token sections' fine-tune (:func:`r2mae_core.evaluate.finetune`): every parameter, a zero-initialised
    linear head on the mean-pooled features, AdamW (weight decay 0.01), batch :data:`FINETUNE_BATCH`, the
    (learning rate, epoch) chosen on validation by ``metric``. Each set is ``(ids, attention, labels)``.

    Returns ``lr``, ``best_epoch`` and ``{val,test}_{acc,macro_f1,f1,mcc}``."""
    res = evaluate.finetune(model, train[:2], train[2], test[:2], test[2], val=(val[:2], val[2]), mode="full",
                            head="zero", epochs=epochs, lr=lr, batch_size=FINETUNE_BATCH, weight_decay=0.01,
                            device=device, select=metric, metrics=evaluate.METRICS)
    return {"lr": res.lr, "best_epoch": res.epoch, **res.scores}


def evaluated_records(group: list[RunSpec], trained: list[dict], evaluate: Callable, corpus: dict, device: str,
                      digest: str) -> list[dict]:
    """The records of a trained group: ``metrics`` (``evaluate(model, corpus, spec.evaluation, device)`` rows as
    a DataFrame), ``history``, ``seconds`` (pretraining), ``eval_seconds`` (wall time of the evaluation: the GPU
    route's estimates are checked against it) and ``data_digest``."""
    out = []
    for spec, res in zip(group, trained, strict=True):
        t0 = time.perf_counter()
        metrics = pd.DataFrame(evaluate(res["model"], corpus, spec.evaluation, device))
        out.append({"metrics": metrics, "history": res["history"], "seconds": res["seconds"],
                    "eval_seconds": time.perf_counter() - t0, "data_digest": digest})
    return out


def with_threads(threads: int, fn: Callable, *args):
    """``fn(*args)`` with torch's intra-op threads set to ``threads`` (> 0; 0 keeps them), restored on return."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(previous)


def train_config(config) -> TrainConfig:
    """The schedule of every run of a token study: AdamW, warmup + cosine, gradient clipping 1.0, a checkpoint
    every ``max(500, steps // 4)`` steps."""
    return TrainConfig(steps=config.steps, batch_size=config.batch_size, lr=config.lr, warmup=config.warmup,
                       weight_decay=config.weight_decay, grad_clip=1.0, checkpoint_every=max(500, config.steps // 4))


def equal_effect_controls(methods: list[Method]) -> list[Method]:
    r"""The equal-effect control of every R²MAE interval among ``methods``.

    For R²MAE with ratios m ~ P the control is the fixed ratio of equal population effect
    (:func:`r2mae_core.runs.equivalent_control`; the linear theory of 01 and
    :func:`r2mae_core.theory.equivalent_fixed_ratio`)

    .. math:: m_{eq} = \frac{\mathbb E_P[m^2(1-m)]}{\mathbb E_P[m(1-m)]},

    about 0.315 for U[0.15, 0.45]. The declared R²MAE (group ``r2mae``) gets its control in group ``equivalent``,
    an R²MAE ablation its control in its own group (``ablation``). One control per distinct m_eq: R²MAE per
    sample draws from the law of R²MAE per batch and shares its control, and a grid run at m_eq is the control.
    Masked diffusion (kind ``masked_diffusion``) gets none here.
    """
    out = []
    for method in methods:
        if method.kind != "r2mae":
            continue
        control = equivalent_control(method, [*methods, *out])
        if control not in methods and control not in out:
            out.append(replace(control, group="equivalent" if method.group == "r2mae" else method.group))
    return out


def token_plan(config, methods: list[Method], *, namespace: str, models: dict[str, dict], data: dict,
               evaluation: dict) -> list[RunSpec]:
    """Every run of a token study, seed index outermost: the fixed-ratio sweep at the sizes other than the main
    one, every method of ``methods`` and random init at the main size.

    ``models`` maps a size to its model config, ``data`` is the corpus spec and ``evaluation`` the evaluation
    settings of the main size's runs; the sweep's runs at the other sizes are scored without fine-tuning (the
    probes answer the sweep's question, how the best ratio moves with size; fine-tuning serves the method
    comparison). Each run carries its seed's index as its ``seed`` column.
    """
    sweep_evaluation = {**{k: v for k, v in evaluation.items() if k != "finetune_lrs"}, "finetune_epochs": 0}
    entries = [(fixed_method(r), size, sweep_evaluation) for size in config.sizes if size != config.main_size
               for r in config.sweep_ratios]
    entries += [(m, config.main_size, evaluation) for m in methods]
    entries.append((reference_method(), config.main_size, evaluation))
    train = train_config(config)
    return [RunSpec(namespace, "text_encoder", size, method, seed, None if method.kind == "reference" else train,
                    model=models[size], data=data, evaluation=scoring, tags={"seed": i})
            for i, seed in enumerate(config.seeds()) for method, size, scoring in entries]


def pretrain_run(spec: RunSpec, model, ids: torch.Tensor, step, options: Options, *, code: str) -> dict:
    """Pretrain ``model`` as ``spec`` says (a reference is not trained) with the masking step ``step``.

    Checkpointed under ``<cache root>/<namespace>_models/<key>.pt`` (resumable; removed at the end: the engine's
    record of the run replaces it), keyed on the fingerprint ``code`` of the section module that builds ``step``
    (:func:`r2mae_core.fingerprint.code_fingerprint`, which covers this module too). Returns ``model``,
    ``history`` (step, loss, ratio_mean of every ``max(1, steps // 50)``-th step) and ``seconds`` of pretraining.
    """
    if spec.method.kind == "reference":
        return {"model": model, "history": history_table([]).iloc[:, :3], "seconds": 0.0}
    folder = f"{spec.namespace}_models"
    ckpt = cache_root() / folder / f"{cache_key(folder, spec.training_identity(), code=code)}.pt"
    res = pretrain(model, ids, sampler=make_sampler(spec.method.sampler), train=spec.train, seed=spec.seed,
                   step_fn=step, device=options.device, progress=options.progress, checkpoint_path=ckpt)
    ckpt.unlink(missing_ok=True)
    return {"model": res.model, "history": _thinned(res.history, spec.train),
            "seconds": float(res.history["seconds"].iloc[-1])}


def pretrain_group(group: list[RunSpec], models: list, ids: torch.Tensor, step, options: Options, *,
                   code: str) -> list[dict]:
    """Pretrain the runs of one engine group with the masking step ``step`` (the same for the group: the group
    key holds the method's mask options): one by one (:func:`pretrain_run`, resumable) for a single run or a
    reference, else as one ensemble (:func:`r2mae_core.ensemble.pretrain_ensemble`, resumable from its group
    checkpoint, :func:`r2mae_core.runs.group_checkpoint_path`; on CUDA its step is compiled, since the eager
    vmapped step under bf16 autocast fails in PyTorch 2.11's attention backward). ``code``: as in
    :func:`pretrain_run`. Returns what :func:`pretrain_run` returns, per run."""
    if len(group) == 1 or group[0].method.kind == "reference":
        return [pretrain_run(spec, model, ids, step, options, code=code)
                for spec, model in zip(group, models, strict=True)]
    first = group[0]
    results = pretrain_ensemble(models, ids, samplers=[make_sampler(spec.method.sampler) for spec in group],
                                seeds=[spec.seed for spec in group], train=first.train,
                                uniformity_weight=first.method.uniformity_weight, step=step,
                                device=options.device,
                                compile=options.compile or torch.device(options.device).type == "cuda",
                                checkpoint_path=group_checkpoint_path(group, f"{first.namespace}_models", code=code))
    return [{"model": res.model, "history": _thinned(res.history, first.train),
             "seconds": float(res.history["seconds"].iloc[-1])} for res in results]


def _thinned(history: pd.DataFrame, train: TrainConfig) -> pd.DataFrame:
    """Step, loss and ratio mean of every ``max(1, steps // 50)``-th step."""
    every = max(1, train.steps // 50)
    return history.iloc[::every][["step", "loss", "ratio_mean"]].reset_index(drop=True)


def tables(plan: list[RunSpec], results: list[dict], seq_len: int) -> tuple[list, list, list]:
    """Tidy rows of a token study from the engine's results (``metrics`` frame, ``history``, ``seconds``).

    Returns
    -------
    tuple of list
        Metric rows tagged with the method's columns (method, group, kind, ratio, ...), size and seed index;
        history frames; run rows (method, size, seed, seconds, tokens = steps · batch size · ``seq_len``, 0 for
        random init).
    """
    metrics, history, runs = [], [], []
    for spec, out in zip(plan, results, strict=True):
        seed = spec.tags["seed"]
        tag = {**spec.method.columns(), "size": spec.size, "seed": seed}
        metrics += [{**tag, **row} for row in out["metrics"].to_dict("records")]
        if len(out["history"]):
            history.append(out["history"].assign(method=spec.method.name, size=spec.size, seed=seed))
        train = spec.train
        runs.append({"method": spec.method.name, "size": spec.size, "seed": seed, "seconds": out["seconds"],
                     "tokens": 0 if train is None else train.steps * train.batch_size * seq_len})
    return metrics, history, runs


def reference_rows(method: str, rows: list[dict], n_seeds: int) -> list[dict]:
    """Rows of a seed-free reference (group and kind ``reference``, size ``"-"``) repeated for every seed index."""
    tag = {**reference_method(method).columns(), "size": "-"}
    return [{**tag, "seed": i, **row} for row in rows for i in range(n_seeds)]


def history_table(history: list[pd.DataFrame]) -> pd.DataFrame:
    """The history frames in one table (an empty one with its columns if there are none)."""
    return pd.concat(history, ignore_index=True) if history else pd.DataFrame(
        columns=["step", "loss", "ratio_mean", "method", "size", "seed"])


@torch.no_grad()
def features(model, ids: np.ndarray, attn: np.ndarray, device, rows=None, cols=None, *, batch: int = 256):
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


@dataclass(frozen=True)
class TokenRunSettings:
    """The settings that 03's and 04's ``Config`` share, declared and checked once: full fine-tuning
    (``finetune_epochs``, 0 skips it; ``finetune_lrs``, the best on validation is kept) and how the runs execute
    (torch ``device``; ``threads`` per run, 0 keeps torch's default; ``workers`` processes; ``ensemble_size``
    runs trained as one vmapped ensemble). A section ``Config`` subclasses it and runs
    :func:`~r2mae_core.validation.check_fields`, which checks these fields with its own."""

    finetune_epochs: int = param(0, count(0))
    finetune_lrs: tuple[float, ...] = param((1e-4,), check_learning_rates)
    device: str = param("cpu", check_device)
    threads: int = param(0, count(0))
    workers: int = param(1, count(1))
    ensemble_size: int = param(1, count(1))
