"""Score tables and claim helpers shared by the token-MLM sections (03_language, 04_dna): the wide score table,
the summary table, the argmax fixed ratio (with its bootstrap over seeds), the comparator chosen on validation,
the paired comparisons of R²MAE, the equal-effect control's table and claim, and the "best ratio differs between
tasks" claim."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..claims import Claim, interval_claim, make_claim
from ..stats import mean_ci, paired_difference

__all__ = ["RUN_KEYS", "EQUAL_EFFECT", "pivot_scores", "summary_table", "main_rows", "argmax_ratio", "best_method",
           "comparison_pools", "comparisons", "equal_effect_table", "equal_effect_claims", "task_difference_claim",
           "claim_values"]

#: Columns that identify one run and split in the wide score table.
RUN_KEYS = ["method", "group", "ratio", "size", "seed", "split"]
#: The comparison of R²MAE against its equal-effect control (the method of group ``equivalent``).
EQUAL_EFFECT = "equal-effect fixed"
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


def comparison_pools(val: pd.DataFrame, baselines: dict[str, tuple[str, ...]]) -> dict:
    """The comparator pools of a token section, in table order: ``best fixed`` (the sweep, group ``fixed``),
    :data:`EQUAL_EFFECT` (group ``equivalent``), then each of ``baselines`` (pool name → groups) and ``random
    init``; each pool lists the methods of its groups found in ``val``."""
    def of(groups) -> list[str]:
        return list(val.loc[val["group"].isin(list(groups)), "method"].unique())

    return {"best fixed": of(["fixed"]), EQUAL_EFFECT: of(["equivalent"]),
            **{name: of(groups) for name, groups in baselines.items()}, "random init": ["random init"]}


def equal_effect_table(test: pd.DataFrame, comp: pd.DataFrame) -> pd.DataFrame:
    """R²MAE next to the grid's best fixed ratio (chosen on validation) and its equal-effect control, per task.

    Rows per task of ``comp`` (:func:`comparisons`, which has the pools ``best fixed`` and :data:`EQUAL_EFFECT`):
    the test score of R²MAE, of the best fixed ratio and of the control (mean and 95% t-interval over seeds),
    then R²MAE − best fixed and R²MAE − control (paired over seeds). Columns: task, row, method, ratio (the
    comparator's fixed ratio), mean, ci_low, ci_high, n_seeds.
    """
    declared = test.loc[test["group"] == "r2mae", "method"]
    rows = []
    for task, g in comp[comp["against"].isin(["best fixed", EQUAL_EFFECT])].groupby("task", sort=False):
        scored = [("R²MAE", declared.iloc[0])] + [(r.against, r.comparator) for r in g.itertuples()]
        for role, method in scored:
            sub = test[test["method"] == method]
            mean, low, high = mean_ci(sub[task].to_numpy(dtype=float))
            rows.append({"task": task, "row": role, "method": method, "ratio": sub["ratio"].iloc[0], "mean": mean,
                         "ci_low": low, "ci_high": high, "n_seeds": len(sub)})
        rows += [{"task": task, "row": f"R²MAE − {r.against}", "method": r.comparator,
                  "ratio": test.loc[test["method"] == r.comparator, "ratio"].iloc[0], "mean": r.mean,
                  "ci_low": r.ci_low, "ci_high": r.ci_high, "n_seeds": r.n} for r in g.itertuples()]
    return pd.DataFrame(rows, columns=["task", "row", "method", "ratio", "mean", "ci_low", "ci_high", "n_seeds"])


def equal_effect_claims(comp: pd.DataFrame, test: pd.DataFrame, *, cid: str, primary: str, interval: str,
                        score: str, source: str, profile: str) -> list[Claim]:
    """The claim "R²MAE beats the fixed ratio of equal population effect", one per task of ``comp``'s
    :data:`EQUAL_EFFECT` rows, ``cid`` for the ``primary`` task and ``<cid>-<task>`` for the others.

    Rule: the paired difference over seeds score(R²MAE) − score(control) on ``test`` (the control is the fixed
    ratio m_eq = E[m²(1−m)]/E[m(1−m)] of R²MAE's law, :func:`r2mae_core.runs.equivalent_fixed_method`); its
    95% t-interval above 0 → supported, below 0 → contradicted, covering 0 → inconclusive. ``interval`` names
    R²MAE's law in the claim, ``score`` the score in the metric (e.g. ``MCC``).
    """
    out = []
    for row in comp[comp["against"] == EQUAL_EFFECT].itertuples():
        m_eq = float(test.loc[test["method"] == row.comparator, "ratio"].iloc[0])
        out.append(make_claim(
            cid=cid if row.task == primary else f"{cid}-{row.task}",
            claim=f"R²MAE {interval} beats the fixed ratio of equal population effect (m_eq = E[m²(1−m)]/E[m(1−m)] "
            f"= {m_eq:.3f}) on {row.task}", source=source,
            metric=f"test {score}(R²MAE) − {score}(fixed m_eq {m_eq:.3f}), {row.task}", value=row.mean,
            ci_low=row.ci_low, ci_high=row.ci_high, n_seeds=row.n, profile=profile))
    return out


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
