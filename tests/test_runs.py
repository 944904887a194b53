"""The run engine: method records, run identities, plan execution (cache, duplicates, groups, shards, resume
after a failure, worker processes) on a cheap work function of real numbers."""

import math

import numpy as np
import pandas as pd
import pytest

from r2mae_core import runs
from r2mae_core.runs import Method, Options, RunSpec, TrainConfig, execute, fixed_method, r2mae_method


def _spec(method=None, seed=0, steps=3, **kw) -> RunSpec:
    return RunSpec("test_runs", "toy", "S", method or fixed_method(0.5), seed, TrainConfig(steps=steps), **kw)


def work(group, options):
    """A real, cheap computation per run: the sampler's ratios drawn from the run's seed, and a log of the
    groups (to check the grouping)."""
    import torch

    from r2mae_core.masking import make_sampler

    out = []
    for spec in group:
        gen = torch.Generator().manual_seed(spec.seed)
        ratios = make_sampler(spec.method.sampler).sample(spec.train.steps, generator=gen).double().numpy()
        out.append({"metrics": {"mean_ratio": float(ratios.mean()), "group_size": len(group)},
                    "ratios": ratios, "history": pd.DataFrame({"step": np.arange(len(ratios)), "ratio": ratios})})
    return out


FAILS_ON_SEED = {"seed": None}


def failing_work(group, options):
    if any(spec.seed == FAILS_ON_SEED["seed"] for spec in group):
        raise RuntimeError("killed")
    return work(group, options)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_methods_are_records_with_table_columns():
    r2 = r2mae_method(0.5, 0.9)
    assert r2.name == "R²MAE U[0.5,0.9]" and r2.kind == "r2mae"
    assert r2mae_method(0.5, 0.9, "sample").name == "R²MAE U[0.5,0.9] per sample"
    cols = r2.columns()
    assert (cols["ratio_low"], cols["ratio_high"]) == (0.5, 0.9) and math.isnan(cols["ratio"])
    assert fixed_method(0.75).columns()["ratio"] == 0.75 and fixed_method(0.75).name == "fixed 0.75"
    assert runs.reference_method().columns()["kind"] == "reference"
    with pytest.raises(ValueError, match="kind='fixed'") as err:
        Method("x", "fixed", {"kind": "r2mae", "low": 0.5, "high": 0.9})
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="needs a sampler"):
        Method("x", "fixed", None)
    with pytest.raises(ValueError, match="uniformity_weight"):
        fixed_method(0.5, uniformity_weight=-1)


@pytest.mark.parametrize("kw, match", [({"steps": 0}, "steps=0"), ({"steps": 2, "batch_size": True}, "batch_size"),
                                       ({"steps": 2, "lr": 0}, "lr=0"), ({"steps": 2, "grad_clip": 0}, "grad_clip"),
                                       ({"steps": 2, "checkpoint_every": -1}, "checkpoint_every")])
def test_train_config_rejects_bad_values_with_one_line(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        TrainConfig(**kw)
    assert "\n" not in str(err.value)


def test_identity_ignores_labels_and_tags_but_not_what_is_computed():
    a = _spec(fixed_method(0.5), tags={"part": "sweep"})
    b = _spec(fixed_method(0.5, group="umae", name="another label"), tags={"part": "methods"})
    assert a.identity() == b.identity()  # one recipe, two labels: one run
    assert a.identity() != _spec(fixed_method(0.5, uniformity_weight=0.01)).identity()
    assert a.identity() != _spec(seed=1).identity()
    assert a.training_identity() == _spec(evaluation={"probe": 1}).training_identity()
    assert a.identity() != _spec(evaluation={"probe": 1}).identity()
    assert runs.group_key(a) == runs.group_key(_spec(r2mae_method(0.5, 0.9), seed=4, evaluation={"probe": 1}))
    assert runs.group_key(a) != runs.group_key(_spec(steps=4))
    assert runs.group_key(a) != runs.group_key(_spec(fixed_method(0.5, uniformity_weight=0.01)))


def test_execute_stores_dedupes_and_reads_back(cache):
    plan = [_spec(seed=s) for s in range(3)] + [_spec(seed=1, tags={"part": "again"})]
    first = execute(plan, work, progress=False)
    assert first[1]["metrics"] == first[3]["metrics"]  # a duplicate run is one run
    assert len(list((cache / "test_runs").glob("*.npz"))) == 3
    again = execute(plan, work, progress=False)
    for x, y in zip(first, again, strict=True):
        assert x["metrics"] == y["metrics"] and np.array_equal(x["ratios"], y["ratios"])
        pd.testing.assert_frame_equal(x["history"], y["history"])


def test_groups_hold_runs_that_share_a_training_setup(cache):
    plan = [_spec(seed=s) for s in range(5)] + [_spec(seed=0, steps=4)]
    out = execute(plan, work, group_size=2, progress=False)
    assert [r["metrics"]["group_size"] for r in out] == [2, 2, 2, 2, 1, 1]
    solo = execute(plan, work, group_size=1, progress=False)  # read back: grouping never changes a key
    assert [r["metrics"] for r in solo] == [r["metrics"] for r in out]


def test_shards_partition_the_plan_and_fill_one_cache(cache):
    plan = [_spec(seed=s) for s in range(5)]
    part = execute(plan, work, shard=(1, 2), progress=False)
    assert [r is not None for r in part] == [False, True, False, True, False]
    rest = execute(plan, work, shard=(0, 2), progress=False)
    assert all(r is not None for r in rest)  # shard 1's runs are read back
    assert runs.parse_shard("1/2") == (1, 2) and runs.parse_shard(None) is None
    for bad in ("2/2", "a/b", "1", "-1/3"):
        with pytest.raises(ValueError, match="shard"):
            runs.parse_shard(bad)


def test_a_failed_run_leaves_the_finished_ones_stored(cache):
    plan = [_spec(seed=s) for s in range(4)]
    FAILS_ON_SEED["seed"] = 2
    try:
        with pytest.raises(RuntimeError, match="killed"):
            execute(plan, failing_work, progress=False)
    finally:
        FAILS_ON_SEED["seed"] = None
    assert len(list((cache / "test_runs").glob("*.npz"))) == 2  # seeds 0 and 1 finished before the failure
    assert not list((cache / "test_runs").glob("*.partial"))
    done = execute(plan, work, progress=False)
    assert all(r is not None for r in done)


def test_a_corrupt_result_is_recomputed_with_a_warning(cache):
    plan = [_spec()]
    first = execute(plan, work, progress=False)
    path = next((cache / "test_runs").glob("*.npz"))
    path.write_bytes(b"not a record")
    with pytest.warns(UserWarning, match=path.name):
        again = execute(plan, work, progress=False)
    assert again[0]["metrics"] == first[0]["metrics"]


def test_worker_processes_give_the_same_results(cache, tmp_path, monkeypatch):
    plan = [_spec(seed=s, method=m) for s in range(3) for m in (fixed_method(0.5), r2mae_method(0.5, 0.9))]
    parallel = execute(plan, work, workers=2, options=Options(threads=1), progress=False)
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "serial"))
    serial = execute(plan, work, progress=False)
    assert [r["metrics"] for r in parallel] == [r["metrics"] for r in serial]


@pytest.mark.parametrize("kw, match", [({"group_size": 0}, "group_size"), ({"workers": 0}, "workers")])
def test_execute_rejects_bad_settings(cache, kw, match):
    with pytest.raises(ValueError, match=match):
        execute([_spec()], work, progress=False, **kw)


def test_the_ledger_is_read_after_the_cache_and_replay_trains_nothing(cache, tmp_path, monkeypatch):
    """A result in the ledger (runs made on another machine; its key has no CPU numerics) is found with an empty
    cache; under ``R2MAE_REPLAY=1`` a run that is in neither is an error, not a training."""
    monkeypatch.setenv("R2MAE_LEDGER_DIR", str(tmp_path / "ledger"))
    plan = [_spec(seed=s) for s in range(3)]
    made = execute(plan[:2], work, progress=False)
    for spec in plan[:2]:
        runs.ledger_path(spec).parent.mkdir(parents=True, exist_ok=True)
        runs.result_path(spec).replace(runs.ledger_path(spec))
    monkeypatch.setenv("R2MAE_REPLAY", "1")
    def no_training(group, options):
        raise AssertionError(f"{group[0].label()} was trained although the ledger holds it")

    read = execute(plan[:2], no_training, progress=False)
    assert [r["metrics"] for r in read] == [r["metrics"] for r in made]
    with pytest.raises(RuntimeError, match="1 of 3 runs are neither in the cache nor in the ledger"):
        execute(plan, work, progress=False)
    reference = RunSpec("toy", "toy", "-", runs.reference_method(), 7, None)

    def init_only(group, options):
        return [{"metrics": {"seed": spec.seed}} for spec in group]

    assert execute([reference], init_only, progress=False)[0]["metrics"] == {"seed": 7}  # trains nothing: done here


@pytest.mark.parametrize("method, weight", [(r2mae_method(0.35, 0.75), lambda m: 1.0),
                                            (r2mae_method(0.1, 0.9, "sample"), lambda m: 1.0),
                                            (runs.masked_diffusion_method(), lambda m: 1.0 / m)])
def test_equal_effect_control_is_the_fixed_ratio_of_the_laws_moments(method, weight):
    from scipy.integrate import quad

    spec = method.sampler
    low, high = (spec["low"], spec["high"]) if method.kind == "r2mae" else (spec["eps"], 1.0)
    moment = lambda f: quad(lambda m: weight(m) * f(m), low, high)[0]  # noqa: E731
    m_eq = moment(lambda m: m * m * (1 - m)) / moment(lambda m: m * (1 - m))
    control = runs.equivalent_fixed_method(method)
    assert control.kind == "fixed" and control.group == "equivalent"
    assert control.ratio == pytest.approx(m_eq, abs=1e-12)
    assert method.name in control.name


def test_equal_effect_control_keeps_the_uniformity_weight_and_refuses_fixed_ratios(raises_one_line):
    umae = r2mae_method(0.2, 0.8, uniformity_weight=0.01)
    assert runs.equivalent_fixed_method(umae).uniformity_weight == 0.01
    raises_one_line(lambda: runs.equivalent_fixed_method(fixed_method(0.5)), ("needs a random ratio law", "method="))
    raises_one_line(lambda: runs.equivalent_fixed_method(runs.reference_method()),
                    ("needs a random ratio law", "method="))
