"""Image runs on the engine (02_vision, 06): fixed splits, resumable checkpoints, stored results, ensembles,
references.

Tiny runs (a few steps on a few hundred Fashion-MNIST images) in a throw-away cache directory.
"""

import numpy as np
import pytest
import torch

from r2mae_core.experiments import image_runs as R
from r2mae_core.runs import TrainConfig, fixed_method, r2mae_method

needs_data = pytest.mark.needs_data
TINY_EVAL = R.EvalSpec(test_ratios=(0.5,), n_probe_train=300, n_probe_eval=200, knn_k=5)


def _spec(family="vit", size="S", method=None, seed=0, steps=4, overrides=None, evaluation=TINY_EVAL, **train):
    return R.image_spec(family, size, method or fixed_method(0.75), seed,
                        TrainConfig(steps=steps, batch_size=32, **train), n_pretrain=256, overrides=overrides,
                        evaluation=evaluation)


def _rows(plan, **kw):
    return R.run_rows(plan, progress=False, **kw)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize(("kw", "word"), [({"family": "resnet"}, "family"), ({"size": "XL"}, "size"),
                                          ({"steps": 0}, "steps"), ({"overrides": {"depthh": 3}}, "depthh")])
def test_run_spec_rejects_bad_fields_with_one_clear_line(kw, word):
    with pytest.raises(ValueError, match=word) as err:
        _spec(**kw)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="ratio"):
        fixed_method(1.2)


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
    first = R.train_run(spec)
    again = R.train_run(spec)
    assert first.resumed_from == 0 and again.resumed_from == spec.train.steps
    for p, q in zip(first.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert R.train_run(_spec(evaluation=None)).resumed_from == spec.train.steps  # scored or not: one set of weights
    other = R.train_run(_spec(seed=1))  # another spec, another checkpoint
    assert other.resumed_from == 0
    assert len(list((cache / "image_models").glob("*.pt"))) == 2


@needs_data
def test_run_rows_are_tidy_and_stored_as_data_only_records(cache):
    rows = _rows([_spec(), _spec(method=r2mae_method(0.5, 0.9))])
    row = rows.iloc[0]
    for key in ("lp_val", "lp_test", "knn_val", "knn_test", "effective_rank", "recon_0.5", "train_loss"):
        assert np.isfinite(row[key]), key
    assert 0 <= row["lp_test"] <= 1 and row["family"] == "vit" and row["method"] == "fixed 0.75"
    assert (row["kind"], row["ratio"]) == ("fixed", 0.75)
    assert rows.iloc[1]["kind"] == "r2mae" and np.isnan(rows.iloc[1]["ratio"])
    assert (rows.iloc[1]["ratio_low"], rows.iloc[1]["ratio_high"]) == (0.5, 0.9)
    stored = sorted((cache / "image_runs").glob("*.npz"))
    assert len(stored) == 2 and not list((cache / "image_runs").glob("*.pkl"))
    again = _rows([_spec(), _spec(method=r2mae_method(0.5, 0.9))])
    assert again.drop(columns="train_seconds").equals(rows.drop(columns="train_seconds"))
    assert (again["train_seconds"] == rows["train_seconds"]).all()  # read back, not retrained


@needs_data
def test_an_ensemble_group_equals_the_runs_one_by_one(tmp_path, monkeypatch):
    """k = 3 runs of one architecture trained as one ensemble: the same metrics as one by one, to the float
    tolerance of the ensemble trainer (batched products change the order of sums; tests/test_ensemble.py); the
    members' weights are stored where a later single run reloads them."""
    plan = [_spec(seed=s, method=m) for s, m in ((0, fixed_method(0.75)), (1, fixed_method(0.5)),
                                                  (2, r2mae_method(0.5, 0.9)))]
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "one"))
    one = _rows(plan)
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "group"))
    group = _rows(plan, group_size=3)
    assert np.allclose(group["train_loss"], one["train_loss"], rtol=0, atol=1e-5)
    for col in ("lp_test", "knn_test"):  # probe accuracies on 200 images: equal up to a flipped prediction
        assert np.abs(group[col] - one[col]).max() <= 0.01, col
    assert np.allclose(group["recon_0.5"], one["recon_0.5"], rtol=0, atol=1e-4)
    reloaded = R.train_run(plan[1])
    assert reloaded.resumed_from == plan[1].train.steps
    assert len(list((tmp_path / "group" / "image_models").glob("*.pt"))) == 3


@needs_data
def test_references_are_runs_of_pixels_and_random_init(cache):
    specs = R.reference_specs("fashion_mnist", 10000, R.EvalSpec(**{**TINY_EVAL.__dict__, "ft_epochs": 2}),
                              [("mlp", "S")])
    assert all(R.eval_spec(s).ft_epochs == 0 for s in specs)  # references are not fine-tuned
    refs = _rows(specs)
    assert list(refs["method"]) == ["raw pixels", "random init"] and set(refs["kind"]) == {"reference"}
    pixels = refs.iloc[0]
    assert pixels["family"] == R.PIXELS and pixels["params"] == 0
    assert pixels["feature_dim"] == 784 and pixels["lp_test"] > 0.6  # 300 labelled images of 10 classes
    assert refs.iloc[1]["params"] > 0 and refs.iloc[1]["steps"] == 0


@pytest.mark.parametrize(("kw", "word"), [({"size": "S"}, "size '-'"), ({"overrides": {"patch": 7}}, "overrides"),
                                          ({"analyses": {"spectrum": {}}}, "analyses")])
def test_a_pixels_spec_is_only_the_raw_pixel_reference(kw, word):
    from r2mae_core.runs import reference_method

    args = {"size": "-", **kw}
    with pytest.raises(ValueError, match=word) as err:
        R.image_spec(R.PIXELS, args.pop("size"), reference_method("raw pixels"), 0, None, evaluation=TINY_EVAL,
                     **args)
    assert "\n" not in str(err.value)


@needs_data
def test_analyses_run_on_the_trained_model_and_are_stored_in_the_record(cache):
    """A spec that names analyses gets their values in its record (data-only, read back equal), is another
    result than the same run without them, shares its weights, and an analysis the section lacks is one line."""
    from r2mae_core.runs import Options

    seen = []

    def mean_weight(model, spec, params, device):
        seen.append(spec.seed)
        return {"scale": params["scale"] * float(next(model.parameters()).detach().abs().mean()), "seed": spec.seed}

    def work(group, options):
        return R.work(group, options, {"mean_weight": mean_weight})

    plain = _spec()
    spec = R.image_spec("vit", "S", fixed_method(0.75), 0, plain.train, n_pretrain=256, evaluation=TINY_EVAL,
                        analyses={"mean_weight": {"scale": 2.0}})
    assert spec.training_identity() == plain.training_identity() and spec.identity() != plain.identity()
    first = R.run_records([spec], Options(), work=work, progress=False)[0]
    again = R.run_records([spec], Options(), work=work, progress=False)[0]
    assert seen == [0] and first["analyses"] == again["analyses"]  # read back, not recomputed
    assert first["analyses"]["mean_weight"]["scale"] > 0 and first["data_digest"] == R.data_digest("fashion_mnist")
    assert R.train_run(plain).resumed_from == plain.train.steps  # one set of weights
    with pytest.raises(ValueError, match="analysis 'mean_weight'") as err:
        R.run_records([R.image_spec("vit", "S", fixed_method(0.75), 1, plain.train, n_pretrain=256,
                                    analyses={"mean_weight": {}})], Options(), progress=False)
    assert "\n" not in str(err.value)


class _Killed(Exception):
    pass


@needs_data
def test_a_killed_run_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    """Kill a run mid-training (after a checkpoint), re-run: the metrics equal an uninterrupted run's."""
    spec = _spec(steps=8, checkpoint_every=3)
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "clean"))
    clean = _rows([spec])

    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "killed"))

    def kill(step, row):
        if step == 5:
            raise _Killed

    real = R.pretrain
    monkeypatch.setattr(R, "pretrain", lambda *a, **kw: real(*a, **kw, callback=kill))
    with pytest.raises(_Killed):
        _rows([spec])
    assert not list((tmp_path / "killed" / "image_runs").glob("*"))  # nothing half-written looks complete
    state = torch.load(next((tmp_path / "killed" / "image_models").glob("*.pt")), weights_only=True)
    assert 0 < state["step"] < spec.train.steps  # the checkpoint the re-run resumes from
    monkeypatch.setattr(R, "pretrain", real)
    resumed = _rows([spec])
    assert resumed.drop(columns="train_seconds").equals(clean.drop(columns="train_seconds"))


def test_the_image_schedule_checkpoints_single_runs_without_changing_their_key():
    long, short = R.image_schedule(8000, 256, 1.5e-3), R.image_schedule(400, 64, 1.5e-3)
    assert (long.checkpoint_every, short.checkpoint_every) == (2000, 500)
    a = R.image_spec("vit", "S", fixed_method(0.75), 0, long)
    b = R.image_spec("vit", "S", fixed_method(0.75), 0, TrainConfig(**{**long.__dict__, "checkpoint_every": 0}))
    assert a.identity() == b.identity()  # how often a run is saved is not part of what it computes
