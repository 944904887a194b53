"""Covariance families for the linear theory of masked pretraining (notebook ``01_linear_theory``).

Every family is a *correlation* matrix (unit diagonal). That is what makes the masked second moment

    Σ̃(m) = (1 − m)² Σ + m (1 − m) diag Σ = (1 − m)² Σ + m (1 − m) I

an affine function of Σ: one eigendecomposition serves every mask ratio (see :mod:`r2mae_core.theory`).

Families
--------
- ``isotropic``: Σ = I (nothing to predict; the closed forms of Hastie et al. 2022 apply exactly).
- ``ar1``: stationary AR(1) on a ring, Σ_kl ∝ Σ_t ρ^{|k − l + t p|} (the periodised ρ^{|k−l|}): local
  correlation of one length scale, like neighbouring pixels or bases.
- ``two_scale``: a mixture w·AR(ρ_coarse) + (1 − w)·AR(ρ_fine) on the ring: a fine and a coarse scale.
- ``multi_scale``: a mixture Σ_k w_k AR(ρ_k) of several ring AR(1) scales (default ρ = 0.3, 0.8, 0.95, 0.995
  with equal weights: structure from the nearest neighbour to a sizeable fraction of the ring).
- ``spiked``: 1 + a few delocalised spikes (low-frequency Fourier pairs of strength s_k), then rescaled to
  unit diagonal: every coordinate's predictable part is small (the regime where masking learns little).
- ``power_law``: eigenvalues λ_i ∝ i^(−α) in a Haar-random orthonormal basis, rescaled to unit diagonal
  (D^{-1/2} Σ D^{-1/2}; the rescaling perturbs the spectrum slightly).

The ring families are circulant: every coordinate is equivalent (a cyclic shift maps one target onto
another), so one target gives the exact average over targets. ``power_law`` is not: its per-target
quantities are averaged over ``n_targets`` sampled coordinates and the spread is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .._rng import check_seed, numpy_generator
from ..validation import check_int

__all__ = ["Covariance", "TargetView", "make_covariance", "FAMILIES", "check_correlation"]

FAMILIES = ("isotropic", "ar1", "two_scale", "multi_scale", "spiked", "power_law")


def _check_size(p: int) -> int:
    if isinstance(p, bool) or not isinstance(p, int | np.integer) or p < 3:
        raise ValueError(f"p={p!r} is not allowed: use an integer >= 3 (the data dimension)")
    return int(p)


def _check_open(name: str, value: float, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating) or not low < value < high:
        raise ValueError(f"{name}={value!r} is not allowed: use a number in the open interval ({low:g}, {high:g})")
    return float(value)


def check_correlation(matrix: np.ndarray, *, atol: float = 1e-8) -> np.ndarray:
    """Validate a correlation matrix: square, symmetric, unit diagonal, positive semi-definite.

    Raises
    ------
    ValueError
        One line naming the failed property and the offending value.
    """
    a = np.asarray(matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise ValueError(f"covariance shape={a.shape} is not allowed: use a square matrix of size >= 3")
    if not np.all(np.isfinite(a)):
        raise ValueError("covariance has non-finite entries: use a finite matrix")
    asym = float(np.max(np.abs(a - a.T)))
    if asym > atol:
        raise ValueError(f"covariance is not symmetric (max |Σ - Σᵀ| = {asym:.3g}): use a symmetric matrix")
    diag_dev = float(np.max(np.abs(np.diag(a) - 1.0)))
    if diag_dev > atol:
        raise ValueError(f"covariance diagonal deviates from 1 by {diag_dev:.3g}: the theory needs a correlation "
                         "matrix (use Covariance.from_matrix(..., normalise=True))")
    low = float(np.linalg.eigvalsh(a)[0])
    if low < -atol * a.shape[0]:
        raise ValueError(f"covariance is not positive semi-definite (smallest eigenvalue {low:.3g}): "
                         "use a PSD matrix")
    return a


def _ring_ar1(p: int, rho: float) -> np.ndarray:
    """First row of the periodised AR(1) correlation: Σ_t ρ^{|k + tp|} = (ρ^k + ρ^{p−k}) / (1 − ρ^p), normalised."""
    k = np.arange(p, dtype=np.float64)
    row = (rho**k + rho ** (p - k)) / (1.0 - rho**p)
    return row / row[0]


def _circulant(row: np.ndarray) -> np.ndarray:
    p = row.size
    idx = (np.arange(p)[None, :] - np.arange(p)[:, None]) % p
    return row[idx]


@dataclass(frozen=True)
class TargetView:
    """What the theory needs about one masked target j, in the eigenbasis of Σ_{−j,−j}.

    Attributes
    ----------
    target
        The coordinate j.
    eigenvalues
        (p − 1,) eigenvalues λ_i of Σ_{−j,−j} (the other coordinates).
    cross
        (p − 1,) coordinates s_i = u_iᵀ Σ_{−j,j} of the cross-covariance in that eigenbasis.
    basis
        (p − 1, p − 1) eigenvectors u_i (columns), mapping eigen-coordinates back to coordinates ≠ j.
    """

    target: int
    eigenvalues: np.ndarray
    cross: np.ndarray
    basis: np.ndarray


@dataclass(frozen=True)
class Covariance:
    """A correlation matrix with the structure the theory and the simulation exploit.

    Attributes
    ----------
    name
        Family name (one of :data:`FAMILIES` or ``"custom"``).
    matrix
        (p, p) correlation matrix.
    circulant
        True when every coordinate is equivalent (ring families): one target is exact.
    params
        The family's parameters, for labels and cache keys.
    targets
        Coordinates whose masked prediction is analysed: ``(0,)`` for circulant families, a seeded sample
        otherwise.
    """

    name: str
    matrix: np.ndarray = field(repr=False)
    circulant: bool
    params: dict
    targets: tuple[int, ...]

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
            raise ValueError(f"matrix of shape {m.shape} is not allowed: use a square (p, p) matrix, p >= 2")
        if not np.all(np.isfinite(m)) or not np.allclose(m, m.T, rtol=0, atol=1e-10):
            raise ValueError("matrix is not allowed: use a finite symmetric matrix")
        jitter = 1e-9 * max(1.0, float(np.abs(np.diag(m)).max()))
        try:
            np.linalg.cholesky(m + jitter * np.eye(len(m)))
        except np.linalg.LinAlgError:
            low = float(np.linalg.eigvalsh(m)[0])
            raise ValueError(f"matrix is not allowed: a covariance is positive semi-definite (smallest eigenvalue "
                             f"{low:.3g})") from None

    @property
    def p(self) -> int:
        return int(self.matrix.shape[0])

    def describe(self) -> str:
        inner = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items()
                          if k not in ("p", "seed", "n_targets"))
        return f"{self.name}({inner})" if inner else self.name

    @cached_property
    def eigh(self) -> tuple[np.ndarray, np.ndarray]:
        """(eigenvalues ascending, eigenvectors) of the full matrix (cached)."""
        lam, vec = np.linalg.eigh(self.matrix)
        return np.clip(lam, 0.0, None), vec

    @cached_property
    def sqrt(self) -> np.ndarray:
        """Σ^{1/2} (symmetric square root), for sampling x = Σ^{1/2} z."""
        lam, vec = self.eigh
        return (vec * np.sqrt(lam)) @ vec.T

    def view(self, target: int) -> TargetView:
        """Eigen-decomposition of Σ_{−j,−j} and the cross-covariance coordinates for target j (O(p³))."""
        return self._views[self.targets.index(target)] if target in self.targets else self._view(target)

    @cached_property
    def _views(self) -> tuple[TargetView, ...]:
        return tuple(self._view(j) for j in self.targets)

    def _view(self, j: int) -> TargetView:
        if not 0 <= j < self.p:
            raise ValueError(f"target={j!r} is not allowed: use a coordinate in [0, {self.p - 1}]")
        others = np.delete(np.arange(self.p), j)
        lam, basis = np.linalg.eigh(self.matrix[np.ix_(others, others)])
        return TargetView(j, np.clip(lam, 0.0, None), basis.T @ self.matrix[others, j], basis)

    def views(self) -> tuple[TargetView, ...]:
        """Views of every analysed target."""
        return self._views

    def fourier_spectrum(self) -> np.ndarray:
        """(p,) eigenvalues of a circulant Σ at the DFT frequencies k = 0..p−1 (real FFT of the first row)."""
        if not self.circulant:
            raise ValueError(f"fourier_spectrum is only defined for circulant families, not {self.name!r}")
        return np.fft.fft(self.matrix[0]).real

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, name: str = "custom", *, normalise: bool = False,
                    n_targets: int = 8, seed: int = 0) -> Covariance:
        """Wrap a user matrix (validated); ``normalise=True`` rescales a covariance to its correlation."""
        a = np.asarray(matrix, dtype=np.float64)
        if normalise:
            d = np.sqrt(np.clip(np.diag(a), 1e-300, None)) if a.ndim == 2 and a.shape[0] == a.shape[1] else 1.0
            a = a / np.outer(d, d)
        a = check_correlation(a)
        p = a.shape[0]
        return cls(name, a, False, {"p": p}, _sample_targets(p, n_targets, seed))


def _sample_targets(p: int, n_targets: int, seed: int) -> tuple[int, ...]:
    check_int("n_targets", n_targets, 1)
    rng = numpy_generator(check_seed(seed))
    return tuple(sorted(int(j) for j in rng.choice(p, size=min(n_targets, p), replace=False)))


def make_covariance(family: str, p: int, **params) -> Covariance:
    """Build a covariance family (see the module docstring for the formulas).

    Parameters
    ----------
    family
        One of :data:`FAMILIES`.
    p
        Dimension (>= 3).
    **params
        ``ar1``: rho ∈ (0, 1). ``two_scale``: rho_fine, rho_coarse ∈ (0, 1), coarse_weight ∈ (0, 1).
        ``multi_scale``: rhos (>= 2 correlations in (0, 1)), weights (one > 0 per rho; normalised).
        ``spiked``: strengths (sequence of spike strengths > 0, relative to the unit bulk), placed on Fourier
        frequencies 1, 2, .... ``power_law``: alpha > 0, seed (basis), n_targets (sampled targets).

    Returns
    -------
    Covariance
    """
    p = _check_size(p)
    if family == "isotropic":
        _no_extra(family, params, set())
        return Covariance("isotropic", np.eye(p), True, {"p": p}, (0,))
    if family == "ar1":
        _no_extra(family, params, {"rho"})
        rho = _check_open("rho", params.get("rho", 0.9))
        return Covariance("ar1", _circulant(_ring_ar1(p, rho)), True, {"p": p, "rho": rho}, (0,))
    if family == "two_scale":
        _no_extra(family, params, {"rho_fine", "rho_coarse", "coarse_weight"})
        fine = _check_open("rho_fine", params.get("rho_fine", 0.5))
        coarse = _check_open("rho_coarse", params.get("rho_coarse", 0.98))
        weight = _check_open("coarse_weight", params.get("coarse_weight", 0.5))
        row = weight * _ring_ar1(p, coarse) + (1 - weight) * _ring_ar1(p, fine)
        return Covariance("two_scale", _circulant(row), True,
                          {"p": p, "rho_fine": fine, "rho_coarse": coarse, "coarse_weight": weight}, (0,))
    if family == "multi_scale":
        _no_extra(family, params, {"rhos", "weights"})
        rhos = params.get("rhos", (0.3, 0.8, 0.95, 0.995))
        if not isinstance(rhos, list | tuple) or len(rhos) < 2:
            raise ValueError(f"rhos={rhos!r} is not allowed: use a list of at least two correlations in (0, 1)")
        rhos = tuple(_check_open("rhos", r) for r in rhos)
        weights = params.get("weights", tuple(1.0 / len(rhos) for _ in rhos))
        if not isinstance(weights, list | tuple) or len(weights) != len(rhos) or any(
                isinstance(w, bool) or not isinstance(w, int | float) or not w > 0 for w in weights):
            raise ValueError(f"weights={weights!r} is not allowed: use {len(rhos)} positive weights (one per rho)")
        weights = tuple(float(w) / float(sum(weights)) for w in weights)
        row = sum(w * _ring_ar1(p, r) for w, r in zip(weights, rhos, strict=True))
        return Covariance("multi_scale", _circulant(row), True, {"p": p, "rhos": rhos, "weights": weights}, (0,))
    if family == "spiked":
        _no_extra(family, params, {"strengths"})
        strengths = params.get("strengths", (p / 10, p / 40))
        if not isinstance(strengths, list | tuple | np.ndarray) or not len(strengths) \
                or len(strengths) >= p // 2 or any(isinstance(s, bool) or not isinstance(s, int | float | np.number)
                                                   or not (np.isfinite(s) and s > 0) for s in strengths):
            raise ValueError(f"strengths={strengths!r} is not allowed: use a list of 1..p/2-1 positive spike "
                             "strengths")
        strengths = tuple(float(s) for s in strengths)
        k = np.arange(p)
        # a cos/sin Fourier pair at frequency f has projector (2/p) cos(2π f (k−l)/p): eigenvalue s twice
        row = np.zeros(p)
        row[0] = 1.0
        for f, s in enumerate(strengths, start=1):
            row += s * (2.0 / p) * np.cos(2 * np.pi * f * k / p)
        row /= row[0]
        return Covariance("spiked", _circulant(row), True, {"p": p, "strengths": strengths}, (0,))
    if family == "power_law":
        _no_extra(family, params, {"alpha", "seed", "n_targets"})
        alpha = params.get("alpha", 1.0)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
            raise ValueError(f"alpha={alpha!r} is not allowed: use a number > 0")
        seed = check_seed(params.get("seed", 0))
        n_targets = params.get("n_targets", 8)
        rng = numpy_generator(seed)
        q, r = np.linalg.qr(rng.standard_normal((p, p)))
        q = q * np.sign(np.diag(r))  # Haar
        lam = np.arange(1, p + 1, dtype=np.float64) ** (-float(alpha))
        a = (q * (lam * p / lam.sum())) @ q.T
        d = np.sqrt(np.diag(a))
        a = a / np.outer(d, d)
        a = (a + a.T) / 2
        np.fill_diagonal(a, 1.0)
        return Covariance("power_law", a, False, {"p": p, "alpha": float(alpha), "seed": seed,
                                                  "n_targets": n_targets},
                          _sample_targets(p, n_targets, seed + 1))
    raise ValueError(f"family={family!r} is not allowed: use one of {', '.join(FAMILIES)}")


def _no_extra(family: str, params: dict, allowed: set[str]) -> None:
    extra = sorted(set(params) - allowed)
    if extra:
        allowed_txt = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"{family} parameter {extra[0]!r} is not allowed: use {allowed_txt}")
