"""01_linear_theory: masked pretraining as minimum-norm regression, theory (deterministic equivalents of
:mod:`r2mae_core.theory`) against exact Monte Carlo (:mod:`r2mae_core.theory.simulate`).

``run(config)`` returns tidy tables; :mod:`r2mae_core.experiments.linear_theory_claims` turns them into the
error table and the claims C1–C4. Sizes: ``gamma`` = p/n is the model size relative to the data (n = p/γ
training samples); one target's fit has aspect ratio γ_eff = (p − 1)/(n E[m]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import theory
from ..cache import cached
from ..masking import make_sampler
from ..theory import downstream, simulate
from ..theory.covariances import Covariance, make_covariance
from ..validation import (
    NON_NEGATIVE,
    POSITIVE,
    check_choice,
    check_fields,
    check_list,
    check_mapping,
    check_member,
    check_numbers,
    check_per,
    check_ratio,
    check_ratios,
    check_seed,
    count,
    param,
)
from . import linear_phase
from .linear_phase import PhaseSettings

__all__ = ["Config", "run", "covariance", "equivalent_label", "FAMILY_SPECS", "TASK_SPECS", "LOCAL_FAMILIES"]

#: Covariance families of the study: name -> parameters (see :func:`r2mae_core.theory.covariances.make_covariance`).
FAMILY_SPECS: dict[str, dict] = {
    "ar1": {"rho": 0.9},
    "two_scale": {"rho_fine": 0.5, "rho_coarse": 0.98, "coarse_weight": 0.5},
    "multi_scale": {"rhos": (0.3, 0.8, 0.95, 0.995)},
    "spiked": {},
    "power_law": {"alpha": 1.0},
}
#: Families with local correlation (masking has something to learn) vs delocalised spikes/power law.
LOCAL_FAMILIES = ("ar1", "two_scale")
#: Downstream tasks: bands of normalised frequency (coarse = long-range structure, fine = local detail).
TASK_SPECS: tuple[tuple[str, float, float], ...] = (
    ("coarse", 0.0, 0.05), ("mid", 0.05, 0.3), ("fine", 0.3, 1.0), ("all", 0.0, 1.0))




@dataclass(frozen=True)
class Config:
    """One study (smoke defaults; ``parameters/{quick,full}/01_linear_theory.yaml`` scale it).

    The R²MAE interval (``r2mae_low``, ``r2mae_high``), the stated test ratio and the universal test law
    are declared here before any run; C4's primary criterion is ``primary_criterion``.
    """

    seed: int = param(0, check_seed)
    p: int = param(120, count(20))
    gammas: tuple[float, ...] = param((0.5, 1.0, 2.0), check_numbers, low=0, low_open=True,
                                      what="model-size ratios p/n")
    families: tuple[str, ...] = param(("ar1", "two_scale", "spiked", "power_law"), check_list)
    theory_ratios: int = param(39, count(5))
    mc_ratios: tuple[float, ...] = param((0.1, 0.3, 0.5, 0.7, 0.9), check_ratios, min_len=2)
    reps: int = param(3, count(2))
    ridge: float = param(0.0, NON_NEGATIVE)
    n_targets: int = param(4, count(1))
    optimum_gammas: int = param(12, count(3))
    signal_rhos: tuple[float, ...] = param((0.5, 0.7, 0.8, 0.9, 0.95, 0.98), check_ratios, min_len=2)
    focus_family: str = "ar1"
    focus_gamma: float = param(1.0, POSITIVE)
    downstream_family: str = "two_scale"
    n_pretrain_gamma: float = param(0.25, POSITIVE)
    n_down: int = param(60, count(1))
    probe_ridge: float = param(0.0, NON_NEGATIVE)
    task_noise: float = param(0.1, NON_NEGATIVE)
    r2mae_low: float = param(0.1, check_ratio)
    r2mae_high: float = param(0.9, check_ratio)
    r2mae_per: str = param("sample", check_per)
    test_ratio: float = param(0.75, check_ratio)
    universal_low: float = param(0.1, check_ratio)
    universal_high: float = param(0.9, check_ratio)
    interval_grid: tuple[float, ...] = param((0.1, 0.3, 0.5, 0.7, 0.9), check_ratios, min_len=2)
    primary_criterion: str = param("universal", check_choice, choices=("universal", "test_ratio", "downstream"))
    scale_reps: int = param(6, count(2))
    c4_reps: int = param(6, count(2))
    batch_size: int = param(32, count(1))
    phase_p: int = param(40, count(20))
    phase_gammas: tuple[float, ...] = param((1.0, 4.0), check_list)
    phase_families: tuple[str, ...] = param(("two_scale",), check_list)
    phase_ridges: tuple[float, ...] = param((0.0,), check_list)
    phase_pers: tuple[str, ...] = param(("sample", "batch"), check_list)
    phase_criteria: tuple[str, ...] = param(("test_ratio", "universal", "downstream"), check_list)
    phase_fixed_step: float = 0.02
    phase_interval_step: float = 0.2
    phase_batch_draws: int = 3
    phase_reps: int = 8
    phase_tolerance: float = 1e-4
    phase_mc_points: int = 2
    diffusion_eps: float = 1e-3
    families_params: dict = param({k: dict(v) for k, v in FAMILY_SPECS.items()}, check_mapping)

    def __post_init__(self) -> None:
        """The declared checks of the fields (:func:`~r2mae_core.validation.check_fields`; the phase diagram's
        ``phase_*`` settings are checked by :class:`~r2mae_core.experiments.linear_phase.PhaseSettings`), then
        the rules that join fields and the declared laws (one clear line for low > high, ...)."""
        check_fields(self)
        unknown = [f for f in self.families if f not in self.families_params]
        if unknown:
            raise ValueError(f"family={unknown[0]!r} is not allowed: use one of {', '.join(self.families_params)}")
        for name in ("focus_family", "downstream_family"):
            check_choice(name, getattr(self, name), self.families_params)
        check_member("focus_gamma", self.focus_gamma, "gammas", self.gammas)
        check_member("focus_family", self.focus_family, "families", self.families)
        self.r2mae_sampler()
        self.universal_sampler()
        make_covariance(self.downstream_family, self.p, **self._params(self.downstream_family))
        self.phase_settings()

    def phase_settings(self) -> PhaseSettings:
        """The phase diagram's settings (validated there); its probe has n_down · phase_p / p labelled samples."""
        return PhaseSettings(
            p=self.phase_p, gammas=self.phase_gammas, families=self.phase_families,
            family_params=self.families_params, ridges=self.phase_ridges, pers=self.phase_pers,
            criteria=self.phase_criteria, fixed_step=self.phase_fixed_step, interval_step=self.phase_interval_step,
            batch_draws=self.phase_batch_draws, batch_size=self.batch_size, reps=self.phase_reps,
            tolerance=self.phase_tolerance, mc_points=self.phase_mc_points, test_ratio=self.test_ratio,
            universal=(self.universal_low, self.universal_high),
            n_down=max(2, int(round(self.n_down * self.phase_p / self.p))), probe_ridge=self.probe_ridge,
            task_noise=self.task_noise, diffusion_eps=self.diffusion_eps, seed=self.seed)

    def _params(self, family: str) -> dict:
        params = dict(self.families_params[family])
        if family == "power_law":
            params.setdefault("seed", self.seed)
            params.setdefault("n_targets", self.n_targets)
        return params

    def r2mae_sampler(self):
        """The declared R²MAE law U[r2mae_low, r2mae_high] (per sample or per batch)."""
        return make_sampler({"kind": "r2mae", "low": self.r2mae_low, "high": self.r2mae_high, "per": self.r2mae_per})

    def universal_sampler(self):
        """The universal test criterion: the risk averaged over test ratios m_t ~ U[universal_low, high]."""
        return make_sampler({"kind": "r2mae", "low": self.universal_low, "high": self.universal_high})

    def n_of(self, gamma: float) -> int:
        return max(2, int(round(self.p / gamma)))

    def ratio_grid(self) -> np.ndarray:
        return np.linspace(0.02, 0.98, self.theory_ratios)

    def tasks(self) -> list[downstream.Task]:
        return [downstream.band_task(name, lo, hi, self.task_noise) for name, lo, hi in TASK_SPECS]


def covariance(config: Config, family: str, **override) -> Covariance:
    """The configured covariance of ``family`` at dimension p (``override`` replaces parameters)."""
    return make_covariance(family, config.p, **{**config._params(family), **override})


def _seed(config: Config, *keys: int) -> int:
    """Child seed for a study point, stable under adding other points: SeedSequence([seed, *keys])."""
    state = np.random.SeedSequence([config.seed, *keys]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


def _tests(config: Config) -> dict:
    """The two pretraining criteria of C4: the stated test ratio and the universal test law."""
    return {"test_ratio": config.test_ratio, "universal": config.universal_sampler()}


def _mc(config: Config, family: str, law, n: int, tests: dict, reps: int, *, seed: int, keep_weights=False,
        ridge: float | None = None, loss_weight: str | None = None, **override):
    """Cached Monte Carlo of one (family, law, n) point (ridge: ``config.ridge`` unless given)."""
    ridge = config.ridge if ridge is None else float(ridge)
    key = {"family": family, "params": {**config._params(family), **override}, "p": config.p, "law": repr(law),
           "n": n, "tests": {k: repr(v) for k, v in tests.items()}, "reps": reps, "seed": seed,
           "ridge": ridge, "batch_size": config.batch_size, "keep_weights": keep_weights}
    if loss_weight is not None:
        key["loss_weight"] = loss_weight

    def compute():
        cov = covariance(config, family, **override)
        return _mc_record(simulate.simulate_pretraining(cov, law, n, tests=tests, reps=reps, seed=seed,
                                                        ridge=ridge, batch_size=config.batch_size,
                                                        keep_weights=keep_weights, loss_weight=loss_weight))
    return _mc_result(cached("linear_theory_mc", key, compute))


def _mc_record(result: tuple[pd.DataFrame, dict[int, np.ndarray]]) -> dict:
    """The cache record of a Monte Carlo result ``(frame, weights by target)``: target keys as ``str``."""
    frame, weights = result
    return {"frame": frame, "weights": {str(target): w for target, w in weights.items()}}


def _mc_result(record: dict) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """The Monte Carlo result ``(frame, weights by target)`` of a cache record (:func:`_mc_record`)."""
    return record["frame"], {int(target): w for target, w in record["weights"].items()}


def _fixed_curves(config: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 1: theory on a dense ratio grid and Monte Carlo at ``mc_ratios``, per family and γ."""
    theory_rows, mc_frames = [], []
    for fi, family in enumerate(tqdm(config.families, desc="fig1 families")):
        cov = covariance(config, family)
        for gi, gamma in enumerate(config.gammas):
            n = config.n_of(gamma)
            for ratio in config.ratio_grid():
                terms = theory.pretraining_risk(cov, float(ratio), n, test=float(ratio), ridge=config.ridge)
                theory_rows.append({"family": family, "gamma": gamma, "n": n, "ratio": float(ratio),
                                    **asdict(terms)})
            for ratio in config.mc_ratios:
                frame, _ = _mc(config, family, float(ratio), n, {"train_ratio": float(ratio)}, config.reps,
                               seed=_seed(config, 1, fi, gi))
                terms = theory.pretraining_risk(cov, float(ratio), n, test=float(ratio), ridge=config.ridge)
                mc_frames.append(frame.assign(family=family, gamma=gamma, n=n, ratio=float(ratio),
                                              theory=terms.risk, gamma_eff=terms.gamma_eff))
    return pd.DataFrame(theory_rows), pd.concat(mc_frames, ignore_index=True)


def _optimum(config: Config) -> pd.DataFrame:
    """Figure 2: the theory's risk-minimising fixed ratio vs model size γ and vs correlation strength ρ."""
    grid = np.linspace(0.02, 0.98, 49)
    rows = []
    gammas = np.geomspace(min(config.gammas) / 2, max(config.gammas) * 2, config.optimum_gammas)
    for family in config.families:
        cov = covariance(config, family)
        for gamma in gammas:
            n = config.n_of(gamma)
            risks = [theory.pretraining_risk(cov, float(m), n, test=float(m), ridge=config.ridge).risk for m in grid]
            rows.append({"sweep": "gamma", "family": family, "x": float(gamma),
                         "ratio_opt": float(grid[np.argmin(risks)]), "risk_opt": float(np.min(risks))})
    n = config.n_of(config.focus_gamma)
    for rho in config.signal_rhos:
        cov = covariance(config, "ar1", rho=rho)
        risks = [theory.pretraining_risk(cov, float(m), n, test=float(m), ridge=config.ridge).risk for m in grid]
        rows.append({"sweep": "rho", "family": "ar1", "x": float(rho), "ratio_opt": float(grid[np.argmin(risks)]),
                     "risk_opt": float(np.min(risks))})
    return pd.DataFrame(rows)


def _downstream(config: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 3: probe risk vs pretraining ratio for each task (theory dense, MC at ``mc_ratios``)."""
    cov = covariance(config, config.downstream_family)
    spectrum = cov.fourier_spectrum()
    n_pre = config.n_of(config.n_pretrain_gamma)
    laws = [(f"{m:.4g}", float(m)) for m in config.ratio_grid()]
    laws.append(("R²MAE", config.r2mae_sampler()))
    theory_rows, mc_rows = [], []
    filters = {label: downstream.representation_filter(cov, law, n_pre, ridge=config.ridge) for label, law in laws}
    for ti, task in enumerate(config.tasks()):
        for label, law in laws:
            ratio = law if isinstance(law, float) else float("nan")
            risk = downstream.probe_risk(spectrum, filters[label], task, config.n_down, ridge=config.probe_ridge)
            theory_rows.append({"task": task.name, "law": label, "ratio": ratio, "risk": risk})
        mc_laws = [(f"{m:.4g}", float(m)) for m in config.mc_ratios] + [("R²MAE", config.r2mae_sampler())]
        for label, law in mc_laws:
            h = downstream.representation_filter(cov, law, n_pre, ridge=config.ridge)
            nu, cross, y_var = downstream.probe_inputs(spectrum, h, task)
            theory_risk = downstream.probe_risk(spectrum, h, task, config.n_down, ridge=config.probe_ridge)
            ratio = law if isinstance(law, float) else float("nan")
            for split, tag in (("validation", 31), ("test", 32)):
                frame = simulate.simulate_probe(nu, cross, y_var, config.n_down, reps=config.reps,
                                                seed=_seed(config, tag, ti), ridge=config.probe_ridge)
                mc_rows.append(frame.assign(task=task.name, law=label, ratio=ratio, theory=theory_risk,
                                            split=split))
    return pd.DataFrame(theory_rows), pd.concat(mc_rows, ignore_index=True)


def _r2mae_grid(config: Config) -> pd.DataFrame:
    """Figure 4: theory risk of R²MAE U[a, b] on every interval of ``interval_grid`` and of every fixed ratio."""
    cov = covariance(config, config.focus_family)
    n = config.n_of(config.focus_gamma)
    tests = _tests(config)
    ds_cov = covariance(config, config.downstream_family)
    spectrum, n_pre, tasks = ds_cov.fourier_spectrum(), config.n_of(config.n_pretrain_gamma), config.tasks()

    def downstream_mean(law) -> float:
        h = downstream.representation_filter(ds_cov, law, n_pre, ridge=config.ridge)
        return float(np.mean([downstream.probe_risk(spectrum, h, t, config.n_down, ridge=config.probe_ridge)
                              for t in tasks]))

    rows = []
    laws = [("fixed", float(m), float(m), float(m)) for m in config.ratio_grid()]
    laws += [("r2mae", a, b, None) for a in config.interval_grid for b in config.interval_grid if a < b]
    for kind, low, high, ratio in tqdm(laws, desc="fig4 laws"):
        law = ratio if ratio is not None else make_sampler({"kind": "r2mae", "low": low, "high": high,
                                                            "per": config.r2mae_per})
        row = {"kind": kind, "low": low, "high": high, "equivalent_ratio": theory.equivalent_fixed_ratio(law)}
        for name, test in tests.items():
            row[name] = theory.pretraining_risk(cov, law, n, test=test, ridge=config.ridge).risk
        row["downstream"] = downstream_mean(law)
        rows.append(row)
    # the fine-grid optimum of each criterion joins the fixed ratios (no interval wins between grid points)
    risk_of = {name: (lambda m, test=test: theory.pretraining_risk(cov, m, n, test=test, ridge=config.ridge).risk)
               for name, test in tests.items()}
    risk_of["downstream"] = downstream_mean
    for risk in risk_of.values():
        ratio, _ = linear_phase.fixed_optimum(risk, config.phase_fixed_step)
        rows.append({"kind": "fixed", "low": ratio, "high": ratio, "equivalent_ratio": ratio,
                     **{name: fn(ratio) for name, fn in risk_of.items()}})
    return pd.DataFrame(rows).sort_values(["kind", "low", "high"], ignore_index=True)


def _c4_monte_carlo(config: Config) -> pd.DataFrame:
    """C4: every MC fixed ratio, the declared R²MAE and R²MAE on every interval [a, b] of ``mc_ratios``, on
    validation repetitions (to select) and test repetitions (to compare), sharing seeds (paired). Each row
    carries its method's ``group`` (``fixed``, ``r2mae`` the declared interval, ``interval`` the others) and its
    ``ratio_low`` / ``ratio_high``."""
    n = config.n_of(config.focus_gamma)
    cov = covariance(config, config.focus_family)
    tests = _tests(config)
    frames = []
    methods = [(f"fixed {m:g}", float(m), "fixed", float(m), float(m)) for m in config.mc_ratios]
    methods.append(("R²MAE", config.r2mae_sampler(), "r2mae", config.r2mae_low, config.r2mae_high))
    methods += [(f"R²MAE [{lo:g}, {hi:g}]", make_sampler({"kind": "r2mae", "low": lo, "high": hi,
                                                         "per": config.r2mae_per}), "interval", lo, hi)
                for lo in config.mc_ratios for hi in config.mc_ratios if lo < hi]
    # the fixed ratio of equal population effect of every interval (a fixed grid no interval can sit between)
    methods += [(equivalent_label(label), theory.equivalent_fixed_ratio(law), "equivalent",
                 theory.equivalent_fixed_ratio(law), theory.equivalent_fixed_ratio(law))
                for label, law, group, _, _ in list(methods) if group in ("r2mae", "interval")]
    for split, tag in (("validation", 41), ("test", 42)):
        for label, law, group, low, high in methods:
            frame, _ = _mc(config, config.focus_family, law, n, tests, config.c4_reps, seed=_seed(config, tag))
            theory_risk = {name: theory.pretraining_risk(cov, law, n, test=t, ridge=config.ridge)
                           for name, t in tests.items()}
            frames.append(frame.assign(method=label, group=group, ratio_low=float(low), ratio_high=float(high),
                                       split=split,
                                       theory=frame["test"].map({k: v.risk for k, v in theory_risk.items()}),
                                       gamma_eff=theory_risk["universal"].gamma_eff))
    return pd.concat(frames, ignore_index=True)


def equivalent_label(method: str) -> str:
    """The C4 Monte Carlo label of the fixed ratio of equal population effect of R²MAE method ``method``."""
    return f"fixed m_eq({method})"


def _fine_fixed(config: Config) -> pd.DataFrame:
    """The best fixed ratio of each pretraining criterion at (focus family, focus γ) on the fine grid of
    :func:`linear_phase.fixed_optimum` (step ``phase_fixed_step`` + Brent to 1e-5)."""
    cov = covariance(config, config.focus_family)
    n = config.n_of(config.focus_gamma)
    rows = []
    for name, test in _tests(config).items():
        ratio, risk = linear_phase.fixed_optimum(
            lambda m, test=test: theory.pretraining_risk(cov, m, n, test=test, ridge=config.ridge).risk,
            config.phase_fixed_step)
        rows.append({"criterion": name, "ratio": ratio, "risk": risk})
    return pd.DataFrame(rows)


def _diffusion(config: Config) -> pd.DataFrame:
    """Masked diffusion's law (m ~ U[ε, 1 − ε], loss weight 1/m) at (focus family, focus γ) for the ridge of the
    study and every phase ridge: theory and paired Monte Carlo next to its m_eq, the declared R²MAE and the best
    fixed ratio of the fine grid, per pretraining criterion."""
    cov = covariance(config, config.focus_family)
    n = config.n_of(config.focus_gamma)
    tests = _tests(config)
    law = theory.masked_diffusion_law(config.diffusion_eps)
    sampler = make_sampler({"kind": "r2mae", "low": config.diffusion_eps, "high": 1 - config.diffusion_eps,
                            "per": "sample"})
    m_eq = theory.equivalent_fixed_ratio(law)
    rows = []
    for ridge in sorted({float(config.ridge), *map(float, config.phase_ridges)}):
        best = {name: linear_phase.fixed_optimum(
            lambda m, test=test, ridge=ridge: theory.pretraining_risk(cov, m, n, test=test, ridge=ridge).risk,
            config.phase_fixed_step)[0] for name, test in tests.items()}
        methods = [("masked diffusion", law, sampler, "inverse", None), ("fixed m_eq", m_eq, m_eq, None, None),
                   ("R²MAE (declared)", config.r2mae_sampler(), config.r2mae_sampler(), None, None)]
        methods += [("best fixed", m, m, None, name) for name, m in best.items()]
        for label, theory_law, mc_law, weight, only in methods:
            names = [only] if only else list(tests)
            frame, _ = _mc(config, config.focus_family, mc_law, n, {k: tests[k] for k in names}, config.c4_reps,
                           seed=_seed(config, 61), ridge=ridge, loss_weight=weight)
            theory_risk = {k: theory.pretraining_risk(cov, theory_law, n, test=tests[k], ridge=ridge).risk
                           for k in names}
            rows.append(frame[["rep", "test", "risk"]].rename(columns={"test": "criterion"}).assign(
                ridge=ridge, law=label, ratio=float(theory.equivalent_fixed_ratio(theory_law)),
                theory=lambda d, tr=theory_risk: d["criterion"].map(tr)))
    return pd.concat(rows, ignore_index=True)


def _phase(config: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 7: the phase diagram (theory) and its Monte Carlo checks (:mod:`linear_phase`)."""
    settings = config.phase_settings()
    table = linear_phase.phase_table(settings, progress=lambda cells: tqdm(cells, desc="phase cells"))
    points = linear_phase.phase_points_to_check(table, settings)
    return table, linear_phase.phase_monte_carlo(settings, points)


def _scales(config: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 5: per-scale gain of the learned filter (coarse vs fine band), theory vs MC mean fit."""
    cov = covariance(config, config.downstream_family)
    spectrum = cov.fourier_spectrum()
    n_pre = config.n_of(config.n_pretrain_gamma)
    bands = {"coarse": (0.0, 0.05), "fine": (0.3, 1.0)}
    theory_rows, mc_rows = [], []
    laws = [(f"{m:.4g}", float(m)) for m in config.ratio_grid()] + [("R²MAE", config.r2mae_sampler())]
    for label, law in laws:
        h = downstream.representation_filter(cov, law, n_pre, ridge=config.ridge)
        population = downstream.representation_filter(cov, law, None)
        for band, (lo, hi) in bands.items():
            theory_rows.append({"law": label, "ratio": law if isinstance(law, float) else float("nan"),
                                "band": band, "gain": downstream.band_gain(spectrum, h, lo, hi),
                                "population_gain": downstream.band_gain(spectrum, population, lo, hi)})
    view = cov.view(0)
    mc_laws = [(f"{m:.4g}", float(m)) for m in config.mc_ratios] + [("R²MAE", config.r2mae_sampler())]
    for label, law in mc_laws:
        _, weights = _mc(config, config.downstream_family, law, n_pre, {"train": config.test_ratio},
                         config.scale_reps, seed=_seed(config, 5), keep_weights=True)
        h = np.fft.fft(np.concatenate([[0.0], view.basis @ weights[0]])).real
        for band, (lo, hi) in bands.items():
            mc_rows.append({"law": label, "ratio": law if isinstance(law, float) else float("nan"), "band": band,
                            "gain": downstream.band_gain(spectrum, h, lo, hi)})
    return pd.DataFrame(theory_rows), pd.DataFrame(mc_rows)


def run(config: Config) -> dict[str, pd.DataFrame]:
    """Run the study; every Monte Carlo point is cached (re-runs only recompute the theory)."""
    fixed_theory, fixed_mc = _fixed_curves(config)
    downstream_theory, downstream_mc = _downstream(config)
    scales_theory, scales_mc = _scales(config)
    phase, phase_mc = _phase(config)
    return {"fine_fixed": _fine_fixed(config), "diffusion": _diffusion(config), "phase": phase,
            "phase_mc": phase_mc, "fixed_theory": fixed_theory, "fixed_mc": fixed_mc, "optimum": _optimum(config),
            "downstream_theory": downstream_theory, "downstream_mc": downstream_mc,
            "r2mae_grid": _r2mae_grid(config), "c4_mc": _c4_monte_carlo(config),
            "scales_theory": scales_theory, "scales_mc": scales_mc}
