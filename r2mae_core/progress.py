"""Progress of a long notebook cell, seen from the terminal that started it.

A notebook executed by ``./build.sh run`` runs in a kernel whose output goes into the notebook, not to the
terminal. The run engine (:func:`r2mae_core.runs.execute`) therefore also writes one line — runs done of the plan,
the current run, elapsed time and an estimate of the time left — to the file named by ``R2MAE_PROGRESS_FILE``
(set by :mod:`r2mae_core.pipeline` for each notebook), and the pipeline prints each new line. Without the variable
nothing is written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .io import atomic_write_text

__all__ = ["ENV_VAR", "progress_line", "report"]

#: The variable naming the file a running notebook's progress goes to.
ENV_VAR = "R2MAE_PROGRESS_FILE"


def progress_line(desc: str, done: int, total: int, current: str, started: float, done_at_start: int, *,
                  now: float | None = None) -> str:
    """``"<desc>: <done>/<total> runs, <current>, 3.2 min, about 5.1 min left"``: the time left extrapolates the
    runs finished since ``started`` (``time.monotonic()``) to the runs not done (none said before the first)."""
    elapsed = (time.monotonic() if now is None else now) - started
    finished = done - done_at_start
    left = f", about {elapsed / finished * (total - done) / 60:.1f} min left" if finished > 0 and done < total else ""
    return f"{desc}: {done}/{total} runs{', ' + current if current else ''}, {elapsed / 60:.1f} min{left}"


def report(line: str) -> None:
    """Write ``line`` to the progress file, if one is set (atomically: the reader sees one whole line)."""
    path = os.environ.get(ENV_VAR)
    if path:
        atomic_write_text(Path(path), line + "\n")
