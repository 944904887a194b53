"""Property and statistical tests of :mod:`r2mae_core.masking` (ratio samplers and mask generators).

Every statistical test uses a fixed seed and a tolerance of ~4-5 standard errors, so it is deterministic and
still fails when a distribution is wrong (e.g. a sd off by 5%, a 75/15/10 BERT split, a biased position).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy import stats as sps

from r2mae_core import masking as M

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def tgen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ngen(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


SAMPLERS = {
    "fixed": M.Fixed(0.75),
    "r2mae_batch": M.R2MAE(0.5, 0.9),
    "r2mae_sample": M.R2MAE(0.5, 0.9, per="sample"),
    "scheduled_cos": M.Scheduled(0.9, 0.5, "cosine"),
    "scheduled_lin_up": M.Scheduled(0.2, 0.6, "linear"),
    "mrd_cos": M.masking_ratio_decay("cosine"),
    "mrd_lin": M.masking_ratio_decay("linear"),
    "maskgit": M.MaskGITCosine(),
    "maskgit_sample": M.MaskGITCosine(per="sample"),
    "truncnorm": M.TruncatedGaussian(),
    "truncnorm_sample": M.TruncatedGaussian(per="sample"),
    "choice": M.Choice([0.25, 0.5, 0.75]),
    "choice_sample": M.Choice([0.1, 0.6], per="sample"),
}
RANDOM = [k for k, s in SAMPLERS.items() if not isinstance(s, M.Fixed | M.Scheduled)]
# the same laws drawn per sample (one call gives many i.i.d. draws), for moment checks
PER_SAMPLE = {"r2mae": M.R2MAE(0.5, 0.9, per="sample"), "maskgit": M.MaskGITCosine(per="sample"),
              "truncnorm": M.TruncatedGaussian(per="sample"),
              "choice": M.Choice([0.25, 0.5, 0.75], per="sample"),
              "truncnorm_wide": M.TruncatedGaussian(0.3, 0.4, 0.05, 0.95, per="sample")}
MOMENTS = {"m": lambda m: m, "m(1-m)^2": lambda m: m * (1 - m) ** 2, "m^2(1-m)": lambda m: m**2 * (1 - m)}


# ------------------------------------------------------------------------------ samplers: types, determinism
@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_torch_output_is_float32_on_generator_device_inside_support(name):
    sampler = SAMPLERS[name]
    out = sampler.sample(64, generator=tgen(1), progress=0.3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (64,)
    assert out.device == torch.device("cpu")
    lo, hi = sampler.support()
    assert 0 < lo <= hi < 1
    assert bool(((out >= np.float32(lo)) & (out <= np.float32(hi))).all())


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_numpy_output_is_float64_inside_support(name):
    sampler = SAMPLERS[name]
    out = sampler.sample(64, generator=ngen(1), progress=0.7)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (64,)
    lo, hi = sampler.support()
    assert np.all((out >= lo) & (out <= hi)) and np.all((out > 0) & (out < 1))


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_same_seed_same_bits_and_no_global_rng(name):
    sampler = SAMPLERS[name]
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()  # noqa: NPY002
    a = [sampler.sample(16, generator=g, progress=0.5) for g in [tgen(7)] for _ in range(3)]
    b = [sampler.sample(16, generator=g, progress=0.5) for g in [tgen(7)] for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = [sampler.sample(16, generator=g) for g in [ngen(7)] for _ in range(3)]
    d = [sampler.sample(16, generator=g) for g in [ngen(7)] for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(c, d, strict=True))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002


@pytest.mark.parametrize("name", RANDOM)
def test_random_sampler_depends_on_seed_and_advances_state(name):
    sampler = SAMPLERS[name]
    g = tgen(3)
    calls = torch.stack([sampler.sample(8, generator=g) for _ in range(20)])  # (20, 8)
    assert len({tuple(row.tolist()) for row in calls}) > 1  # the generator advances between calls
    other = torch.stack([sampler.sample(8, generator=tgen(4)) for _ in range(20)])
    assert not torch.equal(calls[0], other[0]) or not torch.equal(calls, other)


@pytest.mark.parametrize("name", SAMPLERS)
def test_per_batch_rows_equal_per_sample_rows_differ(name):
    sampler = SAMPLERS[name]
    for gen in (tgen(5), ngen(5)):
        out = np.asarray(sampler.sample(256, generator=gen, progress=0.25))
        if sampler.per == "batch":
            assert np.all(out == out[0])
        else:
            assert np.unique(out).size > 1


def test_per_batch_draws_once_per_call_per_sample_draws_per_row():
    # per batch: one U(0,1) per call, so the second call equals the second draw of a per-sample call of size 2
    a = M.R2MAE(0.5, 0.9).sample(5, generator=ngen(0))
    b = M.R2MAE(0.5, 0.9, per="sample").sample(2, generator=ngen(0))
    assert np.all(a == b[0])
    g = ngen(0)
    M.R2MAE(0.5, 0.9).sample(1000, generator=g)
    assert M.R2MAE(0.5, 0.9).sample(3, generator=g)[0] == b[1]


def test_sampler_float32_never_rounds_onto_one():
    out = M.R2MAE(0.5, 1 - 1e-12, per="sample").sample(20000, generator=tgen(0))
    assert float(out.max()) < 1.0 and float(out.min()) >= 0.5


@FAST
@given(low=st.floats(0.01, 0.97), width=st.floats(1e-3, 0.6), per=st.sampled_from(["batch", "sample"]),
       b=st.integers(1, 40), seed=st.integers(0, 2**31), t=st.floats(0.0, 1.0))
def test_r2mae_any_interval_samples_inside_and_expect_exact(low, width, per, b, seed, t):
    high = min(low + width, 0.99)
    assume(high > low)
    s = M.R2MAE(low, high, per=per)
    for gen in (tgen(seed), ngen(seed)):
        x = np.asarray(s.sample(b, generator=gen, progress=t), dtype=np.float64)
        assert x.shape == (b,) and np.all((x >= low - 1e-7) & (x <= high + 1e-7))
        assert (np.unique(x).size == 1) == (per == "batch" or b == 1)
    assert s.mean() == pytest.approx((low + high) / 2, abs=1e-12)
    assert s.expect(lambda m: m**3) == pytest.approx((high**4 - low**4) / (4 * (high - low)), rel=1e-9)


@FAST
@given(mean=st.floats(-1.0, 2.0), std=st.floats(0.01, 1.0), low=st.floats(0.01, 0.9),
       width=st.floats(0.01, 0.5), seed=st.integers(0, 2**31))
def test_truncated_gaussian_any_parameters_samples_finite_inside_interval(mean, std, low, width, seed):
    high = min(low + width, 0.99)
    try:
        s = M.TruncatedGaussian(mean, std, low, high, per="sample")
    except ValueError as err:  # only the mass check may refuse a valid-looking interval
        assume("mass" not in str(err))
        raise
    for gen in (tgen(seed), ngen(seed)):
        x = np.asarray(s.sample(256, generator=gen), dtype=np.float64)
        assert np.all(np.isfinite(x)) and np.all((x >= low - 1e-6) & (x <= high + 1e-6))
    assert low <= s.mean() <= high


# ------------------------------------------------------------------------------ samplers: distributions
def test_r2mae_per_batch_constant_within_call_with_uniform_moments_across_calls():
    a, b, n = 0.5, 0.9, 4000
    g = tgen(11)
    calls = torch.stack([M.R2MAE(a, b).sample(16, generator=g) for _ in range(n)]).double()  # (n, 16)
    assert bool((calls == calls[:, :1]).all())
    x = calls[:, 0].numpy()
    sd = (b - a) / math.sqrt(12)
    assert abs(x.mean() - (a + b) / 2) < 4 * sd / math.sqrt(n)
    # sd of a sample sd of a uniform: sd * sqrt((kurtosis - 1) / (4 n)), kurtosis 1.8
    assert abs(x.std(ddof=1) - sd) < 4 * sd * math.sqrt(0.8 / (4 * n))
    assert sps.kstest(x, sps.uniform(a, b - a).cdf).pvalue > 1e-3


@pytest.mark.parametrize("gen_factory", [tgen, ngen], ids=["torch", "numpy"])
def test_r2mae_per_sample_spread_within_one_call_matches_uniform(gen_factory):
    a, b, n = 0.3, 0.8, 8192
    x = np.asarray(M.R2MAE(a, b, per="sample").sample(n, generator=gen_factory(12)), dtype=np.float64)
    sd = (b - a) / math.sqrt(12)
    assert abs(x.mean() - (a + b) / 2) < 4 * sd / math.sqrt(n)
    assert abs(x.std(ddof=1) - sd) < 4 * sd * math.sqrt(0.8 / (4 * n))
    assert x.min() >= a and x.max() <= b
    assert sps.kstest(x, sps.uniform(a, b - a).cdf).pvalue > 1e-3


@pytest.mark.parametrize("gen_factory", [tgen, ngen], ids=["torch", "numpy"])
@pytest.mark.parametrize("params", [(0.55, 0.25, 0.5, 0.99), (0.3, 0.4, 0.05, 0.95), (0.2, 0.05, 0.5, 0.6),
                                    (0.9, 0.07, 0.1, 0.5)], ids=["mage", "wide", "right_tail", "left_tail"])
def test_truncated_gaussian_matches_scipy_truncnorm(gen_factory, params):
    mean, std, low, high = params
    ref = sps.truncnorm((low - mean) / std, (high - mean) / std, loc=mean, scale=std)
    sampler = M.TruncatedGaussian(mean, std, low, high, per="sample")
    x = np.asarray(sampler.sample(20000, generator=gen_factory(13)), dtype=np.float64)
    assert x.min() >= np.float32(low) and x.max() <= np.float32(high)
    assert abs(x.mean() - ref.mean()) < 4 * ref.std() / math.sqrt(x.size)
    assert abs(x.std() / ref.std() - 1) < 0.03
    assert sps.kstest(x, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("gen_factory", [tgen, ngen], ids=["torch", "numpy"])
def test_maskgit_cosine_law(gen_factory):
    x = np.asarray(M.MaskGITCosine(per="sample").sample(20000, generator=gen_factory(14)), dtype=np.float64)
    sd = math.sqrt(0.5 - 4 / math.pi**2)  # E[cos²(πr/2)] = 1/2
    assert abs(x.mean() - 2 / math.pi) < 4 * sd / math.sqrt(x.size)
    assert abs(x.std() / sd - 1) < 0.03
    eps = 1e-3  # the clip: atoms of mass (2/π) acos(1 - eps) ≈ 2.8% at 1 - eps and ≈ 0.06% at eps
    q = np.linspace(0.02, 0.98, 25)
    cdf = 1 - (2 / np.pi) * np.arccos(q)  # P(cos(πr/2) <= q), exact between the atoms
    z = ((x[:, None] <= q).mean(0) - cdf) / np.sqrt(cdf * (1 - cdf) / x.size)
    assert np.abs(z).max() < 4.5
    assert x.min() >= eps - 1e-7 and x.max() <= 1 - eps + 1e-7
    assert abs(np.mean(x == x.max()) - 2 / np.pi * np.arccos(1 - eps)) < 0.005


def test_maskgit_per_batch_moments_across_calls():
    g = tgen(15)
    x = np.array([float(M.MaskGITCosine().sample(4, generator=g)[0]) for _ in range(4000)])
    sd = math.sqrt(0.5 - 4 / math.pi**2)
    assert abs(x.mean() - 2 / math.pi) < 4 * sd / math.sqrt(x.size)


@pytest.mark.parametrize("gen_factory", [tgen, ngen], ids=["torch", "numpy"])
def test_choice_frequencies_are_uniform(gen_factory):
    values, n = (0.25, 0.5, 0.75), 30000
    x = np.asarray(M.Choice(values, per="sample").sample(n, generator=gen_factory(16)), dtype=np.float64)
    counts = np.array([np.sum(x == np.float32(v)) for v in values])
    assert counts.sum() == n
    assert sps.chisquare(counts).pvalue > 1e-3
    g = gen_factory(17)
    per_batch = np.array([float(M.Choice(values).sample(3, generator=g)[0]) for _ in range(3000)])
    assert sps.chisquare([np.sum(per_batch == np.float32(v)) for v in values]).pvalue > 1e-3


# ------------------------------------------------------------------------------ expect (quadrature)
@pytest.mark.parametrize("gen_factory", [tgen, ngen], ids=["torch", "numpy"])
@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("name", PER_SAMPLE)
def test_expect_agrees_with_monte_carlo(name, moment, gen_factory):
    sampler, fn = PER_SAMPLE[name], MOMENTS[moment]
    v = fn(np.asarray(sampler.sample(200_000, generator=gen_factory(21)), dtype=np.float64))
    z = (v.mean() - sampler.expect(fn)) / (v.std() / math.sqrt(v.size))
    assert abs(z) < 4


@pytest.mark.parametrize("name", ["scheduled_cos", "scheduled_lin_up", "mrd_cos", "mrd_lin"])
def test_schedule_expect_averages_over_uniform_progress(name):
    sampler = SAMPLERS[name]
    rng = ngen(22)
    ts = rng.random(4000)
    fn = MOMENTS["m(1-m)^2"]
    v = np.array([fn(sampler.sample(1, generator=rng, progress=float(t))[0]) for t in ts])
    z = (v.mean() - sampler.expect(fn)) / (v.std() / math.sqrt(v.size))
    assert abs(z) < 4
    assert sampler.expect(fn, progress=0.3) == pytest.approx(fn(sampler.ratio(0.3)), abs=1e-15)


def test_expect_closed_forms():
    a, b = 0.5, 0.9
    r2 = M.R2MAE(a, b)
    assert r2.mean() == pytest.approx((a + b) / 2, abs=1e-13)
    assert r2.expect(lambda m: m**2) == pytest.approx((a * a + a * b + b * b) / 3, abs=1e-13)
    assert r2.expect(lambda m: 1.0) == pytest.approx(1.0, abs=1e-13)  # scalar-valued fn broadcasts
    assert M.Fixed(0.75).expect(MOMENTS["m(1-m)^2"]) == 0.75 * 0.25**2
    assert M.Choice([0.25, 0.5, 0.75]).expect(lambda m: m**2) == pytest.approx((0.0625 + 0.25 + 0.5625) / 3)
    assert M.Scheduled(0.9, 0.5, "linear").mean() == pytest.approx(0.7, abs=1e-13)
    assert M.Scheduled(0.9, 0.5, "cosine").mean() == pytest.approx(0.7, abs=1e-13)
    assert M.Scheduled(0.9, 0.5, "cosine").expect(lambda m: m**2) == pytest.approx(0.49 + 0.04 / 2, abs=1e-13)
    assert M.masking_ratio_decay("cosine").mean() == pytest.approx(0.17, abs=1e-13)
    # ∫ max(0.3(1 - t), 0.02) dt = 0.15 - 0.3 (1/15)² / 2 + 0.02 / 15 (kink at t = 14/15)
    assert M.masking_ratio_decay("linear").mean() == pytest.approx(0.15 - 0.3 / 450 + 0.02 / 15, abs=1e-12)


def test_expect_truncnorm_and_maskgit_against_scipy():
    tn = M.TruncatedGaussian(0.55, 0.25, 0.5, 0.99)
    ref = sps.truncnorm(-0.2, 1.76, loc=0.55, scale=0.25)
    assert tn.mean() == pytest.approx(ref.mean(), abs=1e-12)
    assert tn.expect(lambda m: (m - ref.mean()) ** 2) == pytest.approx(ref.var(), abs=1e-12)
    eps = 1e-3
    mg = M.MaskGITCosine(eps=eps)
    r1, r2 = 2 / math.pi * math.acos(1 - eps), 2 / math.pi * math.acos(eps)
    for fn in MOMENTS.values():
        ref_value = integrate.quad(lambda r, f=fn: f(min(max(math.cos(math.pi * r / 2), eps), 1 - eps)), 0, 1,
                                   points=[r1, r2], epsabs=1e-13, limit=200)[0]
        assert mg.expect(fn) == pytest.approx(ref_value, abs=1e-10)
    assert mg.mean() == pytest.approx(2 / math.pi, abs=5e-5)  # the clip changes E[m] by only ~2e-5


def test_expect_ignores_progress_for_stationary_laws_and_is_deterministic():
    s = M.R2MAE(0.2, 0.6)
    assert s.expect(np.sin) == s.expect(np.sin, progress=0.9) == s.expect(np.sin)
    assert s.expect(np.sin, n_points=5) == pytest.approx(s.expect(np.sin), abs=1e-12)


# ------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize(("sampler", "expected"), [
    (M.Scheduled(0.9, 0.5, "linear"), (0.9, 0.7, 0.5)),
    (M.Scheduled(0.9, 0.5, "cosine"), (0.9, 0.7, 0.5)),
    (M.Scheduled(0.2, 0.6, "linear"), (0.2, 0.4, 0.6)),
    (M.Scheduled(0.2, 0.6, "cosine"), (0.2, 0.4, 0.6)),
    (M.masking_ratio_decay("cosine"), (0.32, 0.17, 0.02)),
    (M.masking_ratio_decay("linear"), (0.30, 0.15, 0.02)),
], ids=["lin_down", "cos_down", "lin_up", "cos_up", "mrd_cos", "mrd_lin"])
def test_schedule_values_at_start_middle_end(sampler, expected):
    got = [sampler.ratio(t) for t in (0.0, 0.5, 1.0)]
    assert got == pytest.approx(expected, abs=1e-12)
    out = sampler.sample(3, generator=tgen(0), progress=0.5)
    assert torch.equal(out, torch.full((3,), expected[1], dtype=torch.float32))


def test_cosine_schedule_shape_between_endpoints():
    s = M.Scheduled(0.9, 0.5, "cosine")
    assert s.ratio(0.25) == pytest.approx(0.5 + 0.4 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-12)
    assert s.ratio(0.25) > M.Scheduled(0.9, 0.5, "linear").ratio(0.25)  # cosine stays high longer


@FAST
@given(t=st.floats(0.0, 1.0))
def test_masking_ratio_decay_formulas(t):
    cosine = 0.15 * (1 + math.cos(math.pi * t)) + 0.02
    assert M.masking_ratio_decay("cosine").ratio(t) == pytest.approx(cosine, abs=1e-12)
    assert M.masking_ratio_decay("linear").ratio(t) == pytest.approx(max(0.30 * (1 - t), 0.02), abs=1e-12)
    assert M.masking_ratio_decay(kind="linear") == M.masking_ratio_decay("linear")


def test_schedule_support_and_floor():
    assert M.masking_ratio_decay("linear").support() == (0.02, 0.30)
    assert M.masking_ratio_decay("linear").ratio(0.99) == 0.02
    assert M.Scheduled(0.2, 0.6, "cosine").support() == (0.2, 0.6)


# ------------------------------------------------------------------------------ describe / make_sampler
def test_describe_labels():
    assert M.R2MAE(0.5, 0.9).describe() == "R²MAE U[0.5, 0.9]/batch"
    assert M.R2MAE(0.5, 0.9, per="sample").describe() == "R²MAE U[0.5, 0.9]/sample"
    assert M.Fixed(0.75).describe() == "fixed 0.75"
    assert M.Scheduled(0.9, 0.5, "cosine").describe() == "cosine 0.9→0.5"
    assert M.masking_ratio_decay("linear").describe() == "MRD linear"
    labels = [s.describe() for s in SAMPLERS.values()]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize(("spec", "expected"), [
    (0.75, M.Fixed(0.75)),
    ("0.6", M.Fixed(0.6)),
    ({"kind": "fixed", "ratio": 0.75}, M.Fixed(0.75)),
    ({"kind": "r2mae", "low": 0.5, "high": 0.9, "per": "sample"}, M.R2MAE(0.5, 0.9, per="sample")),
    ({"kind": "scheduled", "start": 0.9, "end": 0.5, "shape": "cosine"}, M.Scheduled(0.9, 0.5, "cosine")),
    ({"kind": "maskgit"}, M.MaskGITCosine()),
    ("maskgit", M.MaskGITCosine()),
    ({"kind": "truncnorm", "mean": 0.55, "std": 0.25, "low": 0.5, "high": 0.99}, M.TruncatedGaussian()),
    ({"kind": "choice", "values": [0.25, 0.5, 0.75]}, M.Choice((0.25, 0.5, 0.75))),
    ({"kind": "mrd", "shape": "cosine"}, M.masking_ratio_decay("cosine")),
    ({"kind": "mrd", "shape": "linear"}, M.masking_ratio_decay("linear")),
])
def test_make_sampler_builds_each_kind(spec, expected):
    built = M.make_sampler(spec)
    assert built == expected and type(built) is type(expected)
    assert hash(built) == hash(expected)
    assert M.make_sampler(built) is built


def test_registry_adds_a_scheme_with_one_class_and_one_entry(monkeypatch):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Beta(M.RatioSampler):
        a: float = 2.0
        b: float = 2.0
        per: str = "batch"

        def _draw_torch(self, n, t, gen):
            raise NotImplementedError

        def _draw_numpy(self, n, t, rng):
            return rng.beta(self.a, self.b, n)

        def _nodes(self, t, n_points):
            m = np.linspace(0.0005, 0.9995, 1000)
            return m, sps.beta.pdf(m, self.a, self.b) / 1000

        def support(self):
            return 0.0, 1.0

        def describe(self):
            return "beta"

    monkeypatch.setitem(M.SAMPLER_REGISTRY, "beta", Beta)
    s = M.make_sampler({"kind": "beta", "a": 3.0})
    assert s == Beta(3.0, 2.0) and s.mean() == pytest.approx(0.6, abs=1e-4)
    with pytest.raises(ValueError, match=r"allowed keys are \['a', 'b', 'per'\]"):
        M.make_sampler({"kind": "beta", "c": 1})


# ------------------------------------------------------------------------------ random_subset_mask
def _ratio_strategy():
    return st.floats(1e-4, 1 - 1e-4, allow_nan=False)


@FAST
@given(data=st.data(), b=st.integers(1, 6), n=st.integers(2, 80))
def test_subset_mask_exact_counts_and_consistent_indices(data, b, n):
    ratios = torch.tensor(data.draw(st.lists(_ratio_strategy(), min_size=b, max_size=b)), dtype=torch.float32)
    sub = M.random_subset_mask(ratios, n, generator=tgen(data.draw(st.integers(0, 2**31))))
    expected = [min(max(round(float(r) * n), 1), n - 1) for r in ratios]
    assert sub.mask.shape == (b, n) and sub.mask.dtype == torch.bool
    assert sub.mask.sum(1).tolist() == expected
    assert sub.n_keep.tolist() == [n - e for e in expected]
    k_max = max(n - e for e in expected)
    assert sub.ids_keep.shape == (b, k_max) and sub.keep_valid.shape == (b, k_max)
    ids_shuffle = torch.argsort(sub.ids_restore, dim=1)
    assert torch.equal(ids_shuffle.gather(1, sub.ids_restore), torch.arange(n).expand(b, n))  # inverse perm
    assert torch.equal(torch.sort(sub.ids_restore, dim=1).values, torch.arange(n).expand(b, n))
    assert torch.equal(sub.ids_keep, ids_shuffle[:, :k_max])
    for row in range(b):
        keep = sub.ids_keep[row][sub.keep_valid[row]]
        assert keep.numel() == sub.n_keep[row] and not bool(sub.mask[row, keep].any())
        assert torch.equal(sub.mask[row], sub.ids_restore[row] >= sub.n_keep[row])


def test_subset_mask_uniform_counts_have_no_padding():
    sub = M.random_subset_mask(torch.full((32,), 0.75), 196, generator=tgen(0))
    assert sub.ids_keep.shape == (32, 49) and bool(sub.keep_valid.all())
    assert bool((sub.n_keep == 49).all())


def test_subset_mask_equals_reference_mae_code():
    # MAE random_masking (He et al. 2022), same noise: len_keep = int(L * (1 - 0.75))
    b, n = 16, 196
    noise = torch.rand(b, n, generator=tgen(9))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    len_keep = int(n * (1 - 0.75))
    ref_mask = torch.ones(b, n)
    ref_mask[:, :len_keep] = 0
    ref_mask = torch.gather(ref_mask, 1, ids_restore).bool()
    sub = M.random_subset_mask(0.75, n, batch_size=b, generator=tgen(9))
    assert torch.equal(sub.mask, ref_mask) and torch.equal(sub.ids_restore, ids_restore)
    assert torch.equal(sub.ids_keep, ids_shuffle[:, :len_keep])


@pytest.mark.parametrize(("ratio", "n", "n_mask"), [
    (1e-6, 196, 1), (1 - 1e-6, 196, 195), (0.5, 2, 1), (0.01, 2, 1), (0.99, 2, 1), (0.5, 49, 24),
    (0.75, 196, 147), (0.5, 3, 2),
])
def test_subset_mask_clamp_and_rounding_edges(ratio, n, n_mask):
    sub = M.random_subset_mask(ratio, n, batch_size=4, generator=tgen(0))
    assert sub.mask.sum(1).tolist() == [n_mask] * 4  # round half to even: 24.5 -> 24, 1.5 -> 2


@FAST
@given(seed=st.integers(0, 2**31), b=st.integers(1, 6), n=st.integers(2, 60), ratio=_ratio_strategy())
def test_subset_mask_eligible_never_masked_and_counts_use_eligible(seed, b, n, ratio):
    eligible = torch.rand(b, n, generator=tgen(seed)) < 0.6
    eligible[0] = False  # a row with no eligible token
    if b > 1:
        eligible[1] = False
        eligible[1, n // 2] = True  # a row with one eligible token
    sub = M.random_subset_mask(torch.full((b,), ratio), n, generator=tgen(seed + 1), eligible=eligible)
    assert not bool((sub.mask & ~eligible).any())
    n_e = eligible.sum(1).tolist()
    expected = [min(max(round(float(np.float32(ratio)) * e), 1), e - 1) if e >= 2 else 0 for e in n_e]
    assert sub.mask.sum(1).tolist() == expected
    assert torch.equal(sub.mask, sub.ids_restore >= sub.n_keep[:, None])


def test_subset_mask_positions_are_uniform_and_rows_independent():
    b, n = 8000, 49
    mask = M.random_subset_mask(0.75, n, batch_size=b, generator=tgen(31)).mask.double()
    p = 37 / 49  # round(0.75 * 49) = 37 masked
    freq = mask.mean(0)
    assert float(((freq - p).abs() / math.sqrt(p * (1 - p) / b)).max()) < 4.5
    rows = M.random_subset_mask(0.5, 196, batch_size=300, generator=tgen(32)).mask.double()
    corr = torch.corrcoef(rows)  # (300, 300) correlation of row masks
    off = corr[~torch.eye(300, dtype=torch.bool)]
    assert abs(float(off.mean())) < 0.01 and float(off.abs().max()) < 0.4
    assert len({tuple(r) for r in rows.tolist()}) == 300


def test_subset_mask_same_seed_same_bits_different_seed_differs():
    r = M.R2MAE(0.4, 0.9, per="sample").sample(64, generator=tgen(1))
    a = M.random_subset_mask(r, 196, generator=tgen(5))
    b = M.random_subset_mask(r, 196, generator=tgen(5))
    c = M.random_subset_mask(r, 196, generator=tgen(6))
    for field in ("mask", "ids_keep", "keep_valid", "ids_restore", "n_keep"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.mask, c.mask) and torch.equal(a.n_keep, c.n_keep)


def test_subset_mask_accepts_numpy_ratios_and_scalar_with_batch_size():
    r = np.array([0.25, 0.5, 0.75])
    a = M.random_subset_mask(r, 8, generator=tgen(2))
    assert a.mask.sum(1).tolist() == [2, 4, 6]
    assert M.random_subset_mask(0.5, 8, batch_size=3, generator=tgen(2)).mask.shape == (3, 8)


# ------------------------------------------------------------------------------ gather_visible / restore
@pytest.mark.parametrize("per_sample", [False, True], ids=["shared_count", "ragged"])
def test_gather_restore_round_trip(per_sample):
    b, n, d = 8, 49, 5
    g = tgen(41)
    x = torch.randn(b, n, d, generator=g)
    ratios = M.R2MAE(0.3, 0.9, per="sample" if per_sample else "batch").sample(b, generator=g)
    sub = M.random_subset_mask(ratios, n, generator=g)
    vis = M.gather_visible(x, sub)  # (B, K_max, D)
    assert vis.shape == (b, sub.ids_keep.shape[1], d)
    for row in range(b):
        keep = sub.ids_keep[row][sub.keep_valid[row]]
        assert torch.equal(vis[row, : keep.numel()], x[row, keep])
    token = torch.full((d,), -7.0)
    out = M.restore(vis, sub, mask_token=token)  # visible-only input plus a mask token
    assert out.shape == x.shape
    assert torch.equal(out[~sub.mask], x[~sub.mask])
    assert bool((out[sub.mask] == -7.0).all())
    if not per_sample:  # MAE decoder style: full shuffled sequence of visible + mask tokens
        full = torch.cat([vis, token.expand(b, n - vis.shape[1], d)], dim=1)
        assert torch.equal(sub.restore(full), out)
        assert torch.equal(M.restore(full, sub, mask_token=token[None, None]), out)
    ids_shuffle = torch.argsort(sub.ids_restore, dim=1)
    shuffled = x.gather(1, ids_shuffle[..., None].expand(b, n, d))
    assert torch.equal(M.restore(shuffled, sub), x)  # pure unshuffle is the identity
    assert torch.equal(sub.gather_visible(x[..., 0]), vis[..., 0])  # (B, L) inputs work too


def test_restore_keeps_gradients_of_visible_tokens_and_mask_token():
    sub = M.random_subset_mask(0.5, 10, batch_size=2, generator=tgen(0))
    x = torch.randn(2, 10, 3, requires_grad=True)
    token = torch.zeros(3, requires_grad=True)
    M.restore(M.gather_visible(x, sub), sub, mask_token=token).sum().backward()
    assert torch.equal(x.grad[..., 0], (~sub.mask).float()) and float(token.grad[0]) == 10.0


# ------------------------------------------------------------------------------ bernoulli_mask
def test_bernoulli_mask_fraction_matches_ratio_per_row():
    ratios = torch.tensor([0.1, 0.5, 0.9]).repeat(100)  # (300,)
    mask = M.bernoulli_mask(ratios, 1024, generator=tgen(51))
    assert mask.shape == (300, 1024) and mask.dtype == torch.bool
    for i, p in enumerate((0.1, 0.5, 0.9)):
        frac = mask[i::3].double().mean()
        assert abs(float(frac) - p) < 4 * math.sqrt(p * (1 - p) / (100 * 1024))
    counts = mask[1::3].sum(1).double()  # Binomial(1024, 0.5): random counts, not exact
    assert counts.std() > 0.5 * math.sqrt(1024 * 0.25)


def test_bernoulli_mask_eligible_and_determinism():
    eligible = torch.rand(64, 100, generator=tgen(0)) < 0.5
    a = M.bernoulli_mask(0.9, 100, batch_size=64, generator=tgen(1), eligible=eligible)
    b = M.bernoulli_mask(0.9, 100, batch_size=64, generator=tgen(1), eligible=eligible)
    assert torch.equal(a, b) and not bool((a & ~eligible).any())
    frac = a[eligible].double().mean()
    assert abs(float(frac) - 0.9) < 4 * math.sqrt(0.09 / int(eligible.sum()))


# ------------------------------------------------------------------------------ span_mask
def _circular_runs(mask: torch.Tensor) -> torch.Tensor:
    """Number of runs of True per row, treating the row as a circle."""
    return (mask & ~torch.roll(mask, 1, dims=1)).sum(1)


@FAST
@given(data=st.data(), b=st.integers(1, 5), n=st.integers(2, 120), mean_span=st.floats(1.0, 8.0))
def test_span_mask_exact_count_and_span_count(data, b, n, mean_span):
    ratios = torch.tensor(data.draw(st.lists(_ratio_strategy(), min_size=b, max_size=b)), dtype=torch.float32)
    mask = M.span_mask(ratios, n, mean_span=mean_span, generator=tgen(data.draw(st.integers(0, 2**31))))
    n_mask = [min(max(round(float(r) * n), 1), n - 1) for r in ratios]
    assert mask.shape == (b, n) and mask.sum(1).tolist() == n_mask
    k = [min(max(round(m / mean_span), 1), m, n - m) for m in n_mask]
    assert _circular_runs(mask).tolist() == k  # spans never touch, so k runs on the circle
    linear_runs = (mask & ~torch.nn.functional.pad(mask, (1, 0))[:, :-1]).sum(1)
    assert torch.equal(linear_runs, _circular_runs(mask) + (mask[:, 0] & mask[:, -1]).long())


def test_span_mask_length_distribution_and_uniform_positions():
    b, n, ratio, mean_span = 512, 1024, 0.15, 3.0
    mask = M.span_mask(ratio, n, batch_size=b, mean_span=mean_span, generator=tgen(61))
    m = round(ratio * n)  # 154 masked -> k = 51 spans of mean 3.02
    k = round(m / mean_span)
    assert bool((mask.sum(1) == m).all()) and bool((_circular_runs(mask) == k).all())
    singles = (mask & ~torch.roll(mask, 1, 1) & ~torch.roll(mask, -1, 1)).sum()
    p1 = (k - 1) / (m - 1)  # P(span length 1) for a uniform composition
    assert abs(float(singles) / (b * k) - p1) < 5 * math.sqrt(p1 * (1 - p1) / (b * k))
    small = M.span_mask(0.5, 32, batch_size=8000, mean_span=3.0, generator=tgen(62)).double()
    freq = small.mean(0)  # every position, edges included, masked with probability 16/32
    assert float(((freq - 0.5).abs() / math.sqrt(0.25 / 8000)).max()) < 4.5


def test_span_mask_eligible_padding_and_specials():
    b, n = 64, 50
    lengths = torch.randint(5, n + 1, (b,), generator=tgen(70))
    eligible = torch.arange(n)[None] < lengths[:, None]  # right padding
    eligible[:, 0] = False  # [CLS]
    eligible[torch.arange(b), lengths - 1] = False  # [SEP]
    mask = M.span_mask(torch.full((b,), 0.3), n, mean_span=3.0, generator=tgen(71), eligible=eligible)
    assert not bool((mask & ~eligible).any())
    n_e = eligible.sum(1).tolist()
    expected = [min(max(round(float(np.float32(0.3)) * e), 1), e - 1) if e >= 2 else 0 for e in n_e]
    assert mask.sum(1).tolist() == expected
    again = M.span_mask(torch.full((b,), 0.3), n, mean_span=3.0, generator=tgen(71), eligible=eligible)
    assert torch.equal(mask, again)


def test_span_mask_mean_span_one_gives_isolated_tokens():
    mask = M.span_mask(0.3, 100, batch_size=16, mean_span=1.0, generator=tgen(0))
    assert bool((_circular_runs(mask) == 30).all())  # 30 spans of length 1


# ------------------------------------------------------------------------------ bert_corruption
def test_bert_corruption_proportions_labels_and_random_tokens():
    b, n, vocab, mask_id, specials = 128, 512, 1000, 3, (0, 1, 2, 3, 500)
    g = tgen(81)
    tokens = torch.randint(10, vocab, (b, n), generator=g)
    mask = M.bernoulli_mask(0.5, n, batch_size=b, generator=g)
    corrupted, labels = M.bert_corruption(tokens, mask, mask_token_id=mask_id, vocab_size=vocab, generator=g,
                                          special_token_ids=specials)
    assert corrupted.dtype == tokens.dtype and labels.shape == tokens.shape
    assert torch.equal(labels[mask], tokens[mask]) and bool((labels[~mask] == -100).all())
    assert torch.equal(corrupted[~mask], tokens[~mask])
    n_mask = int(mask.sum())
    to_mask = corrupted[mask] == mask_id
    to_random = (corrupted[mask] != mask_id) & (corrupted[mask] != tokens[mask])
    pool = vocab - len(specials)
    for observed, p in ((to_mask, 0.8), (to_random, 0.1 * (1 - 1 / pool))):
        assert abs(float(observed.double().mean()) - p) < 4 * math.sqrt(p * (1 - p) / n_mask)
    rand_tokens = corrupted[mask][to_random]
    assert int(rand_tokens.min()) >= 0 and int(rand_tokens.max()) < vocab
    assert not bool(torch.isin(rand_tokens, torch.tensor(specials)).any())


def test_bert_corruption_random_token_range_custom_probs_and_determinism():
    tokens = torch.full((32, 256), 7)
    mask = torch.ones(32, 256, dtype=torch.bool)
    out, _ = M.bert_corruption(tokens, mask, mask_token_id=1, vocab_size=20, generator=tgen(0),
                               replace_probs=(0.0, 1.0, 0.0), random_token_low=5, special_token_ids=(6,))
    assert set(out.unique().tolist()) == set(range(5, 20)) - {6}
    counts = torch.bincount(out.flatten(), minlength=20)[5:].double()
    counts = counts[counts > 0]
    assert sps.chisquare(counts.numpy()).pvalue > 1e-3  # uniform over the pool
    only_mask, _ = M.bert_corruption(tokens, mask, mask_token_id=1, vocab_size=20, generator=tgen(0),
                                     replace_probs=(1.0, 0.0, 0.0))
    assert bool((only_mask == 1).all())
    a = M.bert_corruption(tokens, mask, mask_token_id=1, vocab_size=20, generator=tgen(3))
    b = M.bert_corruption(tokens, mask, mask_token_id=1, vocab_size=20, generator=tgen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ------------------------------------------------------------------------------ errors
S = M.R2MAE(0.5, 0.9)
SUB = M.random_subset_mask(0.5, 6, batch_size=2, generator=tgen(0))
TOK = torch.zeros(2, 6, dtype=torch.long)
MASK = torch.ones(2, 6, dtype=torch.bool)


def _bert(**kw):
    args = {"tokens": TOK, "mask": MASK, "mask_token_id": 1, "vocab_size": 10, "generator": tgen(0)} | kw
    return M.bert_corruption(args.pop("tokens"), args.pop("mask"), **args)


ERRORS = [
    (lambda: M.Fixed(0), ["ratio", "0", "(0, 1)"]),
    (lambda: M.Fixed(1.0), ["ratio", "1.0"]),
    (lambda: M.Fixed(True), ["ratio", "True"]),
    (lambda: M.Fixed("0.5"), ["ratio", "'0.5'"]),
    (lambda: M.Fixed(float("nan")), ["ratio", "nan"]),
    (lambda: M.Fixed(0.5, per="row"), ["per", "'row'", "'batch'", "'sample'"]),
    (lambda: M.R2MAE(0.9, 0.5), ["low=0.9", "high=0.5", "Fixed"]),
    (lambda: M.R2MAE(0.5, 0.5), ["low=0.5", "high=0.5", "Fixed"]),
    (lambda: M.R2MAE(0.0, 0.5), ["low", "0.0"]),
    (lambda: M.R2MAE(0.5, 1.0), ["high", "1.0"]),
    (lambda: M.R2MAE(0.5, 0.9, per="batches"), ["per", "'batches'"]),
    (lambda: M.Scheduled(1.0, 0.5), ["start", "1.0"]),
    (lambda: M.Scheduled(0.9, -0.1), ["end", "-0.1"]),
    (lambda: M.Scheduled(0.9, 0.5, "exp"), ["shape", "'exp'", "'cosine'"]),
    (lambda: M.Scheduled(0.3, 0.0), ["end=0.0", "floor=0.0"]),
    (lambda: M.Scheduled(0.3, 0.0, floor=1.0), ["floor", "1.0"]),
    (lambda: M.masking_ratio_decay("step"), ["shape", "'step'", "'linear'"]),
    (lambda: M.masking_ratio_decay("linear", kind="cosine"), ["kind", "'cosine'", "shape"]),
    (lambda: M.MaskGITCosine(eps=0.0), ["eps", "0.0"]),
    (lambda: M.MaskGITCosine(eps=0.5), ["eps", "0.5"]),
    (lambda: M.TruncatedGaussian(std=0), ["std", "0"]),
    (lambda: M.TruncatedGaussian(std=-1.0), ["std", "-1.0"]),
    (lambda: M.TruncatedGaussian(mean=float("inf")), ["mean", "inf"]),
    (lambda: M.TruncatedGaussian(low=0.0), ["low", "0.0"]),
    (lambda: M.TruncatedGaussian(high=1.0), ["high", "1.0"]),
    (lambda: M.TruncatedGaussian(low=0.9, high=0.6), ["low=0.9", "high=0.6"]),
    (lambda: M.TruncatedGaussian(0.1, 0.01, 0.9, 0.95), ["low, high", "0.9", "mass"]),
    (lambda: M.Choice([]), ["values", "[]"]),
    (lambda: M.Choice([0.5, 1.5]), ["values[1]", "1.5"]),
    (lambda: M.Choice([0.5, 0.5]), ["values", "[0.5, 0.5]", "distinct"]),
    (lambda: M.Choice("0.5"), ["values", "'0.5'"]),
    (lambda: S.sample(0, generator=tgen()), ["batch_size", "0"]),
    (lambda: S.sample(2.0, generator=tgen()), ["batch_size", "2.0"]),
    (lambda: S.sample(True, generator=tgen()), ["batch_size", "True"]),
    (lambda: S.sample(2, generator=tgen(), progress=1.5), ["progress", "1.5", "[0, 1]"]),
    (lambda: S.sample(2, generator=tgen(), progress=-0.1), ["progress", "-0.1"]),
    (lambda: S.sample(2, generator=tgen(), progress=float("nan")), ["progress", "nan"]),
    (lambda: S.sample(2, generator=42), ["generator", "42"]),
    (lambda: S.sample(2, generator=None), ["generator", "None"]),
    (lambda: S.expect(np.sin, n_points=1), ["n_points", "1"]),
    (lambda: S.expect(np.sin, progress=2.0), ["progress", "2.0"]),
    (lambda: M.Scheduled(0.9, 0.5).ratio(1.5), ["progress", "1.5"]),
    (lambda: M.make_sampler({"kind": "uniform"}), ["kind", "'uniform'", "'r2mae'", "'mrd'"]),
    (lambda: M.make_sampler({"kind": "r2mae", "low": 0.5, "high": 0.9, "pr": 1}), ["'pr'", "'per'", "'low'"]),
    (lambda: M.make_sampler({"kind": "r2mae", "low": 0.5}), ["missing", "'high'", "r2mae"]),
    (lambda: M.make_sampler([0.5]), ["spec", "[0.5]"]),
    (lambda: M.make_sampler({"low": 0.5}), ["spec", "'low'", "kind"]),
    (lambda: M.make_sampler(1.5), ["ratio", "1.5"]),
    (lambda: M.make_sampler("bogus"), ["kind", "'bogus'"]),
    (lambda: M.random_subset_mask(torch.tensor([0.5, 1.0]), 10, generator=tgen()), ["ratios[1]", "1.0"]),
    (lambda: M.random_subset_mask(torch.tensor([0.0]), 10, generator=tgen()), ["ratios[0]", "0.0"]),
    (lambda: M.random_subset_mask(torch.tensor([float("nan")]), 10, generator=tgen()), ["ratios[0]", "nan"]),
    (lambda: M.random_subset_mask(torch.full((2, 2), 0.5), 10, generator=tgen()), ["ratios", "(2, 2)"]),
    (lambda: M.random_subset_mask(torch.tensor([1]), 10, generator=tgen()), ["ratios", "torch.int64"]),
    (lambda: M.random_subset_mask(0.5, 1, batch_size=2, generator=tgen()), ["n_tokens", "1"]),
    (lambda: M.random_subset_mask(0.5, True, batch_size=2, generator=tgen()), ["n_tokens", "True"]),
    (lambda: M.random_subset_mask(0.5, 10, generator=tgen()), ["batch_size", "None"]),
    (lambda: M.random_subset_mask(torch.full((3,), 0.5), 10, batch_size=2, generator=tgen()),
     ["batch_size", "2", "3"]),
    (lambda: M.random_subset_mask(0.5, 10, batch_size=2, generator=ngen()),
     ["generator", "Generator(PCG64)"]),
    (lambda: M.random_subset_mask(0.5, 10, batch_size=2, generator=tgen(), eligible=torch.ones(2, 5).bool()),
     ["eligible", "(2, 5)"]),
    (lambda: M.random_subset_mask(0.5, 10, batch_size=2, generator=tgen(), eligible=torch.ones(2, 10)),
     ["eligible", "(2, 10)", "bool"]),
    (lambda: M.bernoulli_mask(1.5, 10, batch_size=2, generator=tgen()), ["ratios[0]", "1.5"]),
    (lambda: M.bernoulli_mask(0.5, 10, batch_size=0, generator=tgen()), ["batch_size", "0"]),
    (lambda: M.span_mask(0.5, 10, batch_size=2, mean_span=0.5, generator=tgen()), ["mean_span", "0.5"]),
    (lambda: M.span_mask(0.5, 10, batch_size=2, mean_span=True, generator=tgen()), ["mean_span", "True"]),
    (lambda: M.span_mask(0.5, 10, batch_size=2, mean_span=3.0, generator=None), ["generator", "None"]),
    (lambda: M.gather_visible(torch.zeros(2, 7, 3), SUB), ["x", "(2, 7, 3)", "(2, 6)"]),
    (lambda: M.restore(torch.zeros(2, 5, 3), SUB), ["x", "(2, 5, 3)"]),
    (lambda: M.restore(torch.zeros(2, 3, 4), SUB), ["mask_token", "None", "3"]),
    (lambda: _bert(tokens=TOK.float()), ["tokens", "torch.float32"]),
    (lambda: _bert(mask=MASK[:, :3]), ["mask", "(2, 3)", "(2, 6)"]),
    (lambda: _bert(vocab_size=0), ["vocab_size", "0"]),
    (lambda: _bert(mask_token_id=-1), ["mask_token_id", "-1"]),
    (lambda: _bert(random_token_low=10), ["random_token_low", "10", "vocab_size=10"]),
    (lambda: _bert(replace_probs=(0.5, 0.5, 0.5)), ["replace_probs", "(0.5, 0.5, 0.5)"]),
    (lambda: _bert(replace_probs=(0.8, 0.2)), ["replace_probs", "(0.8, 0.2)"]),
    (lambda: _bert(special_token_ids=tuple(range(10))), ["special_token_ids", "(0, 1, 2"]),
    (lambda: _bert(special_token_ids="ab"), ["special_token_ids", "'ab'"]),
    (lambda: _bert(generator=ngen()), ["generator", "Generator(PCG64)"]),
]


@pytest.mark.parametrize(("call", "needles"), ERRORS,
                         ids=[f"err{i:02d}_{e[1][0]}" for i, e in enumerate(ERRORS)])
def test_invalid_arguments_raise_one_line_value_error_naming_argument_and_value(call, needles, raises_one_line):
    raises_one_line(call, needles)


def _mae_rule_mask(noise: np.ndarray, ratio: float) -> np.ndarray:
    """MAE's count rule written from its description (He et al. 2022, Alg. 1): keep the int(L·(1 − ratio))
    tokens with the smallest noise, mask the rest (True = masked)."""
    n_keep = int(noise.shape[1] * (1 - ratio))
    rank = np.argsort(np.argsort(noise, axis=1, kind="stable"), axis=1, kind="stable")
    return rank >= n_keep


@pytest.mark.parametrize("n_tokens", [10, 16, 49, 196])
@pytest.mark.parametrize("ratio", [0.1, 0.15, 0.25, 0.4, 0.5, 0.6, 0.75, 0.8, 0.9, 0.95])
def test_mae_count_rule_equals_mae_given_the_same_noise(n_tokens, ratio):
    """``count="mae"`` masks exactly what MAE's rule masks from the same (B, L) noise draw, keeps the visible
    tokens in ascending-noise order, and the default rule differs from it only by the rounding of the count."""
    gen = tgen(5)
    noise = torch.rand((8, n_tokens), generator=tgen(5), dtype=torch.float32).numpy()
    sub = M.random_subset_mask(ratio, n_tokens, batch_size=8, generator=gen, count="mae")
    want = _mae_rule_mask(noise, ratio)
    assert np.array_equal(sub.mask.numpy(), want)
    assert np.array_equal(sub.ids_keep.numpy(), np.argsort(noise, axis=1, kind="stable")[:, : sub.ids_keep.shape[1]])
    default = M.random_subset_mask(ratio, n_tokens, batch_size=8, generator=tgen(5))
    assert abs(int(default.mask.sum(1)[0]) - int(sub.mask.sum(1)[0])) <= 1
    assert int(default.mask.sum(1)[0]) == min(max(round(ratio * n_tokens), 1), n_tokens - 1)


def test_the_count_rules_differ_where_the_docs_say():
    """At L = 16 and ratio 0.9 (02 quick's 4×4 grid): 14 masked by the default rule, 15 by MAE's."""
    rounded = M.random_subset_mask(0.9, 16, batch_size=1, generator=tgen(0))
    mae = M.random_subset_mask(0.9, 16, batch_size=1, generator=tgen(0), count="mae")
    assert int(rounded.mask.sum()) == 14 and int(mae.mask.sum()) == 15
    with pytest.raises(ValueError, match="count='floor' is not allowed: use one of round, mae"):
        M.random_subset_mask(0.9, 16, batch_size=1, generator=tgen(0), count="floor")
