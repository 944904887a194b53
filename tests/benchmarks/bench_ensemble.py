"""Ensemble training benchmark (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench -k ensemble`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_ensemble.py --benchmark-only -s -p no:cacheprovider``.

k ViT-MAEs (the 06 size: 28×28, patch 4, dim 64, depth 2, decoder 64×1; batch 64 per member, fixed ratio 0.75)
trained as one ensemble (:func:`r2mae_core.ensemble.pretrain_ensemble`) against the same k runs trained one by
one (:func:`r2mae_core.train.pretrain`), for k = 1, 4 and 16, in one process, side by side: samples/s of
each, the ratio, and the achieved FLOP/s as a fraction of this machine's dense fp32 matmul FLOP/s measured in
the same run (model FLOPs of forward + backward counted with ``FlopCounterMode``; the optimizer's element-wise
work is not counted).
"""

import time

import pytest
import torch
from bench_vision import step_flops
from flops import matmul_flops_per_s

from r2mae_core import masking
from r2mae_core.ensemble import pretrain_ensemble
from r2mae_core.models import build_model
from r2mae_core.train import TrainConfig, pretrain

SIZE = dict(img_size=28, in_chans=1, patch=4, dim=64, depth=2, heads=4, dec_dim=64, dec_depth=1, dec_heads=4)
BATCH, STEPS = 64, 12
_ROWS: list[dict] = []


def _data(n: int = 2048) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _members(k: int):
    return [build_model("vit", seed=m, **SIZE) for m in range(k)]


def _sequential(k: int, data) -> float:
    t0 = time.perf_counter()
    for m, model in enumerate(_members(k)):
        pretrain(model, data, sampler=masking.Fixed(0.75), train=TrainConfig(steps=STEPS, batch_size=BATCH), seed=m,
                 progress=False)
    return time.perf_counter() - t0


def _together(k: int, data) -> float:
    members = _members(k)
    t0 = time.perf_counter()
    pretrain_ensemble(members, data, samplers=[masking.Fixed(0.75)] * k, seeds=list(range(k)),
                      train=TrainConfig(steps=STEPS, batch_size=BATCH))
    return time.perf_counter() - t0


@pytest.mark.parametrize("k", [1, 4, 16])
def test_ensemble_against_one_by_one(benchmark, k):
    data = _data()
    peak = matmul_flops_per_s()
    flops = step_flops(build_model("vit", **SIZE), 0.75, BATCH)
    sequential = _sequential(k, data)
    together = benchmark.pedantic(_together, args=(k, data), rounds=1, iterations=1)
    samples = k * BATCH * STEPS
    row = {"k": k, "one_by_one_samples_per_s": samples / sequential, "ensemble_samples_per_s": samples / together,
           "speedup": sequential / together, "ensemble_frac_fp32_peak": k * STEPS * flops / together / peak,
           "one_by_one_frac_fp32_peak": k * STEPS * flops / sequential / peak, "fp32_peak_gflops": peak / 1e9}
    benchmark.extra_info.update(row)
    _ROWS.append(row)
    print("\n" + "  ".join(f"{key}={value:.4g}" for key, value in row.items()))
    assert together > 0 and sequential > 0
