"""Masked image models as runs of the engine (:mod:`r2mae_core.runs`), shared by 02 and 06: the plan's specs,
the group work (pretrain one run or an ensemble → checkpoint → evaluate) and the reference rows.

A run is a pure function of its :class:`r2mae_core.runs.RunSpec` (built by :func:`image_spec`: model family,
size and resolved config, method, seed, schedule, data, evaluation). The weights live in a checkpoint under
``results/cache/image_models/`` keyed by the spec without its evaluation (an interrupted single run resumes
from it, bit for bit on CPU; runs of one training scored two ways share it); the result is the engine's record
under ``results/cache/image_runs/``: metrics, the loss history and the *analyses* the spec names (a section's
functions of the trained model, e.g. 02's feature spectrum and reconstructions, 06's SVD components and
segmentations), so that a record made on a GPU holds everything its notebook needs and no weights travel.

References are runs too: a ``reference`` method is the model as initialised, and the family :data:`PIXELS` is
the raw-pixel row (no model: the probes read the pixels).

Splits (fixed for every run, independent of the run seed): the official training images are permuted once
with seed 0 and the last ``n_val`` become the **validation** split used to choose hyper-parameters (e.g. the
best fixed ratio); pretraining and the probes' training data come from the rest; the official test set is only
scored.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import evaluate, models
from .._rng import numpy_generator
from ..cache import cache_key, cache_root
from ..data import dataset_names, fingerprint, get_spec, load
from ..ensemble import ImageMasking, pretrain_ensemble
from ..fingerprint import code_fingerprint
from ..masking import make_sampler
from ..runs import Method, Options, RunSpec, TrainConfig, execute, group_checkpoint_path, reference_method
from ..train import HISTORY_COLUMNS, TrainResult, history_frame, pretrain, run_fingerprint, save_finished
from ..validation import check_int, check_ratio

__all__ = ["AUTO_TORCH_MAX_DIM", "AUTO_TORCH_MIN_TRAIN", "SIZES", "NAMESPACE", "PIXELS", "EvalSpec", "Splits",
           "Analysis", "check_dataset", "load_images", "splits", "data_digest", "image_schedule", "image_spec",
           "reference_specs", "eval_spec", "checkpoint_path", "pretraining_images", "mask_generator", "train_run",
           "train_group",
           "evaluate_model", "work", "run_records", "run_rows"]

#: ``probe_solver="auto"`` uses the torch L-BFGS probe up to this feature dimension and sklearn above it
#: (measured on Fashion-MNIST, 2-core CPU, sklearn with one BLAS thread: 784-d raw pixels, 2000 / 5000 probe
#: images, sklearn 5.3 s / 15.4 s against torch 24.8 s / 70 s).
AUTO_TORCH_MAX_DIM = 256
#: ... and from this many probe-training images on (64-d ViT features of Fashion-MNIST, same machine: 600 /
#: 2000 images sklearn 0.7 s / 1.5 s against torch 2.8 s / 3.2 s; 5000 / 10000 images sklearn 4.1 s / 11.7 s
#: against torch 3.7 s / 10.2 s)
AUTO_TORCH_MIN_TRAIN = 5000

#: Model sizes per family (S < M < L parameters), the "model size" axis of the theory validation.
SIZES: dict[str, dict[str, dict]] = {
    "mlp": {"S": {"width": 64}, "M": {"width": 256}, "L": {"width": 1024, "depth": 2}},
    "cnn": {"S": {"channels": (16, 32, 32)}, "M": {"channels": (32, 64, 64)}, "L": {"channels": (48, 96, 96)}},
    "vit": {"S": {"dim": 64, "depth": 2, "heads": 4, "dec_dim": 64, "dec_depth": 1},
            "M": {"dim": 128, "depth": 4, "heads": 4}, "L": {"dim": 192, "depth": 6, "heads": 6}},
}

#: Cache namespace of image-run results.
NAMESPACE = "image_runs"

#: The family of the raw-pixel reference: no model, the probes read the pixels scaled to [0, 1].
PIXELS = "pixels"

#: A section's analysis of a trained run: ``analysis(model, spec, params, device)`` → a record value
#: (:func:`r2mae_core.records.save_record`), with ``params`` the JSON-ready settings the spec names it with.
Analysis = Callable[[torch.nn.Module, RunSpec, dict, str], Any]


@dataclass(frozen=True)
class EvalSpec:
    """How a run is evaluated (probe sizes are subsets of the splits, first rows).

    ``test_ratios``: masked-reconstruction loss at these ratios (paired masks: the same seed for every model).
    ``n_probe_train``: labelled non-validation images the probes fit on; ``n_probe_eval``: validation and test
    images they are scored on. ``bn_lp_epochs = 0`` skips BN+LP; ``ft_epochs = 0`` skips full fine-tuning
    (a BN+linear head on ``encode``, every parameter trained; test split only); ``knn_k`` is the k-NN
    neighbourhood; ``probe_solver`` is :func:`r2mae_core.evaluate.linear_probe`'s solver, or ``"auto"``: on a
    CUDA device torch L-BFGS on the GPU; on the CPU torch L-BFGS up to :data:`AUTO_TORCH_MAX_DIM` feature
    dimensions when the probe fits on at least :data:`AUTO_TORCH_MIN_TRAIN` images (≈ 10% faster there), sklearn
    otherwise (3-5× faster on wide inputs such as raw pixels, 2-4× on small probe sets). One LP fit and one
    BN+LP fit per model, each scored on the validation and test images; every probe runs on ``device``.
    """

    test_ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    n_probe_train: int = 10000
    n_probe_eval: int = 5000
    knn_k: int = 20
    bn_lp_epochs: int = 0
    ft_epochs: int = 0
    probe_solver: str = "auto"

    def __post_init__(self) -> None:
        for name, low in (("n_probe_train", 10), ("n_probe_eval", 1), ("knn_k", 1), ("bn_lp_epochs", 0),
                          ("ft_epochs", 0)):
            check_int(name, getattr(self, name), low)
        for ratio in self.test_ratios:
            check_ratio("test_ratios", ratio)
        if self.probe_solver not in ("auto", "sklearn", "torch"):
            raise ValueError(f"probe_solver={self.probe_solver!r} is not allowed: use 'auto', 'sklearn' or 'torch'")


@dataclass(frozen=True)
class Splits:
    """Index arrays into the official training images (``pool`` and ``val``) of one dataset."""

    pool: np.ndarray
    val: np.ndarray


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` if it names a registered image dataset, else raise a one-line ValueError."""
    names = [name for name in dataset_names() if get_spec(name).modality == "vision"]
    if dataset not in names:
        raise ValueError(f"dataset={dataset!r} is not allowed: use an image dataset, one of {', '.join(names)}")
    return dataset


@lru_cache(maxsize=2)
def load_images(dataset: str):
    """The prepared image dataset, read once per process (the compressed arrays cost ~0.3 s a read and every run
    of a study needs them). The arrays are shared: do not modify them in place."""
    return load(dataset)


@lru_cache(maxsize=8)
def splits(dataset: str, n_val: int) -> Splits:
    """The fixed validation split: the last ``n_val`` rows of a seed-0 permutation of the training images."""
    n = len(load_images(dataset).train_images)
    if not 0 < n_val < n:
        raise ValueError(f"n_val={n_val!r} is not allowed: use 1..{n - 1} (training images of {dataset})")
    perm = numpy_generator(0).permutation(n)
    return Splits(np.sort(perm[:-n_val]), np.sort(perm[-n_val:]))


def image_schedule(steps: int, batch_size: int, lr: float) -> TrainConfig:
    """The schedule of every image run of 02 and 06: AdamW (weight decay 0.05), 5% warmup + cosine, and a
    checkpoint every ``max(500, steps // 4)`` steps, so a killed run or ensemble group resumes where it stopped
    (the interval is not part of any key)."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=0.05, weight_decay=0.05,
                       checkpoint_every=max(500, steps // 4))


def image_spec(family: str, size: str, method: Method, seed: int, train: TrainConfig | None, *,
               evaluation: EvalSpec | None = None, analyses: Mapping[str, dict] | None = None,
               dataset: str = "fashion_mnist", n_val: int = 10000, n_pretrain: int | None = None,
               overrides: dict | None = None, tags: dict | None = None) -> RunSpec:
    """The :class:`~r2mae_core.runs.RunSpec` of one masked-image run.

    ``family`` (``mlp``, ``cnn``, ``vit``) and ``size`` (a key of :data:`SIZES`) with ``overrides`` (extra config
    fields, e.g. ``{"patch": 7}``) resolve into the model config stored in the spec (so editing a size preset
    can never reuse the weights or results of the old preset); :data:`PIXELS` with size ``"-"`` and a
    reference method is the raw-pixel row. ``dataset``, ``n_val`` (validation hold-out) and ``n_pretrain``
    (pretraining images, None: every non-validation image) are the data; ``evaluation`` how the trained model is
    scored (:func:`evaluate_model`; None: not scored, the run is only trained); ``analyses`` maps the name of a
    section's :data:`Analysis` to its settings (part of the key; its value lands in the record's ``analyses``).
    """
    if family == PIXELS:
        if size != "-" or method.kind != "reference" or overrides or analyses:
            raise ValueError(f"family={PIXELS!r} is the raw-pixel reference: use size '-', a reference method, "
                             "no model overrides and no analyses")
        config = {}
    else:
        if family not in SIZES:
            raise ValueError(f"family={family!r} is not allowed: use one of {', '.join(SIZES)} or {PIXELS!r}")
        if size not in SIZES[family]:
            raise ValueError(f"size={size!r} is not allowed for {family}: use one of {', '.join(SIZES[family])}")
        config = {**SIZES[family][size], **(overrides or {})}
        models.model_config(family, **config)  # one clear line for a bad config field
    check_int("n_val", n_val, 1)
    if n_pretrain is not None:
        check_int("n_pretrain", n_pretrain, 1)
    scoring = {} if evaluation is None else _eval_key(evaluation)
    if analyses:
        scoring["analyses"] = {name: dict(params) for name, params in analyses.items()}
    return RunSpec(NAMESPACE, family, size, method, seed, train, model=config,
                   data={"dataset": dataset, "n_val": n_val, "n_pretrain": n_pretrain},
                   evaluation=scoring, tags=dict(tags or {}))


def reference_specs(dataset: str, n_val: int, evaluation: EvalSpec, models_: list[tuple], *, seed: int = 0,
                    pixels: bool = True) -> list[RunSpec]:
    """The reference runs of every table: raw pixels, and each model randomly initialised.

    ``models_`` lists ``(family, size)`` or ``(family, size, overrides)``: the same config fields as the
    pretrained runs (e.g. the ViT's pooling), so "random init" is the same architecture under the same probe.
    ``pixels=False`` leaves out the raw-pixel row. No fine-tuning of references (``ft_epochs`` ignored).
    """
    evaluation = replace(evaluation, ft_epochs=0)
    out = [image_spec(PIXELS, "-", reference_method("raw pixels"), seed, None, evaluation=evaluation,
                      dataset=dataset, n_val=n_val)] if pixels else []
    for family, size, *rest in models_:
        out.append(image_spec(family, size, reference_method(), seed, None, evaluation=evaluation, dataset=dataset,
                              n_val=n_val, overrides=dict(rest[0]) if rest else None))
    return out


@lru_cache(maxsize=4)
def data_digest(dataset: str) -> str:
    """SHA-256 (hex, 24 chars) of the prepared arrays of ``dataset`` as read here: every record carries the one
    it was made from, so a result made from differently prepared data is refused when it is taken in."""
    data = load_images(dataset)
    h = hashlib.sha256()
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        array = np.ascontiguousarray(getattr(data, name))
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode("ascii"))
        h.update(array.tobytes())
    return h.hexdigest()[:24]


def eval_spec(spec: RunSpec) -> EvalSpec | None:
    """The :class:`EvalSpec` a spec was built with (None: the run is not scored)."""
    if "n_probe_train" not in spec.evaluation:
        return None
    names = [f.name for f in fields(EvalSpec)]
    values = {n: spec.evaluation[n] for n in names}
    return EvalSpec(**{**values, "test_ratios": tuple(values["test_ratios"])})


def checkpoint_path(spec: RunSpec) -> Path:
    """The run's weights (resumable checkpoint, or finished weights of an ensemble member)."""
    key = cache_key("image_models", spec.training_identity(), code=code_fingerprint(__name__))
    return cache_root() / "image_models" / f"{key}.pt"


def pretraining_images(spec: RunSpec) -> np.ndarray:
    """The run's pretraining images: the first ``n_pretrain`` of the non-validation pool (all if None)."""
    data = spec.data
    pool = splits(data["dataset"], data["n_val"]).pool
    return load_images(data["dataset"]).train_images[pool if data["n_pretrain"] is None
                                                     else pool[: data["n_pretrain"]]]


def _build(spec: RunSpec) -> torch.nn.Module:
    return models.build_model(spec.family, seed=spec.seed, **spec.model)


def train_run(spec: RunSpec, options: Options | None = None) -> TrainResult:
    """Pretrain (or resume / reload) one run's model.

    A finished checkpoint is reloaded without training; an interrupted one resumes where it stopped. A
    ``reference`` method is the model as initialised.
    """
    options = options or Options()
    model = _build(spec)
    if spec.method.kind == "reference":
        return TrainResult(model.to(options.device).eval(), history_frame({c: [] for c in HISTORY_COLUMNS}), 0)
    images = pretraining_images(spec)
    path = checkpoint_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    return pretrain(model, images, sampler=make_sampler(spec.method.sampler), train=spec.train.capped(len(images)),
                    seed=spec.seed, uniformity_weight=spec.method.uniformity_weight, device=options.device,
                    checkpoint_path=path, progress=options.progress, compile=options.compile,
                    mask_generator=mask_generator(spec))


def train_group(group: list[RunSpec], options: Options | None = None) -> list[TrainResult]:
    """Pretrain the runs of one engine group: one by one (:func:`train_run`) for a single run, a reference or
    a group whose weights are all stored; else as one ensemble (:func:`r2mae_core.ensemble.pretrain_ensemble`,
    resumable from its group checkpoint, :func:`r2mae_core.runs.group_checkpoint_path`), each member's finished
    weights stored where :func:`train_run` reloads them."""
    options = options or Options()
    if len(group) == 1 or group[0].method.kind == "reference" or all(_finished(s) for s in group):
        return [train_run(spec, options) for spec in group]
    unique = list({checkpoint_path(spec): spec for spec in group}.values())  # runs scored two ways train once
    if len(unique) < len(group):
        trained = dict(zip(map(checkpoint_path, unique), train_group(unique, options), strict=True))
        return [trained[checkpoint_path(spec)] for spec in group]
    first = group[0]
    images = pretraining_images(first)
    train = first.train.capped(len(images))
    samplers = [make_sampler(spec.method.sampler) for spec in group]
    results = pretrain_ensemble([_build(spec) for spec in group], images, samplers=samplers,
                                seeds=[spec.seed for spec in group], train=train,
                                uniformity_weight=first.method.uniformity_weight, device=options.device,
                                compile=options.compile,
                                checkpoint_path=group_checkpoint_path(group, "image_models",
                                                                      code=code_fingerprint(__name__)),
                                step=[ImageMasking(mask_generator(spec)) for spec in group])
    for spec, sampler, res in zip(group, samplers, results, strict=True):
        fp = run_fingerprint(res.model, sampler, train, n_data=len(images), seed=spec.seed,
                             uniformity_weight=spec.method.uniformity_weight)
        save_finished(checkpoint_path(spec), fp, res.model, res.history)
    return results


def mask_generator(spec: RunSpec) -> str:
    """Which positions the run masks (:data:`r2mae_core.train.IMAGE_MASKS`): the method's ``mask["generator"]``
    (``"block"``: BEiT's blockwise masking), else ``"random"`` (MAE's exact-count random subset). Members of one
    ensemble may differ in it (:data:`r2mae_core.runs.MEMBER_MASK_OPTIONS`): each draws its own masks."""
    return spec.method.mask.get("generator", "random")


def _finished(spec: RunSpec) -> bool:
    path = checkpoint_path(spec)
    if not path.exists():
        return False
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["step"]) == int(state["fingerprint"]["total_steps"])


def evaluate_model(model: torch.nn.Module | None, spec_dataset: str, n_val: int, evaluation: EvalSpec, *,
                   features=None, seed: int = 0, device: str = "cpu") -> dict[str, float]:
    """Probe metrics of a model (or of given ``features``: a function images → (N, D) array) on the splits.

    Returns ``lp_val``, ``lp_test``, ``lp_C``, ``knn_val``, ``knn_test``, ``effective_rank`` (test features),
    ``bn_lp_val``/``bn_lp_test`` and ``ft_test`` (when enabled; fine-tuning needs a model) and
    ``recon_<ratio>`` (validation images; model only).
    """
    data = load_images(spec_dataset)
    split = splits(spec_dataset, n_val)
    tr = split.pool[: evaluation.n_probe_train]
    va = split.val[: evaluation.n_probe_eval]
    te = slice(0, evaluation.n_probe_eval)
    encode = features or (lambda imgs: evaluate.extract_features(model, imgs, device=device))
    f_tr, f_va, f_te = (encode(data.train_images[tr]), encode(data.train_images[va]), encode(data.test_images[te]))
    y_tr, y_va, y_te = data.train_labels[tr], data.train_labels[va], data.test_labels[te]
    solver = evaluation.probe_solver
    if solver == "auto":
        use_torch = f_tr.shape[1] <= AUTO_TORCH_MAX_DIM and len(f_tr) >= AUTO_TORCH_MIN_TRAIN
        solver = "torch" if use_torch or torch.device(device).type == "cuda" else "sklearn"
    knn_device = None if torch.device(device).type == "cpu" else device  # sklearn on the CPU, torch on a GPU
    lp = evaluate.linear_probe(f_tr, y_tr, f_te, y_te, seed=seed, solver=solver, extra_tests={"val": (f_va, y_va)},
                               device=device)
    out = {"lp_val": lp.extra["val"], "lp_test": lp.test_acc, "lp_C": lp.C,
           "knn_val": evaluate.knn_accuracy(f_tr, y_tr, f_va, y_va, k=evaluation.knn_k, device=knn_device),
           "knn_test": evaluate.knn_accuracy(f_tr, y_tr, f_te, y_te, k=evaluation.knn_k, device=knn_device),
           "effective_rank": evaluate.effective_rank(f_te), "feature_dim": float(f_te.shape[1])}
    if evaluation.bn_lp_epochs:
        bn_lp = evaluate.bn_linear_probe(f_tr, y_tr, f_te, y_te, epochs=evaluation.bn_lp_epochs, seed=seed,
                                         device=device, extra_tests={"val": (f_va, y_va)})
        out["bn_lp_val"], out["bn_lp_test"] = bn_lp.extra["val"], bn_lp.test_acc
    if model is not None and evaluation.ft_epochs:
        out["ft_test"] = evaluate.finetune(model, data.train_images[tr], y_tr, data.test_images[te], y_te,
                                           mode="full", epochs=evaluation.ft_epochs, seed=seed,
                                           device=device).test_acc
    if model is not None:
        for ratio in evaluation.test_ratios:
            out[f"recon_{ratio:g}"] = evaluate.reconstruction_loss(model, data.train_images[va], ratio, seed=seed,
                                                                    device=device)
    return out


def _eval_key(evaluation: EvalSpec) -> dict:
    """Cache-key part of an evaluation: its fields, the rule that resolves ``probe_solver="auto"`` and the
    sklearn probe's BLAS thread count (entries fitted with another thread count are not reused)."""
    return {**asdict(evaluation), "auto_solver": [AUTO_TORCH_MAX_DIM, AUTO_TORCH_MIN_TRAIN], "sklearn_threads": 1}


def _raw_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _pixels_record(spec: RunSpec) -> dict:
    t0 = time.perf_counter()
    data, evaluation = spec.data, eval_spec(spec)
    metrics = evaluate_model(None, data["dataset"], data["n_val"], evaluation, features=_raw_pixels, seed=spec.seed)
    return {"metrics": {"params": 0.0, "train_loss": float("nan"), "train_seconds": 0.0, **metrics},
            "history": history_frame({c: [] for c in HISTORY_COLUMNS})[["step", "loss", "ratio_mean"]],
            "data_digest": data_digest(data["dataset"]), "eval_seconds": time.perf_counter() - t0}


def work(group: list[RunSpec], options: Options, analyses: Mapping[str, Analysis] | None = None) -> list[dict]:
    """The engine's work on a group of image runs: pretrain (:func:`train_group`), then evaluate each model
    (unless its spec has no evaluation) and run the analyses its spec names (from ``analyses``, the section's
    functions by name).

    Returns one record per run: ``metrics`` (``params``, ``train_loss`` = mean loss of the last tenth of the
    steps, ``train_seconds``, and :func:`evaluate_model`'s metrics), ``history`` (step, loss, ratio_mean of
    every ``max(1, steps // 50)``-th step; empty for a reference), ``data_digest`` (:func:`data_digest`),
    ``eval_seconds`` (wall time of the evaluation and analyses) and, where the spec names any, ``analyses``
    (name → value).

    Raises
    ------
    ValueError
        A spec names an analysis that ``analyses`` does not have.
    """
    analyses = analyses or {}
    for spec in group:
        unknown = sorted(set(spec.evaluation.get("analyses", {})) - set(analyses))
        if unknown:
            raise ValueError(f"analysis {unknown[0]!r} of {spec.label()} is not allowed: this section has "
                             f"{sorted(analyses) or 'none'}")
    if group[0].family == PIXELS:
        return [_pixels_record(spec) for spec in group]
    out = []
    for spec, result in zip(group, train_group(group, options), strict=True):
        t0 = time.perf_counter()
        data, evaluation = spec.data, eval_spec(spec)
        metrics = {} if evaluation is None else evaluate_model(result.model, data["dataset"], data["n_val"],
                                                               evaluation, seed=spec.seed, device=options.device)
        hist = result.history
        steps = 0 if spec.train is None else spec.train.steps
        tail = hist["loss"].tail(max(1, steps // 10))
        summary = {"params": float(sum(p.numel() for p in result.model.parameters())),
                   "train_loss": float(tail.mean()) if len(tail) else float("nan"),
                   "train_seconds": float(hist["seconds"].iloc[-1]) if len(hist) else 0.0}
        every = max(1, steps // 50)
        record = {"metrics": {**summary, **metrics},
                  "history": hist.iloc[::every][["step", "loss", "ratio_mean"]].reset_index(drop=True),
                  "data_digest": data_digest(data["dataset"])}
        requested = spec.evaluation.get("analyses", {})
        if requested:
            record["analyses"] = {name: analyses[name](result.model, spec, params, options.device)
                                  for name, params in requested.items()}
        record["eval_seconds"] = time.perf_counter() - t0
        out.append(record)
    return out


def run_records(plan: list[RunSpec], options: Options | None = None, *, work: Callable = work, group_size: int = 1,
                workers: int = 1, desc: str = "image runs", progress: bool = True) -> list[dict]:
    """Execute ``plan`` with the engine (``work``: :func:`work` or a section's wrapper of it that passes its
    analyses) and return each run's record, in plan order."""
    checksums = {fingerprint(spec.data["dataset"]) for spec in plan}
    if len(checksums) > 1:
        raise ValueError("a plan of image runs must read one dataset")
    return execute(plan, work, options=options or Options(), group_size=group_size, workers=workers,
                   data_checksum=checksums.pop() if checksums else "", desc=desc, progress=progress)


def run_rows(plan: list[RunSpec], records: list[dict] | None = None, options: Options | None = None,
             **execute_kw) -> pd.DataFrame:
    """One tidy row per run of ``plan``: its columns (:meth:`~r2mae_core.runs.RunSpec.columns`) and its metrics,
    from ``records`` (else executed by :func:`run_records` with ``options`` and ``execute_kw``)."""
    records = run_records(plan, options, **execute_kw) if records is None else records
    return pd.DataFrame([{**spec.columns(), **res["metrics"]} for spec, res in zip(plan, records, strict=True)])
