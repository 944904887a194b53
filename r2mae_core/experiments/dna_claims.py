"""04_dna: task scores, best ratios, comparison tables, the claims D1–D3 and S1, and the notebook's key numbers.

Scores (higher is better): the linear-probe Matthews correlation coefficient (MCC; Matthews 1975, multiclass form
of Gorodkin 2004) of each task — the metric the Nucleotide Transformer benchmark reports (Dalla-Torre et al.
2024) — and ``mean`` = the mean MCC over the tasks (the declared primary score: "the task average").

Decision rules (fixed before any run; :func:`claims` implements exactly these; 95% intervals):

- **D1** R²MAE ≥ the best fixed ratio: at the main size, the best fixed ratio is chosen on the *validation*
  split (highest seed-mean score); on the test split the paired difference over seeds
  score(R²MAE) − score(best fixed) with its t-interval above 0 → supported, below 0 → contradicted, covering 0
  → inconclusive. ``D1`` is the task average, rows ``D1-<task>`` each task (the comparator chosen per task).
- **D2** R²MAE ≥ scheduled / curriculum masking: the same rule against the better of the scheduled decay and the
  span curriculum (chosen on validation), on the task average (``D2``) and per task (``D2-<task>``).
- **D3** the best fixed ratio differs between tasks: at the main size, the two tasks whose validation argmax
  ratios differ most; a bootstrap over seeds (test split) of the difference of their argmax ratios with its
  percentile interval excluding 0 → supported, else inconclusive (a test of difference cannot contradict).
  All tasks sharing one validation argmax: inconclusive.
- **S1** (sanity, issue 6) pretrained features beat the randomly initialised encoder on exon/intron by a clear
  margin: paired difference over seeds MCC(R²MAE) − MCC(random init), test split, main size, against the
  margin ``SANITY_MARGIN`` = 0.05 MCC: interval above it → supported, below it → contradicted, else inconclusive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._rng import numpy_generator
from ..claims import Claim, interval_claim
from ..stats import mean_ci, paired_difference
from .dna import TASKS, Config

__all__ = ["scores", "summary_table", "best_ratios", "comparisons", "claims", "key_numbers", "SOURCE",
           "SCORE_TASKS", "SANITY_MARGIN"]

SOURCE = ("Dong, Wang & Kluger (NeurIPS 2025), R²MAE on DNA; Dalla-Torre et al. 2024 (Nucleotide Transformer); "
          "Liang et al. 2023 (RandomMask)")
SCORE_TASKS = ("mean", *TASKS)
SANITY_MARGIN = 0.05
_NAN = float("nan")
_R2 = "R²MAE"


def scores(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide per run: (method, kind, ratio, size, seed, split) × MCC per task, ``mean`` and ``mlm_acc``
    (masked-nucleotide accuracy at the first test ratio, test split only)."""
    keep = metrics[metrics["task"].isin(TASKS) & (metrics["metric"] == "mcc")]
    keep = keep.assign(ratio=keep["ratio"].fillna(-1.0))  # NaN keys would vanish from the pivot
    keys = ["method", "kind", "ratio", "size", "seed", "split"]
    wide = keep.pivot_table(index=keys, columns="task", values="value", aggfunc="mean")
    wide = wide.reindex(columns=list(TASKS)).reset_index()
    wide["mean"] = wide[list(TASKS)].mean(axis=1, skipna=False)
    mlm = metrics[metrics["task"].str.startswith("mlm@") & (metrics["metric"] == "acc")]
    if len(mlm):
        first = mlm[mlm["task"] == mlm["task"].iloc[0]].assign(ratio=lambda d: d["ratio"].fillna(-1.0))
        acc = first.groupby(keys)["value"].mean().rename("mlm_acc").reset_index()
        wide = wide.merge(acc, on=keys, how="left")
    wide["ratio"] = wide["ratio"].where(wide["ratio"] >= 0)
    return wide


def summary_table(metrics: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Mean and 95% interval over seeds of every (method, size, task, metric) on ``split``."""
    sub = metrics[metrics["split"] == split]
    rows = []
    for (method, kind, size, task, metric), g in sub.groupby(["method", "kind", "size", "task", "metric"],
                                                              sort=False, dropna=False):
        mean, low, high = mean_ci(g["value"].to_numpy())
        rows.append({"method": method, "kind": kind, "size": size, "task": task, "metric": metric, "mean": mean,
                     "ci_low": low, "ci_high": high, "n_seeds": len(g)})
    return pd.DataFrame(rows)


def _argmax_ratio(frame: pd.DataFrame, task: str, rng: np.random.Generator | None, n_boot: int) -> np.ndarray:
    """Argmax fixed ratio of the seed-mean curve; with ``rng``: (n_boot,) bootstrap over seeds per ratio."""
    curves = {float(r): g[task].to_numpy(dtype=float) for r, g in frame[frame["kind"] == "fixed"].groupby("ratio")}
    ratios = np.array(sorted(curves))
    if rng is None:
        return np.array([ratios[np.argmax([curves[r].mean() for r in ratios])]])
    draws = np.stack([curves[r][rng.integers(0, curves[r].size, (n_boot, curves[r].size))].mean(axis=1)
                      for r in ratios], axis=1)  # (n_boot, n_ratios)
    return ratios[np.argmax(draws, axis=1)]


def best_ratios(sc: pd.DataFrame) -> pd.DataFrame:
    """Per size and task: the fixed ratio with the best seed-mean *validation* score, and its test score
    (mean and 95% interval over seeds). Test scores never choose the ratio."""
    rows = []
    for size, g in sc[sc["kind"] == "fixed"].groupby("size", sort=False):
        val, test = g[g["split"] == "val"], g[g["split"] == "test"]
        for task in SCORE_TASKS:
            r = float(_argmax_ratio(val, task, None, 0)[0])
            mean, low, high = mean_ci(test.loc[test["ratio"] == r, task].to_numpy(dtype=float))
            rows.append({"size": size, "task": task, "best_ratio_val": r, "test_mcc": mean, "ci_low": low,
                         "ci_high": high})
    return pd.DataFrame(rows)


def _main(sc: pd.DataFrame, config: Config, split: str) -> pd.DataFrame:
    return sc[(sc["size"] == config.main_size) & (sc["split"] == split)]


def _best(frame: pd.DataFrame, task: str, methods) -> str | None:
    """Method (among ``methods``) with the best seed-mean ``task`` score in ``frame`` (ties: first)."""
    means = frame[frame["method"].isin(list(methods))].groupby("method", sort=False)[task].mean().dropna()
    return None if means.empty else str(means.idxmax())


def comparisons(sc: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per score: R²MAE − best fixed, R²MAE − best of scheduled/curriculum (both chosen on val), R²MAE − random
    init; paired over seeds on the test split at the main size."""
    val, test = _main(sc, config, "val"), _main(sc, config, "test")
    pools = {"best fixed": val.loc[val["kind"] == "fixed", "method"].unique(),
             "best scheduled/curriculum": val.loc[val["kind"].isin(["scheduled", "curriculum"]), "method"].unique(),
             "random init": ["random init"]}
    rows = []
    for task in SCORE_TASKS:
        for against, pool in pools.items():
            other = _best(val if against != "random init" else test, task, pool)
            if other is None or _R2 not in set(test["method"]) or other not in set(test["method"]):
                continue
            d = paired_difference(test, method_col="method", a=_R2, b=other, value=task, pair_on="seed")
            rows.append({"task": task, "against": against, "comparator": other, **d})
    return pd.DataFrame(rows)


def claims(results: dict[str, pd.DataFrame], config: Config, profile: str, *, n_boot: int = 4000) -> list[Claim]:
    """D1–D3 and S1 with the rules of the module docstring."""
    rng = numpy_generator(config.seed)
    sc = scores(results["metrics"])
    comp = comparisons(sc, config)
    out = []
    for cid, against in (("D1", "best fixed"), ("D2", "best scheduled/curriculum")):
        for row in comp[comp["against"] == against].itertuples():
            label = cid if row.task == "mean" else f"{cid}-{row.task}"
            where = "the task average" if row.task == "mean" else row.task
            out.append(interval_claim(
                label, f"R²MAE U[{config.r2mae_low:g}, {config.r2mae_high:g}] ≥ {against} ({row.comparator}, chosen "
                f"on validation) on {where} (MCC)", SOURCE, f"test MCC(R²MAE) − MCC({row.comparator}), {row.task}",
                row.mean, row.ci_low, row.ci_high, row.n, profile))
    val_main, test_main = _main(sc, config, "val"), _main(sc, config, "test")
    val_arg = {t: float(_argmax_ratio(val_main, t, None, 0)[0]) for t in TASKS}
    a, b = max(TASKS, key=lambda t: val_arg[t]), min(TASKS, key=lambda t: val_arg[t])
    if len(config.sweep_ratios) >= 2 and val_arg[a] != val_arg[b]:
        diff = _argmax_ratio(test_main, a, rng, n_boot) - _argmax_ratio(test_main, b, rng, n_boot)
        point = float(_argmax_ratio(test_main, a, None, 0)[0] - _argmax_ratio(test_main, b, None, 0)[0])
        out.append(interval_claim("D3", f"The best fixed ratio differs between tasks ({a}: {val_arg[a]:g} vs {b}: "
                                  f"{val_arg[b]:g} on validation, size {config.main_size})", SOURCE,
                                  f"test argmax({a}) − argmax({b}) (bootstrap over seeds)", point,
                                  *np.percentile(diff, [2.5, 97.5]), config.n_seeds, profile,
                                  allow_contradicted=False))
    else:
        out.append(Claim("D3", "The best fixed ratio differs between tasks (all tasks share the validation argmax "
                         f"{val_arg[a]:g})", SOURCE, "argmax ratio difference", 0.0, _NAN, _NAN, config.n_seeds,
                         "inconclusive", profile))
    sanity = comp[(comp["against"] == "random init") & (comp["task"] == "exon_intron")]
    for row in sanity.itertuples():
        out.append(interval_claim(
            "S1", f"Sanity: pretrained (R²MAE) features beat the randomly initialised encoder on exon/intron by more "
            f"than {SANITY_MARGIN:g} MCC (size {config.main_size})", SOURCE,
            "test MCC(R²MAE) − MCC(random init), exon_intron", row.mean, row.ci_low, row.ci_high, row.n, profile,
            threshold=SANITY_MARGIN))
    return out


def key_numbers(results: dict[str, pd.DataFrame], claims_list: list[Claim], config: Config) -> dict[str, float]:
    """Numbers the notebook prints (and nbval compares), rounded to 4 significant digits: test MCC of every
    method at the main size (seed mean), the k-mer baseline, masked-nucleotide accuracy and the claim values."""
    sc = scores(results["metrics"])
    test = sc[(sc["split"] == "test") & sc["size"].isin([config.main_size, "-"])]
    out = {}
    names = {"R²MAE": "R2MAE", "random init": "random_init", "k-mer counts + LR": "kmer_LR"}
    for method, g in test.groupby("method", sort=False):
        name = names.get(method, method.replace(" ", "_").replace("→", "to"))
        for t in (*SCORE_TASKS, "mlm_acc"):
            if t in g and g[t].notna().any():
                out[f"{name}_{t}"] = g[t].mean()
    for claim in claims_list:
        if np.isfinite(claim.value):
            out[f"{claim.id}_value"] = claim.value
    return {k: float(f"{float(v):.4g}") for k, v in out.items()}
