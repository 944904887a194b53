"""02_vision: masked autoencoders on real images — the mask ratio across architectures and sizes, R²MAE against
fixed, scheduled and other random-ratio baselines and the fixed ratio of equal population effect, and U-MAE.

``run(config)`` trains (resumably, cached) every run the config names and returns tidy tables;
:mod:`r2mae_core.experiments.vision_claims` turns them into the claims V0–V6. One run = one
:class:`~r2mae_core.experiments.image_runs.RunSpec`; runs shared between experiments (e.g. the ViT fixed-ratio
runs of the sweep and of the method comparison) have the same spec, so they are trained once.

Selection is on the validation split only: the best fixed ratio of the comparison is the fixed-ratio candidate
with the highest mean **validation** LP accuracy; every reported accuracy is on the official test set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from .. import evaluate
from .._rng import child_seeds
from ..masking import make_sampler, random_subset_mask
from ..models.blocks import as_token_mask, images_to_tensor
from ..runs import (
    Method,
    Options,
    RunSpec,
    equivalent_control,
    equivalent_fixed_method,
    fixed_method,
    r2mae_method,
    r2mae_name,
)
from ..validation import (
    NON_NEGATIVE,
    POSITIVE,
    check_bool,
    check_choice,
    check_choices,
    check_fields,
    check_int,
    check_intervals,
    check_member,
    check_per,
    check_ratio,
    check_ratios,
    check_seed,
    count,
    param,
)
from . import image_runs
from .image_runs import (
    SIZES,
    EvalSpec,
    check_dataset,
    image_schedule,
    image_spec,
    load_images,
    reference_specs,
    run_records,
    run_rows,
    splits,
)

__all__ = ["Config", "methods", "controls", "sweep_specs", "method_specs", "reference_run_specs", "plan", "work", "run",
           "best_fixed", "spectrum", "reconstruction_examples", "FAMILIES", "ANALYSES", "DRY_RUN", "BLOCK_MASKS",
           "data_names",
           "data_checksum", "data_digest"]

FAMILIES = tuple(SIZES)

#: The GPU route's dry run (:mod:`r2mae_core.campaign`): the profile's plan with two steps and small data on the
#: CPU (every method, architecture, size and seed; probes on a few hundred images). A callable maps the
#: profile's value.
DRY_RUN = {"n_pretrain": 600, "batch_size": 16, "method_steps": 2, "n_probe_train": 200, "n_probe_eval": 100,
           "bn_lp_epochs": 1, "ft_epochs": 1, "n_recon_images": 2, "device": "cpu",
           "sweep": lambda sweep: {family: {**entry, "steps": 2} for family, entry in sweep.items()}}

#: The scheduled baselines of the method comparison: ``linear``/``cosine`` (decay over the R²MAE interval),
#: ``maskgit`` (MaskGIT cosine), ``truncnorm`` (MAGE's truncated Gaussian).
BASELINES = ("linear", "cosine", "maskgit", "truncnorm")


def check_sweep(name: str, sweep: object) -> dict:
    """Experiment 1's sweep: a mapping architecture -> ``{"sizes": [...], "steps": n}`` of known architectures
    and sizes (one ``ValueError`` line otherwise)."""
    if not isinstance(sweep, dict):
        raise ValueError(f"{name}={sweep!r} is not allowed: use a mapping architecture -> "
                         "{'sizes': [...], 'steps': n}")
    for family, entry in sweep.items():
        if family not in FAMILIES:
            raise ValueError(f"{name} family {family!r} is not allowed: use some of {', '.join(FAMILIES)}")
        if not isinstance(entry, dict) or set(entry) != {"sizes", "steps"}:
            raise ValueError(f"{name}[{family!r}]={entry!r} is not allowed: use {{'sizes': [...], 'steps': n}}")
        check_int(f"{name}[{family!r}]['steps']", entry["steps"], 1)
        sizes = list(entry["sizes"]) if isinstance(entry["sizes"], list | tuple) else [entry["sizes"]]
        if not sizes or any(size not in SIZES[family] for size in sizes):
            raise ValueError(f"{name}[{family!r}]['sizes']={entry['sizes']!r} is not allowed: use some of "
                             f"{', '.join(SIZES[family])}")
    return sweep


@dataclass(frozen=True)
class Config:
    """One 02_vision study (smoke defaults; ``parameters/{quick,full}/02_vision.yaml`` scale it).

    R²MAE's default interval ``[r2mae_low, r2mae_high]`` is declared here (and in the YAML) before any run;
    scheduled baselines decay over the same interval (``r2mae_high → r2mae_low``).

    Attributes
    ----------
    seed, n_seeds
        Master seed; the runs use ``n_seeds`` child seeds (``SeedSequence``), the same for every method, so
        differences are paired by seed. The sweep uses the first ``sweep_seeds`` of them.
    dataset, n_val, n_pretrain
        Image dataset, validation hold-out (from the official training images) and pretraining images
        (0 = every non-validation image).
    batch_size, lr
        Pretraining batch and peak AdamW rate (warmup + cosine) of every run.
    n_probe_train, n_probe_eval, knn_k, bn_lp_epochs, ft_epochs, test_ratios
        Evaluation (see :class:`~r2mae_core.experiments.image_runs.EvalSpec`); ``ft_epochs = 0`` skips full
        fine-tuning, ``bn_lp_epochs = 0`` skips BN+LP.
    sweep, sweep_ratios, sweep_seeds
        Experiment 1: ``sweep`` maps an architecture to ``{"sizes": [...], "steps": n}``; every size is trained
        at every ratio of ``sweep_ratios`` for ``sweep_seeds`` seeds.
    vit_size, vit_pool, vit_patch, method_steps, fixed_ratios
        Experiment 2: the ViT of the method comparison and its fixed-ratio candidates (best chosen on
        validation LP).
    r2mae_low, r2mae_high, r2mae_per
        The declared R²MAE interval and whether it draws one ratio per batch or per sample.
    baselines
        Other samplers over the same budget: ``linear``/``cosine`` (decay over the R²MAE interval),
        ``maskgit`` (MaskGIT cosine), ``truncnorm`` (MAGE's truncated Gaussian).
    ablation_intervals, ablation_per_sample
        R²MAE ablations: other intervals ``[[a, b], ...]`` and the per-sample draw.
    ablation_blocks, block_fixed_ratios
        Positions ablation: the declared R²MAE and the fixed candidates ``block_fixed_ratios`` (a subset of
        ``fixed_ratios``; empty: all of them) trained again with block masks (BEiT's blockwise masking,
        :func:`r2mae_core.masking.block_mask`: rectangles of patches, the same count per image as the random
        subset) instead of random positions, at the same ratio laws.
    umae_weight, umae_ratio, umae_r2mae
        Experiment 3: U-MAE's λ, the fixed ratio of its MAE/U-MAE pair (must be a fixed candidate), and whether
        to add the R²MAE/R²MAE + U-MAE pair.
    recon_ratios, n_recon_images
        Experiment 4: the test ratios and number of validation images of the reconstruction figure.
    """

    seed: int = param(0, check_seed)
    n_seeds: int = param(2, count(1))
    dataset: str = "fashion_mnist"
    n_val: int = param(10000, count(1))
    n_pretrain: int = param(4000, count(0))
    batch_size: int = param(128, count(1))
    lr: float = param(1.5e-3, POSITIVE)
    n_probe_train: int = 2000
    n_probe_eval: int = 1000
    knn_k: int = 20
    bn_lp_epochs: int = 0
    ft_epochs: int = 0
    test_ratios: tuple[float, ...] = param((0.25, 0.5, 0.75, 0.9), check_ratios)
    sweep: dict = param({"mlp": {"sizes": ["S"], "steps": 40}, "cnn": {"sizes": ["S"], "steps": 10},
                         "vit": {"sizes": ["S"], "steps": 30}}, check_sweep)
    sweep_ratios: tuple[float, ...] = param((0.25, 0.5, 0.75), check_ratios)
    sweep_seeds: int = param(1, count(1))
    vit_size: str = param("S", check_choice, choices=SIZES["vit"])
    vit_pool: str = param("mean", check_choice, choices=("cls", "mean"))
    vit_patch: int = param(4, count(1))
    method_steps: int = param(30, count(1))
    fixed_ratios: tuple[float, ...] = param((0.5, 0.75), check_ratios)
    r2mae_low: float = param(0.5, check_ratio)
    r2mae_high: float = param(0.9, check_ratio)
    r2mae_per: str = param("batch", check_per)
    baselines: tuple[str, ...] = param(("linear",), check_choices, choices=BASELINES)
    ablation_intervals: tuple = param((), check_intervals)
    ablation_per_sample: bool = param(False, check_bool)
    ablation_blocks: bool = param(False, check_bool)
    block_fixed_ratios: tuple[float, ...] = param((), check_ratios, min_len=0)
    umae_weight: float = param(0.01, NON_NEGATIVE)
    umae_ratio: float = param(0.75, check_ratio)
    umae_r2mae: bool = param(True, check_bool)
    recon_ratios: tuple[float, ...] = param((0.25, 0.5, 0.75, 0.9), check_ratios)
    n_recon_images: int = param(4, count(1))

    def __post_init__(self) -> None:
        """The declared checks of the fields (:func:`~r2mae_core.validation.check_fields`), then the rules that
        join fields; the evaluation settings are checked by :class:`~r2mae_core.experiments.image_runs.EvalSpec`
        and the ViT's by its model config."""
        check_fields(self)
        object.__setattr__(self, "sweep", {f: dict(v) for f, v in self.sweep.items()})
        check_dataset(self.dataset)
        if self.sweep_seeds > self.n_seeds:
            raise ValueError(f"sweep_seeds={self.sweep_seeds!r} is not allowed: use at most n_seeds={self.n_seeds}")
        for ratio in self.block_fixed_ratios:
            if ratio not in self.fixed_ratios:
                raise ValueError(f"block_fixed_ratios={list(self.block_fixed_ratios)!r} is not allowed: use ratios "
                                 f"of fixed_ratios {list(self.fixed_ratios)} (each block run has its random-position "
                                 "twin)")
        if not self.r2mae_low < self.r2mae_high:
            raise ValueError(f"r2mae_low={self.r2mae_low!r}, r2mae_high={self.r2mae_high!r} is not allowed: "
                             "use r2mae_low < r2mae_high")
        check_member("umae_ratio", self.umae_ratio, "fixed_ratios", self.fixed_ratios)
        self.evaluation()  # one clear line for a bad evaluation setting
        self.run_spec("vit", self.vit_size, fixed_method(self.fixed_ratios[0]), 0, 1)

    @property
    def seeds(self) -> list[int]:
        """The run seeds (children of ``seed``), shared by every method."""
        return child_seeds(self.seed, self.n_seeds)

    def evaluation(self, *, sweep: bool = False) -> EvalSpec:
        """How the runs are scored; ``sweep``: the sweep's runs, without BN+LP and fine-tuning (its table and
        claim V1 read LP, k-NN, effective rank and reconstruction only)."""
        return EvalSpec(test_ratios=self.test_ratios, n_probe_train=self.n_probe_train,
                        n_probe_eval=self.n_probe_eval, knn_k=self.knn_k,
                        bn_lp_epochs=0 if sweep else self.bn_lp_epochs, ft_epochs=0 if sweep else self.ft_epochs,
                        probe_solver="auto")

    def overrides(self, family: str) -> dict:
        """Config fields that differ from the size preset (the ViT's pooling and patch size)."""
        return {"pool": self.vit_pool, "patch": self.vit_patch} if family == "vit" else {}

    def run_spec(self, family: str, size: str, method: Method, seed: int, steps: int, *,
                 analyses: dict | None = None, evaluation: EvalSpec | None = None, **tags) -> RunSpec:
        """The run of ``method`` on ``family``-``size`` with ``seed`` for ``steps`` steps, scored by
        ``evaluation`` (default :meth:`evaluation`), with the :data:`ANALYSES` named in ``analyses``."""
        return image_spec(family, size, method, seed, image_schedule(steps, self.batch_size, self.lr),
                          evaluation=evaluation or self.evaluation(), analyses=analyses, dataset=self.dataset,
                          n_val=self.n_val, n_pretrain=self.n_pretrain or None, overrides=self.overrides(family),
                          tags=tags)

    def analyses(self, method: Method, seed: int) -> dict:
        """The analyses of the method comparison's run of ``method`` with ``seed``: on the first seed, the feature
        spectrum of the U-MAE experiment's methods (fixed ``umae_ratio``, the declared R²MAE, the U-MAE group)
        and the reconstructions of the fixed candidates and the declared R²MAE."""
        if seed != self.seeds[0]:
            return {}
        out = {}
        declared = method.group == "r2mae"
        if declared or method.group == "umae" or (method.group == "fixed" and method.ratio == self.umae_ratio):
            out["spectrum"] = {"n_images": self.n_probe_eval}
        if declared or method.group == "fixed":
            out["reconstructions"] = {"ratios": list(self.recon_ratios), "n_images": self.n_recon_images,
                                      "seed": seed}
        return out


#: The mask options of the positions ablation's methods (:attr:`r2mae_core.runs.Method.mask`).
BLOCK_MASKS = {"generator": "block"}


def methods(config: Config) -> list[Method]:
    """Every recipe of experiments 2–3, in table order (names are the row labels).

    Groups: ``fixed`` (the candidates), ``r2mae`` (declared interval), ``equivalent`` (the fixed ratio of equal
    population effect of each R²MAE law that no candidate already trains: :func:`controls`), ``baseline``
    (scheduled decay over the declared interval, MaskGIT cosine, truncated Gaussian), ``ablation`` (other
    intervals, per sample), ``blocks`` (the declared R²MAE, fixed candidates and the declared R²MAE's control with
    block masks: ``mask = {"generator": "block"}``), ``umae`` (U-MAE at ``umae_ratio`` and R²MAE + U-MAE).
    """
    low, high, per = config.r2mae_low, config.r2mae_high, config.r2mae_per
    out = [fixed_method(r) for r in config.fixed_ratios]
    out.append(r2mae_method(low, high, per))
    specs = {"linear": {"kind": "scheduled", "start": high, "end": low, "shape": "linear", "per": per},
             "cosine": {"kind": "scheduled", "start": high, "end": low, "shape": "cosine", "per": per},
             "maskgit": {"kind": "maskgit", "per": per}, "truncnorm": {"kind": "truncnorm", "per": per}}
    baselines = []
    for name in config.baselines:
        spec = specs[name]
        baselines.append(Method(make_sampler(spec).describe(), spec["kind"], spec, "baseline"))
    for a, b in config.ablation_intervals:
        if (a, b) != (low, high):
            baselines.append(r2mae_method(a, b, per, group="ablation"))
    if config.ablation_per_sample:
        baselines.append(r2mae_method(low, high, "sample" if per == "batch" else "batch", group="ablation"))
    out += _new_controls(out + baselines) + baselines
    if config.ablation_blocks:
        blocks = [replace(m, name=f"{m.name} blocks", group="blocks", mask=dict(BLOCK_MASKS))
                  for m in [fixed_method(r) for r in config.block_fixed_ratios or config.fixed_ratios]
                  + [r2mae_method(low, high, per)]]
        out += blocks + _new_controls(blocks, rename=True)
    lam = config.umae_weight
    out.append(fixed_method(config.umae_ratio, group="umae", uniformity_weight=lam,
                            name=f"U-MAE fixed {config.umae_ratio:g}"))
    if config.umae_r2mae:
        out.append(r2mae_method(low, high, per, group="umae", uniformity_weight=lam,
                                name=f"{r2mae_name(low, high, per)} + U-MAE"))
    return out


def _new_controls(recipes: list[Method], *, rename: bool = False) -> list[Method]:
    """The equal-effect controls of the R²MAE laws of ``recipes`` that no fixed ratio of ``recipes`` (nor an
    earlier control) already trains, once each; ``rename``: block-mask controls, named ``<random-position
    control> blocks`` in group ``blocks`` (the positions ablation's naming)."""
    out: list[Method] = []
    for method in recipes:
        if method.kind != "r2mae":
            continue
        control = equivalent_control(method, recipes + out)
        if control in recipes + out:
            continue
        if rename:
            plain = equivalent_fixed_method(replace(method, mask={}, name=method.name.removesuffix(" blocks")))
            control = replace(control, name=f"{plain.name} blocks", group="blocks")
        out.append(control)
    return out


def controls(config: Config) -> pd.DataFrame:
    """The equal-effect control of every R²MAE law of the comparison (the declared interval, the ablations, the
    declared interval with block masks), one row each: ``r2mae`` (its name), ``positions`` (``random`` or
    ``blocks``), ``m_eq`` (:func:`r2mae_core.runs.equivalent_fixed_method`), ``control`` (the method trained at
    m_eq with the same positions) and ``in_grid`` (whether the control is a fixed candidate of the grid, trained
    once for both roles). U-MAE's R²MAE has none."""
    every = methods(config)
    grid = {m.name for m in every if m.group == "fixed"}
    rows = []
    for method in every:
        if method.kind != "r2mae" or method.group not in ("r2mae", "ablation", "blocks"):
            continue
        control = equivalent_control(method, [m for m in every if m.group in ("fixed", "equivalent", "blocks")])
        rows.append({"r2mae": method.name, "positions": "blocks" if method.mask else "random",
                     "m_eq": equivalent_fixed_method(method).ratio, "control": control.name,
                     "in_grid": control.name.removesuffix(" blocks" if method.mask else "") in grid})
    return pd.DataFrame(rows, columns=["r2mae", "positions", "m_eq", "control", "in_grid"])


def sweep_specs(config: Config) -> list[RunSpec]:
    """Experiment 1: every (family, size, fixed ratio, sweep seed) run, scored without BN+LP and fine-tuning
    (:meth:`Config.evaluation`); a run with the method comparison's ViT and steps is that comparison's run (its
    evaluation and analyses), so it trains and is scored once."""
    def spec(family: str, size: str, ratio: float, seed: int, steps: int) -> RunSpec:
        method = fixed_method(ratio)
        if family == "vit" and size == config.vit_size and steps == config.method_steps:
            return config.run_spec(family, size, method, seed, steps, analyses=config.analyses(method, seed),
                                   part="sweep")
        return config.run_spec(family, size, method, seed, steps, evaluation=config.evaluation(sweep=True),
                               part="sweep")

    return [spec(family, size, ratio, seed, entry["steps"]) for family, entry in config.sweep.items()
            for size in entry["sizes"] for ratio in config.sweep_ratios for seed in config.seeds[: config.sweep_seeds]]


def method_spec(config: Config, method: Method, seed: int) -> RunSpec:
    """The method comparison's run of ``method`` with ``seed`` (the comparison ViT, ``method_steps``); the
    positions ablation's runs (group ``blocks``) are scored as the sweep's (LP, k-NN, effective rank,
    reconstruction; no BN+LP or fine-tuning): its table and claim V5 read test LP."""
    evaluation = config.evaluation(sweep=method.group == "blocks")
    return config.run_spec("vit", config.vit_size, method, seed, config.method_steps,
                           analyses=config.analyses(method, seed), evaluation=evaluation, part="methods")


def method_specs(config: Config) -> list[RunSpec]:
    """Experiments 2–3: every (method, seed) run, methods in table order."""
    return [method_spec(config, m, s) for m in methods(config) for s in config.seeds]


def reference_run_specs(config: Config) -> list[RunSpec]:
    """The reference rows: raw pixels and every sweep model randomly initialised (first seed), and the
    comparison ViT randomly initialised on every other seed."""
    evaluation, first = config.evaluation(), config.seeds[0]
    sweep_models = [(f, s, config.overrides(f)) for f, entry in config.sweep.items() for s in entry["sizes"]]
    vit = [("vit", config.vit_size, config.overrides("vit"))]
    specs = reference_specs(config.dataset, config.n_val, evaluation, sweep_models, seed=first)
    specs += [spec for s in config.seeds[1:] for spec in
              reference_specs(config.dataset, config.n_val, evaluation, vit, seed=s, pixels=False)]
    return [replace(spec, tags={"part": "references"}) for spec in specs]


def plan(config: Config) -> list[RunSpec]:
    """Every run of the study: the sweep, the method comparison (a run in both trains once), the references."""
    return sweep_specs(config) + method_specs(config) + reference_run_specs(config)


def data_names(config: Config) -> list[str]:
    """The prepared datasets the runs of ``config`` read (``data/<name>/``)."""
    return [config.dataset]


def data_checksum(config: Config) -> str:
    """The checksum of the data every run of ``config`` reads (part of every run's key)."""
    from ..data import fingerprint

    return fingerprint(config.dataset)


def data_digest(config: Config) -> str:
    """The digest of the prepared images every run reads (:func:`r2mae_core.experiments.image_runs.data_digest`;
    each run's record carries the one it used)."""
    return image_runs.data_digest(config.dataset)


def best_fixed(method_rows: pd.DataFrame, *, metric: str = "lp_val") -> str:
    """The fixed-ratio method with the highest mean ``metric`` over seeds (validation split by default).

    Ties go to the first in table order. Only ``group == "fixed"`` rows take part.
    """
    fixed = method_rows[method_rows["group"] == "fixed"]
    if fixed.empty:
        raise ValueError("method_rows has no fixed-ratio rows: cannot choose the best fixed ratio")
    means = fixed.groupby("method", sort=False)[metric].mean()
    return str(means.idxmax())


def spectrum(model: torch.nn.Module, spec: RunSpec, params: dict, device: str = "cpu") -> pd.DataFrame:
    """Normalised singular values σ_i/Σσ of the model's centred features of the first ``params["n_images"]``
    test images (the images the probes are scored on): one row per ``index`` i = 1, 2, ... with ``sv``."""
    images = load_images(spec.data["dataset"]).test_images[: params["n_images"]]
    sv = evaluate.singular_values(evaluate.extract_features(model, images, device=device), normalize=True)
    return pd.DataFrame({"index": np.arange(1, len(sv) + 1), "sv": sv})


def reconstruction_examples(model: torch.nn.Module, spec: RunSpec, params: dict, device: str = "cpu") -> dict:
    """Input, mask and reconstruction of the first ``params["n_images"]`` validation images at each ratio of
    ``params["ratios"]`` (masks seeded by ``params["seed"]``, the same for every model).

    Returns ``{"ratios": [r, ...], "image": (n, H, W), "mask": (R, n, H, W) bool, "recon": (R, n, H, W)}``
    (float32 in [0, 1]): ``recon`` is the visible patches of the input pasted over the model's prediction (MAE's
    visualisation); :func:`reconstruction_panels` turns it into the figure's panels.
    """
    dataset, n_val, n_images = spec.data["dataset"], spec.data["n_val"], params["n_images"]
    images = images_to_tensor(load_images(dataset).train_images[splits(dataset, n_val).val[:n_images]])  # (n,1,H,W)
    if model.config.norm_pix:
        raise ValueError("reconstruction_examples needs a pixel-target model: norm_pix=True predicts per-patch "
                         "normalised pixels")
    masks, recons = [], []
    for ratio in params["ratios"]:
        gen = torch.Generator().manual_seed(params["seed"])
        sub = random_subset_mask(torch.full((n_images,), float(ratio)), model.num_patches, generator=gen)
        with torch.no_grad():
            res = model(images.to(device), as_token_mask(sub).to(device))
        pixel_mask = model.reconstruct(res.mask[..., None].float().expand_as(res.pred)).bool().cpu()
        pred = model.reconstruct(res.pred.float()).cpu()
        recons.append(torch.where(pixel_mask, pred.clamp(0, 1), images)[:, 0].numpy())
        masks.append(pixel_mask[:, 0].numpy())
    return {"ratios": [float(r) for r in params["ratios"]], "image": images[:, 0].numpy(),
            "mask": np.stack(masks), "recon": np.stack(recons)}


def reconstruction_panels(examples: dict) -> dict[float, dict[str, np.ndarray]]:
    """``{ratio: {"image", "masked", "recon"}}`` of ``(n, H, W)`` arrays from :func:`reconstruction_examples`:
    ``masked`` is the input with hidden pixels set to NaN (drawn blank)."""
    image = np.asarray(examples["image"])
    return {float(r): {"image": image, "masked": np.where(mask, np.nan, image).astype(image.dtype), "recon": recon}
            for r, mask, recon in zip(examples["ratios"], examples["mask"], examples["recon"], strict=True)}


#: The analyses a 02 run may name (:data:`r2mae_core.experiments.image_runs.Analysis`).
ANALYSES = {"spectrum": spectrum, "reconstructions": reconstruction_examples}


def work(group: list[RunSpec], options: Options) -> list[dict]:
    """The engine's work on a group of 02 runs: :func:`r2mae_core.experiments.image_runs.work` with
    :data:`ANALYSES`."""
    return image_runs.work(group, options, ANALYSES)


def run(config: Config, *, device: str = "cpu", progress: bool = True, compile: bool = False,
        group_size: int = 1) -> dict:
    """Train and evaluate every run of the study (each cached and resumable, :mod:`r2mae_core.runs`); tidy results.

    ``device``, ``compile`` (``torch.compile`` on GPU, bucketed visible tokens) and ``group_size`` (runs of one
    architecture trained together as an ensemble) only change speed.

    Returns
    -------
    dict
        ``sweep`` (one row per sweep run), ``methods`` (one row per method × seed, with the method's columns
        ``method``, ``group``, ``kind``, ``ratio``, ...), ``references`` (raw pixels and random inits, per seed
        for the comparison ViT), ``best_fixed`` (its name, chosen on validation LP), ``vit_size``, ``spectra``
        (normalised singular values of the U-MAE experiment's test features, first seed), ``reconstructions``
        (best fixed and R²MAE, first seed), ``controls`` (each R²MAE law's equal-effect control, :func:`controls`).
    """
    options = Options(device=device, compile=compile)
    runs = plan(config)
    records = run_records(runs, options, work=work, group_size=group_size, desc="02_vision runs",
                          progress=progress)
    rows = run_rows(runs, records)
    parts = {part: rows[rows["part"] == part].drop(columns="part").reset_index(drop=True)
             for part in ("sweep", "methods", "references")}
    method_df = parts["methods"]
    best = best_fixed(method_df)
    by_name = {spec.method.name: rec.get("analyses", {}) for spec, rec in zip(runs, records, strict=True)
               if spec.tags["part"] == "methods" and spec.seed == config.seeds[0]}
    r2 = r2mae_name(config.r2mae_low, config.r2mae_high, config.r2mae_per)
    spectra = pd.concat([found["spectrum"].assign(method=name) for name, found in by_name.items()
                         if "spectrum" in found], ignore_index=True)
    reconstructions = {name: reconstruction_panels(by_name[name]["reconstructions"]) for name in (best, r2)}
    return {"sweep": parts["sweep"], "methods": method_df, "references": parts["references"], "best_fixed": best,
            "vit_size": config.vit_size, "spectra": spectra, "reconstructions": reconstructions,
            "controls": controls(config)}
