"""The lent GPU machine's Python, as this machine can imitate it: which of this project's packages its image lacks,
and a way to run a module with those packages refused.

A GPU command runs under the image's own ``python3`` (PyTorch, NumPy, SciPy, pandas, scikit-learn, PyYAML, HF
tokenizers, tqdm, matplotlib and seaborn are there; the single-cell and notebook packages are not: the device
tool's KINDS.md lists the image's packages). A shard whose code path imports one of the missing packages fails
there, after the minutes it took to start the machine. ``python -m r2mae_core.gpu_image -m MODULE ARGS...`` runs
``MODULE`` as ``python -m MODULE ARGS...`` would, except that importing any package of :data:`ABSENT` raises
``ModuleNotFoundError`` naming it; :func:`r2mae_core.campaign.rehearse` runs a shard's dry run that way, with only
the paths a GPU command carries as its data.

A package imported before the guard is installed is not refused: the guard belongs at the start of a fresh
process, which is how this module's command line installs it.
"""

from __future__ import annotations

import importlib.abc
import runpy
import sys
from collections.abc import Sequence

__all__ = ["ABSENT", "RefuseAbsent", "main"]

#: Top-level import names of this project's dependencies (and theirs) that the GPU image does not hold: the
#: single-cell stack (scanpy, anndata, igraph, leidenalg, umap-learn with pynndescent, rdata) and the notebook
#: stack (jupytext, papermill, nbformat, nbclient, nbconvert, ipykernel, IPython, jupyter, nbval), and ruff.
ABSENT = frozenset({
    "scanpy", "anndata", "igraph", "leidenalg", "umap", "pynndescent", "rdata",
    "jupytext", "papermill", "nbformat", "nbclient", "nbconvert", "ipykernel", "IPython", "jupyter_client",
    "jupyter_core", "jupyter_server", "jupyterlab", "nbval", "ruff",
})


class RefuseAbsent(importlib.abc.MetaPathFinder):
    """A meta path finder that refuses every module of a package in ``absent`` (default :data:`ABSENT`)."""

    def __init__(self, absent: frozenset[str] = ABSENT):
        self.absent = absent

    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        if top in self.absent:
            raise ModuleNotFoundError(f"No module named {top!r}: the GPU image has no {top} "
                                      "(r2mae_core.gpu_image.ABSENT)", name=name)
        return None


def main(argv: Sequence[str] | None = None) -> None:
    """``-m MODULE ARGS...``: run ``MODULE`` as ``__main__`` with ``sys.argv = [MODULE, *ARGS]`` and the packages
    of :data:`ABSENT` refused; a command line without ``-m MODULE`` exits with status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "-m":
        print(f"gpu_image: arguments={args!r} are not allowed: use -m MODULE [ARGS...]", file=sys.stderr)
        sys.exit(2)
    module = args[1]
    sys.meta_path.insert(0, RefuseAbsent())
    sys.argv = [module, *args[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
