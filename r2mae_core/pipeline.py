"""Run the notebooks headlessly: ``python -m r2mae_core.pipeline run --profile quick [NN_slug ...]``.

``build.sh run`` calls this. For each notebook it

1. updates the paired ``.ipynb`` from its jupytext source ``notebooks/NN_slug.py`` (the source of truth),
2. validates the profile YAML against the notebook's parameters cell (unknown key or wrong type: error),
3. takes the notebook's lock for the profile (``results/<profile>/.NN_slug.lock``, an exclusive ``flock``):
   a second run of the same notebook at the same profile, from any process, is refused with one line instead
   of clearing the first one's output,
4. clears ``results/<profile>/NN_slug/`` and marks it ``.incomplete``,
5. executes the notebook with papermill (cwd ``notebooks/``, parameters from the YAML plus ``profile``, this
   checkout first on the kernel's ``PYTHONPATH``; a cell that runs longer than :data:`CELL_TIMEOUT_S` of the
   profile fails the notebook) into
   ``NN_slug.partial.ipynb`` and renames it to ``NN_slug.ipynb`` on success, removing the mark. At ``full`` on
   a machine without CUDA the kernel gets ``R2MAE_REPLAY=1``: the notebook replays the runs of the GPU ledger
   and trains nothing (:mod:`r2mae_core.campaign`). While it runs, the run engine's progress (runs done of the
   plan, the current run, the time left: :mod:`r2mae_core.progress`) is printed under the notebook's line.

A failed notebook keeps its ``.incomplete`` mark and its partial notebook (so nothing failed looks
complete; its summary line names that file, which holds the traceback), the others still run, and the exit
status is non-zero with one summary line per notebook.

``pair`` writes each notebook's smoke reference (its key numbers under several master seeds, with tolerances:
:mod:`r2mae_core.reference`) and re-executes the committed ``notebooks/*.ipynb`` in place at smoke scale (their
stored outputs are what nbval compares); ``check`` validates every notebook's YAML of every profile without
running anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import progress, reference
from .notebook_params import ParameterError, load_profile_parameters, read_parameters
from .paths import PROFILES, REPO_ROOT, check_notebook, check_profile, notebook_names, results_root

__all__ = ["CELL_TIMEOUT_S", "NotebookBusy", "NotebookResult", "sync_pair", "notebook_lock", "run_notebook",
           "run_notebooks", "reference_runs", "pair_notebook", "strip_machine_outputs", "main"]

#: The longest a notebook cell may run per profile (seconds): a cell that hangs fails its notebook. The longest
#: cells train a whole study: about 10 minutes at quick on the 2-core CPU; at full hours on a CUDA machine that
#: trains everything itself (the plain route), minutes where the notebooks replay the GPU ledger.
CELL_TIMEOUT_S = {"smoke": 600, "quick": 3600, "full": 12 * 3600}


class NotebookBusy(RuntimeError):
    """Another process is running the same notebook at the same profile."""

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
INCOMPLETE = ".incomplete"
KERNEL = "python3"
#: Master seeds of a smoke reference (the notebook's default seed and the next ones).
REFERENCE_SEEDS = 5
#: The file in a notebook's results folder its run engine reports progress to while it runs (removed after).
PROGRESS_FILE = "progress.txt"
#: The kernel's own log above warnings only: its warning that a local kernel talks over unencrypted TCP, once per
#: notebook, says nothing about the notebook.
KERNEL_QUIET = ("--IPKernelApp.log_level=ERROR",)


@dataclass(frozen=True)
class NotebookResult:
    """Outcome of one notebook run."""

    notebook: str
    ok: bool
    minutes: float
    error: str = ""

    def line(self) -> str:
        status = "ok    " if self.ok else "FAILED"
        tail = f"  {self.error}" if self.error else ""
        return f"{status} {self.notebook:<28} {self.minutes:6.2f} min{tail}"


def sync_pair(notebook: str) -> Path:
    """Bring ``notebooks/<notebook>.ipynb`` in line with its source ``.py`` (inputs from the ``.py``,
    stored outputs kept where cells are unchanged). Returns the ``.ipynb`` path."""
    import jupytext

    source = NOTEBOOK_DIR / f"{notebook}.py"
    target = source.with_suffix(".ipynb")
    text_nb = jupytext.read(source)
    if target.exists():
        from jupytext.combine import combine_inputs_with_outputs

        stored = jupytext.read(target)
        if _inputs(stored) == _inputs(text_nb):
            return target
        text_nb = combine_inputs_with_outputs(text_nb, stored)
    jupytext.write(text_nb, target)
    return target


def _inputs(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def _first_error_line(err: BaseException) -> str:
    name = getattr(err, "ename", type(err).__name__)
    value = str(getattr(err, "evalue", err)).strip().splitlines()
    return f"{name}: {value[0] if value else ''}"[:200]


@contextlib.contextmanager
def _env_var(name: str, value: str | None):
    """Environment variable ``name`` set to ``value`` (None: left as it is) for the duration (the kernel
    inherits it), restored afterwards."""
    previous = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@contextlib.contextmanager
def _echo_progress(path: Path, every_s: float = 2.0):
    """For the duration, print each new line the running notebook's engine writes to ``path``
    (:mod:`r2mae_core.progress`) to this terminal, indented under the notebook's own line."""
    from tqdm.auto import tqdm

    stop = threading.Event()

    def watch() -> None:
        last = ""
        while not stop.wait(every_s):
            try:
                line = path.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if line and line != last:
                tqdm.write(f"      {line}")  # above papermill's cell bar, which tqdm then redraws
                last = line

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _replay_env(value: str | None):
    """``R2MAE_REPLAY`` set to ``value`` (None: left as it is) for the duration."""
    return _env_var("R2MAE_REPLAY", value)


def _this_checkout():
    """The repository root first on ``PYTHONPATH`` for the duration: the kernel (which inherits the environment)
    imports this checkout's ``r2mae_core``, even where another checkout is installed in the same environment
    (an editable install's finder comes after the path entries)."""
    previous = os.environ.get("PYTHONPATH")
    return _env_var("PYTHONPATH", os.pathsep.join([str(REPO_ROOT), *([previous] if previous else [])]))


def _replay_only(profile: str) -> bool:
    """At ``full`` on a machine without CUDA the notebooks replay the ledger (``R2MAE_REPLAY=1``: the engine
    trains nothing, :func:`r2mae_core.runs.execute`), unless ``R2MAE_REPLAY`` is set already."""
    import torch

    return profile == "full" and "R2MAE_REPLAY" not in os.environ and not torch.cuda.is_available()


@contextlib.contextmanager
def notebook_lock(notebook: str, profile: str):
    """Hold the exclusive lock of ``notebook`` at ``profile`` (``results/<profile>/.<notebook>.lock``) for the
    duration; the lock file names its holder. The lock is the operating system's (``flock``): it ends with the
    process that holds it, so a killed run never leaves a stale lock.

    Raises
    ------
    NotebookBusy
        Another process holds it (one line naming the holder).
    OSError
        The results folder cannot be written.
    """
    import fcntl

    root = results_root() / profile
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".{notebook}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise NotebookBusy(f"{notebook} at profile {profile} is being run by {holder}: wait for it to "
                               "finish or stop it; its results folder was left alone") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def run_notebook(notebook: str, profile: str) -> NotebookResult:
    """Execute one notebook at ``profile`` (see the module docstring for the steps)."""
    start = time.monotonic()
    try:
        parameters = load_profile_parameters(profile, notebook)
        read_parameters(notebook)  # a malformed parameters cell fails here, before any output is touched
        ipynb = sync_pair(notebook)
    except (ParameterError, ValueError) as err:
        return NotebookResult(notebook, False, 0.0, str(err))
    try:
        with notebook_lock(notebook, profile):
            return _execute(notebook, profile, ipynb, parameters, start)
    except (NotebookBusy, ValueError) as err:  # ValueError: a results folder variable that names a file
        return NotebookResult(notebook, False, 0.0, str(err))
    except OSError as err:
        return NotebookResult(notebook, False, 0.0, f"results folder {results_root() / profile} is not writable: "
                              f"{err.strerror or err}")


def _execute(notebook: str, profile: str, ipynb: Path, parameters: dict, start: float) -> NotebookResult:
    """Steps 4-5 of the module docstring, under the notebook's lock."""
    import papermill

    out_dir = results_root() / profile / notebook
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / INCOMPLETE).write_text(f"started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    partial = out_dir / f"{notebook}.partial.ipynb"
    progress_file = out_dir / PROGRESS_FILE
    try:
        with (_replay_env("1" if _replay_only(profile) else None), _this_checkout(),
              _env_var(progress.ENV_VAR, str(progress_file)), _echo_progress(progress_file)):
            papermill.execute_notebook(str(ipynb), str(partial), parameters={**parameters, "profile": profile},
                                       cwd=str(NOTEBOOK_DIR), kernel_name=KERNEL, progress_bar=True,
                                       log_output=False, execution_timeout=CELL_TIMEOUT_S[profile],
                                       extra_arguments=list(KERNEL_QUIET))  # a copy: nbclient appends to it
    except Exception as err:  # noqa: BLE001 - any failure of a notebook is reported, and the next one runs
        return NotebookResult(notebook, False, (time.monotonic() - start) / 60,
                              f"{_first_error_line(err)} (traceback in {partial})")
    finally:
        progress_file.unlink(missing_ok=True)
    partial.replace(out_dir / f"{notebook}.ipynb")
    (out_dir / INCOMPLETE).unlink()
    return NotebookResult(notebook, True, (time.monotonic() - start) / 60)


def run_notebooks(notebooks: list[str], profile: str) -> list[NotebookResult]:
    """Run ``notebooks`` in order at ``profile``, printing progress; every one runs even if one fails."""
    results = []
    for i, notebook in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {notebook} at profile {profile} ...", flush=True)
        result = run_notebook(notebook, profile)
        print(f"[{i}/{len(notebooks)}] {result.line()}", flush=True)
        results.append(result)
    return results


def reference_runs(notebook: str, seeds: list[int]) -> list[dict]:
    """The key numbers (``metrics.json``) of ``notebook`` at smoke scale under each master seed in ``seeds``."""
    import papermill

    ipynb = sync_pair(notebook)
    metrics = results_root() / "smoke" / notebook / "metrics.json"
    runs = []
    with tempfile.TemporaryDirectory() as tmp, _this_checkout():
        for seed in seeds:
            metrics.unlink(missing_ok=True)
            papermill.execute_notebook(str(ipynb), str(Path(tmp) / f"seed{seed}.ipynb"),
                                       parameters={"seed": seed, "profile": "smoke"}, cwd=str(NOTEBOOK_DIR),
                                       kernel_name=KERNEL, progress_bar=False, log_output=False)
            runs.append(json.loads(metrics.read_text(encoding="utf-8")))
    return runs


def strip_machine_outputs(nb) -> None:
    """Drop what depends on the machine or the clock from executed cells: stderr streams (progress bars,
    warnings with library paths) and execution timings."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]


def pair_notebook(notebook: str, timeout: int = 900, n_seeds: int = REFERENCE_SEEDS) -> Path:
    """Write the smoke reference of ``notebook``, then re-execute ``notebooks/<notebook>.ipynb`` in place.

    The reference holds the key numbers of ``n_seeds`` master seeds (the default one first) and a tolerance for
    each (:mod:`r2mae_core.reference`); the stored outputs of cells tagged ``nbval-check-output`` are what
    ``pytest --nbval-lax`` compares. Machine- and clock-dependent outputs are dropped
    (:func:`strip_machine_outputs`) so that a re-run with the same numbers gives the same file.
    """
    import nbformat
    from nbclient import NotebookClient

    first = int(read_parameters(notebook)["seed"].default)
    seeds = list(range(first, first + n_seeds))
    reference.write_reference(reference.build_reference(notebook, reference_runs(notebook, seeds), seeds))
    ipynb = sync_pair(notebook)
    nb = nbformat.read(ipynb, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name=KERNEL,
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    strip_machine_outputs(nb)
    nbformat.write(nb, ipynb)
    return ipynb


def _resolve(names: list[str]) -> list[str]:
    if not names:
        found = notebook_names()
        if not found:
            raise ValueError("no notebooks found under notebooks/ (expected NN_slug.py files)")
        return found
    return [check_notebook(n) for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r2mae_core.pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks at a profile into results/<profile>/")
    p_run.add_argument("--profile", default="quick", help="smoke | quick | full (default quick)")
    p_run.add_argument("notebooks", nargs="*", help="NN_slug names (default: all)")
    p_pair = sub.add_parser("pair", help="write the smoke references and re-execute the committed "
                                         "notebooks/*.ipynb in place at smoke scale")
    p_pair.add_argument("--seeds", type=int, default=REFERENCE_SEEDS,
                        help=f"master seeds of each reference (default {REFERENCE_SEEDS}, at least 2)")
    p_pair.add_argument("notebooks", nargs="*")
    sub.add_parser("check", help="validate every profile YAML against its notebook's parameters")
    sub.add_parser("list", help="list the notebooks")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            print("\n".join(notebook_names()))
            return 0
        if args.command == "check":
            for notebook in _resolve([]):
                read_parameters(notebook)
                for profile in PROFILES:
                    load_profile_parameters(profile, notebook)
            print(f"parameters ok for {len(notebook_names())} notebooks x {len(PROFILES)} profiles")
            return 0
        if args.command == "pair":
            if args.seeds < 2:
                raise ValueError(f"--seeds={args.seeds} is not allowed: a tolerance needs at least 2 seeds")
            for notebook in _resolve(args.notebooks):
                start = time.monotonic()
                pair_notebook(notebook, n_seeds=args.seeds)
                print(f"paired {notebook} ({(time.monotonic() - start) / 60:.2f} min)", flush=True)
            return 0
        profile = check_profile(args.profile)
        notebooks = _resolve(args.notebooks)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    results = run_notebooks(notebooks, profile)
    print(f"\nsummary (profile {profile}):")
    for result in results:
        print("  " + result.line())
    failed = [r.notebook for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} notebooks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
