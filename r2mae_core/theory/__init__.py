"""The linear theory of masked pretraining as minimum-norm regression (notebook ``01_linear_theory``).

Four modules, each on the one below it, none importing torch:

``covariances``
    The data families Σ (AR(1), power law, spiked, block, multi-scale) and the target views of one coordinate.
``risk``
    Closed-form (deterministic-equivalent) pretraining risk of a ratio law, the population predictor, the fixed
    ratio of equal population effect and the Hastie et al. (2022) closed forms; its names are this package's
    (``theory.pretraining_risk``, ``theory.equivalent_fixed_ratio``).
``downstream``
    Probe risk of a downstream task on the learned representation (its closed forms and their Monte Carlo).
``simulate``
    Exact Monte Carlo of the same models: the ground truth the closed forms are checked against.
"""

from .risk import (
    RatioLaw,
    RiskTerms,
    as_law,
    check_sizes,
    equivalent_fixed_ratio,
    gamma_eff,
    gaussian_minnorm_risk,
    gaussian_ols_risk,
    isotropic_ridgeless_risk,
    masked_diffusion_law,
    mean_coefficients,
    per_batch_risk,
    population_coefficients,
    pretraining_risk,
    ridge_equivalent,
    weighted_law,
)

__all__ = ["RatioLaw", "as_law", "weighted_law", "masked_diffusion_law", "per_batch_risk",
           "ridge_equivalent", "RiskTerms", "pretraining_risk", "population_coefficients",
           "mean_coefficients", "equivalent_fixed_ratio", "isotropic_ridgeless_risk", "gaussian_ols_risk",
           "gaussian_minnorm_risk", "gamma_eff", "check_sizes"]
