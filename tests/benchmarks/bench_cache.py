"""Cache entry format benchmarks (pytest-benchmark; not collected by the default test command).

Run with ``./build.sh bench -k cache`` or
``.venv/bin/python -m pytest tests/benchmarks/bench_cache.py --benchmark-only -s -p no:cacheprovider
-o python_files='bench_*.py'``.

Write time, read time and file size of one real cached value stored as a pickle (``pickle.dumps`` at the highest
protocol, written atomically) and as a data-only record (:func:`r2mae_core.records.save_record` /
:func:`~r2mae_core.records.load_record`, what :func:`r2mae_core.cache.cached` stores). Values: the corpora of 03
and 04 at the quick profile (the config their notebooks build, :func:`r2mae_core.campaign.section`; built once
into a temporary cache, outside the timing) and the largest 02 run record in the cache (``image_runs``; skipped
when there is none). Five rounds each; the median is the number to read.
"""

import pickle
from functools import cache
from pathlib import Path

import pytest

from r2mae_core import campaign, records
from r2mae_core.experiments import dna, language
from r2mae_core.io import atomic_write_bytes
from r2mae_core.paths import cache_root

ROUNDS = 5
CORPORA = {"language_corpus": ("03_language", language), "dna_corpus": ("04_dna", dna)}


@cache
def _value(name: str, cache_dir: Path):
    """The value ``name`` (a quick-profile corpus, built into ``cache_dir``, or the largest 02 run record)."""
    if name == "image_run":
        stored = sorted((cache_root() / "image_runs").glob("*.npz"), key=lambda p: p.stat().st_size)
        if not stored:
            pytest.skip(f"no 02 run record under {cache_root() / 'image_runs'}")
        return records.load_record(stored[-1])
    notebook, module = CORPORA[name]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("R2MAE_CACHE_DIR", str(cache_dir))
        return module.corpus(campaign.section(notebook, "quick").config)


def _write(fmt: str, path: Path, value) -> None:
    if fmt == "pickle":
        atomic_write_bytes(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    else:
        records.save_record(path, value)


def _read(fmt: str, path: Path):
    if fmt == "pickle":
        with path.open("rb") as fh:
            return pickle.load(fh)
    return records.load_record(path)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bench_cache")


@pytest.mark.parametrize("op", ["write", "read"])
@pytest.mark.parametrize("fmt", ["pickle", "record"])
@pytest.mark.parametrize("name", ["language_corpus", "dna_corpus", "image_run"])
def test_cache_entry_time_and_size(benchmark, cache_dir, tmp_path, name, fmt, op):
    value = _value(name, cache_dir)
    path = tmp_path / f"entry.{'pkl' if fmt == 'pickle' else 'npz'}"
    _write(fmt, path, value)
    if op == "write":
        benchmark.pedantic(_write, args=(fmt, path, value), rounds=ROUNDS, iterations=1)
    else:
        benchmark.pedantic(_read, args=(fmt, path), rounds=ROUNDS, iterations=1)
    size_mb = path.stat().st_size / 1e6
    benchmark.extra_info["size_mb"] = size_mb
    print(f"\n[bench] {name} {fmt} {op}: median {benchmark.stats.stats.median * 1e3:.1f} ms, "
          f"{size_mb:.2f} MB")
