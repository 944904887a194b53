"""The one paper style of the project (seaborn "paper" context, colour-blind palette)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

__all__ = ["STYLE", "apply_style", "paper_style", "new_figure", "palette", "method_colors"]

STYLE = {
    "figure.dpi": 110,  # inline display: 8-pt ticks at 12 px, readable in JupyterLab; save_figure writes 200 dpi
    "savefig.dpi": 200,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "pdf.fonttype": 42,  # editable text in PDFs
    "svg.hashsalt": "r2mae",
}


def apply_style() -> None:
    """Set the project style globally (notebooks call it once, via the first plotting call)."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    mpl.rcParams.update(STYLE)


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Context manager applying the project style temporarily."""
    with mpl.rc_context():
        apply_style()
        yield


def palette(n: int) -> list[tuple[float, float, float]]:
    """``n`` colour-blind-safe colours (cycled beyond 10)."""
    if n < 1:
        raise ValueError(f"n={n!r} is not allowed: use n >= 1")
    base = sns.color_palette("colorblind", 10)
    return [base[i % len(base)] for i in range(n)]


def method_colors(methods: list[str]) -> dict[str, tuple[float, float, float]]:
    """A stable colour per method name, in the given order."""
    return dict(zip(methods, palette(len(methods)), strict=True))


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 3.2, height: float = 2.6,
               sharex: bool = False, sharey: bool = False) -> tuple[plt.Figure, np.ndarray]:
    """A styled figure with an ``(nrows, ncols)`` array of axes; ``width``/``height`` are per panel (inches)."""
    apply_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), sharex=sharex,
                             sharey=sharey, squeeze=False, layout="constrained")
    return fig, axes
