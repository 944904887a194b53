r"""Closed-form (deterministic-equivalent) risks of masked pretraining as minimum-norm regression.

The model (notebook ``01_linear_theory``; our formulation of Dong, Wang & Kluger, NeurIPS 2025, derived from
its public description): x ~ N(0, Σ) with Σ a correlation matrix, every training sample gets a mask ratio
m ~ P (fixed, R²MAE, a schedule...) and visibility v_k ~ Bernoulli(1 − m); the linear masked autoencoder
x̂_j = w_jᵀ(v ⊙ x) decouples over targets j, and w_j is the minimum-norm (or ridge) least-squares fit of x_j on
u = (v ⊙ x)_{−j} over the samples where j is masked.

Given m, u has second moment C(m) = (1 − m)² Σ_{−j} + m(1 − m) I and cross-moment c(m) = (1 − m) Σ_{−j,j}.
The rows that enter target j's fit have the size-biased ratio law π(m) ∝ m P(m) and there are n_eff = n E[m]
of them. We treat the rows as a mixture of Gaussians over the ratio nodes g (Gaussian equivalence given the
ratio) and use the deterministic equivalent of ridge regression with heterogeneous rows (leave-one-out /
cavity argument; the homogeneous case is Hastie, Montanari, Rosset & Tibshirani, Ann. Stat. 2022, Thm. 5,
and Bach, SIAM J. Math. Data Sci. 2024):

.. math::

    \theta_g^{-1} = \lambda + \frac{1}{n_\mathrm{eff}}\sum_i \frac{\mu_{gi}}{1 + k_i},\qquad
    k_i = \sum_g \pi_g \theta_g \mu_{gi},\qquad
    \bar w_i = \frac{\sum_g \pi_g\theta_g c_{gi}}{1 + k_i}

with μ_gi the eigenvalues of C(m_g) (all C(m) share Σ_{−j}'s eigenvectors). The mean predictor w̄ = E[ŵ];
the fluctuation D_B = E[(ŵ − w̄)ᵀB(ŵ − w̄)] solves the linear system

.. math::

    D_h = \sum_g A_{hg}(r_g + D_g),\quad A_{hg} = \frac{\pi_g\theta_g^2}{n_\mathrm{eff}}
    \sum_i\frac{\mu_{hi}\mu_{gi}}{(1+k_i)^2},\qquad r_g = E_g[(y - \bar w^\top u)^2],

and D_B = Σ_g π_g θ_g² (r_g + D_g) (1/n_eff) Σ_i b_i μ_gi/(1 + k_i)². The test risk at a test ratio law with
moments (B, c_t) is R = 1 − 2 c_tᵀ w̄ + w̄ᵀ B w̄ + D_B. For one ratio node this is exactly the Hastie et al.
fixed point n_eff = Σ_i μ_i/(μ_i + κ) with κ = 1/θ, and R is their total risk. The parts are not theirs:
Hastie et al. split the excess risk into bias κ² Σ μ β²/(μ+κ)² / (1 − S) and variance σ² S / (1 − S), while
:class:`RiskTerms` splits R into the population predictor's risk, the mean fit's excess over it
(R(w̄) − R(β*)) and the fit's fluctuation around its mean (D_B): the totals agree, the bias and variance
columns of 01's figures are these parts, not Hastie et al.'s.

Ridgeless fits use a floor ridge of 1e-12 × the smallest positive eigenvalue (the λ → 0 limit; the error it
adds is of that relative order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .._rng import check_seed, child_seeds, numpy_generator
from ..masking import Fixed, RatioSampler
from .covariances import Covariance, TargetView

__all__ = ["RatioLaw", "as_law", "weighted_law", "masked_diffusion_law", "per_batch_risk",
           "ridge_equivalent", "RiskTerms", "pretraining_risk", "population_coefficients",
           "mean_coefficients", "equivalent_fixed_ratio", "isotropic_ridgeless_risk", "gaussian_ols_risk",
           "gaussian_minnorm_risk", "gamma_eff", "check_sizes"]

_HERMITE3 = ((-np.sqrt(3.0), 1 / 6), (0.0, 2 / 3), (np.sqrt(3.0), 1 / 6))
_RIDGE_FLOOR = 1e-12  # × the smallest positive eigenvalue: the λ → 0 limit to ~1e-10 relative


@dataclass(frozen=True)
class RatioLaw:
    """A mask-ratio law as quadrature nodes: E[f(m)] = Σ_g weights_g f(ratios_g).

    Build one with :func:`as_law` from a float (fixed ratio) or any :class:`~r2mae_core.masking.RatioSampler`;
    :func:`weighted_law` attaches a loss weight w(m) (``loss_weights`` = w at the nodes, default 1): a sample
    with ratio m then enters its targets' fits with loss weight w(m), as in masked diffusion's 1/t weighting
    (:func:`masked_diffusion_law`).
    """

    ratios: np.ndarray
    weights: np.ndarray
    label: str
    loss_weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        ratios = np.asarray(self.ratios, dtype=np.float64)
        weights = np.asarray(self.weights, dtype=np.float64)
        loss = np.ones_like(ratios) if self.loss_weights is None else np.asarray(self.loss_weights, np.float64)
        if loss.shape != ratios.shape or not np.all(np.isfinite(loss)) or np.any(loss <= 0):
            raise ValueError(f"loss_weights of shape {loss.shape} are not allowed: use one finite weight > 0 per "
                             "ratio node")
        object.__setattr__(self, "loss_weights", loss)
        if ratios.ndim != 1 or ratios.shape != weights.shape or not ratios.size:
            raise ValueError(f"ratios {ratios.shape} and weights {weights.shape} are not allowed: use two 1-D "
                             "arrays of one length >= 1")
        if not np.all(np.isfinite(ratios)) or np.any(ratios <= 0) or np.any(ratios >= 1):
            raise ValueError(f"ratios={ratios.tolist()!r} are not allowed: use mask ratios in the open interval "
                             "(0, 1)")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-9:
            raise ValueError(f"weights={weights.tolist()!r} are not allowed: use weights >= 0 that sum to 1")
        object.__setattr__(self, "ratios", ratios)
        object.__setattr__(self, "weights", weights)

    def expect(self, values: np.ndarray) -> float:
        return float(np.sum(self.weights * values))

    @property
    def mean(self) -> float:
        return self.expect(self.ratios)

    @property
    def weighted(self) -> bool:
        """True when some loss weight differs from 1."""
        return bool(np.any(self.loss_weights != 1.0))

    def size_biased(self) -> np.ndarray:
        """π_g ∝ m_g w_g: the ratio law among the samples where a given coordinate is masked."""
        pi = self.weights * self.ratios
        return pi / pi.sum()


def as_law(law: float | RatioSampler | RatioLaw, *, n_points: int = 24) -> RatioLaw:
    """Turn a fixed ratio, a ratio sampler or a law into quadrature nodes (``n_points`` per smooth piece)."""
    if isinstance(law, RatioLaw):
        return law
    if isinstance(law, bool):
        raise ValueError(f"ratio={law!r} is not allowed: use a mask ratio in the open interval (0, 1)")
    if isinstance(law, int | float | np.floating):
        law = Fixed(float(law))  # validates 0 < m < 1
    if not isinstance(law, RatioSampler):
        raise ValueError(f"ratio law={law!r} is not allowed: use a float in (0, 1) or a masking.RatioSampler")
    ratios, weights = law.quadrature(n_points=n_points)
    return RatioLaw(ratios, weights, law.describe())


def weighted_law(law: float | RatioSampler | RatioLaw, weight, *, n_points: int = 24,
                 label: str | None = None) -> RatioLaw:
    r"""A ratio law whose samples carry the loss weight w(m): the fit minimises Σ_i w(m_i)(y_i − ŵᵀu_i)².

    Parameters
    ----------
    law
        The ratio law P (a float, a :class:`~r2mae_core.masking.RatioSampler` or a :class:`RatioLaw`).
    weight
        Vectorised w(m) > 0 (a callable of the node ratios) or ``"inverse"`` for w(m) = 1/m.
    n_points, label
        Quadrature nodes per smooth piece; the label (default: P's, with the weight).

    Notes
    -----
    Weighted rows are the rows √w·(u, y) of an unweighted fit, so every closed form applies with the group
    moments C_g, c_g and E_g[y²] = 1 multiplied by w_g (the test risk stays unweighted).
    """
    base = as_law(law, n_points=n_points)
    if isinstance(weight, str):
        if weight != "inverse":
            raise ValueError(f"weight={weight!r} is not allowed: use 'inverse' (w = 1/m) or a callable w(m) > 0")
        fn, name = (lambda m: 1.0 / m), "1/m"
    elif callable(weight):
        fn, name = weight, "w(m)"
    else:
        raise ValueError(f"weight={weight!r} is not allowed: use 'inverse' (w = 1/m) or a callable w(m) > 0")
    values = np.broadcast_to(np.asarray(fn(base.ratios), dtype=np.float64), base.ratios.shape)
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"weight={name} is not allowed: it must be finite and > 0 at every ratio of the law")
    return RatioLaw(base.ratios, base.weights, label or f"{base.label} · loss {name}",
                    values * base.loss_weights)


def masked_diffusion_law(eps: float = 1e-3, *, n_points: int = 96) -> RatioLaw:
    r"""Masked diffusion's ratio law (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025): m ~ U[ε, 1 − ε],
    loss weight 1/m (the ELBO weight of the linear schedule, t ~ U(0, 1) masking each token with probability t).

    ε keeps the law inside (0, 1) as every ratio law here (LLaDA masks with probability (1 − ε)t + ε, ε = 1e-3).
    """
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating) or not 0 < eps < 0.5:
        raise ValueError(f"eps={eps!r} is not allowed: use a number in the open interval (0, 0.5)")
    nodes, w = np.polynomial.legendre.leggauss(int(n_points))
    ratios = eps + (1 - 2 * eps) * (nodes + 1) / 2
    return weighted_law(RatioLaw(ratios, w / w.sum(), f"U[{eps:g}, {1 - eps:g}]"), "inverse",
                        label=f"masked diffusion U[{eps:g}, {1 - eps:g}] · loss 1/m")


def check_sizes(**sizes: float) -> None:
    """Raise one clear ValueError for a non-positive sample size, aspect ratio or negative ridge."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValueError(f"{name}={value!r} is not allowed: use a number")
        if not np.isfinite(value):
            raise ValueError(f"{name}={value!r} is not allowed: use a finite number")
        if name == "ridge":
            if not value >= 0:
                raise ValueError(f"ridge={value!r} is not allowed: use a number >= 0")
        elif not value > 0:
            raise ValueError(f"{name}={value!r} is not allowed: use a number > 0")


def _check_counts(**counts: int) -> None:
    """Raise one clear ValueError for a sample size or dimension that is not an integer >= 1."""
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}={value!r} is not allowed: use an integer >= 1")


def gamma_eff(p: int, n: float, law: float | RatioSampler | RatioLaw) -> float:
    """Aspect ratio of one target's fit, γ_eff = (p − 1) / (n E[m]) (the interpolation peak is at 1)."""
    if isinstance(p, bool) or not isinstance(p, int | np.integer) or p < 2:
        raise ValueError(f"p={p!r} is not allowed: use an integer >= 2 (coordinates)")
    check_sizes(n=n)
    return (p - 1) / (n * as_law(law).mean)


@dataclass(frozen=True)
class RiskTerms:
    """Risk of one fitted predictor and its parts (all per target, averaged over analysed targets).

    risk = irreducible + bias + variance, where irreducible = R(β*) (population predictor of the training
    law, evaluated at the test law), bias = R(w̄) − R(β*) (the mean predictor's excess) and variance = D_B
    (the fit's fluctuation around its mean). ``target_sd`` is the spread of ``risk`` over sampled targets
    (0 for circulant families).
    """

    risk: float
    irreducible: float
    bias: float
    variance: float
    gamma_eff: float
    n_eff: float
    target_sd: float = 0.0


def ridge_equivalent(mu: np.ndarray, c: np.ndarray, pi: np.ndarray, n_eff: float, ridge: float,
                     y_var: np.ndarray | float, *, test_b: np.ndarray, test_c: np.ndarray,
                     test_y_var: float = 1.0) -> dict[str, np.ndarray | float]:
    """Deterministic equivalent of ridge(less) regression with a mixture of Gaussian row groups.

    All matrices are simultaneously diagonal, so every input is a vector of eigen-coordinates.

    Parameters
    ----------
    mu
        (G, q) eigenvalues of each group's second moment C_g.
    c
        (G, q) cross-moment coordinates E_g[u y].
    pi
        (G,) group proportions among the n_eff rows (sum to 1).
    n_eff
        Number of rows.
    ridge
        λ >= 0 of the objective (1/n)‖y − Uw‖² + λ‖w‖² (0 = minimum norm; floored at 1e-12 × the smallest positive μ).
    y_var
        E_g[y²] per group (scalar or (G,)).
    test_b, test_c, test_y_var
        Test second moment eigenvalues (q,), cross-moment (q,) and E[y²] at test.

    Returns
    -------
    dict
        ``risk``, ``mean_risk`` (risk of w̄), ``variance`` (D_B), ``w_bar`` (q,), ``theta`` (G,).
    """
    check_sizes(n_eff=n_eff, ridge=ridge)
    mu = np.atleast_2d(np.asarray(mu, dtype=np.float64))
    c = np.atleast_2d(np.asarray(c, dtype=np.float64))
    pi = np.asarray(pi, dtype=np.float64)
    if not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise ValueError("mu is not allowed: use finite eigenvalues >= 0 (second moments are positive "
                         "semi-definite)")
    if pi.shape != (mu.shape[0],) or not np.all(np.isfinite(pi)) or np.any(pi < 0) or abs(pi.sum() - 1) > 1e-9:
        raise ValueError(f"pi={pi.tolist()!r} is not allowed: use {mu.shape[0]} proportions >= 0 that sum to 1")
    n_groups = mu.shape[0]
    positive = mu[mu > 0]
    lam = max(float(ridge), _RIDGE_FLOOR * float(positive.min() if positive.size else 1.0))
    theta = _solve_theta(mu, pi, float(n_eff), lam)
    k = (pi * theta) @ mu  # (q,)
    w_bar = ((pi * theta) @ c) / (1.0 + k)
    y_var = np.broadcast_to(np.asarray(y_var, dtype=np.float64), (n_groups,))
    resid = y_var - 2.0 * (c @ w_bar) + (mu * w_bar**2).sum(axis=1)  # r_g
    weight = pi * theta**2 / n_eff  # (G,)
    denom = (1.0 + k) ** 2
    a = (mu / denom) @ mu.T * weight[None, :]  # A[h, g] = weight_g Σ_i μ_hi μ_gi / (1 + k_i)²
    d = np.linalg.solve(np.eye(n_groups) - a, a @ resid)
    variance = float(np.sum(weight * (resid + d) * ((mu / denom) @ test_b)))
    mean_risk = float(test_y_var - 2.0 * test_c @ w_bar + test_b @ w_bar**2)
    return {"risk": mean_risk + variance, "mean_risk": mean_risk, "variance": variance, "w_bar": w_bar,
            "theta": theta}


def _solve_theta(mu: np.ndarray, pi: np.ndarray, n_eff: float, lam: float) -> np.ndarray:
    """Solve θ_g (λ + (1/n) Σ_i μ_gi / (1 + Σ_h π_h θ_h μ_hi)) = 1 for θ > 0 (monotone in θ)."""
    def scalar(log_t: float, row: np.ndarray) -> float:
        t = np.exp(log_t)
        return t * (lam + np.sum(row / (1.0 + t * row)) / n_eff) - 1.0

    mean_mu = pi @ mu
    log_t0 = optimize.brentq(scalar, -60.0, 60.0, args=(mean_mu,), xtol=1e-13)
    if mu.shape[0] == 1:
        return np.array([np.exp(log_t0)])

    def residual(log_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.exp(log_theta)
        one_k = 1.0 + (pi * theta) @ mu
        s = (mu / one_k).sum(axis=1) / n_eff
        f = theta * (lam + s) - 1.0
        cross = (mu / one_k**2) @ mu.T / n_eff  # (G, G)
        jac = np.diag(theta * (lam + s)) - theta[:, None] * cross * (pi * theta)[None, :]
        return f, jac

    with np.errstate(over="ignore", invalid="ignore"):
        sol = optimize.root(residual, np.full(mu.shape[0], log_t0), jac=True, method="hybr",
                            options={"xtol": 1e-12})
        f, _ = residual(sol.x)
        if not np.all(np.abs(f) < 1e-8):  # a far start (groups of very different scale): restart closer
            sol = optimize.root(residual, np.log(_monotone_theta(mu, pi, n_eff, lam)), jac=True, method="hybr",
                                options={"xtol": 1e-12})
            f, _ = residual(sol.x)
    if not np.all(np.abs(f) < 1e-8):
        raise RuntimeError(f"deterministic-equivalent fixed point did not converge (max residual "
                           f"{np.max(np.abs(f)):.2g}, n_eff={n_eff:g}, q={mu.shape[1]})")
    return np.exp(sol.x)


def _monotone_theta(mu: np.ndarray, pi: np.ndarray, n_eff: float, lam: float, iters: int = 2000) -> np.ndarray:
    """θ ← 1 / (λ + (1/n) Σ_i μ_gi / (1 + k_i(θ))) from θ = 0: the map is increasing in θ, so the iterates rise
    monotonically to the smallest fixed point (slowly only where θ ~ 1/λ); a start for the Newton solve."""
    theta = np.zeros(mu.shape[0])
    for _ in range(iters):
        new = 1.0 / (lam + (mu / (1.0 + (pi * theta) @ mu)).sum(axis=1) / n_eff)
        if np.max(np.abs(new - theta) / new) < 1e-13:
            return new
        theta = new
    return theta


def _moments(view: TargetView, ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ_gi = (1 − m_g)² λ_i + m_g(1 − m_g) and c_gi = (1 − m_g) s_i for ratio nodes m_g."""
    m = np.asarray(ratios, dtype=np.float64)[:, None]
    return (1 - m) ** 2 * view.eigenvalues[None, :] + m * (1 - m), (1 - m) * view.cross[None, :]


def _test_moments(view: TargetView, test: RatioLaw) -> tuple[np.ndarray, np.ndarray]:
    """E over the test law of C(m_t) eigenvalues and c(m_t) coordinates (risk is linear in them)."""
    mu, c = _moments(view, test.ratios)
    return test.weights @ mu, test.weights @ c


def pretraining_risk(cov: Covariance, train: float | RatioSampler | RatioLaw, n: float, *,
                     test: float | RatioSampler | RatioLaw | None = None, ridge: float = 0.0,
                     n_points: int = 24, binomial: bool = True) -> RiskTerms:
    """Masked-prediction risk E[(x_j − ŵ_jᵀ(v ⊙ x))² | j masked] on fresh data at the test ratio law.

    Parameters
    ----------
    cov
        The data covariance (correlation matrix).
    train
        Training ratio law: a float (fixed ratio), a :class:`~r2mae_core.masking.RatioSampler` (R²MAE,
        schedules, ...) or a :class:`RatioLaw`.
    n
        Training samples (each sample carries one mask).
    test
        Test ratio law (default: the training law for a fixed ratio, its mean for a random one).
    ridge
        λ >= 0 (0 = minimum-norm, what gradient descent from zero converges to).
    n_points
        Quadrature nodes per smooth piece of a random ratio law (the mixture's groups).
    binomial
        Average over the Binomial(n, E[m]) number of rows (3-point Gauss-Hermite); False: n E[m] rows.

    Returns
    -------
    RiskTerms
        Averaged over ``cov.targets`` (exact for circulant families).
    """
    if not isinstance(cov, Covariance):
        raise ValueError(f"cov of type {type(cov).__name__} is not allowed: use a covariances.Covariance "
                         "(make_covariance or Covariance.from_matrix)")
    check_sizes(n=n, ridge=ridge)
    law = as_law(train, n_points=n_points)
    test_law = as_law(law.mean if test is None else test, n_points=n_points)
    pi = law.size_biased()
    n_eff = float(n) * law.mean
    # the number of rows is Binomial(n, E[m]): average over it with 3-point Gauss-Hermite nodes (exact for
    # polynomials of degree <= 5 in a Gaussian); binomial=False uses its mean only
    spread = np.sqrt(float(n) * law.mean * (1 - law.mean)) if binomial else 0.0
    nodes = [(n_eff, 1.0)] if spread == 0 else [(max(n_eff + z * spread, 1.0), w) for z, w in _HERMITE3]
    rows = []
    loss = law.loss_weights[:, None]
    for view in cov.views():
        mu, c = _moments(view, law.ratios)
        tb, tc = _test_moments(view, test_law)
        beta = population_coefficients(view, law)
        irreducible = float(1.0 - 2.0 * tc @ beta + tb @ beta**2)
        risk = mean_risk = variance = 0.0
        for size, weight in nodes:
            out = ridge_equivalent(loss * mu, loss * c, pi, size, ridge, law.loss_weights, test_b=tb, test_c=tc)
            risk += weight * out["risk"]
            mean_risk += weight * out["mean_risk"]
            variance += weight * out["variance"]
        rows.append((risk, irreducible, mean_risk - irreducible, variance))
    arr = np.asarray(rows)
    mean = arr.mean(axis=0)
    sd = float(arr[:, 0].std(ddof=1)) if len(rows) > 1 else 0.0
    return RiskTerms(float(mean[0]), float(mean[1]), float(mean[2]), float(mean[3]),
                     (cov.p - 1) / n_eff, n_eff, sd)


def per_batch_risk(cov: Covariance, train: RatioSampler, n: int, *, batch_size: int = 32, draws: int = 8,
                   seed: int = 0, test: float | RatioSampler | RatioLaw | None = None,
                   ridge: float = 0.0) -> tuple[float, float]:
    r"""Risk of a law that draws one ratio per batch: the deterministic equivalent *given* the batch ratios,
    averaged over ``draws`` seeded draws of them.

    With B = ⌈n / batch_size⌉ batches the rows form B groups (batch b: ratio m_b, about batch_size·m_b rows), so
    the empirical law P̂ = (1/B) Σ_b δ_{m_b} replaces P in :func:`pretraining_risk`; per-sample draws are the
    B → ∞ limit. The draws follow :func:`r2mae_core.theory.simulate.masked_design` (progress t = b / (B − 1)).

    Returns
    -------
    tuple of float
        Mean risk over the draws and its standard error (the draws' spread / √draws).
    """
    if not isinstance(train, RatioSampler):
        raise ValueError(f"train={train!r} is not allowed: use a masking.RatioSampler (a law drawn per batch)")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n={n!r} is not allowed: use an integer >= 1 (training samples)")
    _check_counts(batch_size=batch_size, draws=draws)
    if draws < 2:
        raise ValueError(f"draws={draws!r} is not allowed: use an integer >= 2 (a standard error needs two)")
    n_batches = -(-int(n) // int(batch_size))
    sizes = np.full(n_batches, float(batch_size))
    sizes[-1] = n - batch_size * (n_batches - 1)
    progress = np.linspace(0.0, 1.0, n_batches) if n_batches > 1 else np.zeros(1)
    test = as_law(train).mean if test is None else test
    risks = []
    for draw_seed in child_seeds(check_seed(seed), int(draws)):
        rng = numpy_generator(draw_seed)
        ratios = np.array([float(train.sample(1, generator=rng, progress=float(t))[0]) for t in progress])
        law = RatioLaw(ratios, sizes / sizes.sum(), f"{train.describe()} draw")
        risks.append(pretraining_risk(cov, law, n, test=test, ridge=ridge).risk)
    risks = np.asarray(risks)
    return float(risks.mean()), float(risks.std(ddof=1) / np.sqrt(risks.size))


def population_coefficients(view: TargetView, train: float | RatioSampler | RatioLaw) -> np.ndarray:
    """β* = E_π[w C(m)]⁻¹ E_π[w c(m)] in Σ_{−j}'s eigenbasis (the n → ∞ masked predictor; w the loss weight)."""
    law = as_law(train)
    mu, c = _moments(view, law.ratios)
    pi = law.size_biased() * law.loss_weights
    return (pi @ c) / (pi @ mu)


def mean_coefficients(view: TargetView, train: float | RatioSampler | RatioLaw, n: float, *,
                      ridge: float = 0.0) -> np.ndarray:
    """w̄ = E[ŵ] (deterministic equivalent) in Σ_{−j}'s eigenbasis; → β* as n → ∞."""
    check_sizes(n=n, ridge=ridge)
    law = as_law(train)
    mu, c = _moments(view, law.ratios)
    loss = law.loss_weights[:, None]
    out = ridge_equivalent(loss * mu, loss * c, law.size_biased(), float(n) * law.mean, ridge, law.loss_weights,
                           test_b=mu[0], test_c=c[0])
    return out["w_bar"]


def equivalent_fixed_ratio(law: float | RatioSampler | RatioLaw) -> float:
    r"""The fixed ratio whose population predictor is the random law's (the same vector, not only its direction).

    In the population limit the normal equations of a law (size-biased, π(m) ∝ m P(m)) only see
    :math:`a = E[m(1-m)^2]`, :math:`b = E[m^2(1-m)]` and :math:`e = E[m(1-m)]` (each over E[m]):
    E_π[C] = a Σ + b I and E_π[c] = e Σ_{·j}, so β* = (e/a) (Σ + (b/a) I)⁻¹ Σ_{·j}: a ridge of strength r = b/a.
    A fixed ratio m has r = m/(1 − m) and scale 1/(1 − m) = 1 + r, hence
    m_eq = r / (1 + r) = E[m²(1 − m)] / E[m(1 − m)(1 − m + m)] = E[m²(1−m)] / E[m(1−m)]; and since
    a + b = e, the random law's scale e/a = 1 + b/a = 1 + r is the fixed ratio's: the two predictors are equal.

    With a loss weight w(m) (:func:`weighted_law`) every moment carries w: m_eq = E[w m²(1−m)] / E[w m(1−m)],
    and the scale argument is unchanged. Masked diffusion (m ~ U(0, 1), w = 1/m): m_eq = E[m(1−m)] / E[1−m] = 1/3.
    """
    law = as_law(law)
    w = law.loss_weights
    return law.expect(w * law.ratios**2 * (1 - law.ratios)) / law.expect(w * law.ratios * (1 - law.ratios))


# --- closed forms of Hastie et al. (2022) and exact Gaussian finite-n formulas (test anchors) -------------

def isotropic_ridgeless_risk(gamma: float, *, sigma2: float, signal: float) -> dict[str, float]:
    """Excess risk of min-norm least squares with isotropic features, y = xᵀβ + ε, ‖β‖² = ``signal``.

    Hastie et al. (2022), Thm. 1: γ < 1: bias 0, variance σ²γ/(1 − γ); γ > 1: bias r²(1 − 1/γ),
    variance σ²/(γ − 1). (γ = p/n; γ = 1 is the interpolation peak.)
    """
    check_sizes(gamma=gamma, sigma2=sigma2, signal=signal)
    if gamma == 1:
        raise ValueError("gamma=1 is not allowed: the ridgeless risk is infinite at the interpolation peak")
    if gamma < 1:
        return {"bias": 0.0, "variance": sigma2 * gamma / (1 - gamma)}
    return {"bias": signal * (1 - 1 / gamma), "variance": sigma2 / (gamma - 1)}


def gaussian_ols_risk(n: int, p: int, *, sigma2: float) -> float:
    """Exact E[variance] of OLS with Gaussian features, p < n − 1: σ² p / (n − p − 1) (any Σ)."""
    _check_counts(n=n, p=p)
    check_sizes(sigma2=sigma2)
    if not p < n - 1:
        raise ValueError(f"p={p} with n={n} is not allowed: the exact OLS formula needs p < n - 1")
    return sigma2 * p / (n - p - 1)


def gaussian_minnorm_risk(n: int, p: int, *, sigma2: float, signal: float) -> dict[str, float]:
    """Exact excess risk of min-norm interpolation with isotropic Gaussian features, p > n + 1.

    bias = r² (1 − n/p), variance = σ² n / (p − n − 1) (Hastie et al. 2022, Sec. 3; Belkin et al. 2020).
    """
    _check_counts(n=n, p=p)
    check_sizes(sigma2=sigma2, signal=signal)
    if not p > n + 1:
        raise ValueError(f"p={p} with n={n} is not allowed: the exact min-norm formula needs p > n + 1")
    return {"bias": signal * (1 - n / p), "variance": sigma2 * n / (p - n - 1)}
