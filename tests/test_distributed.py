"""Data-parallel pretraining (:mod:`r2mae_core.distributed`): two gloo processes started by torchrun against one
process at the same global batch (the cases of ``tests/ddp_workers.py``, a few steps each).

Tolerances, measured on the 2-core CPU (fp32, pinned numerics; one process against rank 0 of two):

- losses: largest difference 2.4e-7 (ViT-MAE, losses about 1) and 4.8e-7 (text encoder, losses about 4): a few
  float32 rounding steps, from the halves of the batch summing in another order; tolerance 2e-6.
- weights: largest difference 7.0e-7 (text encoder, per-sample ratios), 2.9e-7 (masked diffusion), 1.8e-7 (ViT-MAE
  with U-MAE) and 1.2e-7 (ViT-MAE, per-sample ratios) after 4–6 AdamW steps, out of the comparison the key part of
  each qkv bias as in ``tests/test_ensemble.py`` (its exact gradient is zero, AdamW normalises rounding noise into
  steps of about lr: 1.1e-4 measured); tolerance 2e-5. Without the loss scale of
  :func:`r2mae_core.distributed.loss_scale` (per-device normalisation), per-sample ratios move the ViT's losses by
  2.3e-3 and its weights by 4.8e-3 in the same 6 steps: far outside the tolerances (tested).
- U-MAE's uniformity term: loss equal, gradients within 3.7e-9; tolerance 1e-7.
The ranks end with bit-identical weights; the ratios and masks the model sees equal the one-process rows exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import ddp_workers
import numpy as np
import pytest
import torch
from test_ensemble import _comparable

from r2mae_core import distributed

LOSS_TOL, WEIGHT_TOL, GRAD_TOL = 2e-6, 2e-5, 1e-7
TRAINED = ["vit_umae", "vit_sample", "text_mlm", "text_diffusion"]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Each rank's results of the cases in two gloo processes (torchrun, 1 thread each), and the wall time."""
    folder = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(Path(ddp_workers.__file__)), str(folder)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return ranks, time.perf_counter() - start


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    """The same cases in this process (no process group), uninterrupted."""
    return ddp_workers.cases(tmp_path_factory.mktemp("one"), interrupt=False)


@pytest.mark.parametrize("case", TRAINED)
def test_two_processes_train_as_one_at_the_same_global_batch(two, one, case):
    ranks, _ = two
    alone, first = one[case], ranks[0][case]
    for column in ("step", "epoch", "ratio_mean", "lr"):
        assert alone["history"][column] == first["history"][column], column
    for column in ("loss", "uniformity"):
        diff = np.abs(np.subtract(alone["history"][column], first["history"][column]))
        assert np.isnan(diff).all() if column == "uniformity" and case != "vit_umae" else diff.max() < LOSS_TOL
    a, b = _comparable(alone["state"]), _comparable(first["state"])
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < WEIGHT_TOL
    other = ranks[1][case]["state"]
    assert all(torch.equal(first["state"][k], other[k]) for k in other)  # the ranks stay in step, bit for bit


def test_per_device_normalisation_would_be_caught(two, one):
    """Each rank's loss normalised by its own masked count (no loss scale, as MAE's DDP code): with per-sample
    ratios that is another objective, and the tolerances above tell it apart."""
    ranks, _ = two
    alone, per_device = one["vit_sample"], ranks[0]["vit_sample_per_device"]
    assert np.abs(np.subtract(alone["history"]["loss"], per_device["history"]["loss"])).max() > 10 * LOSS_TOL
    a, b = _comparable(alone["state"]), _comparable(per_device["state"])
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) > 10 * WEIGHT_TOL


def test_checkpoints_are_written_once_and_resume_exactly(two, one):
    """Interrupted after step 3 and resumed: rank 0 wrote every checkpoint, rank 1 none, and the run ends as the
    uninterrupted one-process run (previous test)."""
    ranks, _ = two
    assert ranks[0]["vit_umae"]["writes"] == [3, 6] and ranks[1]["vit_umae"]["writes"] == []
    assert ranks[0]["vit_umae"]["resumed_from"] == 3 and one["vit_umae"]["resumed_from"] == 0


@pytest.mark.parametrize("per", ["batch", "sample"])
def test_masks_are_the_global_batch_rows_of_one_process(two, one, per):
    """A per-batch ratio is the same on every rank at a step; per-sample ratios and masks differ across ranks;
    each rank's ratios and masks are its rows of the one-process draw of the same seed."""
    ranks, _ = two
    parts = [r[f"masks_{per}"] for r in ranks]
    for key in ("ratios", "masks"):
        assert torch.equal(torch.cat([p[key] for p in parts], dim=1), one[f"masks_{per}"][key])
    same = torch.equal(parts[0]["ratios"], parts[1]["ratios"])
    assert same if per == "batch" else not same
    assert (parts[0]["ratios"] == parts[0]["ratios"][:, :1]).all() == (per == "batch")
    assert not torch.equal(parts[0]["masks"], parts[1]["masks"])


def test_uniformity_on_two_processes_is_one_process_at_twice_the_batch(two, one):
    """λ · L_unif over the gathered global batch: the same loss and, after DDP's average, the same gradients as
    one process at batch 2B (λ means the same); the authors' local-slice gather halves them (λ / world)."""
    ranks, _ = two
    ref = one["uniformity"]
    for r in ranks:
        assert torch.equal(r["uniformity"]["loss"], ref["loss"])
        for got, want, halved in zip(r["uniformity"]["grads"], ref["grads"], r["uniformity_local_slice"]["grads"],
                                     strict=True):
            assert (got - want).abs().max() < GRAD_TOL
            assert (halved - want / 2).abs().max() < GRAD_TOL


def test_the_engine_trains_data_parallel_and_stores_once(two, one):
    ranks, seconds = two
    for r in ranks:
        out = r["engine"]
        assert out["stored"] == 2 and [x["ranks"] for x in out["first"]] == [2, 2]
        for x, y, z in zip(out["first"], out["again"], one["engine"]["first"], strict=True):
            assert np.array_equal(x["loss"], y["loss"])  # read back from the one record rank 0 wrote
            assert np.abs(x["loss"] - z["loss"]).max() < LOSS_TOL
    print(f"two-process cases: {seconds:.1f} s wall")


def test_one_process_is_untouched_and_bad_input_is_one_line(monkeypatch, raises_one_line):
    x = torch.randn(4, 3)
    assert distributed.gather_rows(x) is x and distributed.mean_across(x) is x and distributed.agree([1]) == [1]
    assert (distributed.world_size(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    assert distributed.row_block(8) == slice(0, 8)
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, lambda m: m) is model
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    raises_one_line(lambda: distributed.row_block(7), ["batch_size=7", "2 processes", "multiple"])
    monkeypatch.setenv("WORLD_SIZE", "two")
    raises_one_line(distributed.init, ["WORLD_SIZE='two'", "integer"])
