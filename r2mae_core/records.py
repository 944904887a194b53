"""Experiment records: nested results in one data-only ``.npz`` file that never runs code when read.

Format (version 1): a zip archive written by :func:`numpy.savez_compressed`. Entry ``__record__`` is a 1-D
``uint8`` array holding UTF-8 JSON ``{"format": 1, "root": <value>}``. Every numpy array and every DataFrame
column is its own ``.npy`` entry (numeric, bool or fixed-width unicode ``<U`` dtype, never object), referenced
from the JSON by entry name:

- ``{"__array__": "e0"}``: a numpy array;
- ``{"__float__": "nan" | "inf" | "-inf"}``: a non-finite float (the JSON stays strict);
- ``{"__dataframe__": {"n_rows": n, "columns": [{"name", "entry", "kind", ...}, ...]}}``: a DataFrame.

Plain JSON objects are dicts; their keys never start with ``__``, so the tags above are unambiguous. Files are
read with ``allow_pickle=False``: nothing in a record file can be unpickled or executed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RecordError", "save_record", "load_record", "record_digest", "FORMAT_VERSION"]

FORMAT_VERSION = 1
RECORD_ENTRY = "__record__"
ARRAY_KINDS = frozenset("biufcU")
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class RecordError(ValueError):
    """A record file is missing, truncated, corrupt or of an unknown format version."""


def save_record(path: str | os.PathLike[str], record: Any) -> None:
    """Write ``record`` to ``path`` as one data-only ``.npz`` file, atomically.

    Parameters
    ----------
    path
        The file to write (``.npz`` by convention; no suffix is added). Parent folders are created.
    record
        A nested value made of: dicts with ``str`` keys not starting with ``__``; lists and tuples (tuples
        come back as lists); ``str``, ``bool``, ``int``, ``float`` (nan and inf included) and ``None``; numpy
        arrays of numeric, bool or ``<U`` dtype (same dtype, shape and values when read back); numpy scalars
        (stored as the matching Python scalar); and ``pandas.DataFrame``.

    Notes
    -----
    DataFrames keep column order, names (``str``, unique) and values; the index and the axis names are not
    stored (a frame comes back with a ``RangeIndex``). Column dtypes: numpy numeric and bool dtypes come back
    unchanged; object columns holding only ``str`` come back as object columns of ``str``; pandas string
    columns come back with the same string dtype where the reading pandas has it, else as object columns;
    categorical columns with ``str`` categories come back as object columns of ``str``. Missing values are
    allowed in float columns only. Strings in columns must not end in ``"\\x00"`` (numpy strips it).

    The file is written to a unique ``<name>.<random>.partial`` file in the same folder and renamed into
    place, so a reader never sees a half-written record.

    Raises
    ------
    ValueError
        A value cannot be stored; the message names its key path, e.g.
        ``record['metrics']['x']: type set is not storable``. Nothing is written.
    """
    entries: dict[str, np.ndarray] = {}
    root = _encode(record, "record", entries, set())
    text = json.dumps({"format": FORMAT_VERSION, "root": root}, allow_nan=False, separators=(",", ":"))
    entries[RECORD_ENTRY] = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    _write_atomic(Path(path), entries)


def record_digest(record: Any) -> str:
    """SHA-256 (hex, 24 chars) of what :func:`save_record` would store of ``record``: its JSON document and every
    entry's dtype, shape and bytes, in order. Equal for records that read back equal; used to check that two
    machines built the same data."""
    entries: dict[str, np.ndarray] = {}
    root = _encode(record, "record", entries, set())
    h = hashlib.sha256(json.dumps(root, allow_nan=False, separators=(",", ":")).encode("ascii"))
    for name, array in entries.items():
        array = np.ascontiguousarray(array)
        h.update(f"{name}:{array.dtype.str}:{array.shape}".encode("ascii"))
        h.update(array.tobytes())
    return h.hexdigest()[:24]


def load_record(path: str | os.PathLike[str]) -> Any:
    """Read a record written by :func:`save_record`.

    Parameters
    ----------
    path
        The ``.npz`` record file.

    Returns
    -------
    The stored value: dicts, lists (for lists and tuples), Python scalars, numpy arrays and DataFrames, as
    described in :func:`save_record`.

    Raises
    ------
    RecordError
        The file is missing, unreadable, truncated or corrupt, holds pickled data, or has an unknown format
        version. The one-line message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"{path}: no such record file")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise RecordError(f"{path}: not a readable record file ({_describe(exc)})") from None
    with handle:  # numpy leaves its own handle open when the zip directory is unreadable
        try:
            archive = np.load(handle, allow_pickle=False)
        except Exception as exc:  # zipfile, npy header and pickle refusals all end here
            raise RecordError(f"{path}: not a readable record file ({_describe(exc)})") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise RecordError(f"{path}: not a record file (a single .npy array, not an .npz archive)")
        with archive:
            doc = _read_document(path, archive)
            return _Decoder(path, archive).value(doc["root"], "record")


def _encode(value: Any, where: str, entries: dict[str, np.ndarray], active: set[int]) -> Any:
    """The JSON form of ``value``; arrays and DataFrame columns are added to ``entries``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _encode_float(float(value))
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _encode_float(float(value))
    if isinstance(value, np.ndarray):
        return {"__array__": _add_entry(entries, _storable_array(value, where))}
    if isinstance(value, pd.DataFrame):
        return {"__dataframe__": _encode_frame(value, where, entries)}
    if isinstance(value, dict | list | tuple):
        if id(value) in active:
            raise ValueError(f"{where}: the {type(value).__name__} contains itself")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return {_check_key(k, where): _encode(v, f"{where}[{k!r}]", entries, active) for k, v in value.items()}
            return [_encode(v, f"{where}[{i}]", entries, active) for i, v in enumerate(value)]
        finally:
            active.discard(id(value))
    raise ValueError(f"{where}: type {type(value).__name__} is not storable")


def _encode_float(value: float) -> float | dict[str, str]:
    if math.isfinite(value):
        return value
    return {"__float__": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _check_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise ValueError(f"{where}: key {key!r} ({type(key).__name__}) is not a str")
    if key.startswith("__"):
        raise ValueError(f"{where}: key {key!r} is reserved (keys starting with '__' are not allowed)")
    return str(key)


def _storable_array(array: np.ndarray, where: str) -> np.ndarray:
    if isinstance(array, np.ma.MaskedArray):
        raise ValueError(f"{where}: type MaskedArray is not storable (the mask would be lost)")
    if array.dtype.kind not in ARRAY_KINDS:
        raise ValueError(f"{where}: array of dtype {array.dtype} is not storable (numeric, bool or <U only)")
    return np.asarray(array)


def _add_entry(entries: dict[str, np.ndarray], array: np.ndarray) -> str:
    name = f"e{len(entries)}"
    entries[name] = array
    return name


def _encode_frame(frame: pd.DataFrame, where: str, entries: dict[str, np.ndarray]) -> dict[str, Any]:
    names = list(frame.columns)
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{where}: column name {name!r} ({type(name).__name__}) is not a str")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: column names are not unique")
    columns = []
    for i, name in enumerate(names):
        spec, values = _encode_column(frame.iloc[:, i], f"{where}, column {name!r}")
        columns.append({"name": str(name), "entry": _add_entry(entries, values), **spec})
    return {"n_rows": len(frame), "columns": columns}


def _encode_column(column: pd.Series, where: str) -> tuple[dict[str, Any], np.ndarray]:
    """``({"kind": ...}, values)`` for one DataFrame column."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biufc":
        return {"kind": "numeric"}, column.to_numpy()
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return {"kind": "object"}, _str_values(column.tolist(), where)
    if isinstance(dtype, pd.StringDtype):
        if column.isna().any():
            raise ValueError(f"{where}: string column with missing values is not storable")
        na_nan = isinstance(dtype.na_value, float) and math.isnan(dtype.na_value)
        spec = {"kind": "string", "storage": dtype.storage, "na_nan": na_nan}
        return spec, _str_values(column.tolist(), where)
    if isinstance(dtype, pd.CategoricalDtype):
        if column.isna().any():
            raise ValueError(f"{where}: categorical column with missing values is not storable")
        return {"kind": "object"}, _str_values(column.tolist(), where)
    raise ValueError(f"{where}: column dtype {dtype} is not storable")


def _str_values(values: list[Any], where: str) -> np.ndarray:
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{where}: holds {value!r} ({type(value).__name__}); only str is storable")
        if value.endswith("\x00"):
            raise ValueError(f"{where}: a string ends in '\\x00', which numpy would strip")
    return np.array(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def _write_atomic(path: Path, entries: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=path.name + ".", suffix=".partial")
    tmp = Path(handle.name)
    try:
        with handle:
            np.savez_compressed(handle, **entries)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _default_file_mode() -> int:
    """``0o666`` less the process umask: the mode :func:`open` would give a new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_entry(path: Path, archive: np.lib.npyio.NpzFile, name: str, where: str) -> np.ndarray:
    if name not in archive.files:
        raise RecordError(f"{path}: entry {name!r} (for {where}) is missing")
    try:
        array = archive[name]
    except Exception as exc:  # zipfile, zlib, npy header and pickle refusals all end here
        raise RecordError(f"{path}: entry {name!r} (for {where}) is unreadable ({_describe(exc)})") from None
    if not isinstance(array, np.ndarray):
        raise RecordError(f"{path}: entry {name!r} (for {where}) is not a .npy array")
    if array.dtype.kind not in ARRAY_KINDS:
        raise RecordError(f"{path}: entry {name!r} (for {where}) has dtype {array.dtype}, which records never hold")
    return array


def _read_document(path: Path, archive: np.lib.npyio.NpzFile) -> dict[str, Any]:
    raw = _read_entry(path, archive, RECORD_ENTRY, "the record structure")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise RecordError(f"{path}: entry {RECORD_ENTRY!r} is not a 1-D uint8 array")
    try:
        doc = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"{path}: the record structure is not valid JSON ({_describe(exc)})") from None
    if not isinstance(doc, dict) or "format" not in doc or "root" not in doc:
        raise RecordError(f"{path}: the record structure lacks 'format' or 'root'")
    if doc["format"] != FORMAT_VERSION or isinstance(doc["format"], bool):
        raise RecordError(f"{path}: record format {doc['format']!r} is not supported (this reader knows "
                          f"{FORMAT_VERSION})")
    return doc


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


class _Decoder:
    """Rebuilds values from the JSON structure and the archive's entries."""

    def __init__(self, path: Path, archive: np.lib.npyio.NpzFile) -> None:
        self.path = path
        self.archive = archive
        self.tags: dict[str, Callable[[Any, str], Any]] = {
            "__array__": self.array, "__float__": self.nonfinite, "__dataframe__": self.frame}

    def fail(self, where: str, what: str) -> RecordError:
        return RecordError(f"{self.path}: {where}: {what}")

    def value(self, node: Any, where: str) -> Any:
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, dict):
            reserved = [k for k in node if k.startswith("__")]
            if not reserved:
                return {k: self.value(v, f"{where}[{k!r}]") for k, v in node.items()}
            if len(node) == 1 and reserved[0] in self.tags:
                return self.tags[reserved[0]](node[reserved[0]], where)
            raise self.fail(where, f"unknown or malformed tag {reserved[0]!r}")
        raise self.fail(where, f"unexpected JSON value of type {type(node).__name__}")

    def array(self, name: Any, where: str) -> np.ndarray:
        if not isinstance(name, str):
            raise self.fail(where, "array reference is not an entry name")
        return _read_entry(self.path, self.archive, name, where)

    def nonfinite(self, text: Any, where: str) -> float:
        if not isinstance(text, str) or text not in NONFINITE:
            raise self.fail(where, f"unknown float {text!r}")
        return NONFINITE[text]

    def frame(self, spec: Any, where: str) -> pd.DataFrame:
        n_rows = spec.get("n_rows") if isinstance(spec, dict) else None
        if type(n_rows) is not int or n_rows < 0 or not isinstance(spec.get("columns"), list):
            raise self.fail(where, "malformed DataFrame description")
        data = {}
        for col in spec["columns"]:
            if not isinstance(col, dict) or not isinstance(col.get("name"), str) or col["name"] in data:
                raise self.fail(where, "malformed DataFrame column description")
            data[col["name"]] = self.column(col, n_rows, f"{where}, column {col['name']!r}")
        return pd.DataFrame(data, index=pd.RangeIndex(n_rows))

    def column(self, col: dict[str, Any], n_rows: int, where: str) -> pd.Series:
        values = self.array(col.get("entry"), where)
        if values.ndim != 1 or len(values) != n_rows:
            raise self.fail(where, f"has shape {values.shape}, expected ({n_rows},)")
        kind = col.get("kind")
        if kind == "numeric" and values.dtype.kind in "biufc":
            return pd.Series(values, index=pd.RangeIndex(n_rows))
        if kind in ("object", "string") and values.dtype.kind == "U":
            dtype = _string_dtype(col) if kind == "string" else object
            return pd.Series(values.astype(object), index=pd.RangeIndex(n_rows), dtype=dtype)
        raise self.fail(where, f"column kind {kind!r} does not match its entry of dtype {values.dtype}")


def _string_dtype(col: dict[str, Any]) -> pd.StringDtype | type[object]:
    """The stored pandas string dtype, or ``object`` where this pandas cannot build it."""
    try:
        return pd.StringDtype(storage=col.get("storage"), na_value=np.nan if col.get("na_nan") else pd.NA)
    except (ImportError, TypeError, ValueError):
        return object
