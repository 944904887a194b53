"""Vision pretraining benchmarks (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_vision.py --benchmark-only -s -p no:cacheprovider``.

(a) ViT-MAE pretraining throughput (samples/s) at the quick-profile size (28×28, patch 4, dim 128, depth 4,
    decoder 64×2, batch 128, ratio 0.75) and the achieved FLOP/s as a fraction of this machine's dense
    fp32 matmul FLOP/s, both from one run. Model FLOPs (forward + backward) are counted with
    ``torch.utils.flop_counter.FlopCounterMode``; the optimizer's element-wise work is not counted.
(b) Step time with R²MAE U[0.5, 0.9] (one ratio per batch) vs Fixed(0.7): same mean ratio, so the same
    mean visible-token count; random ratios must not cost more than 5% per step. Per-sample R²MAE is
    reported too (rows padded to the largest visible count: expected to cost more; not asserted).
    Timing the steps of :func:`r2mae_core.train.mae_step` (+ AdamW) directly lets them be interleaved.
"""

import time

import numpy as np
import torch
from flops import matmul_flops_per_s
from scipy import stats
from torch.utils.flop_counter import FlopCounterMode

from r2mae_core import masking
from r2mae_core.models import build_model
from r2mae_core.train import TrainConfig, mae_step, pretrain

SIZE = dict(img_size=28, in_chans=1, patch=4, dim=128, depth=4, heads=4, dec_dim=64, dec_depth=2, dec_heads=4)
BATCH = 128


def _data(n: int = 4096) -> torch.Tensor:
    """Random float images: throughput does not depend on pixel values."""
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _step_seconds(history, stat=np.median) -> float:
    """Median (or ``stat``) wall time of one training step (the first 3 steps are warm-up)."""
    return float(stat(np.diff(history["seconds"].to_numpy())[3:]))


def step_flops(model, ratio: float, batch: int) -> int:
    """FLOPs of one forward + backward at mask ratio ``ratio`` (FlopCounterMode)."""
    x = _data(batch)
    sub = masking.random_subset_mask(torch.full((batch,), ratio), model.num_patches,
                                     generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(x, sub).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _pretrain(sampler, steps: int, seed: int = 0):
    return pretrain(build_model("vit", **SIZE), _data(), sampler=sampler, seed=seed, progress=False,
                    train=TrainConfig(steps=steps, batch_size=BATCH, lr=1.5e-4 * BATCH / 256))


def test_vit_mae_pretrain_throughput(benchmark):
    steps = 20
    res = benchmark.pedantic(_pretrain, args=(masking.Fixed(0.75), steps), rounds=3, iterations=1)
    step_s = _step_seconds(res.history)
    flops = step_flops(build_model("vit", **SIZE), 0.75, BATCH)
    peak = matmul_flops_per_s()
    info = {"size": SIZE, "batch": BATCH, "threads": torch.get_num_threads(), "step_ms": 1e3 * step_s,
            "samples_per_s": BATCH / step_s, "gflop_per_step": flops / 1e9,
            "achieved_gflops": flops / step_s / 1e9, "matmul_fp32_gflops": peak / 1e9,
            "fraction_of_matmul_peak": flops / step_s / peak}
    benchmark.extra_info.update(info)
    print("\n[bench] ViT-MAE pretraining:", {k: round(v, 4) if isinstance(v, float) else v
                                             for k, v in info.items()})
    assert info["samples_per_s"] > 0 and 0 < info["fraction_of_matmul_peak"] < 1.5


def test_r2mae_step_time_matches_fixed(benchmark):
    """Steps of the three samplers are interleaved one by one (same data, same init), so load spikes of a
    shared machine hit all alike; per-step times are summarised by a 5%-trimmed mean (spikes are one-sided).
    R²MAE step times vary with the drawn ratio (visible count K from 5 to 25 of 49: ~105..235 ms here), so
    ~300 steps are needed to bring the sampling error of the mean to ~1.5%."""
    steps, warm = 300, 5
    samplers = {"fixed_0.7": masking.Fixed(0.7), "r2mae_batch": masking.R2MAE(0.5, 0.9),
                "r2mae_sample": masking.R2MAE(0.5, 0.9, per="sample")}
    data = _data(BATCH * 8)
    models = {k: build_model("vit", **SIZE).train() for k in samplers}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, betas=(0.9, 0.95)) for k, m in models.items()}
    gens = {k: torch.Generator().manual_seed(0) for k in samplers}
    times: dict[str, list[float]] = {k: [] for k in samplers}
    ratios: dict[str, list[float]] = {k: [] for k in samplers}
    for i in range(steps + warm):
        x = data[(i % 8) * BATCH:(i % 8 + 1) * BATCH]
        for k, s in samplers.items():
            t0 = time.perf_counter()
            r = s.sample(BATCH, generator=gens[k], progress=i / (steps + warm))
            loss = mae_step(models[k], x, r, gens[k]).loss
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            if i >= warm:
                times[k].append(time.perf_counter() - t0)
                ratios[k].append(float(r.mean()))
    res = benchmark.pedantic(_pretrain, args=(samplers["r2mae_batch"], 20), rounds=1, iterations=1)
    mean = {k: float(stats.trim_mean(v, 0.05)) for k, v in times.items()}
    info = {f"{k}_step_ms": 1e3 * v for k, v in mean.items()}
    info.update({f"{k}_mean_ratio": float(np.mean(v)) for k, v in ratios.items()})
    info["r2mae_batch_over_fixed"] = mean["r2mae_batch"] / mean["fixed_0.7"]
    info["r2mae_sample_over_fixed"] = mean["r2mae_sample"] / mean["fixed_0.7"]
    benchmark.extra_info.update(info)
    print("\n[bench] step time R²MAE vs Fixed:", {k: round(v, 4) for k, v in info.items()})
    assert len(res.history) == 20
    assert abs(info["r2mae_batch_over_fixed"] - 1.0) <= 0.05
