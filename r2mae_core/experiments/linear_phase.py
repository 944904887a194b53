r"""01_linear_theory, phase diagram: where, if anywhere, does a random mask ratio beat the best fixed one?

For every point (covariance family, model size γ = p/n, ridge λ, per-sample or per-batch ratios, criterion) the
theory (:mod:`r2mae_core.theory`) gives

    Δ = min over intervals [a, b] of R(U[a, b]) − min over fixed ratios m of R(m)

(Δ < 0: the best R²MAE interval wins). Both minima are located finely enough that no interval wins by sitting
between grid points: the fixed optimum on the grid of step ``fixed_step`` on [0.01, 0.99], refined by bounded
Brent search to 1e-5 around every local minimum of the grid (the risk's error from the refinement is then
½R''·(1e-5)², below 1e-8 for every curve here); the best interval on the grid of endpoints of step
``interval_step`` on the same range, refined by Nelder–Mead in (a, b). Per-batch ratios are evaluated with
:func:`r2mae_core.theory.per_batch_risk` (the deterministic equivalent given the batch ratios, averaged over
seeded draws) on the best per-sample intervals.

The second-order expansion of the notebook's derivation is evaluated at each fixed optimum m*: for the symmetric
two-point law {m* ± δ},

    ΔR / δ² = −n (1 − 2m*) / (m*(1 − m*)) · ∂R/∂N (m*, N = n m*) + H,

the first term from the row count n E[m] = n m_eq − n (1 − 2m*) δ² / (m*(1 − m*)) + O(δ⁴) of a law with the
population effect of m_eq, the second (H) from the rows' heterogeneity (the remainder).

Monte Carlo (:mod:`r2mae_core.theory.simulate`) checks every point the theory calls a win, its γ-neighbours (the
boundary), and when the theory calls none, the ``mc_points`` points closest to a win: paired repetitions of the
best fixed ratio and the best interval, risk(fixed) − risk(interval) with a 95% t interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from .. import theory
from .._rng import check_seed, child_seeds
from ..cache import cached
from ..masking import make_sampler
from ..stats import mean_ci
from ..theory import downstream, simulate
from ..theory.covariances import Covariance, make_covariance
from ..validation import check_int, check_number

__all__ = ["PhaseSettings", "fixed_optimum", "interval_optimum", "criterion_risk", "phase_cell", "phase_table",
           "phase_points_to_check", "phase_monte_carlo", "CRITERIA"]

CRITERIA = ("test_ratio", "universal", "downstream")
_LOW, _HIGH = 0.01, 0.99
_XATOL = 1e-5
_DELTA = 0.01  # half-width of the two-point law of the second-order expansion
#: The columns of :func:`phase_monte_carlo`'s table, in order.
_PHASE_MC_COLUMNS = ["family", "gamma", "ridge", "per", "criterion", "reason", "fixed_ratio", "low", "high",
                     "theory_gain", "mc_gain", "ci_low", "ci_high", "fw_low", "fw_high", "reps", "mc_fixed",
                     "mc_interval"]


@dataclass(frozen=True)
class PhaseSettings:
    """The phase diagram's grid (validated; built by ``linear_theory.Config.phase_settings``)."""

    p: int
    gammas: tuple[float, ...]
    families: tuple[str, ...]
    family_params: dict
    ridges: tuple[float, ...]
    pers: tuple[str, ...]
    criteria: tuple[str, ...]
    fixed_step: float
    interval_step: float
    batch_draws: int
    batch_size: int
    reps: int
    tolerance: float
    mc_points: int
    test_ratio: float
    universal: tuple[float, float]
    n_down: int
    probe_ridge: float
    task_noise: float
    diffusion_eps: float
    seed: int

    def __post_init__(self) -> None:
        check_int("phase_p", self.p, 20)
        check_int("phase_batch_draws", self.batch_draws, 2)
        check_int("phase_reps", self.reps, 2)
        check_int("phase_mc_points", self.mc_points, 1)
        check_number("phase_fixed_step", self.fixed_step, low=1e-4, high=0.1)
        check_number("phase_interval_step", self.interval_step, low=0.01, high=0.25)
        check_number("phase_tolerance", self.tolerance, low=0)
        check_number("diffusion_eps", self.diffusion_eps, low=0, high=0.1, low_open=True)
        if not self.gammas or any(isinstance(g, bool) or not isinstance(g, int | float) or not 0 < g < float("inf")
                                  for g in self.gammas):
            raise ValueError(f"phase_gammas={self.gammas!r} is not allowed: use model-size ratios p/n > 0")
        if not self.ridges or any(isinstance(r, bool) or not isinstance(r, int | float) or not 0 <= r < float("inf")
                                  for r in self.ridges):
            raise ValueError(f"phase_ridges={self.ridges!r} is not allowed: use ridge strengths >= 0")
        if not self.pers or any(per not in ("sample", "batch") for per in self.pers):
            raise ValueError(f"phase_pers={self.pers!r} is not allowed: use a list of 'sample' and/or 'batch'")
        if not self.criteria or any(c not in CRITERIA for c in self.criteria):
            raise ValueError(f"phase_criteria={self.criteria!r} is not allowed: use a list of {', '.join(CRITERIA)}")
        unknown = [f for f in self.families if f not in self.family_params]
        if not self.families or unknown:
            raise ValueError(f"phase_families={self.families!r} is not allowed: use names among "
                             f"{', '.join(self.family_params)}")

    def covariance(self, family: str) -> Covariance:
        params = dict(self.family_params[family])
        if family == "power_law":
            params.setdefault("seed", self.seed)
            params.setdefault("n_targets", 2)
        return make_covariance(family, self.p, **params)

    def n_of(self, gamma: float) -> int:
        return max(2, int(round(self.p / gamma)))


def fixed_optimum(risk, step: float) -> tuple[float, float]:
    """argmin and min of ``risk(m)`` over fixed ratios m ∈ [0.01, 0.99]: grid of ``step``, then bounded Brent
    search (xatol 1e-5) in the two cells around every local minimum of the grid (double descent has two)."""
    grid = np.linspace(_LOW, _HIGH, int(round((_HIGH - _LOW) / step)) + 1)
    values = np.array([risk(float(m)) for m in grid])
    best_m, best_r = float(grid[np.argmin(values)]), float(np.min(values))
    local = [i for i in range(grid.size) if (i == 0 or values[i] <= values[i - 1])
             and (i == grid.size - 1 or values[i] <= values[i + 1])]
    for i in local:
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = optimize.minimize_scalar(risk, bounds=(lo, hi), method="bounded", options={"xatol": _XATOL})
        if res.fun < best_r:
            best_m, best_r = float(res.x), float(res.fun)
    return best_m, best_r


def _interval_grid(step: float) -> list[tuple[float, float]]:
    ends = np.linspace(_LOW, _HIGH, int(round((_HIGH - _LOW) / step)) + 1)
    return [(float(a), float(b)) for i, a in enumerate(ends) for b in ends[i + 1:]]


def interval_optimum(risk, step: float, *, keep: int = 3) -> tuple[tuple[float, float, float], list]:
    """Best interval [a, b] ⊂ [0.01, 0.99] for ``risk(a, b)``: endpoint grid of ``step``, then Nelder–Mead in
    (a, b) from the grid's best (a < b kept by a penalty). Returns ((a, b, risk), the ``keep`` best grid
    intervals as (a, b, risk))."""
    scored = sorted(((a, b, float(risk(a, b))) for a, b in _interval_grid(step)), key=lambda t: t[2])

    def objective(x: np.ndarray) -> float:
        a, b = float(x[0]), float(x[1])
        if not _LOW <= a < b - 1e-3 or b > _HIGH:
            return float("inf")
        return float(risk(a, b))

    a0, b0, r0 = scored[0]
    simplex = np.array([[a0, b0], [a0 + step / 4, b0], [a0, b0 - step / 4]])
    res = optimize.minimize(objective, np.array([a0, b0]), method="Nelder-Mead",
                            options={"xatol": 1e-4, "fatol": 1e-9, "maxfev": 80, "initial_simplex": simplex})
    best = (float(res.x[0]), float(res.x[1]), float(res.fun)) if res.fun < r0 else (a0, b0, r0)
    return best, scored[:keep]


def _law(a: float, b: float, per: str = "sample"):
    return make_sampler({"kind": "r2mae", "low": float(a), "high": float(b), "per": per})


def criterion_risk(settings: PhaseSettings, cov: Covariance, n: int, ridge: float, criterion: str):
    """The function law → risk of one criterion (test ratio, universal test law, mean downstream probe risk)."""
    if criterion == "downstream":
        spectrum, tasks = cov.fourier_spectrum(), _tasks(settings)

        def risk(law) -> float:
            h = downstream.representation_filter(cov, law, n, ridge=ridge)
            return float(np.mean([downstream.probe_risk(spectrum, h, t, settings.n_down, ridge=settings.probe_ridge)
                                  for t in tasks]))
        return risk
    test = settings.test_ratio if criterion == "test_ratio" else _law(*settings.universal)
    return lambda law: theory.pretraining_risk(cov, law, n, test=test, ridge=ridge).risk


def _expansion(risk, settings: PhaseSettings, cov: Covariance, n: int, ridge: float, criterion: str, *,
               m_star: float) -> dict[str, float]:
    """Second-order coefficient ΔR/δ² of the two-point law {m* ± δ} and its row-count part (module docstring)."""
    if not _DELTA < m_star < 1 - _DELTA:
        return {"expansion_total": float("nan"), "expansion_rows": float("nan")}
    pair = theory.RatioLaw(np.array([m_star - _DELTA, m_star + _DELTA]), np.array([0.5, 0.5]), "two-point")
    total = (risk(pair) - risk(m_star)) / _DELTA**2
    rows = float("nan")
    if criterion != "downstream":
        h = 1e-3
        up = criterion_risk(settings, cov, n * (1 + h), ridge, criterion)(m_star)
        down = criterion_risk(settings, cov, n * (1 - h), ridge, criterion)(m_star)
        slope = (up - down) / (2 * h * n * m_star)  # ∂R/∂N at N = n m*
        rows = -n * (1 - 2 * m_star) / (m_star * (1 - m_star)) * slope
    return {"expansion_total": float(total), "expansion_rows": rows}


def phase_cell(settings: PhaseSettings, family: str, gamma: float, ridge: float) -> list[dict]:
    """Every (per, criterion) row of one (family, γ, λ) point of the diagram (cached)."""
    key = {"settings": repr(settings), "family": family, "gamma": gamma, "ridge": ridge, "version": 1}
    return cached("linear_phase_cell", key, lambda: _phase_cell(settings, family, gamma, ridge))["rows"]


def _phase_cell(settings: PhaseSettings, family: str, gamma: float, ridge: float) -> dict:
    cov = settings.covariance(family)
    n = settings.n_of(gamma)
    rows = []
    diffusion = theory.masked_diffusion_law(settings.diffusion_eps)
    for criterion in settings.criteria:
        if criterion == "downstream" and not cov.circulant:
            continue
        risk = criterion_risk(settings, cov, n, ridge, criterion)
        m_star, r_fixed = fixed_optimum(risk, settings.fixed_step)
        (a, b, r_int), top = interval_optimum(lambda lo, hi, risk=risk: risk(_law(lo, hi)), settings.interval_step)
        m_eq = theory.equivalent_fixed_ratio(_law(a, b))
        base = {"family": family, "gamma": float(gamma), "n": n, "ridge": float(ridge), "criterion": criterion,
                "fixed_ratio": m_star, "fixed_risk": r_fixed, "grid_low": top[0][0], "grid_high": top[0][1],
                "grid_risk": top[0][2],
                "diffusion_risk": float(risk(diffusion)),
                **_expansion(risk, settings, cov, n, ridge, criterion, m_star=m_star)}
        if "sample" in settings.pers:
            rows.append({**base, "per": "sample", "low": a, "high": b, "interval_risk": r_int,
                         "equivalent_ratio": m_eq, "equivalent_risk": float(risk(m_eq)), "interval_se": 0.0})
        if "batch" in settings.pers and criterion != "downstream":
            test = settings.test_ratio if criterion == "test_ratio" else _law(*settings.universal)
            scored = []
            for lo, hi, _ in [(a, b, r_int), *top]:
                mean, se = theory.per_batch_risk(cov, _law(lo, hi, "batch"), n, batch_size=settings.batch_size,
                                                 draws=settings.batch_draws, seed=settings.seed, test=test,
                                                 ridge=ridge)
                scored.append((mean, se, lo, hi))
            mean, se, lo, hi = min(scored)
            eq = theory.equivalent_fixed_ratio(_law(lo, hi))
            rows.append({**base, "per": "batch", "low": lo, "high": hi, "interval_risk": mean,
                         "equivalent_ratio": eq, "equivalent_risk": float(risk(eq)), "interval_se": se})
    return {"rows": rows}


def phase_table(settings: PhaseSettings, progress=None) -> pd.DataFrame:
    """The diagram: one row per (family, γ, λ, per, criterion) with Δ = interval_risk − fixed_risk and
    ``win`` = Δ < −tolerance (the theory's verdict at that point)."""
    rows = []
    cells = [(f, g, r) for f in settings.families for g in settings.gammas for r in settings.ridges]
    for family, gamma, ridge in (progress(cells) if progress else cells):
        rows += phase_cell(settings, family, float(gamma), float(ridge))
    table = pd.DataFrame(rows)
    table["delta"] = table["interval_risk"] - table["fixed_risk"]
    table["diffusion_delta"] = table["diffusion_risk"] - table["fixed_risk"]
    table["win"] = table["delta"] < -settings.tolerance
    return table


def phase_points_to_check(table: pd.DataFrame, settings: PhaseSettings) -> pd.DataFrame:
    """Points for Monte Carlo and the interval each one checks (``mc_low``, ``mc_high``): every theory win (its
    best interval); its neighbours along γ, the boundary (the neighbouring win's interval: the theory says it
    stops winning there); and, when there is no win, the ``mc_points`` rows with the smallest Δ (their best
    interval, or the best grid interval when the refinement shrank it below one grid step, a tie with the fixed
    ratio). Column ``reason`` says which."""
    keys = ["family", "ridge", "per", "criterion"]
    chosen: dict[int, tuple[str, float, float]] = {}
    for _, group in table.groupby(keys, sort=True):
        group = group.sort_values("gamma")
        idx, wins = list(group.index), group["win"].to_numpy()
        for i, row_id in enumerate(idx):
            if wins[i]:
                chosen[row_id] = ("win", table.at[row_id, "low"], table.at[row_id, "high"])
        for i, row_id in enumerate(idx):
            near = [j for j in (i - 1, i + 1) if 0 <= j < len(idx) and wins[j]]
            if not wins[i] and near:
                chosen[row_id] = ("boundary", table.at[idx[near[0]], "low"], table.at[idx[near[0]], "high"])
    if not chosen:
        for row_id in table.nsmallest(settings.mc_points, "delta").index:
            row = table.loc[row_id]
            narrow = row["high"] - row["low"] < settings.interval_step
            ends = (row["grid_low"], row["grid_high"]) if narrow else (row["low"], row["high"])
            chosen[row_id] = ("closest", *ends)
    out = table.loc[sorted(chosen)].copy()
    out["reason"] = [chosen[i][0] for i in out.index]
    out["mc_low"] = [float(chosen[i][1]) for i in out.index]
    out["mc_high"] = [float(chosen[i][2]) for i in out.index]
    return out


def _tasks(settings: PhaseSettings) -> list[downstream.Task]:
    return [downstream.band_task(name, lo, hi, settings.task_noise)
            for name, lo, hi in (("coarse", 0.0, 0.05), ("mid", 0.05, 0.3), ("fine", 0.3, 1.0), ("all", 0.0, 1.0))]


def _mc_risks(settings: PhaseSettings, row, law, seed: int) -> np.ndarray:
    """Per-repetition Monte Carlo risk of ``law`` at the point ``row`` (repetition seeds derived from ``seed``,
    so two laws with one seed are paired). Downstream: the probe's risk on each repetition's own fitted
    representation (the probe's theory is checked against its Monte Carlo in figure 3)."""
    cov = settings.covariance(row.family)
    if row.criterion == "downstream":
        spectrum = cov.fourier_spectrum()
        out = []
        for s in child_seeds(seed, settings.reps):
            w = simulate.fit_masked_target(cov, 0, law, int(row.n), s, ridge=float(row.ridge),
                                           batch_size=settings.batch_size)
            h = np.fft.fft(np.concatenate([[0.0], w])).real
            out.append(np.mean([downstream.probe_risk(spectrum, h, t, settings.n_down, ridge=settings.probe_ridge)
                                for t in _tasks(settings)]))
        return np.asarray(out)
    test = settings.test_ratio if row.criterion == "test_ratio" else _law(*settings.universal)
    frame, _ = simulate.simulate_pretraining(cov, law, int(row.n), tests={"t": test}, reps=settings.reps,
                                             seed=seed, ridge=float(row.ridge), batch_size=settings.batch_size)
    return frame.sort_values("rep")["risk"].to_numpy(dtype=float)


def _theory_risk(settings: PhaseSettings, row, low: float, high: float) -> float:
    """The theory's risk of U[low, high] at the point ``row`` (per-batch: :func:`theory.per_batch_risk`)."""
    cov = settings.covariance(row.family)
    if row.per == "batch":
        test = settings.test_ratio if row.criterion == "test_ratio" else _law(*settings.universal)
        return theory.per_batch_risk(cov, _law(low, high, "batch"), int(row.n), batch_size=settings.batch_size,
                                     draws=settings.batch_draws, seed=settings.seed, test=test,
                                     ridge=float(row.ridge))[0]
    return float(criterion_risk(settings, cov, int(row.n), float(row.ridge), row.criterion)(_law(low, high)))


def phase_monte_carlo(settings: PhaseSettings, points: pd.DataFrame) -> pd.DataFrame:
    r"""Paired Monte Carlo at ``points``: risk(best fixed) − risk(best interval) per repetition (shared seeds),
    next to the theory's −Δ (cached per point).

    Each row has the mean gain with its 95% t interval (``ci_low``, ``ci_high``) and with its Bonferroni interval
    over the :math:`k` checked points (``fw_low``, ``fw_high``): the t interval at confidence :math:`1 - 0.05/k`,
    so that all :math:`k` cover their means together with probability at least 95% (Bonferroni's inequality;
    Dunn 1961, "Multiple comparisons among means", JASA 56). A search over many points calls a win only on
    those.
    """
    rows, diffs = [], []
    for i, row in enumerate(points.itertuples()):
        seed = int(np.random.SeedSequence([check_seed(settings.seed), 77, i]).generate_state(1)[0])
        key = {"settings": repr(settings), "point": {k: getattr(row, k) for k in
               ("family", "gamma", "ridge", "per", "criterion", "fixed_ratio", "mc_low", "mc_high")},
               "seed": seed}

        def compute(row=row, seed=seed) -> dict:
            return {"fixed": _mc_risks(settings, row, float(row.fixed_ratio), seed),
                    "interval": _mc_risks(settings, row, _law(row.mc_low, row.mc_high, row.per), seed)}

        rec = cached("linear_phase_mc", key, compute)
        theory_interval = _theory_risk(settings, row, row.mc_low, row.mc_high)
        diff = np.asarray(rec["fixed"]) - np.asarray(rec["interval"])
        diffs.append(diff)
        mean, low, high = mean_ci(diff)
        rows.append({"family": row.family, "gamma": row.gamma, "ridge": row.ridge, "per": row.per,
                     "criterion": row.criterion, "reason": row.reason, "fixed_ratio": row.fixed_ratio,
                     "low": row.mc_low, "high": row.mc_high, "theory_gain": row.fixed_risk - theory_interval,
                     "mc_gain": mean,
                     "ci_low": low, "ci_high": high, "reps": int(diff.size),
                     "mc_fixed": float(np.mean(rec["fixed"])), "mc_interval": float(np.mean(rec["interval"]))})
    for row, diff in zip(rows, diffs, strict=True):
        _, row["fw_low"], row["fw_high"] = mean_ci(diff, confidence=1 - 0.05 / len(diffs))
    return pd.DataFrame(rows, columns=_PHASE_MC_COLUMNS)
