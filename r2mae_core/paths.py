"""Where things live: every path is resolved from the package location, never from the caller's cwd.

Environment overrides (for tests and for moving caches to a bigger disk):
``R2MAE_RESULTS_DIR``, ``R2MAE_CACHE_DIR``, ``R2MAE_LEDGER_DIR``, ``R2MAE_DATA_DIR``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["REPO_ROOT", "PROFILES", "results_root", "cache_root", "ledger_root", "data_root", "notebook_names",
           "check_profile", "check_notebook"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("smoke", "quick", "full")
NOTEBOOK_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")


def _env_path(var: str, default: Path) -> Path:
    """The folder ``var`` names (else ``default``); one line when it names an existing file."""
    value = os.environ.get(var)
    path = Path(value).expanduser().resolve() if value else default
    if path.exists() and not path.is_dir():
        raise ValueError(f"{var}={value!r} is not allowed: it is a file; name a folder (it is created if missing)")
    return path


def results_root() -> Path:
    """``results/`` at the repo root (``R2MAE_RESULTS_DIR`` overrides)."""
    return _env_path("R2MAE_RESULTS_DIR", REPO_ROOT / "results")


def cache_root() -> Path:
    """Result cache of expensive runs: ``results/cache/`` (``R2MAE_CACHE_DIR`` overrides)."""
    return _env_path("R2MAE_CACHE_DIR", results_root() / "cache")


def ledger_root() -> Path:
    """Committed results of runs made on another machine (the GPU campaign): ``results/full/runs/``
    (``R2MAE_LEDGER_DIR`` overrides)."""
    return _env_path("R2MAE_LEDGER_DIR", results_root() / "full" / "runs")


def data_root() -> Path:
    """Prepared dataset cache: ``data/`` at the repo root (``R2MAE_DATA_DIR`` overrides)."""
    return _env_path("R2MAE_DATA_DIR", REPO_ROOT / "data")


def notebook_names() -> list[str]:
    """The notebooks of the project (``notebooks/NN_slug.py``, the jupytext sources), sorted."""
    return sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("*.py") if NOTEBOOK_PATTERN.match(p.stem))


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is one of :data:`PROFILES`, else raise a one-line ValueError."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not allowed: use one of {', '.join(PROFILES)}")
    return profile


def check_notebook(notebook: str) -> str:
    """Return ``notebook`` if it names an existing notebook (``NN_slug``), else raise a one-line ValueError."""
    known = notebook_names()
    if notebook not in known:
        raise ValueError(f"notebook={notebook!r} does not exist: use one of {', '.join(known) or '(none)'}")
    return notebook
