"""Tests of the linear theory of masked pretraining (:mod:`r2mae_core.theory`, :mod:`r2mae_core.theory.covariances`,
:mod:`r2mae_core.theory.simulate`, :mod:`r2mae_core.theory.downstream`).

What is pinned:

- the closed forms of Hastie et al. (2022) (isotropic ridgeless bias/variance, isotropic ridge through the
  Marchenko-Pastur Stieltjes transform) and the exact finite-n Gaussian OLS / min-norm formulas, with their
  domains;
- the deterministic equivalent ``ridge_equivalent`` with one isotropic group reproduces those closed forms;
  ``pretraining_risk`` on Σ = I reduces to pure variance;
- exact Monte Carlo (``simulate_probe``, ``simulate_pretraining``) agrees with the exact formulas (4 standard
  errors and 10%) and with the deterministic equivalents (4 standard errors + 10% relative: the theory is an
  asymptotic, Gaussian-equivalent approximation of the masked design);
- the population equivalence of a random ratio law and the fixed ratio E[m²(1−m)]/E[m(1−m)];
- the covariance families (unit diagonal, symmetric, PSD, circulant spectra, target views, seeding) and their
  validation;
- input validation (one ValueError naming the argument), determinism of the simulations, and the downstream
  probe theory (Monte Carlo agreement, invariance of the n_down > p min-norm probe to the representation).

Every Monte Carlo test uses a fixed seed, so the suite is deterministic; the whole file runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r2mae_core import masking as M
from r2mae_core import theory as T
from r2mae_core.theory import covariances as C
from r2mae_core.theory import downstream as D
from r2mae_core.theory import simulate as S

R2MAE_SPEC = {"kind": "r2mae", "low": 0.2, "high": 0.8, "per": "sample"}


def mc_summary(risks: pd.Series) -> tuple[float, float]:
    """Mean and standard error of a Monte Carlo column."""
    x = risks.to_numpy(dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))


def isotropic_problem(q: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (all ones) and cross-moment c = μβ with ‖β‖² = signal, spread evenly over q directions."""
    mu = np.ones(q)
    beta = np.full(q, np.sqrt(signal / q))
    return mu, mu * beta


def mp_stieltjes(gamma: float, lam: float) -> tuple[float, float]:
    """Marchenko-Pastur (aspect γ, unit variance) Stieltjes transform m(z) and m'(z) at z = −λ < 0.

    m solves γ z m² − (1 − γ − z) m + 1 = 0 (the root positive for z < 0); m' by implicit differentiation.
    """
    z = -lam
    a = 1.0 - gamma - z
    m = (a - np.sqrt(a * a - 4.0 * gamma * z)) / (2.0 * gamma * z)
    dm = (gamma * m * m + m) / (a - 2.0 * gamma * z * m)
    return float(m), float(dm)


# ------------------------------------------------------------------------------ closed forms (test anchors)
@pytest.mark.parametrize(("gamma", "bias", "variance"), [(0.5, 0.0, 0.3), (2.0, 1.0, 0.3), (4.0, 1.5, 0.1)])
def test_isotropic_ridgeless_risk_matches_hastie_formulas(gamma, bias, variance):
    # σ² = 0.3, r² = 2: γ < 1 → (0, σ²γ/(1 − γ)); γ > 1 → (r²(1 − 1/γ), σ²/(γ − 1))
    out = T.isotropic_ridgeless_risk(gamma, sigma2=0.3, signal=2.0)
    assert out["bias"] == pytest.approx(bias, abs=1e-12)
    assert out["variance"] == pytest.approx(variance, rel=1e-12)


@pytest.mark.parametrize("gamma", [1, 1.0, 0, 0.0, -0.5])
def test_isotropic_ridgeless_risk_rejects_peak_and_nonpositive_gamma(gamma):
    with pytest.raises(ValueError, match="gamma="):
        T.isotropic_ridgeless_risk(gamma, sigma2=1.0, signal=1.0)


def test_gaussian_ols_and_minnorm_risk_values():
    assert T.gaussian_ols_risk(100, 20, sigma2=2.0) == pytest.approx(2.0 * 20 / 79, rel=1e-12)
    assert T.gaussian_ols_risk(22, 20, sigma2=1.0) == pytest.approx(20.0, rel=1e-12)  # p = n − 2: edge
    out = T.gaussian_minnorm_risk(20, 50, sigma2=2.0, signal=3.0)
    assert out["bias"] == pytest.approx(3.0 * (1 - 20 / 50), rel=1e-12)
    assert out["variance"] == pytest.approx(2.0 * 20 / 29, rel=1e-12)
    edge = T.gaussian_minnorm_risk(20, 22, sigma2=1.0, signal=1.0)  # p = n + 2: edge
    assert edge["variance"] == pytest.approx(20.0, rel=1e-12)


@pytest.mark.parametrize(("n", "p"), [(21, 20), (20, 20), (10, 20)])
def test_gaussian_ols_risk_rejects_p_not_below_n_minus_one(n, p):
    with pytest.raises(ValueError, match="p="):
        T.gaussian_ols_risk(n, p, sigma2=1.0)


@pytest.mark.parametrize(("n", "p"), [(20, 21), (20, 20), (20, 10)])
def test_gaussian_minnorm_risk_rejects_p_not_above_n_plus_one(n, p):
    with pytest.raises(ValueError, match="p="):
        T.gaussian_minnorm_risk(n, p, sigma2=1.0, signal=1.0)


# ------------------------------------------------------------------------------ deterministic equivalent
@pytest.mark.parametrize("gamma", [0.3, 0.6, 1.7, 3.0])
def test_ridge_equivalent_single_isotropic_group_reproduces_ridgeless_closed_form(gamma):
    q, signal, sigma2 = 60, 0.7, 0.3
    mu, c = isotropic_problem(q, signal)
    n_eff = q / gamma
    out = T.ridge_equivalent(mu[None, :], c[None, :], np.ones(1), n_eff, 0.0, signal + sigma2, test_b=mu,
                             test_c=c, test_y_var=signal + sigma2)
    closed = T.isotropic_ridgeless_risk(gamma, sigma2=sigma2, signal=signal)
    assert out["risk"] - sigma2 == pytest.approx(closed["bias"] + closed["variance"], rel=1e-5)
    assert out["risk"] == pytest.approx(out["mean_risk"] + out["variance"], rel=1e-12)
    if gamma < 1:  # ridgeless and underparameterised: the mean predictor is β itself
        assert out["mean_risk"] == pytest.approx(sigma2, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_ridge_equivalent_isotropic_ridge_matches_marchenko_pastur(gamma, lam):
    # Hastie et al. (2022), isotropic ridge: B = r² λ² m'(−λ), V = σ² γ (m(−λ) − λ m'(−λ))
    q, signal, sigma2 = 80, 1.0, 0.5
    mu, c = isotropic_problem(q, signal)
    out = T.ridge_equivalent(mu[None, :], c[None, :], np.ones(1), q / gamma, lam, signal + sigma2, test_b=mu,
                             test_c=c, test_y_var=signal + sigma2)
    m, dm = mp_stieltjes(gamma, lam)
    expected = signal * lam**2 * dm + sigma2 * gamma * (m - lam * dm)
    assert out["risk"] - sigma2 == pytest.approx(expected, rel=1e-6)


def test_mp_stieltjes_helper_is_the_marchenko_pastur_transform():
    # guard on the test's own anchor: γ < 1, λ → 0 gives m(0) = E[1/s] = 1/(1 − γ); m' matches a difference
    m, _ = mp_stieltjes(0.25, 1e-9)
    assert m == pytest.approx(1 / 0.75, rel=1e-6)
    h = 1e-6
    _, dm = mp_stieltjes(2.0, 0.5)
    assert dm == pytest.approx((mp_stieltjes(2.0, 0.5 - h)[0] - mp_stieltjes(2.0, 0.5 + h)[0]) / (2 * h), rel=1e-6)


# ------------------------------------------------------------------------------ exact Gaussian Monte Carlo
def test_simulate_probe_ols_matches_exact_gaussian_formula():
    p, n, signal, sigma2 = 40, 80, 1.0, 0.5
    nu, cross = isotropic_problem(p, signal)
    mean, se = mc_summary(S.simulate_probe(nu, cross, signal + sigma2, n, reps=400, seed=11)["risk"])
    exact = T.gaussian_ols_risk(n, p, sigma2=sigma2)
    assert abs((mean - sigma2) - exact) < 4 * se
    assert abs((mean - sigma2) - exact) < 0.1 * exact


def test_simulate_probe_minnorm_matches_exact_gaussian_formula():
    p, n, signal, sigma2 = 40, 20, 1.0, 0.5
    nu, cross = isotropic_problem(p, signal)
    mean, se = mc_summary(S.simulate_probe(nu, cross, signal + sigma2, n, reps=400, seed=12)["risk"])
    parts = T.gaussian_minnorm_risk(n, p, sigma2=sigma2, signal=signal)
    exact = parts["bias"] + parts["variance"]
    assert abs((mean - sigma2) - exact) < 4 * se
    assert abs((mean - sigma2) - exact) < 0.1 * exact


# ------------------------------------------------------------------------------ masked pretraining
SCHEDULE_SPEC = {"kind": "scheduled", "start": 0.8, "end": 0.3, "shape": "cosine"}
R2MAE_BATCH_SPEC = {"kind": "r2mae", "low": 0.2, "high": 0.8, "per": "batch"}


@pytest.mark.parametrize(("train", "n", "reps"), [(0.3, 1200, 80), (0.6, 120, 150), (R2MAE_SPEC, 600, 80),
                                                  (R2MAE_SPEC, 120, 200), (R2MAE_BATCH_SPEC, 600, 80),
                                                  (SCHEDULE_SPEC, 600, 80)],
                         ids=["fixed0.3-n1200", "fixed0.6-n120", "r2mae-n600", "r2mae-n120", "r2mae-batch-n600",
                              "cosine-schedule-n600"])
def test_pretraining_risk_matches_monte_carlo_on_ar1(train, n, reps):
    """Fixed ratios, R²MAE per sample and per batch (batches of 32 share a ratio) and a cosine schedule."""
    cov = C.make_covariance("ar1", 120, rho=0.8)
    law = M.make_sampler(train) if isinstance(train, dict) else train
    theory = T.pretraining_risk(cov, law, n)
    assert abs(theory.gamma_eff - 1.0) > 0.3  # away from the interpolation peak
    assert theory.risk == pytest.approx(theory.irreducible + theory.bias + theory.variance, rel=1e-12)
    test_ratio = T.as_law(law).mean  # pretraining_risk's default test law: the (mean) training ratio
    frame, _ = S.simulate_pretraining(cov, law, n, tests={"mean": test_ratio}, reps=reps, seed=2024)
    mean, se = mc_summary(frame["risk"])
    assert abs(mean - theory.risk) < 4 * se + 0.1 * theory.risk


@pytest.mark.parametrize(("p", "ratio", "n"), [(50, 0.5, 300), (50, 0.5, 40), (80, 0.25, 200)])
def test_pretraining_risk_isotropic_is_pure_variance(p, ratio, n):
    out = T.pretraining_risk(C.make_covariance("isotropic", p), ratio, n, binomial=False)
    gamma = (p - 1) / (ratio * n)
    assert out.gamma_eff == pytest.approx(gamma, rel=1e-12)
    assert out.n_eff == pytest.approx(ratio * n, rel=1e-12)
    assert out.irreducible == 1.0
    assert abs(out.bias) < 1e-9
    # nothing to predict: σ² = 1, signal 0 (isotropic_ridgeless_risk needs signal > 0; its variance ignores it)
    expected = T.isotropic_ridgeless_risk(gamma, sigma2=1.0, signal=1.0)["variance"]
    assert out.variance == pytest.approx(expected, rel=1e-6)
    assert out.risk == pytest.approx(1.0 + expected, rel=1e-6)


@pytest.mark.parametrize(("p", "ratio", "n"), [(50, 0.5, 300), (50, 0.5, 40)])
def test_pretraining_risk_averages_the_binomial_row_count_with_three_hermite_nodes(p, ratio, n):
    """binomial=True: E over n_j ~ Bin(n, m) by nodes n m ± √3 sd (weights 1/6) and n m (weight 2/3)."""
    out = T.pretraining_risk(C.make_covariance("isotropic", p), ratio, n)
    sd = np.sqrt(n * ratio * (1 - ratio))
    nodes = [(n * ratio - np.sqrt(3) * sd, 1 / 6), (n * ratio, 2 / 3), (n * ratio + np.sqrt(3) * sd, 1 / 6)]
    expected = sum(w * T.isotropic_ridgeless_risk((p - 1) / size, sigma2=1.0, signal=1.0)["variance"]
                   for size, w in nodes)
    assert out.variance == pytest.approx(expected, rel=1e-6)
    assert out.variance > T.isotropic_ridgeless_risk(out.gamma_eff, sigma2=1.0, signal=1.0)["variance"]  # convex


# ------------------------------------------------------------------------------ random-ratio equivalence
@pytest.mark.parametrize(("low", "high"), [(0.2, 0.8), (0.5, 0.9), (0.05, 0.3)])
def test_equivalent_fixed_ratio_of_uniform_law(low, high):
    m = np.linspace(low, high, 200_001)
    expected = np.trapezoid(m**2 * (1 - m), m) / np.trapezoid(m * (1 - m), m)
    got = T.equivalent_fixed_ratio(M.R2MAE(low, high, per="sample"))
    assert got == pytest.approx(expected, rel=1e-8)
    assert low < got < high


@pytest.mark.parametrize("ratio", [0.15, 0.5, 0.75])
def test_equivalent_fixed_ratio_of_fixed_law_is_the_ratio(ratio):
    assert T.equivalent_fixed_ratio(M.Fixed(ratio)) == pytest.approx(ratio, rel=1e-12)
    assert T.equivalent_fixed_ratio(ratio) == pytest.approx(ratio, rel=1e-12)


@pytest.mark.parametrize(("low", "high"), [(0.2, 0.8), (0.5, 0.9)])
def test_population_coefficients_of_random_law_are_parallel_to_equivalent_fixed_ratio(low, high):
    view = C.make_covariance("ar1", 60, rho=0.8).view(0)
    law = M.make_sampler({**R2MAE_SPEC, "low": low, "high": high})
    m_eq = T.equivalent_fixed_ratio(law)
    if (low, high) == (0.2, 0.8):  # symmetric about 1/2: E[m²(1 − m)] = E[m(1 − m)²]
        assert m_eq == pytest.approx(0.5, rel=1e-12)

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    beta_law = T.population_coefficients(view, law)
    assert cosine(beta_law, T.population_coefficients(view, m_eq)) == pytest.approx(1.0, abs=1e-10)
    # and the check discriminates: a nearby fixed ratio gives a different direction
    assert 1.0 - cosine(beta_law, T.population_coefficients(view, m_eq + 0.05)) > 1e-8


# ------------------------------------------------------------------------------ covariance families
@pytest.mark.parametrize("family", C.FAMILIES)
def test_covariance_family_is_a_correlation_matrix(family):
    cov = C.make_covariance(family, 30)
    a = cov.matrix
    assert a.shape == (30, 30) and cov.p == 30 and cov.name == family
    np.testing.assert_allclose(np.diag(a), 1.0, atol=1e-12)
    np.testing.assert_allclose(a, a.T, atol=1e-12)
    assert np.linalg.eigvalsh(a)[0] > -1e-10
    C.check_correlation(a)  # the library's own validator accepts it


@pytest.mark.parametrize("family", [f for f in C.FAMILIES if f != "power_law"])
def test_circulant_family_target_and_fourier_spectrum(family):
    cov = C.make_covariance(family, 30)
    assert cov.circulant
    assert cov.targets == (0,)
    np.testing.assert_allclose(np.sort(cov.fourier_spectrum()), np.linalg.eigvalsh(cov.matrix), atol=1e-10)


def test_power_law_is_not_circulant_and_has_no_fourier_spectrum():
    cov = C.make_covariance("power_law", 30)
    assert not cov.circulant
    with pytest.raises(ValueError, match="circulant"):
        cov.fourier_spectrum()


@pytest.mark.parametrize("family", C.FAMILIES)
def test_target_view_reconstructs_the_other_coordinates(family):
    cov = C.make_covariance(family, 30)
    for j in (cov.targets[0], 7):
        view = cov.view(j)
        others = np.delete(np.arange(30), j)
        u = view.basis
        assert view.target == j and view.eigenvalues.shape == (29,) and u.shape == (29, 29)
        np.testing.assert_allclose(u.T @ u, np.eye(29), atol=1e-10)
        np.testing.assert_allclose((u * view.eigenvalues) @ u.T, cov.matrix[np.ix_(others, others)], atol=1e-10)
        np.testing.assert_allclose(u @ view.cross, cov.matrix[others, j], atol=1e-10)


def test_power_law_targets_and_basis_are_seeded():
    a = C.make_covariance("power_law", 30, seed=3)
    b = C.make_covariance("power_law", 30, seed=3)
    other = C.make_covariance("power_law", 30, seed=4)
    assert a.targets == b.targets
    assert len(a.targets) == 8 and all(0 <= j < 30 for j in a.targets)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert not np.allclose(a.matrix, other.matrix, atol=1e-3)


BAD_MATRICES = {
    "not_psd": (np.array([[1, 0.99, -0.99], [0.99, 1, 0.99], [-0.99, 0.99, 1]]), "positive semi-definite"),
    "diagonal": (2.0 * np.eye(3), "diagonal"),
    "asymmetric": (np.array([[1, 0.5, 0.0], [0.1, 1, 0.0], [0.0, 0.0, 1]]), "symmetric"),
}


@pytest.mark.parametrize("case", BAD_MATRICES)
def test_check_correlation_and_from_matrix_reject_bad_matrices(case):
    matrix, word = BAD_MATRICES[case]
    with pytest.raises(ValueError, match=word):
        C.check_correlation(matrix)
    with pytest.raises(ValueError, match=word):
        C.Covariance.from_matrix(matrix)


def test_from_matrix_normalise_turns_a_covariance_into_its_correlation():
    corr = C.make_covariance("ar1", 10, rho=0.5).matrix
    scale = np.arange(1.0, 11.0)
    cov = C.Covariance.from_matrix(corr * np.outer(scale, scale), normalise=True)
    np.testing.assert_allclose(cov.matrix, corr, atol=1e-12)
    assert not cov.circulant and cov.name == "custom"


@pytest.mark.parametrize(("args", "kwargs", "word"), [
    (("gaussian", 30), {}, "family="),
    (("ar1", 2), {}, "p="),
    (("isotropic", 0), {}, "p="),
    (("ar1", 30), {"rho": 0.0}, "rho="),
    (("ar1", 30), {"rho": 1.0}, "rho="),
    (("ar1", 30), {"rho": 1.2}, "rho="),
    (("ar1", 30), {"rho": -0.3}, "rho="),
    (("ar1", 30), {"alpha": 1.0}, "alpha"),
    (("isotropic", 30), {"rho": 0.5}, "rho"),
])
def test_make_covariance_rejects_bad_arguments(args, kwargs, word):
    with pytest.raises(ValueError, match=word):
        C.make_covariance(*args, **kwargs)


# ------------------------------------------------------------------------------ input validation
@pytest.fixture(scope="module")
def ar1_small() -> C.Covariance:
    return C.make_covariance("ar1", 20, rho=0.8)


@pytest.mark.parametrize("ratio", [0, 1, 0.0, 1.0, 1.5, -0.1])
def test_pretraining_risk_rejects_ratio_outside_open_interval(ar1_small, ratio):
    with pytest.raises(ValueError, match="ratio"):
        T.pretraining_risk(ar1_small, ratio, 100)


@pytest.mark.parametrize("n", [0, -5, 0.0])
def test_pretraining_risk_rejects_nonpositive_n(ar1_small, n):
    with pytest.raises(ValueError, match="n="):
        T.pretraining_risk(ar1_small, 0.5, n)


def test_pretraining_risk_rejects_negative_ridge(ar1_small):
    with pytest.raises(ValueError, match="ridge="):
        T.pretraining_risk(ar1_small, 0.5, 100, ridge=-0.1)


@pytest.mark.parametrize("n_down", [0, -3])
def test_probe_risk_and_simulate_probe_reject_n_down_below_one(n_down):
    cov = C.make_covariance("ar1", 20, rho=0.8)
    spectrum = cov.fourier_spectrum()
    task = D.band_task("coarse", 0.0, 0.2)
    with pytest.raises(ValueError, match="n_down="):
        D.probe_risk(spectrum, np.ones(20), task, n_down)
    with pytest.raises(ValueError, match="n_down="):
        S.simulate_probe(np.ones(5), np.zeros(5), 1.0, n_down, reps=3, seed=0)


def test_probe_risk_and_simulate_probe_reject_negative_ridge():
    cov = C.make_covariance("ar1", 20, rho=0.8)
    task = D.band_task("coarse", 0.0, 0.2)
    with pytest.raises(ValueError, match="ridge="):
        D.probe_risk(cov.fourier_spectrum(), np.ones(20), task, 10, ridge=-1.0)
    with pytest.raises(ValueError, match="ridge="):
        S.simulate_probe(np.ones(5), np.zeros(5), 1.0, 10, reps=3, seed=0, ridge=-1.0)


@pytest.mark.parametrize("reps", [1, 0])
def test_simulate_pretraining_rejects_fewer_than_two_reps(ar1_small, reps):
    with pytest.raises(ValueError, match="reps="):
        S.simulate_pretraining(ar1_small, 0.5, 50, tests={"t": 0.5}, reps=reps, seed=0)


def test_representation_filter_rejects_non_circulant_covariance():
    with pytest.raises(ValueError, match="circulant"):
        D.representation_filter(C.make_covariance("power_law", 20), 0.5, 100)


@pytest.mark.parametrize(("low", "high"), [(0.5, 0.5), (0.6, 0.2), (-0.1, 0.5), (0.2, 1.5)])
def test_task_rejects_bad_band(low, high):
    with pytest.raises(ValueError, match="band"):
        D.Task("bad", low, high)
    with pytest.raises(ValueError, match="band"):
        D.band_task("bad", low, high)


# ------------------------------------------------------------------------------ determinism
def test_simulate_pretraining_is_deterministic_given_the_seed():
    cov = C.make_covariance("ar1", 30, rho=0.8)
    law = M.make_sampler(R2MAE_SPEC)
    kwargs = {"tests": {"mean": 0.5, "fixed": 0.3}, "reps": 4}
    a, _ = S.simulate_pretraining(cov, law, 80, seed=7, **kwargs)
    b, _ = S.simulate_pretraining(cov, law, 80, seed=7, **kwargs)
    other, _ = S.simulate_pretraining(cov, law, 80, seed=8, **kwargs)
    assert len(a) == 8 and list(a.columns) == ["rep", "seed", "target", "test", "risk"]
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["risk"].to_numpy(), other["risk"].to_numpy())


def test_simulate_probe_is_deterministic_given_the_seed():
    nu, cross = isotropic_problem(10, 1.0)
    a = S.simulate_probe(nu, cross, 1.5, 15, reps=5, seed=3)
    pd.testing.assert_frame_equal(a, S.simulate_probe(nu, cross, 1.5, 15, reps=5, seed=3))
    assert not np.allclose(a["risk"].to_numpy(), S.simulate_probe(nu, cross, 1.5, 15, reps=5, seed=4)["risk"])


# ------------------------------------------------------------------------------ downstream probe
@pytest.fixture(scope="module")
def two_scale() -> C.Covariance:
    return C.make_covariance("two_scale", 120)


def test_probe_risk_matches_monte_carlo(two_scale):
    spectrum = two_scale.fourier_spectrum()
    filter_ = D.representation_filter(two_scale, 0.5, 600)
    task = D.band_task("coarse", 0, 0.1)
    nu, cross, y_var = D.probe_inputs(spectrum, filter_, task)
    theory = D.probe_risk(spectrum, filter_, task, 40)
    mean, se = mc_summary(S.simulate_probe(nu, cross, y_var, 40, reps=300, seed=5)["risk"])
    assert task.noise < theory < y_var
    assert abs(mean - theory) < 4 * se + 0.1 * theory


@pytest.mark.parametrize("ratio", [0.2, 0.8])
def test_minnorm_probe_with_more_samples_than_features_is_invariant_to_the_representation(two_scale, ratio):
    # n_down > p: the min-norm probe is OLS, invariant to any invertible W, so the mask ratio cannot matter and
    # the risk is the ridgeless closed form σ_ε² / (1 − p/n_down) (y is exactly linear in z plus noise).
    p, n_down = two_scale.p, 300
    spectrum = two_scale.fourier_spectrum()
    task = D.band_task("coarse", 0, 0.1)
    reference = D.probe_risk(spectrum, D.representation_filter(two_scale, 0.5, 600), task, n_down)
    filter_ = D.representation_filter(two_scale, ratio, 600)
    assert np.all(np.abs(filter_) > 0)  # invertible representation (all Fourier gains non-zero)
    risk = D.probe_risk(spectrum, filter_, task, n_down)
    assert risk == pytest.approx(reference, rel=1e-6)
    assert risk == pytest.approx(task.noise / (1 - p / n_down), rel=1e-6)


# ------------------------------------------------------------------------------ weighted ratio laws (masked diffusion)
@pytest.mark.parametrize("eps", [1e-3, 0.05])
def test_masked_diffusion_equivalent_ratio_is_the_weighted_moment_ratio(eps):
    """w = 1/m on U[ε, 1 − ε]: m_eq = E[m(1 − m)] / E[1 − m] (→ 1/3 as ε → 0)."""
    law = T.masked_diffusion_law(eps)
    e_m2 = ((1 - eps) ** 3 - eps**3) / (3 * (1 - 2 * eps))
    assert T.equivalent_fixed_ratio(law) == pytest.approx((0.5 - e_m2) / 0.5, rel=1e-10)
    assert abs(T.equivalent_fixed_ratio(T.masked_diffusion_law(1e-9)) - 1 / 3) < 1e-8
    assert law.weighted and np.allclose(law.loss_weights, 1 / law.ratios)


def test_weighted_law_population_predictor_is_its_equivalent_fixed_ratio():
    """Same vector (scale included) as fixed m_eq; dropping the weight changes it."""
    view = C.make_covariance("two_scale", 80).view(0)
    law = T.masked_diffusion_law(0.01)
    m_eq = T.equivalent_fixed_ratio(law)
    beta = T.population_coefficients(view, law)
    np.testing.assert_allclose(beta, T.population_coefficients(view, m_eq), rtol=1e-9, atol=1e-12)
    unweighted = T.RatioLaw(law.ratios, law.weights, "unweighted")
    assert np.max(np.abs(T.population_coefficients(view, unweighted) - beta)) > 1e-3


def test_weighted_minimum_norm_interpolation_ignores_the_weights():
    """n E[m] < p − 1, λ = 0: every row is interpolated, so the weight cannot matter (exact symmetry θ_g w_g)."""
    cov = C.make_covariance("ar1", 60, rho=0.8)
    law = T.masked_diffusion_law(1e-3)
    unweighted = T.RatioLaw(law.ratios, law.weights, "unweighted")
    weighted_risk = T.pretraining_risk(cov, law, 40, test=0.5).risk
    assert weighted_risk == pytest.approx(T.pretraining_risk(cov, unweighted, 40, test=0.5).risk, rel=1e-8)
    # with a ridge the weight matters
    assert abs(T.pretraining_risk(cov, law, 300, test=0.5, ridge=0.05).risk
               - T.pretraining_risk(cov, unweighted, 300, test=0.5, ridge=0.05).risk) > 0.03


@pytest.mark.parametrize(("family", "n", "ridge"), [("ar1", 300, 0.05), ("two_scale", 120, 0.1)])
def test_weighted_law_risk_matches_weighted_monte_carlo(family, n, ridge):
    """Masked diffusion's law (U[ε, 1 − ε], loss 1/m) with a ridge: theory within 4 SE + 3% of weighted fits,
    and nearer to them than the unweighted law's theory."""
    cov = C.make_covariance(family, 60)
    law = T.masked_diffusion_law(1e-3)
    sampler = M.R2MAE(1e-3, 1 - 1e-3, per="sample")
    weighted = T.pretraining_risk(cov, law, n, test=0.5, ridge=ridge).risk
    unweighted = T.pretraining_risk(cov, T.RatioLaw(law.ratios, law.weights, "u"), n, test=0.5, ridge=ridge).risk
    frame, _ = S.simulate_pretraining(cov, sampler, n, tests={"t": 0.5}, reps=150, seed=7, ridge=ridge,
                                      loss_weight="inverse")
    mean, se = mc_summary(frame["risk"])
    assert abs(mean - weighted) < 4 * se + 0.03 * weighted
    assert abs(mean - weighted) < abs(mean - unweighted)


def test_weighted_fit_is_least_squares_on_rescaled_rows():
    cov = C.make_covariance("ar1", 30, rho=0.7)
    rng = np.random.default_rng(0)
    u, y = S.masked_design(cov, 0, M.R2MAE(0.2, 0.8, per="sample"), 200, rng, loss_weight="inverse")
    u0, y0 = S.masked_design(cov, 0, M.R2MAE(0.2, 0.8, per="sample"), 200, np.random.default_rng(0))
    scale = y / y0
    np.testing.assert_allclose(u, u0 * scale[:, None], rtol=1e-12)
    assert np.all((scale >= 1 / np.sqrt(0.8) - 1e-12) & (scale <= 1 / np.sqrt(0.2) + 1e-12))


# ------------------------------------------------------------------------------ per-batch ratios
def test_per_batch_risk_matches_monte_carlo_and_differs_from_per_sample():
    """Few batches (n = 192, batches of 64): the conditional deterministic equivalent averaged over draws."""
    cov = C.make_covariance("ar1", 60, rho=0.8)
    law = M.R2MAE(0.1, 0.7, per="batch")
    mean_theory, se_theory = T.per_batch_risk(cov, law, 192, batch_size=64, draws=40, seed=3, test=0.4)
    frame, _ = S.simulate_pretraining(cov, law, 192, tests={"t": 0.4}, reps=200, seed=5, batch_size=64)
    mean, se = mc_summary(frame["risk"])
    assert abs(mean - mean_theory) < 4 * np.hypot(se, se_theory) + 0.05 * mean_theory
    per_sample = T.pretraining_risk(cov, M.R2MAE(0.1, 0.7, per="sample"), 192, test=0.4).risk
    assert mean_theory > per_sample  # random group proportions add risk here
    again = T.per_batch_risk(cov, law, 192, batch_size=64, draws=40, seed=3, test=0.4)
    assert again == (mean_theory, se_theory)


def test_multi_scale_family_mixes_ring_ar1_scales():
    cov = C.make_covariance("multi_scale", 50, rhos=[0.3, 0.9], weights=[1.0, 3.0])
    expected = 0.25 * C.make_covariance("ar1", 50, rho=0.3).matrix + 0.75 * C.make_covariance("ar1", 50,
                                                                                                 rho=0.9).matrix
    np.testing.assert_allclose(cov.matrix, expected, atol=1e-12)
    assert cov.circulant and cov.params["weights"] == (0.25, 0.75)
