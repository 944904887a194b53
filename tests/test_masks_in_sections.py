"""Block masks in 02 and masked diffusion in 03/04: the methods, their engine groups, their training steps and
the positions ablation's table (no training here; the sections' own tests train and evaluate every method)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r2mae_core import runs
from r2mae_core.experiments import dna, language, vision, vision_claims


def test_vision_positions_ablation_methods_share_the_ensemble_and_skip_bn_lp_and_fine_tuning():
    config = vision.Config(ablation_blocks=True, block_fixed_ratios=(0.75,), bn_lp_epochs=2, ft_epochs=1)
    by_name = {m.name: m for m in vision.methods(config)}
    block_r2, block_fixed = by_name["R²MAE U[0.5,0.9] blocks"], by_name["fixed 0.75 blocks"]
    assert block_r2.group == block_fixed.group == "blocks" and block_r2.mask == vision.BLOCK_MASKS
    assert "fixed 0.5 blocks" not in by_name
    seed = config.seeds[0]
    block_spec, twin_spec = (vision.method_spec(config, by_name[n], seed)
                             for n in ("fixed 0.75 blocks", "fixed 0.75"))
    assert runs.group_key(block_spec) == runs.group_key(twin_spec)  # one ensemble, each member its own masks
    assert runs.result_path(block_spec) != runs.result_path(twin_spec)  # but two runs
    assert block_spec.evaluation["bn_lp_epochs"] == 0 and block_spec.evaluation["ft_epochs"] == 0
    assert twin_spec.evaluation["bn_lp_epochs"] == 2
    every = {m.name for m in vision.methods(vision.Config(ablation_blocks=True))}
    assert {"fixed 0.5 blocks", "fixed 0.75 blocks"} <= every
    with pytest.raises(ValueError, match=r"block_fixed_ratios=\[0.6\]"):
        vision.Config(ablation_blocks=True, block_fixed_ratios=(0.6,))


def test_block_ablation_table_pairs_by_seed_and_chooses_the_best_fixed_on_validation():
    rng = np.random.default_rng(0)
    rows = []
    base = {"fixed 0.5": 0.70, "fixed 0.75": 0.72, "R²MAE U[0.5,0.9]": 0.74}
    shift = {"fixed 0.5": -0.02, "fixed 0.75": -0.03, "R²MAE U[0.5,0.9]": 0.02}
    for seed in range(4):
        noise = rng.normal(0, 0.01)
        for name, acc in base.items():
            kind, group = ("fixed", "fixed") if name.startswith("fixed") else ("r2mae", "r2mae")
            val = acc + (0.05 if name == "fixed 0.5" else 0.0)  # validation prefers 0.5 with random positions
            rows.append({"method": name, "group": group, "kind": kind, "seed": seed, "lp_test": acc + noise,
                         "lp_val": val})
            rows.append({"method": f"{name} blocks", "group": "blocks", "kind": kind, "seed": seed,
                         "lp_test": acc + shift[name] + noise, "lp_val": acc + shift[name]})
    table = vision_claims.block_ablation(pd.DataFrame(rows))
    pairs = table[table["comparison"] == "blocks − random"].set_index("b")
    assert pairs.loc["fixed 0.75", "mean"] == pytest.approx(-0.03) and pairs.loc["fixed 0.75", "n"] == 4
    best = table[table["comparison"] == "R²MAE − best fixed"].set_index("positions")
    assert best.loc["random", "b"] == "fixed 0.5"  # chosen on validation, not on test (where 0.75 is better)
    assert best.loc["blocks", "b"] == "fixed 0.75 blocks" and best.loc["blocks", "mean"] == pytest.approx(0.07)
    assert best.loc["random", "mean"] == pytest.approx(0.04) and np.isfinite(best.loc["blocks", "ci_low"])
    assert vision_claims.block_ablation(pd.DataFrame(rows)[lambda d: d["group"] != "blocks"]).empty


@pytest.mark.parametrize("section", [language, dna])
def test_masked_diffusion_is_a_method_trained_with_the_diffusion_step(section):
    config = section.Config()
    method = next(m for m in config.methods() if m.group == "diffusion")
    assert runs.is_masked_diffusion(method) and method.sampler == {"kind": "masked_diffusion", "eps": 1e-3,
                                                                   "per": "sample"}
    step = section.step_for(method) if section is language else section.step_for(method, 4)
    assert step.diffusion and not step.curriculum
    r2 = next(m for m in config.methods() if m.group == "r2mae")
    plain = section.step_for(r2) if section is language else section.step_for(r2, 4)
    assert not plain.diffusion
    first = config.seeds()[0]
    specs = {s.method.name: s for s in section.plan(config) if s.size == config.main_size and s.seed == first}
    assert runs.group_key(specs[method.name]) != runs.group_key(specs[r2.name])  # its own ensemble (its own step)
    assert specs[method.name].evaluation == specs[r2.name].evaluation  # evaluated like the other methods
