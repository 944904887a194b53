"""06_spectral_clustering: config checks, cache sharing with 02, the claim rules on synthetic tables (every verdict
branch without training; the notebook's smoke run covers training) and the raw-feature LP of Table 1."""

import math

import numpy as np
import pandas as pd
import pytest

from r2mae_core.evaluate import bn_linear_probe
from r2mae_core.experiments import spectral_claims, spectral_clustering, vision
from r2mae_core.experiments.image_runs import SIZES, eval_spec
from r2mae_core.notebook_params import load_profile_parameters, read_parameters

Config = spectral_clustering.Config


@pytest.mark.parametrize("kwargs, match", [
    ({"ratios": [0.5]}, "ratios"),
    ({"ratios": [0.7, 0.5]}, "ratios"),
    ({"ratios": [0.5, 1.0]}, "ratios"),
    ({"ratio_seeds": 3, "n_seeds": 2}, "ratio_seeds"),
    ({"probe_ratio": 0.0}, "probe_ratio"),
    ({"head_counts": [4, 2]}, "head_counts"),
    ({"head_counts": [3, 6]}, "heads_dim=64"),
    ({"heads_dim": 90, "head_counts": [3, 6]}, "heads_dim=90"),
    ({"seg_ks": [1, 2]}, "seg_ks"),
    ({"seg_ks": [2, 50]}, "seg_ks"),
    ({"n_show": 20, "n_seg_images": 16}, "n_show"),
    ({"vit_size": "XL"}, "vit_size"),
    ({"n_seeds": 0}, "n_seeds"),
    ({"steps": 0}, "steps"),
])
def test_config_rejects_bad_values_with_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        Config(**kwargs)
    assert "\n" not in str(err.value)


def test_notebook_parameters_are_the_config_fields():
    declared = set(read_parameters("06_spectral_clustering")) - {"profile", "device", "compile_model", "ensemble_size"}
    fields = set(Config.__dataclass_fields__) - {"dataset", "n_val", "vit_pool", "knn_k"}
    assert declared == fields


def test_shared_runs_train_once_and_heads_runs_share_the_probe_runs():
    config = Config(probe_ratio=0.8)
    ratio0 = spectral_clustering.ratio_specs(config)
    probe = spectral_clustering.probe_specs(config)
    same = next(s for s in ratio0 if s.method.ratio == 0.8)
    assert probe[0].training_identity() == same.training_identity()  # one set of weights
    assert eval_spec(same) is None and eval_spec(probe[0]) is not None  # ratio runs are analysed, probe runs scored
    assert set(same.evaluation["analyses"]) == {"components"}
    assert set(probe[0].evaluation["analyses"]) == {"table1", "segmentation"}
    heads = spectral_clustering.heads_specs(config)
    assert [s.identity() for s in heads[4]] == [s.identity() for s in probe]  # the preset's 4 heads
    assert all(s.model["heads"] == 2 and s.model["dim"] == SIZES["vit"]["S"]["dim"] for s in heads[2])
    wide = spectral_clustering.heads_specs(Config(head_counts=[3, 6], heads_dim=96))
    assert {s.model["dim"] for v in wide.values() for s in v} == {96}
    assert wide[3][0].model["heads"] == 3 and wide[6][0].model["heads"] == 6


def test_full_profile_trains_02_full_runs_with_02_full_probes():
    """Every ViT-S run of 06 full trains as a run of 02 full's method comparison (one checkpoint where both run on
    one machine) and is probed with 02's evaluation; 06 adds its analyses."""
    p06 = load_profile_parameters("full", "06_spectral_clustering")
    p02 = load_profile_parameters("full", "02_vision")
    keep06 = {k: v for k, v in p06.items() if k in Config.__dataclass_fields__}
    keep02 = {k: v for k, v in p02.items() if k in vision.Config.__dataclass_fields__}
    c06, c02 = Config(**keep06), vision.Config(**keep02)
    assert c06.evaluation() == c02.evaluation()
    runs02 = vision.method_specs(c02)
    weights02 = {repr(s.training_identity()) for s in runs02}
    for spec in spectral_clustering.ratio_specs(c06):
        assert repr(spec.training_identity()) in weights02, spec.label()
    probes02 = {repr({**s.evaluation, "analyses": None}) for s in runs02}
    for spec in spectral_clustering.probe_specs(c06):
        assert repr({**spec.evaluation, "analyses": None}) in probes02, spec.label()


def test_slopes_over_components_and_ratios():
    assert spectral_clustering._slope(np.array([0.1, 0.2, 0.3, np.nan, 0.5])) == pytest.approx(0.1)
    assert math.isnan(spectral_clustering._slope(np.array([0.1, np.nan, np.nan])))
    wide = pd.DataFrame({0.5: [0.1, 0.2], 0.7: [0.3, 0.2], 0.9: [0.5, 0.2]}, index=[0, 1])
    np.testing.assert_allclose(spectral_claims._slope_over_ratios(wide), [1.0, 0.0], atol=1e-12)


def _results(*, slope_growth=0.1, lp=(0.6, 0.7, 0.8), heads_gain=0.02, holds=True, seg_gain=0.1, n_img=12,
             seeds=(11, 12, 13)) -> dict:
    """Synthetic tables in the shape of ``spectral_clustering.run``'s output."""
    rng = np.random.default_rng(0)
    ratios = [0.5, 0.7, 0.9]
    comps, imgs = [], []
    for r in ratios:
        for i in range(n_img):
            slope = 0.2 + slope_growth * (r - 0.5) * 10 + 0.01 * rng.standard_normal()
            d = slope * np.arange(5) + 0.05
            comps += [{"image": i, "component": c + 1, "distance": d[c], "ratio": r, "seed": 1} for c in range(5)]
            imgs.append({"image": i, "slope": slope, "ratio": r, "seed": 1, "lhs": 1.0, "rhs": 2.0,
                         "bound_ratio": 0.5})
    batches = pd.DataFrame({"batch": [0, 1], "lhs": [1.0, 3.0 if not holds else 1.0], "rhs": [2.0, 2.0],
                            "bound_ratio": [0.5, 1.5 if not holds else 0.5], "holds": [True, holds],
                            "ratio": [0.5, 0.9], "seed": [1, 1]})
    noise = 0.005 * rng.standard_normal(len(seeds))
    probes = pd.DataFrame({"seed": seeds, "lp_raw_test": lp[0] + noise, "bn_lp_test": lp[1] + noise,
                           "partial_ft_test": lp[2] + noise, "ft_test": 0.85 + noise, "lp_test": 0.7 + noise})
    heads = pd.concat([probes.assign(heads=4, lp_raw_test=probes["lp_raw_test"] + heads_gain,
                                     ft_test=probes["ft_test"] + heads_gain), probes.assign(heads=2)])
    seg = []
    for s in seeds:  # one segmentation model per probe seed
        for i in range(n_img):
            for k in (2, 3):
                e = 0.01 * rng.standard_normal()
                seg += [{"seed": s, "image": i, "k": k, "features": "MAE", "iou": 0.7 + seg_gain + e,
                         "nmi": 0.5 + seg_gain + e},
                        {"seed": s, "image": i, "k": k, "features": "random init", "iou": 0.7, "nmi": 0.5},
                        {"seed": s, "image": i, "k": k, "features": "pixels", "iou": 0.95, "nmi": 0.9}]
            seg.append({"seed": s, "image": i, "k": 1, "features": "one cluster", "iou": 0.4, "nmi": np.nan})
    return {"components": pd.DataFrame(comps), "images": pd.DataFrame(imgs), "batches": batches, "probes": probes,
            "heads": heads, "segmentation": pd.DataFrame(seg), "width": 64}


def _verdicts(results, **kw) -> dict[str, str]:
    config = Config(ratios=[0.5, 0.7, 0.9], n_seeds=3, seg_ks=[2, 3], **kw)
    return {c.id: c.verdict for c in spectral_claims.claims(results, config, "smoke")}


def test_claims_supported_when_the_paper_holds():
    v = _verdicts(_results())
    for cid in ("T1", "T1-0.5", "T1-0.9", "T2", "T3", "T3a", "T3b", "T4", "T4a", "T4b", "T5", "T5-nmi", "T6"):
        assert v[cid] == "supported", cid


def test_claims_contradicted_when_the_data_say_otherwise():
    v = _verdicts(_results(slope_growth=-0.1, lp=(0.7, 0.6, 0.8), heads_gain=-0.03, holds=False, seg_gain=-0.1))
    for cid in ("T2", "T3", "T3a", "T4", "T4a", "T4b", "T5", "T5-nmi", "T6"):
        assert v[cid] == "contradicted", cid
    assert v["T3b"] == "supported"  # partial FT still beats BN+LP: only the first step of the ordering fails


def test_claims_inconclusive_on_ties_and_a_single_seed():
    v = _verdicts(_results(lp=(0.7, 0.7, 0.7), heads_gain=0.0, seg_gain=0.0))
    assert v["T3"] == v["T4"] == v["T6"] == "inconclusive"
    one = _results(seeds=(11,))
    v1 = _verdicts(one)
    assert v1["T3"] == v1["T4a"] == v1["T6"] == v1["T5-nmi"] == "inconclusive"  # one seed: no interval


def test_summaries_and_key_numbers_are_tidy():
    res = _results()
    comp = spectral_claims.component_summary(res["components"])
    assert set(comp.columns) >= {"ratio", "component", "distance", "distance_low", "distance_high"}
    assert len(comp) == 3 * 5
    probes = spectral_claims.probe_table(res["probes"])
    assert list(probes["probe"][:3]) == ["LP", "BN+LP", "partial FT"]
    heads = spectral_claims.heads_table(res["heads"])
    assert list(heads["heads"]) == [2, 4] and {"lp_raw_test", "ft_test"} <= set(heads.columns)
    bound = spectral_claims.bound_summary(res["batches"])
    assert bound["holds"].sum() == 2
    config = Config(ratios=[0.5, 0.7, 0.9], n_seeds=3, seg_ks=[2, 3])
    claims = spectral_claims.claims(res, config, "smoke")
    key = spectral_claims.key_numbers(res, claims)
    assert key["verdict[T1]"] == "supported" and "acc[partial FT]" in key and "iou[MAE, k=2]" in key
    assert not any("seconds" in k for k in key)


def test_raw_linear_probe_differs_from_bn_lp_only_by_the_batchnorm():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    x[:, 0] += 2.0 * y  # the signal sits in a feature of small scale next to large-scale noise features
    x[:, 1:] *= 300.0
    a = bn_linear_probe(x[:400], y[:400], x[400:], y[400:], epochs=20, lr=1e-2, seed=1, batch_norm=False)
    b = bn_linear_probe(x[:400], y[:400], x[400:], y[400:], epochs=20, lr=1e-2, seed=1, batch_norm=False)
    bn = bn_linear_probe(x[:400], y[:400], x[400:], y[400:], epochs=20, lr=1e-2, seed=1)
    assert a == b and a.method == "lp_raw" and bn.method == "bn_lp"
    assert bn.test_acc > a.test_acc + 0.1  # normalisation is what BN+LP adds
