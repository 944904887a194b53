"""Record files: data-only round trips, refusals before writing, and clear errors on bad files."""

from __future__ import annotations

import gc
import io
import json
import math
import os
import re
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from pandas.testing import assert_frame_equal

from r2mae_core.records import FORMAT_VERSION, RecordError, load_record, save_record


def full_record() -> dict:
    frame = pd.DataFrame({
        "seed": np.array([0, 1, 2], dtype=np.int64),
        "loss": [0.5, math.nan, 1.25],
        "ok": [True, False, True],
        "name": ["a", "béta", ""],
        "small": np.array([1, 2, 3], dtype=np.int8),
        "cat": pd.Categorical(["x", "y", "x"]),
    })
    return {
        "table": frame,
        "empty": pd.DataFrame({"n": pd.Series([], dtype=np.int64), "s": pd.Series([], dtype=object)}),
        "no_rows": pd.DataFrame(columns=["a", "b"]),
        "weights": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "labels": np.array(["cat", "dög", "x"]),
        "flags": np.array([True, False]),
        "scalar_array": np.array(2.5),
        "nested": [[1, [2.5, "x"]], [], [None, True]],
        "pair": (1, 2),
        "none": None,
        "floats": {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "neg_zero": -0.0, "tiny": 5e-324},
        "numpy_scalars": {"f": np.float32(0.25), "i": np.int64(-7), "b": np.bool_(True), "u": np.uint64(2**64 - 1)},
        "text": "unicode ✓ \ud800",
        "big": 10**30,
        "": {"deep": {"deeper": {"deepest": 1}}},
    }


def test_round_trip_every_supported_type(tmp_path):
    path = tmp_path / "run.npz"
    record = full_record()
    save_record(path, record)
    back = load_record(path)

    assert list(back) == list(record)
    expected_table = record["table"].assign(cat=pd.Series(["x", "y", "x"], dtype=object))
    assert_frame_equal(back["table"], expected_table)
    assert back["table"]["name"].map(type).eq(str).all()
    assert_frame_equal(back["empty"], record["empty"])
    assert_frame_equal(back["no_rows"], record["no_rows"].reset_index(drop=True))
    for key in ("weights", "labels", "flags", "scalar_array"):
        assert back[key].dtype == record[key].dtype
        assert back[key].shape == record[key].shape
        assert_array_equal(back[key], record[key])
    assert back["nested"] == [[1, [2.5, "x"]], [], [None, True]]
    assert back["pair"] == [1, 2]
    assert back["none"] is None
    floats = back["floats"]
    assert math.isnan(floats["nan"]) and floats["inf"] == math.inf and floats["-inf"] == -math.inf
    assert math.copysign(1.0, floats["neg_zero"]) == -1.0 and floats["tiny"] == 5e-324
    scalars = back["numpy_scalars"]
    assert scalars == {"f": 0.25, "i": -7, "b": True, "u": 2**64 - 1}
    assert [type(v) for v in scalars.values()] == [float, int, bool, int]
    assert back["text"] == record["text"] and back["big"] == 10**30
    assert back[""] == record[""]


def test_frame_index_is_dropped_and_string_dtype_kept(tmp_path):
    frame = pd.DataFrame({"s": pd.array(["p", "q"], dtype="string"), "v": [1.0, 2.0]}, index=[10, 20])
    save_record(tmp_path / "f.npz", frame)
    back = load_record(tmp_path / "f.npz")
    assert_frame_equal(back, frame.reset_index(drop=True))
    assert isinstance(back.index, pd.RangeIndex)


@pytest.mark.parametrize("value", [0, -1.5, "s", None, True, [], {}, np.zeros((0, 3), dtype=np.int16)])
def test_round_trip_top_level_values(tmp_path, value):
    save_record(tmp_path / "v.npz", value)
    back = load_record(tmp_path / "v.npz")
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape
    else:
        assert back == value and type(back) is type(value)


def test_file_is_data_only_npz(tmp_path):
    path = tmp_path / "run.npz"
    save_record(path, {"a": np.ones(3), "t": pd.DataFrame({"x": [1]})})
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
    assert "__record__.npy" in names and len(names) == 3
    with np.load(path, allow_pickle=False) as data:
        doc = json.loads(data["__record__"].tobytes())
    assert doc["format"] == FORMAT_VERSION
    assert set(doc["root"]) == {"a", "t"}


def cycle() -> dict:
    inner: dict = {}
    inner["self"] = inner
    return {"loop": inner}


@pytest.mark.parametrize(("record", "message"), [
    ({"metrics": {"x": {1, 2}}}, "record['metrics']['x']: type set is not storable"),
    ({"a": [1, np.array([object()], dtype=object)]}, "record['a'][1]: array of dtype object"),
    ({"a": {3: 1.0}}, "record['a']: key 3 (int) is not a str"),
    ({"a": {"__array__": "e0"}}, "record['a']: key '__array__' is reserved"),
    ({"__format": 1}, "record: key '__format' is reserved"),
    ({"t": pd.DataFrame({"c": [1, "x"]})}, "record['t'], column 'c': holds 1 (int)"),
    ({"t": pd.DataFrame({"c": ["x", None]})}, "record['t'], column 'c': holds None (NoneType)"),
    ({"t": pd.DataFrame({"c": ["x\x00"]})}, "record['t'], column 'c': a string ends in '\\x00'"),
    ({"t": pd.DataFrame({"c": pd.array([1, None], dtype="Int64")})}, "record['t'], column 'c': column dtype Int64"),
    ({"t": pd.DataFrame([[1, 2]], columns=["a", "a"])}, "record['t']: column names are not unique"),
    ({"t": pd.DataFrame({1: [1]})}, "record['t']: column name 1 (int) is not a str"),
    ({"t": pd.DataFrame({"d": pd.to_datetime(["2024-01-01"])})}, "record['t'], column 'd': column dtype datetime64"),
    ({"s": pd.Series([1])}, "record['s']: type Series is not storable"),
    ({"c": 1j}, "record['c']: type complex is not storable"),
    ({"b": b"bytes"}, "record['b']: type bytes is not storable"),
    (cycle(), "record['loop']['self']: the dict contains itself"),
])
def test_refusals_name_the_path_and_write_nothing(tmp_path, record, message):
    path = tmp_path / "run.npz"
    with pytest.raises(ValueError, match="^" + re.escape(message)) as info:
        save_record(path, record)
    assert not isinstance(info.value, RecordError)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    save_record(path, {"v": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        save_record(path, {"v": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]
    assert load_record(path) == {"v": 1}


def test_success_leaves_no_partial_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "run.npz"
    save_record(path, {"v": 1})
    save_record(path, {"v": 2})
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.npz"]
    assert load_record(path) == {"v": 2}
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def _rewrite(path: Path, replace: dict[str, np.ndarray], drop: tuple[str, ...] = (), **savez_kwargs) -> None:
    """Rewrite the npz at ``path`` with some entries replaced or dropped."""
    with np.load(path, allow_pickle=False) as data:
        entries = {k: data[k] for k in data.files if k not in drop}
    entries.update(replace)
    buffer = io.BytesIO()
    np.savez(buffer, **entries, **savez_kwargs)
    path.write_bytes(buffer.getvalue())


def _json_entry(doc: object) -> np.ndarray:
    return np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)


def _assert_record_error(path: Path, match: str) -> None:
    with pytest.raises(RecordError, match=match) as info:
        load_record(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "run.npz"
    save_record(path, {"x": np.arange(5), "y": 1.5})
    return path


def test_missing_file(tmp_path):
    _assert_record_error(tmp_path / "absent.npz", "no such record file")


def test_truncated_file(saved):
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    _assert_record_error(saved, "not a readable record file")


@pytest.mark.parametrize("content", [b"", b"garbage, not a record", b"PK\x03\x04" + b"\x00" * 64])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    _assert_record_error(path, "not a readable record file")


def test_unreadable_file_is_closed(saved):
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RecordError):
            load_record(saved)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_single_npy_array_is_not_a_record(tmp_path):
    path = tmp_path / "a.npz"
    with path.open("wb") as handle:
        np.save(handle, np.arange(3))
    _assert_record_error(path, "not a record file")


@pytest.mark.parametrize(("replace", "drop", "match"), [
    ({}, ("__record__",), "entry '__record__' .* is missing"),
    ({}, ("e0",), r"entry 'e0' \(for record\['x'\]\) is missing"),
    ({"__record__": np.frombuffer(b"{not json", dtype=np.uint8)}, (), "not valid JSON"),
    ({"__record__": np.frombuffer(b'{"format": 1, "root": NaN}', dtype=np.uint8)}, (), "not valid JSON"),
    ({"__record__": np.frombuffer(b"\xff\xfe", dtype=np.uint8)}, (), "not valid JSON"),
    ({"__record__": np.arange(3.0)}, (), "not a 1-D uint8 array"),
    ({"__record__": _json_entry({"root": 1})}, (), "lacks 'format' or 'root'"),
    ({"__record__": _json_entry({"format": 2, "root": 1})}, (), "record format 2 is not supported"),
    ({"__record__": _json_entry({"format": 1, "root": {"__eval__": "x"}})}, (), "unknown or malformed tag"),
    ({"__record__": _json_entry({"format": 1, "root": {"__float__": "one"}})}, (), "unknown float"),
    ({"__record__": _json_entry({"format": 1, "root": {"__dataframe__": {"n_rows": 2, "columns": [
        {"name": "c", "entry": "e0", "kind": "numeric"}]}}})}, (), r"has shape \(5,\), expected \(2,\)"),
])
def test_corrupt_structure(saved, replace, drop, match):
    _rewrite(saved, replace, drop)
    _assert_record_error(saved, match)


class _Trap:
    """Unpickling this calls ``open(marker, "w")``: it would leave the marker file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("entry", ["e0", "__record__"])
def test_pickled_object_array_is_never_unpickled(saved, tmp_path, entry):
    marker = tmp_path / "unpickled"
    _rewrite(saved, {entry: np.array([_Trap(marker)], dtype=object)}, allow_pickle=True)

    with np.load(saved, allow_pickle=True) as data:
        data[entry][0].close()
    assert marker.exists(), "the trap must work when unpickling is allowed"
    marker.unlink()

    _assert_record_error(saved, f"entry '{entry}' .* is unreadable")
    assert not marker.exists()
