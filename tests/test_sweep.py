"""Sweeps across machines (:mod:`r2mae_core.sweep`): two processes each fill their shard of a section's plan into one
cache directory, and a third reads the whole plan from it without training (``R2MAE_REPLAY=1`` forbids it)."""

from __future__ import annotations

import os
import subprocess
import sys

from r2mae_core import sweep
from r2mae_core.paths import REPO_ROOT

NOTEBOOK = "05_single_cell"  # the quickest section at smoke (16 runs of real gene-expression models)


def test_two_shards_fill_one_cache_that_a_third_process_reads_whole(tmp_path, monkeypatch):
    env = {**os.environ, "R2MAE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(REPO_ROOT)}
    shards = [subprocess.Popen([sys.executable, "-m", "r2mae_core.sweep", NOTEBOOK, "--profile", "smoke", "--shard",
                                f"{i}/2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i in range(2)]
    outs = [p.communicate(timeout=600) for p in shards]
    for p, (_, err) in zip(shards, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    total = int(outs[0][0].split(" of ")[1].split()[0])
    done = [int(out.split(": ")[1].split(" of ")[0]) for out, _ in outs]
    assert 0 < done[0] < total and 0 < done[1] < total  # each machine trained its part only
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("R2MAE_REPLAY", "1")  # training anything now is an error
    assert sweep.run_sweep(NOTEBOOK, "smoke", progress=False) == (total, total)


def test_bad_input_is_one_line(capsys):
    for argv, needle in ((["02_vision", "--shard", "2/2"], "shard='2/2'"), (["07_nothing"], "notebook='07_nothing'")):
        assert sweep.main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1
