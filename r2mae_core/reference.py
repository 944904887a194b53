"""The smoke reference: each notebook's key numbers at the smoke profile, with a tolerance per number.

``./build.sh pair NN_slug`` runs the notebook at smoke scale under several master seeds and stores
``notebooks/reference/NN_slug.json``: the key numbers of the default seed and, for each number, a tolerance
from its seed-to-seed spread. The notebook's last cell (the one nbval checks) prints :func:`check`, a text that
stays the same as long as every key number lies within its tolerance; a number outside it is named there, so
nbval fails and says which.

Why a tolerance and how wide. A key number is a function of floating-point training; another processor (other
vector width, BLAS kernel or thread count) changes the rounding of the same operations, and training amplifies
that into a different but equally valid trajectory from the *same* initialisation, data order and masks. Its
effect is therefore bounded by the effect of changing the master seed, which changes all three. The tolerance
of a number ``x`` measured under seeds ``s = 1..n`` (``n`` = 5 by default) is

.. math:: \\tau(x) = \\max\\left(z\\,\\hat\\sigma(x),\\; u(x_0)\\right), \\qquad z = 6,

with :math:`\\hat\\sigma` the sample standard deviation over the seeds and :math:`u(x_0)` one unit of the fourth
significant digit of the reference value (key numbers are reported to four significant digits, so a smaller
difference is below the reported precision). ``z = 6`` allows for the few seeds behind :math:`\\hat\\sigma` and
for about two hundred numbers checked in one test run. Text values (best-ratio names, verdicts) are asserted
only if every seed gives the same text; a verdict that flips with the seed at smoke scale is too fragile to
assert and is listed as not asserted.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from .io import atomic_write_text
from .paths import REPO_ROOT, check_notebook

__all__ = ["Z", "REFERENCE_DIR", "reference_path", "reporting_unit", "build_reference", "deviations", "check",
           "write_reference", "load_reference"]

#: Tolerance in seed standard deviations (module docstring).
Z = 6.0
REFERENCE_DIR = REPO_ROOT / "notebooks" / "reference"
FORMAT = 1


def reference_path(notebook: str) -> Path:
    """``notebooks/reference/<notebook>.json``."""
    return REFERENCE_DIR / f"{notebook}.json"


def reporting_unit(value: float) -> float:
    """One unit of the fourth significant digit of ``value``: ``10^(floor(log10 |v|) - 3)`` (0 for ``v = 0``)."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    return 10.0 ** (math.floor(math.log10(abs(value))) - 3)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _number(v) -> float:
    """A key number as float: ``None`` (a NaN written to JSON) becomes NaN."""
    return math.nan if v is None else float(v)


def build_reference(notebook: str, runs: Sequence[Mapping], seeds: Sequence[int]) -> dict:
    """The reference of ``notebook`` from the key numbers of several runs; ``runs[0]`` is the default seed.

    Parameters
    ----------
    notebook
        ``NN_slug``.
    runs
        One key-number mapping per master seed (as ``metrics.json``: numbers, ``None`` for NaN, or text).
    seeds
        The master seed of each run (``seeds[0]`` is the notebook's default).

    Returns
    -------
    dict
        ``{"format", "notebook", "seeds", "z", "numbers": {key: {"value", "sd", "tolerance"}},
        "texts": {key: {"value", "asserted", "seen"}}}``.
    """
    check_notebook(notebook)
    if len(runs) < 2 or len(runs) != len(seeds):
        raise ValueError(f"runs={len(runs)}, seeds={len(seeds)}: need one run per seed and at least two seeds")
    keys = list(runs[0])
    missing = sorted({k for r in runs[1:] for k in keys if k not in r})
    if missing:
        raise ValueError(f"key numbers {missing} are missing from some seeds' runs")
    numbers, texts = {}, {}
    for key in keys:
        values = [r[key] for r in runs]
        if all(_is_number(v) or v is None for v in values):
            xs = [_number(v) for v in values]
            finite = [x for x in xs if math.isfinite(x)]
            sd = statistics.stdev(finite) if len(finite) == len(xs) else math.nan
            tol = max(Z * sd, reporting_unit(xs[0])) if math.isfinite(sd) else math.nan
            numbers[key] = {"value": values[0], "sd": sd if math.isfinite(sd) else None,
                            "tolerance": tol if math.isfinite(tol) else None}
        else:
            seen = sorted({str(v) for v in values})
            texts[key] = {"value": str(values[0]), "asserted": len(seen) == 1, "seen": seen}
    return {"format": FORMAT, "notebook": notebook, "seeds": list(seeds), "z": Z, "numbers": numbers,
            "texts": texts}


def write_reference(reference: Mapping) -> Path:
    """Write ``reference`` (from :func:`build_reference`) to its :func:`reference_path`."""
    text = json.dumps(reference, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write_text(reference_path(reference["notebook"]), text)


def load_reference(notebook: str) -> dict | None:
    """The stored reference of ``notebook``, or ``None`` if there is none."""
    path = reference_path(check_notebook(notebook))
    if not path.exists():
        return None
    reference = json.loads(path.read_text(encoding="utf-8"))
    if reference.get("format") != FORMAT:
        raise ValueError(f"{path}: format {reference.get('format')!r} is not {FORMAT}: run ./build.sh pair {notebook}")
    return reference


def deviations(key_numbers: Mapping, reference: Mapping) -> list[str]:
    """One line per key number outside its tolerance (or missing, or unexpected); empty if all agree.

    A number whose reference is NaN must be NaN; a number with a NaN spread (NaN in some seed) must equal the
    reference to within one reporting unit.
    """
    lines = []
    for key, ref in reference["numbers"].items():
        if key not in key_numbers:
            lines.append(f"{key}: missing (reference {ref['value']})")
            continue
        x, x0 = _number(key_numbers[key]), _number(ref["value"])
        if math.isnan(x0) or math.isnan(x):
            if math.isnan(x0) != math.isnan(x):
                lines.append(f"{key} = {x:.4g}, reference {x0:.4g}")
            continue
        tol = ref["tolerance"] if ref["tolerance"] is not None else reporting_unit(x0)
        if abs(x - x0) > tol * (1 + 1e-9):
            lines.append(f"{key} = {x:.4g}, outside {x0:.4g} ± {tol:.3g}")
    for key, ref in reference["texts"].items():
        if key not in key_numbers:
            lines.append(f"{key}: missing (reference {ref['value']!r})")
        elif ref["asserted"] and str(key_numbers[key]) != ref["value"]:
            lines.append(f"{key} = {key_numbers[key]!r}, reference {ref['value']!r}")
    extra = sorted(set(key_numbers) - set(reference["numbers"]) - set(reference["texts"]))
    lines += [f"{key}: not in the reference (run ./build.sh pair {reference['notebook']})" for key in extra]
    return lines


def check(notebook: str, profile: str, key_numbers: Mapping) -> str:
    """The text the notebook's checked cell prints: agreement with the smoke reference, or what deviates.

    At another profile than ``smoke`` there is nothing to compare and the text says so.
    """
    if profile != "smoke":
        return f"{notebook}: key numbers are compared with the reference at the smoke profile only (this: {profile})"
    reference = load_reference(notebook)
    if reference is None:
        return f"{notebook}: no smoke reference: run ./build.sh pair {notebook}"
    bad = deviations(key_numbers, reference)
    n_text = sum(t["asserted"] for t in reference["texts"].values())
    loose = sorted(k for k, t in reference["texts"].items() if not t["asserted"])
    head = (f"{notebook}: {len(reference['numbers'])} key numbers and {n_text} texts checked against the smoke "
            f"reference ({len(reference['seeds'])} seeds, tolerance {reference['z']:g} seed SDs)")
    lines = [head]
    if loose:
        lines.append(f"not asserted (they change with the seed at smoke scale): {', '.join(loose)}")
    lines += [f"DEVIATES: {line}" for line in bad] or ["all within tolerance"]
    return "\n".join(lines)
