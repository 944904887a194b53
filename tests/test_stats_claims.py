"""Statistics helpers and the claims ledger schema."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from r2mae_core.claims import (
    Claim,
    claims_to_markdown,
    interval_claim,
    make_claim,
    verdict_from_bool,
    verdict_from_interval,
)
from r2mae_core.stats import mean_ci, paired_difference, summarise


def test_mean_ci_matches_scipy_t_interval():
    x = np.array([0.71, 0.74, 0.69, 0.73, 0.75])
    mean, low, high = mean_ci(x)
    ref_low, ref_high = sps.t.interval(0.95, df=4, loc=x.mean(), scale=sps.sem(x))
    assert mean == pytest.approx(x.mean())
    assert (low, high) == pytest.approx((ref_low, ref_high))


def test_mean_ci_coverage_is_nominal():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        _, low, high = mean_ci(rng.normal(1.0, 2.0, size=5))
        hits += low <= 1.0 <= high
    assert 0.93 < hits / 2000 < 0.97


def test_mean_ci_single_value_has_no_interval():
    mean, low, high = mean_ci([3.0])
    assert mean == 3.0 and math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [np.inf]])
def test_mean_ci_rejects_empty_and_nonfinite(bad):
    with pytest.raises(ValueError):
        mean_ci(bad)


def test_mean_ci_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence=1.5"):
        mean_ci([1.0, 2.0], confidence=1.5)


def test_summarise_groups_and_counts():
    df = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 3, "acc": [1.0, 2.0, 3.0, 5.0, 5.0, 5.0]})
    out = summarise(df, ["method"], "acc").set_index("method")
    assert out.loc["a", "mean"] == 2.0 and out.loc["a", "n"] == 3
    assert out.loc["b", "ci_low"] == out.loc["b", "ci_high"] == 5.0
    with pytest.raises(ValueError, match="not in the table"):
        summarise(df, ["nope"], "acc")


def test_paired_difference_uses_pairs_not_pooled_spread():
    seeds = np.arange(6)
    base = np.array([0.1, 0.5, 0.9, 0.3, 0.7, 0.2])  # large between-seed spread
    df = pd.DataFrame({"seed": np.concatenate([seeds, seeds]), "method": ["x"] * 6 + ["y"] * 6,
                       "v": np.concatenate([base + 0.01, base])})
    d = paired_difference(df, method_col="method", a="x", b="y", value="v")
    assert d["mean"] == pytest.approx(0.01) and d["n"] == 6
    assert d["ci_low"] == pytest.approx(0.01) and d["ci_high"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="has no rows"):
        paired_difference(df, method_col="method", a="x", b="z", value="v")


def test_verdict_rules():
    assert verdict_from_interval(0.1, 0.3) == "supported"
    assert verdict_from_interval(-0.3, -0.1) == "contradicted"
    assert verdict_from_interval(-0.1, 0.3) == "inconclusive"
    assert verdict_from_interval(float("nan"), float("nan")) == "inconclusive"
    assert verdict_from_interval(1.1, 2.0, threshold=1.0) == "supported"
    assert verdict_from_bool(True) == "supported" and verdict_from_bool(False) == "contradicted"


def _claim(**kw):
    base = dict(id="C1", claim="x beats y", source="paper", metric="diff", value=0.1, ci_low=0.05,
                ci_high=0.15, n_seeds=3, verdict="supported", profile="quick")
    return Claim(**{**base, **kw})


def test_claim_json_round_trip_with_nan():
    c = _claim(ci_low=float("nan"), ci_high=float("nan"), verdict="inconclusive")
    rec = c.to_json()
    assert rec["ci_low"] is None
    back = Claim.from_json(rec)
    assert back.id == c.id and math.isnan(back.ci_low)


@pytest.mark.parametrize("kw,match", [({"verdict": "maybe"}, "verdict='maybe'"),
                                      ({"profile": "huge"}, "profile='huge'"),
                                      ({"n_seeds": -1}, "n_seeds=-1")])
def test_claim_rejects_bad_fields(kw, match):
    with pytest.raises(ValueError, match=match):
        _claim(**kw)


def test_claim_from_json_rejects_schema_drift():
    rec = _claim().to_json()
    rec["extra"] = 1
    with pytest.raises(ValueError, match="differ from the schema"):
        Claim.from_json(rec)


def test_claims_markdown_lists_every_claim_and_totals():
    md = claims_to_markdown({"01_x": [_claim(), _claim(id="C2", verdict="contradicted")]}, "quick")
    assert "## 01_x" in md and "| C2 |" in md
    assert "supported: 1, contradicted: 1, inconclusive: 0" in md


# transcriptions of the three section wrappers make_claim replaced (vision, linear theory, language)
def _old_vision(cid, text, source, metric, diffs, profile, threshold=0.0):
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size == 0:
        return Claim(cid, text, source, metric, math.nan, math.nan, math.nan, 0, "inconclusive", profile)
    value, low, high = mean_ci(diffs)
    return interval_claim(cid, text, source, metric, value=value, ci_low=low, ci_high=high, n_seeds=diffs.size,
                          profile=profile, threshold=threshold)


def _old_linear_theory(cid, text, metric, diff, n, profile, allow_contradicted=True):
    if isinstance(diff, dict):
        value, low, high = diff["mean"], diff["ci_low"], diff["ci_high"]
    else:
        value, low, high = float(np.mean(diff)), *np.percentile(diff, [2.5, 97.5])
    return interval_claim(cid, text, "S", metric, value=value, ci_low=low, ci_high=high, n_seeds=n, profile=profile,
                          allow_contradicted=allow_contradicted)


def _same(a: Claim, b: Claim) -> bool:
    return repr(a) == repr(b)  # every field, NaN included


@pytest.mark.parametrize("shift", [-0.3, -0.01, 0.0, 0.02, 0.3])
def test_make_claim_gives_the_verdicts_of_the_section_wrappers(shift):
    rng = np.random.default_rng(7)
    diffs = rng.normal(shift, 0.05, 5)
    draws = rng.normal(shift, 0.05, 400)
    for threshold in (0.0, 0.05):
        assert _same(make_claim(cid="V", claim="t", source="S", metric="m", diffs=diffs, profile="smoke",
                                threshold=threshold), _old_vision("V", "t", "S", "m", diffs, "smoke", threshold))
    assert _same(make_claim(cid="V", claim="t", source="S", metric="m", diffs=[], profile="smoke"),
                 _old_vision("V", "t", "S", "m", [], "smoke"))
    for allow in (True, False):
        assert _same(make_claim(cid="C", claim="t", source="S", metric="m", draws=draws, n_seeds=5, profile="quick",
                                allow_contradicted=allow), _old_linear_theory("C", "t", "m", draws, 5, "quick", allow))
    paired = paired_difference(pd.DataFrame({"m": ["a"] * 5 + ["b"] * 5, "rep": list(range(5)) * 2,
                                             "v": np.r_[diffs, np.zeros(5)]}), method_col="m", a="a", b="b",
                               value="v", pair_on="rep")
    assert _same(make_claim(cid="C", claim="t", source="S", metric="m", value=paired["mean"],
                            ci_low=paired["ci_low"], ci_high=paired["ci_high"], n_seeds=paired["n"], profile="full"),
                 _old_linear_theory("C", "t", "m", paired, paired["n"], "full"))
    # the language wrapper passed value, interval and n straight through
    point = float(np.mean(draws))
    lo, hi = np.percentile(draws, [2.5, 97.5])
    assert _same(make_claim(cid="L", claim="t", source="S", metric="m", value=point, draws=draws, n_seeds=3,
                            profile="smoke"), interval_claim("L", "t", "S", "m", value=point, ci_low=lo,
                                                                 ci_high=hi, n_seeds=3, profile="smoke"))
    with pytest.raises(ValueError, match="exactly one"):
        make_claim(cid="L", claim="t", source="S", metric="m", diffs=diffs, draws=draws, profile="smoke")
    with pytest.raises(TypeError):
        make_claim("L", "t", source="S", metric="m", diffs=diffs, profile="smoke")  # keyword-only
