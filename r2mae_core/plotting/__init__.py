"""Figures: one paper style (:mod:`.style`) and one module of figure functions per notebook section.

Every figure function takes tidy data (and an optional ``ax``) and returns a ``matplotlib.figure.Figure``;
only :func:`r2mae_core.io.save_figure` writes files.
"""

from .style import apply_style, new_figure, palette, paper_style

__all__ = ["apply_style", "new_figure", "palette", "paper_style"]
