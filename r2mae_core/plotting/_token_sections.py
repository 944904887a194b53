"""Figures shared by the token-MLM sections (03_language, 04_dna): scores against the fixed mask ratio per model
size, methods compared, paired differences of R²MAE against its comparators, and training curves. Each section
passes its task list, task labels, method order and reference rows; every function returns a Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import mean_ci
from .style import method_colors, new_figure, palette

__all__ = ["ordered_methods", "ci", "ratio_sweep", "method_comparison", "paired_differences", "training_curves"]


def ordered_methods(frame: pd.DataFrame, group_order: dict[str, int]) -> list[str]:
    """Methods in reading order.

    Parameters
    ----------
    frame : DataFrame
        Rows with ``method``, ``group`` and ``ratio`` columns.
    group_order : dict of str to int
        Rank of each method group (unknown groups rank 9).

    Returns
    -------
    list of str
        Unique methods sorted by (group rank, ratio with NaN read as 0, name).
    """
    first = frame.drop_duplicates("method")
    key = first.assign(k=first["group"].map(group_order).fillna(9), r=first["ratio"].fillna(0.0))
    return key.sort_values(["k", "r", "method"])["method"].tolist()


def ci(values) -> tuple[float, float, float]:
    """Mean and 95% t-interval (:func:`r2mae_core.stats.mean_ci`) of the finite ``values``; all NaN if none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan
    return mean_ci(values)


def ratio_sweep(sc: pd.DataFrame, *, main_size: str, split: str, tasks, task_labels: dict[str, str],
                group_order: dict[str, int], baseline: str, legend_cols: int) -> Figure:
    """Score against the fixed pretraining ratio, one line per model size (mean and 95% interval over seeds).

    Horizontal lines at the main size (or size ``"-"``): the declared R²MAE (group ``r2mae``: solid, shaded
    interval), the other baselines
    (dashed), the randomly initialised encoder (grey dotted) and the non-neural ``baseline`` (dark dash-dot,
    labelled without the size). A task missing from the table draws no horizontal lines.
    """
    sub = sc[sc["split"] == split]
    fig, axes = new_figure(len(tasks), 1, width=2.6, height=2.3)
    sizes = list(dict.fromkeys(sub.loc[sub["group"] == "fixed", "size"]))
    colours = dict(zip(sizes, palette(len(sizes)), strict=True))
    others = ordered_methods(sub[sub["group"] != "fixed"], group_order)
    other_colours = method_colors(others)
    declared = set(sub.loc[sub["group"] == "r2mae", "method"])
    for ax, task in zip(axes[0], tasks, strict=True):
        for size in sizes:
            fx = sub[(sub["group"] == "fixed") & (sub["size"] == size)]
            stats = [(r, *ci(g[task])) for r, g in fx.groupby("ratio")]
            if not stats:
                continue
            r, m, lo, hi = map(np.array, zip(*stats, strict=True))
            ax.plot(r, m, "o-", color=colours[size], label=f"fixed ratio, size {size}", markersize=3)
            ax.fill_between(r, lo, hi, color=colours[size], alpha=0.2, linewidth=0)
        for method in others:
            g = sub[(sub["method"] == method) & (sub["size"].isin([main_size, "-"]))]
            m, lo, hi = ci(g[task]) if task in g else (np.nan, np.nan, np.nan)
            if not np.isfinite(m):
                continue
            ref = method in ("random init", baseline)
            style = (":" if method == "random init" else "-.") if ref else ("-" if method in declared else "--")
            colour = ("0.55" if method == "random init" else "0.25") if ref else other_colours[method]
            ax.axhline(m, color=colour, linestyle=style, linewidth=1.2 if method in declared else 1.0,
                       label=method if method == baseline else f"{method} ({main_size})")
            if method in declared and np.isfinite(lo):
                ax.axhspan(lo, hi, color=colour, alpha=0.12, linewidth=0)
        ax.set_xlabel("fixed pretraining mask ratio")
        ax.set_title(task_labels.get(task, task))
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(legend_cols, len(handles)))
    return fig


def method_comparison(sc: pd.DataFrame, *, main_size: str, split: str, tasks, task_labels: dict[str, str],
                      group_order: dict[str, int]) -> Figure:
    """Every method at the main size (plus size ``"-"`` references): mean and 95% interval over seeds per task."""
    sub = sc[(sc["split"] == split) & sc["size"].isin([main_size, "-"])]
    methods = ordered_methods(sub, group_order)
    colours = method_colors(methods)
    fig, axes = new_figure(len(tasks), 1, width=2.5, height=0.28 * len(methods) + 1.2, sharey=True)
    for ax, task in zip(axes[0], tasks, strict=True):
        for y, method in enumerate(methods):
            m, lo, hi = ci(sub.loc[sub["method"] == method, task])
            if not np.isfinite(m):
                continue
            err = None if not np.isfinite(lo) else [[m - lo], [hi - m]]
            ax.errorbar([m], [y], xerr=err, fmt="o", color=colours[method], markersize=4, capsize=2)
        ax.set_title(task_labels.get(task, task))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(range(len(methods)), methods)
    axes[0, 0].invert_yaxis()
    return fig


def paired_differences(comp: pd.DataFrame, *, colour_keys, width: float, row_height: float, score: str,
                       figure_legend: bool) -> Figure:
    """R²MAE minus its comparator: paired mean and 95% interval over seeds (rows of ``comp``), one point per row.

    Parameters
    ----------
    comp : DataFrame
        Rows with ``task``, ``against``, ``comparator``, ``mean``, ``ci_low`` and ``ci_high``.
    colour_keys : list of str
        The ``against`` values the colours are assigned to (in order).
    width, row_height : float
        Figure width and height per row (inches); the height is ``row_height · len(comp) + 1``.
    score : str
        Name of the score in the x label ("test <score>").
    figure_legend : bool
        Legend below the figure (True) or inside the axes (False).
    """
    fig, axes = new_figure(1, 1, width=width, height=row_height * len(comp) + 1.0)
    ax = axes[0, 0]
    colours = method_colors(colour_keys)
    labels = []
    for y, row in enumerate(comp.itertuples()):
        err = None if not np.isfinite(row.ci_low) else [[row.mean - row.ci_low], [row.ci_high - row.mean]]
        ax.errorbar([row.mean], [y], xerr=err, fmt="o", color=colours[row.against], markersize=4, capsize=2,
                    label=row.against)
        labels.append(f"{row.task}: vs {row.comparator}")
    ax.axvline(0.0, color="0.4", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"R²MAE − comparator, test {score}\n(> 0: R²MAE better)")
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    if figure_legend:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles),
                   fontsize="small")
    else:
        ax.legend(handles.values(), handles.keys(), loc="best")
    return fig


def training_curves(history: pd.DataFrame, *, size: str | None = None) -> Figure:
    """Pretraining masked-token loss (left) and the sampled mask ratio (right) against the step, mean over seeds."""
    h = history if size is None else history[history["size"] == size]
    methods = list(dict.fromkeys(h["method"]))
    colours = method_colors(methods)
    fig, axes = new_figure(2, 1, width=3.4, height=2.5)
    for method in methods:
        g = h[h["method"] == method].groupby("step")[["loss", "ratio_mean"]].mean()
        axes[0, 0].plot(g.index, g["loss"], color=colours[method], label=method, linewidth=1.0)
        axes[0, 1].plot(g.index, g["ratio_mean"], color=colours[method], label=method, linewidth=1.0)
    axes[0, 0].set(xlabel="step", ylabel="training MLM loss (corrupted tokens)")
    axes[0, 1].set(xlabel="step", ylabel="mask ratio (batch mean)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)))
    return fig
