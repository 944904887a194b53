"""Linear-probe solver benchmarks (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_probe.py --benchmark-only -s -p no:cacheprovider``.

Wall time of one :func:`r2mae_core.evaluate.linear_probe` (the whole ``C`` path on a split of the training set,
the refit and the scoring) on real Fashion-MNIST inputs: the 64-d mean-pooled features of a randomly
initialised ViT-S (patch 7, the quick profile's encoder) and the 784-d raw pixels, at the probe-set sizes of
the smoke / quick / full profiles. These numbers set ``image_runs.AUTO_TORCH_MAX_DIM`` and
``AUTO_TORCH_MIN_TRAIN``. ``sklearn-2-blas-threads`` raises the BLAS pool to two threads around the call: the
probe limits itself to one, so it should time like ``sklearn`` (two threads made it 13× slower on 2 cores).
"""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from r2mae_core import evaluate, models
from r2mae_core.experiments.image_runs import SIZES, load_images, splits

N_TEST = 1000


def _features(kind: str, n_train: int):
    data = load_images("fashion_mnist")
    pool = splits("fashion_mnist", 10000).pool[:n_train]
    images = (data.train_images[pool], data.test_images[:N_TEST])
    if kind == "pixels":
        x = [im.reshape(len(im), -1).astype(np.float32) / 255.0 for im in images]
    else:
        vit = models.build_model("vit", seed=0, **{**SIZES["vit"]["S"], "patch": 7, "pool": "mean"})
        x = [evaluate.extract_features(vit, im) for im in images]
    return x[0], data.train_labels[pool], x[1], data.test_labels[:N_TEST]


#: (input, probe-training images, solver); torch on 784-d pixels at 5000 images (~70 s) is left out
CASES = [(kind, n, solver) for kind in ("vit64", "pixels") for n in (600, 2000, 5000)
         for solver in ("sklearn", "torch", "sklearn-2-blas-threads")
         if (kind, n, solver) != ("pixels", 5000, "torch")]


@pytest.mark.parametrize(("kind", "n_train", "solver"), CASES)
def test_linear_probe_wall_time(benchmark, kind, n_train, solver):
    args = _features(kind, n_train)

    def probe():
        with threadpool_limits(2 if solver.endswith("threads") else None, user_api="blas"):
            return evaluate.linear_probe(*args, solver=solver.split("-")[0])

    result = benchmark.pedantic(probe, rounds=1, iterations=1)
    benchmark.extra_info.update({"test_acc": result.test_acc, "C": result.C})
    print(f"\n{kind} n_train={n_train} {solver}: {benchmark.stats.stats.mean:.2f} s, "
          f"test acc {result.test_acc:.3f}, C {result.C:g}")
