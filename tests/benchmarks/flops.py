"""Shared by the benchmarks: this machine's dense matmul FLOP/s (the denominator of "achieved FLOP/s")."""

import time

import torch


def matmul_flops_per_s(n: int = 1024, reps: int = 20, dtype=torch.float32) -> float:
    """Best-of dense ``n × n`` matmul FLOP/s (2n³ per product) at ``dtype`` on this CPU."""
    a = torch.randn(n, n, dtype=dtype, generator=torch.Generator().manual_seed(1))
    b = torch.randn(n, n, dtype=dtype, generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best
