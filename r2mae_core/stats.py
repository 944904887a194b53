"""Summary statistics for multi-seed comparisons: means, 95% intervals, paired differences.

Every comparison of methods in the notebooks reports the mean over seeds with a Student-t interval
(docs/ARCHITECTURE.md §4, Statistics); runs that share seeds are compared by their paired differences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _sps

__all__ = ["mean_ci", "summarise", "paired_difference"]


def _check_confidence(confidence: float) -> float:
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence={confidence!r} is not allowed: use a number in (0, 1)")
    return float(confidence)


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    r"""Mean and two-sided Student-t confidence interval.

    .. math:: \bar x \pm t_{n-1, (1+c)/2}\, s / \sqrt{n}

    Parameters
    ----------
    values
        Finite numbers, one per seed (NaNs are an error: a failed run must not vanish silently).
    confidence
        Coverage of the interval, in (0, 1).

    Returns
    -------
    (mean, low, high)
        With a single value the interval is ``(nan, nan)``: one seed gives no interval.
    """
    confidence = _check_confidence(confidence)
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("values=[] is not allowed: need at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"values contain non-finite entries ({int((~np.isfinite(x)).sum())} of {x.size})")
    mean = float(x.mean())
    if x.size == 1:
        return mean, float("nan"), float("nan")
    sem = float(x.std(ddof=1) / np.sqrt(x.size))
    half = float(_sps.t.ppf(0.5 + confidence / 2, df=x.size - 1)) * sem
    return mean, mean - half, mean + half


def summarise(df: pd.DataFrame, by: Sequence[str], value: str, confidence: float = 0.95) -> pd.DataFrame:
    """Group ``df`` by ``by`` and summarise column ``value`` with :func:`mean_ci`.

    Returns
    -------
    DataFrame
        Columns ``by + [mean, ci_low, ci_high, sem, n]``, one row per group, in group order.
    """
    missing = [c for c in [*by, value] if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} not in the table (have {list(df.columns)})")
    rows = []
    for key, group in df.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high = mean_ci(group[value].to_numpy(), confidence)
        n = len(group)
        sem = float(group[value].std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        rows.append({**dict(zip(by, key, strict=True)), "mean": mean, "ci_low": low, "ci_high": high,
                     "sem": sem, "n": n})
    return pd.DataFrame(rows)


def paired_difference(
    df: pd.DataFrame,
    *,
    method_col: str,
    a: str,
    b: str,
    value: str,
    pair_on: str | Sequence[str] = "seed",
    confidence: float = 0.95,
) -> dict[str, float]:
    r"""Paired difference ``a − b`` of ``value`` over runs that share ``pair_on`` (usually the seed).

    .. math:: d_s = v_{a,s} - v_{b,s}, \qquad \bar d \pm t_{n-1}\, s_d/\sqrt{n}

    Returns
    -------
    dict
        ``mean``, ``ci_low``, ``ci_high``, ``n`` (number of pairs).
    """
    keys = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    sub = df[df[method_col].isin([a, b])]
    for name in (a, b):
        if not (sub[method_col] == name).any():
            raise ValueError(f"{method_col}={name!r} has no rows (have {sorted(df[method_col].unique())})")
    wide = sub.pivot_table(index=keys, columns=method_col, values=value, aggfunc="mean").dropna()
    if len(wide) == 0:
        raise ValueError(f"no shared {keys} between {a!r} and {b!r}: cannot pair")
    diff = (wide[a] - wide[b]).to_numpy()
    mean, low, high = mean_ci(diff, confidence)
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": int(diff.size)}
