"""02_vision: config checks, the method list, validation-only selection and the claim rules (on synthetic
tables, so every verdict branch is exercised without training; the notebook's smoke run covers training)."""

import numpy as np
import pandas as pd
import pytest

from r2mae_core.experiments import vision, vision_claims
from r2mae_core.runs import Method, fixed_method, r2mae_method

_RECORDS = {m.name: m for m in [
    fixed_method(0.5), fixed_method(0.75), r2mae_method(0.5, 0.9),
    Method("linear 0.9→0.5", "scheduled", {"kind": "scheduled", "start": 0.9, "end": 0.5, "shape": "linear",
                                           "per": "batch"}, "baseline"),
    fixed_method(0.75, group="umae", uniformity_weight=0.01, name="U-MAE fixed 0.75"),
    r2mae_method(0.5, 0.9, group="umae", uniformity_weight=0.01, name="R²MAE U[0.5,0.9] + U-MAE")]}


@pytest.mark.parametrize("kwargs, match", [
    ({"r2mae_low": 0.9, "r2mae_high": 0.5}, "r2mae_low"),
    ({"r2mae_high": 1.0}, "r2mae_high"),
    ({"umae_ratio": 0.6}, "umae_ratio"),
    ({"baselines": ["cosine", "nope"]}, "baselines='nope'"),
    ({"sweep": {"mlp": {"sizes": ["S"]}}}, "sweep\\['mlp'\\]"),
    ({"sweep": {"rnn": {"sizes": ["S"], "steps": 3}}}, "sweep family 'rnn'"),
    ({"sweep": {"mlp": {"sizes": ["XL"], "steps": 3}}}, "sizes'\\]=\\['XL'\\]"),
    ({"sweep": {"mlp": {"sizes": ["S"], "steps": 0}}}, "steps"),
    ({"sweep_seeds": 3, "n_seeds": 2}, "sweep_seeds"),
    ({"fixed_ratios": []}, "fixed_ratios"),
    ({"ablation_intervals": [[0.7, 0.2]]}, "ablation_intervals"),
    ({"n_seeds": 0}, "n_seeds"),
    ({"vit_size": "XXL"}, "vit_size"),
])
def test_config_rejects_bad_values_with_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        vision.Config(**kwargs)
    assert "\n" not in str(err.value)


def test_methods_declare_the_interval_and_decay_over_it():
    config = vision.Config(baselines=["linear", "cosine", "maskgit", "truncnorm"],
                           ablation_intervals=[[0.1, 0.9], [0.5, 0.9]], ablation_per_sample=True)
    recipes = vision.methods(config)
    names = [m.name for m in recipes]
    assert len(set(names)) == len(names)
    r2 = next(m for m in recipes if m.group == "r2mae")
    assert r2.name == "R²MAE U[0.5,0.9]" and r2.sampler == {"kind": "r2mae", "low": 0.5, "high": 0.9, "per": "batch"}
    linear = next(m for m in recipes if m.sampler.get("shape") == "linear")
    assert (linear.sampler["start"], linear.sampler["end"]) == (0.9, 0.5)  # decays from high to low
    ablations = [m.name for m in recipes if m.group == "ablation"]
    assert ablations == ["R²MAE U[0.1,0.9]", "R²MAE U[0.5,0.9] per sample"]  # the declared interval not repeated
    umae = [m for m in recipes if m.group == "umae"]
    assert [m.uniformity_weight for m in umae] == [0.01, 0.01]
    assert umae[0].sampler == {"kind": "fixed", "ratio": 0.75}


def test_sweep_vit_runs_are_the_method_runs_when_budgets_match():
    config = vision.Config(sweep={"vit": {"sizes": ["S"], "steps": 20}}, sweep_ratios=[0.75], method_steps=20)
    sweep = vision.sweep_specs(config)
    fixed = next(m for m in vision.methods(config) if m.name == "fixed 0.75")
    assert sweep[0].identity() == vision.method_spec(config, fixed, config.seeds[0]).identity()  # trained once
    plan = vision.plan(config)
    assert len({repr(s.identity()) for s in plan}) == len(plan) - 1


def _methods_frame(gains: dict[str, list[float]], val_gains: dict[str, float] | None = None) -> pd.DataFrame:
    """Synthetic method rows: LP test = 0.8 + gain per seed; LP val = 0.8 + val gain (selection signal)."""
    rows = []
    for name, per_seed in gains.items():
        for seed, g in enumerate(per_seed):
            rows.append({**_RECORDS[name].columns(), "seed": seed, "lp_test": 0.8 + g,
                         "lp_val": 0.8 + (val_gains or {}).get(name, g) + 0.001 * seed, "knn_test": 0.7 + g,
                         "effective_rank": 20 + 100 * g, "train_seconds": 1.0,
                         "family": "vit", "size": "S", "steps": 10})
    return pd.DataFrame(rows)


def test_best_fixed_is_chosen_on_validation_not_test():
    df = _methods_frame({"fixed 0.5": [0.05, 0.05, 0.05], "fixed 0.75": [0.0, 0.0, 0.0]},
                        val_gains={"fixed 0.5": 0.0, "fixed 0.75": 0.02})
    assert vision.best_fixed(df) == "fixed 0.75"  # better on validation, worse on test
    with pytest.raises(ValueError, match="no fixed-ratio rows"):
        vision.best_fixed(df.assign(group="r2mae"))


def _results(gains, sweep=None, rand=(0.7, 0.71, 0.69)):
    mdf = _methods_frame(gains)
    refs = pd.DataFrame([{"family": "vit", "size": "S", "method": "random init", "kind": "reference", "seed": s,
                          "lp_test": r,
                          "lp_val": r, "knn_test": r, "effective_rank": 10.0} for s, r in enumerate(rand)]
                        + [{"family": "vit", "size": "M", "method": "random init", "kind": "reference", "seed": 0,
                            "lp_test": 0.1,
                            "lp_val": 0.1, "knn_test": 0.1, "effective_rank": 1.0}]  # a sweep size: not paired
                        + [{"family": "pixels", "size": "-", "method": "raw pixels", "kind": "reference", "seed": 0,
                            "lp_test": 0.84,
                            "lp_val": 0.84, "knn_test": 0.8, "effective_rank": 50.0}])
    if sweep is None:
        sweep = pd.DataFrame([{"family": "mlp", "size": "S", **fixed_method(0.5).columns(), "seed": 0, "lp_val": 0.8,
                               "lp_test": 0.8, "knn_test": 0.7, "effective_rank": 5.0, "train_seconds": 1.0,
                               "steps": 10}])
    return {"methods": mdf, "references": refs, "sweep": sweep, "best_fixed": vision.best_fixed(mdf), "vit_size": "S"}


def _by_id(claims):
    return {c.id: c for c in claims}


def test_claims_follow_their_rules():
    gains = {"fixed 0.5": [0.0, 0.01, 0.0], "fixed 0.75": [0.1, 0.11, 0.12],
             "R²MAE U[0.5,0.9]": [0.12, 0.14, 0.15], "linear 0.9→0.5": [0.2, 0.22, 0.21],
             "U-MAE fixed 0.75": [0.13, 0.15, 0.14], "R²MAE U[0.5,0.9] + U-MAE": [0.12, 0.14, 0.15]}
    config = vision.Config(n_seeds=3)
    c = _by_id(vision_claims.claims(_results(gains), config, "quick"))
    assert c["V0"].verdict == "supported" and c["V0"].n_seeds == 3  # ~0.9 − 0.7 = +0.2 ≥ 0.05
    assert c["V2"].verdict == "supported" and c["V2"].value == pytest.approx(0.08 / 3)
    assert c["V2-knn"].verdict == "supported"
    assert c["V3"].verdict == "contradicted"  # the scheduled baseline wins by ~0.07 on every seed
    assert c["V3-linear 0.9→0.5"].value == pytest.approx(c["V3"].value)
    assert c["V4a"].verdict == "supported" and c["V4b"].verdict == "supported"
    assert c["V4d"].verdict == "inconclusive" and c["V4d"].value == pytest.approx(0.0)  # identical runs
    assert c["V1"].verdict == "inconclusive" and c["V1"].n_seeds == 0  # one size: nothing to compare
    numbers = vision_claims.key_numbers(_results(gains), list(c.values()))
    assert numbers["best_fixed"] == "fixed 0.75" and numbers["verdict[V2]"] == "supported"
    assert "train_minutes" not in numbers  # wall time is not reproducible: not a key number
    assert vision_claims.training_minutes(_results(gains)) == pytest.approx((6 * 3 + 1) / 60)


def test_sanity_claim_needs_five_points():
    gains = {"fixed 0.5": [0.0, 0.0, 0.0], "fixed 0.75": [0.02, 0.03, 0.02], "R²MAE U[0.5,0.9]": [0.0, 0.0, 0.0],
             "U-MAE fixed 0.75": [0.0, 0.0, 0.0], "R²MAE U[0.5,0.9] + U-MAE": [0.0, 0.0, 0.0]}
    results = _results(gains, rand=(0.8, 0.8, 0.8))
    c = _by_id(vision_claims.claims(results, vision.Config(n_seeds=3, baselines=[]), "quick"))
    assert c["V0"].verdict == "contradicted"  # gains of 2-3 points over random init: interval below 0.05
    assert c["V3"].verdict == "inconclusive" and c["V3"].n_seeds == 0  # no scheduled baseline run
    no_pair = _by_id(vision_claims.claims(results, vision.Config(n_seeds=3, baselines=[], umae_r2mae=False), "quick"))
    assert "V4c" not in no_pair and "V4a" in no_pair  # the R²MAE + U-MAE pair only when it is trained


def test_v1_compares_the_largest_and_smallest_size_per_seed():
    rows = []
    for seed in range(3):
        for family in ("mlp", "vit"):
            for size, best in (("S", 0.25), ("M", 0.5), ("L", 0.75)):
                for ratio in (0.25, 0.5, 0.75):
                    rows.append({"family": family, "size": size, **fixed_method(ratio).columns(), "seed": seed,
                                 "lp_val": 0.8 - abs(ratio - best) + 0.001 * seed, "lp_test": 0.8,
                                 "knn_test": 0.7, "effective_rank": 5.0, "train_seconds": 1.0, "steps": 10})
    sweep = pd.DataFrame(rows)
    best = vision_claims.best_ratios(sweep)
    assert set(best.loc[best["size"] == "L", "ratio"]) == {0.75}
    gains = {"fixed 0.5": [0.0] * 3, "fixed 0.75": [0.1] * 3, "R²MAE U[0.5,0.9]": [0.1] * 3,
             "U-MAE fixed 0.75": [0.1] * 3, "R²MAE U[0.5,0.9] + U-MAE": [0.1] * 3}
    c = _by_id(vision_claims.claims(_results(gains, sweep), vision.Config(n_seeds=3, baselines=[]), "quick"))
    assert c["V1"].value == pytest.approx(0.5) and c["V1-mlp"].value == pytest.approx(0.5)
    assert c["V1"].verdict == "supported"  # no spread across seeds: the interval collapses onto 0.5 > 0
    table = vision_claims.sweep_table(sweep)
    assert len(table) == 2 * 3 * 3 and (table["n_seeds"] == 3).all()
    assert np.isfinite(table["lp_val_low"]).all()


def test_every_r2mae_law_gets_its_equal_effect_control_in_the_same_ensemble():
    from r2mae_core import runs

    config = vision.Config(fixed_ratios=(0.5, 0.75), ablation_intervals=[[0.1, 0.9]], ablation_per_sample=True,
                           ablation_blocks=True, block_fixed_ratios=(0.75,))
    recipes = {m.name: m for m in vision.methods(config)}
    assert len(recipes) == len(vision.methods(config))  # names stay unique
    control = recipes["fixed m_eq 0.673 (R²MAE U[0.5,0.9])"]
    assert control.group == "equivalent" and control.ratio == pytest.approx(0.672881, abs=1e-6)
    assert [m.group for m in recipes.values()].count("equivalent") == 1  # per sample: the same law, one control
    block_control = recipes["fixed m_eq 0.673 (R²MAE U[0.5,0.9]) blocks"]
    assert block_control.group == "blocks" and block_control.mask == vision.BLOCK_MASKS
    table = vision.controls(config).set_index("r2mae")
    assert table.loc["R²MAE U[0.1,0.9]", "control"] == "fixed 0.5" and table.loc["R²MAE U[0.1,0.9]", "in_grid"]
    assert table.loc["R²MAE U[0.5,0.9] per sample", "control"] == control.name
    assert table.loc["R²MAE U[0.5,0.9] blocks", "control"] == block_control.name
    assert not table["in_grid"].drop("R²MAE U[0.1,0.9]").any()
    seed = config.seeds[0]
    spec = vision.method_spec(config, control, seed)
    assert runs.group_key(spec) == runs.group_key(vision.method_spec(config, recipes["R²MAE U[0.5,0.9]"], seed))
    later = config.seeds[-1]  # analyses (reconstructions) are the first seed's
    assert vision.method_spec(config, control, later).evaluation == vision.method_spec(
        config, recipes["fixed 0.5"], later).evaluation
    assert vision.method_spec(config, block_control, seed).evaluation["bn_lp_epochs"] == 0  # scored as the blocks


def _control_results(r2_gain: list[float], eq_gain: list[float]) -> dict:
    """Method rows of the fixed grid, R²MAE and its control (random positions and blocks), with their controls."""
    names = {"fixed 0.5": fixed_method(0.5), "fixed 0.75": fixed_method(0.75),
             "R²MAE U[0.5,0.9]": r2mae_method(0.5, 0.9),
             "fixed m_eq 0.673 (R²MAE U[0.5,0.9])": fixed_method(0.673, group="equivalent",
                                                                  name="fixed m_eq 0.673 (R²MAE U[0.5,0.9])")}
    gains = {"fixed 0.5": [0.0, 0.0, 0.0], "fixed 0.75": [0.05, 0.05, 0.06], "R²MAE U[0.5,0.9]": r2_gain,
             "fixed m_eq 0.673 (R²MAE U[0.5,0.9])": eq_gain}
    rows = []
    for name, per_seed in gains.items():
        for blocks in (False, True):
            if blocks and name == "fixed 0.5":
                continue
            method = names[name]
            cols = {**method.columns(), "method": name + " blocks" * blocks, "group": "blocks" if blocks
                    else method.group}
            for seed, g in enumerate(per_seed):
                rows.append({**cols, "seed": seed, "lp_test": 0.8 + g - 0.02 * blocks,
                             "lp_val": 0.8 + g + 0.001 * seed, "knn_test": 0.7 + g, "effective_rank": 20 + 100 * g})
    mdf = pd.concat([pd.DataFrame(rows), _methods_frame({"U-MAE fixed 0.75": [0.05, 0.05, 0.06]})],
                    ignore_index=True)
    controls = pd.DataFrame([{"r2mae": "R²MAE U[0.5,0.9]", "positions": "random", "m_eq": 0.673,
                              "control": "fixed m_eq 0.673 (R²MAE U[0.5,0.9])", "in_grid": False},
                             {"r2mae": "R²MAE U[0.5,0.9] blocks", "positions": "blocks", "m_eq": 0.673,
                              "control": "fixed m_eq 0.673 (R²MAE U[0.5,0.9]) blocks", "in_grid": False}])
    others = _results({"fixed 0.5": [0.0, 0.0, 0.0]})
    return {"methods": mdf, "best_fixed": vision.best_fixed(mdf), "controls": controls,
            "references": others["references"], "sweep": others["sweep"]}


@pytest.mark.parametrize("eq_gain, verdict", [([0.06, 0.07, 0.07], "supported"), ([0.12, 0.13, 0.14], "contradicted"),
                                              ([0.07, 0.11, 0.09], "inconclusive")])
def test_the_equal_effect_claim_pairs_r2mae_with_its_control(eq_gain, verdict):
    results = _control_results([0.09, 0.1, 0.11], eq_gain)
    table = vision_claims.equal_effect_table(results).set_index(["positions", "role"])
    assert table.loc[("random", "best fixed (val)"), "method"] == "fixed 0.75"  # chosen on validation
    assert table.loc[("blocks", "best fixed (val)"), "method"] == "fixed 0.75 blocks"  # the control is no candidate
    assert table.loc[("random", "best fixed (val)"), "diff"] == pytest.approx(0.1 - 0.16 / 3)
    eq = table.loc[("random", "equal-effect fixed")]
    assert eq["ratio"] == 0.673 and eq["diff"] == pytest.approx(0.1 - np.mean(eq_gain)) and eq["n"] == 3
    assert eq["diff_low"] <= eq["diff"] <= eq["diff_high"]
    every = vision_claims.claims(results, vision.Config(n_seeds=3, baselines=[], umae_r2mae=False), "quick")
    claims = {c.id: c for c in every if c.id.startswith("V6")}
    assert set(claims) == {"V6", "V6-blocks"} and claims["V6"].verdict == verdict
    assert claims["V6"].value == pytest.approx(eq["diff"]) and "0.673" in claims["V6"].claim
    assert claims["V6-blocks"].value == pytest.approx(claims["V6"].value)  # the same shift for both: same gap
    ablation = vision_claims.block_ablation(results["methods"])
    best = ablation[ablation["comparison"] == "R²MAE − best fixed"].set_index("positions")
    assert best.loc["blocks", "b"] == "fixed 0.75 blocks"
    assert "fixed m_eq 0.673 (R²MAE U[0.5,0.9]) blocks" in set(ablation["a"])  # its blocks − random row
