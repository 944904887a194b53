"""The phase diagram of 01 (:mod:`r2mae_core.experiments.linear_phase`) and its claim C5: the fine fixed-ratio
and interval optimisers find known optima, a tiny diagram's rows are consistent with direct theory evaluations,
the Monte Carlo points follow the rule (wins, their γ-neighbours with the winning interval, or the closest
points), and C5's verdict follows its rule on constructed tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from r2mae_core import theory
from r2mae_core.experiments import linear_phase as P
from r2mae_core.experiments import linear_theory, linear_theory_claims


def _settings(**change) -> P.PhaseSettings:
    config = linear_theory.Config(phase_p=30, phase_gammas=[1.0], phase_families=["two_scale"],
                                  phase_ridges=[0.0, 0.1], phase_pers=["sample", "batch"],
                                  phase_criteria=["test_ratio", "downstream"], phase_fixed_step=0.05,
                                  phase_interval_step=0.25, phase_batch_draws=2, phase_reps=4)
    return P.PhaseSettings(**{**config.phase_settings().__dict__, **change})


def test_fixed_optimum_finds_the_lower_of_two_wells_between_grid_points():
    def risk(m: float) -> float:
        return min((m - 0.2) ** 2 + 0.01, (m - 0.7312) ** 2)

    ratio, value = P.fixed_optimum(risk, 0.05)
    assert ratio == pytest.approx(0.7312, abs=2e-5)
    assert value < 1e-9


def test_interval_optimum_refines_the_grid_interval():
    (a, b, value), top = P.interval_optimum(lambda a, b: (a - 0.313) ** 2 + (b - 0.627) ** 2 + 1.0, 0.1)
    assert (a, b) == pytest.approx((0.313, 0.627), abs=2e-3)
    assert value < top[0][2] and len(top) == 3 and top[0][2] <= top[1][2] <= top[2][2]


def test_tiny_phase_table_agrees_with_direct_theory():
    settings = _settings()
    table = P.phase_table(settings)
    assert set(table["per"]) == {"sample", "batch"} and set(table["criterion"]) == {"test_ratio", "downstream"}
    assert not ((table["per"] == "batch") & (table["criterion"] == "downstream")).any()
    cov = settings.covariance("two_scale")
    for row in table.itertuples():
        risk = P.criterion_risk(settings, cov, int(row.n), row.ridge, row.criterion)
        # the refined fixed optimum is no worse than any ratio of a 0.01 grid, and is the risk at its ratio
        assert row.fixed_risk <= min(risk(float(m)) for m in np.arange(0.01, 1.0, 0.01)) + 1e-12
        assert row.fixed_risk == pytest.approx(risk(row.fixed_ratio), rel=1e-12)
        assert row.low < row.equivalent_ratio < row.high
        assert row.equivalent_risk == pytest.approx(risk(row.equivalent_ratio), rel=1e-12)
        if row.per == "sample":
            assert row.interval_risk <= row.grid_risk + 1e-12
            assert row.interval_risk == pytest.approx(risk(P._law(row.low, row.high)), rel=1e-10)
        assert row.win == (row.delta < -settings.tolerance)
    assert np.allclose(table["delta"], table["interval_risk"] - table["fixed_risk"])


def _synthetic(deltas: list[float]) -> pd.DataFrame:
    n = len(deltas)
    return pd.DataFrame({"family": "ar1", "gamma": np.geomspace(0.1, 10, n), "ridge": 0.0, "per": "sample",
                         "criterion": "test_ratio", "delta": deltas, "win": np.asarray(deltas) < -1e-4,
                         "low": np.linspace(0.1, 0.2, n), "high": np.linspace(0.5, 0.6, n),
                         "grid_low": 0.05, "grid_high": 0.45})


def test_points_to_check_are_wins_and_their_boundary_with_the_winning_interval():
    table = _synthetic([0.0, 0.0, -0.01, 0.0, 0.0])
    points = P.phase_points_to_check(table, _settings())
    assert points["reason"].tolist() == ["boundary", "win", "boundary"]
    assert np.allclose(points["mc_low"], table.loc[2, "low"]) and np.allclose(points["mc_high"], table.loc[2, "high"])


def test_points_to_check_without_a_win_are_the_closest_with_a_non_degenerate_interval():
    table = _synthetic([0.3, 0.2, 0.1, 0.4, 0.5])
    table.loc[2, ["low", "high"]] = (0.3, 0.3005)  # the refinement shrank the best interval to a point
    points = P.phase_points_to_check(table, _settings(mc_points=2))
    assert points["reason"].tolist() == ["closest", "closest"] and points.index.tolist() == [1, 2]
    assert points.loc[2, "mc_low"] == 0.05 and points.loc[1, "mc_low"] == table.loc[1, "low"]


@pytest.mark.parametrize(("deltas", "mc", "verdict"), [
    ([0.0, -0.01, 0.0], [("boundary", -0.1, -0.05), ("win", 0.01, 0.02), ("boundary", -0.1, -0.05)], "supported"),
    ([0.0, -0.01, 0.0], [("boundary", -0.1, -0.05), ("win", -0.01, 0.02), ("boundary", -0.1, -0.05)],
     "inconclusive"),
    ([0.0, -0.01, 0.0], [("boundary", -0.1, -0.05), ("win", -0.02, -0.01), ("boundary", -0.1, -0.05)],
     "contradicted"),
    ([0.1, 0.2, 0.3], [("closest", -0.1, 0.05)], "contradicted"),
    ([0.1, 0.2, 0.3], [("closest", 0.01, 0.05)], "inconclusive"),
])
def test_phase_claim_follows_its_rule(deltas, mc, verdict):
    phase = _synthetic(deltas)
    phase_mc = pd.DataFrame([{"family": "ar1", "gamma": 1.0, "ridge": 0.0, "per": "sample",
                              "criterion": "test_ratio", "reason": reason, "low": 0.1, "high": 0.5,
                              "mc_gain": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "fw_low": lo, "fw_high": hi,
                              "reps": 8}
                             for reason, lo, hi in mc])
    claim = linear_theory_claims.phase_claim(phase, phase_mc, linear_theory.Config(), "smoke")
    assert claim.id == "C5" and claim.verdict == verdict
    assert claim.value == pytest.approx(phase_mc["mc_gain"].max())


def test_phase_claim_confirms_a_win_only_on_the_bonferroni_interval():
    """A 95% interval above 0 at one of many checked points is what chance gives; C5 needs the familywise one."""
    phase = _synthetic([0.0, -0.01, 0.0])
    row = {"family": "ar1", "gamma": 1.0, "ridge": 0.0, "per": "sample", "criterion": "test_ratio",
           "reason": "win", "low": 0.1, "high": 0.5, "mc_gain": 0.01, "ci_low": 0.002, "ci_high": 0.018,
           "fw_low": -0.003, "fw_high": 0.023, "reps": 200}
    claim = linear_theory_claims.phase_claim(phase, pd.DataFrame([row]), linear_theory.Config(), "smoke")
    assert claim.verdict == "inconclusive" and (claim.ci_low, claim.ci_high) == (-0.003, 0.023)


def test_phase_monte_carlo_bonferroni_intervals_widen_with_the_number_of_points():
    settings = _settings(reps=4)
    point = P.phase_points_to_check(P.phase_table(settings), settings).head(1)
    points = pd.concat([point] * 3, ignore_index=True)  # three checks of one point, each with its own seed
    one, every = P.phase_monte_carlo(settings, points.head(1)), P.phase_monte_carlo(settings, points)
    first = every.iloc[0]
    assert one.iloc[0]["fw_low"] == pytest.approx(one.iloc[0]["ci_low"], rel=1e-12)  # k = 1: the 95% interval
    t95, tfw = stats.t.ppf(0.975, 3), stats.t.ppf(1 - 0.025 / len(points), 3)
    half = (first["ci_high"] - first["ci_low"]) / 2
    assert (first["fw_high"] - first["fw_low"]) / 2 == pytest.approx(half * tfw / t95, rel=1e-9)
    assert list(every.columns) == P._PHASE_MC_COLUMNS


def test_phase_monte_carlo_pairs_fixed_and_interval_and_reports_the_theory_gain():
    settings = _settings(reps=3)
    table = P.phase_table(settings)
    points = P.phase_points_to_check(table, settings).head(1)
    mc = P.phase_monte_carlo(settings, points)
    row, point = mc.iloc[0], points.iloc[0]
    cov = settings.covariance("two_scale")
    if point["per"] == "sample":
        risk = P.criterion_risk(settings, cov, int(point["n"]), point["ridge"], point["criterion"])
        assert row["theory_gain"] == pytest.approx(point["fixed_risk"] - risk(P._law(point["mc_low"],
                                                                                     point["mc_high"])), rel=1e-10)
    assert row["reps"] == 3 and row["ci_low"] <= row["mc_gain"] <= row["ci_high"]
    assert row["mc_gain"] == pytest.approx(row["mc_fixed"] - row["mc_interval"], rel=1e-10)
    assert theory.equivalent_fixed_ratio(P._law(row["low"], row["high"])) > 0


def test_phase_claim_names_a_few_points_and_summarises_many():
    phase = _synthetic([0.0, -0.01, 0.0])
    rows = [{"family": f, "gamma": g, "ridge": 0.0, "per": "sample", "criterion": "test_ratio", "reason": "win",
             "low": 0.01, "high": h, "mc_gain": 0.0, "ci_low": -0.01, "ci_high": 0.01, "fw_low": -0.02,
             "fw_high": 0.02, "reps": 8}
            for f, g, h in [("ar1", 0.32, 0.1), ("ar1", 0.56, 0.2), ("two_scale", 1.0, 0.4), ("spiked", 0.56, 0.3),
                            ("two_scale", 0.56, 0.25)]]
    config = linear_theory.Config()
    few = linear_theory_claims.phase_claim(phase, pd.DataFrame(rows[:2]), config, "smoke").claim
    many = linear_theory_claims.phase_claim(phase, pd.DataFrame(rows), config, "smoke").claim
    assert "ar1 γ=0.32 λ=0 sample test_ratio [0.01, 0.10]; ar1 γ=0.56" in few
    assert ("5 points (Table 6): families ar1, spiked, two_scale; γ 0.32-1; λ 0; per sample; criteria test_ratio; "
            "intervals from [0.01, 0.10] to [0.01, 0.40]") in many
