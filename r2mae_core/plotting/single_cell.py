"""Figures of 05_single_cell: the fixed-ratio sweep, every method's scores, paired differences against R²MAE,
masked-gene reconstruction, training loss and UMAPs of the embeddings coloured by cell type (scanpy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .style import method_colors, new_figure, palette

__all__ = ["ratio_sweep", "method_scores", "paired_differences", "reconstruction", "loss_curves", "umap_grid",
           "METRIC_LABELS"]

METRIC_LABELS = {"test_f1": "annotation macro-F1", "test_acc": "annotation accuracy", "nmi": "leiden NMI",
                 "ari": "leiden ARI", "silhouette": "label silhouette", "mse": "masked-gene MSE",
                 "pearson": "masked-gene Pearson r"}
#: Line styles of the methods drawn flat against the sweep: by group, references by name.
_FLAT_STYLES = {"r2mae": "-", "choice": "--", "scheduled": "-.", "PCA": ":", "random init": (0, (1, 3))}


def _groups(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(frame["dataset"], frame["model"], strict=True)))


def _colors(methods) -> dict:
    return method_colors(list(dict.fromkeys(["fixed", *_FLAT_STYLES, *methods])))


def _style_key(method: str, group: str) -> str:
    """The key of ``_FLAT_STYLES`` (and of the colours) of a method: a reference's name, else its group."""
    return method if group == "reference" else group


def _line_style(frame: pd.DataFrame, method: str) -> str | tuple:
    group = frame.loc[frame["method"] == method, "group"].iloc[0]
    return _FLAT_STYLES.get(_style_key(method, group), "-")


def ratio_sweep(summary: pd.DataFrame, *, metrics=("test_f1", "nmi")) -> Figure:
    """Fixed-ratio sweep (points ± 95% CI over seeds, joined) per (dataset, model) row and metric column, with
    R²MAE, scGPT's choice, the schedule, PCA and the random encoder as horizontal lines (R²MAE: with its CI band).

    ``summary``: :func:`r2mae_core.experiments.single_cell_claims.summary` (dataset, model, method, group, ratio,
    metric, mean, ci_low, ci_high).
    """
    groups = _groups(summary)
    fig, axes = new_figure(len(metrics), len(groups), width=3.0, height=2.2)
    colors = _colors([])
    for i, (dataset, model) in enumerate(groups):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            sub = summary[(summary["dataset"] == dataset) & (summary["model"] == model) & (summary["metric"] == metric)]
            fixed = sub[sub["group"] == "fixed"].sort_values("ratio")
            err = np.vstack([fixed["mean"] - fixed["ci_low"], fixed["ci_high"] - fixed["mean"]])
            ax.errorbar(fixed["ratio"], fixed["mean"], yerr=np.nan_to_num(err), marker="o", color=colors["fixed"],
                        capsize=2, label="fixed ratio")
            for key, style in _FLAT_STYLES.items():
                row = sub[sub["method"] == key] if key in ("PCA", "random init") else sub[sub["group"] == key]
                if row.empty:
                    continue
                row = row.iloc[0]
                ax.axhline(row["mean"], color=colors[key], ls=style, lw=1.2, label=row["method"])
                if key == "r2mae" and np.isfinite(row["ci_low"]):
                    ax.axhspan(row["ci_low"], row["ci_high"], color=colors[key], alpha=0.12, lw=0)
            ax.set_title(f"{dataset} · {model}")
            ax.set_xlabel("pretraining mask ratio")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(6, len(handles)))
    return fig


def method_scores(summary: pd.DataFrame, *, metrics=("test_f1", "test_acc", "nmi", "ari", "silhouette")) -> Figure:
    """Mean ± 95% CI over seeds of every method (rows: dataset · model; columns: metrics)."""
    groups = _groups(summary)
    fig, axes = new_figure(len(metrics), len(groups), width=2.4, height=0.25 * summary["method"].nunique() + 0.9)
    for i, (dataset, model) in enumerate(groups):
        g = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
        order = list(dict.fromkeys(g["method"]))
        keys = {m: _style_key(m, grp) for m, grp in zip(g["method"], g["group"], strict=True)}
        colors = _colors(list(keys.values()))
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            sub = g[g["metric"] == metric].set_index("method").reindex(order)
            y = np.arange(len(order))
            for k, method in enumerate(order):
                if method not in sub.index or not np.isfinite(sub.loc[method, "mean"]):
                    continue
                row = sub.loc[method]
                c = colors[keys[method]]
                ax.errorbar(row["mean"], y[k], xerr=np.nan_to_num([[row["mean"] - row["ci_low"]],
                                                                  [row["ci_high"] - row["mean"]]]),
                            fmt="o", color=c, capsize=2)
            ax.set_yticks(y, order if j == 0 else [""] * len(order))
            ax.invert_yaxis()
            ax.set_xlabel(METRIC_LABELS.get(metric, metric))
            if j == 0:
                ax.set_title(f"{dataset} · {model}", loc="left")
    return fig


def paired_differences(diffs: pd.DataFrame, *, metrics=("test_f1", "nmi", "ari")) -> Figure:
    """Forest plot of R²MAE − baseline (mean and 95% CI over seeds); rows: dataset · model, columns: metrics.
    Green: interval above 0 (R²MAE better), red: below 0, grey: covers 0."""
    groups = _groups(diffs)
    n_base = diffs["baseline"].nunique()
    fig, axes = new_figure(len(metrics), len(groups), width=2.6, height=0.25 * n_base + 0.9)
    verdict_colour = {"supported": palette(3)[2], "contradicted": palette(4)[3], "inconclusive": (0.5, 0.5, 0.5)}
    for i, (dataset, model) in enumerate(groups):
        g = diffs[(diffs["dataset"] == dataset) & (diffs["model"] == model)]
        order = list(dict.fromkeys(g["baseline"]))
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            sub = g[g["metric"] == metric].set_index("baseline").reindex(order)
            for k, base in enumerate(order):
                row = sub.loc[base]
                if not np.isfinite(row["mean"]):
                    continue
                ax.errorbar(row["mean"], k, xerr=np.nan_to_num([[row["mean"] - row["ci_low"]],
                                                                [row["ci_high"] - row["mean"]]]),
                            fmt="o", capsize=2, color=verdict_colour[row["verdict"]])
            ax.axvline(0.0, color="k", lw=0.8)
            ax.set_yticks(range(len(order)), [f"− {b}" for b in order] if j == 0 else [""] * len(order))
            ax.invert_yaxis()
            ax.set_xlabel(f"Δ {METRIC_LABELS.get(metric, metric)}")
            if j == 0:
                ax.set_title(f"R²MAE − baseline · {dataset} · {model}", loc="left")
    return fig


def reconstruction(recon: pd.DataFrame) -> Figure:
    """Masked-gene MSE and Pearson r on held-out cells against the evaluation mask ratio, per method (mean over
    seeds ± SE); rows: dataset · model."""
    groups = _groups(recon)
    fig, axes = new_figure(2, len(groups), width=3.0, height=2.2)
    colors = method_colors(list(dict.fromkeys(recon["method"])))  # one colour per method across panels
    for i, (dataset, model) in enumerate(groups):
        g = recon[(recon["dataset"] == dataset) & (recon["model"] == model)]
        order = list(dict.fromkeys(g["method"]))
        for j, metric in enumerate(("mse", "pearson")):
            ax = axes[i, j]
            stats = g.groupby(["method", "eval_ratio"])[metric].agg(["mean", "sem"]).reset_index()
            for method in order:
                s = stats[stats["method"] == method]
                ax.errorbar(s["eval_ratio"], s["mean"], yerr=s["sem"].fillna(0.0), marker="o", capsize=2,
                            color=colors[method], label=method, ls=_line_style(g, method))
            ax.set_xlabel("evaluation mask ratio")
            ax.set_ylabel(METRIC_LABELS[metric])
            ax.set_title(f"{dataset} · {model}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(5, len(handles)))
    return fig


def loss_curves(loss: pd.DataFrame) -> Figure:
    """Pretraining loss (masked-gene MSE of the batch, at each method's own ratios) against the step, mean over
    seeds; rows: dataset · model."""
    groups = _groups(loss)
    fig, axes = new_figure(1, len(groups), width=4.0, height=2.2)
    colors = method_colors(list(dict.fromkeys(loss["method"])))  # one colour per method across panels
    for i, (dataset, model) in enumerate(groups):
        ax = axes[i, 0]
        g = loss[(loss["dataset"] == dataset) & (loss["model"] == model)]
        order = list(dict.fromkeys(g["method"]))
        for method in order:
            s = g[g["method"] == method].groupby("step")["loss"].mean()
            ax.plot(s.index, s.to_numpy(), color=colors[method], label=method, ls=_line_style(g, method))
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"{dataset} · {model}")
        ax.legend(ncols=2, fontsize=7)
    return fig


def umap_grid(adata, *, color: str = "label", ncols: int = 3) -> Figure:
    """UMAPs of several embeddings of the same cells, coloured by ``obs[color]`` (``sc.pl.embedding``).

    ``adata`` holds ``obsm["X_umap_<i>"]`` (2-d coordinates) and ``uns["methods"]`` (panel titles), as written by
    :func:`r2mae_core.experiments.single_cell.umap_adata`.
    """
    import scanpy as sc
    from matplotlib.lines import Line2D

    methods = list(adata.uns["methods"])
    nrows = int(np.ceil(len(methods) / ncols))
    fig, axes = new_figure(ncols, nrows, width=2.4, height=2.4)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(methods):
            ax.set_axis_off()
            continue
        sc.pl.embedding(adata, basis=f"X_umap_{k}", color=color, ax=ax, show=False, title=methods[k],
                        legend_loc="none", frameon=False, size=12)
    categories = list(adata.obs[color].cat.categories)
    colours = list(adata.uns.get(f"{color}_colors", palette(len(categories))))
    handles = [Line2D([], [], marker="o", ls="", color=c, label=cat) for cat, c in zip(categories, colours,
                                                                                        strict=False)]
    fig.legend(handles=handles, loc="outside right center", fontsize=7, markerscale=0.8)
    return fig
