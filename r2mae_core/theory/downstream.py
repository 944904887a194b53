"""Downstream ("universal representation") theory: a linear probe on the masked autoencoder's features.

The pretrained linear MAE gives the representation z = Wᵀx of an *unmasked* input, column j of W being the
masked predictor of x_j. For a circulant Σ every column is a cyclic shift of column 0, so W is circulant and the
real Fourier basis diagonalises everything: at Fourier index k, Σ has eigenvalue λ_k, W has eigenvalue
h_k = DFT(w_0)_k (the *spectral filter* the mask ratio learns) and z has variance ν_k = λ_k h_k².

A task y = θᵀx + ε with Fourier coordinates θ_k then reads y = Σ_k (θ_k / h_k) z_k + ε: a Gaussian linear model
with feature spectrum ν, cross-moment E[z_k y] = h_k λ_k θ_k and E[y²] = Σ λ θ² + σ_ε². Its minimum-norm (or
ridge) probe risk on n_down samples is the single-group deterministic equivalent of
:func:`r2mae_core.theory.ridge_equivalent` (Hastie et al. 2022). With n_down ≥ p the minimum-norm probe is
invariant to any invertible W, so the ratio only matters for n_down < p or a ridge probe.

W is the *mean* representation w̄ = E[ŵ] at the pretraining sample size (or the population β* when
``n_pretrain`` is None); the fit's fluctuation around it is not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..masking import RatioSampler
from .covariances import Covariance
from .risk import RatioLaw, check_sizes, mean_coefficients, population_coefficients, ridge_equivalent

__all__ = ["Task", "band_task", "frequency_bands", "representation_filter", "probe_inputs", "probe_risk",
           "band_gain"]


def frequency_bands(p: int) -> np.ndarray:
    """(p,) normalised frequency |f| / (p/2) ∈ [0, 1] of each DFT index (0 = constant, 1 = Nyquist)."""
    k = np.arange(p)
    return np.minimum(k, p - k) / (p / 2)


@dataclass(frozen=True)
class Task:
    """A downstream regression task in Fourier coordinates: y = Σ_k θ_k x̃_k + ε, signal variance 1.

    Attributes
    ----------
    name
        Label (e.g. "coarse", "fine").
    low, high
        The band of normalised frequencies θ lives on (flat coefficients inside, 0 outside).
    noise
        σ_ε² (the signal Σ λ_k θ_k² is normalised to 1, so 1/noise is the SNR).
    """

    name: str
    low: float
    high: float
    noise: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 1.0:
            raise ValueError(f"task band=({self.low!r}, {self.high!r}) is not allowed: use 0 <= low < high <= 1")
        if not self.noise >= 0:
            raise ValueError(f"task noise={self.noise!r} is not allowed: use a number >= 0")

    def coefficients(self, spectrum: np.ndarray) -> np.ndarray:
        """(p,) θ_k: flat on the band, scaled so that Σ_k λ_k θ_k² = 1."""
        f = frequency_bands(spectrum.size)
        theta = ((f >= self.low) & (f <= self.high)).astype(np.float64)
        signal = float(spectrum @ theta**2)
        if not signal > 0:
            raise ValueError(f"task {self.name!r} band ({self.low}, {self.high}) holds no frequency of p="
                             f"{spectrum.size}: widen it")
        return theta / np.sqrt(signal)


def band_task(name: str, low: float, high: float, noise: float = 0.1) -> Task:
    """Shorthand constructor for :class:`Task`."""
    return Task(name, float(low), float(high), float(noise))


def representation_filter(cov: Covariance, train: float | RatioSampler | RatioLaw,
                          n_pretrain: float | None = None, *, ridge: float = 0.0) -> np.ndarray:
    """(p,) eigenvalues h_k of the circulant W learned with ratio law ``train`` (DFT of column 0).

    ``n_pretrain=None`` uses the population predictor β*; otherwise the mean fit w̄ at that sample size.
    """
    if not cov.circulant:
        raise ValueError(f"covariance {cov.name!r} is not circulant: the downstream theory needs a ring family")
    view = cov.view(0)
    coef = (population_coefficients(view, train) if n_pretrain is None
            else mean_coefficients(view, train, n_pretrain, ridge=ridge))
    column = np.concatenate([[0.0], view.basis @ coef])  # weight of x_k in predicting x_0 (w_00 = 0)
    return np.fft.fft(column).real  # symmetric column → real spectrum


def probe_inputs(spectrum: np.ndarray, filter_: np.ndarray, task: Task) -> tuple[np.ndarray, np.ndarray, float]:
    """(ν, cross, E[y²]) of the probe problem: ν = λh², cross = hλθ, E[y²] = Σλθ² + σ_ε²."""
    theta = task.coefficients(spectrum)
    nu = spectrum * filter_**2
    return nu, filter_ * spectrum * theta, float(spectrum @ theta**2 + task.noise)


def probe_risk(spectrum: np.ndarray, filter_: np.ndarray, task: Task, n_down: int, *,
               ridge: float = 0.0) -> float:
    """Deterministic-equivalent test risk of the probe y ≈ αᵀz on ``n_down`` labelled samples."""
    if isinstance(n_down, bool) or not isinstance(n_down, int | np.integer) or n_down < 1:
        raise ValueError(f"n_down={n_down!r} is not allowed: use an integer >= 1 (labelled downstream samples)")
    check_sizes(ridge=ridge)
    nu, cross, y_var = probe_inputs(spectrum, filter_, task)
    keep = nu > 1e-14 * max(float(nu.max()), 1e-300)  # directions the representation erased: pure noise
    out = ridge_equivalent(nu[keep][None, :], cross[keep][None, :], np.ones(1), float(n_down), ridge, y_var,
                           test_b=nu[keep], test_c=cross[keep], test_y_var=y_var)
    return float(out["risk"])


def band_gain(spectrum: np.ndarray, filter_: np.ndarray, low: float, high: float) -> float:
    """Per-scale recovery: mean filter value h_k over the band [low, high] of normalised frequencies, divided by
    max_k |h_k| (scale-free: 1 = passed as strongly as the best-passed frequency, 0 = erased)."""
    f = frequency_bands(spectrum.size)
    band = (f >= low) & (f <= high)
    scale = float(np.max(np.abs(filter_)))
    return float(np.mean(filter_[band]) / scale) if scale > 0 else 0.0
