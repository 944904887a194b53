"""Writing results: figures, tables, metrics and claims under ``results/<profile>/<NN_slug>/``.

Only this module writes result files. Every write is atomic (``*.partial`` then ``os.replace``), so an
interrupted notebook never leaves a file that looks complete. Figures are written as PNG + PDF with
metadata that does not change between runs (no creation dates, no software version), so re-running
with the same numbers yields the same bytes for the PNG.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .claims import Claim

if TYPE_CHECKING:
    from matplotlib.figure import Figure
from .paths import check_profile, results_root

__all__ = ["run_dir", "save_figure", "save_table", "save_metrics", "save_claims", "load_claims", "RunOutputs",
           "atomic_write_bytes", "atomic_write_text", "partial_path"]

FIGURE_NAME = re.compile(r"^fig\d+[a-z]?_[a-z0-9_]+$")
TABLE_NAME = re.compile(r"^tab\d+[a-z]?_[a-z0-9_]+$")
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")
FIGURE_FORMATS = ("png", "pdf")


def run_dir(profile: str, notebook: str, *, create: bool = True) -> Path:
    """``results/<profile>/<notebook>/`` (with ``figures/`` and ``tables/`` inside when ``create``)."""
    check_profile(profile)
    if not NOTEBOOK_NAME.match(notebook):
        raise ValueError(f"notebook={notebook!r} is not allowed: use the NN_slug form, e.g. '01_linear_theory'")
    path = results_root() / profile / notebook
    if create:
        (path / "figures").mkdir(parents=True, exist_ok=True)
        (path / "tables").mkdir(parents=True, exist_ok=True)
    return path


def partial_path(path: Path) -> Path:
    """A temporary name beside ``path`` that no other writer uses: ``<name>.<pid>.<random>.partial`` (two
    processes writing one entry at once never write into each other's file; the last rename wins)."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial")


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a unique :func:`partial_path` and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def save_figure(fig: Figure, name: str, *, profile: str, notebook: str,
                formats: Iterable[str] = FIGURE_FORMATS, dpi: int = 200) -> list[Path]:
    """Save ``fig`` as ``figures/<name>.png`` and ``.pdf`` with stable metadata.

    Parameters
    ----------
    fig
        A matplotlib Figure (plotting functions return one).
    name
        ``figN_slug`` (e.g. ``fig1_risk_vs_ratio``).
    profile, notebook
        Where it goes: ``results/<profile>/<notebook>/figures/``.
    """
    from matplotlib.figure import Figure  # here: the run engine writes results without matplotlib installed

    if not isinstance(fig, Figure):
        raise ValueError(f"fig is a {type(fig).__name__}, not a matplotlib Figure")
    if not FIGURE_NAME.match(name):
        raise ValueError(f"figure name={name!r} is not allowed: use figN_slug, e.g. 'fig1_risk_vs_ratio'")
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad:
        raise ValueError(f"formats={bad} not allowed: use {FIGURE_FORMATS}")
    out = run_dir(profile, notebook) / "figures"
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        tmp = partial_path(path)
        # No dates, no software versions: same numbers -> same file.
        metadata = {"Software": None} if fmt == "png" else {"CreationDate": None, "Producer": None,
                                                            "Creator": None, "ModDate": None}
        try:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(path)
    return paths


def save_table(df: pd.DataFrame, name: str, *, profile: str, notebook: str, float_format: str = "%.6g") -> Path:
    """Save a tidy table as ``tables/<name>.csv`` (``tabN_slug``)."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"df is a {type(df).__name__}, not a pandas DataFrame")
    if not TABLE_NAME.match(name):
        raise ValueError(f"table name={name!r} is not allowed: use tabN_slug, e.g. 'tab1_theory_vs_mc'")
    path = run_dir(profile, notebook) / "tables" / f"{name}.csv"
    return atomic_write_text(path, df.to_csv(index=False, float_format=float_format, lineterminator="\n"))


def _json_safe(obj):
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    raise ValueError(f"metric value of type {type(obj).__name__} is not JSON-serialisable: {obj!r}")


def save_metrics(metrics: Mapping, *, profile: str, notebook: str) -> Path:
    """Save the notebook's key numbers as ``metrics.json`` (NaN/inf become null)."""
    text = json.dumps(_json_safe(dict(metrics)), indent=2, sort_keys=True) + "\n"
    return atomic_write_text(run_dir(profile, notebook) / "metrics.json", text)


def save_claims(claims: Iterable[Claim], *, profile: str, notebook: str) -> Path:
    """Save the claims ledger rows as ``claims.json`` (schema: docs/ARCHITECTURE.md §6). Claim profiles must match."""
    records = []
    for claim in claims:
        if not isinstance(claim, Claim):
            raise ValueError(f"claims must be r2mae_core.claims.Claim, got {type(claim).__name__}")
        if claim.profile != profile:
            raise ValueError(f"claim {claim.id} has profile={claim.profile!r} but is saved under {profile!r}")
        records.append(claim.to_json())
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids repeat: {ids}")
    return atomic_write_text(run_dir(profile, notebook) / "claims.json", json.dumps(records, indent=2) + "\n")


def load_claims(path: Path) -> list[Claim]:
    """Read a ``claims.json`` written by :func:`save_claims`."""
    return [Claim.from_json(r) for r in json.loads(Path(path).read_text(encoding="utf-8"))]


@dataclass(frozen=True)
class RunOutputs:
    """The outputs of one notebook run: ``RunOutputs(profile, notebook).save_figure(fig, "fig1_x")``.

    Its methods return nothing (the files go to :attr:`path`), so a notebook's stored outputs hold no paths of
    the machine that ran it.
    """

    profile: str
    notebook: str

    def __post_init__(self) -> None:
        run_dir(self.profile, self.notebook, create=False)  # validates both names

    @property
    def path(self) -> Path:
        return run_dir(self.profile, self.notebook)

    def save_figure(self, fig: Figure, name: str, **kwargs) -> None:
        """Save ``fig`` under ``figures/`` (:func:`save_figure`); returns nothing, so that a notebook cell
        ending in this call shows the figure and not the machine's paths."""
        save_figure(fig, name, profile=self.profile, notebook=self.notebook, **kwargs)

    def save_table(self, df: pd.DataFrame, name: str, **kwargs) -> None:
        """Save ``df`` under ``tables/`` (:func:`save_table`)."""
        save_table(df, name, profile=self.profile, notebook=self.notebook, **kwargs)

    def save_metrics(self, metrics: Mapping) -> None:
        """Save the key numbers as ``metrics.json`` (:func:`save_metrics`)."""
        save_metrics(metrics, profile=self.profile, notebook=self.notebook)

    def save_claims(self, claims: Iterable[Claim]) -> None:
        """Save the claims as ``claims.json`` (:func:`save_claims`)."""
        save_claims(claims, profile=self.profile, notebook=self.notebook)
