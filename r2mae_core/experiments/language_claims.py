"""03_language: task scores, comparison tables, the claims L1–L5 and S1 and the notebook's key numbers.

Scores (higher is better): genre macro-F1, spam F1, POS accuracy, ``mlm`` = − MLM loss averaged over the test
ratios, and ``downstream`` = the mean of the genre, spam and POS scores (the declared primary task).

Decision rules (fixed before any run; ``claims`` implements exactly these; 95% intervals):

- **L1** the best fixed ratio grows with model size: on the primary task (test split), bootstrap over seeds the
  argmax fixed ratio of the seed-mean curve at the largest and at the smallest size; percentile interval of
  the difference above 0 → supported, below 0 → contradicted, else inconclusive. Fewer than two sizes or two
  ratios: inconclusive (not tested).
- **L2** the best fixed ratio differs between tasks: at the main size, the two tasks whose validation argmax
  ratios differ most; bootstrap (test split) interval of the difference of their argmax ratios excludes 0 →
  supported, else inconclusive (a test of difference cannot contradict).
- **L3** R²MAE ≥ best fixed: per task, the best fixed ratio is chosen on the *validation* split (seed mean);
  on the test split the paired difference over seeds score(R²MAE) − score(best fixed) with its t-interval
  above 0 → supported, below 0 → contradicted, covering 0 → inconclusive. ``L3`` is the primary task, rows
  ``L3-<task>`` the others.
- **L4** R²MAE ≥ Masking Ratio Decay: the same, against the better of MRD cosine / linear chosen on validation.
- **L5** R²MAE beats the fixed ratio of equal population effect: the same paired rule on the test split against
  the equal-effect control, the fixed ratio m_eq = E[m²(1−m)]/E[m(1−m)] of R²MAE's law (0.315 for U[0.15, 0.45];
  :func:`r2mae_core.runs.equivalent_fixed_method`), trained with the same seeds and schedule; ``L5`` is the
  primary task, rows ``L5-<task>`` the others. L3 supported with L5 not supported reads: R²MAE's gain over the
  grid is that of its effective ratio, not of drawing the ratio at random.
- **S1** (sanity) pretrained features beat the randomly initialised encoder on genre: paired difference
  over seeds macro-F1(R²MAE) − macro-F1(random init), test split, main size; interval above 0 → supported, below
  0 → contradicted, else inconclusive. The value and its interval are the report; no margin beyond 0 is
  declared.
"""

from __future__ import annotations

import pandas as pd

from .._rng import numpy_generator
from ..claims import Claim, make_claim
from ._token_sections import (
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
from .language import TASKS, Config

__all__ = ["scores", "summary_table", "comparisons", "equal_effect", "claims", "key_numbers", "SOURCE", "SCORE_TASKS"]

SOURCE = "Dong, Wang & Kluger (NeurIPS 2025), R²MAE on language; Wettig et al. 2023; Yang et al. 2023"
SCORE_TASKS = ("downstream", "genre", "spam", "pos", "mlm")
_NAN = float("nan")


def scores(metrics: pd.DataFrame) -> pd.DataFrame:
    """Wide per run: (method, group, ratio, size, seed, split) × score columns of :data:`SCORE_TASKS`."""
    keep = pd.concat([metrics[(metrics["task"] == t) & (metrics["metric"] == m)] for t, m in TASKS.items()])
    wide = pivot_scores(keep, TASKS)
    wide["ratio"] = wide["ratio"].where(wide["ratio"] >= 0)
    wide["downstream"] = wide[["genre", "spam", "pos"]].mean(axis=1, skipna=False)
    return wide


def _main(sc: pd.DataFrame, config: Config, split: str) -> pd.DataFrame:
    return main_rows(sc, config.main_size, split)


def comparisons(sc: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Per task: R²MAE − best fixed, R²MAE − its equal-effect control, R²MAE − best MRD (comparators chosen on
    val), R²MAE − masked diffusion and R²MAE − random init; paired over seeds on test."""
    val, test = _main(sc, config, "val"), _main(sc, config, "test")
    pools = comparison_pools(val, {"best MRD": ("mrd",), "masked diffusion": ("diffusion",)})
    return paired_comparisons(val, test, SCORE_TASKS, pools, on_test=("random init",), require_in_test=True)


def equal_effect(sc: pd.DataFrame, config: Config) -> pd.DataFrame:
    """R²MAE, the best fixed ratio (chosen on val) and the equal-effect control at the main size, per task: test
    scores and the paired differences (:func:`r2mae_core.experiments._token_sections.equal_effect_table`)."""
    return equal_effect_table(_main(sc, config, "test"), comparisons(sc, config))


def claims(results: dict[str, pd.DataFrame], config: Config, profile: str, *, n_boot: int = 4000) -> list[Claim]:
    """L1–L5 and S1 with the rules of the module docstring."""
    rng = numpy_generator(config.seed)
    sc = scores(results["metrics"])
    out = []
    task = config.primary_task
    test = sc[sc["split"] == "test"]
    sizes = [s for s in config.sizes if (test[(test["size"] == s)]["group"] == "fixed").any()]
    if len(sizes) >= 2 and len(config.sweep_ratios) >= 2:
        small, large = sizes[0], sizes[-1]
        diff = (argmax_ratio(test[test["size"] == large], task, rng, n_boot)
                - argmax_ratio(test[test["size"] == small], task, rng, n_boot))
        point = float(argmax_ratio(test[test["size"] == large], task, None, 0)[0]
                      - argmax_ratio(test[test["size"] == small], task, None, 0)[0])
        out.append(make_claim(
            cid="L1", claim=f"The best fixed mask ratio grows with model size ({task}: argmax ratio at {large} minus "
            f"at {small})", source=SOURCE, metric="argmax ratio difference (bootstrap over seeds)", value=point,
            draws=diff, n_seeds=config.n_seeds, profile=profile))
    else:
        out.append(Claim("L1", "The best fixed mask ratio grows with model size (not tested: this profile sweeps "
                         f"{len(sizes)} size(s) and {len(config.sweep_ratios)} ratio(s))", SOURCE,
                         "argmax ratio difference", _NAN, _NAN, _NAN, config.n_seeds, "inconclusive", profile))

    tasks = [t for t in ("genre", "spam", "pos", "mlm") if t in sc]
    out.append(task_difference_claim("L2", _main(sc, config, "val"), _main(sc, config, "test"), tasks,
                                     config=config, source=SOURCE, profile=profile, rng=rng, n_boot=n_boot,
                                     bootstrap="bootstrap"))

    comp = comparisons(sc, config)
    for cid, against in (("L3", "best fixed"), ("L4", "best MRD")):
        for row in comp[comp["against"] == against].itertuples():
            label = cid if row.task == task else f"{cid}-{row.task}"
            out.append(make_claim(
                cid=label, claim=f"R²MAE U[{config.r2mae_low:g}, {config.r2mae_high:g}] ≥ {against} "
                f"({row.comparator}, chosen on validation) on {row.task}", source=SOURCE,
                metric=f"test score(R²MAE) − score({row.comparator}), {row.task}", value=row.mean, ci_low=row.ci_low,
                ci_high=row.ci_high, n_seeds=row.n, profile=profile))
    out += equal_effect_claims(comp, _main(sc, config, "test"), cid="L5", primary=task,
                               interval=f"U[{config.r2mae_low:g}, {config.r2mae_high:g}]", score="score", source=SOURCE,
                               profile=profile)
    for row in comp[(comp["against"] == "random init") & (comp["task"] == "genre")].itertuples():
        out.append(make_claim(
            cid="S1", claim="Sanity: pretrained (R²MAE) features beat the randomly initialised encoder on genre "
            f"macro-F1 (size {config.main_size})", source=SOURCE,
            metric="test macro-F1(R²MAE) − macro-F1(random init), genre", value=row.mean, ci_low=row.ci_low,
            ci_high=row.ci_high, n_seeds=row.n, profile=profile))
    return out


def key_numbers(results: dict[str, pd.DataFrame], claims_list: list[Claim], config: Config) -> dict[str, float]:
    """Numbers the notebook prints (and nbval compares), rounded to 4 significant digits."""
    sc = scores(results["metrics"])
    test = _main(sc, config, "test")
    out = {}
    for name, rows in (("R2MAE", test["group"] == "r2mae"), ("random_init", test["method"] == "random init")):
        for t in ("genre", "spam", "pos", "mlm"):
            vals = test.loc[rows, t].dropna()
            if len(vals):
                out[f"{name}_{t}"] = vals.mean()
    tfidf = sc[(sc["method"] == "TF-IDF + LR") & (sc["split"] == "test")]
    for t in ("genre", "spam"):
        out[f"tfidf_{t}"] = tfidf[t].mean()
    metrics = results["metrics"]
    for t, m in (("genre_ft", "macro_f1"), ("spam_ft", "f1")):  # fine-tuning (full profile)
        sel = metrics[(metrics["task"] == t) & (metrics["metric"] == m) & (metrics["split"] == "test")
                      & (metrics["group"] == "r2mae")]
        if len(sel):
            out[f"R2MAE_{t}"] = sel["value"].mean()
            out[f"R2MAE_{t}_minus_tfidf"] = out[f"R2MAE_{t}"] - out[f"tfidf_{t.removesuffix('_ft')}"]
    return claim_values(out, claims_list)
