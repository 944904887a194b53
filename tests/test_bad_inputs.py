"""Bad input to public constructors and functions: one clear line naming the parameter, never a silent result.

Each row builds something with one wrong value; the error must be a ``ValueError`` whose single-line message
contains the parameter's name (or what is wrong with it)."""

import math

import numpy as np
import pytest

from r2mae_core import covariances, theory
from r2mae_core.experiments import image_runs, linear_theory, vision


def _law(ratios, weights):
    return theory.RatioLaw(np.asarray(ratios, float), np.asarray(weights, float), "custom")


def _custom_covariance(matrix):
    return covariances.Covariance("custom", np.asarray(matrix, float), False, {}, (0,))


def _ridge(**change):
    args = {"mu": np.ones((1, 4)), "c": np.ones((1, 4)), "pi": np.ones(1), "n_eff": 10.0, "ridge": 0.0,
            "y_var": 1.0, "test_b": np.ones(4), "test_c": np.ones(4)}
    return theory.ridge_equivalent(**{**args, **change})


def _expression(x):
    from r2mae_core import single_cell

    return single_cell.check_expression(x)


CASES = [
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
]


@pytest.mark.parametrize(("what", "build", "word"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(what, build, word):
    with pytest.raises(ValueError, match=None) as err:
        build()
    message = str(err.value)
    assert word in message, f"{what}: {message}"
    assert "\n" not in message


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
