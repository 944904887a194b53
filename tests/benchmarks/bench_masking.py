"""Masking benchmarks (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench`` or ``.venv/bin/python -m pytest tests/benchmarks/bench_masking.py
--benchmark-only -o python_files='bench_*.py'``.

Times the per-step masking work of a ViT-B/16-sized batch (B = 256, L = 196 patch tokens): the exact-count
MAE subset mask (shared count, and ragged per-sample counts), R²MAE ratio sampling (torch and numpy), and the
language-side generators (spans and BERT corruption, B = 256, L = 1024 here to show they stay vectorised).
Each step is checked for the right shape/count so a fast-but-wrong change cannot pass as a speed-up.
"""

import numpy as np
import torch

from r2mae_core import masking

B, L = 256, 196


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_subset_mask_shared_count(benchmark):
    gen, ratios = _gen(), torch.full((B,), 0.75)
    sub = benchmark(masking.random_subset_mask, ratios, L, generator=gen)
    assert bool((sub.mask.sum(1) == 147).all())


def test_subset_mask_per_sample_ratios(benchmark):
    gen = _gen()
    ratios = masking.R2MAE(0.5, 0.9, per="sample").sample(B, generator=gen)
    sub = benchmark(masking.random_subset_mask, ratios, L, generator=gen)
    assert sub.mask.shape == (B, L) and not bool(sub.keep_valid.all())


def test_r2mae_sample_torch(benchmark):
    gen, sampler = _gen(), masking.R2MAE(0.5, 0.9, per="sample")
    out = benchmark(sampler.sample, B, generator=gen, progress=0.5)
    assert out.shape == (B,)


def test_r2mae_sample_numpy(benchmark):
    rng, sampler = np.random.default_rng(0), masking.R2MAE(0.5, 0.9)
    out = benchmark(sampler.sample, B, generator=rng, progress=0.5)
    assert out.shape == (B,)


def test_r2mae_step_sample_mask_gather(benchmark):
    """One training step's masking: ratio draw + subset mask + gather of (B, L, 768) visible tokens."""
    gen, sampler = _gen(), masking.R2MAE(0.5, 0.9)
    x = torch.randn(B, L, 768, generator=_gen(1))

    def step():
        sub = masking.random_subset_mask(sampler.sample(B, generator=gen), L, generator=gen)
        return masking.gather_visible(x, sub)

    visible = benchmark(step)
    assert visible.shape[0] == B and visible.shape[2] == 768


def test_span_mask_language_size(benchmark):
    gen = _gen()
    mask = benchmark(masking.span_mask, 0.15, 1024, batch_size=B, mean_span=3.0, generator=gen)
    assert bool((mask.sum(1) == 154).all())


def test_bert_corruption_language_size(benchmark):
    gen = _gen()
    tokens = torch.randint(5, 30000, (B, 1024), generator=_gen(1))
    mask = masking.bernoulli_mask(0.15, 1024, batch_size=B, generator=_gen(2))
    corrupted, labels = benchmark(masking.bert_corruption, tokens, mask, mask_token_id=4, vocab_size=30000,
                                  generator=gen, special_token_ids=(0, 1, 2, 3, 4))
    assert corrupted.shape == labels.shape == (B, 1024)
