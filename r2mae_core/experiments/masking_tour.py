"""00_masking_tour: what every ratio sampler and mask generator of :mod:`r2mae_core.masking` does.

The tour draws ratios from each sampler, masks real Fashion-MNIST test images with each generator, and
checks the realised statistics against the specification (the checks the property tests make, here at
a size a person can look at). Two ledger rows are implementation checks, not paper claims:

- M1: the realised ratio moments of every sampler match its quadrature expectation (|z| < 4 for all).
- M2: R²MAE per sample spreads ratios within a batch (sd ≈ (b−a)/√12); per batch does not (sd < 1/L).
- M3: the masked-diffusion weight makes the masked fraction unbiased: with t ~ U[eps, 1) and each of the n
  tokens masked with probability t, E[k / (t·n)] = 1 (the identity behind the 1/t-weighted loss); |z| < 4.

It also draws block masks (BEiT's blockwise masking) on the patch grid next to random subsets of the same count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import masking
from .._rng import child_seeds, torch_generator
from ..claims import Claim, verdict_from_bool
from ..validation import check_choice, check_fields, check_list, check_number, check_seed, count, param

__all__ = ["Config", "run", "claims", "key_numbers", "diffusion_check", "SAMPLER_SPECS", "BLOCK_RATIOS"]

#: The samplers of the tour, as YAML-style specs (see :func:`r2mae_core.masking.make_sampler`).
SAMPLER_SPECS: tuple[dict, ...] = (
    {"kind": "fixed", "ratio": 0.75},
    {"kind": "r2mae", "low": 0.5, "high": 0.9, "per": "batch"},
    {"kind": "r2mae", "low": 0.5, "high": 0.9, "per": "sample"},
    {"kind": "maskgit"},
    {"kind": "truncnorm", "mean": 0.55, "std": 0.25, "low": 0.5, "high": 0.99},
    {"kind": "choice", "values": [0.25, 0.5, 0.75]},
    {"kind": "scheduled", "start": 0.9, "end": 0.5, "shape": "cosine"},
    {"kind": "masked_diffusion", "eps": 1e-3},
)
#: Mask ratios of the block-mask figure.
BLOCK_RATIOS = (0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class Config:
    """Sizes of the tour (smoke defaults; the YAML profiles scale them).

    Attributes
    ----------
    seed
        Master seed; every sampler/generator gets a child seed.
    n_batches
        Calls to each sampler (one training step each, progress t = i / (n_batches − 1)).
    batch_size
        Rows per call.
    patch
        Patch size on 28×28 images: 28 / patch tokens per side (4 → 7×7 = 49 tokens).
    n_images
        Fashion-MNIST test images shown masked.
    mean_span
        Mean span length (tokens) of the span generator.
    samplers
        Sampler specs (see :data:`SAMPLER_SPECS`).
    """

    seed: int = param(0, check_seed)
    n_batches: int = param(400, count(2))
    batch_size: int = param(64, count(2))
    patch: int = param(4, check_choice, choices=(1, 2, 4, 7, 14))
    n_images: int = param(6, count(2))
    mean_span: float = param(3.0, check_number, low=1)
    samplers: tuple[dict, ...] = param(SAMPLER_SPECS, check_list)

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.samplers:
            raise ValueError("samplers=[] is not allowed: give at least one sampler spec")
        for spec in self.samplers:
            masking.make_sampler(spec)  # fails early, with the sampler's own message

    @property
    def n_tokens(self) -> int:
        return (28 // self.patch) ** 2


def _draw_ratios(config: Config) -> pd.DataFrame:
    """Ratios from every sampler over a simulated training run: one row per (sampler, step, row)."""
    frames = []
    for spec, seed in zip(config.samplers, child_seeds(config.seed, len(config.samplers)), strict=True):
        sampler = masking.make_sampler(spec)
        gen = torch_generator(seed)
        progress = np.linspace(0.0, 1.0, config.n_batches)
        ratios = torch.stack([sampler.sample(config.batch_size, generator=gen, progress=float(t))
                              for t in progress])  # (n_batches, batch_size)
        frames.append(pd.DataFrame({
            "sampler": sampler.describe(),
            "step": np.repeat(np.arange(config.n_batches), config.batch_size),
            "progress": np.repeat(progress, config.batch_size),
            "ratio": ratios.double().numpy().ravel(),
        }))
    return pd.concat(frames, ignore_index=True)


def _moment_checks(config: Config, draws: pd.DataFrame) -> pd.DataFrame:
    """Monte Carlo vs quadrature for E[m], E[m(1−m)²], E[m²(1−m)] of each sampler, with z-scores.

    The standard error uses per-step means (rows of one per-batch call are not independent).
    """
    moments = {"E[m]": lambda m: m, "E[m(1-m)^2]": lambda m: m * (1 - m) ** 2,
               "E[m^2(1-m)]": lambda m: m**2 * (1 - m)}
    rows = []
    for spec in config.samplers:
        sampler = masking.make_sampler(spec)
        sub = draws[draws["sampler"] == sampler.describe()]
        for name, fn in moments.items():
            per_step = sub.assign(v=fn(sub["ratio"].to_numpy())).groupby("step")["v"].mean().to_numpy()
            mc = float(per_step.mean())
            se = float(per_step.std(ddof=1) / np.sqrt(per_step.size))
            expected = float(sampler.expect(fn))
            z = (mc - expected) / se if se > 0 else (0.0 if abs(mc - expected) < 1e-6 else np.inf)  # float32 draws
            rows.append({"sampler": sampler.describe(), "moment": name, "expected": expected, "monte_carlo": mc,
                         "se": se, "z": z})
    return pd.DataFrame(rows)


def _within_batch_spread(config: Config, draws: pd.DataFrame) -> pd.DataFrame:
    """Standard deviation of the *realised* masked fraction within a batch of exact-count masks."""
    rows = []
    gen = torch_generator(child_seeds(config.seed, len(config.samplers) + 1)[-1])
    for spec in config.samplers:
        if spec.get("kind") != "r2mae":
            continue
        sampler = masking.make_sampler(spec)
        sub = draws[draws["sampler"] == sampler.describe()]
        sds = []
        for _, group in sub.groupby("step"):
            ratios = torch.as_tensor(group["ratio"].to_numpy(), dtype=torch.float32)
            subset = masking.random_subset_mask(ratios, config.n_tokens, generator=gen)
            sds.append(float(subset.mask.double().mean(dim=1).std()))
        rows.append({"sampler": sampler.describe(), "per": spec.get("per", "batch"),
                     "mean_within_batch_sd": float(np.mean(sds)),
                     "uniform_sd": (spec["high"] - spec["low"]) / np.sqrt(12.0), "n_tokens": config.n_tokens})
    return pd.DataFrame(rows)


def _image_masks(config: Config) -> dict[str, np.ndarray]:
    """Real Fashion-MNIST test images and one mask per generator, as (n_images, 28, 28) arrays."""
    from ..data import load

    images = load("fashion_mnist").test_images[: config.n_images].astype(np.float32) / 255.0
    side = 28 // config.patch
    gens = [torch_generator(s) for s in child_seeds(config.seed + 1, 4)]
    n = config.n_images
    r2 = masking.make_sampler({"kind": "r2mae", "low": 0.5, "high": 0.9, "per": "sample"})
    token_masks = {
        "fixed 0.75, exact count": masking.random_subset_mask(torch.full((n,), 0.75), config.n_tokens,
                                                              generator=gens[0]).mask,
        "blocks 0.5": masking.block_mask(torch.full((n,), 0.5), (side, side), generator=gens[0]).mask,
        "R²MAE U[0.5, 0.9] per sample": masking.random_subset_mask(r2.sample(n, generator=gens[1]),
                                                                    config.n_tokens, generator=gens[1]).mask,
        "Bernoulli 0.75": masking.bernoulli_mask(torch.full((n,), 0.75), config.n_tokens, generator=gens[2]),
        f"spans (mean {config.mean_span:g}) 0.5": masking.span_mask(torch.full((n,), 0.5), config.n_tokens,
                                                                   mean_span=config.mean_span,
                                                                   generator=gens[3]),
    }
    out = {"image": images}
    for name, mask in token_masks.items():
        grid = mask.reshape(n, side, side).numpy()  # (n, side, side), True = masked
        out[name] = np.kron(grid, np.ones((config.patch, config.patch), dtype=bool))  # (n, 28, 28)
    return out


def _block_masks(config: Config) -> dict:
    """Block masks on the patch grid at :data:`BLOCK_RATIOS` (``n_images`` per ratio, with their rectangles) and,
    per ratio, the mean boundary length (masked/visible pairs of 4-neighbours) of block masks and of random subsets
    of the same count over ``batch_size`` masks."""
    side = 28 // config.patch
    gen = torch_generator(child_seeds(config.seed + 2, 1)[0])
    masks, rects, stats = [], [], []
    for ratio in BLOCK_RATIOS:
        block = masking.block_mask(ratio, (side, side), generator=gen, batch_size=config.batch_size)
        subset = masking.random_subset_mask(ratio, side * side, generator=gen, batch_size=config.batch_size)
        masks.append(block.mask[: config.n_images].reshape(-1, side, side).numpy())
        rects.append([block.blocks[i][block.block_valid[i]].tolist() for i in range(config.n_images)])
        boundary = {name: float(((m[:, 1:] != m[:, :-1]).sum() + (m[:, :, 1:] != m[:, :, :-1]).sum()) / len(m))
                    for name, m in (("block", block.mask.reshape(-1, side, side)),
                                    ("random", subset.mask.reshape(-1, side, side)))}
        stats.append({"ratio": ratio, "masked_patches": int(block.mask[0].sum()), "grid": f"{side}x{side}",
                      "boundary_blocks": boundary["block"], "boundary_random": boundary["random"],
                      "blocks_per_mask": float(block.block_valid.sum(1).double().mean())})
    return {"ratios": list(BLOCK_RATIOS), "masks": np.stack(masks), "rects": rects, "stats": pd.DataFrame(stats)}


def _diffusion_weights(config: Config) -> pd.DataFrame:
    """Masked-diffusion draws over the tour's steps: per row the noise level t, the masked fraction k/n of an
    independent (Bernoulli) mask at t over the image's n tokens, the weight 1/t and the weighted fraction
    k/(t·n) (expectation exactly 1)."""
    sampler = masking.MaskedDiffusion()
    gen = torch_generator(child_seeds(config.seed + 3, 1)[0])
    t = sampler.sample(config.n_batches * config.batch_size, generator=gen)
    mask = masking.bernoulli_mask(t, config.n_tokens, generator=gen)
    t64 = t.double().numpy()
    fraction = mask.double().mean(1).numpy()
    return pd.DataFrame({"step": np.repeat(np.arange(config.n_batches), config.batch_size), "t": t64,
                         "masked_fraction": fraction, "weight": 1.0 / t64, "weighted_fraction": fraction / t64})


def run(config: Config) -> dict[str, pd.DataFrame | dict]:
    """Run the tour: ``ratios`` (tidy draws), ``moments`` (MC vs quadrature), ``spread``, ``images``, ``blocks``
    (block masks on the patch grid) and ``diffusion`` (masked-diffusion noise levels, masks and weights)."""
    draws = _draw_ratios(config)
    return {"ratios": draws, "moments": _moment_checks(config, draws),
            "spread": _within_batch_spread(config, draws), "images": _image_masks(config),
            "blocks": _block_masks(config), "diffusion": _diffusion_weights(config)}


def diffusion_check(diffusion: pd.DataFrame) -> dict[str, float]:
    """Monte Carlo mean of the weighted masked fraction k/(t·n), its standard error and z against 1."""
    v = diffusion["weighted_fraction"].to_numpy()
    se = float(v.std(ddof=1) / np.sqrt(v.size))
    return {"mean": float(v.mean()), "se": se, "z": float((v.mean() - 1.0) / se), "n_rows": int(v.size),
            "mean_weight": float(diffusion["weight"].mean())}


def claims(results: dict, profile: str) -> list[Claim]:
    """The implementation checks M1–M3 (rules in the module docstring)."""
    moments = results["moments"]
    worst = float(np.abs(moments["z"]).max())
    spread = results["spread"].set_index("per")
    per_sample, per_batch = spread.loc["sample"], spread.loc["batch"]
    ratio = float(per_sample["mean_within_batch_sd"] / per_sample["uniform_sd"])
    m2_ok = bool(0.8 < ratio < 1.2 and per_batch["mean_within_batch_sd"] < 1.0 / per_batch["n_tokens"])
    n_steps = int(results["ratios"]["step"].nunique())
    check = diffusion_check(results["diffusion"])
    return [
        Claim("M1", "Realised ratio moments of every sampler match the quadrature expectation (max |z| < 4)",
              "r2mae_core.masking specification", "max |z| over samplers x moments", worst, float("nan"),
              float("nan"), n_steps, verdict_from_bool(worst < 4.0), profile),
        Claim("M2", "R²MAE per sample spreads realised ratios within a batch like U[a,b] (sd ratio in "
              "(0.8, 1.2)); per batch keeps them equal (sd < 1/L)", "r2mae_core.masking specification",
              "within-batch sd / ((b-a)/sqrt 12), per sample", ratio, float("nan"), float("nan"), n_steps,
              verdict_from_bool(m2_ok), profile),
        Claim("M3", "The masked-diffusion weight 1/t makes the masked fraction unbiased: E[k/(t n)] = 1 with t ~ "
              "U[eps, 1) and Bernoulli(t) masks (|z| < 4)", "r2mae_core.masking / losses specification "
              "(MDLM, Sahoo et al. 2024)", "mean of k/(t n)", check["mean"], check["mean"] - 1.96 * check["se"],
              check["mean"] + 1.96 * check["se"], n_steps, verdict_from_bool(abs(check["z"]) < 4.0), profile),
    ]


def key_numbers(results: dict) -> dict[str, float]:
    """The numbers the notebook prints (and nbval compares), rounded to 4 significant digits."""
    moments = results["moments"]
    spread = results["spread"].set_index("per")
    return {
        "max_abs_z": float(f"{np.abs(moments['z']).max():.4g}"),
        "within_batch_sd_per_sample": float(f"{spread.loc['sample', 'mean_within_batch_sd']:.4g}"),
        "within_batch_sd_per_batch": float(f"{spread.loc['batch', 'mean_within_batch_sd']:.4g}"),
        "diffusion_weighted_fraction": float(f"{diffusion_check(results['diffusion'])['mean']:.4g}"),
    }
