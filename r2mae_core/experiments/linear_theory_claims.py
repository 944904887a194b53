"""01_linear_theory: theory-vs-simulation error table, the claims C1–C4 and the notebook's key numbers.

Decision rules (fixed before any run; ``claims`` implements exactly these):

- **C1** theory predicts simulation: over Monte Carlo risk points with |γ_eff − 1| > 0.2, median |relative
  error| ≤ 5% and every point ≤ 15% → supported; otherwise contradicted. Needs p ≥ 400 (smaller p:
  inconclusive, the acceptance is stated at p ≥ 400).
- **C2** an interior optimal ratio exists: at (focus family, focus γ) the theory's best ratio among the MC
  ratios is interior; the MC paired differences risk(smallest ratio) − risk(best) and risk(largest) − risk(best)
  both have 95% intervals above 0 → supported; an interval below 0 → contradicted; else inconclusive.
- **C3a** the optimal ratio grows with model size: bootstrap (over reps) the MC argmin ratio at the largest and
  smallest γ of the focus family; 95% percentile interval of the difference above 0 → supported, below 0 →
  contradicted, else inconclusive.
- **C3b** the best ratio depends on the task: the two tasks whose *theory* argmins differ most; bootstrap
  interval of the difference of their MC (test split) argmins excludes 0 → supported, else inconclusive.
- **C4** R²MAE beats the best fixed ratio: the best fixed ratio (among the MC ratios and the fixed ratio of
  equal population effect m_eq of every interval, so that no interval wins by sitting between grid points) and
  the best R²MAE interval (every [a, b] of the MC ratios) are each chosen on validation repetitions; on the test
  repetitions the paired difference risk(best fixed) − risk(R²MAE) with a 95% interval above 0 → supported,
  below 0 → contradicted, else inconclusive. C4 is the declared primary criterion with the tuned interval; rows
  C4-<criterion>-<tuned|default> report the other criteria and the declared default interval (downstream: default only).
- **C4-eq** R²MAE beats the fixed ratio of equal population effect: the C4 interval against the fixed ratio
  m_eq = E[m²(1−m)]/E[m(1−m)] (same population predictor), paired on the test repetitions; 95% interval of
  risk(m_eq) − risk(R²MAE) above 0 → supported, below 0 → contradicted, else inconclusive (pretraining
  criteria; rows C4-eq-<criterion>-<tuned|default> as for C4).
- **C5** the region of the phase diagram (families × γ × λ × per-sample/per-batch × criteria) where a random
  ratio beats the best fixed ratio of a fine grid: rule in :func:`phase_claim`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._rng import numpy_generator
from ..claims import Claim, make_claim
from ..stats import mean_ci, paired_difference
from .linear_theory import Config, equivalent_label

__all__ = ["error_table", "error_summary", "claims", "key_numbers", "phase_claim", "equivalence_table",
           "diffusion_table", "SOURCE"]

SOURCE = "Dong, Wang & Kluger (NeurIPS 2025), linear theory; our formulation"
_C5_METRIC = "MC risk(fixed) - risk(interval), best checked point (Bonferroni interval, 95% familywise)"
_NAN = float("nan")


def error_table(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Theory vs MC for every plotted Monte Carlo point: mean, SE, relative error, γ_eff, included.

    ``included`` marks the risk points of the acceptance (|γ_eff − 1| > 0.2); per-scale gains are listed but
    not included (they are not risks and can be close to 0).
    """
    frames = []
    fixed = results["fixed_mc"]
    for (family, gamma, ratio), group in fixed.groupby(["family", "gamma", "ratio"], sort=True):
        frames.append(_row("fig1 pretraining", f"{family} γ={gamma:g} m={ratio:g}", group["risk"],
                           group["theory"].iloc[0], group["gamma_eff"].iloc[0]))
    ds = results["downstream_mc"]
    for (task, law, split), group in ds.groupby(["task", "law", "split"], sort=True):
        frames.append(_row(f"fig3 downstream ({split})", f"{task} {law}", group["risk"], group["theory"].iloc[0],
                           _NAN))
    c4 = results["c4_mc"]
    for (method, split, test), group in c4.groupby(["method", "split", "test"], sort=True):
        frames.append(_row(f"fig4 R²MAE vs fixed ({split})", f"{method} @ {test}", group["risk"],
                           group["theory"].iloc[0], group["gamma_eff"].iloc[0]))
    theory_gain = results["scales_theory"].set_index(["law", "band"])["gain"]
    for row in results["scales_mc"].itertuples():
        frames.append({"source": "fig5 per-scale gain", "label": f"{row.band} {row.law}",
                       "theory": float(theory_gain.get((row.law, row.band), _NAN)), "mc_mean": row.gain,
                       "mc_se": _NAN, "n": _NAN, "gamma_eff": _NAN})
    table = pd.DataFrame(frames)
    table["rel_err"] = (table["theory"] - table["mc_mean"]) / table["mc_mean"].abs()
    peak = (table["gamma_eff"] - 1).abs() <= 0.2
    table["included"] = table["source"].ne("fig5 per-scale gain") & ~peak.fillna(False)
    return table


def _row(source: str, label: str, risks: pd.Series, theory_value: float, gamma_eff: float) -> dict:
    values = risks.to_numpy(dtype=float)
    return {"source": source, "label": label, "theory": float(theory_value), "mc_mean": float(values.mean()),
            "mc_se": float(values.std(ddof=1) / np.sqrt(values.size)), "n": int(values.size),
            "gamma_eff": float(gamma_eff)}


def error_summary(errors: pd.DataFrame) -> pd.DataFrame:
    """Median and max |relative error| per source over included points (and overall)."""
    inc = errors[errors["included"]].assign(abs_err=lambda d: d["rel_err"].abs())
    per = inc.groupby("source")["abs_err"].agg(points="size", median="median", max="max").reset_index()
    overall = pd.DataFrame([{"source": "all included", "points": len(inc), "median": inc["abs_err"].median(),
                             "max": inc["abs_err"].max()}])
    return pd.concat([per, overall], ignore_index=True)


def _bootstrap_argmin(curves: dict[float, np.ndarray], rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot,) argmin ratio of the mean curve, resampling each ratio's reps with replacement."""
    ratios = np.array(sorted(curves))
    draws = np.stack([curves[r][rng.integers(0, curves[r].size, (n_boot, curves[r].size))].mean(axis=1)
                      for r in ratios], axis=1)  # (n_boot, n_ratios)
    return ratios[np.argmin(draws, axis=1)]


def _curves(frame: pd.DataFrame, value: str = "risk") -> dict[float, np.ndarray]:
    return {float(r): g[value].to_numpy(dtype=float) for r, g in frame.groupby("ratio")}


def _c1(results: dict[str, pd.DataFrame], config: Config, profile: str) -> list[Claim]:
    """C1: the deterministic equivalent against exact Monte Carlo."""
    out = []
    errors = error_table(results)
    inc = errors[errors["included"]]["rel_err"].abs()
    median, worst = float(inc.median()), float(inc.max())
    c1_ok = median <= 0.05 and worst <= 0.15
    verdict = ("supported" if c1_ok else "contradicted") if config.p >= 400 else "inconclusive"
    out.append(Claim("C1", f"Deterministic-equivalent risk matches exact Monte Carlo (rule: median |rel err| <= 5% "
                     f"and max <= 15%; measured max {worst:.1%} over {len(inc)} points, p = {config.p})", SOURCE,
                     "median |relative error|", median, _NAN, _NAN, config.reps, verdict, profile))

    return out


def _c2(results: dict[str, pd.DataFrame], config: Config, profile: str) -> list[Claim]:
    """C2: an interior optimal ratio at the focus family and model size."""
    out = []
    fixed = results["fixed_mc"]
    focus = fixed[(fixed["family"] == config.focus_family) & (fixed["gamma"] == config.focus_gamma)]
    theory_best = focus.groupby("ratio")["theory"].first().idxmin()
    lo_r, hi_r = min(config.mc_ratios), max(config.mc_ratios)
    if theory_best in (lo_r, hi_r):
        out.append(Claim("C2", f"Interior optimal mask ratio ({config.focus_family}, γ = {config.focus_gamma:g})",
                         SOURCE, "theory-optimal ratio among MC ratios", float(theory_best), _NAN, _NAN,
                         config.reps, "contradicted", profile))
    else:
        wide = focus.assign(method=focus["ratio"].astype(str))
        ends = [paired_difference(wide, method_col="method", a=str(end), b=str(theory_best), value="risk",
                                  pair_on="rep") for end in (lo_r, hi_r)]
        low = min(e["ci_low"] for e in ends)
        verdict = "supported" if low > 0 else ("contradicted" if any(e["ci_high"] < 0 for e in ends)
                                              else "inconclusive")
        out.append(Claim("C2", f"Interior optimal mask ratio m* = {theory_best:g} ({config.focus_family}, γ = "
                         f"{config.focus_gamma:g}): MC risk at both ends exceeds risk at m*", SOURCE,
                         "min over ends of MC risk(end) - risk(m*)", min(e["mean"] for e in ends), low,
                         min(e["ci_high"] for e in ends), config.reps, verdict, profile))

    return out


def _c3(results: dict[str, pd.DataFrame], config: Config, profile: str, rng, n_boot: int) -> list[Claim]:
    """C3a (the optimum grows with model size) and C3b (it depends on the downstream task), bootstrapped."""
    out = []
    fixed = results["fixed_mc"]
    fam = fixed[fixed["family"] == config.focus_family]
    g_lo, g_hi = min(config.gammas), max(config.gammas)
    diff = (_bootstrap_argmin(_curves(fam[fam["gamma"] == g_hi]), rng, n_boot)
            - _bootstrap_argmin(_curves(fam[fam["gamma"] == g_lo]), rng, n_boot))
    out.append(make_claim(
        cid="C3a", claim=f"The optimal mask ratio grows with model size ({config.focus_family}: m*(γ = {g_hi:g}) − "
        f"m*(γ = {g_lo:g}) > 0)", source=SOURCE, metric="MC argmin difference (bootstrap)", draws=diff,
        n_seeds=config.reps, profile=profile))

    dt = results["downstream_theory"].dropna(subset=["ratio"])
    argmins = dt.loc[dt.groupby("task")["risk"].idxmin()].set_index("task")["ratio"]
    task_a, task_b = argmins.idxmax(), argmins.idxmin()
    dmc = results["downstream_mc"]
    dmc = dmc[(dmc["split"] == "test") & dmc["ratio"].notna()]
    diff = (_bootstrap_argmin(_curves(dmc[dmc["task"] == task_a]), rng, n_boot)
            - _bootstrap_argmin(_curves(dmc[dmc["task"] == task_b]), rng, n_boot))
    out.append(make_claim(
        cid="C3b", claim=f"The best pretraining ratio depends on the downstream task ({task_a}: "
        f"{argmins[task_a]:.2f} vs {task_b}: {argmins[task_b]:.2f} in theory)", source=SOURCE,
        metric=f"MC argmin({task_a}) - argmin({task_b})", draws=diff, n_seeds=config.reps, profile=profile,
        allow_contradicted=False))

    return out


def _c4(results: dict[str, pd.DataFrame], config: Config, profile: str) -> list[Claim]:
    """C4 per criterion (tuned and declared intervals against the best fixed ratio) and C4-eq (against the fixed
    ratio of equal population effect)."""
    out = []
    for criterion, frame in _c4_frames(results).items():
        val = frame[frame["split"] == "validation"].groupby("method")["risk"].mean()
        test = frame[frame["split"] == "test"]
        meta = frame.drop_duplicates("method").set_index("method")
        group = meta.loc[val.index, "group"].to_numpy()
        best = val[np.isin(group, ("fixed", "equivalent"))].idxmin()
        tuned = val[group == "interval"]
        contenders = [("tuned", tuned.idxmin())] if len(tuned) else []
        contenders.append(("default", meta.index[meta["group"] == "r2mae"][0]))
        for kind, r2 in contenders:
            primary = criterion == config.primary_criterion and kind == "tuned"
            cid = "C4" if primary else f"C4-{criterion}-{kind}"
            diff = paired_difference(test, method_col="method", a=best, b=r2, value="risk", pair_on="rep")
            low, high = meta.loc[r2, ["ratio_low", "ratio_high"]]
            label = (f"R²MAE (interval chosen on validation: [{low:g}, {high:g}])" if kind == "tuned" else
                     f"R²MAE U[{config.r2mae_low:g}, {config.r2mae_high:g}] (declared default)")
            out.append(make_claim(
                cid=cid, claim=f"{label} beats the best fixed ratio ({best}, chosen on validation) on the {criterion} "
                "criterion", source=SOURCE, metric=f"risk(best fixed) - risk(R²MAE), {criterion}", value=diff["mean"],
                ci_low=diff["ci_low"], ci_high=diff["ci_high"], n_seeds=diff["n"], profile=profile))
            eq = equivalent_label(r2)
            if eq in set(test["method"]):
                diff = paired_difference(test, method_col="method", a=eq, b=r2, value="risk", pair_on="rep")
                m_eq = float(meta.loc[eq, "ratio_low"])
                out.append(make_claim(
                    cid="C4-eq" if primary else f"C4-eq-{criterion}-{kind}",
                    claim=f"{label} beats the fixed ratio of equal population effect (m_eq = {m_eq:.4f}) on the "
                    f"{criterion} criterion", source=SOURCE, metric=f"risk(fixed m_eq) - risk(R²MAE), {criterion}",
                    value=diff["mean"], ci_low=diff["ci_low"], ci_high=diff["ci_high"], n_seeds=diff["n"],
                    profile=profile))
    return out


def claims(results: dict[str, pd.DataFrame], config: Config, profile: str, *, n_boot: int = 4000) -> list[Claim]:
    """C1–C5 with the rules of the module docstring (C3's bootstraps draw from one generator, C3a first)."""
    rng = numpy_generator(config.seed)
    return [*_c1(results, config, profile), *_c2(results, config, profile),
            *_c3(results, config, profile, rng, n_boot), *_c4(results, config, profile),
            phase_claim(results["phase"], results["phase_mc"], config, profile)]


def phase_claim(phase: pd.DataFrame, phase_mc: pd.DataFrame, config: Config, profile: str) -> Claim:
    """C5: the region of the phase diagram where a random ratio beats the best fixed ratio.

    Rule: a point is a theory win when Δ = R(best interval) − R(best fixed, fine grid) < −``phase_tolerance``.
    Monte Carlo confirms a win when the paired interval of risk(fixed) − risk(interval) lies above 0, with
    Bonferroni intervals over the k checked points (``fw_low``, ``fw_high`` of
    :func:`~r2mae_core.experiments.linear_phase.phase_monte_carlo`: 95% for all k together), since the claim is
    that a win exists *somewhere* among them. Supported: at least one theory win is confirmed (the region is the
    confirmed points). Contradicted: no theory win anywhere (the region is empty) and no checked point shows a
    Monte Carlo gain, or every theory win's Monte Carlo interval lies below 0. Otherwise inconclusive. Value: the
    largest Monte Carlo gain among the checked points, with its Bonferroni interval.
    """
    settings = config.phase_settings()
    wins = phase[phase["win"]]
    mc = phase_mc.copy()
    checked_wins = mc[mc["reason"] == "win"]
    confirmed = checked_wins[checked_wins["fw_low"] > 0]
    best = mc.loc[mc["mc_gain"].idxmax()] if len(mc) else None
    if len(confirmed):
        verdict = "supported"
    elif not len(wins) and not (mc["fw_low"] > 0).any():
        verdict = "contradicted"
    elif len(checked_wins) and (checked_wins["fw_high"] < 0).all():
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    region = _region(confirmed if len(confirmed) else checked_wins)
    text = (f"A random ratio (best R²MAE interval) beats the best fixed ratio (fine grid) somewhere in the linear "
            f"model (p = {settings.p}; {phase['family'].nunique()} families, γ in [{phase['gamma'].min():g}, "
            f"{phase['gamma'].max():g}], λ in {sorted(phase['ridge'].unique().tolist())}, per-sample/per-batch, "
            f"{phase['criterion'].nunique()} criteria): theory wins at {len(wins)} of {len(phase)} points "
            f"(largest margin {-phase['delta'].min():.2g}); "
            f"{'confirmed region' if len(confirmed) else 'theory-win points'} (Monte Carlo at {len(mc)} points, "
            f"Bonferroni intervals): {region}")
    if best is None:
        return Claim("C5", text, SOURCE, _C5_METRIC, _NAN, _NAN, _NAN,
                     settings.reps, verdict, profile)
    return Claim("C5", text, SOURCE, _C5_METRIC, float(best["mc_gain"]),
                 float(best["fw_low"]), float(best["fw_high"]), int(best["reps"]), verdict, profile)


def _region(points: pd.DataFrame, *, listed: int = 4) -> str:
    """The points of a phase-diagram region in words: each point (family, γ, λ, per, criterion, interval) when
    there are at most ``listed``, else their count and the range of each coordinate (Table 6 lists them)."""
    if not len(points):
        return "empty"
    if len(points) <= listed:
        return "; ".join(f"{r.family} γ={r.gamma:g} λ={r.ridge:g} {r.per} {r.criterion} [{r.low:.2f}, {r.high:.2f}]"
                         for r in points.itertuples())
    return (f"{len(points)} points (Table 6): families {_values(points, 'family')}; γ {points['gamma'].min():g}-"
            f"{points['gamma'].max():g}; λ {_values(points, 'ridge')}; per {_values(points, 'per')}; criteria "
            f"{_values(points, 'criterion')}; intervals from [{points['low'].min():.2f}, {points['high'].min():.2f}] "
            f"to [{points['low'].max():.2f}, {points['high'].max():.2f}]")


def _values(points: pd.DataFrame, column: str) -> str:
    """The distinct values of ``column``, sorted, comma-separated (numbers in ``%g``)."""
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in sorted(points[column].unique()))


def equivalence_table(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every R²MAE interval of the C4 Monte Carlo next to its fixed ratio of equal population effect (m_eq) and
    the best fixed ratio of the fine grid, per pretraining criterion: theory risks, and on the test repetitions
    the paired Monte Carlo difference risk(fixed m_eq) − risk(interval) with its 95% interval."""
    c4 = results["c4_mc"]
    fine = results["fine_fixed"].set_index("criterion")
    test = c4[c4["split"] == "test"]
    rows = []
    for (method, criterion), group in test[test["group"].isin(("r2mae", "interval"))].groupby(["method", "test"]):
        eq = equivalent_label(method)
        eq_rows = test[(test["method"] == eq) & (test["test"] == criterion)]
        if not len(eq_rows):
            continue
        diff = paired_difference(test[test["test"] == criterion], method_col="method", a=eq, b=method,
                                 value="risk", pair_on="rep")
        rows.append({"method": method, "criterion": criterion, "low": group["ratio_low"].iloc[0],
                     "high": group["ratio_high"].iloc[0], "m_eq": eq_rows["ratio_low"].iloc[0],
                     "theory_interval": group["theory"].iloc[0], "theory_fixed_m_eq": eq_rows["theory"].iloc[0],
                     "best_fixed_ratio": fine.loc[criterion, "ratio"], "theory_best_fixed": fine.loc[criterion, "risk"],
                     "mc_gain_over_m_eq": diff["mean"], "ci_low": diff["ci_low"], "ci_high": diff["ci_high"],
                     "reps": diff["n"]})
    table = pd.DataFrame(rows)
    table["theory_gain_over_m_eq"] = table["theory_fixed_m_eq"] - table["theory_interval"]
    table["theory_gain_over_best"] = table["theory_best_fixed"] - table["theory_interval"]
    return table


def diffusion_table(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Masked diffusion's law against m_eq, the declared R²MAE and the best fixed ratio: theory, Monte Carlo mean
    and the paired difference risk(law) − risk(best fixed) with its 95% interval, per ridge and criterion."""
    frame = results["diffusion"]
    rows = []
    for (ridge, criterion), group in frame.groupby(["ridge", "criterion"], sort=True):
        best = group[group["law"] == "best fixed"]
        for law, sub in group.groupby("law", sort=False):
            mean, low, high = mean_ci(sub["risk"].to_numpy(dtype=float))
            diff = paired_difference(group, method_col="law", a=law, b="best fixed", value="risk", pair_on="rep") \
                if law != "best fixed" else {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
            rows.append({"ridge": ridge, "criterion": criterion, "law": law, "m_eq": sub["ratio"].iloc[0],
                         "theory": sub["theory"].iloc[0], "theory_minus_best": sub["theory"].iloc[0]
                         - best["theory"].iloc[0], "mc_mean": mean, "mc_ci_low": low, "mc_ci_high": high,
                         "mc_minus_best": diff["mean"], "diff_ci_low": diff["ci_low"],
                         "diff_ci_high": diff["ci_high"], "mc_median": float(sub["risk"].median())})
    return pd.DataFrame(rows)


def _c4_frames(results: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per criterion: (method, group, ratio_low, ratio_high, split, rep, risk); the downstream criterion has the
    fixed ratios of its Monte Carlo (group ``fixed``) and the declared R²MAE (group ``r2mae``, no ratio)."""
    c4 = results["c4_mc"]
    columns = ["method", "group", "ratio_low", "ratio_high", "split", "rep", "risk"]
    frames = {name: g[columns] for name, g in c4.groupby("test")}
    ds = results["downstream_mc"]
    fixed = ds["ratio"].notna()
    ds = ds.assign(method=np.where(fixed, "fixed " + ds["law"].astype(str), "R²MAE"),
                   group=np.where(fixed, "fixed", "r2mae"), ratio_low=ds["ratio"], ratio_high=ds["ratio"])
    frames["downstream"] = ds.groupby(columns[:-3] + ["split", "rep"], as_index=False, dropna=False)["risk"].mean()
    return frames


def key_numbers(results: dict[str, pd.DataFrame], claims_list: list[Claim]) -> dict[str, float]:
    """Numbers the notebook prints (and nbval compares), rounded to 4 significant digits."""
    errors = error_table(results)
    inc = errors[errors["included"]]["rel_err"].abs()
    grid = results["r2mae_grid"]
    out = {"median_abs_rel_err": inc.median(), "max_abs_rel_err": inc.max(), "n_points": float(len(inc))}
    for claim in claims_list:
        out[f"{claim.id}_value"] = claim.value
    fixed = grid[grid["kind"] == "fixed"]
    out["best_fixed_universal_theory"] = fixed.loc[fixed["universal"].idxmin(), "low"]
    mean, _, _ = mean_ci(results["fixed_mc"]["risk"].to_numpy())
    out["mean_mc_risk"] = mean
    phase = results["phase"]
    out["phase_points"] = float(len(phase))
    out["phase_theory_wins"] = float(phase["win"].sum())
    out["phase_min_delta"] = phase["delta"].min()
    diffusion = results["diffusion"]
    out["diffusion_m_eq"] = diffusion.loc[diffusion["law"] == "masked diffusion", "ratio"].iloc[0]
    return {k: float(f"{float(v):.4g}") for k, v in out.items()}
