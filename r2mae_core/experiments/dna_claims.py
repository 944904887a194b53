"""04_dna: task scores, best ratios, comparison tables, the claims D1–D5 and S1, and the notebook's key numbers.

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
- **S1** (sanity) pretrained features beat the randomly initialised encoder on exon/intron by a clear
  margin: paired difference over seeds MCC(R²MAE) − MCC(random init), test split, main size, against the
  margin ``SANITY_MARGIN`` = 0.05 MCC: interval above it → supported, below it → contradicted, else inconclusive.
- **D4** the test splits used are clean: in the near-copy audit (:func:`r2mae_core.experiments.dna.leakage_table`:
  containment of a test window's canonical ``LEAK_K``-mers in the task's training windows and in the pretraining
  windows), the largest fraction of test windows at or above ``LEAK_THRESHOLD``, over every task, the
  masked-nucleotide evaluation and both references, is at most ``LEAK_MAX_FRACTION`` = 1% → supported, else
  contradicted. It speaks of the split used: near-copies found in the split as built are dropped before the
  subsets are drawn, and the audit measures the windows that remain.
- **D5** R²MAE beats the fixed ratio of equal population effect: the rule of D1 against the equal-effect
  control, the fixed ratio m_eq = E[m²(1−m)]/E[m(1−m)] of R²MAE's law (0.315 for U[0.15, 0.45];
  :func:`r2mae_core.runs.equivalent_fixed_method`), trained with the same seeds and schedule: paired difference
  MCC(R²MAE) − MCC(control) on the test split, 95% interval above 0 → supported, below 0 → contradicted, else
  inconclusive; ``D5`` is the task average, rows ``D5-<task>`` each task. D1 supported with D5 not supported
  reads: R²MAE's gain over the grid is that of its effective ratio, not of drawing the ratio at random.
"""

from __future__ import annotations

import pandas as pd

from .._rng import numpy_generator
from ..claims import Claim, interval_claim, verdict_from_bool
from ..stats import mean_ci
from ._token_sections import (
    RUN_KEYS,
    argmax_ratio,
    claim_values,
    comparison_pools,
    equal_effect_claims,
    equal_effect_table,
    main_rows,
    pivot_scores,
    summary_table,
    task_difference_claim,
)
from ._token_sections import comparisons as paired_comparisons
from .dna import LEAK_K, LEAK_THRESHOLD, TASKS, Config

__all__ = ["scores", "summary_table", "best_ratios", "comparisons", "equal_effect", "claims", "key_numbers", "SOURCE",
           "SCORE_TASKS", "SANITY_MARGIN", "LEAK_MAX_FRACTION", "leakage_claim"]

SOURCE = ("Dong, Wang & Kluger (NeurIPS 2025), R²MAE on DNA; Dalla-Torre et al. 2024 (Nucleotide Transformer); "
          "Liang et al. 2023 (RandomMask)")
SCORE_TASKS = ("mean", *TASKS)
SANITY_MARGIN = 0.05
LEAK_MAX_FRACTION = 0.01
LEAK_SOURCE = ("near-copy audit of this project; containment of k-mer sets: Broder 1997, Mash Screen (Ondov et al. "
               "2019)")


def scores(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide per run: (method, group, ratio, size, seed, split) × MCC per task, ``mean`` and ``mlm_acc``
    (masked-nucleotide accuracy at the first test ratio, test split only)."""
    wide = pivot_scores(metrics[metrics["task"].isin(TASKS) & (metrics["metric"] == "mcc")], TASKS)
    wide["mean"] = wide[list(TASKS)].mean(axis=1, skipna=False)
    mlm = metrics[metrics["task"].str.startswith("mlm@") & (metrics["metric"] == "acc")]
    if len(mlm):
        first = mlm[mlm["task"] == mlm["task"].iloc[0]].assign(ratio=lambda d: d["ratio"].fillna(-1.0))
        acc = first.groupby(RUN_KEYS)["value"].mean().rename("mlm_acc").reset_index()
        wide = wide.merge(acc, on=RUN_KEYS, how="left")
    wide["ratio"] = wide["ratio"].where(wide["ratio"] >= 0)
    return wide


def best_ratios(sc: pd.DataFrame) -> pd.DataFrame:
    """Per size and task: the fixed ratio with the best seed-mean *validation* score, and its test score
    (mean and 95% interval over seeds). Test scores never choose the ratio."""
    rows = []
    for size, g in sc[sc["group"] == "fixed"].groupby("size", sort=False):
        val, test = g[g["split"] == "val"], g[g["split"] == "test"]
        for task in SCORE_TASKS:
            r = float(argmax_ratio(val, task, None, 0)[0])
            mean, low, high = mean_ci(test.loc[test["ratio"] == r, task].to_numpy(dtype=float))
            rows.append({"size": size, "task": task, "best_ratio_val": r, "test_mcc": mean, "ci_low": low,
                         "ci_high": high})
    return pd.DataFrame(rows)


def _main(sc: pd.DataFrame, config: Config, split: str) -> pd.DataFrame:
    return main_rows(sc, config.main_size, split)


def comparisons(sc: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per score: R²MAE − best fixed, R²MAE − its equal-effect control, R²MAE − best of scheduled/curriculum (both
    chosen on val), R²MAE − masked diffusion, R²MAE − random init; paired over seeds on the test split at the
    main size."""
    val, test = _main(sc, config, "val"), _main(sc, config, "test")
    pools = comparison_pools(val, {"best scheduled/curriculum": ("scheduled", "curriculum"),
                                   "masked diffusion": ("diffusion",)})
    return paired_comparisons(val, test, SCORE_TASKS, pools, on_test=("random init",), require_in_test=True)


def equal_effect(sc: pd.DataFrame, config: Config) -> pd.DataFrame:
    """R²MAE, the best fixed ratio (chosen on val) and the equal-effect control at the main size, per score: test
    MCC and the paired differences (:func:`r2mae_core.experiments._token_sections.equal_effect_table`)."""
    return equal_effect_table(_main(sc, config, "test"), comparisons(sc, config))


def claims(results: dict[str, pd.DataFrame], config: Config, profile: str, *, n_boot: int = 4000) -> list[Claim]:
    """D1–D3, D5, S1 and (with a ``leakage`` table in ``results``) D4, with the rules of the module docstring."""
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
                value=row.mean, ci_low=row.ci_low, ci_high=row.ci_high, n_seeds=row.n, profile=profile))
    out += equal_effect_claims(comp, _main(sc, config, "test"), cid="D5", primary="mean",
                               interval=f"U[{config.r2mae_low:g}, {config.r2mae_high:g}]", score="MCC", source=SOURCE,
                               profile=profile)
    out.append(task_difference_claim("D3", _main(sc, config, "val"), _main(sc, config, "test"), TASKS,
                                     config=config, source=SOURCE, profile=profile, rng=rng, n_boot=n_boot,
                                     bootstrap="bootstrap over seeds"))
    sanity = comp[(comp["against"] == "random init") & (comp["task"] == "exon_intron")]
    for row in sanity.itertuples():
        out.append(interval_claim(
            "S1", f"Sanity: pretrained (R²MAE) features beat the randomly initialised encoder on exon/intron by more "
            f"than {SANITY_MARGIN:g} MCC (size {config.main_size})", SOURCE,
            "test MCC(R²MAE) − MCC(random init), exon_intron", value=row.mean, ci_low=row.ci_low,
            ci_high=row.ci_high, n_seeds=row.n, profile=profile, threshold=SANITY_MARGIN))
    if "leakage" in results:
        out.append(leakage_claim(results["leakage"], profile))
    return out


def leakage_claim(leak: pd.DataFrame, profile: str) -> Claim:
    """D4 with the rule of the module docstring, from the audit table (columns task, reference, frac_above,
    dropped)."""
    need = {"task", "reference", "frac_above", "dropped"}
    if not isinstance(leak, pd.DataFrame) or leak.empty or not need <= set(leak.columns):
        raise ValueError(f"leak is not allowed: use the non-empty table of dna.leakage_table (columns {sorted(need)})")
    value = float(leak["frac_above"].max())
    dropped = int(leak.groupby("task")["dropped"].first().sum())
    return Claim("D4", f"The test splits used are clean: at most {LEAK_MAX_FRACTION:.0%} of the test windows of "
                 f"every task share >= {LEAK_THRESHOLD:.0%} of their canonical {LEAK_K}-mers (reverse complements "
                 f"included) with the task's training windows or the pretraining windows ({dropped} near-copies "
                 f"found in the split as built were dropped first)", LEAK_SOURCE,
                 f"largest fraction of test windows with containment >= {LEAK_THRESHOLD:g} (over tasks and "
                 f"references)", value, float("nan"), float("nan"), 1,
                 verdict_from_bool(value <= LEAK_MAX_FRACTION), profile)


def key_numbers(results: dict[str, pd.DataFrame], claims_list: list[Claim], config: Config) -> dict[str, float]:
    """Numbers the notebook prints (and nbval compares), rounded to 4 significant digits: test MCC of every
    method at the main size (seed mean), the k-mer baseline, masked-nucleotide accuracy and the claim values."""
    sc = scores(results["metrics"])
    test = sc[(sc["split"] == "test") & sc["size"].isin([config.main_size, "-"])]
    out = {}
    names = {"random init": "random_init", "k-mer counts + LR": "kmer_LR"}
    groups = {"r2mae": "R2MAE", "equivalent": "equal_effect_fixed"}
    for (method, group), g in test.groupby(["method", "group"], sort=False):
        name = groups.get(group) or names.get(method, method.replace(" ", "_").replace("→", "to"))
        for t in (*SCORE_TASKS, "mlm_acc"):
            if t in g and g[t].notna().any():
                out[f"{name}_{t}"] = g[t].mean()
    return claim_values(out, claims_list)
