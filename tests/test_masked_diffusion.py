"""Masked diffusion (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025): the noise-level sampler, the 1/t-weighted
loss and its wiring into :class:`r2mae_core.mlm.MLMStep`.

The central test compares the Monte Carlo mean of the training loss of a real (randomly initialised) encoder with
the exact value of what :func:`r2mae_core.losses.masked_diffusion_loss` claims to estimate, computed by
enumerating every mask of a 5-token row and integrating t exactly (incomplete beta functions). The tolerance is
4 standard errors of the Monte Carlo mean; the same test rejects the loss without its 1/t weight by more than
20 standard errors, so it can fail.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from r2mae_core import losses
from r2mae_core import masking as M
from r2mae_core.mlm import MLMStep
from r2mae_core.models import build_model

MASK_ID, FIRST = 1, 2  # [MASK] and the first id a mask may select; id 0 is a special token that is never masked
ROW = torch.tensor([0, 5, 9, 3, 7, 4])  # one special token, then n = 5 eligible tokens
EPS = 0.05


def tgen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model():
    return build_model("text_encoder", seed=3, vocab_size=12, max_len=6, dim=16, depth=1, heads=2).eval()


def _token_losses(model, row: torch.Tensor, masked: tuple[int, ...]) -> float:
    """Σ_{l masked} −log p_θ(x^l | x_t) for the row with ``masked`` positions shown as [MASK]."""
    x = row.clone()
    x[list(masked)] = MASK_ID
    with torch.no_grad():
        logp = torch.log_softmax(model.logits(model.encode_tokens(x[None]))[0].double(), -1)  # (L, V)
    return float(-sum(logp[l, row[l]] for l in masked))


def _exact_bound(model, row: torch.Tensor, eps: float) -> float:
    """ℒ_ε(x) / n = (1/n)(1/(1−ε)) Σ_S S(S) ∫_ε^1 t^{k−1}(1−t)^{n−k} dt over every non-empty mask S (k = |S|)."""
    eligible = [i for i in range(len(row)) if row[i] >= FIRST]
    n, total = len(eligible), 0.0
    for k in range(1, n + 1):
        integral = special.beta(k, n - k + 1) * (1.0 - special.betainc(k, n - k + 1, eps))
        total += integral * sum(_token_losses(model, row, s) for s in itertools.combinations(eligible, k))
    return total / ((1.0 - eps) * n)


def _batch_losses(model, step: MLMStep, sampler, n_batches: int, batch: int, seed: int) -> np.ndarray:
    """The training loss of ``n_batches`` batches of the repeated row (each an i.i.d. mean of ``batch`` rows)."""
    gen, out = tgen(seed), []
    x = ROW.repeat(batch, 1)
    with torch.no_grad():
        for _ in range(n_batches):
            out.append(float(step(model, x, sampler.sample(batch, generator=gen), gen).loss))
    return np.array(out)


def _unweighted_losses(model, step: MLMStep, sampler, n_batches: int, batch: int, seed: int) -> np.ndarray:
    """The same batches' loss without the 1/t weight: (1/(B n)) Σ masked cross-entropies."""
    gen, out = tgen(seed), []
    x = ROW.repeat(batch, 1)
    with torch.no_grad():
        for _ in range(n_batches):
            corrupted, labels = step.corrupt(x, sampler.sample(batch, generator=gen), gen, 0.0, 12)
            logits = model.logits(model.encode_tokens(corrupted))
            weights = (labels != M.IGNORE_INDEX).float() / (batch * 5)
            out.append(float(losses.weighted_mlm_loss(logits, labels, weights)))
    return np.array(out)


def test_weighted_loss_is_an_unbiased_estimate_of_the_masked_diffusion_bound(model):
    exact = _exact_bound(model, ROW, EPS)
    step = MLMStep(MASK_ID, FIRST, FIRST, diffusion=True)
    values = _batch_losses(model, step, M.MaskedDiffusion(eps=EPS), n_batches=60, batch=256, seed=11)
    se = values.std(ddof=1) / math.sqrt(values.size)
    assert abs(values.mean() - exact) < 4 * se, (values.mean(), exact, se)
    assert se < 0.02 * exact  # the check is sharp: the standard error is under 2% of the value
    # the same estimate without the 1/t weight is far off: the test can fail
    unweighted = _unweighted_losses(model, step, M.MaskedDiffusion(eps=EPS), n_batches=60, batch=256, seed=11)
    assert abs(unweighted.mean() - exact) > 20 * se, (unweighted.mean(), exact, se)


def test_weights_are_one_over_batch_t_and_eligible_count():
    mask = torch.tensor([[False, True, True, False], [False, False, False, False], [False, True, False, False]])
    eligible = torch.tensor([[False, True, True, True], [False, True, True, True], [False, False, False, False]])
    ratios = torch.tensor([0.5, 0.25, 0.8])
    w = losses.masked_diffusion_weights(mask, ratios, eligible)
    assert w.dtype == torch.float32
    expected = torch.zeros(3, 4)
    expected[0, 1] = expected[0, 2] = 1 / (3 * 0.5 * 3)
    assert torch.allclose(w, expected, atol=1e-7)  # rows without eligible tokens weigh 0
    logits = torch.randn(3, 4, 7, generator=tgen(1))
    labels = torch.where(mask, torch.tensor([[0, 3, 5, 0]] * 3), -100)
    ce = torch.nn.functional.cross_entropy(logits[0, 1:3], labels[0, 1:3], reduction="sum")
    loss = losses.masked_diffusion_loss(logits, labels, ratios, eligible)
    assert float(loss) == pytest.approx(float(ce) / (3 * 0.5 * 3), rel=1e-6)


def test_training_step_is_reproducible_from_the_seed_and_masks_only_eligible_tokens(model):
    step = MLMStep(MASK_ID, FIRST, FIRST, diffusion=True)
    sampler = M.MaskedDiffusion()
    x = ROW.repeat(64, 1)
    runs = []
    for seed in (5, 5, 6):
        g = tgen(seed)
        ratios = sampler.sample(64, generator=g)
        corrupted, labels = step.corrupt(x, ratios, g, 0.0, 12)
        runs.append((ratios, corrupted, float(step(model, x, ratios, tgen(seed + 100)).loss.detach())))
        assert bool((corrupted[:, 0] == 0).all())  # the special token is never masked
        masked = labels != M.IGNORE_INDEX
        assert bool((corrupted[masked] == MASK_ID).all()) and bool((corrupted[~masked] == x[~masked]).all())
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1]) and runs[0][2] == runs[1][2]
    assert not torch.equal(runs[0][1], runs[2][1])


def test_masked_fraction_per_row_follows_its_noise_level():
    step = MLMStep(MASK_ID, FIRST, FIRST, diffusion=True)
    ratios = torch.tensor([0.1, 0.9]).repeat_interleave(2000)
    x = ROW.repeat(4000, 1)
    _, labels = step.corrupt(x, ratios, tgen(2), 0.0, 12)
    frac = (labels != M.IGNORE_INDEX).double().sum(1) / 5  # 5 eligible tokens per row
    for t, part in ((0.1, frac[:2000]), (0.9, frac[2000:])):
        se = math.sqrt(t * (1 - t) / (5 * 2000))
        assert abs(float(part.mean()) - t) < 4 * se


def test_ensemble_member_path_gives_the_single_run_loss(model):
    step = MLMStep(MASK_ID, FIRST, FIRST, diffusion=True)
    x = ROW.repeat(32, 1)
    ratios = M.MaskedDiffusion().sample(32, generator=tgen(4))
    single = step(model, x, ratios, tgen(8)).loss
    draws = [step.draw(model, x, ratios, tgen(8), 0.0), step.draw(model, x, ratios, tgen(9), 0.0)]
    tensors, static = MLMStep.stack(draws, buckets=4)
    assert len(tensors) == 4  # tokens, positions, targets, weights
    member = step.call(model, tuple(t[0] for t in tensors), static).loss
    assert float(member) == pytest.approx(float(single), rel=1e-5)


def test_sampler_law_moments_and_registry():
    s = M.MaskedDiffusion(eps=0.01)
    for gen in (tgen(0), np.random.default_rng(0)):
        t = np.asarray(s.sample(20000, generator=gen), dtype=np.float64)
        assert t.min() >= 0.01 and t.max() < 1.0 and np.unique(t).size > 19000  # per sample by default
        assert stats.kstest(t, stats.uniform(0.01, 0.99).cdf).pvalue > 1e-3
    assert s.expect(lambda m: 1.0 / m) == pytest.approx(-math.log(0.01) / 0.99, rel=1e-9)
    assert s.mean() == pytest.approx(0.505, abs=1e-12)
    assert s.support()[0] == 0.01 and s.support()[1] < 1.0
    batch = M.MaskedDiffusion(per="batch").sample(8, generator=tgen(1))
    assert bool((batch == batch[0]).all())
    assert M.make_sampler({"kind": "masked_diffusion", "eps": 0.01}) == s
    assert M.make_sampler("masked_diffusion") == M.MaskedDiffusion(eps=1e-3)
    assert s.describe() == "masked diffusion U[0.01, 1)/sample"


@pytest.mark.parametrize(("call", "needles"), [
    (lambda: M.MaskedDiffusion(eps=0.0), ["eps=0.0", "(0, 1)"]),
    (lambda: M.MaskedDiffusion(eps=1.0), ["eps=1.0"]),
    (lambda: M.MaskedDiffusion(eps=-0.1), ["eps=-0.1"]),
    (lambda: M.MaskedDiffusion(eps=True), ["eps=True"]),
    (lambda: M.MaskedDiffusion(eps="0.1"), ["eps='0.1'"]),
    (lambda: M.MaskedDiffusion(per="row"), ["per='row'"]),
    (lambda: losses.masked_diffusion_weights(torch.ones(2, 3, dtype=torch.bool), torch.tensor([0.5, 0.0]),
                                             torch.ones(2, 3, dtype=torch.bool)), ["ratios[1]=0.0", "(0, 1]"]),
    (lambda: losses.masked_diffusion_weights(torch.ones(2, 3, dtype=torch.bool), torch.tensor([0.5]),
                                             torch.ones(2, 3, dtype=torch.bool)), ["ratios", "(1,)", "(2,)"]),
    (lambda: losses.masked_diffusion_weights(torch.ones(2, 3), torch.tensor([0.5, 0.5]),
                                             torch.ones(2, 3, dtype=torch.bool)), ["mask", "(2, 3)", "bool"]),
    (lambda: losses.masked_diffusion_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long),
                                          torch.tensor([0.5, 0.5]), torch.ones(2, 3, dtype=torch.bool)),
     ["logits (2, 3)", "(B, L, V)"]),
    (lambda: losses.weighted_mlm_loss(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long), torch.zeros(3)),
     ["weights (3,)"]),
    (lambda: MLMStep(MASK_ID, FIRST, FIRST, curriculum=True, diffusion=True), ["diffusion=True", "curriculum"]),
])
def test_bad_inputs_raise_one_line_value_error(call, needles, raises_one_line):
    raises_one_line(call, needles)
