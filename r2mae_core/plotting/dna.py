"""Figures of 04_dna: probe MCC against the fixed mask ratio per model size, methods compared, paired differences
of R²MAE against its comparators, and training curves. Inputs are the tidy tables of
:mod:`r2mae_core.experiments.dna` / ``dna_claims``; every function returns a Figure (drawn by
:mod:`r2mae_core.plotting._token_sections`, shared with 03_language)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from . import _token_sections as shared
from ._token_sections import training_curves

__all__ = ["ratio_sweep", "method_comparison", "paired_differences", "training_curves", "TASK_LABELS"]

_GROUP_ORDER = {"fixed": 0, "scheduled": 1, "curriculum": 2, "r2mae": 3, "equivalent": 3.5, "diffusion": 4,
                "reference": 5}
TASK_LABELS = {"mean": "task average MCC", "exon_intron": "exon vs intron MCC", "promoter": "promoter MCC",
               "species": "species (4-way) MCC", "mlm_acc": "masked-nucleotide accuracy"}
TASKS = ("mean", "exon_intron", "promoter", "species")


def ratio_sweep(sc: pd.DataFrame, *, main_size: str, split: str = "test", tasks=TASKS) -> Figure:
    """Probe MCC against the fixed pretraining ratio, one line per model size (mean and 95% interval over seeds).

    Horizontal lines at the main size: R²MAE (solid, shaded interval), the scheduled and curriculum baselines and
    the equal-effect fixed ratio (dashed), the randomly initialised encoder (grey dotted) and the k-mer-count
    baseline (dark dash-dot).
    """
    return shared.ratio_sweep(sc, main_size=main_size, split=split, tasks=tasks, task_labels=TASK_LABELS,
                              group_order=_GROUP_ORDER, baseline="k-mer counts + LR", legend_cols=4)


def method_comparison(sc: pd.DataFrame, *, main_size: str, split: str = "test", tasks=TASKS) -> Figure:
    """Every method at the main size (plus the k-mer baseline): mean and 95% interval over seeds per task."""
    return shared.method_comparison(sc, main_size=main_size, split=split, tasks=tasks, task_labels=TASK_LABELS,
                                    group_order=_GROUP_ORDER)


def paired_differences(comp: pd.DataFrame) -> Figure:
    """R²MAE minus each comparator (best fixed / best scheduled-or-curriculum, chosen on validation; the
    equal-effect fixed ratio; masked diffusion; random init): paired mean and 95% interval over seeds on the test
    split, per task; D1/D2/D5/S1 read off the interval's position relative to 0 (S1: to its margin)."""
    return shared.paired_differences(comp, colour_keys=list(dict.fromkeys(comp["against"])), width=4.8,
                                     row_height=0.32, score="MCC", figure_legend=True)
