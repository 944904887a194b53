"""Measurement shared by the token-MLM pretraining benchmarks (bench_language, bench_dna): FLOPs of one masked
step and the throughput record of one benchmarked pretraining run."""

from collections.abc import Callable

import numpy as np
import torch
from flops import matmul_flops_per_s
from torch.utils.flop_counter import FlopCounterMode


def step_flops(step: Callable, model, batch: torch.Tensor, ratio: float) -> int:
    """FLOPs of one forward + backward of ``step`` (a ``pretrain`` step function) on ``batch`` at ``ratio``."""
    with FlopCounterMode(display=False) as counter:
        step(model, batch, torch.full((batch.shape[0],), ratio, dtype=torch.float64),
             torch.Generator().manual_seed(0)).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def throughput(benchmark, run: Callable, flops_per_step: Callable[[], int], *, threads: int, size: str,
               tokens_per_step: int) -> dict:
    """Benchmark ``run()`` (two rounds) at ``threads`` torch threads (0: the default; restored on return).

    Step time = median of the step-to-step times of the history after the first three; achieved FLOP/s =
    ``flops_per_step() / step time``, also as a fraction of this machine's dense fp32 matmul FLOP/s. The record is
    added to the benchmark's ``extra_info`` and returned.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        res = benchmark.pedantic(run, rounds=2, iterations=1)
        step_s = float(np.median(np.diff(res.history["seconds"].to_numpy())[3:]))
        flops = flops_per_step()
        peak = matmul_flops_per_s()
        info = {"size": size, "threads": torch.get_num_threads(), "step_ms": 1e3 * step_s,
                "tokens_per_s": tokens_per_step / step_s, "gflop_per_step": flops / 1e9,
                "achieved_gflops": flops / step_s / 1e9, "matmul_fp32_gflops": peak / 1e9,
                "fraction_of_matmul_peak": flops / step_s / peak}
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info.update(info)
    return info
