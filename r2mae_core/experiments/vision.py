"""02_vision: masked autoencoders on real images — the mask ratio across architectures and sizes, R²MAE against
fixed, scheduled and other random-ratio baselines, and U-MAE.

``run(config)`` trains (resumably, cached) every run the config names and returns tidy tables;
:mod:`r2mae_core.experiments.vision_claims` turns them into the claims V0–V4. One run = one
:class:`~r2mae_core.experiments.image_runs.RunSpec`; runs shared between experiments (e.g. the ViT fixed-ratio
runs of the sweep and of the method comparison) have the same spec, so they are trained once.

Selection is on the validation split only: the best fixed ratio of the comparison is the fixed-ratio candidate
with the highest mean **validation** LP accuracy; every reported accuracy is on the official test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import evaluate
from .._rng import check_seed, child_seeds
from ..cache import cached
from ..data import fingerprint
from ..masking import make_sampler, random_subset_mask
from ..models.blocks import as_token_mask, images_to_tensor
from ..runs import Method, Options, RunSpec, TrainConfig, fixed_method, r2mae_method, r2mae_name
from ._checks import check_int, check_ratio
from .image_runs import SIZES, EvalSpec, image_spec, load_images, reference_rows, run_rows, splits, train_run

__all__ = ["Config", "methods", "sweep_specs", "method_specs", "plan", "run", "best_fixed", "FAMILIES"]

FAMILIES = tuple(SIZES)

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
    umae_weight, umae_ratio, umae_r2mae
        Experiment 3: U-MAE's λ, the fixed ratio of its MAE/U-MAE pair (must be a fixed candidate), and whether
        to add the R²MAE/R²MAE + U-MAE pair.
    recon_ratios, n_recon_images
        Experiment 4: the test ratios and number of validation images of the reconstruction figure.
    """

    seed: int = 0
    n_seeds: int = 2
    dataset: str = "fashion_mnist"
    n_val: int = 10000
    n_pretrain: int = 4000
    batch_size: int = 128
    lr: float = 1.5e-3
    n_probe_train: int = 2000
    n_probe_eval: int = 1000
    knn_k: int = 20
    bn_lp_epochs: int = 0
    ft_epochs: int = 0
    test_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    sweep: dict = field(default_factory=lambda: {"mlp": {"sizes": ["S"], "steps": 40},
                                                 "cnn": {"sizes": ["S"], "steps": 10},
                                                 "vit": {"sizes": ["S"], "steps": 30}})
    sweep_ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    sweep_seeds: int = 1
    vit_size: str = "S"
    vit_pool: str = "mean"
    vit_patch: int = 4
    method_steps: int = 30
    fixed_ratios: tuple[float, ...] = (0.5, 0.75)
    r2mae_low: float = 0.5
    r2mae_high: float = 0.9
    r2mae_per: str = "batch"
    baselines: tuple[str, ...] = ("linear",)
    ablation_intervals: tuple = ()
    ablation_per_sample: bool = False
    umae_weight: float = 0.01
    umae_ratio: float = 0.75
    umae_r2mae: bool = True
    recon_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    n_recon_images: int = 4

    def __post_init__(self) -> None:
        for name in ("test_ratios", "sweep_ratios", "fixed_ratios", "baselines", "recon_ratios"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "ablation_intervals", tuple(tuple(map(float, ab)) for ab in self.ablation_intervals))
        object.__setattr__(self, "sweep", {f: dict(v) if isinstance(v, dict) else v for f, v in self.sweep.items()})
        check_seed(self.seed)
        check_int("n_seeds", self.n_seeds, 1)
        check_int("sweep_seeds", self.sweep_seeds, 1)
        if self.sweep_seeds > self.n_seeds:
            raise ValueError(f"sweep_seeds={self.sweep_seeds!r} is not allowed: use at most n_seeds={self.n_seeds}")
        check_int("n_pretrain", self.n_pretrain, 0)
        for name in ("method_steps", "batch_size", "n_recon_images"):
            check_int(name, getattr(self, name), 1)
        for name in ("r2mae_low", "r2mae_high", "umae_ratio"):
            check_ratio(name, getattr(self, name))
        if not self.r2mae_low < self.r2mae_high:
            raise ValueError(f"r2mae_low={self.r2mae_low!r}, r2mae_high={self.r2mae_high!r} is not allowed: "
                             "use r2mae_low < r2mae_high")
        for name in ("test_ratios", "sweep_ratios", "fixed_ratios", "recon_ratios"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name}=() is not allowed: give at least one mask ratio")
            for v in values:
                check_ratio(name, v)
        for family, entry in self.sweep.items():
            if family not in FAMILIES:
                raise ValueError(f"sweep family {family!r} is not allowed: use some of {', '.join(FAMILIES)}")
            if not isinstance(entry, dict) or set(entry) != {"sizes", "steps"}:
                raise ValueError(f"sweep[{family!r}]={entry!r} is not allowed: use {{'sizes': [...], 'steps': n}}")
            check_int(f"sweep[{family!r}]['steps']", entry["steps"], 1)
            sizes = list(entry["sizes"]) if isinstance(entry["sizes"], list | tuple) else [entry["sizes"]]
            if not sizes or any(size not in SIZES[family] for size in sizes):
                raise ValueError(f"sweep[{family!r}]['sizes']={entry['sizes']!r} is not allowed: use some of "
                                 f"{', '.join(SIZES[family])}")
        if self.vit_size not in SIZES["vit"]:
            raise ValueError(f"vit_size={self.vit_size!r} is not allowed: use one of {', '.join(SIZES['vit'])}")
        bad = [b for b in self.baselines if b not in _BASELINES]
        if bad:
            raise ValueError(f"baselines={bad[0]!r} is not allowed: use some of {', '.join(_BASELINES)}")
        if self.umae_ratio not in self.fixed_ratios:
            raise ValueError(f"umae_ratio={self.umae_ratio!r} is not allowed: use one of fixed_ratios "
                             f"{self.fixed_ratios} (its MAE run is the U-MAE pair's baseline)")
        for ab in self.ablation_intervals:
            if len(ab) != 2 or not 0 < ab[0] < ab[1] < 1:
                raise ValueError(f"ablation_intervals={ab!r} is not allowed: use pairs [a, b] with 0 < a < b < 1")
        self.evaluation()  # one clear line for a bad evaluation setting
        self.run_spec("vit", self.vit_size, fixed_method(self.fixed_ratios[0]), 0, 1)

    @property
    def seeds(self) -> list[int]:
        """The run seeds (children of ``seed``), shared by every method."""
        return child_seeds(self.seed, self.n_seeds)

    def evaluation(self) -> EvalSpec:
        return EvalSpec(test_ratios=self.test_ratios, n_probe_train=self.n_probe_train,
                        n_probe_eval=self.n_probe_eval, knn_k=self.knn_k, bn_lp_epochs=self.bn_lp_epochs,
                        ft_epochs=self.ft_epochs, probe_solver="auto")

    def overrides(self, family: str) -> dict:
        """Config fields that differ from the size preset (the ViT's pooling and patch size)."""
        return {"pool": self.vit_pool, "patch": self.vit_patch} if family == "vit" else {}

    def run_spec(self, family: str, size: str, method: Method, seed: int, steps: int, **tags) -> RunSpec:
        """The run of ``method`` on ``family``-``size`` with ``seed`` for ``steps`` steps."""
        return image_spec(family, size, method, seed, TrainConfig(steps=steps, batch_size=self.batch_size,
                                                                  lr=self.lr, warmup=0.05, weight_decay=0.05),
                          evaluation=self.evaluation(), dataset=self.dataset, n_val=self.n_val,
                          n_pretrain=self.n_pretrain or None, overrides=self.overrides(family), tags=tags)


_BASELINES = ("linear", "cosine", "maskgit", "truncnorm")


def methods(config: Config) -> list[Method]:
    """Every recipe of experiments 2–3, in table order (names are the row labels).

    Groups: ``fixed`` (the candidates), ``r2mae`` (declared interval), ``baseline`` (scheduled decay over
    the declared interval, MaskGIT cosine, truncated Gaussian), ``ablation`` (other intervals, per sample),
    ``umae`` (U-MAE at ``umae_ratio`` and R²MAE + U-MAE).
    """
    low, high, per = config.r2mae_low, config.r2mae_high, config.r2mae_per
    out = [fixed_method(r) for r in config.fixed_ratios]
    out.append(r2mae_method(low, high, per))
    specs = {"linear": {"kind": "scheduled", "start": high, "end": low, "shape": "linear", "per": per},
             "cosine": {"kind": "scheduled", "start": high, "end": low, "shape": "cosine", "per": per},
             "maskgit": {"kind": "maskgit", "per": per}, "truncnorm": {"kind": "truncnorm", "per": per}}
    for name in config.baselines:
        spec = specs[name]
        out.append(Method(make_sampler(spec).describe(), spec["kind"], spec, "baseline"))
    for a, b in config.ablation_intervals:
        if (a, b) != (low, high):
            out.append(r2mae_method(a, b, per, group="ablation"))
    if config.ablation_per_sample:
        out.append(r2mae_method(low, high, "sample" if per == "batch" else "batch", group="ablation"))
    lam = config.umae_weight
    out.append(fixed_method(config.umae_ratio, group="umae", uniformity_weight=lam,
                            name=f"U-MAE fixed {config.umae_ratio:g}"))
    if config.umae_r2mae:
        out.append(r2mae_method(low, high, per, group="umae", uniformity_weight=lam,
                                name=f"{r2mae_name(low, high, per)} + U-MAE"))
    return out


def sweep_specs(config: Config) -> list[RunSpec]:
    """Experiment 1: every (family, size, fixed ratio, sweep seed) run."""
    return [config.run_spec(family, size, fixed_method(ratio), seed, entry["steps"], part="sweep")
            for family, entry in config.sweep.items() for size in entry["sizes"]
            for ratio in config.sweep_ratios for seed in config.seeds[: config.sweep_seeds]]


def method_spec(config: Config, method: Method, seed: int) -> RunSpec:
    """The method comparison's run of ``method`` with ``seed`` (the comparison ViT, ``method_steps``)."""
    return config.run_spec("vit", config.vit_size, method, seed, config.method_steps, part="methods")


def method_specs(config: Config) -> list[RunSpec]:
    """Experiments 2–3: every (method, seed) run, methods in table order."""
    return [method_spec(config, m, s) for m in methods(config) for s in config.seeds]


def plan(config: Config) -> list[RunSpec]:
    """Every pretraining run of the study: the sweep, then the method comparison (a run in both is one run)."""
    return sweep_specs(config) + method_specs(config)


def best_fixed(method_rows: pd.DataFrame, *, metric: str = "lp_val") -> str:
    """The fixed-ratio method with the highest mean ``metric`` over seeds (validation split by default).

    Ties go to the first in table order. Only ``group == "fixed"`` rows take part.
    """
    fixed = method_rows[method_rows["group"] == "fixed"]
    if fixed.empty:
        raise ValueError("method_rows has no fixed-ratio rows: cannot choose the best fixed ratio")
    means = fixed.groupby("method", sort=False)[metric].mean()
    return str(means.idxmax())


def _spectrum(spec: RunSpec, evaluation: EvalSpec, device: str) -> pd.DataFrame:
    """Normalised singular values σ_i/Σσ of the run's centred test features (cached)."""
    def compute() -> pd.DataFrame:
        model = train_run(spec, Options(device=device)).model
        images = load_images(spec.data["dataset"]).test_images[: evaluation.n_probe_eval]
        sv = evaluate.singular_values(evaluate.extract_features(model, images, device=device), normalize=True)
        return pd.DataFrame({"index": np.arange(1, len(sv) + 1), "sv": sv})

    return cached("image_spectra", {"spec": spec.training_identity(), "n": evaluation.n_probe_eval}, compute,
                  data_checksum=fingerprint(spec.data["dataset"]))


def reconstruction_examples(spec: RunSpec, ratios: tuple[float, ...], n_images: int, *, seed: int = 0,
                            device: str = "cpu") -> dict[float, dict[str, np.ndarray]]:
    """Input, mask and reconstruction of the first ``n_images`` validation images at each test ratio.

    Returns ``{ratio: {"image", "masked", "recon"}}`` of ``(n, H, W)`` arrays in [0, 1]: ``masked`` is the
    input with hidden patches set to NaN (drawn blank), ``recon`` the visible patches of the input pasted
    over the model's prediction (MAE's visualisation). Masks are seeded (``seed``), the same for every model.
    """
    model = train_run(spec, Options(device=device)).model
    dataset, n_val = spec.data["dataset"], spec.data["n_val"]
    images = images_to_tensor(load_images(dataset).train_images[splits(dataset, n_val).val[:n_images]])  # (n,1,H,W)
    if model.config.norm_pix:
        raise ValueError("reconstruction_examples needs a pixel-target model: norm_pix=True predicts per-patch "
                         "normalised pixels")
    out = {}
    for ratio in ratios:
        gen = torch.Generator().manual_seed(seed)
        sub = random_subset_mask(torch.full((n_images,), float(ratio)), model.num_patches, generator=gen)
        with torch.no_grad():
            res = model(images.to(device), as_token_mask(sub).to(device))
        pixel_mask = model.reconstruct(res.mask[..., None].float().expand_as(res.pred)).bool().cpu()
        pred = model.reconstruct(res.pred.float()).cpu()
        recon = torch.where(pixel_mask, pred.clamp(0, 1), images)
        masked = images.masked_fill(pixel_mask, float("nan"))
        out[float(ratio)] = {k: v[:, 0].numpy() for k, v in
                             {"image": images, "masked": masked, "recon": recon}.items()}
    return out


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
        (best fixed and R²MAE, first seed).
    """
    evaluation = config.evaluation()
    options = Options(device=device, compile=compile)
    runs = plan(config)
    rows = run_rows(runs, options, group_size=group_size, desc="02_vision runs", progress=progress)
    sweep_df = rows[rows["part"] == "sweep"].drop(columns="part").reset_index(drop=True)
    method_df = rows[rows["part"] == "methods"].drop(columns="part").reset_index(drop=True)

    vit = [("vit", config.vit_size, config.overrides("vit"))]
    refs = [reference_rows(config.dataset, config.n_val, evaluation,
                           [(f, s, config.overrides(f)) for f, entry in config.sweep.items() for s in entry["sizes"]],
                           seed=config.seeds[0])]
    refs += [reference_rows(config.dataset, config.n_val, evaluation, vit, seed=s, pixels=False)
             for s in config.seeds[1:]]
    references = pd.concat(refs, ignore_index=True)

    best = best_fixed(method_df)
    recipes = methods(config)
    by_name = {m.name: m for m in recipes}
    first = config.seeds[0]
    r2 = r2mae_name(config.r2mae_low, config.r2mae_high, config.r2mae_per)
    spectra_methods = [by_name[f"fixed {config.umae_ratio:g}"], by_name[r2], *(m for m in recipes
                                                                              if m.group == "umae")]
    spectra = pd.concat([_spectrum(method_spec(config, m, first), evaluation, device).assign(method=m.name)
                         for m in spectra_methods], ignore_index=True)
    reconstructions = {name: reconstruction_examples(method_spec(config, by_name[name], first),
                                                     config.recon_ratios, config.n_recon_images, seed=first,
                                                     device=device) for name in (best, r2)}
    return {"sweep": sweep_df, "methods": method_df, "references": references, "best_fixed": best,
            "vit_size": config.vit_size, "spectra": spectra, "reconstructions": reconstructions}
