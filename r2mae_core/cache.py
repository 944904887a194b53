"""On-disk cache of expensive results (a pretraining run, a Monte Carlo grid).

An expensive computation is a pure function of its config. Its result is stored under a key derived
from ``(namespace, config, data checksum, code, package version, numerics)``: the code is the
:func:`r2mae_core.fingerprint.code_fingerprint` of the module that computes the result (its source and every
library module it imports, prose excluded), so editing the library recomputes exactly the results whose code
changed; the numerics are :func:`r2mae_core.numerics.signature` (native, or pinned with a digest of the pinned
values), so results of different numerics never mix. An interrupted build resumes where it stopped and a re-run
only re-plots.
Entries are data-only records (:mod:`r2mae_core.records`: ``<key>.npz``, read without unpickling, so a file
placed in the cache folder can never run code) written atomically beside a JSON copy of the config they came from
(to see what a key means: ``cat results/cache/<namespace>/<key>.json``). A result must be storable as a record;
callers convert other values (tuples, tensors, dicts with non-``str`` keys) to plain arrays, lists and dicts and
rebuild them on read. A corrupt or truncated entry is reported in one warning and recomputed. Pickle files
(``<key>.pkl``) in the cache folder are ignored: never read, never removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np

from . import __version__, numerics
from .fingerprint import fingerprint_of
from .io import atomic_write_text
from .paths import cache_root
from .records import RecordError, load_record, save_record

__all__ = ["cache_key", "cached", "cache_path", "canonical"]

T = TypeVar("T")


def canonical(obj):
    """A JSON-ready canonical form of a config: dataclasses/mappings/sequences/numpy scalars/paths."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__class__": type(obj).__name__,
                **{f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return canonical(obj.tolist())
    if isinstance(obj, np.generic):
        return canonical(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return repr(obj)
        return int(obj) if obj.is_integer() else obj  # 1.0 and 1 hash alike (YAML writes either)
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    # Objects with a stable description (e.g. ratio samplers are frozen dataclasses, handled above).
    raise ValueError(f"config value of type {type(obj).__name__} cannot be part of a cache key: {obj!r}")


def cache_key(namespace: str, config, *, data_checksum: str = "", code: str = "",
              with_numerics: bool = True) -> str:
    """SHA-256 (hex, 24 chars) of the canonical JSON of namespace, config, data checksum, code fingerprint
    (:mod:`r2mae_core.fingerprint`; ``""`` for a key that names rather than stores a result), version and (unless
    ``with_numerics`` is False: results made on a GPU do not depend on the CPU's numerics) numerics."""
    payload = {"namespace": namespace, "config": canonical(config), "data": data_checksum, "code": code,
               "version": __version__, "numerics": numerics.signature() if with_numerics else "any"}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_path(namespace: str, config, *, data_checksum: str = "", code: str = "") -> Path:
    """Where :func:`cached` stores the entry for this config."""
    if not namespace or "/" in namespace or namespace.startswith("."):
        raise ValueError(f"namespace={namespace!r} is not allowed: use a plain name like 'linear_theory_mc'")
    key = cache_key(namespace, config, data_checksum=data_checksum, code=code)
    return cache_root() / namespace / f"{key}.npz"


def cached(namespace: str, config, compute: Callable[[], T], *, data_checksum: str = "",
           code: str | None = None) -> T:
    """Return the cached result for ``config``, computing and storing it on a miss.

    Set ``R2MAE_NO_CACHE=1`` to recompute (and overwrite) every entry. An entry that cannot be read (corrupt,
    truncated) is reported in a one-line warning naming its file, then recomputed and overwritten.

    Parameters
    ----------
    namespace
        One name per kind of computation (e.g. ``"linear_theory_mc"``).
    config
        Everything the result depends on (dataclass or mapping of plain values).
    compute
        Zero-argument function producing the result: a record of :func:`r2mae_core.records.save_record` (nested
        dicts with ``str`` keys, lists, Python scalars, numeric/bool/``<U`` numpy arrays, DataFrames) that reads
        back equal, so a hit returns what a miss does.
    data_checksum
        Checksum of the data the computation reads (from the data registry's manifest).
    code
        Fingerprint of the code that computes the result; by default that of the module defining ``compute``
        (:func:`r2mae_core.fingerprint.fingerprint_of`: a lambda in a section module stands for that module).

    Raises
    ------
    ValueError
        The result is not storable as a record; the one-line message names the namespace and the value's key
        path. Nothing is written.
    """
    code = fingerprint_of(compute) if code is None else code
    path = cache_path(namespace, config, data_checksum=data_checksum, code=code)
    if path.exists() and os.environ.get("R2MAE_NO_CACHE", "") not in ("1", "true", "yes"):
        try:
            return load_record(path)
        except RecordError as err:
            warnings.warn(f"{err}; recomputing it", stacklevel=2)
    result = compute()
    _store(path, namespace, config, data_checksum, code, result)
    return result


def _store(path: Path, namespace: str, config, data_checksum: str, code: str, result) -> None:
    """Write ``result`` to ``path`` and the JSON copy of its config beside it."""
    try:
        save_record(path, result)
    except ValueError as err:
        raise ValueError(f"cache namespace {namespace!r}: the result is not storable: {err}") from None
    atomic_write_text(path.with_suffix(".json"),
                      json.dumps({"namespace": namespace, "config": canonical(config),
                                  "data": data_checksum, "code": code, "version": __version__},
                                 indent=2, sort_keys=True))
