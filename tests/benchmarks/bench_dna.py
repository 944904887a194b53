"""DNA pretraining benchmarks (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench -k dna`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_dna.py --benchmark-only -s -p no:cacheprovider
-o python_files='bench_*.py'``.

Masked-nucleotide pretraining throughput (tokens/s, ``[CLS]`` included) of the text encoder with the DNA
vocabulary at the quick-profile sizes (XS: width 32, 1 block; S: width 64, 2 blocks; single-nucleotide tokens,
64 bp windows = 65 tokens, batch 32, R²MAE U[0.15, 0.45]) and the achieved FLOP/s as a fraction of this machine's
dense fp32 matmul FLOP/s, both from one run of :func:`r2mae_core.train.pretrain` with
:func:`r2mae_core.experiments.dna.mlm_step`, at one torch thread (the quick profile's setting) and at the
default thread count. Model FLOPs (forward + backward, the MLM head on the masked tokens only, at ratio 0.30 =
the mean of the interval) are counted with ``torch.utils.flop_counter.FlopCounterMode``; masking, corruption and
the optimizer's element-wise work are not counted.
"""


import mlm_bench
import pytest
import torch

from r2mae_core import dna, masking
from r2mae_core.experiments.dna import SIZES, mlm_step
from r2mae_core.models import build_model
from r2mae_core.train import TrainConfig, pretrain

TOK = dna.DNATokenizer(1)
WINDOW, BATCH = 64, 32
SEQ = 1 + TOK.n_tokens(WINDOW)
STEP = mlm_step(TOK.first_random_id)


def _model(size: str):
    return build_model("text_encoder", vocab_size=TOK.vocab_size, max_len=SEQ, **SIZES[size])


def _data(n: int = 1024) -> torch.Tensor:
    """Random nucleotide windows, ``[CLS]`` first (no padding: DNA windows are full length)."""
    x = torch.randint(TOK.first_random_id, TOK.vocab_size, (n, SEQ), generator=torch.Generator().manual_seed(0))
    x[:, 0] = dna.CLS_ID
    return x


def step_flops(model, ratio: float) -> int:
    """FLOPs of one forward + backward of the DNA MLM step at ``ratio``."""
    return mlm_bench.step_flops(STEP, model, _data(BATCH), ratio)


def _pretrain(size: str, steps: int):
    return pretrain(_model(size), _data(), sampler=masking.R2MAE(0.15, 0.45),
                    train=TrainConfig(steps=steps, batch_size=BATCH, lr=2e-3), step_fn=STEP, progress=False)


@pytest.mark.parametrize("size", ["XS", "S"])
@pytest.mark.parametrize("threads", [1, 0])
def test_dna_mlm_pretrain_throughput(benchmark, size, threads):
    info = mlm_bench.throughput(benchmark, lambda: _pretrain(size, 30), lambda: step_flops(_model(size), 0.30),
                                threads=threads, size=size, tokens_per_step=BATCH * SEQ)
    print("\n[bench] DNA encoder masked-nucleotide pretraining:", {k: round(v, 4) if isinstance(v, float) else v
                                                                   for k, v in info.items()})
    assert info["tokens_per_s"] > 0 and 0 < info["fraction_of_matmul_peak"] < 1.5
