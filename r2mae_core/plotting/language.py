"""Figures of 03_language: task scores against the fixed mask ratio per model size, methods compared, paired
differences of R²MAE against its comparators, and training curves. Inputs are the tidy tables of
:mod:`r2mae_core.experiments.language` / ``language_claims``; every function returns a Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import mean_ci
from .style import method_colors, new_figure, palette

__all__ = ["ratio_sweep", "method_comparison", "paired_differences", "training_curves"]

_KIND_ORDER = {"fixed": 0, "mrd": 1, "scheduled": 2, "r2mae": 3, "ablation": 4, "reference": 5}
TASK_LABELS = {"downstream": "downstream mean", "genre": "genre macro-F1", "spam": "spam F1",
               "pos": "POS accuracy", "mlm": "− MLM loss (test ratios)"}


def _ordered_methods(frame: pd.DataFrame) -> list[str]:
    """Methods in reading order: fixed ratios (ascending), MRD, scheduled, R²MAE, ablations, reference rows."""
    first = frame.drop_duplicates("method")
    key = first.assign(k=first["kind"].map(_KIND_ORDER).fillna(9), r=first["ratio"].fillna(0.0))
    return key.sort_values(["k", "r", "method"])["method"].tolist()


def _ci(values) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan
    return mean_ci(values)


def ratio_sweep(sc: pd.DataFrame, *, main_size: str, split: str = "test",
                tasks=("downstream", "genre", "spam", "pos", "mlm")) -> Figure:
    """Score against the fixed pretraining ratio, one line per model size (mean and 95% interval over seeds).

    Horizontal lines at the main size: R²MAE (solid, shaded interval), the scheduled and MRD baselines (dashed),
    the randomly initialised encoder and TF-IDF (grey dotted), so each fixed-ratio curve reads against them.
    """
    sub = sc[sc["split"] == split]
    fig, axes = new_figure(len(tasks), 1, width=2.6, height=2.3)
    sizes = list(dict.fromkeys(sub.loc[sub["kind"] == "fixed", "size"]))
    colours = dict(zip(sizes, palette(len(sizes)), strict=True))
    others = _ordered_methods(sub[sub["kind"] != "fixed"])
    other_colours = method_colors(others)
    for ax, task in zip(axes[0], tasks, strict=True):
        for size in sizes:
            fx = sub[(sub["kind"] == "fixed") & (sub["size"] == size)]
            stats = [(r, *_ci(g[task])) for r, g in fx.groupby("ratio")]
            if not stats:
                continue
            r, m, lo, hi = map(np.array, zip(*stats, strict=True))
            ax.plot(r, m, "o-", color=colours[size], label=f"fixed ratio, size {size}", markersize=3)
            ax.fill_between(r, lo, hi, color=colours[size], alpha=0.2, linewidth=0)
        for method in others:
            g = sub[(sub["method"] == method) & (sub["size"].isin([main_size, "-"]))]
            m, lo, hi = _ci(g[task])
            if not np.isfinite(m):
                continue
            ref = method in ("random init", "TF-IDF + LR")
            style = (":" if method == "random init" else "-.") if ref else ("-" if method == "R²MAE" else "--")
            colour = ("0.55" if method == "random init" else "0.25") if ref else other_colours[method]
            ax.axhline(m, color=colour, linestyle=style, linewidth=1.2 if method == "R²MAE" else 1.0,
                       label=f"{method} ({main_size})" if not ref or method != "TF-IDF + LR" else method)
            if method == "R²MAE" and np.isfinite(lo):
                ax.axhspan(lo, hi, color=colour, alpha=0.12, linewidth=0)
        ax.set_xlabel("fixed pretraining mask ratio")
        ax.set_title(TASK_LABELS.get(task, task))
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(5, len(handles)))
    return fig


def method_comparison(sc: pd.DataFrame, *, main_size: str, split: str = "test",
                      tasks=("downstream", "genre", "spam", "pos", "mlm")) -> Figure:
    """Every method at the main size (plus TF-IDF): mean and 95% interval over seeds per task (points, bars)."""
    sub = sc[(sc["split"] == split) & sc["size"].isin([main_size, "-"])]
    methods = _ordered_methods(sub)
    colours = method_colors(methods)
    fig, axes = new_figure(len(tasks), 1, width=2.5, height=0.28 * len(methods) + 1.2, sharey=True)
    for ax, task in zip(axes[0], tasks, strict=True):
        for y, method in enumerate(methods):
            m, lo, hi = _ci(sub.loc[sub["method"] == method, task])
            if not np.isfinite(m):
                continue
            err = None if not np.isfinite(lo) else [[m - lo], [hi - m]]
            ax.errorbar([m], [y], xerr=err, fmt="o", color=colours[method], markersize=4, capsize=2)
        ax.set_title(TASK_LABELS.get(task, task))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(range(len(methods)), methods)
    axes[0, 0].invert_yaxis()
    return fig


def paired_differences(comp: pd.DataFrame) -> Figure:
    """R²MAE minus its comparator (best fixed / best MRD, chosen on validation): paired mean and 95% interval
    over seeds on the test split, per task; the verdict of L3/L4 reads off the position of the interval to 0."""
    fig, axes = new_figure(1, 1, width=4.6, height=0.35 * len(comp) + 1.0)
    ax = axes[0, 0]
    colours = method_colors(["best fixed", "best MRD"])
    labels = []
    for y, row in enumerate(comp.itertuples()):
        err = None if not np.isfinite(row.ci_low) else [[row.mean - row.ci_low], [row.ci_high - row.mean]]
        ax.errorbar([row.mean], [y], xerr=err, fmt="o", color=colours[row.against], markersize=4, capsize=2,
                    label=row.against)
        labels.append(f"{row.task}: vs {row.comparator}")
    ax.axvline(0.0, color="0.4", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("R²MAE − comparator, test score\n(> 0: R²MAE better)")
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    ax.legend(handles.values(), handles.keys(), loc="best")
    return fig


def training_curves(history: pd.DataFrame, *, size: str | None = None) -> Figure:
    """Pretraining MLM loss (left) and the sampled mask ratio (right) against the step, mean over seeds."""
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
