"""Bad input to public constructors, functions and commands: one clear line naming the parameter, never a silent
result.

Each row of :data:`CASES` builds something with one wrong value; the error must be a ``ValueError`` whose
single-line message contains the parameter's name (or what is wrong with it), usually with the value. Each row of
:data:`COMMANDS` runs a command line with one wrong argument: it must exit non-zero with one line naming
the bad value as the last line of stderr, no traceback, and nothing written. A bool is never accepted where a
number is expected (``True`` is an ``int`` in Python, but never a count, a rate or a ratio here), and a bool field
accepts only ``True`` or ``False``.
"""

import math
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from r2mae_core import masking, models, notebook_params, paths, records, theory
from r2mae_core.experiments import (
    dna,
    image_runs,
    language,
    linear_theory,
    masking_tour,
    single_cell,
    spectral_clustering,
    vision,
)
from r2mae_core.theory import covariances, simulate

REPO = Path(__file__).resolve().parents[1]


def _law(ratios, weights):
    return theory.RatioLaw(np.asarray(ratios, float), np.asarray(weights, float), "custom")


def _custom_covariance(matrix):
    return covariances.Covariance("custom", np.asarray(matrix, float), False, {}, (0,))


def _ridge(**change):
    args = {"mu": np.ones((1, 4)), "c": np.ones((1, 4)), "pi": np.ones(1), "n_eff": 10.0, "ridge": 0.0,
            "y_var": 1.0, "test_b": np.ones(4), "test_c": np.ones(4)}
    return theory.ridge_equivalent(**{**args, **change})


def _expression(x):
    from r2mae_core import single_cell as sc

    return sc.check_expression(x)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _subset(ratios=-0.1, n_tokens=10, **kw):
    return masking.random_subset_mask(ratios, n_tokens, generator=kw.pop("generator", _gen()), **kw)


def _bert(**change):
    args = {"tokens": torch.arange(12).reshape(2, 6) % 5, "mask": torch.ones(2, 6, dtype=torch.bool),
            "mask_token_id": 1, "vocab_size": 5, "generator": _gen()}
    args |= change
    return masking.bert_corruption(args.pop("tokens"), args.pop("mask"), **args)


def _sample(sampler=None, batch_size=4, **kw):
    return (sampler or masking.R2MAE(0.2, 0.8)).sample(batch_size, generator=kw.pop("generator", _gen()), **kw)


def _record_file(kind: str) -> Path:
    """A file in a fresh temp folder that is not a record: missing, text, or a zip without the record entry."""
    path = Path(tempfile.mkdtemp()) / "result.npz"
    if kind == "text":
        path.write_text("not a record\n")
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("values.npy", b"")
    return path


def _save(record):
    path = Path(tempfile.mkdtemp()) / "result.npz"
    try:
        records.save_record(path, record)
    except ValueError:
        assert not list(path.parent.iterdir()), "a refused record left a file behind"
        raise


_PARAMS = """\
    profile: str = "smoke"  # where results go
    steps: int = 3  # steps
    lr: float = 0.1  # learning rate
    """


def _profile_yaml(text: str | None, *, profile: str = "quick", notebook: str = "01_ok"):
    """:func:`load_profile_parameters` of a throw-away repo with one notebook and its quick YAML ``text``."""
    root = Path(tempfile.mkdtemp())
    for sub in ("notebooks", "parameters/quick", "parameters/full"):
        (root / sub).mkdir(parents=True)
    (root / "notebooks" / "01_ok.py").write_text(
        "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n"
        "#     name: python3\n# ---\n\n# %% tags=[\"parameters\"]\n" + textwrap.dedent(_PARAMS) + "\n# %%\nx = 1\n")
    if text is not None:
        (root / "parameters" / "quick" / "01_ok.yaml").write_text(text)
    with mock.patch.object(paths, "REPO_ROOT", root), mock.patch.object(notebook_params, "REPO_ROOT", root):
        return notebook_params.load_profile_parameters(profile, notebook)


def _ar1():
    return covariances.make_covariance("ar1", 20)


V, L, D, S = vision.Config, language.Config, dna.Config, single_cell.Config
C, T, M = spectral_clustering.Config, linear_theory.Config, masking_tour.Config


CASES = [
    # theory and covariances
    ("EvalSpec n_probe_train=-1", lambda: image_runs.EvalSpec(n_probe_train=-1), "n_probe_train"),
    ("EvalSpec n_probe_eval=-1", lambda: image_runs.EvalSpec(n_probe_eval=-1), "n_probe_eval"),
    ("EvalSpec knn_k=0", lambda: image_runs.EvalSpec(knn_k=0), "knn_k"),
    ("EvalSpec bn_lp_epochs=-3", lambda: image_runs.EvalSpec(bn_lp_epochs=-3), "bn_lp_epochs"),
    ("EvalSpec ft_epochs=1.5", lambda: image_runs.EvalSpec(ft_epochs=1.5), "ft_epochs"),
    ("EvalSpec test ratio 1.2", lambda: image_runs.EvalSpec(test_ratios=(1.2,)), "test_ratios"),
    ("02 umae_weight=-1", lambda: vision.Config(umae_weight=-1), "umae_weight"),
    ("02 umae_weight=inf", lambda: vision.Config(umae_weight=math.inf), "umae_weight"),
    ("02 ablation_intervals [['a','b']]", lambda: vision.Config(ablation_intervals=[["a", "b"]]),
     "ablation_intervals"),
    ("01 gammas ['one']", lambda: linear_theory.Config(gammas=["one"]), "gammas"),
    ("01 gammas [inf]", lambda: linear_theory.Config(gammas=[math.inf]), "gammas"),
    ("gamma_eff n=-5", lambda: theory.gamma_eff(100, -5, 0.5), "n=-5"),
    ("gamma_eff n=inf", lambda: theory.gamma_eff(100, math.inf, 0.5), "finite"),
    ("gamma_eff p=1", lambda: theory.gamma_eff(1, 10, 0.5), "p=1"),
    ("spiked strengths [inf]", lambda: covariances.make_covariance("spiked", 40, strengths=[math.inf]),
     "strengths"),
    ("Covariance not PSD", lambda: _custom_covariance([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),
    ("Covariance not symmetric", lambda: _custom_covariance([[1.0, 0.5], [0.1, 1.0]]), "symmetric"),
    ("Covariance NaN", lambda: _custom_covariance([[1.0, math.nan], [math.nan, 1.0]]), "finite"),
    ("RatioLaw weights [1.5, -0.5]", lambda: _law([0.3, 0.6], [1.5, -0.5]), "weights"),
    ("RatioLaw ratio 1.2", lambda: _law([0.3, 1.2], [0.5, 0.5]), "ratios"),
    ("RatioLaw weights sum 0.5", lambda: _law([0.3, 0.6], [0.25, 0.25]), "sum to 1"),
    ("ridge_equivalent n_eff=-10", lambda: _ridge(n_eff=-10.0), "n_eff"),
    ("ridge_equivalent negative eigenvalue", lambda: _ridge(mu=-np.ones((1, 4))), "mu"),
    ("ridge_equivalent pi [2]", lambda: _ridge(pi=np.array([2.0])), "pi"),
    ("ridge_equivalent ridge=-1", lambda: _ridge(ridge=-1.0), "ridge"),
    ("expression of dtype bool", lambda: _expression(np.ones((5, 4), bool)), "bool"),
    ("gaussian_ols_risk p=-3", lambda: theory.gaussian_ols_risk(10, -3, sigma2=1.0), "p=-3"),
    ("gaussian_ols_risk p=2.5", lambda: theory.gaussian_ols_risk(10, 2.5, sigma2=1.0), "p=2.5"),
    ("gaussian_ols_risk sigma2=-1", lambda: theory.gaussian_ols_risk(10, 3, sigma2=-1.0), "sigma2=-1.0"),
    ("gaussian_minnorm_risk n=-5", lambda: theory.gaussian_minnorm_risk(-5, 2, sigma2=1.0, signal=1.0), "n=-5"),
    ("gaussian_minnorm_risk signal=-1",
     lambda: theory.gaussian_minnorm_risk(5, 20, sigma2=1.0, signal=-1.0), "signal=-1.0"),
    ("isotropic_ridgeless_risk gamma=-1",
     lambda: theory.isotropic_ridgeless_risk(-1.0, sigma2=1.0, signal=1.0), "gamma=-1.0"),
    ("pretraining_risk of a bare matrix", lambda: theory.pretraining_risk(np.eye(5), 0.5, 10), "cov"),
    ("pretraining_risk n=-1", lambda: theory.pretraining_risk(_ar1(), 0.5, -1), "n=-1"),
    ("pretraining_risk test ratio 1.5", lambda: theory.pretraining_risk(_ar1(), 0.5, 10, test=1.5), "ratio=1.5"),
    ("mean_coefficients n=0", lambda: theory.mean_coefficients(_ar1().views()[0], 0.5, 0), "n=0"),
    ("equivalent_fixed_ratio '0.5'", lambda: theory.equivalent_fixed_ratio("0.5"), "'0.5'"),
    ("make_covariance family 'nope'", lambda: covariances.make_covariance("nope", 20), "family='nope'"),
    ("make_covariance ar1 rho=1", lambda: covariances.make_covariance("ar1", 20, rho=1.0), "rho=1.0"),
    ("make_covariance ar1 unknown key", lambda: covariances.make_covariance("ar1", 20, sigma=1.0), "'sigma'"),
    ("make_covariance spiked strengths ['a']",
     lambda: covariances.make_covariance("spiked", 20, strengths=["a"]), "strengths=['a']"),
    ("make_covariance spiked strengths=5", lambda: covariances.make_covariance("spiked", 20, strengths=5),
     "strengths=5"),
    ("make_covariance power_law alpha=0", lambda: covariances.make_covariance("power_law", 20, alpha=0),
     "alpha=0"),
    ("Covariance.from_matrix diagonal 2", lambda: covariances.Covariance.from_matrix(2 * np.eye(4)), "diagonal"),
    ("Covariance.view target 25", lambda: _ar1().view(25), "target=25"),
    # masking: generators
    ("random_subset_mask ratio -0.1 without batch_size", lambda: _subset(-0.1),
     "ratios=-0.1 is not allowed: use a mask ratio in the open interval (0, 1)"),
    ("random_subset_mask ratio -0.1, batch_size 4", lambda: _subset(-0.1, batch_size=4), "ratios"),
    ("random_subset_mask ratio nan", lambda: _subset(math.nan, batch_size=4), "ratios"),
    ("random_subset_mask ratio '0.5'", lambda: _subset("0.5", batch_size=2), "ratios='0.5'"),
    ("random_subset_mask int ratios", lambda: _subset(torch.tensor([1, 0])), "torch.int64"),
    ("random_subset_mask n_tokens=1", lambda: _subset(0.5, 1, batch_size=2), "n_tokens=1"),
    ("random_subset_mask n_tokens=10.0", lambda: _subset(0.5, 10.0, batch_size=2), "n_tokens=10.0"),
    ("random_subset_mask batch_size 3 for 2 ratios", lambda: _subset(torch.full((2,), 0.5), batch_size=3),
     "batch_size=3"),
    ("random_subset_mask batch_size=True", lambda: _subset(0.5, batch_size=True), "batch_size=True"),
    ("random_subset_mask eligible (2, 9)", lambda: _subset(0.5, batch_size=2, eligible=torch.ones(2, 9).bool()),
     "eligible"),
    ("random_subset_mask eligible float", lambda: _subset(0.5, batch_size=2, eligible=torch.ones(2, 10)), "bool"),
    ("random_subset_mask generator=42", lambda: _subset(0.5, batch_size=2, generator=42), "generator=42"),
    ("bernoulli_mask ratio 1.5", lambda: masking.bernoulli_mask(1.5, 8, batch_size=2, generator=_gen()), "ratios"),
    ("span_mask mean_span=0.5",
     lambda: masking.span_mask(0.5, 10, mean_span=0.5, batch_size=2, generator=_gen()), "mean_span=0.5"),
    ("span_mask mean_span=nan",
     lambda: masking.span_mask(0.5, 10, mean_span=math.nan, batch_size=2, generator=_gen()), "mean_span=nan"),
    ("bert_corruption mask_token_id=10 of vocab 5", lambda: _bert(mask_token_id=10), "mask_token_id=10"),
    ("bert_corruption replace_probs sum 1.5", lambda: _bert(replace_probs=(0.5, 0.5, 0.5)), "replace_probs"),
    ("bert_corruption mask (2, 3)", lambda: _bert(mask=torch.ones(2, 3, dtype=torch.bool)), "mask="),
    ("restore visible tokens without mask_token",
     lambda: masking.restore(torch.zeros(2, 5, 3), _subset(0.5, batch_size=2)), "mask_token"),
    ("gather_visible x (3, 5)", lambda: masking.gather_visible(torch.zeros(3, 5), _subset(0.5, batch_size=2)),
     "x of shape (3, 5)"),
    # masking: ratio samplers and their factory
    ("Fixed ratio=1.0", lambda: masking.Fixed(1.0), "ratio=1.0"),
    ("Fixed ratio=True", lambda: masking.Fixed(True), "ratio=True"),
    ("R2MAE low > high", lambda: masking.R2MAE(0.8, 0.2), "low=0.8"),
    ("R2MAE low == high", lambda: masking.R2MAE(0.5, 0.5), "low=0.5"),
    ("R2MAE low=nan", lambda: masking.R2MAE(math.nan, 0.9), "low=nan"),
    ("R2MAE per='row'", lambda: masking.R2MAE(0.2, 0.9, per="row"), "per='row'"),
    ("Scheduled shape='exp'", lambda: masking.Scheduled(0.8, 0.2, shape="exp"), "shape='exp'"),
    ("Scheduled reaching 0", lambda: masking.Scheduled(0.0, 0.0), "floor"),
    ("MaskGITCosine eps=0.7", lambda: masking.MaskGITCosine(eps=0.7), "eps=0.7"),
    ("TruncatedGaussian std=0", lambda: masking.TruncatedGaussian(std=0), "std=0"),
    ("TruncatedGaussian low > high", lambda: masking.TruncatedGaussian(low=0.9, high=0.5), "low=0.9"),
    ("Choice of no values", lambda: masking.Choice(()), "values=()"),
    ("Choice of repeated values", lambda: masking.Choice((0.5, 0.5)), "distinct"),
    ("masking_ratio_decay shape='exp'", lambda: masking.masking_ratio_decay("exp"), "shape='exp'"),
    ("make_sampler kind 'nope'", lambda: masking.make_sampler({"kind": "nope"}), "kind='nope'"),
    ("make_sampler r2mae without high", lambda: masking.make_sampler({"kind": "r2mae", "low": 0.1}), "['high']"),
    ("make_sampler unknown key", lambda: masking.make_sampler({"kind": "fixed", "ratio": 0.5, "rate": 1}),
     "['rate']"),
    ("make_sampler of a list", lambda: masking.make_sampler([0.5]), "spec=[0.5]"),
    ("make_sampler '1.5'", lambda: masking.make_sampler("1.5"), "ratio=1.5"),
    ("sample batch_size=0", lambda: _sample(batch_size=0), "batch_size=0"),
    ("sample progress=1.5", lambda: _sample(progress=1.5), "progress=1.5"),
    ("sample generator=42", lambda: _sample(generator=42), "generator=42"),
    ("quadrature n_points=1", lambda: masking.R2MAE(0.2, 0.8).quadrature(n_points=1), "n_points=1"),
    # section configs: 00 masking tour
    ("00 n_batches=1", lambda: M(n_batches=1), "n_batches=1"),
    ("00 batch_size='64'", lambda: M(batch_size="64"), "batch_size='64'"),
    ("00 patch=3", lambda: M(patch=3), "patch=3"),
    ("00 patch=True", lambda: M(patch=True), "patch=True"),
    ("00 mean_span=True", lambda: M(mean_span=True), "mean_span=True"),
    ("00 mean_span='3'", lambda: M(mean_span="3"), "mean_span='3'"),
    ("00 samplers []", lambda: M(samplers=[]), "samplers"),
    ("00 sampler kind 'nope'", lambda: M(samplers=[{"kind": "nope"}]), "kind='nope'"),
    # 01 linear theory
    ("01 p=10", lambda: T(p=10), "p=10"),
    ("01 reps=1", lambda: T(reps=1), "reps=1"),
    ("01 families ['nope']", lambda: T(families=["nope"]), "family='nope'"),
    ("01 focus_gamma='1'", lambda: T(focus_gamma="1"), "focus_gamma='1'"),
    ("01 ridge=True", lambda: T(ridge=True), "ridge=True"),
    ("01 ridge='0'", lambda: T(ridge="0"), "ridge='0'"),
    ("01 task_noise=nan", lambda: T(task_noise=math.nan), "task_noise=nan"),
    ("01 test_ratio='0.5'", lambda: T(test_ratio="0.5"), "test_ratio='0.5'"),
    ("01 mc_ratios='0.5'", lambda: T(mc_ratios="0.5"), "mc_ratios='0.5'"),
    ("01 primary_criterion 'x'", lambda: T(primary_criterion="x"), "primary_criterion='x'"),
    ("01 phase_p=5", lambda: T(phase_p=5), "phase_p=5"),
    ("01 phase_gammas [0]", lambda: T(phase_gammas=[0.0]), "phase_gammas"),
    ("01 phase_gammas '1'", lambda: T(phase_gammas="1"), "phase_gammas"),
    ("01 phase_ridges [-1]", lambda: T(phase_ridges=[-1.0]), "phase_ridges"),
    ("01 phase_pers ['row']", lambda: T(phase_pers=["row"]), "phase_pers"),
    ("01 phase_criteria ['x']", lambda: T(phase_criteria=["x"]), "phase_criteria"),
    ("01 phase_families ['ring']", lambda: T(phase_families=["ring"]), "phase_families"),
    ("01 phase_fixed_step=0.5", lambda: T(phase_fixed_step=0.5), "phase_fixed_step=0.5"),
    ("01 phase_interval_step=0", lambda: T(phase_interval_step=0.0), "phase_interval_step=0"),
    ("01 phase_batch_draws=1", lambda: T(phase_batch_draws=1), "phase_batch_draws=1"),
    ("01 phase_reps=1", lambda: T(phase_reps=1), "phase_reps=1"),
    ("01 phase_tolerance=-1", lambda: T(phase_tolerance=-1.0), "phase_tolerance=-1"),
    ("01 phase_mc_points=0", lambda: T(phase_mc_points=0), "phase_mc_points=0"),
    ("01 diffusion_eps=0", lambda: T(diffusion_eps=0.0), "diffusion_eps=0"),
    ("weighted_law weight='square'", lambda: theory.weighted_law(0.5, "square"), "weight='square'"),
    ("weighted_law weight<0", lambda: theory.weighted_law(0.5, lambda m: -m), "weight"),
    ("RatioLaw loss_weights=0", lambda: theory.RatioLaw(np.array([0.5]), np.array([1.0]), "x", np.array([0.0])),
     "loss_weights"),
    ("masked_diffusion_law eps=0.7", lambda: theory.masked_diffusion_law(0.7), "eps=0.7"),
    ("per_batch_risk draws=1", lambda: theory.per_batch_risk(_ar1(), masking.R2MAE(0.2, 0.8), 64, draws=1),
     "draws=1"),
    ("per_batch_risk train=0.5", lambda: theory.per_batch_risk(_ar1(), 0.5, 64), "train=0.5"),
    ("per_batch_risk batch_size=0", lambda: theory.per_batch_risk(_ar1(), masking.R2MAE(0.2, 0.8), 64,
                                                                  batch_size=0), "batch_size=0"),
    ("multi_scale rhos=[0.5]", lambda: covariances.make_covariance("multi_scale", 20, rhos=[0.5]), "rhos"),
    ("multi_scale weights=[1]", lambda: covariances.make_covariance("multi_scale", 20, rhos=[0.5, 0.9],
                                                                     weights=[1.0]), "weights"),
    ("simulate loss_weight='x'", lambda: simulate.simulate_pretraining(_ar1(), 0.5, 40, tests={"t": 0.5}, reps=2,
                                                                       seed=0, loss_weight="x"), "loss_weight='x'"),
    # 02 vision
    ("02 n_seeds=0", lambda: V(n_seeds=0), "n_seeds=0"),
    ("02 seed=-1", lambda: V(seed=-1), "seed=-1"),
    ("02 batch_size=True", lambda: V(batch_size=True), "batch_size=True"),
    ("02 method_steps='30'", lambda: V(method_steps="30"), "method_steps='30'"),
    ("02 sweep_ratios []", lambda: V(sweep_ratios=[]), "sweep_ratios"),
    ("02 test_ratios '0.5'", lambda: V(test_ratios="0.5"), "test_ratios='0.5'"),
    ("02 sweep family 'rnn'", lambda: V(sweep={"rnn": {"sizes": ["S"], "steps": 1}}), "'rnn'"),
    ("02 sweep a list", lambda: V(sweep=["mlp"]), "sweep=['mlp']"),
    ("02 vit_size 'XL'", lambda: V(vit_size="XL"), "vit_size='XL'"),
    ("02 baselines ['nope']", lambda: V(baselines=["nope"]), "'nope'"),
    ("02 lr='1e-3'", lambda: V(lr="1e-3"), "lr='1e-3'"),
    ("02 lr=True", lambda: V(lr=True), "lr=True"),
    ("02 r2mae_per 'row'", lambda: V(r2mae_per="row"), "per='row'"),
    ("02 dataset 'cifar10'", lambda: V(dataset="cifar10"), "dataset='cifar10'"),
    ("02 umae_r2mae='no'", lambda: V(umae_r2mae="no"), "umae_r2mae='no'"),
    # 03 language
    ("03 seq_len=4", lambda: L(seq_len=4), "seq_len=4"),
    ("03 steps=0", lambda: L(steps=0), "steps=0"),
    ("03 sizes []", lambda: L(sizes=[]), "sizes=[]"),
    ("03 main_size 'M' not in sizes", lambda: L(main_size="M"), "main_size='M'"),
    ("03 baselines ['nope']", lambda: L(baselines=["nope"]), "'nope'"),
    ("03 lr='1e-3'", lambda: L(lr="1e-3"), "lr='1e-3'"),
    ("03 weight_decay='0.1'", lambda: L(weight_decay="0.1"), "weight_decay='0.1'"),
    ("03 ablation_intervals [0.1, 0.2]", lambda: L(ablation_intervals=[0.1, 0.2]), "ablation_intervals"),
    ("03 ablation_intervals [['a', 'b']]", lambda: L(ablation_intervals=[["a", "b"]]), "ablation_intervals"),
    ("03 device 'tpu'", lambda: L(device="tpu"), "device='tpu'"),
    # 04 DNA
    ("04 kmer=7", lambda: D(kmer=7), "kmer=7"),
    ("04 window not a multiple of kmer", lambda: D(window=65, kmer=2), "window=65"),
    ("04 genomes []", lambda: D(genomes=[]), "genomes"),
    ("04 genomes ['hg38']", lambda: D(genomes=["hg38"]), "'hg38'"),
    ("04 probe_train=5", lambda: D(probe_train=5), "probe_train=5"),
    ("04 pretrain_max_n_frac='0.1'", lambda: D(pretrain_max_n_frac="0.1"), "pretrain_max_n_frac='0.1'"),
    ("04 pretrain_max_n_frac=True", lambda: D(pretrain_max_n_frac=True), "pretrain_max_n_frac=True"),
    ("04 curriculum_max_span='6'", lambda: D(curriculum_max_span="6"), "curriculum_max_span='6'"),
    ("04 rc_augment='yes'", lambda: D(rc_augment="yes"), "rc_augment='yes'"),
    ("04 device 'tpu'", lambda: D(device="tpu"), "device='tpu'"),
    # 05 single cell
    ("05 n_seeds=1", lambda: S(n_seeds=1), "n_seeds=1"),
    ("05 datasets ['nope']", lambda: S(datasets=["nope"]), "'nope'"),
    ("05 models []", lambda: S(models=[]), "models=[]"),
    ("05 transformer_datasets a str", lambda: S(transformer_datasets="pbmc68k_reduced"),
     "transformer_datasets='pbmc68k_reduced'"),
    ("05 val_fraction='0.2'", lambda: S(val_fraction="0.2"), "val_fraction='0.2'"),
    ("05 probe_cs [True]", lambda: S(probe_cs=[True]), "probe_cs"),
    ("05 leiden_resolutions '1'", lambda: S(leiden_resolutions="1"), "leiden_resolutions='1'"),
    ("05 lr='1e-3'", lambda: S(lr="1e-3"), "lr='1e-3'"),
    ("05 transformer_dim 30 with 4 heads", lambda: S(transformer_dim=30, transformer_heads=4), "heads=4"),
    ("05 umap_methods ['nope']", lambda: S(umap_methods=["nope"]), "'nope'"),
    # 06 spectral clustering
    ("06 ratios [0.5]", lambda: C(ratios=[0.5]), "ratios=[0.5]"),
    ("06 ratios decreasing", lambda: C(ratios=[0.9, 0.5]), "ratios=[0.9, 0.5]"),
    ("06 min_energy=1", lambda: C(min_energy=1.0), "min_energy=1.0"),
    ("06 head_counts ['2', '4']", lambda: C(head_counts=["2", "4"]), "head_counts=['2', '4']"),
    ("06 seg_ks [1]", lambda: C(seg_ks=[1]), "seg_ks=[1]"),
    ("06 lr='1e-3'", lambda: C(lr="1e-3"), "lr='1e-3'"),
    ("06 dataset 'cifar10'", lambda: C(dataset="cifar10"), "dataset='cifar10'"),
    # notebook parameters and profile YAML
    ("YAML unknown key", lambda: _profile_yaml("stepz: 4\n"), "'stepz'"),
    ("YAML wrong type", lambda: _profile_yaml("steps: four\n"), "steps='four'"),
    ("YAML bool where int", lambda: _profile_yaml("steps: true\n"), "steps=True"),
    ("YAML empty value", lambda: _profile_yaml("steps:\n"), "steps=None"),
    ("YAML 1e-3 is a str", lambda: _profile_yaml("lr: 1e-3\n"), "lr='1e-3'"),
    ("YAML not a mapping", lambda: _profile_yaml("- 1\n- 2\n"), "mapping"),
    ("YAML file missing", lambda: _profile_yaml(None), "01_ok.yaml is missing"),
    ("profile 'huge'", lambda: _profile_yaml("steps: 4\n", profile="huge"), "profile='huge'"),
    ("notebook '07_nope'", lambda: _profile_yaml("steps: 4\n", notebook="07_nope"), "notebook='07_nope'"),
    # records
    ("load_record of a missing file", lambda: records.load_record(_record_file("missing")), "no such record"),
    ("load_record of a text file", lambda: records.load_record(_record_file("text")), "not a readable record"),
    ("load_record of a zip without the record entry", lambda: records.load_record(_record_file("zip")),
     "'__record__'"),
    ("save_record object array", lambda: _save({"a": np.array([1, "x"], dtype=object)}), "dtype object"),
    ("save_record int key", lambda: _save({1: 2}), "key 1 (int)"),
    ("save_record set value", lambda: _save({"a": {1}}), "type set"),
    # models
    ("build_model family 'nope'", lambda: models.build_model("nope"), "family='nope'"),
    ("build_model unknown key", lambda: models.build_model("vit", width=3), "['width']"),
    ("build_model dim 30 with 4 heads", lambda: models.build_model("vit", dim=30, heads=4), "heads=4"),
    ("build_model seed=-1", lambda: models.build_model("mlp", seed=-1), "seed=-1"),
    ("build_model width=True", lambda: models.build_model("mlp", width=True), "width=True"),
    ("image_spec size 'XL'", lambda: image_runs.image_spec("vit", "XL", None, 0, None), "size='XL'"),
]


@pytest.mark.parametrize(("what", "build", "word"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(what, build, word):
    with pytest.raises(ValueError, match=None) as err:
        build()
    message = str(err.value)
    assert word in message, f"{what}: {message}"
    assert "\n" not in message


#: Command lines with one wrong argument: (name, argv after ``python -m``, a word of the error line). ``{tmp}`` is a
#: fresh folder holding ``02_vision-0of1.tar``, a file that is not a tar archive.
COMMANDS = [
    ("pipeline run --profile huge", ["r2mae_core.pipeline", "run", "--profile", "huge"], "profile='huge'"),
    ("pipeline run of an unknown notebook", ["r2mae_core.pipeline", "run", "--profile", "quick", "99_nope"],
     "notebook='99_nope'"),
    ("pipeline pair --seeds 1", ["r2mae_core.pipeline", "pair", "--seeds", "1"], "--seeds=1"),
    ("campaign pack shard 3/2", ["r2mae_core.campaign", "pack", "02_vision", "3/2"], "shard='3/2'"),
    ("campaign pack shard a/b", ["r2mae_core.campaign", "pack", "02_vision", "a/b"], "shard='a/b'"),
    ("campaign pack of an unknown section", ["r2mae_core.campaign", "pack", "99_nope", "0/1"],
     "notebook='99_nope'"),
    ("campaign unpack of a file that is not a tar archive",
     ["r2mae_core.campaign", "unpack", "{tmp}/02_vision-0of1.tar"], "02_vision-0of1.tar"),
    ("data prepare of an unknown dataset", ["r2mae_core.data", "prepare", "nope_data"], "'nope_data'"),
]


@pytest.mark.parametrize(("what", "argv", "word"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_bad_command_line_is_one_error_line_and_writes_nothing(what, argv, word, tmp_path):
    (tmp_path / "02_vision-0of1.tar").write_text("not a tar archive\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "R2MAE_RESULTS_DIR": str(out / "results"), "R2MAE_LEDGER_DIR": str(out / "ledger"),
           "R2MAE_CACHE_DIR": str(out / "cache")}
    done = subprocess.run([sys.executable, "-m", *(a.format(tmp=tmp_path) for a in argv)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0, f"{what}: exit 0"
    assert "Traceback" not in done.stderr, f"{what}: {done.stderr}"
    assert lines and word in lines[-1], f"{what}: {done.stderr}"
    assert not out.exists(), f"{what}: wrote {sorted(p.name for p in out.rglob('*'))}"


def test_good_input_still_passes():
    """The checks accept what the theory builds itself."""
    law = theory.as_law(0.5)
    assert law.mean == pytest.approx(0.5)
    cov = covariances.make_covariance("spiked", 40)
    assert cov.p == 40
    assert theory.gamma_eff(100, 50.0, 0.5) == pytest.approx(99 / 25)
    assert image_runs.EvalSpec(n_probe_train=10, knn_k=1, bn_lp_epochs=0).knn_k == 1


def test_a_same_size_corrupt_dataset_file_is_refused_by_its_digest(tmp_path, monkeypatch):
    """A prepared file whose bytes changed but not its size (bit rot, an edit) is caught by the manifest's
    sha256 when it is loaded, with one line saying how to rebuild it."""
    import shutil

    from r2mae_core import data
    from r2mae_core.data import registry

    folder = registry.cache_dir("fashion_mnist")
    copy = tmp_path / "fashion_mnist"
    shutil.copytree(folder, copy)
    monkeypatch.setenv("R2MAE_DATA_DIR", str(tmp_path))
    path = registry.cache_path("fashion_mnist")
    assert path.parent == copy and data.load("fashion_mnist").train_images.shape[0] == 60000
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one byte flipped: same size
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="differs from the manifest") as err:
        data.load("fashion_mnist")
    assert "\n" not in str(err.value) and "--force" in str(err.value)


def test_a_data_folder_variable_naming_a_file_is_one_line(tmp_path, monkeypatch):
    from r2mae_core import data

    blocker = tmp_path / "data.txt"
    blocker.write_text("not a folder")
    monkeypatch.setenv("R2MAE_DATA_DIR", str(blocker))
    with pytest.raises(ValueError, match="R2MAE_DATA_DIR=.* is not allowed: it is a file") as err:
        data.load("fashion_mnist")
    assert "\n" not in str(err.value)
