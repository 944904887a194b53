"""Ensemble training benchmark (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench -k ensemble`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_ensemble.py --benchmark-only -s -p no:cacheprovider``.

k models trained as one ensemble (:func:`r2mae_core.ensemble.pretrain_ensemble`) against the same k runs trained
one by one (:func:`r2mae_core.train.pretrain`), for k = 1, 4 and 16, in one process, side by side: samples/s of
each, the ratio, and the achieved FLOP/s as a fraction of this machine's dense fp32 matmul FLOP/s measured in the
same run (model FLOPs of forward + backward counted with ``FlopCounterMode``; the optimizer's element-wise work
is not counted). Two families:

- ``vit``: ViT-MAEs of the 06 size (28×28, patch 4, dim 64, depth 2, decoder 64×1; batch 64 per member, fixed
  ratio 0.75);
- ``text``: text encoders of 03's quick main size (S: width 64, 2 blocks; vocabulary 2048, context 64, batch 32
  per member, fixed ratio 0.15, :func:`r2mae_core.experiments.language.mlm_step`).
"""

import time

import bench_language
import pytest
import torch
from bench_vision import step_flops
from flops import matmul_flops_per_s

from r2mae_core import masking
from r2mae_core.ensemble import pretrain_ensemble
from r2mae_core.experiments.language import mlm_step
from r2mae_core.models import build_model
from r2mae_core.train import TrainConfig, pretrain

SIZE = dict(img_size=28, in_chans=1, patch=4, dim=64, depth=2, heads=4, dec_dim=64, dec_depth=1, dec_heads=4)
BATCH, STEPS = 64, 12
_ROWS: list[dict] = []


FAMILIES = {
    "vit": {"family": "vit", "config": SIZE, "batch": BATCH, "ratio": 0.75, "step": {}},
    "text": {"family": "text_encoder", "config": bench_language.SIZE, "batch": bench_language.BATCH, "ratio": 0.15,
             "step": {"step": mlm_step}},
}


def _data(name: str) -> torch.Tensor:
    if name == "text":
        return bench_language._data(2048)
    return torch.rand(2048, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _members(name: str, k: int):
    f = FAMILIES[name]
    return [build_model(f["family"], seed=m, **f["config"]) for m in range(k)]


def _train(name: str) -> TrainConfig:
    return TrainConfig(steps=STEPS, batch_size=FAMILIES[name]["batch"])


def _sequential(name: str, k: int, data) -> float:
    f = FAMILIES[name]
    step_fn = f["step"].get("step")
    t0 = time.perf_counter()
    for m, model in enumerate(_members(name, k)):
        pretrain(model, data, sampler=masking.Fixed(f["ratio"]), train=_train(name), seed=m, step_fn=step_fn,
                 progress=False)
    return time.perf_counter() - t0


def _together(name: str, k: int, data) -> float:
    f = FAMILIES[name]
    members = _members(name, k)
    t0 = time.perf_counter()
    pretrain_ensemble(members, data, samplers=[masking.Fixed(f["ratio"])] * k, seeds=list(range(k)),
                      train=_train(name), **f["step"])
    return time.perf_counter() - t0


def _flops(name: str) -> int:
    f = FAMILIES[name]
    if name == "text":
        return bench_language.step_flops(build_model(f["family"], **f["config"]), f["ratio"])
    return step_flops(build_model(f["family"], **f["config"]), f["ratio"], f["batch"])


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("k", [1, 4, 16])
def test_ensemble_against_one_by_one(benchmark, name, k):
    data = _data(name)
    peak = matmul_flops_per_s()
    flops = _flops(name)
    sequential = _sequential(name, k, data)
    together = benchmark.pedantic(_together, args=(name, k, data), rounds=1, iterations=1)
    samples = k * FAMILIES[name]["batch"] * STEPS
    row = {"family": name, "k": k, "one_by_one_samples_per_s": samples / sequential,
           "ensemble_samples_per_s": samples / together,
           "speedup": sequential / together, "ensemble_frac_fp32_peak": k * STEPS * flops / together / peak,
           "one_by_one_frac_fp32_peak": k * STEPS * flops / sequential / peak, "fp32_peak_gflops": peak / 1e9}
    benchmark.extra_info.update(row)
    _ROWS.append(row)
    print("\n[bench] " + "  ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                                  for key, value in row.items()))
    assert together > 0 and sequential > 0
