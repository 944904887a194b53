"""A section's sweep on several machines, or on several GPUs of one machine: ``python -m r2mae_core.sweep``.

Two routes beyond one process, both filling the engine's cache (``R2MAE_CACHE_DIR``, :func:`r2mae_core.runs.execute`):

- **Across machines.** ``python -m r2mae_core.sweep NB --profile P --shard i/n`` trains and evaluates shard
  ``i`` of ``n`` of the section's plan at profile ``P`` (the runs at plan positions ``p % n == i``, in ensembles of
  up to ``--group-size`` runs) into the cache. Started on ``n`` machines that share one cache directory (a network
  file system; every write is atomic, so machines never see half a record), they fill the whole sweep; any
  machine then runs the notebook (``./build.sh run --profile P NB``) and trains nothing: the notebook's engine
  finds every run in the cache. The cache key holds the code, the data and the CPU numerics
  (:func:`r2mae_core.cache.cache_key`): the machines must run the same checkout and numerics (the pinned numerics
  are the same on any x86-64 CPU with AVX2). Results made on a GPU for the CPU's notebooks travel through the GPU
  route's ledger instead (:mod:`r2mae_core.campaign`).
- **Across GPUs.** ``torchrun --nproc_per_node N -m r2mae_core.sweep NB --profile P [--shard i/n]`` trains each
  run of the (shard of the) plan data-parallel over N processes (:mod:`r2mae_core.distributed`: one global batch
  per step, gradients all-reduced, rank 0 writes checkpoints and records), one run at a time, on
  ``cuda:LOCAL_RANK`` with bf16 autocast (and ``torch.compile`` with ``--compile``). Both routes combine: one
  torchrun per machine, each with its own ``--shard``.

The plan and the work are the notebook's own (``plan(config)`` and ``work`` of the section module, the config as
the notebook builds it at the profile), so the notebook's lookups hit exactly these records.
"""

from __future__ import annotations

import argparse
import sys

from . import distributed
from .runs import Options, execute, parse_shard

__all__ = ["run_sweep", "main"]


def run_sweep(notebook: str, profile: str = "quick", *, shard: tuple[int, int] | None = None,
              device: str | None = None, group_size: int = 1, workers: int = 1, compile: bool = False,
              progress: bool = True) -> tuple[int, int]:
    """Execute (``shard`` of) the plan of ``notebook`` at ``profile`` into the engine's cache.

    Parameters
    ----------
    notebook
        A section of :data:`r2mae_core.campaign.SECTIONS` (02–06).
    profile
        ``smoke``, ``quick`` or ``full``: the notebook's parameters cell and that profile's YAML.
    shard
        ``(i, n)``: only the runs at plan positions ``p % n == i`` (:func:`r2mae_core.runs.shard_runs`).
    device
        Torch device; None: this process's (:func:`r2mae_core.distributed.device`, ``cuda:LOCAL_RANK`` when CUDA
        is available).
    group_size, workers, compile
        As :func:`r2mae_core.runs.execute` (under torchrun group size and workers are 1).
    progress
        The engine's progress bar.

    Returns
    -------
    tuple
        (runs of the plan whose results are in the cache now, distinct runs of the plan).
    """
    from .campaign import section

    sec = section(notebook, profile)
    plan = sec.module.plan(sec.config)
    options = Options(device=device or distributed.device(), compile=compile,
                      threads=getattr(sec.config, "threads", 0))
    results = execute(plan, sec.module.work, options=options, group_size=group_size, workers=workers,
                      data_checksum=sec.data_checksum, shard=shard, desc=f"{notebook} sweep", progress=progress)
    stored = {repr(spec.identity()) for spec, out in zip(plan, results, strict=True) if out is not None}
    return len(stored), len({repr(spec.identity()) for spec in plan})


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m r2mae_core.sweep", description=__doc__.split("\n")[0])
    ap.add_argument("notebook", help="a section, e.g. 02_vision")
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    ap.add_argument("--shard", default=None, help="i/n: this machine's part of the plan (default: all of it)")
    ap.add_argument("--device", default=None, help="torch device (default: cuda:LOCAL_RANK if CUDA, else cpu)")
    ap.add_argument("--group-size", type=int, default=1, help="most runs trained as one ensemble (one process)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes on a CPU (one process)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training step (CUDA)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        world = distributed.init()
        try:
            done, total = run_sweep(args.notebook, args.profile, shard=parse_shard(args.shard), device=args.device,
                                    group_size=args.group_size, workers=args.workers, compile=args.compile,
                                    progress=distributed.is_main())
        finally:
            distributed.cleanup()
    except ValueError as err:
        print(f"sweep: {err}", file=sys.stderr)
        return 2
    if world.rank == 0:
        print(f"{args.notebook} {args.profile}: {done} of {total} runs in the cache"
              + (f" ({world.size} processes per run)" if world.size > 1 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
