"""Linear-theory benchmarks (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench -k theory``. The budget (docs/ARCHITECTURE.md §8): the whole theory grid — 20
ratios × 6 model sizes × 3 covariances at p = 1000 — in ≤ 10 s on the 2-core CPU, *including* building the
covariances and their per-target eigendecompositions (O(p³) once per target; every ratio and size then costs
O(p)). The two ring families need one target (exact by symmetry); ``power_law`` averages 8 sampled targets.

Also timed: one R²MAE point (a 24-node mixture fixed point) and one exact Monte Carlo fit at p = 1000.
"""

import numpy as np

from r2mae_core import masking, theory
from r2mae_core.theory import covariances, simulate

P = 1000
RATIOS = np.linspace(0.05, 0.95, 20)
GAMMAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FAMILIES = (("ar1", {"rho": 0.9}), ("two_scale", {}), ("power_law", {"alpha": 1.0, "n_targets": 8}))


def _grid() -> np.ndarray:
    out = np.empty((len(FAMILIES), len(GAMMAS), RATIOS.size))
    for fi, (family, params) in enumerate(FAMILIES):
        cov = covariances.make_covariance(family, P, **params)
        for gi, gamma in enumerate(GAMMAS):
            for ri, ratio in enumerate(RATIOS):
                out[fi, gi, ri] = theory.pretraining_risk(cov, float(ratio), P / gamma).risk
    return out


def test_theory_grid_p1000(benchmark):
    grid = benchmark.pedantic(_grid, rounds=3, iterations=1)
    assert grid.shape == (3, 6, 20) and np.all(np.isfinite(grid)) and np.all(grid > 0)


def test_r2mae_mixture_point(benchmark):
    cov = covariances.make_covariance("ar1", P, rho=0.9)
    cov.views()
    law = masking.R2MAE(0.1, 0.9, per="sample")
    terms = benchmark(theory.pretraining_risk, cov, law, P, test=0.5)
    assert np.isfinite(terms.risk) and terms.variance > 0


def test_monte_carlo_fit_p1000(benchmark):
    cov = covariances.make_covariance("ar1", P, rho=0.9)
    _ = cov.sqrt
    w = benchmark.pedantic(simulate.fit_masked_target, args=(cov, 0, 0.5, 2 * P, 0), rounds=3, iterations=1)
    assert w.shape == (P - 1,)
