"""The shared image-run runner (02_vision, 06): fixed splits, resumable checkpoints, cached metrics, references.

Tiny runs (a few steps on a few hundred Fashion-MNIST images) in a throw-away cache directory.
"""

import numpy as np
import pytest
import torch

from r2mae_core.experiments import image_runs as R

needs_data = pytest.mark.needs_data
TINY_EVAL = R.EvalSpec(test_ratios=(0.5,), n_probe_train=300, n_probe_eval=200, knn_k=5)


def _spec(**kw) -> R.RunSpec:
    base = {"family": "vit", "size": "S", "sampler": {"kind": "fixed", "ratio": 0.75}, "steps": 4,
            "batch_size": 32, "n_pretrain": 256}
    return R.RunSpec(**{**base, **kw})


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize(("kw", "word"), [({"family": "resnet"}, "family"), ({"size": "XL"}, "size"),
                                          ({"steps": 0}, "steps"), ({"sampler": {"kind": "fixed", "ratio": 1.2}},
                                                                    "ratio"),
                                          ({"overrides": {"depthh": 3}}, "depthh")])
def test_run_spec_rejects_bad_fields_with_one_clear_line(kw, word):
    with pytest.raises(ValueError, match=word):
        _spec(**kw)


@needs_data
def test_validation_split_is_fixed_disjoint_and_complete():
    a, b = R.splits("fashion_mnist", 10000), R.splits("fashion_mnist", 10000)
    assert np.array_equal(a.pool, b.pool) and np.array_equal(a.val, b.val)
    assert a.val.size == 10000 and a.pool.size == 50000
    assert np.intersect1d(a.pool, a.val).size == 0 and np.union1d(a.pool, a.val).size == 60000
    with pytest.raises(ValueError, match="n_val"):
        R.splits("fashion_mnist", 60000)


@needs_data
def test_train_run_reloads_a_finished_checkpoint_instead_of_training(cache):
    spec = _spec()
    first = R.train_run(spec, progress=False)
    again = R.train_run(spec, progress=False)
    assert first.resumed_from == 0 and again.resumed_from == spec.steps
    for p, q in zip(first.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    other = R.train_run(_spec(seed=1), progress=False)  # another spec, another checkpoint
    assert other.resumed_from == 0
    assert len(list((cache / "image_models").glob("*.pt"))) == 2


@needs_data
def test_run_returns_a_tidy_row_and_is_cached(cache):
    row = R.run(_spec(), TINY_EVAL, progress=False)
    for key in ("lp_val", "lp_test", "knn_val", "knn_test", "effective_rank", "recon_0.5", "train_loss"):
        assert np.isfinite(row[key]), key
    assert 0 <= row["lp_test"] <= 1 and row["family"] == "vit" and row["sampler"] == "fixed 0.75"
    assert R.run(_spec(), TINY_EVAL, progress=False) == row
    assert len(list((cache / "image_eval").glob("*.pkl"))) == 1


@needs_data
def test_reference_rows_cover_pixels_and_random_init(cache):
    refs = R.reference_rows("fashion_mnist", 10000, TINY_EVAL, [("mlp", "S")])
    assert list(refs["sampler"]) == ["raw pixels", "random init"]
    pixels = refs.iloc[0]
    assert pixels["feature_dim"] == 784 and pixels["lp_test"] > 0.6  # 300 labelled images of 10 classes


class _Killed(Exception):
    pass


@needs_data
def test_a_killed_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    """Kill a run mid-training (after a checkpoint), re-run: the metrics equal an uninterrupted run's."""
    spec = _spec(steps=8)
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "clean"))
    clean = R.run(spec, TINY_EVAL, progress=False)

    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "killed"))

    def kill(step, row):
        if step == 5:
            raise _Killed

    with pytest.raises(_Killed):
        R.train_run(spec, progress=False, checkpoint_every=3, callback=kill)
    assert not list((tmp_path / "killed" / "image_eval").glob("*.pkl"))  # nothing half-written looks complete
    state = torch.load(next((tmp_path / "killed" / "image_models").glob("*.pt")), weights_only=True)
    assert 0 < state["step"] < spec.steps  # the checkpoint the re-run resumes from
    resumed = R.run(spec, TINY_EVAL, progress=False)
    assert {k: v for k, v in resumed.items() if k != "train_seconds"} == \
        {k: v for k, v in clean.items() if k != "train_seconds"}
