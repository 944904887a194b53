"""02_vision: summary tables, the claims V0–V6 and the notebook's key numbers.

Decision rules (fixed before any run; ``claims`` implements exactly these). Every difference is paired by seed
(the runs of one seed share initialisation, data order and masks) and summarised by its mean and 95% Student-t
interval over seeds; "best fixed" is the fixed-ratio candidate with the highest mean **validation** LP accuracy.
All accuracies compared are on the official **test** set.

- **V0** (sanity, acceptance) MAE features beat the same architecture randomly initialised by ≥ 5 LP points:
  LP(best fixed) − LP(random init of the same ViT, same seed); interval above 0.05 → supported, below 0.05 →
  contradicted, else inconclusive.
- **V1** the best fixed ratio grows with model size (01's C3a direction): per sweep seed and family, the best
  ratio by validation LP at the largest size minus at the smallest, averaged over families; interval above 0 →
  supported, below 0 → contradicted, else (or with one size / one seed) inconclusive. V1-<family> rows give
  each family's difference.
- **V2** R²MAE (declared interval) ≥ best fixed: LP(R²MAE) − LP(best fixed); above 0 supported, below 0
  contradicted, else inconclusive. V2-knn / V2-bn_lp / V2-ft: the same rule on k-NN, BN+LP and fine-tuning.
- **V3** R²MAE ≥ scheduled decay over the same interval: LP(R²MAE) − LP(best scheduled baseline, chosen on
  validation LP); same rule. V3-<baseline> rows: against each baseline (scheduled, MaskGIT, truncated Gaussian).
- **V5** (positions ablation, with ``ablation_blocks``) R²MAE ≥ best fixed with block masks:
  LP(R²MAE blocks) − LP(best fixed blocks), the best among the fixed candidates trained with blocks chosen on
  validation LP; same rule. :func:`block_ablation` also gives blocks − random at each ratio law and the same
  R²MAE − best fixed difference with random positions over the same candidates.
- **V6** (the equal-effect control) R²MAE beats the fixed ratio of equal population effect
  m_eq = E[m²(1−m)] / E[m(1−m)] of its law (01's linear theory: in the population limit U[a, b] trains the
  predictor of this one fixed ratio; :func:`r2mae_core.runs.equivalent_fixed_method`; 0.673 for U[0.5, 0.9]):
  LP(R²MAE) − LP(fixed m_eq), the control trained with the same seeds, steps and ensemble as the comparison;
  interval above 0 → supported (the gain is the randomness, not the effective ratio), below 0 → contradicted,
  else inconclusive. **V6-blocks**: the same with block masks for both. :func:`equal_effect_table` sets the
  control next to the best fixed ratio for every R²MAE law (the ablation intervals too).
- **V4a** U-MAE raises the effective rank over MAE at the same fixed ratio: erank(U-MAE) − erank(MAE) > 0 by the
  interval rule; **V4b** the same for LP accuracy; V4c/V4d the same pair with R²MAE (R²MAE + U-MAE − R²MAE),
  when ``umae_r2mae`` trains it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..claims import Claim, make_claim
from ..stats import mean_ci, summarise
from .vision import Config

__all__ = ["sweep_table", "method_table", "best_ratios", "block_ablation", "equal_effect_table", "claims",
           "key_numbers", "training_minutes", "SOURCE", "METRICS"]

SOURCE = "Dong, Wang & Kluger (NeurIPS 2025), R²MAE; our formulation"
SOURCE_UMAE = "Zhang, Wang & Wang (NeurIPS 2022), U-MAE"
#: Metric columns of the tables and their labels.
METRICS = {"lp_test": "LP", "bn_lp_test": "BN+LP", "ft_test": "FT", "knn_test": "k-NN",
           "effective_rank": "effective rank", "lp_val": "LP (val)"}
_NAN = float("nan")


def _wide(summary: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    out = summary.rename(columns={"mean": value, "ci_low": f"{value}_low", "ci_high": f"{value}_high"})
    return out[[*keys, value, f"{value}_low", f"{value}_high", "n"]]


def _summary_table(df: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    parts = [_wide(summarise(df, keys, v), keys, v).drop(columns="n") for v in values if v in df.columns]
    out = parts[0]
    for part in parts[1:]:
        out = out.merge(part, on=keys)
    return out.merge(df.groupby(keys).size().rename("n_seeds").reset_index(), on=keys)


def sweep_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """Experiment 1, one row per (family, size, ratio): mean and 95% interval of validation/test LP, k-NN and
    the reconstruction losses over the sweep seeds."""
    df = sweep
    values = ["lp_val", "lp_test", "knn_test", "effective_rank", *sorted(c for c in df if c.startswith("recon_"))]
    return _summary_table(df, ["family", "size", "ratio"], values)


def method_table(methods_df: pd.DataFrame, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """Experiments 2–3, one row per method (table order): mean and 95% interval of every metric; reference rows
    (raw pixels, random init) appended when given."""
    order = list(dict.fromkeys(methods_df["method"]))
    values = [c for c in METRICS if c in methods_df]
    out = _summary_table(methods_df, ["group", "method"], values)
    out = out.set_index("method").loc[order].reset_index()
    if references is not None:
        refs = references.assign(group="reference",
                                 method=references["method"] + " " + references["family"] + "-" + references["size"])
        refs.loc[refs["family"] == "pixels", "method"] = "raw pixels"
        out = pd.concat([out, _summary_table(refs, ["group", "method"], [v for v in values if v in refs])],
                        ignore_index=True)
    return out


def best_ratios(sweep: pd.DataFrame, metric: str = "lp_val") -> pd.DataFrame:
    """Best fixed ratio per (family, size, seed) by ``metric`` (validation LP by default; higher is better)."""
    df = sweep
    idx = df.groupby(["family", "size", "seed"], sort=False)[metric].idxmax()
    return df.loc[idx, ["family", "size", "seed", "ratio", metric]].reset_index(drop=True)


def _random_vit(refs: pd.DataFrame, size: str) -> pd.DataFrame:
    """Reference rows of the comparison's ViT, randomly initialised (one per seed)."""
    return refs[(refs["family"] == "vit") & (refs["size"] == size) & (refs["kind"] == "reference")]


def _paired(df: pd.DataFrame, a: str, b: str, value: str) -> np.ndarray:
    wide = df[df["method"].isin([a, b])].pivot_table(index="seed", columns="method", values=value).dropna()
    return (wide[a] - wide[b]).to_numpy() if {a, b} <= set(wide.columns) else np.array([])


_BLOCK_COLUMNS = ["comparison", "positions", "a", "b", "mean", "ci_low", "ci_high", "n"]


def _difference_row(comparison: str, positions: str, a: str, b: str, diffs: np.ndarray) -> dict:
    mean, low, high = mean_ci(diffs) if diffs.size else (_NAN, _NAN, _NAN)
    return {"comparison": comparison, "positions": positions, "a": a, "b": b, "mean": mean, "ci_low": low,
            "ci_high": high, "n": int(diffs.size)}


def block_ablation(methods_df: pd.DataFrame, metric: str = "lp_test") -> pd.DataFrame:
    """The positions ablation (block masks vs random positions at the same ratio law), paired over seeds.

    Rows (mean and 95% interval of ``metric`` differences): ``blocks − random`` for every method of group
    ``blocks`` against its random-position twin (the same name without " blocks"), then ``R²MAE − best fixed``
    within each kind of positions, the best fixed chosen on validation LP among the fixed ratios that have a block
    run (the same candidates for both kinds). Empty (with its columns) without block runs.
    """
    mdf = methods_df
    blocks = list(dict.fromkeys(mdf.loc[mdf["group"] == "blocks", "method"]))
    if not blocks:
        return pd.DataFrame(columns=_BLOCK_COLUMNS)
    groups = mdf.drop_duplicates("method").set_index("method")["group"]
    twins = {name: name.removesuffix(" blocks") for name in blocks if name.removesuffix(" blocks") in groups.index}
    rows = [_difference_row("blocks − random", "-", name, twin, _paired(mdf, name, twin, metric))
            for name, twin in twins.items()]
    fixed_blocks = _block_candidates(mdf)
    r2_blocks = [n for n in blocks if (mdf.loc[mdf["method"] == n, "kind"] == "r2mae").all()]
    for positions, candidates, r2 in (
            ("random", [twins[n] for n in fixed_blocks], _one(mdf, mdf["group"] == "r2mae", "R²MAE")),
            ("blocks", fixed_blocks, r2_blocks[0] if r2_blocks else "")):
        if not candidates or not r2:
            continue
        best = _best_on_validation(mdf, candidates)
        rows.append(_difference_row("R²MAE − best fixed", positions, r2, best, _paired(mdf, r2, best, metric)))
    return pd.DataFrame(rows, columns=_BLOCK_COLUMNS)


def _block_candidates(mdf: pd.DataFrame) -> list[str]:
    """The fixed candidates trained with block masks: block runs of a fixed ratio whose random-position twin is a
    fixed candidate of the grid (the equal-effect control's block run is not a candidate)."""
    groups = mdf.drop_duplicates("method").set_index("method")["group"]
    blocks = mdf[(mdf["group"] == "blocks") & (mdf["kind"] == "fixed")]
    return [n for n in dict.fromkeys(blocks["method"]) if groups.get(n.removesuffix(" blocks")) == "fixed"]


def _best_on_validation(mdf: pd.DataFrame, candidates: list[str]) -> str:
    """The method of ``candidates`` with the highest mean validation LP over seeds."""
    return str(mdf[mdf["method"].isin(candidates)].groupby("method")["lp_val"].mean().idxmax())


_EQUAL_COLUMNS = ["r2mae", "positions", "role", "method", "ratio", "value", "value_low", "value_high", "diff",
                  "diff_low", "diff_high", "n"]


def equal_effect_table(results: dict, metric: str = "lp_test") -> pd.DataFrame:
    """The equal-effect control next to the best fixed ratio, for every R²MAE law that has one
    (``results["controls"]``, :func:`r2mae_core.experiments.vision.controls`).

    Three rows per law (``role``): the R²MAE law itself, the best fixed ratio (chosen on validation LP among the
    candidates with the same positions: the grid with random positions, ``block_fixed_ratios`` with blocks) and
    the fixed ratio of equal population effect m_eq = E[m²(1−m)] / E[m(1−m)] (:func:`r2mae_core.theory.
    equivalent_fixed_ratio`; ``method`` names the run, a grid candidate when one lies at m_eq). ``value`` is the
    mean and 95% Student-t interval of ``metric`` over seeds; ``diff`` is R²MAE − that row, paired by seed.
    """
    mdf = results["methods"]
    rows = []
    for ctl in results.get("controls", pd.DataFrame(columns=["r2mae"])).itertuples():
        if ctl.positions == "blocks":
            candidates = _block_candidates(mdf)
            best = _best_on_validation(mdf, candidates) if candidates else ""
        else:
            best = results["best_fixed"]
        for role, name in (("R²MAE", ctl.r2mae), ("best fixed (val)", best), ("equal-effect fixed", ctl.control)):
            values = mdf.loc[mdf["method"] == name, metric].to_numpy(float)
            if not values.size:
                continue
            ratio = ctl.m_eq if role == "equal-effect fixed" else float(mdf.loc[mdf["method"] == name, "ratio"].iloc[0])
            diffs = _paired(mdf, ctl.r2mae, name, metric) if name != ctl.r2mae else np.array([])
            diff = mean_ci(diffs) if diffs.size else (_NAN, _NAN, _NAN)
            rows.append(dict(zip(_EQUAL_COLUMNS, (ctl.r2mae, ctl.positions, role, name, ratio, *mean_ci(values),
                                                  *diff, int(values.size)), strict=True)))
    return pd.DataFrame(rows, columns=_EQUAL_COLUMNS)


def _one(rows: pd.DataFrame, select: pd.Series, what: str) -> str:
    """The name of the one method of ``rows`` that ``select`` picks (by its record's fields)."""
    names = list(dict.fromkeys(rows.loc[select, "method"]))
    if len(names) != 1:
        raise ValueError(f"the method table has {len(names)} methods for {what}: expected exactly one")
    return names[0]


def _size_order(family: str, sizes) -> list[str]:
    from .image_runs import SIZES

    return [s for s in SIZES[family] if s in set(sizes)]


def _sanity_claim(mdf: pd.DataFrame, refs: pd.DataFrame, best: str, config: Config, profile: str) -> Claim:
    """V0: the validation-chosen MAE against the randomly initialised ViT, by ≥ 5 LP points."""
    rand = _random_vit(refs, config.vit_size).set_index("seed")["lp_test"]
    mine = mdf[mdf["method"] == best].set_index("seed")["lp_test"]
    shared = mine.index.intersection(rand.index)
    return make_claim(
        cid="V0", claim=f"MAE features ({best}, val-chosen) beat the randomly initialised ViT by ≥ 5 LP points "
        "(test); rule: paired interval above 0.05", source="acceptance of 02_vision",
        metric="LP(best fixed) − LP(random init)", diffs=(mine[shared] - rand[shared]).to_numpy(), profile=profile,
        threshold=0.05)


def _size_claims(sweep: pd.DataFrame, profile: str) -> list[Claim]:
    """V1 (averaged over architectures) and V1-<family>: the best fixed ratio grows with model size."""
    per_family = {}
    for family, group in best_ratios(sweep).groupby("family", sort=False):
        sizes = _size_order(family, group["size"])
        if len(sizes) < 2:
            continue
        wide = group.pivot_table(index="seed", columns="size", values="ratio")
        per_family[family] = (wide[sizes[-1]] - wide[sizes[0]]).dropna()
    diffs = pd.concat(per_family, axis=1).dropna().mean(axis=1).to_numpy() if per_family else np.array([])
    out = [make_claim(
        cid="V1", claim="the best fixed ratio (validation LP) grows with model size, averaged over architectures; "
        "rule: paired interval over seeds above 0", source=SOURCE + " (theory, 01's C3a)",
        metric="best ratio(largest size) − best ratio(smallest size)", diffs=diffs, profile=profile)]
    for family, d in per_family.items():
        out.append(make_claim(cid=f"V1-{family}", claim=f"{family}: the best fixed ratio grows with model size",
                              source=SOURCE, metric="best ratio(largest) − best ratio(smallest)", diffs=d.to_numpy(),
                              profile=profile))
    return out


def _r2mae_claims(mdf: pd.DataFrame, r2: str, best: str, profile: str) -> list[Claim]:
    """V2 (and V2-<probe>): R²MAE against the best fixed ratio; V3 (and V3-<baseline>): against the baselines."""
    out = [make_claim(
        cid="V2", claim=f"{r2} ≥ the best fixed ratio ({best}, chosen on validation LP) in test LP accuracy; rule: "
        "paired interval above 0 supported, below 0 contradicted", source=SOURCE, metric="LP(R²MAE) − LP(best fixed)",
        diffs=_paired(mdf, r2, best, "lp_test"), profile=profile)]
    for col, label in (("knn_test", "knn"), ("bn_lp_test", "bn_lp"), ("ft_test", "ft")):
        if col in mdf and mdf.loc[mdf["method"].isin([r2, best]), col].notna().all():
            out.append(make_claim(cid=f"V2-{label}", claim=f"{r2} ≥ best fixed in {METRICS[col]} accuracy",
                                  source=SOURCE, metric=f"{METRICS[col]}(R²MAE) − {METRICS[col]}(best fixed)",
                                  diffs=_paired(mdf, r2, best, col), profile=profile))
    baselines = mdf[mdf["group"] == "baseline"]
    scheduled = list(dict.fromkeys(baselines.loc[baselines["kind"] == "scheduled", "method"]))
    if scheduled:
        best_sched = str(baselines[baselines["method"].isin(scheduled)].groupby("method")["lp_val"].mean().idxmax())
        out.append(make_claim(
            cid="V3", claim=f"{r2} ≥ scheduled decay over the same interval (best of {', '.join(scheduled)} on "
            f"validation: {best_sched}) in test LP", source=SOURCE, metric="LP(R²MAE) − LP(best scheduled)",
            diffs=_paired(mdf, r2, best_sched, "lp_test"), profile=profile))
    else:
        out.append(make_claim(cid="V3", claim="R²MAE ≥ scheduled decay (no scheduled baseline was run)", source=SOURCE,
                              metric="LP(R²MAE) − LP(best scheduled)", diffs=[], profile=profile))
    for name in dict.fromkeys(baselines["method"]):
        out.append(make_claim(cid=f"V3-{name}", claim=f"{r2} ≥ {name} in test LP", source=SOURCE,
                              metric=f"LP(R²MAE) − LP({name})", diffs=_paired(mdf, r2, name, "lp_test"),
                              profile=profile))
    return out


def _block_claims(mdf: pd.DataFrame, profile: str) -> list[Claim]:
    """V5: R²MAE against the best fixed ratio when both mask blocks of patches."""
    blocks = block_ablation(mdf)
    rows = blocks[(blocks["comparison"] == "R²MAE − best fixed") & (blocks["positions"] == "blocks")]
    return [make_claim(
        cid="V5", claim=f"{row.a} ≥ the best fixed ratio with block masks ({row.b}, chosen on validation LP) in "
        "test LP; rule: paired interval above 0 supported, below 0 contradicted",
        source=SOURCE + "; blockwise masks of Bao et al. 2022 (BEiT)",
        metric="LP(R²MAE blocks) − LP(best fixed blocks)", value=row.mean, ci_low=row.ci_low,
        ci_high=row.ci_high, n_seeds=row.n, profile=profile) for row in rows.itertuples()]


def _equal_effect_claims(results: dict, profile: str) -> list[Claim]:
    """V6 (declared interval, random positions) and V6-blocks (with block masks): R²MAE against the fixed ratio
    of equal population effect, in test LP."""
    table = equal_effect_table(results)
    declared = _one(results["methods"], results["methods"]["group"] == "r2mae", "the declared R²MAE")
    controls = table[(table["role"] == "equal-effect fixed")
                     & ((table["r2mae"] == declared) | (table["positions"] == "blocks"))]
    out = []
    for row in controls.itertuples():
        blocks = row.positions == "blocks"
        out.append(make_claim(
            cid="V6-blocks" if blocks else "V6",
            claim=f"{row.r2mae} beats the fixed ratio of equal population effect (m_eq = {row.ratio:.3f}: "
            f"{row.method}) in test LP{' with block masks' if blocks else ''}; rule: paired interval above 0 "
            "supported, below 0 contradicted, else inconclusive",
            source=SOURCE + "; m_eq = E[m²(1−m)]/E[m(1−m)] from 01's linear theory",
            metric="LP(R²MAE) − LP(fixed m_eq)", diffs=_paired(results["methods"], row.r2mae, row.method, "lp_test"),
            profile=profile))
    return out


def _umae_claims(mdf: pd.DataFrame, r2: str, config: Config, profile: str) -> list[Claim]:
    """V4a–V4d: U-MAE against MAE (and R²MAE + U-MAE against R²MAE) in effective rank and test LP."""
    fixed_at = (mdf["kind"] == "fixed") & (mdf["ratio"] == config.umae_ratio)
    mae = _one(mdf, fixed_at & (mdf["group"] == "fixed"), f"fixed {config.umae_ratio:g}")
    umae = _one(mdf, fixed_at & (mdf["group"] == "umae"), f"U-MAE fixed {config.umae_ratio:g}")
    pairs = [("V4a", umae, mae, "effective_rank", "effective rank"), ("V4b", umae, mae, "lp_test", "test LP")]
    if config.umae_r2mae:
        r2u = _one(mdf, (mdf["kind"] == "r2mae") & (mdf["group"] == "umae"), "R²MAE + U-MAE")
        pairs += [("V4c", r2u, r2, "effective_rank", "effective rank"), ("V4d", r2u, r2, "lp_test", "test LP")]
    return [make_claim(cid=cid, claim=f"{a} > {b} in {what} (λ = {config.umae_weight:g}); rule: paired interval "
                       "above 0", source=SOURCE_UMAE, metric=f"{what}({a}) − {what}({b})",
                       diffs=_paired(mdf, a, b, col), profile=profile) for cid, a, b, col, what in pairs]


def claims(results: dict, config: Config, profile: str) -> list[Claim]:
    """The claims V0–V6 (rules in the module docstring), in the order V0, V1, V2, V6, V3, V5, V4."""
    mdf, best = results["methods"], results["best_fixed"]
    r2 = _one(mdf, (mdf["group"] == "r2mae"), "the declared R²MAE")
    r2mae = _r2mae_claims(mdf, r2, best, profile)
    return [_sanity_claim(mdf, results["references"], best, config, profile),
            *_size_claims(results["sweep"], profile), *[c for c in r2mae if c.id.startswith("V2")],
            *_equal_effect_claims(results, profile), *[c for c in r2mae if not c.id.startswith("V2")],
            *_block_claims(mdf, profile), *_umae_claims(mdf, r2, config, profile)]


def training_minutes(results: dict) -> float:
    """Total pretraining wall time of the study in minutes (runs shared by two experiments count once)."""
    runs = pd.concat([results["methods"], results["sweep"]], ignore_index=True).drop_duplicates(
        ["family", "size", "method", "seed", "steps", "uniformity_weight"])
    return float(runs["train_seconds"].sum()) / 60


def key_numbers(results: dict, claims_list: list[Claim]) -> dict[str, float | str]:
    """Headline numbers of the notebook: best fixed ratio, mean test LP per method, references, verdicts.

    Only reproducible numbers (the notebook's last cell is compared by nbval); wall times are in the tables
    (``train_seconds`` per run, see :func:`training_minutes`)."""
    mdf, refs = results["methods"], results["references"]
    out: dict[str, float | str] = {"best_fixed": results["best_fixed"]}
    for name, value in mdf.groupby("method", sort=False)["lp_test"].mean().items():
        out[f"lp_test[{name}]"] = round(float(value), 4)
    pixels = refs[refs["family"] == "pixels"]["lp_test"]
    rand = _random_vit(refs, results.get("vit_size", "S"))["lp_test"]
    out["lp_test[raw pixels]"] = round(float(pixels.mean()), 4) if len(pixels) else _NAN
    out["lp_test[random init vit]"] = round(float(rand.mean()), 4) if len(rand) else _NAN
    for claim in claims_list:
        out[f"verdict[{claim.id}]"] = claim.verdict
    return out
