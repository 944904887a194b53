"""Figures of 02_vision: the ratio sweep across architectures and sizes, best ratio vs size, the method
comparison, U-MAE's effective rank and spectrum, reconstructions, reconstruction loss vs test ratio, and the
positions ablation (block masks vs random positions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..experiments.image_runs import SIZES
from ..stats import summarise
from .style import method_colors, new_figure, palette

__all__ = ["ratio_sweep", "best_ratio_vs_size", "method_comparison", "umae_rank", "reconstructions",
           "recon_vs_test_ratio", "block_ablation"]

_FAMILY_LABEL = {"mlp": "MLP-MAE", "cnn": "CNN-MAE", "vit": "ViT-MAE"}
_GROUP_ORDER = ("fixed", "r2mae", "equivalent", "baseline", "ablation", "blocks", "umae", "reference")


def _errorbar(ax, x, table: pd.DataFrame, value: str, **kw) -> None:
    """Mean with its 95% interval (no bar where the interval is undefined, e.g. one seed)."""
    mean = table[value].to_numpy(float)
    low = np.nan_to_num(mean - table[f"{value}_low"].to_numpy(float))
    high = np.nan_to_num(table[f"{value}_high"].to_numpy(float) - mean)
    ax.errorbar(x, mean, yerr=[low, high], capsize=2, **kw)


def ratio_sweep(sweep_summary: pd.DataFrame, *, recon_col: str = "recon_0.75") -> Figure:
    """Experiment 1: validation LP accuracy (top) and masked-reconstruction loss at one test ratio (bottom)
    against the training ratio; columns: architectures, lines: model sizes (mean ± 95% interval over seeds);
    a star marks each size's best ratio by validation LP."""
    families = list(dict.fromkeys(sweep_summary["family"]))
    fig, axes = new_figure(len(families), 2, width=2.8, height=2.2, sharex=True)
    for j, family in enumerate(families):
        sub = sweep_summary[sweep_summary["family"] == family]
        sizes = list(dict.fromkeys(sub["size"]))
        colours = palette(len(sizes))
        for size, colour in zip(sizes, colours, strict=True):
            s = sub[sub["size"] == size].sort_values("ratio")
            _errorbar(axes[0, j], s["ratio"], s, "lp_val", color=colour, marker="o", label=f"size {size}")
            best = s.loc[s["lp_val"].idxmax()]
            axes[0, j].plot(best["ratio"], best["lp_val"], marker="*", ms=11, color=colour, ls="none")
            if recon_col in s:
                _errorbar(axes[1, j], s["ratio"], s, recon_col, color=colour, marker="o")
        axes[0, j].set_title(_FAMILY_LABEL.get(family, family))
        axes[1, j].set_xlabel("training mask ratio")
    axes[0, 0].set_ylabel("LP accuracy (validation)")
    axes[1, 0].set_ylabel(f"reconstruction MSE @ {recon_col.split('_')[-1]}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)))
    return fig


def best_ratio_vs_size(best: pd.DataFrame, size_order: dict[str, list[str]] | None = None) -> Figure:
    """Best fixed ratio (validation LP) against model size per architecture: one point per seed (jittered),
    the mean as a line. The linear theory (01, C3a) predicts the line to rise with size. ``size_order``:
    sizes per family, smallest first (default: the presets of ``image_runs.SIZES``)."""
    size_order = size_order or {family: list(sizes) for family, sizes in SIZES.items()}
    fig, axes = new_figure(1, 1, width=3.6, height=2.6)
    ax = axes[0, 0]
    families = list(dict.fromkeys(best["family"]))
    colours = method_colors(families)
    for k, family in enumerate(families):
        sub = best[best["family"] == family]
        order = [s for s in size_order[family] if s in set(sub["size"])]
        x = sub["size"].map({s: i for i, s in enumerate(order)}).to_numpy(float)
        jitter = (k - (len(families) - 1) / 2) * 0.06
        ax.plot(x + jitter, sub["ratio"], "o", color=colours[family], alpha=0.5, ms=4)
        mean = sub.groupby("size")["ratio"].mean().reindex(order)
        ax.plot(np.arange(len(order)) + jitter, mean.to_numpy(), "-", color=colours[family],
                label=_FAMILY_LABEL.get(family, family))
    longest = max(([s for s in size_order[f] if s in set(best["size"])] for f in families), key=len)
    ax.set_xticks(range(len(longest)), longest)
    ax.set_xlabel("model size")
    ax.set_ylabel("best training ratio (val LP)")
    ax.set_ylim(0, 1)
    ax.legend()
    return fig


def method_comparison(table: pd.DataFrame, best_fixed: str, metrics: dict[str, str]) -> Figure:
    """Experiments 2–3: mean ± 95% interval of each metric (panels) for every method (rows, coloured by
    group); the val-chosen best fixed ratio is marked with a dashed line."""
    metrics = {k: v for k, v in metrics.items() if k in table and table[k].notna().any()}
    rows = table.iloc[::-1].reset_index(drop=True)
    groups = [g for g in _GROUP_ORDER if g in set(rows["group"])]
    colours = method_colors(groups)
    fig, axes = new_figure(len(metrics), 1, width=2.6, height=0.28 * len(rows) + 1.0, sharey=True)
    y = np.arange(len(rows))
    for ax, (col, label) in zip(axes[0], metrics.items(), strict=True):
        for group in groups:
            sel = rows[rows["group"] == group]
            mean = sel[col].to_numpy(float)
            err = [np.nan_to_num(mean - sel[f"{col}_low"].to_numpy(float)),
                   np.nan_to_num(sel[f"{col}_high"].to_numpy(float) - mean)]
            ax.errorbar(mean, y[sel.index], xerr=err, color=colours[group], marker="o", ls="none", capsize=2,
                        label=group)
        if best_fixed in set(rows["method"]):
            ax.axvline(float(rows.loc[rows["method"] == best_fixed, col].iloc[0]), color="grey", ls="--", lw=0.8)
        ax.set_xlabel(label)
    axes[0, 0].set_yticks(y, rows["method"])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(groups))
    return fig


def umae_rank(table: pd.DataFrame, spectra: pd.DataFrame, names: list[str]) -> Figure:
    """Experiment 3: effective rank and test LP (mean ± 95% interval) of MAE, U-MAE and their R²MAE versions,
    and the normalised singular-value spectrum of their test features (first seed; log scale)."""
    fig, axes = new_figure(3, 1, width=2.8, height=2.4)
    colours = method_colors(names)
    sub = table.set_index("method").loc[names].reset_index()
    x = np.arange(len(names))
    for ax, col, label in ((axes[0, 0], "effective_rank", "effective rank"), (axes[0, 1], "lp_test", "LP (test)")):
        for i, name in enumerate(names):
            _errorbar(ax, [x[i]], sub.iloc[[i]], col, color=colours[name], marker="o", ls="none")
        ax.set_xticks(x, [n.replace(" + ", "\n+ ").replace("fixed ", "") for n in names], rotation=30, ha="right")
        ax.set_ylabel(label)
    ax = axes[0, 2]
    for name in names:
        s = spectra[spectra["method"] == name]
        ax.plot(s["index"], s["sv"], color=colours[name], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("σᵢ / Σσ")
    ax.legend(fontsize=6)
    return fig


def reconstructions(examples: dict[str, dict[float, dict[str, np.ndarray]]]) -> Figure:
    """Experiment 4: for each test ratio (column groups) the masked input and each model's reconstruction
    (visible patches pasted back, as MAE shows them); rows: validation images; first column: the original."""
    names = list(examples)
    ratios = list(examples[names[0]])
    n = len(next(iter(examples[names[0]].values()))["image"])
    ncols = 1 + len(ratios) * (1 + len(names))
    fig, axes = new_figure(ncols, n, width=0.8, height=0.85)
    for i in range(n):
        first = examples[names[0]][ratios[0]]
        axes[i, 0].imshow(first["image"][i], cmap="gray", vmin=0, vmax=1)
        col = 1
        for ratio in ratios:
            axes[i, col].imshow(examples[names[0]][ratio]["masked"][i], cmap="gray", vmin=0, vmax=1)
            if i == 0:
                axes[i, col].set_title(f"mask {ratio:g}", fontsize=7)
            col += 1
            for name in names:
                axes[i, col].imshow(examples[name][ratio]["recon"][i], cmap="gray", vmin=0, vmax=1)
                if i == 0:
                    axes[i, col].set_title(name.replace(" per sample", "").replace("R²MAE ", "R²MAE\n"), fontsize=6)
                col += 1
    axes[0, 0].set_title("input", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    return fig


def recon_vs_test_ratio(methods_df: pd.DataFrame, names: list[str]) -> Figure:
    """Masked-reconstruction loss (validation images) against the test ratio, mean ± 95% interval over seeds:
    a model trained at one ratio against models trained on a range of ratios."""
    cols = sorted((c for c in methods_df if c.startswith("recon_")), key=lambda c: float(c.split("_")[1]))
    long = methods_df[methods_df["method"].isin(names)].melt(id_vars=["method", "seed"], value_vars=cols,
                                                               var_name="test", value_name="recon")
    long["test_ratio"] = long["test"].str.split("_").str[1].astype(float)
    summ = summarise(long, ["method", "test_ratio"], "recon").rename(
        columns={"mean": "recon", "ci_low": "recon_low", "ci_high": "recon_high"})
    fig, axes = new_figure(1, 1, width=3.6, height=2.6)
    colours = method_colors(names)
    for name in names:
        s = summ[summ["method"] == name].sort_values("test_ratio")
        _errorbar(axes[0, 0], s["test_ratio"], s, "recon", color=colours[name], marker="o", label=name)
    axes[0, 0].set_xlabel("test mask ratio")
    axes[0, 0].set_ylabel("reconstruction MSE (masked pixels)")
    axes[0, 0].legend(fontsize=6)
    return fig


def block_ablation(table: pd.DataFrame) -> Figure:
    """The positions ablation: paired differences in test LP accuracy (mean and 95% interval over seeds), one row
    per comparison of :func:`r2mae_core.experiments.vision_claims.block_ablation` (blocks − random at each ratio
    law; R²MAE − best fixed with random positions and with blocks)."""
    fig, axes = new_figure(1, 1, width=4.4, height=0.32 * max(len(table), 1) + 1.1)
    ax = axes[0, 0]
    colours = method_colors(list(dict.fromkeys(table["comparison"])) or ["-"])
    y = np.arange(len(table))
    for comparison, sel in table.groupby("comparison", sort=False):
        mean = sel["mean"].to_numpy(float)
        err = [np.nan_to_num(mean - sel["ci_low"].to_numpy(float)),
               np.nan_to_num(sel["ci_high"].to_numpy(float) - mean)]
        ax.errorbar(mean, y[sel.index], xerr=err, color=colours[comparison], marker="o", ls="none", capsize=2,
                    label=comparison)
    ax.axvline(0.0, color="0.4", lw=0.8)
    labels = [f"{r.a} − {r.b}" for r in table.itertuples()]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("difference in test LP accuracy (paired over seeds)")
    if len(table):
        ax.legend(loc="best", fontsize="small")
    return fig
