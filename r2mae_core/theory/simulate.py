"""Monte Carlo ground truth for :mod:`r2mae_core.theory`: exact fits on sampled data and masks.

Every function takes a seed, derives child seeds per repetition (``numpy.random.SeedSequence``) and never
touches global RNG state: same seed, same numbers. Risks of a fitted predictor are computed *exactly* over
fresh data and masks (the test expectation is a quadratic form), so the only Monte Carlo noise is that of the
training sample, reported as a standard error over repetitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import linalg

from .._rng import check_seed, child_seeds, numpy_generator
from ..masking import Fixed, RatioSampler
from .covariances import Covariance, TargetView
from .risk import RatioLaw, as_law, check_sizes

__all__ = ["masked_design", "min_norm_fit", "fit_masked_target", "masked_risk", "simulate_pretraining",
           "simulate_probe"]


def _sampler(law: float | RatioSampler) -> RatioSampler:
    if isinstance(law, RatioSampler):
        return law
    return Fixed(float(law)) if not isinstance(law, bool) else Fixed(law)  # Fixed validates


def _loss_weight(loss_weight):
    """The loss-weight function w(m): None (w = 1), ``"inverse"`` (w = 1/m) or a callable."""
    if loss_weight is None or callable(loss_weight):
        return loss_weight
    if loss_weight == "inverse":
        return lambda m: 1.0 / m
    raise ValueError(f"loss_weight={loss_weight!r} is not allowed: use None, 'inverse' (w = 1/m) or a callable")


def masked_design(cov: Covariance, target: int, train: float | RatioSampler, n: int,
                  rng: np.random.Generator, *, batch_size: int = 32,
                  loss_weight=None) -> tuple[np.ndarray, np.ndarray]:
    """Training rows of target j: u = (v ⊙ x)_{−j} and y = x_j over the samples where j is masked.

    Samples are drawn in batches of ``batch_size``; the sampler is called once per batch with progress
    t = batch / (n_batches − 1), so ``per="batch"`` R²MAE shares a ratio within a batch and schedules move.
    ``loss_weight`` w(m) (None, ``"inverse"`` = 1/m, or a callable) returns the rows √w(m_i)·(u_i, y_i), whose
    least-squares fit minimises Σ_i w(m_i)(y_i − ŵᵀu_i)² (masked diffusion's weighted loss).

    Returns
    -------
    tuple of numpy.ndarray
        U (n_j, p − 1) and y (n_j,), n_j ~ Binomial-like with mean n E[m].
    """
    sampler = _sampler(train)
    weight_fn = _loss_weight(loss_weight)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n={n!r} is not allowed: use an integer >= 1 (training samples)")
    n_batches = -(-int(n) // batch_size)
    progress = np.linspace(0.0, 1.0, n_batches) if n_batches > 1 else np.zeros(1)
    ratios = np.concatenate([sampler.sample(batch_size, generator=rng, progress=float(t)) for t in progress])
    ratios = ratios[: int(n)]
    chosen = rng.random(ratios.size) < ratios  # j masked with probability m_i
    ratios = ratios[chosen]
    x = rng.standard_normal((ratios.size, cov.p)) @ cov.sqrt  # (n_j, p), x ~ N(0, Σ)
    visible = rng.random(x.shape) >= ratios[:, None]
    u = np.delete(x * visible, target, axis=1)
    if weight_fn is None:
        return u, x[:, target]
    scale = np.sqrt(np.asarray(weight_fn(ratios), dtype=np.float64))
    return u * scale[:, None], x[:, target] * scale


def min_norm_fit(u: np.ndarray, y: np.ndarray, *, ridge: float = 0.0) -> np.ndarray:
    """argmin ‖w‖ over the minimisers of (1/n)‖y − Uw‖² + λ‖w‖² (λ = 0: minimum-norm least squares)."""
    n, q = u.shape
    if n == 0:
        return np.zeros(q)
    if ridge > 0:
        if n >= q:
            return linalg.solve(u.T @ u / n + ridge * np.eye(q), u.T @ y / n, assume_a="pos")
        return u.T @ linalg.solve(u @ u.T / n + ridge * np.eye(n), y / n, assume_a="pos")
    if abs(n - q) > 0.2 * q:
        # well away from the interpolation peak the Gram matrix is well conditioned (κ ≲ 500 at n = 1.2 q):
        # Cholesky on UᵀU (n > q) or UUᵀ (n < q, w = Uᵀ(UUᵀ)⁻¹y) is several times faster than an SVD
        try:
            if n > q:
                return linalg.cho_solve(linalg.cho_factor(u.T @ u, check_finite=False), u.T @ y)
            return u.T @ linalg.cho_solve(linalg.cho_factor(u @ u.T, check_finite=False), y)
        except linalg.LinAlgError:
            pass  # rank-deficient draw: fall back to the SVD
    return linalg.lstsq(u, y, lapack_driver="gelsd", check_finite=False)[0]


def fit_masked_target(cov: Covariance, target: int, train: float | RatioSampler, n: int, seed: int, *,
                      ridge: float = 0.0, batch_size: int = 32, loss_weight=None) -> np.ndarray:
    """One exact fit ŵ_j (coordinates ≠ j, length p − 1) from a fresh training sample of size n (``loss_weight``:
    see :func:`masked_design`)."""
    u, y = masked_design(cov, target, train, n, numpy_generator(check_seed(seed)), batch_size=batch_size,
                         loss_weight=loss_weight)
    if loss_weight is not None and ridge == 0 and u.shape[0]:
        # weights spread the rows' scales (1/m up to 1/ε): the SVD keeps the accuracy a Gram matrix would square
        return linalg.lstsq(u, y, lapack_driver="gelsd", check_finite=False)[0]
    return min_norm_fit(u, y, ridge=ridge)


def masked_risk(view: TargetView, w: np.ndarray, test: float | RatioSampler | RatioLaw) -> float:
    """Exact E[(x_j − wᵀ(v ⊙ x)_{−j})² | j masked] at test ratio law P_t (unit-variance x_j).

    = 1 − 2 E[1 − m] wᵀΣ_{−j,j} + wᵀ(E[(1 − m)²] Σ_{−j} + E[m(1 − m)] I) w, expectations over m ~ P_t.
    """
    law = as_law(test)
    m = law.ratios
    a, b, c = law.expect((1 - m) ** 2), law.expect(m * (1 - m)), law.expect(1 - m)
    we = view.basis.T @ w
    return float(1.0 - 2.0 * c * (view.cross @ we) + a * (view.eigenvalues @ we**2) + b * (we @ we))


def simulate_pretraining(cov: Covariance, train: float | RatioSampler, n: int, *,
                         tests: dict[str, float | RatioSampler | RatioLaw], reps: int, seed: int,
                         ridge: float = 0.0, batch_size: int = 32, keep_weights: bool = False,
                         loss_weight=None) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """Monte Carlo of the masked-prediction risk: ``reps`` independent training samples per analysed target.

    Repetition r fits target ``cov.targets[r % len(targets)]`` (circulant families: always target 0).
    ``loss_weight`` w(m) weights each training sample's loss (:func:`masked_design`); the test risk is unweighted.

    Returns
    -------
    tuple
        Tidy frame (rep, seed, target, test, risk) and, with ``keep_weights``, the mean fitted ŵ per target
        in Σ_{−j}'s eigenbasis (what :func:`r2mae_core.theory.mean_coefficients` predicts).
    """
    check_sizes(ridge=ridge)
    _loss_weight(loss_weight)
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 2:
        raise ValueError(f"reps={reps!r} is not allowed: use an integer >= 2 (standard errors need two)")
    laws = {name: as_law(t) for name, t in tests.items()}
    rows, sums, counts = [], {}, {}
    for rep, rep_seed in enumerate(child_seeds(check_seed(seed), reps)):
        target = cov.targets[rep % len(cov.targets)]
        view = cov.view(target)
        w = fit_masked_target(cov, target, train, n, rep_seed, ridge=ridge, batch_size=batch_size,
                              loss_weight=loss_weight)
        for name, law in laws.items():
            rows.append({"rep": rep, "seed": rep_seed, "target": target, "test": name,
                         "risk": masked_risk(view, w, law)})
        if keep_weights:
            sums[target] = sums.get(target, 0.0) + view.basis.T @ w
            counts[target] = counts.get(target, 0) + 1
    return pd.DataFrame(rows), {t: sums[t] / counts[t] for t in sums}


def simulate_probe(spectrum: np.ndarray, cross: np.ndarray, y_var: float, n_down: int, *, reps: int,
                   seed: int, ridge: float = 0.0) -> pd.DataFrame:
    """Monte Carlo of a linear probe on Gaussian features with diagonal covariance (eigen-coordinates).

    Features z ~ N(0, diag ν), target y with E[z y] = ``cross`` and E[y²] = ``y_var`` (jointly Gaussian:
    y = αᵀz + e with α = cross/ν and independent e). Exact risk of the fitted α̂:
    E[(y − α̂ᵀz)²] = y_var − 2 crossᵀα̂ + Σ ν α̂². Exact in distribution for any rotated problem.
    """
    check_sizes(ridge=ridge)
    if isinstance(n_down, bool) or not isinstance(n_down, int | np.integer) or n_down < 1:
        raise ValueError(f"n_down={n_down!r} is not allowed: use an integer >= 1 (labelled downstream samples)")
    nu = np.asarray(spectrum, dtype=np.float64)
    cross = np.asarray(cross, dtype=np.float64)
    alpha = np.divide(cross, nu, out=np.zeros_like(cross), where=nu > 0)
    noise = float(y_var - np.sum(nu * alpha**2))
    rows = []
    for rep, rep_seed in enumerate(child_seeds(check_seed(seed), reps)):
        rng = numpy_generator(rep_seed)
        z = rng.standard_normal((int(n_down), nu.size)) * np.sqrt(nu)
        y = z @ alpha + rng.standard_normal(int(n_down)) * np.sqrt(max(noise, 0.0))
        fit = min_norm_fit(z, y, ridge=ridge)
        rows.append({"rep": rep, "seed": rep_seed,
                     "risk": float(y_var - 2.0 * cross @ fit + nu @ fit**2)})
    return pd.DataFrame(rows)
