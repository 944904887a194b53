"""Parallel sweep benchmark (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench -k sweep`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_sweep_workers.py --benchmark-only -s -p no:cacheprovider``.

Wall time of a real 03_language study (Brown corpus, size S, 2 seeds × (fixed 0.15, fixed 0.4, R²MAE, random init),
200 pretraining steps each, probes on 600 / 300 sequences) with ``workers`` = 1 and 2 (one torch thread per
worker), each into an empty run cache (the corpus is built once, outside the timing). On the 2-core CPU the ratio
``workers=1 / workers=2`` is the speed-up the quick profiles of 03 and 04 get from ``workers: 2``; the metrics of
both must be identical (checked here too).
"""

import shutil

import pandas as pd
import pytest

from r2mae_core.experiments import language

CONFIG = {"n_seeds": 2, "sizes": ("S",), "main_size": "S", "sweep_ratios": (0.15, 0.4), "baselines": ("r2mae",),
          "vocab_size": 2048, "steps": 200, "probe_train": 600, "probe_eval": 300, "threads": 1}
_METRICS: dict[int, pd.DataFrame] = {}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("R2MAE_CACHE_DIR", str(root))
    language.corpus(language.Config(**CONFIG))  # built once, outside the timed calls
    yield root
    mp.undo()


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_wall_time(benchmark, cache_dir, workers):
    config = language.Config(**CONFIG, workers=workers)

    def setup():
        shutil.rmtree(cache_dir / "language_runs", ignore_errors=True)

    out = benchmark.pedantic(language.run, args=(config,), kwargs={"progress": False}, setup=setup, rounds=1,
                             iterations=1)
    _METRICS[workers] = out["metrics"]
    benchmark.extra_info["runs"] = int(out["runs"].shape[0])
    benchmark.extra_info["pretraining_seconds_sum"] = float(out["runs"]["seconds"].sum())
    if len(_METRICS) == 2:
        pd.testing.assert_frame_equal(_METRICS[1], _METRICS[2])
