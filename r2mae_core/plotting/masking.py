"""Figures of 00_masking_tour: ratio distributions, schedules, masks on real images, block masks on the patch
grid, and the masked-diffusion noise levels and weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .style import new_figure

__all__ = ["ratio_distributions", "ratio_over_training", "masked_images", "block_masks", "diffusion_weights"]


def ratio_distributions(draws: pd.DataFrame) -> Figure:
    """Histogram (density) of the drawn ratios, one panel per sampler; tidy columns ``sampler, ratio``."""
    samplers = list(dict.fromkeys(draws["sampler"]))
    ncols = min(4, len(samplers))
    nrows = int(np.ceil(len(samplers) / ncols))
    fig, axes = new_figure(ncols, nrows, width=2.4, height=1.9, sharex=True)
    for ax, name in zip(axes.flat, samplers, strict=False):
        sns.histplot(draws.loc[draws["sampler"] == name, "ratio"], bins=np.linspace(0, 1, 41), stat="density",
                     ax=ax, element="step")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("mask ratio")
        ax.set_xlim(0, 1)
        ax.tick_params(labelbottom=True)  # a panel above an empty slot keeps its axis labels
    for ax in axes.flat[len(samplers):]:
        ax.set_visible(False)
    return fig


def ratio_over_training(draws: pd.DataFrame, n_bins: int = 20) -> Figure:
    """Drawn ratios against training progress: per sampler, the mean and the 5–95% range of all ratios
    drawn within each of ``n_bins`` progress bins (tidy columns ``sampler, progress, ratio``)."""
    fig, axes = new_figure(1, 1, width=4.2, height=2.8)
    ax = axes[0, 0]
    binned = draws.assign(bin=pd.cut(draws["progress"], np.linspace(0, 1, n_bins + 1), include_lowest=True,
                                     labels=False))
    grouped = binned.groupby(["sampler", "bin"], sort=False)["ratio"]
    stats = pd.DataFrame({"mean": grouped.mean(), "lo": grouped.quantile(0.05), "hi": grouped.quantile(0.95)})
    centres = (np.arange(n_bins) + 0.5) / n_bins
    for name, sub in stats.groupby(level="sampler", sort=False):
        t = centres[sub.index.get_level_values("bin").to_numpy()]
        (line,) = ax.plot(t, sub["mean"], label=name)
        ax.fill_between(t, sub["lo"], sub["hi"], color=line.get_color(), alpha=0.12, linewidth=0)
    ax.set_xlabel("training progress t")
    ax.set_ylabel("mask ratio (mean, 5–95%)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def masked_images(images: dict[str, np.ndarray]) -> Figure:
    """Rows: the original images then one row per mask generator (masked patches shown grey)."""
    originals = images["image"]
    masks = {k: v for k, v in images.items() if k != "image"}
    n = originals.shape[0]
    fig, axes = new_figure(n, 1 + len(masks), width=1.0, height=1.05)
    for j in range(n):
        axes[0, j].imshow(originals[j], cmap="gray_r", vmin=0, vmax=1)
        for i, (name, mask) in enumerate(masks.items(), start=1):
            shown = np.where(mask[j], 0.35, originals[j])
            axes[i, j].imshow(shown, cmap="gray_r", vmin=0, vmax=1)
            if j == 0:
                axes[i, j].set_ylabel(name, fontsize=6, rotation=0, ha="right", va="center")
    axes[0, 0].set_ylabel("original", fontsize=6, rotation=0, ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    return fig


def block_masks(blocks: dict) -> Figure:
    """Block masks on the patch grid: one row per ratio, one column per mask (masked patches grey, each placed
    rectangle outlined); ``blocks`` is the tour's ``blocks`` result (``ratios``, ``masks`` (R, n, H, W), ``rects``
    per ratio and mask as (top, left, height, width))."""
    masks = np.asarray(blocks["masks"])
    n_ratios, n = masks.shape[:2]
    fig, axes = new_figure(n, n_ratios, width=0.95, height=1.0)
    for i, ratio in enumerate(blocks["ratios"]):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(masks[i, j], cmap="Greys", vmin=0, vmax=1.6)
            for top, left, h, w in blocks["rects"][i][j]:
                ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, lw=0.8, ec="C1"))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        axes[i, 0].set_ylabel(f"{ratio:g}", fontsize=7, rotation=0, ha="right", va="center")
    return fig


def diffusion_weights(diffusion: pd.DataFrame, n_bins: int = 20) -> Figure:
    """Masked diffusion: the drawn noise levels t (left, density), and against t (binned, right) the masked
    fraction k/n of the Bernoulli masks and the weighted fraction k/(t·n), whose mean is 1 at every t."""
    fig, axes = new_figure(2, 1, width=3.0, height=2.4)
    sns.histplot(diffusion["t"], bins=np.linspace(0, 1, 41), stat="density", element="step", ax=axes[0, 0])
    axes[0, 0].set_xlabel("noise level t (= mask ratio)")
    ax = axes[0, 1]
    binned = diffusion.assign(bin=pd.cut(diffusion["t"], np.linspace(0, 1, n_bins + 1), labels=False))
    stats = binned.groupby("bin")[["t", "masked_fraction", "weighted_fraction"]].mean()
    ax.plot(stats["t"], stats["masked_fraction"], "o-", label="masked fraction k/n", markersize=3)
    ax.plot(stats["t"], stats["weighted_fraction"], "s-", label="weighted k/(t n)", markersize=3)
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("noise level t (bin mean)")
    ax.set_ylim(0, 1.5)
    ax.legend(fontsize=7, loc="lower right")
    return fig
