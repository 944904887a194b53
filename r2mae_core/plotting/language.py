"""Figures of 03_language: task scores against the fixed mask ratio per model size, methods compared, paired
differences of R²MAE against its comparators, and training curves. Inputs are the tidy tables of
:mod:`r2mae_core.experiments.language` / ``language_claims``; every function returns a Figure (drawn by
:mod:`r2mae_core.plotting._token_sections`, shared with 04_dna)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from . import _token_sections as shared
from ._token_sections import training_curves

__all__ = ["ratio_sweep", "method_comparison", "paired_differences", "training_curves"]

_GROUP_ORDER = {"fixed": 0, "mrd": 1, "scheduled": 2, "r2mae": 3, "equivalent": 3.5, "diffusion": 4, "ablation": 4.5,
                "reference": 5}
TASK_LABELS = {"downstream": "downstream mean", "genre": "genre macro-F1", "spam": "spam F1",
               "pos": "POS accuracy", "mlm": "− MLM loss (test ratios)"}
TASKS = ("downstream", "genre", "spam", "pos", "mlm")


def ratio_sweep(sc: pd.DataFrame, *, main_size: str, split: str = "test", tasks=TASKS) -> Figure:
    """Score against the fixed pretraining ratio, one line per model size (mean and 95% interval over seeds).

    Horizontal lines at the main size: R²MAE (solid, shaded interval), the scheduled and MRD baselines and the
    equal-effect fixed ratio (dashed), the randomly initialised encoder and TF-IDF (grey dotted) — methods in the
    order fixed, MRD, scheduled, R²MAE, equal-effect control, ablations, references — so each fixed-ratio curve
    reads against them.
    """
    return shared.ratio_sweep(sc, main_size=main_size, split=split, tasks=tasks, task_labels=TASK_LABELS,
                              group_order=_GROUP_ORDER, baseline="TF-IDF + LR", legend_cols=5)


def method_comparison(sc: pd.DataFrame, *, main_size: str, split: str = "test", tasks=TASKS) -> Figure:
    """Every method at the main size (plus TF-IDF): mean and 95% interval over seeds per task (points, bars)."""
    return shared.method_comparison(sc, main_size=main_size, split=split, tasks=tasks, task_labels=TASK_LABELS,
                                    group_order=_GROUP_ORDER)


def paired_differences(comp: pd.DataFrame) -> Figure:
    """R²MAE minus its comparator (best fixed / best MRD, chosen on validation; the equal-effect fixed ratio;
    masked diffusion; random init): paired mean and 95% interval over seeds on the test split, per task; the
    verdicts of L3/L4/L5/S1 read off the position of the interval to 0."""
    keys = ["best fixed", "equal-effect fixed", "best MRD", "masked diffusion", "random init"]
    keys += [k for k in dict.fromkeys(comp["against"]) if k not in keys]
    return shared.paired_differences(comp, colour_keys=keys, width=4.6,
                                     row_height=0.35, score="score", figure_legend=False)
