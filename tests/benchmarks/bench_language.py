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


import mlm_bench
import pytest
import torch

from r2mae_core import masking
from r2mae_core.experiments.language import SIZES, mlm_step
from r2mae_core.models import build_model
from r2mae_core.train import TrainConfig, pretrain

VOCAB, SEQ, BATCH = 2048, 64, 32
SIZE = dict(vocab_size=VOCAB, max_len=SEQ, **SIZES["S"])


def _data(n: int = 1024) -> torch.Tensor:
    """Random token ids with ~20% padding at the end of each row (like packed Brown sequences)."""
    x = torch.randint(4, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(0))
    x[:, 0], x[:, 50], x[:, 51:] = 1, 2, 0
    return x


def step_flops(model, ratio: float) -> int:
    """FLOPs of one forward + backward of :func:`mlm_step` at ``ratio``."""
    return mlm_bench.step_flops(mlm_step, model, _data(BATCH), ratio)


def _pretrain(steps: int):
    return pretrain(build_model("text_encoder", **SIZE), _data(), sampler=masking.R2MAE(0.15, 0.45),
                    train=TrainConfig(steps=steps, batch_size=BATCH, lr=2e-3), step_fn=mlm_step, progress=False)


@pytest.mark.parametrize("threads", [1, 0])
def test_mlm_pretrain_throughput(benchmark, threads):
    info = mlm_bench.throughput(benchmark, lambda: _pretrain(30),
                                lambda: step_flops(build_model("text_encoder", **SIZE), 0.30), threads=threads,
                                size="S", tokens_per_step=BATCH * SEQ)
    print("\n[bench] text encoder MLM pretraining:", {k: round(v, 4) if isinstance(v, float) else v
                                                      for k, v in info.items()})
    assert info["tokens_per_s"] > 0 and 0 < info["fraction_of_matmul_peak"] < 1.5
