"""06_spectral_clustering: mask models as low-rank recovery and token-level contrastive learners.

Reproduces the analyses of "Mask Models are Token Level Contrastive Learners" (NeurIPS 2023 submission; *the
2023 paper*) on the ViT-MAEs of 02_vision (Fashion-MNIST, 4×4 patches: a 7×7 token grid). ``run(config)``
trains (resumably, cached, through :mod:`~r2mae_core.experiments.image_runs`) every run the config names, with
its analyses (:data:`ANALYSES`, run on the trained model inside the engine's work, so a run made on a GPU brings
them back in its record), and returns tidy tables; :mod:`r2mae_core.experiments.spectral_claims` turns them into
the claims T1–T6.

Runs (one :class:`~r2mae_core.experiments.image_runs.RunSpec` each; the weights of a run that 02 trains with the
same schedule are 02's checkpoint, e.g. the full profiles share every ViT-S training):

- **ratio runs** (Fig. 2, Theorem 4.3): ViT at each fixed ratio of ``ratios``, the first ``ratio_seeds`` seeds;
  analysis ``components``.
- **probe runs** (Table 1, Fig. 3, spectral clustering): ViT at ``probe_ratio`` for every seed; analyses
  ``table1`` (LP on raw features, partial fine-tuning) and ``segmentation``.
- **heads runs** (Table 2): the same ViT with each of ``head_counts`` attention heads at width ``heads_dim``
  (``0``: the size preset's width), every seed; analysis ``table1`` without partial fine-tuning; a heads run
  equal to the probe run (same width and heads) is the probe run.

Everything is scored on the official test images; nothing is tuned here (the LP's ``C`` is chosen on a held-out
part of the probe's training images, as in 02).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import evaluate, models, spectral
from .._rng import child_seeds
from ..models.blocks import images_to_tensor, patchify
from ..runs import Options, RunSpec, fixed_method
from ..validation import (
    POSITIVE,
    check_choice,
    check_fields,
    check_list,
    check_number,
    check_ratio,
    check_ratios,
    check_seed,
    count,
    is_int,
    param,
)
from . import image_runs
from .image_runs import (
    SIZES,
    EvalSpec,
    check_dataset,
    eval_spec,
    image_schedule,
    image_spec,
    load_images,
    run_records,
    run_rows,
    splits,
)

__all__ = ["Config", "ratio_specs", "probe_specs", "heads_specs", "plan", "component_table", "segmentation_table",
           "table1_probes", "ANALYSES", "work", "run", "DRY_RUN", "data_names", "data_checksum", "data_digest"]

#: The GPU route's dry run (:mod:`r2mae_core.campaign`): the profile's plan with two steps and small data on the
#: CPU (every ratio, head count and seed; probes, factorisations and segmentations on a few dozen images).
DRY_RUN = {"n_pretrain": 600, "steps": 2, "batch_size": 16, "n_test_images": 20, "bound_batch": 10,
           "n_probe_train": 200, "n_probe_eval": 100, "bn_lp_epochs": 1, "ft_epochs": 1, "n_seg_images": 12,
           "n_show": 4, "kmeans_init": 2, "device": "cpu"}


@dataclass(frozen=True)
class Config:
    """One 06_spectral_clustering study (smoke defaults; ``parameters/{quick,full}/06_spectral_clustering.yaml``).

    Attributes
    ----------
    seed, n_seeds
        Master seed; runs use ``n_seeds`` child seeds (``SeedSequence``, the same children as 02 for the same
        master seed), shared by every variant so differences are paired by seed. Masks and k-means use ``seed``.
    dataset, n_val, n_pretrain, steps, batch_size, lr
        Data and the pretraining schedule of every run (``n_pretrain = 0``: every non-validation image).
    vit_size, vit_patch, vit_pool
        The ViT (a key of ``image_runs.SIZES["vit"]``), its patch side and pooling (as 02's method comparison).
    ratios, ratio_seeds, n_components, min_energy, n_test_images, bound_batch
        Fig. 2 and Theorem 4.3: training ratios, seeds per ratio, SVD components ``i = 1..n_components`` (a
        component with less than ``min_energy`` of its matrix's energy is left out: its relative distance is
        ill-conditioned, see :func:`r2mae_core.spectral.component_distances`), test images factorised (each
        masked at its model's training ratio) and the batch size of the bound check.
    probe_ratio, n_probe_train, n_probe_eval, knn_k, bn_lp_epochs, ft_epochs, test_ratios
        Table 1/2: the probe runs' ratio and the evaluation (``image_runs.EvalSpec``). LP, BN+LP and partial
        fine-tuning (head and the last block's ``qkv`` projection) all train for ``bn_lp_epochs`` epochs, so the
        three differ only in what is trained; ``ft_epochs`` is full fine-tuning (0: skip).
    head_counts, heads_dim
        Table 2: attention heads compared at the same width ``heads_dim`` (0: the size preset's width).
    seg_ks, n_seg_images, n_show, kmeans_init
        Fig. 3 and spectral clustering: clusters per image, test images scored, images drawn, k-means restarts.
    """

    seed: int = param(0, check_seed)
    n_seeds: int = param(2, count(1))
    dataset: str = "fashion_mnist"
    n_val: int = param(10000, count(1))
    n_pretrain: int = param(1000, count(0))
    steps: int = param(10, count(1))
    batch_size: int = param(64, count(1))
    lr: float = param(1.5e-3, POSITIVE)
    vit_size: str = param("S", check_choice, choices=SIZES["vit"])
    vit_patch: int = param(4, count(1))
    vit_pool: str = param("mean", check_choice, choices=("cls", "mean"))
    ratios: tuple[float, ...] = param((0.5, 0.6, 0.7, 0.8, 0.9), check_ratios, min_len=2)
    ratio_seeds: int = param(1, count(1))
    n_components: int = param(5, count(2))
    min_energy: float = param(1e-4, check_number, low=0, high=1, high_open=True)
    n_test_images: int = param(32, count(1))
    bound_batch: int = param(16, count(1))
    probe_ratio: float = param(0.8, check_ratio)
    n_probe_train: int = param(300, count(10))
    n_probe_eval: int = param(200, count(1))
    knn_k: int = 20
    bn_lp_epochs: int = param(2, count(1))
    ft_epochs: int = param(1, count(0))
    test_ratios: tuple[float, ...] = param((0.75,), check_ratios)
    head_counts: tuple[int, ...] = param((2, 4), check_list)
    heads_dim: int = param(0, count(0))
    seg_ks: tuple[int, ...] = param((2, 3, 4), check_list)
    n_seg_images: int = param(16, count(1))
    n_show: int = param(4, count(1))
    kmeans_init: int = param(4, count(1))

    def __post_init__(self) -> None:
        check_fields(self)
        check_dataset(self.dataset)
        if self.ratio_seeds > self.n_seeds:
            raise ValueError(f"ratio_seeds={self.ratio_seeds!r} is not allowed: use at most n_seeds={self.n_seeds}")
        if self.n_show > self.n_seg_images:
            raise ValueError(f"n_show={self.n_show!r} is not allowed: use at most n_seg_images={self.n_seg_images}")
        if len(set(self.ratios)) != len(self.ratios) or list(self.ratios) != sorted(self.ratios):
            raise ValueError(f"ratios={list(self.ratios)!r} is not allowed: use distinct increasing mask ratios")
        if len(self.head_counts) != 2 or not all(is_int(h) for h in self.head_counts) \
                or not 0 < self.head_counts[0] < self.head_counts[1]:
            raise ValueError(f"head_counts={list(self.head_counts)!r} is not allowed: use two increasing positive "
                             "integers [fewer, more]")
        width = self.width
        for h in self.head_counts:
            if width % h or width % 4:
                raise ValueError(f"heads_dim={width!r} is not allowed with head_counts={list(self.head_counts)}: "
                                 "use a width divisible by 4 and by both head counts")
        L = (28 // self.vit_patch) ** 2
        if not self.seg_ks or not all(is_int(k) and 2 <= k <= L for k in self.seg_ks):
            raise ValueError(f"seg_ks={list(self.seg_ks)!r} is not allowed: use integers in 2..{L} (patches)")
        self.evaluation()
        self.spec(self.probe_ratio, 0)  # one clear line for a bad model setting

    @property
    def seeds(self) -> list[int]:
        """The run seeds (children of ``seed``, as in 02), shared by every variant."""
        return child_seeds(self.seed, self.n_seeds)

    @property
    def width(self) -> int:
        """Width of the heads comparison."""
        return self.heads_dim or SIZES["vit"][self.vit_size]["dim"]

    def evaluation(self) -> EvalSpec:
        """The probes' :class:`~r2mae_core.experiments.image_runs.EvalSpec` (equal to 02's for equal settings, so
        02's cached evaluations are reused)."""
        return EvalSpec(test_ratios=self.test_ratios, n_probe_train=self.n_probe_train,
                        n_probe_eval=self.n_probe_eval, knn_k=self.knn_k, bn_lp_epochs=self.bn_lp_epochs,
                        ft_epochs=self.ft_epochs, probe_solver="auto")

    def spec(self, ratio: float, seed: int, heads: int | None = None, *, scored: bool = True,
             analyses: dict | None = None) -> RunSpec:
        """The run at a fixed ``ratio``; ``heads`` (with :attr:`width`) only where it differs from the size preset,
        so a run that 02 also trains has 02's training identity (one checkpoint). ``scored=False``: no probes;
        ``analyses``: the :data:`ANALYSES` it runs, by name, with their settings."""
        overrides = {"pool": self.vit_pool, "patch": self.vit_patch}
        if heads is not None:
            preset = SIZES["vit"][self.vit_size]
            if self.width != preset["dim"]:
                overrides["dim"] = self.width
            if heads != preset["heads"]:
                overrides["heads"] = heads
        train = image_schedule(self.steps, self.batch_size, self.lr)
        return image_spec("vit", self.vit_size, fixed_method(ratio), seed, train,
                          evaluation=self.evaluation() if scored else None, analyses=analyses,
                          dataset=self.dataset, n_val=self.n_val, n_pretrain=self.n_pretrain or None,
                          overrides=overrides,
                          tags={} if heads is None else {"heads": heads})


def ratio_specs(config: Config) -> list[RunSpec]:
    """Fig. 2 / Theorem 4.3 runs: every ratio × the first ``ratio_seeds`` seeds (analysis ``components``)."""
    components = {"n_test_images": config.n_test_images, "k": config.n_components, "min_energy": config.min_energy,
                  "mask_seed": config.seed, "bound_batch": config.bound_batch}
    return [config.spec(r, s, scored=False, analyses={"components": components}) for r in config.ratios
            for s in config.seeds[: config.ratio_seeds]]


def _probe_analyses(config: Config) -> dict:
    segmentation = {"n_seg_images": config.n_seg_images, "ks": list(config.seg_ks), "seed": config.seed,
                    "n_show": config.n_show, "n_init": config.kmeans_init}
    return {"table1": {"partial": True}, "segmentation": segmentation}


def probe_specs(config: Config) -> list[RunSpec]:
    """Table 1 runs: ``probe_ratio`` × every seed (analyses ``table1`` and ``segmentation``)."""
    return [config.spec(config.probe_ratio, s, analyses=_probe_analyses(config)) for s in config.seeds]


def heads_specs(config: Config) -> dict[int, list[RunSpec]]:
    """Table 2 runs: per head count, ``probe_ratio`` × every seed at width :attr:`Config.width` (analysis
    ``table1`` without partial fine-tuning; a heads run with the size preset's width and heads is the probe
    run, with its analyses)."""
    preset = SIZES["vit"][config.vit_size]
    out = {}
    for h in config.head_counts:
        probe = h == preset["heads"] and config.width == preset["dim"]
        analyses = _probe_analyses(config) if probe else {"table1": {"partial": False}}
        out[h] = [config.spec(config.probe_ratio, s, heads=h, analyses=analyses) for s in config.seeds]
    return out


def plan(config: Config) -> list[RunSpec]:
    """Every run of the study: the ratio runs, the probe runs, the heads runs."""
    return ratio_specs(config) + probe_specs(config) + [s for specs in heads_specs(config).values() for s in specs]


def data_names(config: Config) -> list[str]:
    """The prepared datasets the runs of ``config`` read (``data/<name>/``)."""
    return [config.dataset]


def data_checksum(config: Config) -> str:
    """The checksum of the data every run of ``config`` reads (part of every run's key)."""
    from ..data import fingerprint

    return fingerprint(config.dataset)


def data_digest(config: Config) -> str:
    """The digest of the prepared images every run reads (:func:`r2mae_core.experiments.image_runs.data_digest`)."""
    return image_runs.data_digest(config.dataset)


def _slope(d: np.ndarray) -> float:
    """Least-squares slope of ``d_i`` against ``i = 1, 2, ...`` over the finite entries (NaN with fewer than 2)."""
    ok = np.isfinite(d)
    if ok.sum() < 2:
        return float("nan")
    i = np.arange(1, len(d) + 1)[ok]
    return float(np.polyfit(i, d[ok], 1)[0])


def component_table(model: torch.nn.Module, spec: RunSpec, params: dict, device: str = "cpu") -> dict:
    """Fig. 2 and Theorem 4.3 on one ratio run: SVD-component distances and both sides of the bound.

    The first ``n_test_images`` test images are masked at the run's training ratio (masks from ``mask_seed``:
    every run of that ratio sees the same masks); per image, :func:`r2mae_core.spectral.component_distances` of
    its masked-patch matrix :math:`X_0` and reconstruction :math:`\\hat X_0` (``k`` components, those under
    ``min_energy`` left out; :func:`r2mae_core.spectral.masked_patch_matrices`); per batch of ``bound_batch``
    images, :func:`r2mae_core.spectral.spectral_bound` with ``M`` the stacked reconstructions and ``N`` the stacked
    targets (masked patches × pixels); per image, the same bound on its own matrices.

    Returns
    -------
    dict
        ``components``: one row per (image, component ``i``) with ``distance``; ``images``: one row per image with
        its ``slope`` (least-squares slope of ``d_i`` over ``i``) and per-image bound ``lhs``/``rhs``/``ratio``;
        ``batches``: one row per test batch with ``lhs``, ``rhs``, ``ratio``, ``holds``.
    """
    ratio, batch = spec.method.ratio, params["bound_batch"]
    images = load_images(spec.data["dataset"]).test_images[: params["n_test_images"]]
    mp = spectral.masked_patch_matrices(model, images, ratio, seed=params["mask_seed"], device=device)
    d = spectral.component_distances(mp.targets, mp.preds, k=params["k"], min_energy=params["min_energy"])  # (N, k)
    n = len(d)
    comps = pd.DataFrame({"image": np.repeat(np.arange(n), d.shape[1]),
                          "component": np.tile(np.arange(1, d.shape[1] + 1), n), "distance": d.ravel()})
    per_image = spectral.spectral_bound(mp.preds.astype(np.float64), mp.targets.astype(np.float64))
    imgs = pd.DataFrame({"image": np.arange(n), "slope": [_slope(row) for row in d], "lhs": per_image.lhs,
                         "rhs": per_image.rhs, "bound_ratio": per_image.ratio})
    rows = []
    for b, start in enumerate(range(0, n, batch)):
        M = mp.preds[start:start + batch].reshape(-1, mp.preds.shape[-1]).astype(np.float64)
        N = mp.targets[start:start + batch].reshape(-1, mp.targets.shape[-1]).astype(np.float64)
        bound = spectral.spectral_bound(M, N)
        rows.append({"batch": b, "lhs": bound.lhs, "rhs": bound.rhs, "bound_ratio": bound.ratio,
                     "holds": bound.holds()})
    return {"components": comps, "images": imgs, "batches": pd.DataFrame(rows)}


def segmentation_table(model: torch.nn.Module, spec: RunSpec, params: dict, device: str = "cpu") -> dict:
    """Fig. 3 and the spectral-clustering comparison on one run.

    For each of the first ``n_seg_images`` test images and each ``k`` of ``ks``: k-means labels
    (:func:`r2mae_core.spectral.patch_kmeans`, ``n_init`` restarts, seeded by ``seed``) of its patch features
    from three sources — the pretrained MAE's encoder tokens (``"MAE"``), the same ViT randomly initialised
    (``"random init"``), and the raw patch pixels (``"pixels"``, a reference: Fashion-MNIST's zero background
    makes pixel clustering nearly exact) — scored by :func:`r2mae_core.spectral.foreground_agreement` (object IoU,
    best cluster → object assignment) and by :func:`r2mae_core.spectral.cluster_nmi` against NJW spectral
    clustering of the raw patch pixels (:func:`r2mae_core.spectral.spectral_embedding_clusters`, RBF affinity
    with the median bandwidth). ``k = 1`` IoU (every patch object) is the ``"one cluster"`` baseline.

    Returns
    -------
    dict
        ``scores``: one row per (image, k, features) with ``iou`` and ``nmi``; ``examples``: the first ``n_show``
        images (``(n, H, W)`` uint8), the object mask ``(n, L)`` and ``labels`` ``{features: {str(k): (n, L)}}``
        including ``"spectral"`` (:func:`example_labels` keys them by ``(features, k)``).
    """
    seed, n_init, n_show = params["seed"], params["n_init"], params["n_show"]
    images = load_images(spec.data["dataset"]).test_images[: params["n_seg_images"]]
    random = models.build_model("vit", seed=spec.seed, **spec.model)
    patch = spec.model["patch"]
    feats = {"MAE": evaluate.extract_features(model, images, tokens=True, device=device),
             "random init": evaluate.extract_features(random, images, tokens=True, device=device),
             "pixels": patchify(images_to_tensor(images), patch).numpy()}  # (n, L, D)
    rows, labels = [], {name: {} for name in ("spectral", *feats)}
    n = len(images)
    one = spectral.foreground_agreement(np.zeros((n, feats["pixels"].shape[1]), np.int64), images, patch)
    for k in params["ks"]:
        spec_lab = np.stack([spectral.spectral_embedding_clusters(x, k, seed=seed, n_init=n_init)
                             for x in feats["pixels"]])
        labels["spectral"][str(k)] = spec_lab[:n_show]
        for name, f in feats.items():
            lab = spectral.patch_kmeans(f, k, seed=seed, n_init=n_init)  # (n, L)
            labels[name][str(k)] = lab[:n_show]
            iou = spectral.foreground_agreement(lab, images, patch)
            nmi = [spectral.cluster_nmi(a, b) for a, b in zip(lab, spec_lab, strict=True)]
            rows += [{"image": i, "k": k, "features": name, "iou": iou[i], "nmi": nmi[i]} for i in range(n)]
    rows += [{"image": i, "k": 1, "features": "one cluster", "iou": one[i], "nmi": np.nan} for i in range(n)]
    examples = {"images": images[:n_show], "object": spectral.patch_object_mask(images[:n_show], patch),
                "labels": labels}
    return {"scores": pd.DataFrame(rows), "examples": examples}


def example_labels(examples: dict) -> dict:
    """:func:`segmentation_table`'s examples with the labels keyed by ``(features, k)`` (the figure's form)."""
    labels = {(name, int(k)): lab for name, by_k in examples["labels"].items() for k, lab in by_k.items()}
    return {**examples, "labels": labels}


def table1_probes(model: torch.nn.Module, spec: RunSpec, params: dict, device: str = "cpu") -> dict:
    """The probes of the 2023 paper's Table 1 that 02 does not run, on the probes' images.

    - ``lp_raw_test``: its LP, a linear head on the raw (un-normalised) frozen features trained exactly like
      BN+LP (:func:`r2mae_core.evaluate.bn_linear_probe` with ``batch_norm=False``, ``bn_lp_epochs`` epochs), so
      LP and BN+LP differ only by the BatchNorm. 02's ``lp_test`` standardises the features first and is kept
      as a reference.
    - ``partial_ft_test`` (when ``params["partial"]``): partial fine-tuning, the BN+linear head of BN+LP and the
      last block's ``qkv`` projection trained (:func:`r2mae_core.evaluate.finetune`, ``mode="partial"``) for the
      same ``bn_lp_epochs`` epochs.

    Trained on the first ``n_probe_train`` non-validation images and scored on the first ``n_probe_eval`` test
    images of the spec's evaluation, as every probe of
    :func:`r2mae_core.experiments.image_runs.evaluate_model`.
    """
    evaluation = eval_spec(spec)
    dataset = spec.data["dataset"]
    data = load_images(dataset)
    tr = splits(dataset, spec.data["n_val"]).pool[: evaluation.n_probe_train]
    te = slice(0, evaluation.n_probe_eval)
    x_tr, y_tr = data.train_images[tr], data.train_labels[tr]
    x_te, y_te = data.test_images[te], data.test_labels[te]
    f_tr = evaluate.extract_features(model, x_tr, device=device)
    f_te = evaluate.extract_features(model, x_te, device=device)
    out = {"lp_raw_test": float(evaluate.bn_linear_probe(f_tr, y_tr, f_te, y_te, epochs=evaluation.bn_lp_epochs,
                                                         seed=spec.seed, batch_norm=False, device=device).test_acc)}
    if params["partial"]:
        out["partial_ft_test"] = float(evaluate.finetune(model, x_tr, y_tr, x_te, y_te, mode="partial",
                                                         epochs=evaluation.bn_lp_epochs, seed=spec.seed,
                                                         device=device).test_acc)
    return out


#: The analyses a 06 run may name (:data:`r2mae_core.experiments.image_runs.Analysis`).
ANALYSES = {"components": component_table, "segmentation": segmentation_table, "table1": table1_probes}


def work(group: list[RunSpec], options: Options) -> list[dict]:
    """The engine's work on a group of 06 runs: :func:`r2mae_core.experiments.image_runs.work` with
    :data:`ANALYSES`."""
    return image_runs.work(group, options, ANALYSES)


def run(config: Config, *, device: str = "cpu", progress: bool = True, compile: bool = False,
        group_size: int = 1) -> dict:
    """Train (or reload) and analyse every run of the study, each cached; tidy results.

    ``device``, ``compile`` (``torch.compile`` for training on GPU) and ``group_size`` (runs trained together as
    an ensemble, :mod:`r2mae_core.runs`) only change speed.

    Returns
    -------
    dict
        ``components``, ``images``, ``batches`` (Fig. 2 / Theorem 4.3 over the ratio runs, see
        :func:`component_table`); ``probes`` (one row per probe run: ``lp_raw_test``, ``bn_lp_test``,
        ``partial_ft_test``, ``ft_test``, ``lp_test`` (standardised), ...); ``heads`` (one row per heads run
        with ``heads``); ``segmentation`` (scores of every probe run, with ``seed``, see
        :func:`segmentation_table`) and ``examples`` (the first seed's).
    """
    ratio, probes = ratio_specs(config), probe_specs(config)
    heads = [s for specs in heads_specs(config).values() for s in specs]
    runs = ratio + probes + heads
    records = run_records(runs, Options(device=device, compile=compile), work=work, group_size=group_size,
                          desc="06 runs", progress=progress)
    found = [rec["analyses"] for rec in records]
    rows = run_rows(runs, records)
    n_ratio, n_probe = len(ratio), len(probes)

    out = {}
    for name in ("components", "images", "batches"):
        out[name] = pd.concat([a["components"][name].assign(ratio=s.method.ratio, seed=s.seed)
                               for s, a in zip(ratio, found[:n_ratio], strict=True)], ignore_index=True)
    table1 = [{**row.to_dict(), **a["table1"]} for (_, row), a in zip(rows.iloc[n_ratio:].iterrows(),
                                                                       found[n_ratio:], strict=True)]
    out["probes"] = pd.DataFrame(table1[:n_probe])
    out["heads"] = pd.DataFrame(table1[n_probe:])
    segs = found[n_ratio:n_ratio + n_probe]
    out["segmentation"] = pd.concat([a["segmentation"]["scores"].assign(seed=s.seed) for a, s in
                                     zip(segs, probes, strict=True)], ignore_index=True)
    out["examples"] = example_labels(segs[0]["segmentation"]["examples"])
    out["width"] = config.width
    return out
