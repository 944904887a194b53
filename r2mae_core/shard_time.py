"""Estimated wall time of a GPU shard (:mod:`r2mae_core.campaign`) on one H200, before any GPU time is spent.

A shard's time is its start-up, plus per ensemble group (:func:`r2mae_core.runs.groups`) the compilation and
``steps`` training steps, plus each run's evaluation:

.. math:: T = t_0 + \\sum_g \\Big(t_c + S_g \\max\\big(t_{\\min}(k_g),\\; k_g F_g / R\\big)\\Big) + \\sum_r E_r

with :math:`F_g` the FLOPs of one member's training step (forward + backward at the batch size, counted on this
CPU with :class:`torch.utils.flop_counter.FlopCounterMode` at the sampler's mean ratio), :math:`k_g` the group's
members, :math:`S_g` its steps. The constants are the H200 measurements of ``results/gpu_checks/
2026-12-04_nvidia-h200.json`` (one ViT-MAE step and k vmapped members under ``torch.compile``, bf16 autocast,
batch 256): small models are bound by the per-step floor :math:`t_{\\min}` (launch and Python overhead), large
ensembles by the achieved rate :math:`R`. Evaluation :math:`E_r` has not been measured on a GPU yet (each
record carries ``eval_seconds``; once the ledger holds a section's runs their mean replaces the estimate):
for an image run it is the sum of its probes' optimiser steps times a per-step cost (fine-tuning steps at the
measured single-model step time, BN+LP and linear-head steps at :data:`HEAD_STEP_S`), a fixed :data:`LP_S` for
the L-BFGS probe, the k-NN's distance FLOPs at the measured rate and :data:`ANALYSIS_S` per analysis; for a
token run of 03 and 04 its fine-tuning steps (epochs × learning rates × batches of every task) at the measured
single-model step time, :data:`TOKEN_PROBE_S` per linear probe and :data:`TOKEN_PASSES_S` for its feature and
masked-token passes; for 05 the flat :data:`EVAL_ALLOWANCE_S`. Those constants are allowances, not
measurements: an estimate is only as good as them until a shard has run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .masking import make_sampler
from .models import build_model
from .runs import RunSpec, groups

__all__ = ["H200", "EVAL_ALLOWANCE_S", "HEAD_STEP_S", "FEATURE_BATCH_S", "LP_S", "ANALYSIS_S", "TOKEN_PROBE_S",
           "TOKEN_PASSES_S", "TOKEN_TASK_ROWS", "KMEANS_RUN_S", "Estimate", "step_flops", "member_flops",
           "group_seconds", "eval_seconds", "estimate"]


@dataclass(frozen=True)
class Throughput:
    """Measured rates of one accelerator (seconds and FLOP/s)."""

    floor_single_s: float  #: one model's compiled step at batch 256 (ViT-S, 10.3 ms)
    floor_ensemble_s: float  #: k = 8 or 32 members' compiled step (ViT-S/M: 23.7-27.4 ms; the largest taken)
    flops_per_s: float  #: achieved by 32 ViT-M members (32 × 25.1 GFLOP in 27.4 ms)
    compile_s: float  #: compiling a group's step (the compiled rows' wall time less their steps, ≈ 18 s)
    start_s: float  #: a shard command's imports, data loading and corpus building (an allowance)


H200 = Throughput(floor_single_s=0.0103, floor_ensemble_s=0.0274, flops_per_s=2.93e13, compile_s=18.0, start_s=60.0)

#: Evaluation seconds per run of 05 until a shard has run (allowance): the embedding and the reconstruction
#: losses at a few ratios of at most a few thousand cells, some tens of forward batches on the GPU; its scoring
#: runs on the CPU.
EVAL_ALLOWANCE_S: dict[str, float] = {"05_single_cell": 0.5}
#: One linear probe of a token run (allowance): scipy L-BFGS on the GPU machine's CPU, at most 3 C values × 100
#: iterations, each a product of a few thousand rows (20 000 tokens for POS) by 64-256 features.
TOKEN_PROBE_S = 0.5
#: A token run's feature and masked-token passes over its evaluation sets (allowance): about 15 000 sequences,
#: some 60 forward batches of a few milliseconds, and their copies to the host.
TOKEN_PASSES_S = 1.0
#: The training rows each fine-tuned task of a token run reads, from its spec's data (03: Brown genre documents
#: and spam messages; 04: the windows of each of its three tasks), and the number of linear probes per run.
TOKEN_TASK_ROWS: dict[str, tuple] = {
    "03_language": (lambda data: [data["probe_train"], data["spam_train"]], 3),
    "04_dna": (lambda data: [data["probe_train"]] * 3, 3),
}
#: One optimiser step of a linear or BN+linear head on frozen features (allowance).
HEAD_STEP_S = 0.001
#: One batch of 256 images through a model's forward pass on the GPU (allowance: features, reconstruction).
FEATURE_BATCH_S = 0.003
#: One L-BFGS linear probe on the GPU (allowance): 5 values of C and a refit, each up to a few hundred
#: iterations of torch's L-BFGS, whose two-loop recursion over a 50-pair history launches some hundred small
#: kernels an iteration (about 3 ms).
LP_S = 2.0
#: One analysis of a trained model (allowance; 06's segmentation is :data:`KMEANS_RUN_S` per k-means run).
ANALYSIS_S = {"spectrum": 1.0, "reconstructions": 1.0, "components": 10.0, "segmentation": 0.0, "table1": 2.0}
#: One k-means run of 06's segmentation (allowance): scikit-learn on one image's 49 patch features, a call's
#: overhead more than its arithmetic; ``n_seg_images × len(ks) × n_init`` runs per model.
KMEANS_RUN_S = 1.5e-3


@dataclass(frozen=True)
class Estimate:
    """A shard's estimated seconds: ``train`` (from FLOPs and measured rates), ``evaluation`` (allowance),
    ``start`` (allowance), their ``total``, and the number of ``runs`` and ``groups``."""

    runs: int
    groups: int
    train: float
    evaluation: float
    start: float

    @property
    def total(self) -> float:
        return self.train + self.evaluation + self.start


def _mean_ratio(spec: RunSpec) -> float:
    gen = torch.Generator().manual_seed(0)
    sampler = make_sampler(spec.method.sampler)
    draws = [float(torch.as_tensor(sampler.sample(8, generator=gen, progress=i / 64)).double().mean())
             for i in range(64)]
    return min(max(sum(draws) / len(draws), 0.01), 0.99)


def step_flops(spec: RunSpec, batch: int = 8) -> float:
    """FLOPs of one training step of ``spec``'s model (forward + backward) at its batch size, counted on
    ``batch`` rows and scaled linearly. 0 for a run that does not train."""
    from torch.utils.flop_counter import FlopCounterMode

    from .train import mae_step

    if spec.train is None or spec.namespace == "single_cell_runs":
        return 0.0  # not trained; or 05's gene models, far below the step floor (under 0.1 TFLOP a step)
    model = build_model(spec.family, seed=0, **spec.model)
    ratio = _mean_ratio(spec)
    gen = torch.Generator().manual_seed(0)
    with FlopCounterMode(display=False) as counter:
        if spec.family == "text_encoder":
            config = model.config
            tokens = torch.randint(0, config.vocab_size, (batch, config.max_len), generator=gen)
            labels = torch.where(torch.rand(tokens.shape, generator=gen) < ratio, tokens, -100)
            out = model(tokens, labels)
        else:
            size = model.config.img_size
            out = mae_step(model, torch.rand(batch, 1, size, size, generator=gen), torch.full((batch,), ratio), gen)
        out.loss.backward()
    return float(counter.get_total_flops()) * spec.train.batch_size / batch


def member_flops(spec: RunSpec, memo: dict[str, float]) -> float:
    """:func:`step_flops` of ``spec``, counted once per architecture and schedule in ``memo`` (the training
    identity without method and seed)."""
    key = repr({k: v for k, v in spec.training_identity().items() if k not in ("method", "seed")})
    if key not in memo:
        memo[key] = step_flops(spec)
    return memo[key]


def group_seconds(group: list[RunSpec], member_flops: float, rates: Throughput = H200) -> float:
    """Training seconds of one ensemble group whose members' steps cost ``member_flops`` each (0 for a group
    that does not train): ``compile + steps × max(floor, k F / R)``."""
    first = group[0]
    if first.train is None:
        return 0.0
    k = len(group)
    floor = rates.floor_single_s if k == 1 else rates.floor_ensemble_s
    return rates.compile_s + first.train.steps * max(floor, k * member_flops / rates.flops_per_s)


_FEATURE_DIMS: dict[str, int] = {}


def _feature_dim(spec: RunSpec) -> int:
    """The width of the features the probes read (the model built once per config; raw pixels 784)."""
    if spec.family == "pixels":
        return 28 * 28
    key = spec.family + repr(spec.model)
    if key not in _FEATURE_DIMS:
        import numpy as np

        from .evaluate import extract_features

        net = build_model(spec.family, seed=0, **spec.model)
        size = net.config.img_size
        _FEATURE_DIMS[key] = int(extract_features(net, np.zeros((1, size, size), np.uint8)).shape[1])
    return _FEATURE_DIMS[key]


def eval_seconds(notebook: str, spec: RunSpec, rates: Throughput = H200) -> float:
    """Estimated evaluation seconds of one run (module docstring): image runs feature passes, LP, k-NN, BN+LP,
    fine-tuning, reconstruction losses and analyses; token runs fine-tuning, probes and passes; 05 its flat
    allowance."""
    if notebook in EVAL_ALLOWANCE_S:
        return EVAL_ALLOWANCE_S[notebook]
    if notebook in TOKEN_TASK_ROWS:
        return _token_eval_seconds(notebook, spec, rates)
    ev = spec.evaluation
    seconds = sum(ANALYSIS_S[name] for name in ev.get("analyses", {}))
    segmentation = ev.get("analyses", {}).get("segmentation")
    if segmentation:
        seconds += KMEANS_RUN_S * segmentation["n_seg_images"] * len(segmentation["ks"]) * segmentation["n_init"]
    table1 = ev.get("analyses", {}).get("table1")
    if "n_probe_train" not in ev:
        return seconds
    n_tr, n_ev = ev["n_probe_train"], ev["n_probe_eval"]
    dim = _feature_dim(spec)
    head_steps = ev["bn_lp_epochs"] * -(-n_tr // 256) * (1 + (table1 is not None))  # BN+LP (+ 06's raw LP)
    ft_steps = ev["ft_epochs"] * -(-n_tr // 128)
    if table1 and table1["partial"]:
        ft_steps += ev["bn_lp_epochs"] * -(-n_tr // 128)  # 06's partial fine-tuning
    passes = (n_tr + 2 * n_ev + len(ev["test_ratios"]) * n_ev) / 256  # features and reconstruction batches
    knn_flops = 2 * 2 * n_ev * n_tr * dim  # validation and test rows against the probe-training rows
    return (seconds + LP_S + passes * FEATURE_BATCH_S + knn_flops / rates.flops_per_s
            + head_steps * HEAD_STEP_S + ft_steps * rates.floor_single_s)


def _token_eval_seconds(notebook: str, spec: RunSpec, rates: Throughput) -> float:
    """A token run's evaluation: fine-tuning steps (batch of :func:`r2mae_core.experiments._token_runs.finetune`)
    at the single-model step time, its linear probes and its passes."""
    from .experiments._token_runs import FINETUNE_BATCH as batch

    rows, n_probes = TOKEN_TASK_ROWS[notebook]
    ev = spec.evaluation
    ft_steps = (ev["finetune_epochs"] * len(ev.get("finetune_lrs", ()))
                * sum(-(-n // batch) for n in rows(spec.data)))
    return ft_steps * rates.floor_single_s + n_probes * TOKEN_PROBE_S + TOKEN_PASSES_S


def estimate(notebook: str, todo: list[RunSpec], group_size: int, rates: Throughput = H200,
             eval_s: float | None = None) -> Estimate:
    """The estimate of a shard of ``notebook`` whose runs ``todo`` train in groups of at most ``group_size``
    (the FLOPs of each architecture and schedule counted once); ``eval_s``: evaluation seconds per run measured
    on the GPU (None: :func:`eval_seconds`)."""
    chunks = groups(todo, group_size)
    flops: dict[str, float] = {}
    train = sum(group_seconds(group, member_flops(group[0], flops), rates) for group in chunks)
    evaluation = (sum(eval_seconds(notebook, spec, rates) for spec in todo) if eval_s is None
                  else eval_s * len(todo))
    return Estimate(len(todo), len(chunks), train, evaluation, rates.start_s)
