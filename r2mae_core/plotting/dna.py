"""Figures of 04_dna: probe MCC against the fixed mask ratio per model size, methods compared, paired differences
of R²MAE against its comparators, and training curves. Inputs are the tidy tables of
:mod:`r2mae_core.experiments.dna` / ``dna_claims``; every function returns a Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .language import _ci
from .language import training_curves as _training_curves
from .style import method_colors, new_figure, palette

__all__ = ["ratio_sweep", "method_comparison", "paired_differences", "training_curves", "TASK_LABELS"]

_KIND_ORDER = {"fixed": 0, "scheduled": 1, "curriculum": 2, "r2mae": 3, "reference": 5}
_REFERENCES = ("random init", "k-mer counts + LR")
TASK_LABELS = {"mean": "task average MCC", "exon_intron": "exon vs intron MCC", "promoter": "promoter MCC",
               "species": "species (4-way) MCC", "mlm_acc": "masked-nucleotide accuracy"}
TASKS = ("mean", "exon_intron", "promoter", "species")


def _ordered_methods(frame: pd.DataFrame) -> list[str]:
    """Methods in reading order: fixed ratios (ascending), scheduled, curriculum, R²MAE, reference rows."""
    first = frame.drop_duplicates("method")
    key = first.assign(k=first["kind"].map(_KIND_ORDER).fillna(9), r=first["ratio"].fillna(0.0))
    return key.sort_values(["k", "r", "method"])["method"].tolist()


def ratio_sweep(sc: pd.DataFrame, *, main_size: str, split: str = "test", tasks=TASKS) -> Figure:
    """Probe MCC against the fixed pretraining ratio, one line per model size (mean and 95% interval over seeds).

    Horizontal lines at the main size: R²MAE (solid, shaded interval), the scheduled and curriculum baselines
    (dashed), the randomly initialised encoder (grey dotted) and the k-mer-count baseline (dark dash-dot).
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
            m, lo, hi = _ci(g[task]) if task in g else (np.nan, np.nan, np.nan)
            if not np.isfinite(m):
                continue
            ref = method in _REFERENCES
            style = (":" if method == "random init" else "-.") if ref else ("-" if method == "R²MAE" else "--")
            colour = ("0.55" if method == "random init" else "0.25") if ref else other_colours[method]
            ax.axhline(m, color=colour, linestyle=style, linewidth=1.2 if method == "R²MAE" else 1.0,
                       label=method if method == "k-mer counts + LR" else f"{method} ({main_size})")
            if method == "R²MAE" and np.isfinite(lo):
                ax.axhspan(lo, hi, color=colour, alpha=0.12, linewidth=0)
        ax.set_xlabel("fixed pretraining mask ratio")
        ax.set_title(TASK_LABELS.get(task, task))
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=min(4, len(handles)))
    return fig


def method_comparison(sc: pd.DataFrame, *, main_size: str, split: str = "test", tasks=TASKS) -> Figure:
    """Every method at the main size (plus the k-mer baseline): mean and 95% interval over seeds per task."""
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
    """R²MAE minus each comparator (best fixed / best scheduled-or-curriculum, chosen on validation; random init):
    paired mean and 95% interval over seeds on the test split, per task; D1/D2/S1 read off the interval's
    position relative to 0 (S1: to its margin)."""
    fig, axes = new_figure(1, 1, width=4.8, height=0.32 * len(comp) + 1.0)
    ax = axes[0, 0]
    colours = method_colors(list(dict.fromkeys(comp["against"])))
    labels = []
    for y, row in enumerate(comp.itertuples()):
        err = None if not np.isfinite(row.ci_low) else [[row.mean - row.ci_low], [row.ci_high - row.mean]]
        ax.errorbar([row.mean], [y], xerr=err, fmt="o", color=colours[row.against], markersize=4, capsize=2,
                    label=row.against)
        labels.append(f"{row.task}: vs {row.comparator}")
    ax.axvline(0.0, color="0.4", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("R²MAE − comparator, test MCC\n(> 0: R²MAE better)")
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles), fontsize="small")
    return fig


def training_curves(history: pd.DataFrame, *, size: str | None = None) -> Figure:
    """Pretraining masked-token loss (left) and the sampled mask ratio (right) against the step, mean over seeds
    (the figure of :func:`r2mae_core.plotting.language.training_curves`)."""
    return _training_curves(history, size=size)
