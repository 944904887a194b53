"""One masked-image-model run, end to end and resumable: pretrain → checkpoint → evaluate (shared by 02 and 06).

A run is a pure function of its :class:`RunSpec` (model family and size, ratio sampler, seed, schedule, data)
and the :class:`EvalSpec`. The weights live in a checkpoint under ``results/cache/image_models/`` named by the
spec's cache key (an interrupted run resumes from it, bit for bit on CPU; notebook 06 reloads the same weights);
the metrics are cached under ``results/cache/image_eval/``.

Splits (fixed for every run, independent of the run seed): the official training images are permuted once
with seed 0 and the last ``n_val`` become the **validation** split used to choose hyper-parameters (e.g. the
best fixed ratio); pretraining and the probes' training data come from the rest; the official test set is only
scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from .. import evaluate, models
from .._rng import check_seed, numpy_generator
from ..cache import cache_key, cache_root, cached
from ..data import fingerprint, load
from ..masking import make_sampler
from ..train import pretrain

__all__ = ["AUTO_TORCH_MAX_DIM", "AUTO_TORCH_MIN_TRAIN", "SIZES", "load_images", "run_identity", "RunSpec",
           "EvalSpec", "Splits", "splits", "train_run", "evaluate_model", "run", "reference_rows"]

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


@dataclass(frozen=True)
class RunSpec:
    """What one pretraining run is (everything its weights depend on).

    Attributes
    ----------
    family, size
        Model family (``mlp``, ``cnn``, ``vit``) and a key of :data:`SIZES` (or ``overrides`` alone).
    sampler
        Ratio-sampler spec for :func:`r2mae_core.masking.make_sampler`, e.g. ``{"kind": "fixed", "ratio": 0.75}``.
    seed
        Initialisation, data order and masks.
    steps, batch_size, lr, warmup
        AdamW schedule of :func:`r2mae_core.train.pretrain` (warmup + cosine).
    uniformity_weight
        λ of U-MAE (0 = plain MAE).
    dataset, n_val, n_pretrain
        Image dataset, validation hold-out size, pretraining images (None: all non-validation images).
    overrides
        Extra config fields of the family (e.g. ``{"norm_pix": True}``).
    """

    family: str
    size: str
    sampler: dict
    seed: int = 0
    steps: int = 200
    batch_size: int = 256
    lr: float = 1.5e-3
    warmup: float = 0.05
    uniformity_weight: float = 0.0
    dataset: str = "fashion_mnist"
    n_val: int = 10000
    n_pretrain: int | None = None
    overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if self.family not in SIZES:
            raise ValueError(f"family={self.family!r} is not allowed: use one of {', '.join(SIZES)}")
        if self.size not in SIZES[self.family]:
            raise ValueError(f"size={self.size!r} is not allowed for {self.family}: use one of "
                             f"{', '.join(SIZES[self.family])}")
        for name in ("steps", "batch_size", "n_val"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is not allowed: use an integer >= 1")
        make_sampler(self.sampler)  # one clear line for a bad sampler spec
        models.model_config(self.family, **self.model_config())

    def model_config(self) -> dict:
        return {**SIZES[self.family][self.size], **self.overrides}

    def label(self) -> str:
        return f"{self.family}-{self.size} {make_sampler(self.sampler).describe()} seed {self.seed}"


@dataclass(frozen=True)
class EvalSpec:
    """How a run is evaluated (probe sizes are subsets of the splits, first rows).

    ``test_ratios``: masked-reconstruction loss at these ratios (paired masks: the same seed for every model).
    ``n_probe_train``: labelled non-validation images the probes fit on; ``n_probe_eval``: validation and test
    images they are scored on. ``bn_lp_epochs = 0`` skips BN+LP; ``ft_epochs = 0`` skips full fine-tuning
    (a BN+linear head on ``encode``, every parameter trained; test split only); ``knn_k`` is the k-NN
    neighbourhood; ``probe_solver`` is :func:`r2mae_core.evaluate.linear_probe`'s solver, or ``"auto"``: torch
    L-BFGS up to :data:`AUTO_TORCH_MAX_DIM` feature dimensions when the probe fits on at least
    :data:`AUTO_TORCH_MIN_TRAIN` images (≈ 10% faster there), sklearn otherwise (3-5× faster on wide inputs such
    as raw pixels, 2-4× on small probe sets). One probe fit per model: it is scored on the validation and test images.
    """

    test_ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    n_probe_train: int = 10000
    n_probe_eval: int = 5000
    knn_k: int = 20
    bn_lp_epochs: int = 0
    ft_epochs: int = 0
    probe_solver: str = "auto"

    def __post_init__(self) -> None:
        if self.probe_solver not in ("auto", "sklearn", "torch"):
            raise ValueError(f"probe_solver={self.probe_solver!r} is not allowed: use 'auto', 'sklearn' or 'torch'")


@dataclass(frozen=True)
class Splits:
    """Index arrays into the official training images (``pool`` and ``val``) of one dataset."""

    pool: np.ndarray
    val: np.ndarray


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


def run_identity(spec: RunSpec) -> dict:
    """What a run's cache entries are keyed on: the spec and the resolved model config (so editing a size
    preset in :data:`SIZES` can never reuse the weights or metrics of the old preset)."""
    return {**asdict(spec), "model": spec.model_config()}


def _checkpoint_path(spec: RunSpec):
    return cache_root() / "image_models" / f"{cache_key('image_models', run_identity(spec))}.pt"


def train_run(spec: RunSpec, *, device: str = "cpu", progress: bool = True, **train_kwargs):
    """Pretrain (or resume / reload) the run's model; returns :class:`r2mae_core.train.TrainResult`.

    A finished checkpoint is reloaded without training; an interrupted one resumes where it stopped.
    """
    data = load_images(spec.dataset)
    pool = splits(spec.dataset, spec.n_val).pool
    images = data.train_images[pool if spec.n_pretrain is None else pool[: spec.n_pretrain]]
    model = models.build_model(spec.family, seed=spec.seed, **spec.model_config())
    path = _checkpoint_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    return pretrain(model, images, sampler=make_sampler(spec.sampler), steps=spec.steps,
                    batch_size=min(spec.batch_size, len(images)), lr=spec.lr, warmup=spec.warmup, seed=spec.seed,
                    uniformity_weight=spec.uniformity_weight, device=device, checkpoint_path=path,
                    progress=progress, **train_kwargs)


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
        solver = "torch" if use_torch else "sklearn"
    lp = evaluate.linear_probe(f_tr, y_tr, f_te, y_te, seed=seed, solver=solver, extra_tests={"val": (f_va, y_va)})
    out = {"lp_val": lp.extra["val"], "lp_test": lp.test_acc, "lp_C": lp.C,
           "knn_val": evaluate.knn_accuracy(f_tr, y_tr, f_va, y_va, k=evaluation.knn_k),
           "knn_test": evaluate.knn_accuracy(f_tr, y_tr, f_te, y_te, k=evaluation.knn_k),
           "effective_rank": evaluate.effective_rank(f_te), "feature_dim": float(f_te.shape[1])}
    if evaluation.bn_lp_epochs:
        for name, (fx, fy) in {"bn_lp_val": (f_va, y_va), "bn_lp_test": (f_te, y_te)}.items():
            out[name] = evaluate.bn_linear_probe(f_tr, y_tr, fx, fy, epochs=evaluation.bn_lp_epochs,
                                                 seed=seed).test_acc
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


def run(spec: RunSpec, evaluation: EvalSpec, *, device: str = "cpu", progress: bool = True,
        compile: bool = False) -> dict:
    """Pretrain (resumable) and evaluate one run; cached on (spec, evaluation, data checksum).

    ``compile`` wraps the model in ``torch.compile`` for training (GPU; visible tokens bucketed, see
    :mod:`r2mae_core.train`); it is not part of the cache key.

    Returns one tidy row: the spec's fields (sampler as its label), the metrics, the final training loss and
    the training wall time.
    """
    def compute() -> dict:
        result = train_run(spec, device=device, progress=progress, compile=compile)
        metrics = evaluate_model(result.model, spec.dataset, spec.n_val, evaluation, seed=spec.seed, device=device)
        tail = result.history["loss"].tail(max(1, spec.steps // 10))
        return {"family": spec.family, "size": spec.size, "sampler": make_sampler(spec.sampler).describe(),
                "seed": spec.seed, "steps": spec.steps, "uniformity_weight": spec.uniformity_weight,
                "params": float(sum(p.numel() for p in result.model.parameters())),
                "train_loss": float(tail.mean()), "train_seconds": float(result.history["seconds"].iloc[-1]),
                **metrics}

    return cached("image_eval", {"spec": run_identity(spec), "eval": _eval_key(evaluation)}, compute,
                  data_checksum=fingerprint(spec.dataset))


def reference_rows(dataset: str, n_val: int, evaluation: EvalSpec, models_: list[tuple], *, seed: int = 0,
                   pixels: bool = True) -> pd.DataFrame:
    """The reference rows of every table: raw pixels, and each model randomly initialised (cached).

    ``models_`` lists ``(family, size)`` or ``(family, size, overrides)``: the same config fields as the
    pretrained runs (e.g. the ViT's pooling), so "random init" is the same architecture under the same probe.
    ``pixels=False`` leaves out the raw-pixel row. No fine-tuning of references (``ft_epochs`` ignored).
    """
    evaluation = replace(evaluation, ft_epochs=0)

    def raw(imgs: np.ndarray) -> np.ndarray:
        return imgs.reshape(len(imgs), -1).astype(np.float32) / 255.0

    rows = []
    if pixels:
        rows.append({"family": "pixels", "size": "-", "sampler": "raw pixels", "seed": seed,
                     **cached("image_eval", {"reference": "pixels", "dataset": dataset, "n_val": n_val,
                                             "eval": _eval_key(evaluation), "seed": seed},
                              lambda: evaluate_model(None, dataset, n_val, evaluation, features=raw, seed=seed),
                              data_checksum=fingerprint(dataset))})
    for entry in models_:
        family, size, *rest = entry
        overrides = dict(rest[0]) if rest else {}
        config = {**SIZES[family][size], **overrides}

        def random_init(family=family, config=config) -> dict:
            model = models.build_model(family, seed=seed, **config)
            return evaluate_model(model, dataset, n_val, evaluation, seed=seed)

        key = {"reference": "random_init", "family": family, "size": size, "dataset": dataset, "n_val": n_val,
               "eval": _eval_key(evaluation), "seed": seed, "model": config}
        rows.append({"family": family, "size": size, "sampler": "random init", "seed": seed,
                     **cached("image_eval", key, random_init, data_checksum=fingerprint(dataset))})
    return pd.DataFrame(rows)
