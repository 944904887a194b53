"""Language pretraining benchmarks (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench -k language`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_language.py --benchmark-only -s -p no:cacheprovider
-o python_files='bench_*.py'``.

MLM pretraining throughput (tokens/s, padding included) of the text encoder at the quick-profile size (S: width
64, 2 blocks; vocabulary 2048, context 64, batch 32, R²MAE U[0.15, 0.45]) and the achieved FLOP/s as a fraction of
this machine's dense fp32 matmul FLOP/s, both from one run of :func:`r2mae_core.train.pretrain` with
:func:`r2mae_core.experiments.language.mlm_step`, at one torch thread (the quick profile's setting) and at the
default thread count. Model FLOPs (forward + backward, the MLM head on the masked tokens only, at ratio 0.30 =
the mean of the interval) are counted with ``torch.utils.flop_counter.FlopCounterMode``; masking, corruption and
the optimizer's element-wise work are not counted.
"""


import numpy as np
import pytest
import torch
from flops import matmul_flops_per_s
from torch.utils.flop_counter import FlopCounterMode

from r2mae_core import masking
from r2mae_core.experiments.language import SIZES, mlm_step
from r2mae_core.models import build_model
from r2mae_core.train import pretrain

VOCAB, SEQ, BATCH = 2048, 64, 32
SIZE = dict(vocab_size=VOCAB, max_len=SEQ, **SIZES["S"])


def _data(n: int = 1024) -> torch.Tensor:
    """Random token ids with ~20% padding at the end of each row (like packed Brown sequences)."""
    x = torch.randint(4, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(0))
    x[:, 0], x[:, 50], x[:, 51:] = 1, 2, 0
    return x


def step_flops(model, ratio: float) -> int:
    """FLOPs of one forward + backward of :func:`mlm_step` at ``ratio``."""
    with FlopCounterMode(display=False) as counter:
        mlm_step(model, _data(BATCH), torch.full((BATCH,), ratio, dtype=torch.float64),
                 torch.Generator().manual_seed(0)).loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _pretrain(steps: int):
    return pretrain(build_model("text_encoder", **SIZE), _data(), sampler=masking.R2MAE(0.15, 0.45), steps=steps,
                    batch_size=BATCH, lr=2e-3, step_fn=mlm_step, progress=False)


@pytest.mark.parametrize("threads", [1, 0])
def test_mlm_pretrain_throughput(benchmark, threads):
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        res = benchmark.pedantic(_pretrain, args=(30,), rounds=2, iterations=1)
        step_s = float(np.median(np.diff(res.history["seconds"].to_numpy())[3:]))
        flops = step_flops(build_model("text_encoder", **SIZE), 0.30)
        peak = matmul_flops_per_s()
        info = {"size": "S", "threads": torch.get_num_threads(), "step_ms": 1e3 * step_s,
                "tokens_per_s": BATCH * SEQ / step_s, "gflop_per_step": flops / 1e9,
                "achieved_gflops": flops / step_s / 1e9, "matmul_fp32_gflops": peak / 1e9,
                "fraction_of_matmul_peak": flops / step_s / peak}
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info.update(info)
    print("\n[bench] text encoder MLM pretraining:", {k: round(v, 4) if isinstance(v, float) else v
                                                      for k, v in info.items()})
    assert info["tokens_per_s"] > 0 and 0 < info["fraction_of_matmul_peak"] < 1.5
