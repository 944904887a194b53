"""Figures of 06_spectral_clustering: SVD-component distances (the 2023 paper's Fig. 2), zero-shot segmentation
by k-means on patch features (its Fig. 3), the probing gap and the heads ablation (its Tables 1-2), and the
spectral contrastive bound (its Theorem 4.3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .style import new_figure, palette

__all__ = ["component_distances", "segmentation_examples", "segmentation_scores", "probing", "bound"]


def _errorbar(ax, x, table: pd.DataFrame, value: str, **kw) -> None:
    """Mean with its 95% interval (no bar where the interval is undefined)."""
    mean = table[value].to_numpy(float)
    low = np.nan_to_num(mean - table[f"{value}_low"].to_numpy(float))
    high = np.nan_to_num(table[f"{value}_high"].to_numpy(float) - mean)
    ax.errorbar(x, mean, yerr=[low, high], capsize=2, **kw)


def component_distances(components: pd.DataFrame, slopes: pd.DataFrame) -> Figure:
    """Fig. 2: relative distance ``d_i`` of the i-th SVD component against ``i`` per training ratio (left), and
    the per-image slope of ``d_i`` over ``i`` against the ratio (right); means with 95% intervals over test
    images.

    Parameters
    ----------
    components
        ``spectral_claims.component_summary`` (``ratio``, ``component``, ``distance`` and its interval).
    slopes
        ``spectral_claims.slope_summary`` (``ratio``, ``slope`` and its interval).
    """
    fig, axes = new_figure(2, width=3.4)
    ratios = sorted(components["ratio"].unique())
    colors = palette(len(ratios))
    for r, c in zip(ratios, colors, strict=True):
        t = components[components["ratio"] == r].sort_values("component")
        _errorbar(axes[0, 0], t["component"], t, "distance", color=c, marker="o", ms=3, label=f"ratio {r:g}")
    axes[0, 0].set(xlabel="component i", ylabel="‖σᵢuᵢvᵢᵀ − σ̂ᵢûᵢv̂ᵢᵀ‖² / ‖σᵢuᵢvᵢᵀ‖²",
                   title="masked-patch SVD components")
    axes[0, 0].set_xticks(sorted(components["component"].unique()))
    axes[0, 0].legend(fontsize=7)
    s = slopes.sort_values("ratio")
    _errorbar(axes[0, 1], s["ratio"], s, "slope", color="k", marker="o", ms=3)
    axes[0, 1].axhline(0, color="0.6", lw=0.8, ls="--")
    axes[0, 1].set(xlabel="training mask ratio", ylabel="slope of dᵢ over i", title="steeper at higher ratios?")
    return fig


def segmentation_examples(examples: dict, ks: list[int]) -> Figure:
    """Fig. 3: test images (first column), their object patches, then patch clusters of k-means on MAE features
    for each ``k`` and NJW spectral clusters of the pixels (largest ``k``); clusters drawn as colours over the
    image (cluster ids are arbitrary)."""
    images, labels = examples["images"], examples["labels"]
    n = len(images)
    side = images.shape[-1]
    g = int(round(np.sqrt(examples["object"].shape[1])))
    cols = ["image", "object", *[f"MAE k={k}" for k in ks], f"spectral k={max(ks)}"]
    fig, axes = new_figure(len(cols), n, width=1.25, height=1.25)
    cmap = ListedColormap(palette(max(ks)))
    for i in range(n):
        grids = [None, examples["object"][i].astype(int), *[labels[("MAE", k)][i] for k in ks],
                 labels[("spectral", max(ks))][i]]
        for j, (ax, grid) in enumerate(zip(axes[i], grids, strict=True)):
            ax.imshow(images[i], cmap="gray_r", extent=(0, side, side, 0))
            if grid is not None:
                ax.imshow(grid.reshape(g, g), cmap=cmap, vmin=0, vmax=max(ks) - 1, alpha=0.55,
                          extent=(0, side, side, 0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=7)
    return fig


def segmentation_scores(summary: pd.DataFrame) -> Figure:
    """Object IoU (left) and NMI with spectral clusters (right) against ``k`` per feature source, with the
    one-cluster IoU baseline; means with 95% intervals over test images (``spectral_claims.segmentation_summary``).
    """
    fig, axes = new_figure(2, width=3.3)
    sources = [s for s in ("MAE", "random init", "pixels") if s in set(summary["features"])]
    for s, c in zip(sources, palette(len(sources)), strict=True):
        t = summary[summary["features"] == s].sort_values("k")
        _errorbar(axes[0, 0], t["k"], t, "iou", color=c, marker="o", ms=3, label=s)
        _errorbar(axes[0, 1], t["k"], t, "nmi", color=c, marker="o", ms=3, label=s)
    one = summary[summary["features"] == "one cluster"]
    if len(one):
        axes[0, 0].axhline(float(one["iou"].iloc[0]), color="0.5", ls="--", lw=0.8, label="one cluster")
    axes[0, 0].set(xlabel="k (clusters per image)", ylabel="object IoU (best assignment)",
                   title="zero-shot segmentation")
    axes[0, 1].set(xlabel="k (clusters per image)", ylabel="NMI with spectral clusters", title="vs NJW spectral")
    ks = sorted(summary.loc[summary["k"] > 1, "k"].unique())
    for ax in axes[0]:
        ax.set_xticks(ks)
    axes[0, 0].legend(fontsize=7)
    return fig


def probing(probes: pd.DataFrame, heads: pd.DataFrame, head_counts: tuple[int, int]) -> Figure:
    """Tables 1-2: test accuracy of each probe (left) and LP / full FT per head count (right), means with 95%
    intervals over seeds (``spectral_claims.probe_table`` and ``heads_table``)."""
    fig, axes = new_figure(2, width=3.4)
    x = np.arange(len(probes))
    _errorbar(axes[0, 0], x, probes, "acc", color="k", marker="o", ls="none")
    axes[0, 0].set_xticks(x, probes["probe"], rotation=30, ha="right", fontsize=7)
    axes[0, 0].set(ylabel="test accuracy", title="probing gap (Table 1)")
    cols = [(c, label) for c, label in (("lp_raw_test", "LP"), ("ft_test", "full FT")) if c in heads]
    for (col, label), c in zip(cols, palette(len(cols)), strict=True):
        t = heads.sort_values("heads")
        _errorbar(axes[0, 1], t["heads"], t, col, color=c, marker="o", ms=4, label=label)
    axes[0, 1].set_xticks(list(head_counts))
    axes[0, 1].set(xlabel="attention heads (equal width)", ylabel="test accuracy", title="heads (Table 2)")
    axes[0, 1].legend(fontsize=7)
    return fig


def bound(batches: pd.DataFrame, images: pd.DataFrame) -> Figure:
    """Theorem 4.3: ``‖MMᵀ − NNᵀ‖²_F`` against ``‖M − N‖²_F‖M + N‖²_F`` per test batch (left, log-log, the
    diagonal is equality) and the per-image ratio lhs/rhs by training ratio (right)."""
    fig, axes = new_figure(2, width=3.3)
    ratios = sorted(batches["ratio"].unique())
    colors = palette(len(ratios))
    for r, c in zip(ratios, colors, strict=True):
        b = batches[batches["ratio"] == r]
        axes[0, 0].scatter(b["rhs"], b["lhs"], s=10, color=c, label=f"ratio {r:g}")
    lo = float(min(batches["lhs"].min(), batches["rhs"].min()))
    hi = float(max(batches["lhs"].max(), batches["rhs"].max()))
    axes[0, 0].plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=0.8, label="equality")
    axes[0, 0].set(xscale="log", yscale="log", xlabel="‖M − N‖²‖M + N‖²", ylabel="‖MMᵀ − NNᵀ‖²",
                   title="per test batch")
    for axis in (axes[0, 0].xaxis, axes[0, 0].yaxis):
        axis.set_minor_formatter(NullFormatter())  # minor log labels overlap
    axes[0, 0].legend(fontsize=6)
    data = [images.loc[images["ratio"] == r, "bound_ratio"].dropna().to_numpy() for r in ratios]
    parts = axes[0, 1].boxplot(data, positions=np.arange(len(ratios)), widths=0.5, showfliers=False,
                               patch_artist=True)
    for box, c in zip(parts["boxes"], colors, strict=True):
        box.set_facecolor(c)
    axes[0, 1].set_xticks(np.arange(len(ratios)), [f"{r:g}" for r in ratios])
    axes[0, 1].set(xlabel="training mask ratio", ylabel="lhs / rhs (1 = tight)", title="per image", ylim=(0, 1))
    return fig
