"""05_single_cell: the AnnData API (scanpy conventions, input checks), gene-level models, determinism, CV without
leakage, the best-fixed selection on validation folds and the claim rules. Synthetic data only, tiny sizes."""

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from r2mae_core import evaluate, masking, single_cell
from r2mae_core.experiments import single_cell as exp
from r2mae_core.experiments import single_cell_claims as sc_claims
from r2mae_core.models import build_model

FAST = dict(steps=4, batch_size=16, model_kwargs={"width": 16, "latent": 4})


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))


def _counts(n=40, g=20, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(1.0, 2.0, size=(1, g)), size=(n, g)).astype(np.float32)
    counts[:, 0] += 1  # no empty cell
    counts[0] += 1  # no empty gene
    return counts


def _adata(n=40, g=20, seed=0, sparse=False):
    counts = _counts(n, g, seed)
    x = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    obs = pd.DataFrame({"cell_type": pd.Categorical(np.arange(n) % 3)}, index=[f"c{i}" for i in range(n)])
    return anndata.AnnData(sp.csr_matrix(x) if sparse else x, obs=obs, layers={"counts": counts})


# ---------------------------------------------------------------------------------------------- API conventions
def test_pretrain_embedding_in_place_and_copy_follow_scanpy():
    adata = _adata(sparse=True)
    before = adata.X.copy()
    out = single_cell.pretrain_embedding(adata, copy=True, key_added="X_test", **FAST)
    assert isinstance(out, anndata.AnnData) and out is not adata
    assert out.obsm["X_test"].shape == (adata.n_obs, 4) and "X_test" not in adata.obsm
    assert out.uns["X_test"]["params"]["model"] == "gene_mlp"
    assert (adata.X != before).nnz == 0  # the input is untouched
    assert single_cell.pretrain_embedding(adata, **FAST) is None  # in place, returns None
    assert adata.obsm["X_r2mae"].shape == (adata.n_obs, 4)
    np.testing.assert_array_equal(adata.obsm["X_r2mae"], out.obsm["X_test"])  # same options -> same numbers


def test_options_are_keyword_only_and_counts_layer_is_normalised():
    adata = _adata()
    with pytest.raises(TypeError):
        single_cell.pretrain_embedding(adata, "mlp")
    single_cell.pretrain_embedding(adata, layer="counts", input="counts", key_added="X_counts", **FAST)
    assert np.isfinite(adata.obsm["X_counts"]).all()


def test_transformer_through_the_api():
    adata = _adata(g=12)
    single_cell.pretrain_embedding(adata, model="transformer", steps=3, batch_size=8,
                                   model_kwargs={"dim": 8, "depth": 1, "heads": 2}, sampler=0.5)
    assert adata.obsm["X_r2mae"].shape == (adata.n_obs, 8)


@pytest.mark.parametrize("mutate,kwargs,match", [
    (lambda a: a.X.__setitem__((0, 0), np.nan), {}, "non-finite"),
    (lambda a: a.X.__setitem__((1, 2), np.inf), {}, "non-finite"),
    (lambda a: a.X.__setitem__(slice(2, 3), 0.0), {}, "cells with no expressed gene"),
    (lambda a: a.X.__setitem__((slice(None), 5), 0.0), {}, "genes expressed in no cell"),
    (lambda a: a.X.__setitem__((0, 0), -1.0), {}, "negative values"),
    (lambda a: setattr(a, "X", a.layers["counts"].copy()), {}, "looks like raw counts"),
    (lambda a: None, {"input": "counts"}, "non-integer values"),
    (lambda a: None, {"input": "tpm"}, "input='tpm' is not allowed"),
    (lambda a: None, {"layer": "nope"}, "layer='nope' is not allowed"),
    (lambda a: None, {"model": "resnet"}, "model='resnet' is not allowed"),
    (lambda a: None, {"sampler": {"kind": "r2mae", "low": 0.9, "high": 0.1}}, "low=0.9 must be < high"),
    (lambda a: None, {"key_added": ""}, "key_added='' is not allowed"),
])
def test_bad_inputs_fail_with_one_line(mutate, kwargs, match):
    adata = _adata()
    mutate(adata)
    with pytest.raises(ValueError, match=match) as err:
        single_cell.pretrain_embedding(adata, **{**FAST, **kwargs})
    assert "\n" not in str(err.value)


def test_not_an_anndata_is_an_error():
    with pytest.raises(ValueError, match="use an anndata.AnnData"):
        single_cell.pretrain_embedding(np.ones((4, 4)), **FAST)


# ---------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_numbers_other_seed_other_numbers():
    x = single_cell.expression_matrix(_adata())
    runs = [single_cell.fit_encoder(x, sampler={"kind": "r2mae", "low": 0.1, "high": 0.9}, seed=s, cache=False,
                                    **FAST) for s in (3, 3, 4)]
    z = [single_cell.embed(net, x) for net, _ in runs]
    np.testing.assert_array_equal(z[0], z[1])
    pd.testing.assert_frame_equal(runs[0][1].drop(columns="seconds"), runs[1][1].drop(columns="seconds"))
    assert not np.allclose(z[0], z[2])
    m0 = single_cell.reconstruction_metrics(runs[0][0], x, 0.5, seed=1)
    assert m0 == single_cell.reconstruction_metrics(runs[1][0], x, 0.5, seed=1)
    assert m0["mse"] > 0 and -1 <= m0["pearson"] <= 1


def test_cached_model_is_reused():
    x = single_cell.expression_matrix(_adata())
    net_a, hist_a = single_cell.fit_encoder(x, seed=1, **FAST)
    net_b, hist_b = single_cell.fit_encoder(x, seed=1, **FAST)  # from the cache
    pd.testing.assert_frame_equal(hist_a, hist_b)
    np.testing.assert_array_equal(single_cell.embed(net_a, x), single_cell.embed(net_b, x))


# ---------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("family,sizes", [("gene_mlp", {"width": 16, "latent": 4}),
                                          ("gene_transformer", {"dim": 8, "depth": 1, "heads": 2}),
                                          ("gene_transformer", {"dim": 8, "depth": 1, "heads": 2, "pool": "cls"})])
def test_gene_models_see_no_masked_value_and_score_masked_genes_only(family, sizes):
    net = build_model(family, seed=0, n_genes=10, **sizes)
    x = torch.rand(6, 10, generator=torch.Generator().manual_seed(0))
    subset = masking.random_subset_mask(torch.full((6,), 0.4), 10, generator=torch.Generator().manual_seed(1))
    out = net(x, subset.mask)
    assert out.pred.shape == (6, 10, 1) and out.mask.shape == (6, 10)
    manual = ((out.pred[..., 0] - x) ** 2)[subset.mask].mean()
    torch.testing.assert_close(out.loss, manual)
    x2 = torch.where(subset.mask, torch.rand(6, 10), x)  # change only the hidden values
    torch.testing.assert_close(net(x2, subset.mask).pred, out.pred)  # the model cannot see them
    assert net.encode(x).shape == (6, net.feature_dim)
    with pytest.raises(ValueError, match="use \\(cells, 10\\)"):
        net.encode(torch.rand(6, 9))


def test_model_config_errors():
    with pytest.raises(ValueError, match="heads=3 is not allowed"):
        build_model("gene_transformer", n_genes=8, dim=8, heads=3)
    with pytest.raises(ValueError, match="pool='max' is not allowed"):
        build_model("gene_transformer", n_genes=8, dim=8, heads=2, pool="max")
    with pytest.raises(ValueError, match="latent=0 is not allowed"):
        build_model("gene_mlp", n_genes=8, latent=0)


# ---------------------------------------------------------------------------------------------- CV, no leakage
def test_cv_splits_are_disjoint_stratified_and_cover_every_cell_once_per_repeat():
    y = np.repeat(np.arange(3), [10, 20, 30])
    splits = exp.cv_splits(y, folds=5, repeats=2, seed=0)
    assert len(splits) == 10
    for repeat in range(2):
        tests = np.concatenate([te for r, _, _, te in splits if r == repeat])
        assert sorted(tests) == list(range(len(y)))
    for _, _, tr, te in splits:
        assert not set(tr) & set(te)
        assert np.array_equal(np.bincount(y[te]), [2, 4, 6])  # stratified


def test_annotation_probe_uses_no_test_information():
    """The fold probe (evaluate.linear_probe as annotation_cv calls it) chooses C on the training fold only."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    z = rng.normal(size=(90, 5)) + y[:, None]
    tr, te = np.arange(0, 90, 2), np.arange(1, 90, 2)
    kw = dict(Cs=(0.01, 0.1, 1.0, 10.0), val_fraction=0.25, seed=0, select="macro_f1", metrics=("acc", "macro_f1"))
    res = evaluate.linear_probe(z[tr], y[tr], z[te], y[te], **kw)
    # another test set (features changed wildly, labels scrambled): the choice of C and its validation score stay
    z_te = z[te].copy()
    z_te[1:] = rng.normal(size=z_te[1:].shape) * 100
    res2 = evaluate.linear_probe(z[tr], y[tr], z_te, rng.permutation(y[te]), **kw)
    assert (res.C, res.scores["val_macro_f1"]) == (res2.C, res2.scores["val_macro_f1"])
    assert res.scores["test_acc"] > 0.8


def _blobs(seed: int = 0, n_per: int = 40, k: int = 4):
    """Well-separated Gaussian clusters in 6 dimensions and their labels."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per)
    return (rng.normal(size=(len(y), 6)) * 0.3 + 4.0 * np.eye(k, 6)[y]).astype(np.float32), y


def test_clustering_halves_are_a_seeded_partition():
    first, second = exp.clustering_halves(61, seed=3)
    assert (len(first), len(second)) == (30, 31)
    assert sorted(np.concatenate([first, second])) == list(range(61))
    assert np.array_equal(first, exp.clustering_halves(61, seed=3)[0])
    assert not np.array_equal(first, exp.clustering_halves(61, seed=4)[0])


def test_leiden_resolution_is_chosen_on_the_other_half_only():
    """Each half is scored at the resolution the *other* half's labels chose: scrambling the labels of half 1
    leaves the resolution half 1 is scored at unchanged (and moves the one half 2 is scored at, chosen on them)."""
    z, y = _blobs()
    kw = dict(resolutions=(0.5, 8.0), n_neighbors=10, seed=5, method="gauss")  # 4 clusters; about 30
    clean = exp.clustering_scores(z, y, **kw)
    assert clean["nmi"] > 0.9 and clean["ari"] > 0.9 and clean["nmi_optimal"] > 0.9
    assert clean["resolution_half1"] == clean["resolution_half2"] == clean["resolution_optimal"] == 0.5
    assert clean["n_clusters_optimal"] == 4 and clean["silhouette"] > 0.5
    first, _ = exp.clustering_halves(len(y), seed=5)
    scrambled = y.copy()
    scrambled[first] = np.random.default_rng(0).integers(0, 40, size=len(first))  # many labels: favour 8.0
    noisy = exp.clustering_scores(z, scrambled, **kw)
    assert noisy["resolution_half1"] == clean["resolution_half1"]
    assert noisy["resolution_half2"] != clean["resolution_half2"]
    assert noisy["nmi"] < clean["nmi"]


def test_best_fixed_is_chosen_on_validation_never_on_test():
    rows = []
    for seed in range(3):
        rows.append({"dataset": "d", "model": "mlp", "method": "fixed 0.15", "group": "fixed", "ratio": 0.15,
                     "seed": seed, "repeat": 0, "fold": 0, "val_f1": 0.9, "test_f1": 0.1, "test_acc": 0.1})
        rows.append({"dataset": "d", "model": "mlp", "method": "fixed 0.5", "group": "fixed", "ratio": 0.5,
                     "seed": seed, "repeat": 0, "fold": 0, "val_f1": 0.2, "test_f1": 0.9, "test_acc": 0.9})
    out = sc_claims.with_best_fixed(pd.DataFrame(rows))
    best = out[out["method"] == sc_claims.BEST_FIXED]
    assert len(best) == 3 and (best["chosen"] == "fixed 0.15").all() and (best["test_f1"] == 0.1).all()


def _sweep(val: dict[float, float], test: dict[float, float], n_seeds: int = 3) -> dict:
    """Annotation and clustering rows of a fixed-ratio sweep with the given validation / test macro-F1."""
    ann, clu = [], []
    for seed in range(n_seeds):
        for ratio in val:
            method = f"fixed {ratio:g}"
            for fold in range(2):
                ann.append({"dataset": "d", "model": "mlp", "method": method, "group": "fixed", "ratio": ratio,
                            "seed": seed, "repeat": 0, "fold": fold, "val_f1": val[ratio] + 0.01 * seed,
                            "test_f1": test[ratio] + 0.01 * seed, "test_acc": test[ratio]})
            clu.append({"dataset": "d", "model": "mlp", "method": method, "group": "fixed", "seed": seed,
                        "nmi": test[ratio], "ari": 0.0, "silhouette": 0.0})
    return {"annotation": pd.DataFrame(ann), "clustering": pd.DataFrame(clu)}


def test_best_ratio_table_chooses_on_validation_never_on_test():
    val = {0.15: 0.8, 0.5: 0.6, 0.9: 0.3}
    table = sc_claims.best_ratio_table(_sweep(val, {0.15: 0.2, 0.5: 0.5, 0.9: 0.95})).iloc[0]
    assert table["best_ratio_val"] == 0.15 and table["val_f1"] == pytest.approx(0.81)
    assert table["test_f1"] == pytest.approx(0.21) and table["ci_low"] < 0.21 < table["ci_high"]
    assert table["nmi"] == pytest.approx(0.2) and table["n_seeds"] == 3
    assert table["fold_pick_mode"] == "fixed 0.15" and table["fold_pick_share"] == 1.0
    # any test scores give the same choice; a validation tie goes to the smaller ratio
    other = sc_claims.best_ratio_table(_sweep(val, {0.15: 0.9, 0.5: 0.1, 0.9: 0.0})).iloc[0]
    assert other["best_ratio_val"] == 0.15
    tie = sc_claims.best_ratio_table(_sweep({0.5: 0.7, 0.9: 0.7}, {0.5: 0.1, 0.9: 0.9})).iloc[0]
    assert tie["best_ratio_val"] == 0.5


# ---------------------------------------------------------------------------------------------- claims
def _results(delta: float, n_seeds: int = 4) -> dict:
    ann, clu = [], []
    rng = np.random.default_rng(0)
    for seed in range(n_seeds):
        base = 0.5 + 0.01 * rng.normal()
        for method, group, ratio, shift in [("fixed 0.15", "fixed", 0.15, 0.0), ("fixed 0.5", "fixed", 0.5, -0.01),
                                            ("scGPT choice", "choice", np.nan, 0.0),
                                            ("R²MAE U[0.1,0.9]", "r2mae", np.nan, delta),
                                            ("PCA", "reference", np.nan, 0.0)]:
            for fold in range(2):
                ann.append({"dataset": "pbmc", "model": "mlp", "method": method, "group": group, "ratio": ratio,
                            "seed": seed, "repeat": 0, "fold": fold, "val_f1": base + shift, "test_f1": base + shift,
                            "test_acc": base + shift})
            clu.append({"dataset": "pbmc", "model": "mlp", "method": method, "group": group, "seed": seed,
                        "nmi": base + shift, "ari": base + shift, "silhouette": 0.1})
    return {"annotation": pd.DataFrame(ann), "clustering": pd.DataFrame(clu),
            "reconstruction": pd.DataFrame(columns=["dataset", "model", "method", "group", "mse"])}


@pytest.mark.parametrize("delta,verdict", [(0.05, "supported"), (-0.05, "contradicted")])
def test_claim_rules_follow_the_paired_interval(delta, verdict):
    config = exp.Config(n_seeds=4)
    claims = sc_claims.claims(_results(delta), config, "smoke")
    assert [c.id for c in claims] == ["S1", "S2", "S3", "S3-ARI", "S4"]
    for claim in claims:
        assert claim.verdict == verdict and claim.n_seeds == 4
        assert claim.ci_low <= claim.value <= claim.ci_high
    key = sc_claims.key_numbers(_results(delta), claims)
    assert key["S1_value"] == pytest.approx(delta, abs=1e-3)
    s4 = claims[-1]  # against the sweep's fixed 0.5, U[0.1, 0.9]'s ratio of equal population effect
    assert s4.value == pytest.approx(delta + 0.01) and "m_eq = 0.500" in s4.claim and "sweep's own run" in s4.claim
    table = sc_claims.equal_effect_table(_results(delta), config).set_index("role")
    assert list(table.index) == ["R²MAE", "best fixed (val)", "equal-effect fixed"]
    control = table.loc["equal-effect fixed"]
    assert control["method"] == "fixed 0.5" and control["note"].startswith("the sweep's fixed 0.5")
    assert control["diff"] == pytest.approx(s4.value) and control["diff_low"] == pytest.approx(s4.ci_low)
    assert table.loc["best fixed (val)", "diff"] == pytest.approx(claims[0].value)


def test_an_off_grid_equal_effect_control_is_trained_once_per_model():
    config = exp.Config(fixed_ratios=[0.15, 0.5], r2mae_low=0.3, r2mae_high=0.9)
    recipes = exp.methods(config, "mlp")
    control = exp.equal_effect_control(config, "mlp")
    assert control.group == "equivalent" and control.ratio == pytest.approx(0.571429, abs=1e-6)
    assert [m.name for m in recipes].count(control.name) == 1 and recipes[-3] == control  # before the references
    symmetric = exp.Config(fixed_ratios=[0.15, 0.5])
    assert exp.equal_effect_control(symmetric, "transformer").name == "fixed 0.5"  # the sweep's own run
    assert "equivalent" not in {m.group for m in exp.methods(symmetric, "mlp")}


@pytest.mark.parametrize("kwargs,match", [
    ({"r2mae_low": 0.8, "r2mae_high": 0.2}, "low=0.8 must be < high=0.2"),
    ({"datasets": ["pbmc3k"]}, "datasets='pbmc3k' is not allowed"),
    ({"models": ["cnn"]}, "models='cnn' is not allowed"),
    ({"fixed_ratios": [0.0, 0.5]}, "fixed_ratios"),
    ({"n_seeds": 1}, "n_seeds=1 is not allowed"),
    ({"holdout": 1.5}, "holdout=1.5 is not allowed"),
])
def test_config_errors_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        exp.Config(**kwargs)


def test_config_methods_include_every_baseline():
    config = exp.Config(fixed_ratios=[0.15, 0.5], r2mae_low=0.2, r2mae_high=0.8)
    recipes = config.methods("mlp")
    assert [m.name for m in recipes] == ["fixed 0.15", "fixed 0.5", "scGPT choice", "scheduled 0.8→0.2",
                                         "R²MAE U[0.2,0.8]"]
    assert [m.group for m in recipes] == ["fixed", "fixed", "choice", "scheduled", "r2mae"]
    sched = recipes[3].sampler
    assert sched["start"] == 0.8 and sched["end"] == 0.2
    assert [(m.name, m.group) for m in exp.methods(config, "mlp")[-2:]] == [("PCA", "reference"),
                                                                           ("random init", "reference")]
    assert masking.make_sampler(recipes[2].sampler).values == (0.25, 0.5, 0.75)
    picked = exp.select_methods(config, "mlp", ["PCA", "r2mae", "fixed 0.5", "choice"])
    assert [m.name for m in picked] == ["PCA", "R²MAE U[0.2,0.8]", "fixed 0.5", "scGPT choice"]
    with pytest.raises(ValueError, match="method 'fixed' is not allowed"):
        exp.select_methods(config, "mlp", ["fixed"])  # two methods of group fixed: name one


def _kill_at(monkeypatch, sampler, stop: float) -> None:
    """Make the sampler's class raise once a step's progress reaches ``stop`` (a run killed mid-way)."""
    cls = type(masking.make_sampler(sampler))
    inner = cls.sample

    def sample(self, batch_size, *, generator, progress=0.0):
        if progress >= stop:
            raise KeyboardInterrupt("killed")
        return inner(self, batch_size, generator=generator, progress=progress)

    monkeypatch.setattr(cls, "sample", sample)


@pytest.mark.parametrize("together", [False, True], ids=["one", "ensemble"])
def test_a_killed_gene_model_resumes_from_its_checkpoint(tmp_path, monkeypatch, together):
    """Checkpoints every 4 of 12 steps; killed at step 10, a gene model (alone, or two as one ensemble) resumes
    from step 8 and ends with the uninterrupted weights and history exactly (CPU)."""
    x = single_cell.check_expression(_adata(n=48).X)
    spec = {"kind": "r2mae", "low": 0.2, "high": 0.8}
    common = {"model_kwargs": {"width": 16, "latent": 4}, "steps": 12, "batch_size": 16, "checkpoint_every": 4}
    ckpt = tmp_path / "model.pt"

    def fit(path):
        if together:
            return single_cell.fit_encoders(x, samplers=[spec, spec], seeds=[3, 4], checkpoint_path=path, **common)
        return [single_cell.fit_encoder(x, sampler=spec, seed=3, cache=False, checkpoint_path=path, **common)]

    whole = fit(None)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        _kill_at(patch, spec, 10 / 12)
        fit(ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == 8
    resumed = fit(ckpt)
    for (net_a, hist_a), (net_b, hist_b) in zip(whole, resumed, strict=True):
        cols = ["step", "loss", "ratio_mean", "lr"]
        assert hist_a[cols].equals(hist_b[cols])
        sa, sb = net_a.state_dict(), net_b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_arrays_record_follows_the_prepared_dataset_and_stands_in_for_it_where_only_it_is_carried(
        tmp_path, monkeypatch):
    """Where the dataset is prepared, a stale arrays record is rewritten from it; where only the record was
    carried (the GPU machine: no prepared dataset, no scanpy), the record is what a unit reads."""
    path = tmp_path / "arrays.npz"
    monkeypatch.setattr(exp, "arrays_path", lambda *args: path)
    monkeypatch.setattr(exp, "_ARRAYS_MEMO", {})
    fresh = exp.load_dataset("pbmc68k_reduced", transformer_genes=16)
    stale = {"x": np.zeros((2, 2), np.float32), "y": np.zeros(2, np.int64), "labels": ["a"],
             "tf_genes": np.arange(2), "checksum": "stale"}
    exp.save_record(path, stale)
    assert exp.load_arrays("pbmc68k_reduced", transformer_genes=16)["checksum"] == fresh["checksum"] != "stale"
    assert exp.load_record(path)["checksum"] == fresh["checksum"]
    exp.save_record(path, stale)
    monkeypatch.setattr(exp, "_ARRAYS_MEMO", {})
    monkeypatch.setattr(exp.registry, "is_prepared", lambda name: False)
    assert exp.load_arrays("pbmc68k_reduced", transformer_genes=16)["checksum"] == "stale"
