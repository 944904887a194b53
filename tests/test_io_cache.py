"""Result writing (io), the on-disk cache and seeding."""

import json
import pickle
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from r2mae_core import cache, io, records  # noqa: E402
from r2mae_core._rng import check_seed, child_seeds, numpy_generator, seed_everything, torch_generator  # noqa: E402
from r2mae_core.claims import Claim  # noqa: E402


@pytest.fixture()
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.delenv("R2MAE_CACHE_DIR", raising=False)
    monkeypatch.delenv("R2MAE_NO_CACHE", raising=False)
    return tmp_path / "results"


def _figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def test_save_figure_writes_png_and_pdf_with_stable_bytes(results_dir):
    paths = io.save_figure(_figure(), "fig1_line", profile="smoke", notebook="00_test")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    first = [p.read_bytes() for p in paths]
    io.save_figure(_figure(), "fig1_line", profile="smoke", notebook="00_test")
    assert [p.read_bytes() for p in paths] == first  # no timestamps in PNG or PDF
    assert paths[0].parent == results_dir / "smoke" / "00_test" / "figures"
    assert not list(paths[0].parent.glob("*.partial"))
    plt.close("all")


@pytest.mark.parametrize("name", ["figure1", "fig_1", "Fig1_x", "fig1-x", "tab1_x"])
def test_save_figure_rejects_bad_names(results_dir, name):
    with pytest.raises(ValueError, match="figure name"):
        io.save_figure(_figure(), name, profile="smoke", notebook="00_test")
    plt.close("all")


def test_run_dir_rejects_unknown_profile_and_notebook(results_dir):
    with pytest.raises(ValueError, match="profile='huge'"):
        io.run_dir("huge", "00_test")
    with pytest.raises(ValueError, match="notebook='linear'"):
        io.run_dir("quick", "linear")


def test_save_table_and_metrics(results_dir):
    path = io.save_table(pd.DataFrame({"a": [1.0 / 3.0], "b": ["x"]}), "tab1_thing", profile="quick",
                         notebook="01_x")
    assert path.read_text() == "a,b\n0.333333,x\n"
    with pytest.raises(ValueError, match="table name"):
        io.save_table(pd.DataFrame(), "table1", profile="quick", notebook="01_x")
    m = io.save_metrics({"acc": np.float32(0.5), "bad": float("nan"), "n": np.int64(3)}, profile="quick",
                        notebook="01_x")
    assert json.loads(m.read_text()) == {"acc": 0.5, "bad": None, "n": 3}
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        io.save_metrics({"x": object()}, profile="quick", notebook="01_x")


def test_save_and_load_claims(results_dir):
    claim = Claim("C1", "a", "b", "c", 1.0, 0.5, 1.5, 3, "supported", "quick")
    out = io.RunOutputs("quick", "01_x")
    assert out.save_claims([claim]) is None
    assert io.load_claims(out.path / "claims.json") == [claim]
    with pytest.raises(ValueError, match="profile='quick' but is saved under 'full'"):
        io.save_claims([claim], profile="full", notebook="01_x")
    with pytest.raises(ValueError, match="ids repeat"):
        io.save_claims([claim, claim], profile="quick", notebook="01_x")


def test_cache_hits_and_key_depends_on_everything(results_dir):
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    cfg = {"p": 100, "ratios": [0.1, 0.5], "name": "iso"}
    assert cache.cached("unit", cfg, compute) == {"value": 1}
    assert cache.cached("unit", dict(reversed(list(cfg.items()))), compute) == {"value": 1}  # key order free
    assert len(calls) == 1
    assert cache.cached("unit", {**cfg, "p": 101}, compute) == {"value": 2}
    assert cache.cached("unit", cfg, compute, data_checksum="abc") == {"value": 3}
    assert cache.cached("other", cfg, compute) == {"value": 4}
    path = cache.cache_path("unit", cfg)
    assert path.parent == results_dir / "cache" / "unit"
    assert json.loads(path.with_suffix(".json").read_text())["config"]["p"] == 100
    assert path.suffix == ".npz" and records.load_record(path) == {"value": 1}


def test_cache_int_and_float_spell_the_same_key():
    assert cache.cache_key("n", {"lr": 1}) == cache.cache_key("n", {"lr": 1.0})
    assert cache.cache_key("n", {"lr": 1}) != cache.cache_key("n", {"lr": 1.5})


def test_cache_recomputes_when_disabled(results_dir, monkeypatch):
    calls = []
    cache.cached("unit", {"a": 1}, lambda: calls.append(1) or len(calls))
    monkeypatch.setenv("R2MAE_NO_CACHE", "1")
    assert cache.cached("unit", {"a": 1}, lambda: calls.append(1) or len(calls)) == 2


class _Trap:
    """Unpickling this calls ``open(marker, "w")``: it would leave the marker file behind."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("suffix", [".pkl", ".npz"])
def test_cache_never_unpickles_a_crafted_entry(results_dir, tmp_path, suffix):
    marker = tmp_path / "unpickled"
    path = cache.cache_path("unit", {"a": 1}).with_suffix(suffix)
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(_Trap(marker)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cache.cached("unit", {"a": 1}, lambda: {"value": 7}) == {"value": 7}
    assert not marker.exists()
    assert [str(w.message).count(str(path)) for w in caught] == ([] if suffix == ".pkl" else [1])
    assert cache.cached("unit", {"a": 1}, lambda: {"value": 8}) == {"value": 7}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_cache_warns_once_naming_a_corrupt_entry_and_recomputes_it(results_dir, damage):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(1000.0), "n": len(calls)}

    path = cache.cache_path("unit", {"a": 1})
    cache.cached("unit", {"a": 1}, compute)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"not a zip" * 10, "empty": b""}[damage])
    with pytest.warns(UserWarning) as caught:
        out = cache.cached("unit", {"a": 1}, compute)
    assert len(caught) == 1 and str(path) in str(caught[0].message) and "\n" not in str(caught[0].message)
    assert out["n"] == 2 and records.load_record(path)["n"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.cached("unit", {"a": 1}, compute)["n"] == 2
    assert len(calls) == 2


@pytest.mark.parametrize(("result", "where"), [({"a": {1, 2}}, "record['a']: type set"),
                                               ({1: np.zeros(2)}, "key 1 (int) is not a str"),
                                               ({"w": torch.zeros(2)}, "record['w']: type Tensor"),
                                               ((np.array([object()]),), "dtype object")])
def test_cache_refuses_a_result_it_cannot_store_in_one_line(results_dir, result, where):
    with pytest.raises(ValueError, match="cache namespace 'unit': the result is not storable") as err:
        cache.cached("unit", {"a": 1}, lambda: result)
    assert where in str(err.value) and "\n" not in str(err.value)
    path = cache.cache_path("unit", {"a": 1})
    assert not path.parent.exists() or not list(path.parent.iterdir())


def test_cache_rejects_unhashable_config_and_bad_namespace(results_dir):
    with pytest.raises(ValueError, match="cannot be part of a cache key"):
        cache.cache_key("n", {"f": lambda: 0})
    with pytest.raises(ValueError, match="namespace='a/b'"):
        cache.cache_path("a/b", {})


def test_child_seeds_are_stable_prefixes_and_distinct():
    five, three = child_seeds(7, 5), child_seeds(7, 3)
    assert five[:3] == three and len(set(five)) == 5
    assert child_seeds(8, 3) != three
    assert all(0 <= s < 2**63 for s in five)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", 2**64])
def test_check_seed_rejects_non_seeds(bad):
    with pytest.raises(ValueError, match="seed="):
        check_seed(bad)


def test_generators_reproduce_and_seed_everything_sets_globals():
    assert numpy_generator(3).random() == numpy_generator(3).random()
    g = numpy_generator(3)
    assert numpy_generator(g) is g
    a = torch.rand(3, generator=torch_generator(5))
    assert torch.equal(a, torch.rand(3, generator=torch_generator(5)))
    seed_everything(11)
    x = (np.random.rand(), torch.rand(1).item())
    seed_everything(11)
    assert x == (np.random.rand(), torch.rand(1).item())
    torch.use_deterministic_algorithms(False)
