"""05_single_cell: summaries, paired differences, the claims S1–S4 and the notebook's key numbers.

Decision rules (fixed before any run; ``claims`` implements exactly these). Every downstream number is an outer
test fold of repeated stratified CV; a seed's value is the mean over its folds and repeats; each claim is a
paired difference over seeds (every method of a seed shares the CV splits and the leiden seed) with a Student-t
95% interval (:func:`r2mae_core.stats.paired_difference`): interval above 0 → **supported**, below 0 →
**contradicted**, covering 0 → **inconclusive** (:func:`r2mae_core.claims.verdict_from_interval`).

- **S1** R²MAE ≥ the best fixed ratio on annotation macro-F1. The best fixed ratio is chosen *per outer fold* by
  the inner validation macro-F1 of the probe (a split of the training fold; the test fold never takes part),
  among the model's fixed-ratio sweep; its test macro-F1 is the "best fixed (val)" method.
- **S2** R²MAE ≥ scGPT's per-batch random choice from {0.25, 0.5, 0.75} on annotation macro-F1.
- **S3** R²MAE embeddings are at least as good as PCA (``pca_comps`` components of the same input) for leiden
  clustering: NMI (row S3) and ARI (row S3-ARI), each at the resolution the other half of the cells' labels
  chose (:func:`r2mae_core.experiments.single_cell.clustering_scores`).
- **S4** (the equal-effect control) R²MAE beats the fixed ratio of equal population effect on annotation
  macro-F1: m_eq = E[m²(1−m)] / E[m(1−m)] of its law (01's linear theory: in the population limit U[a, b] trains
  the predictor of this one fixed ratio; 0.5 for U[0.1, 0.9], where the control is the sweep's fixed 0.5 run,
  :func:`r2mae_core.experiments.single_cell.equal_effect_control`). Interval above 0 → supported (the gain is
  the randomness, not the effective ratio), below 0 → contradicted, else inconclusive.
  :func:`equal_effect_table` sets the control next to the best fixed ratio.

The R²MAE interval is the profile's declared default (never tuned). The primary rows (ids ``S1``, ``S2``, ``S3``,
``S3-ARI``, ``S4``) are the first dataset and model of the config; other (dataset, model) pairs get ids
``S1-<dataset>-<model>`` etc.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..claims import Claim, make_claim, verdict_from_interval
from ..stats import mean_ci, paired_difference, summarise
from .single_cell import DATASET_SPECS, Config, equal_effect_control

__all__ = ["BEST_FIXED", "with_best_fixed", "per_seed", "summary", "best_ratio_table", "differences",
           "equal_effect_table", "claims", "key_numbers", "SOURCE"]

SOURCE = "Dong, Wang & Kluger (NeurIPS 2025), single-cell R²MAE; our reimplementation"
BEST_FIXED = "best fixed (val)"
#: Clustering scores of :func:`r2mae_core.experiments.single_cell.clustering_scores` carried per seed: the
#: cross-fitted NMI and ARI the claims use, the label silhouette and scIB's best-over-the-grid NMI and ARI.
_CLUSTERING = ("nmi", "ari", "silhouette", "nmi_optimal", "ari_optimal")
_METRICS = ("test_f1", "test_acc", *_CLUSTERING)


def with_best_fixed(annotation: pd.DataFrame) -> pd.DataFrame:
    """``annotation`` plus the rows of method ``"best fixed (val)"`` (group ``best fixed``): per (dataset, model,
    seed, repeat, fold) the method of group ``fixed`` with the best *inner validation* macro-F1 (ties: the smaller
    ratio), with its test scores and the chosen method in column ``chosen``."""
    fixed = annotation[annotation["group"] == "fixed"]
    keys = ["dataset", "model", "seed", "repeat", "fold"]
    fixed = fixed.sort_values([*keys, "val_f1", "ratio"], ascending=[True] * len(keys) + [False, True])
    best = fixed.groupby(keys, as_index=False, sort=False).head(1)
    best = best.assign(method=BEST_FIXED, group="best fixed", kind="fixed", chosen=best["method"], ratio=np.nan)
    return pd.concat([annotation, best], ignore_index=True)


def per_seed(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (dataset, model, method, seed) with the method's group and ratio: CV-mean test macro-F1 and
    accuracy, clustering scores (those of ``_CLUSTERING`` the results hold)."""
    ann = with_best_fixed(results["annotation"])
    keys = ["dataset", "model", "method", "group", "seed"]
    cv = ann.groupby(keys, as_index=False, sort=False).agg(
        ratio=("ratio", "first"), test_f1=("test_f1", "mean"), test_acc=("test_acc", "mean"), val_f1=("val_f1", "mean"))
    clu = results["clustering"]
    clu = clu[[*keys, *(c for c in _CLUSTERING if c in clu)]]
    return cv.merge(clu, on=keys, how="left")


def summary(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean and 95% interval over seeds of every metric, per (dataset, model, method) with the method's group and
    ratio: tidy (``metric`` column)."""
    seeds = per_seed(results)
    frames = []
    for metric in (m for m in _METRICS if m in seeds):
        sub = seeds.dropna(subset=[metric])
        if len(sub):
            frames.append(summarise(sub, ["dataset", "model", "method", "group", "ratio"], metric)
                          .assign(metric=metric))
    out = pd.concat(frames, ignore_index=True)
    return out[["dataset", "model", "method", "group", "ratio", "metric", "mean", "ci_low", "ci_high", "sem", "n"]]


def best_ratio_table(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Fixed-ratio sweep: per (dataset, model) the fixed ratio with the best seed-mean *inner validation*
    macro-F1 (the probe's validation split inside each training fold; ties: the smaller ratio), then its test
    macro-F1 (mean and 95% Student-t interval over seeds) and leiden NMI; and the ratio the fold-by-fold validation
    pick of S1 chose most often, with its share of the folds. Test folds never choose a ratio here."""
    seeds = per_seed(results)
    fixed = seeds[seeds["group"] == "fixed"]
    rows = []
    ann = with_best_fixed(results["annotation"])
    picks = ann[ann["method"] == BEST_FIXED]
    for (dataset, model), g in fixed.groupby(["dataset", "model"], sort=False):
        by_val = g.groupby("method").agg(val_f1=("val_f1", "mean"), ratio=("ratio", "first"))
        best = by_val.sort_values(["val_f1", "ratio"], ascending=[False, True]).index[0]
        chosen = g[g["method"] == best]
        mean, low, high = mean_ci(chosen["test_f1"].to_numpy(dtype=float))
        counts = picks[(picks["dataset"] == dataset) & (picks["model"] == model)]["chosen"].value_counts()
        rows.append({"dataset": dataset, "model": model, "best_ratio_val": float(by_val.loc[best, "ratio"]),
                     "val_f1": float(by_val.loc[best, "val_f1"]), "test_f1": mean, "ci_low": low, "ci_high": high,
                     "nmi": float(chosen["nmi"].mean()), "n_seeds": len(chosen),
                     "fold_pick_mode": counts.index[0] if len(counts) else "",
                     "fold_pick_share": float(counts.iloc[0] / counts.sum()) if len(counts) else np.nan})
    return pd.DataFrame(rows)


#: The comparisons of the study, R²MAE − baseline: (claim, baseline group or reference name, metric).
COMPARISONS = (("S1", "best fixed", "test_f1"), ("S2", "choice", "test_f1"), ("S3", "PCA", "nmi"),
               ("S3-ARI", "PCA", "ari"))


def _baseline_methods(g: pd.DataFrame, key: str) -> list[str]:
    """The method names of ``g`` that ``key`` names: a reference's name, a group or a method's name."""
    if key in set(g.loc[g["group"] == "reference", "method"]) or key not in set(g["group"]) and key in set(
            g["method"]):
        return [key]
    return list(dict.fromkeys(g.loc[g["group"] == key, "method"]))


def differences(results: dict[str, pd.DataFrame], baselines: tuple[str, ...] | None = None,
                metrics: tuple[str, ...] = ("test_f1", "test_acc", "nmi", "ari", "silhouette")) -> pd.DataFrame:
    """Paired differences R²MAE (the method of group ``r2mae``) − baseline over seeds for every (dataset, model,
    baseline, metric); ``baselines`` are groups or reference names (default: every other method)."""
    seeds = per_seed(results)
    rows = []
    for (dataset, model), g in seeds.groupby(["dataset", "model"], sort=False):
        declared = list(dict.fromkeys(g.loc[g["group"] == "r2mae", "method"]))
        if len(declared) != 1:
            continue
        r2 = declared[0]
        others = ([m for m in g["method"].unique() if m != r2] if baselines is None else
                  [m for key in baselines for m in _baseline_methods(g, key)])
        for base in others:
            for metric in metrics:
                sub = g.dropna(subset=[metric])
                if base not in set(sub["method"]) or r2 not in set(sub["method"]):
                    continue
                d = paired_difference(sub, method_col="method", a=r2, b=base, value=metric, pair_on="seed")
                rows.append({"dataset": dataset, "model": model, "baseline": base,
                             "baseline_group": g.loc[g["method"] == base, "group"].iloc[0], "metric": metric, **d,
                             "verdict": verdict_from_interval(d["ci_low"], d["ci_high"])})
    return pd.DataFrame(rows)


_EQUAL_COLUMNS = ["dataset", "model", "role", "method", "ratio", "note", "value", "value_low", "value_high", "diff",
                  "diff_low", "diff_high", "n"]


def equal_effect_table(results: dict[str, pd.DataFrame], config: Config, metric: str = "test_f1") -> pd.DataFrame:
    """The equal-effect control next to the best fixed ratio, per (dataset, model): three rows (``role``) — the
    declared R²MAE, the best fixed ratio chosen fold by fold on inner validation (S1's "best fixed (val)") and the
    fixed ratio of equal population effect m_eq (:func:`r2mae_core.experiments.single_cell.equal_effect_control`;
    ``note`` says whether it is the sweep's own run). ``value``: mean and 95% Student-t interval over seeds of the
    CV-mean ``metric``; ``diff``: R²MAE − that row, paired by seed (:func:`r2mae_core.stats.paired_difference`)."""
    seeds = per_seed(results)
    rows = []
    for (dataset, model), g in seeds.groupby(["dataset", "model"], sort=False):
        r2 = list(dict.fromkeys(g.loc[g["group"] == "r2mae", "method"]))
        if len(r2) != 1:
            continue
        control = equal_effect_control(config, model)
        note = (f"the sweep's {control.name} (m_eq = {control.ratio:.3f})" if control.group == "fixed"
                else f"trained as the control (m_eq = {control.ratio:.3f})")
        for role, name, ratio, text in (("R²MAE", r2[0], np.nan, ""), ("best fixed (val)", BEST_FIXED, np.nan,
                                                                          "chosen per fold on inner validation"),
                                        ("equal-effect fixed", control.name, control.ratio, note)):
            values = g.loc[g["method"] == name, metric].dropna().to_numpy(float)
            if not values.size:
                continue
            diff = (paired_difference(g, method_col="method", a=r2[0], b=name, value=metric, pair_on="seed")
                    if name != r2[0] else {"mean": np.nan, "ci_low": np.nan, "ci_high": np.nan})
            rows.append(dict(zip(_EQUAL_COLUMNS, (dataset, model, role, name, ratio, text, *mean_ci(values),
                                                  diff["mean"], diff["ci_low"], diff["ci_high"], int(values.size)),
                                 strict=True)))
    return pd.DataFrame(rows, columns=_EQUAL_COLUMNS)


def _claim_text(cid: str, base: str, metric: str, dataset: str, model: str, config: Config) -> str:
    interval = f"R²MAE U[{config.r2mae_low:g}, {config.r2mae_high:g}] (declared)"
    where = f"{dataset}, {model}"
    if cid.startswith("S1"):
        return (f"{interval} ≥ the best fixed ratio (chosen per fold on inner validation) on annotation macro-F1 "
                f"({where})")
    if cid.startswith("S2"):
        values = ", ".join(f"{v:g}" for v in config.choice_values)
        return f"{interval} ≥ scGPT's per-batch random choice from {{{values}}} on annotation macro-F1 ({where})"
    if cid.startswith("S4"):
        control = equal_effect_control(config, model)
        run = "the sweep's own run" if control.group == "fixed" else "trained as a control"
        return (f"{interval} beats the fixed ratio of equal population effect (m_eq = {control.ratio:.3f}: "
                f"{base}, {run}) on annotation macro-F1 ({where})")
    return (f"{interval} embeddings at least as good as PCA ({config.pca_comps} comps) on leiden {metric.upper()} "
            f"({where})")


def claims(results: dict[str, pd.DataFrame], config: Config, profile: str) -> list[Claim]:
    """S1–S4 with the rules of the module docstring, for the primary (dataset, model) and the others."""
    controls = {model: equal_effect_control(config, model).name for model in config.models}
    keys = tuple(dict.fromkeys([*(b for _, b, _ in COMPARISONS), *controls.values()]))
    diffs = differences(results, baselines=keys, metrics=("test_f1", "nmi", "ari"))
    primary = (DATASET_SPECS[config.datasets[0]]["short"], config.models[0])
    out = []
    for (dataset, model), g in diffs.groupby(["dataset", "model"], sort=False):
        for cid, key, metric in (*COMPARISONS, ("S4", controls[model], "test_f1")):
            row = g[((g["baseline_group"] == key) | (g["baseline"] == key)) & (g["metric"] == metric)]
            if row.empty:
                continue
            row = row.iloc[0]
            base = row["baseline"]
            if (dataset, model) != primary:
                cid = f"{cid}-{dataset}-{model}"
            label = "macro-F1" if metric == "test_f1" else metric.upper()
            out.append(make_claim(cid=cid, claim=_claim_text(cid, base, metric, dataset, model, config),
                                  source=SOURCE, metric=f"{label}(R²MAE) - {label}({base}), paired over seeds",
                                  value=float(row["mean"]), ci_low=float(row["ci_low"]),
                                  ci_high=float(row["ci_high"]), n_seeds=int(row["n"]), profile=profile))
    return out


def key_numbers(results: dict[str, pd.DataFrame], claims_list: list[Claim]) -> dict[str, float]:
    """Numbers the notebook prints (and nbval compares), rounded to 4 significant digits."""
    seeds = per_seed(results)
    first = seeds.iloc[0]
    prim = seeds[(seeds["dataset"] == first["dataset"]) & (seeds["model"] == first["model"])]
    out: dict[str, float] = {}
    for slug, rows in (("r2mae", prim["group"] == "r2mae"), ("best_fixed_val", prim["group"] == "best fixed"),
                       ("scgpt_choice", prim["group"] == "choice"), ("pca", prim["method"] == "PCA")):
        if rows.any():
            out[f"f1_{slug}"] = prim.loc[rows, "test_f1"].mean()
            nmi = prim.loc[rows, "nmi"].mean()
            if np.isfinite(nmi):  # the per-fold "best fixed (val)" has no clustering
                out[f"nmi_{slug}"] = nmi
    for claim in claims_list:
        out[f"{claim.id}_value"] = claim.value
    rec = results["reconstruction"]
    if len(rec):
        out["recon_mse_r2mae"] = rec[(rec["group"] == "r2mae") & (rec["dataset"] == first["dataset"])
                                     & (rec["model"] == first["model"])]["mse"].mean()
    return {k: float(f"{float(v):.4g}") for k, v in out.items()}
