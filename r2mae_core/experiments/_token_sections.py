"""Score tables and claim helpers shared by the token-MLM sections (03_language, 04_dna): the wide score table,
the summary table, the argmax fixed ratio (with its bootstrap over seeds), the comparator chosen on validation,
the paired comparisons of R²MAE and the "best ratio differs between tasks" claim."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..claims import Claim, interval_claim
from ..stats import mean_ci, paired_difference

__all__ = ["RUN_KEYS", "pivot_scores", "summary_table", "main_rows", "argmax_ratio", "best_method",
           "comparisons", "task_difference_claim", "claim_values"]

#: Columns that identify one run and split in the wide score table.
RUN_KEYS = ["method", "group", "ratio", "size", "seed", "split"]
_NAN = float("nan")


def pivot_scores(keep: pd.DataFrame, tasks) -> pd.DataFrame:
    """Wide table: one row per :data:`RUN_KEYS` (a missing ``ratio`` reads as −1), one column per task (mean value).

    The caller turns ``ratio`` −1 back into NaN (NaN keys would vanish from the pivot).
    """
    keep = keep.assign(ratio=keep["ratio"].fillna(-1.0))
    wide = keep.pivot_table(index=RUN_KEYS, columns="task", values="value", aggfunc="mean")
    return wide.reindex(columns=list(tasks)).reset_index()


def summary_table(metrics: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean and 95% interval over seeds of every (method, size, task, metric) on ``split``."""
    sub = metrics[metrics["split"] == split]
    rows = []
    for (method, group, size, task, metric), g in sub.groupby(["method", "group", "size", "task", "metric"],
                                                              sort=False, dropna=False):
        mean, low, high = mean_ci(g["value"].to_numpy())
        rows.append({"method": method, "group": group, "size": size, "task": task, "metric": metric, "mean": mean,
                     "ci_low": low, "ci_high": high, "n_seeds": len(g)})
    return pd.DataFrame(rows)


def main_rows(sc: pd.DataFrame, main_size: str, split: str) -> pd.DataFrame:
    """Rows of the score table at ``main_size`` on ``split``."""
    return sc[(sc["size"] == main_size) & (sc["split"] == split)]


def argmax_ratio(frame: pd.DataFrame, task: str, rng: np.random.Generator | None, n_boot: int) -> np.ndarray:
    """Argmax fixed ratio of the seed-mean curve; with ``rng``: (n_boot,) bootstrap over seeds per ratio.

    Returns ``[argmax_r mean_s score(r, s)]`` without ``rng``; with it, per draw b the argmax of the means of
    seeds resampled with replacement at each ratio (ties: the smallest ratio).
    """
    curves = {float(r): g[task].to_numpy(dtype=float) for r, g in frame[frame["group"] == "fixed"].groupby("ratio")}
    ratios = np.array(sorted(curves))
    if rng is None:
        return np.array([ratios[np.argmax([curves[r].mean() for r in ratios])]])
    draws = np.stack([curves[r][rng.integers(0, curves[r].size, (n_boot, curves[r].size))].mean(axis=1)
                      for r in ratios], axis=1)  # (n_boot, n_ratios)
    return ratios[np.argmax(draws, axis=1)]


def best_method(frame: pd.DataFrame, task: str, methods) -> str | None:
    """Method (among ``methods``) with the best seed-mean ``task`` score in ``frame`` (ties: first)."""
    means = frame[frame["method"].isin(list(methods))].groupby("method", sort=False)[task].mean().dropna()
    return None if means.empty else str(means.idxmax())


def comparisons(val: pd.DataFrame, test: pd.DataFrame, tasks, pools: dict, *, on_test=(),
                require_in_test: bool = False) -> pd.DataFrame:
    """Per task and pool: R²MAE (the method of group ``r2mae``) − the pool's best method, paired over seeds on
    ``test``.

    The comparator is the pool's method with the best seed-mean score on ``val`` (on ``test`` for the pools named
    in ``on_test``); a pool without a comparator, or a ``test`` without R²MAE (or, with ``require_in_test``,
    without the comparator), gives no row. Rows: task, against (pool name), comparator and
    :func:`r2mae_core.stats.paired_difference` of score(R²MAE) − score(comparator).
    """
    declared = list(dict.fromkeys(test.loc[test["group"] == "r2mae", "method"]))
    if len(declared) > 1:
        raise ValueError(f"the score table has {len(declared)} methods of group 'r2mae': expected one")
    rows = []
    for task in tasks:
        for against, pool in pools.items():
            other = best_method(test if against in on_test else val, task, pool)
            if other is None or not declared or (require_in_test and other not in set(test["method"])):
                continue
            d = paired_difference(test, method_col="method", a=declared[0], b=other, value=task, pair_on="seed")
            rows.append({"task": task, "against": against, "comparator": other, **d})
    return pd.DataFrame(rows)


def task_difference_claim(cid: str, val_main: pd.DataFrame, test_main: pd.DataFrame, tasks, *, config, source: str,
                          profile: str, rng: np.random.Generator, n_boot: int, bootstrap: str) -> Claim:
    """The best fixed ratio differs between tasks: the two tasks whose validation argmax ratios differ most.

    The bootstrap (test split) of argmax(a) − argmax(b) with its percentile 95% interval excluding 0 →
    supported, else inconclusive (a test of difference cannot contradict). One fixed ratio, or all tasks
    sharing one validation argmax: inconclusive. ``bootstrap`` names the bootstrap in the metric text.
    """
    val_arg = {t: float(argmax_ratio(val_main, t, None, 0)[0]) for t in tasks}
    a, b = max(tasks, key=lambda t: val_arg[t]), min(tasks, key=lambda t: val_arg[t])
    if len(config.sweep_ratios) >= 2 and a != b and val_arg[a] != val_arg[b]:
        diff = argmax_ratio(test_main, a, rng, n_boot) - argmax_ratio(test_main, b, rng, n_boot)
        point = float(argmax_ratio(test_main, a, None, 0)[0] - argmax_ratio(test_main, b, None, 0)[0])
        low, high = np.percentile(diff, [2.5, 97.5])
        return interval_claim(cid, f"The best fixed ratio differs between tasks ({a}: {val_arg[a]:g} vs {b}: "
                              f"{val_arg[b]:g} on validation, size {config.main_size})", source,
                              f"test argmax({a}) − argmax({b}) ({bootstrap})", value=point, ci_low=low, ci_high=high,
                              n_seeds=config.n_seeds, profile=profile, allow_contradicted=False)
    return Claim(cid, "The best fixed ratio differs between tasks (all tasks share the validation argmax "
                 f"{val_arg[a]:g})", source, "argmax ratio difference", 0.0, _NAN, _NAN, config.n_seeds,
                 "inconclusive", profile)


def claim_values(out: dict, claims_list: list[Claim]) -> dict[str, float]:
    """``out`` plus ``<claim id>_value`` of every finite claim value, all rounded to 4 significant digits."""
    for claim in claims_list:
        if np.isfinite(claim.value):
            out[f"{claim.id}_value"] = claim.value
    return {k: float(f"{float(v):.4g}") for k, v in out.items()}
