"""The GPU route: a section's profile split into shards, each run headlessly on a borrowed GPU, its finished runs
brought back as one archive of data-only results and committed to the ledger.

A GPU is lent now and then, for minutes, with no package registry, no papermill and another torch than this
machine's. So the GPU machine runs the engine only (:func:`r2mae_core.runs.execute` over one shard of a section's
plan) and the notebooks replay on the CPU from the results:

1. ``python -m r2mae_core.campaign run NB i/n OUT`` plans the section's profile (``full`` unless told), trains and
   evaluates the runs of shard ``i`` of ``n`` (whole ensemble groups, :func:`shard_groups`) that the ledger does
   not hold yet, group by group, and after each group appends the group's results to ``OUT/NB-iofn.tar``, with
   the command's log (:mod:`r2mae_core.shard_log`: device, versions, matmul peak measured at the start,
   each group's wall time and achieved training FLOP/s), in one atomic write per group: a command killed at its
   time limit still brings back every finished group and what it measured, and a group that raises is logged
   while the shard goes on with the next.
2. ``python -m r2mae_core.campaign unpack OUT ...`` checks every result of the archives against this machine's
   plan of the same section and profile (an entry that is not a run of that plan is refused: the source or the
   data differ) and against the corpus built here (each record carries the digest of the corpus it was trained
   and evaluated on: a tokenizer that trains otherwise on the GPU image is caught here), completes it where the
   section finishes its runs here (``ledger_record``: 05 scores the embeddings with scanpy, which the GPU
   image lacks), and writes it to the ledger, ``results/full/runs/<namespace>/<key>.npz``
   (:func:`r2mae_core.runs.ledger_path`), which is committed, with the command's log in
   ``results/full/runs/_shards/`` (the README's table of where the full numbers came from).
3. ``python -m r2mae_core.campaign next`` names the first shard with runs missing from the ledger; ``status``
   counts them per section; ``estimate NB`` prints each shard's estimated H200 minutes
   (:mod:`r2mae_core.shard_time`); ``carry NB`` lists the prepared datasets a shard needs on the GPU machine (the
   ignored paths to carry with the working tree, checked against the 64 MiB / 8 paths a command may carry).
   When none is missing, ``./build.sh run --profile full`` executes the notebooks on the CPU: the engine finds
   every run in the ledger and trains nothing (``R2MAE_REPLAY=1``: a missing run is an error, not a training).

Why the engine and not papermill on the GPU: the GPU image has no papermill, jupyter or scanpy, a notebook is
not resumable within a 10-minute command, and its figures need no GPU; the engine's records are small, data-only
and keyed by what they compute, so they travel and resume.

``--dry-run`` executes a shard of the profile's plan on the CPU with two steps and small data
(``DRY_RUN`` of the section): every method, size and seed of the profile and every code path of training and
evaluation, so that a config, shape or key error shows here first; ``--dry-run --paths`` runs one run per
distinct code path of the whole plan (:func:`code_paths`, minutes: the tests run it for every section). Its
results never enter the ledger.

``rehearse NB i/n OUT`` is that dry run as the GPU machine would run it (:func:`rehearse`): in a fresh process
whose data folder holds only the paths the command carries, with the packages the GPU image lacks refused
(:mod:`r2mae_core.gpu_image`), so that a missing carry path or an import of scanpy or jupytext on the shard's
path shows here and not after a GPU machine has started.

``pack NB i/n`` prints what one GPU command of a shard needs: the paths to carry, the command, the shard's
estimate and a time limit with room for it.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import torch

from . import runs, shard_log
from .fingerprint import fingerprint_of
from .io import atomic_write_text, partial_path
from .notebook_params import load_profile_parameters, read_parameters
from .paths import REPO_ROOT, data_root, ledger_root
from .records import RecordError, load_record, save_record
from .runs import Options, RunSpec, execute, groups, ledger_path, parse_shard, result_path
from .shard_time import member_flops

__all__ = ["SECTIONS", "CARRY_LIMIT_BYTES", "CARRY_LIMIT_PATHS", "SHARD_TIMEOUT_S", "Section", "section",
           "shard_groups", "shard_runs", "code_paths", "carry", "rehearse", "pack", "estimate_lines",
           "measured_eval_seconds", "run_shard", "append_entries", "failed_groups", "unpack", "missing",
           "next_shard", "main"]

#: What a GPU command may carry beside the tracked files: at most 64 MiB in at most 8 paths.
CARRY_LIMIT_BYTES, CARRY_LIMIT_PATHS = 64 * 2**20, 8

#: The longest time limit ``pack`` gives one shard's command: a loan is 900 s of device time, start-up included,
#: so a shard stopped at 540 s still leaves time for a second call on the warm machine (a rerun, or part of the
#: next shard); a stopped shard loses no finished group.
SHARD_TIMEOUT_S = 540

#: The sections whose every run goes through the engine: their shard counts at ``full`` and the most runs trained
#: as one ensemble. Small models are bound by the step floor (on one H200, 32 ViT-S members step in 23.7 ms
#: against 27.2 ms for 8), so their groups are as large as a section's runs of one architecture: 96 for the image
#: models and 128 for 05's gene models (each member's activations are tens of MB at batch 256). The text
#: encoders hold far more activations per member (at 03's size M about 0.5 GB at 128 sequences of 128 tokens,
#: at 04's 256 nucleotides about 2.3 GB): 48 members keep a group under 30 GB at 03 and 04's sizes S and M, so a
#: group fits an H100 as well as an H200.
SECTIONS: dict[str, dict[str, Any]] = {
    "02_vision": {"module": "r2mae_core.experiments.vision", "shards": 2, "group_size": 96},
    "03_language": {"module": "r2mae_core.experiments.language", "shards": 1, "group_size": 48},
    "04_dna": {"module": "r2mae_core.experiments.dna", "shards": 1, "group_size": 48},
    "05_single_cell": {"module": "r2mae_core.experiments.single_cell", "shards": 1, "group_size": 128},
    "06_spectral_clustering": {"module": "r2mae_core.experiments.spectral_clustering", "shards": 1,
                               "group_size": 96},
}


@dataclass(frozen=True)
class Section:
    """One section at one profile: its experiment module, config and plan."""

    notebook: str
    profile: str
    module: ModuleType
    config: Any
    plan: list[RunSpec]
    data_checksum: str


def _check_notebook(notebook: str) -> str:
    if notebook not in SECTIONS:
        raise ValueError(f"notebook={notebook!r} is not allowed: the campaign runs {sorted(SECTIONS)}")
    return notebook


def section(notebook: str, profile: str = "full", *, dry_run: bool = False) -> Section:
    """The section's config as its notebook builds it at ``profile`` (the parameters cell's defaults, the
    profile's YAML over them; with ``dry_run`` the module's ``DRY_RUN`` over those: a value, or a function of
    the profile's value) and its plan."""
    module = importlib.import_module(SECTIONS[_check_notebook(notebook)]["module"])
    params = {name: p.default for name, p in read_parameters(notebook).items()}
    params.update(load_profile_parameters(profile, notebook))
    if dry_run:
        params.update({k: v(params[k]) if callable(v) else v for k, v in module.DRY_RUN.items()})
    names = {f.name for f in fields(module.Config)}
    config = module.Config(**{k: v for k, v in params.items() if k in names})
    plan = getattr(module, "campaign_plan", module.plan)(config)  # a section may keep CPU-only runs here
    return Section(notebook, profile, module, config, plan, module.data_checksum(config))


def shard_groups(sec: Section, n: int) -> list[list[list[RunSpec]]]:
    """The section's plan in ``n`` shards of whole ensemble groups.

    The distinct runs are grouped as the engine trains them (:func:`r2mae_core.runs.groups` with the section's
    ``group_size``), so a shard never splits an architecture's runs into small ensembles that each pay the full
    number of steps; the groups are dealt to the shards longest first, each to the shard with the least
    estimated seconds so far (steps × the ensemble step floor + compilation + each run's estimated evaluation,
    :mod:`r2mae_core.shard_time`; ties to the lower shard). A fixed partition: it depends on the plan only.
    """
    from .shard_time import H200, eval_seconds

    unique = runs.shard_runs(sec.plan, (0, 1))
    chunks = groups(unique, SECTIONS[sec.notebook]["group_size"])

    def cost(group: list[RunSpec]) -> float:
        steps = 0 if group[0].train is None else group[0].train.steps
        return (steps * H200.floor_ensemble_s + (H200.compile_s if steps else 0.0)
                + sum(eval_seconds(sec.notebook, spec) for spec in group))

    shards: list[list[list[RunSpec]]] = [[] for _ in range(n)]
    load = [0.0] * n
    for j in sorted(range(len(chunks)), key=lambda j: (-cost(chunks[j]), j)):
        i = min(range(n), key=lambda i: (load[i], i))
        shards[i].append(chunks[j])
        load[i] += cost(chunks[j])
    return shards


def shard_runs(sec: Section, shard: tuple[int, int]) -> list[RunSpec]:
    """The distinct runs of ``shard = (i, n)`` of the section's plan: the runs of the groups of shard ``i`` of
    :func:`shard_groups` (``(0, 1)``: the whole plan)."""
    i, n = shard
    return [spec for group in shard_groups(sec, n)[i] for spec in group]


def code_paths(plan: list[RunSpec]) -> list[RunSpec]:
    """One run per distinct code path of ``plan``: runs that differ only in their seeds (any field named ``*seed``)
    or in the numbers of their ratio sampler (a ratio, an interval's ends) take the same path through training
    and evaluation; the first of each kind is kept. The model, schedule, data, evaluation, analyses, sampler kind
    and options (per batch or per sample, a schedule's shape), U-MAE on or off and mask options tell paths
    apart."""
    seen: dict[str, RunSpec] = {}
    for spec in plan:
        ident = _without_seeds(spec.identity())
        method = ident["method"]
        sampler = method["sampler"]
        if sampler is not None:
            method["sampler"] = {k: v for k, v in sampler.items() if isinstance(v, str | bool)}
        method["uniformity_weight"] = method["uniformity_weight"] > 0
        seen.setdefault(repr(ident), spec)
    return list(seen.values())


def _without_seeds(value):
    """``value`` with every mapping entry whose key ends in ``seed`` left out, at any depth."""
    if isinstance(value, dict):
        return {k: _without_seeds(v) for k, v in value.items() if not str(k).endswith("seed")}
    if isinstance(value, list):
        return [_without_seeds(v) for v in value]
    return value


def missing(sec: Section, shard: tuple[int, int] | None = None) -> list[RunSpec]:
    """The runs (of ``shard``, or of the whole plan) that the ledger does not hold."""
    return _not_in_ledger(sec, shard_runs(sec, shard or (0, 1)))


def _not_in_ledger(sec: Section, specs: list[RunSpec]) -> list[RunSpec]:
    return [spec for spec in specs if not ledger_path(spec, sec.data_checksum).exists()]


def _missing_per_shard(sec: Section) -> list[list[RunSpec]]:
    """:func:`missing` of every shard of the section's ``full`` count (the partition computed once)."""
    return [_not_in_ledger(sec, [spec for group in part for spec in group])
            for part in shard_groups(sec, SECTIONS[sec.notebook]["shards"])]


def carry(notebook: str, profile: str = "full") -> tuple[list[str], int]:
    """The ignored paths a shard of ``notebook`` needs on the GPU machine (its prepared datasets, ``data/<name>``,
    or what the section's ``carry_paths(config)`` prepares and names, relative to the repository) and their
    total size in bytes.

    Raises
    ------
    ValueError
        A dataset that is not prepared here (run ``./build.sh data`` first), prepared outside the checkout
        (``R2MAE_DATA_DIR`` elsewhere: the GPU machine gets only paths inside it), or more than
        :data:`CARRY_LIMIT_PATHS` paths or :data:`CARRY_LIMIT_BYTES` bytes.
    """
    return _carry(section(notebook, profile))


def _carry(sec: Section) -> tuple[list[str], int]:
    from .data import registry

    notebook = sec.notebook
    for name in sec.module.data_names(sec.config):
        if not registry.manifest_path(name).exists():
            raise ValueError(f"dataset {name!r} is not prepared in {registry.cache_dir(name)}: run ./build.sh data "
                             f"{name} first")
    folders = (sec.module.carry_paths(sec.config) if hasattr(sec.module, "carry_paths")
               else [registry.cache_dir(name) for name in sec.module.data_names(sec.config)])
    paths, total = [], 0
    for folder in folders:
        if not folder.is_relative_to(REPO_ROOT):
            raise ValueError(f"R2MAE_DATA_DIR={os.environ.get('R2MAE_DATA_DIR', '')!r} is not allowed for a GPU "
                             f"shard: {folder} is outside the checkout {REPO_ROOT}, and a GPU command carries only "
                             "paths inside it; unset it (the checkout's data/) or point it inside the checkout")
        paths.append(str(folder.relative_to(REPO_ROOT)))
        total += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    if len(paths) > CARRY_LIMIT_PATHS or total > CARRY_LIMIT_BYTES:
        raise ValueError(f"{notebook} needs {len(paths)} paths of {total / 2**20:.1f} MiB: a GPU command carries "
                         f"at most {CARRY_LIMIT_PATHS} paths of {CARRY_LIMIT_BYTES / 2**20:.0f} MiB")
    return paths, total


def rehearse(notebook: str, shard: tuple[int, int], out: Path, *, profile: str = "full", paths: bool = False,
             group_size: int | None = None, python: str | None = None) -> Path:
    """The shard's dry run (:func:`run_shard` with ``dry_run``) as the GPU machine would run it, and its archive.

    A new Python process runs ``python -m r2mae_core.gpu_image -m r2mae_core.campaign run NB i/n OUT --dry-run``
    (the packages of :data:`r2mae_core.gpu_image.ABSENT` refused) with ``R2MAE_DATA_DIR`` a temporary folder that
    holds only links to the paths :func:`carry` names for the dry run's config and ``R2MAE_CACHE_DIR`` an empty
    one: the GPU machine gets the tracked files, the carried paths and nothing this machine prepared or cached.

    ``python`` is the interpreter of the new process (default: this one); one with the GPU image's torch (a
    virtual environment of ``torch==2.11.0`` and the packages the image holds) imitates the machine more closely.
    The process prints to this one's standard output and error.

    Raises
    ------
    ValueError
        A carried path outside the data folder, or a rehearsal that exits with a non-zero status.
    """
    carried, _ = _carry(section(notebook, profile, dry_run=True))
    data = data_root()
    out = Path(out).resolve()
    with tempfile.TemporaryDirectory(prefix="r2mae-rehearsal-") as tmp:
        root = Path(tmp) / "data"
        for rel in carried:
            folder = (REPO_ROOT / rel).resolve()
            if not folder.is_relative_to(data):
                raise ValueError(f"carry path {rel!r} is not allowed in a rehearsal: it is outside the data folder "
                                 f"{data}, where the GPU machine's code looks for data")
            link = root / folder.relative_to(data)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(folder, target_is_directory=True)
        (Path(tmp) / "cache").mkdir()
        env = {**os.environ, "R2MAE_DATA_DIR": str(root), "R2MAE_CACHE_DIR": str(Path(tmp) / "cache"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        env.pop("R2MAE_SOURCES_DIR", None)
        cmd = [python or sys.executable, "-m", "r2mae_core.gpu_image", "-m", "r2mae_core.campaign", "run", notebook,
               f"{shard[0]}/{shard[1]}", str(out), "--dry-run", "--profile", profile,
               *(["--paths"] if paths else []), *(["--group-size", str(group_size)] if group_size else [])]
        status = subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode
    if status != 0:
        raise ValueError(f"the rehearsal of {notebook} {shard[0]}/{shard[1]} exited with status {status} (its "
                         "output is above)")
    return out / _archive_name(notebook, shard)


def _archive_name(notebook: str, shard: tuple[int, int]) -> str:
    return f"{notebook}-{shard[0]}of{shard[1]}.tar"


def _work(sec: Section):
    """The engine's work function of a section on the GPU route (``campaign_work`` where the module has one)."""
    return getattr(sec.module, "campaign_work", sec.module.work)


def _result_entries(sec: Section, group: list[RunSpec]) -> list[tuple[str, bytes]]:
    """The stored results of ``group`` as ``<namespace>/<ledger key>.npz`` entries, each with a manifest entry
    (its label, identity and the fingerprint of the code that made it)."""
    code = fingerprint_of(_work(sec))
    entries = []
    for spec in group:
        name = f"{spec.namespace}/{ledger_path(spec, sec.data_checksum).name}"
        doc = json.dumps({"label": spec.label(), "identity": spec.identity(), "code": code}, sort_keys=True)
        entries += [(name, result_path(spec, sec.data_checksum, code=code).read_bytes()),
                    (name.removesuffix(".npz") + ".json", doc.encode())]
    return entries


def append_entries(archive: Path, entries: list[tuple[str, bytes]]) -> None:
    """Append ``(name, data)`` entries to ``archive`` atomically: a copy with them appended replaces it, so a
    command killed while writing leaves the archive as it was after the previous write, never cut off."""
    partial = partial_path(archive)
    try:
        if archive.exists():
            shutil.copyfile(archive, partial)
        with tarfile.open(partial, "a") as tar:
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), int(time.time())
                tar.addfile(info, io.BytesIO(data))
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)


def run_shard(notebook: str, shard: tuple[int, int], out: Path, *, profile: str = "full", device: str = "cuda",
              group_size: int | None = None, compile: bool = False, dry_run: bool = False, progress: bool = True,
              scratch: Path | None = None, paths: bool = False) -> Path:
    """Run one shard of a section's plan (module docstring, step 1) and return its archive.

    The runs the ledger already holds are skipped. The engine's cache (records and checkpoints) is ``scratch``
    (None: a temporary folder, removed at the end), never under ``out``: only the archive comes back. A
    ``scratch`` kept between two commands on one machine lets the second resume the first's checkpoints. With
    ``dry_run`` the device is the CPU and the section's ``DRY_RUN`` applies; with ``paths`` (dry runs only) the
    shard's runs are :func:`code_paths` of the whole plan instead. A group that raises on the GPU is recorded in
    the log (:func:`failed_groups`) and the shard goes on with the next group, so one failing code path does
    not cost the others their GPU time; a dry run raises at once.
    """
    began = time.time()
    if paths and not dry_run:
        raise ValueError("paths=True is not allowed without dry_run: it leaves runs of the plan out")
    sec = section(notebook, profile, dry_run=dry_run)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / _archive_name(notebook, shard)
    todo = code_paths(sec.plan) if paths else missing(sec, shard)
    group_size = group_size or SECTIONS[notebook]["group_size"]
    options = Options(device="cpu" if dry_run else device, compile=compile,
                      threads=getattr(sec.config, "threads", 0), progress=False)
    if options.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} is not allowed here: torch sees no CUDA device; use --device cpu, or "
                         "--dry-run for the CPU check of the shard's code paths")
    log = shard_log.start(notebook, shard, profile, options.device, compile, began)
    append_entries(archive, [shard_log.entry(log)])  # nothing missing: an archive with the log alone says so
    flops: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="r2mae-campaign-") as tmp:
        cache = Path(scratch) if scratch is not None else Path(tmp)
        with mock.patch.dict(os.environ, {"R2MAE_CACHE_DIR": str(cache)}):
            for k, group in enumerate(groups(todo, group_size)):
                row = _run_group(sec, group, archive, log, options=options, group_size=group_size, flops=flops,
                                 raise_errors=dry_run)
                if progress:
                    print(f"{notebook} shard {shard[0]}/{shard[1]}: group {k + 1} ({len(group)} runs, "
                          f"{group[0].label()}) {_outcome(row, log)}", flush=True)
    return archive


def _run_group(sec: Section, group: list[RunSpec], archive: Path, log: dict, *, options: Options, group_size: int,
               flops: dict[str, float], raise_errors: bool) -> dict:
    """Train and evaluate one group and append its results with the log and the group's row to ``archive`` in
    one write; return the row (:func:`r2mae_core.shard_log.group_row`, or the group's label, runs, wall time and
    ``error``)."""
    t0 = time.perf_counter()
    entries = []
    try:
        results = execute(group, _work(sec), options=options, group_size=group_size,
                          data_checksum=sec.data_checksum, progress=False)
    except Exception as err:  # noqa: BLE001 - recorded; the shard's other groups go on
        if raise_errors:
            raise
        row = {"label": group[0].label(), "runs": len(group), "wall_s": round(time.perf_counter() - t0, 3),
               "error": repr(err)[:400]}
    else:
        wall = time.perf_counter() - t0
        entries = _result_entries(sec, group)
        row = shard_log.group_row(group, results, wall, member_flops(group[0], flops), log["peak"])
    log["groups"].append(row)
    append_entries(archive, [*entries, shard_log.entry(log)])
    return row


def _outcome(row: dict, log: dict) -> str:
    if "error" in row:
        return f"FAILED after {row['wall_s']:.1f} s: {row['error']}"
    rate = "" if row["frac_peak"] is None else f", {100 * row['frac_peak']:.1f}% of the {log['peak_dtype']} matmul peak"
    return f"in {row['wall_s']:.1f} s{rate}"


def failed_groups(archive: Path) -> list[dict]:
    """The log rows of the groups of ``archive`` that raised (label, runs, wall time, ``error``)."""
    with tarfile.open(archive) as tar:
        log = shard_log.read(tar)
    return [] if log is None else [row for row in log["groups"] if "error" in row]


def unpack(archives: list[Path], *, profile: str = "full") -> dict[str, int]:
    """Check every result of ``archives`` against this machine's plan of its section and write it to the
    ledger (module docstring, step 2), and the command's log (:mod:`r2mae_core.shard_log`: device, peak, time
    and rate per group) beside it. Returns the number of results written per notebook.

    Raises
    ------
    ValueError
        An archive whose name is not ``NB-iofn.tar`` of a campaign section, that is missing or is not a tar
        archive, an entry that is not a run of that section's plan at ``profile``, a result that does not read as
        a record or that was made from other data. Nothing of that archive is written then.
    """
    written: dict[str, int] = {}
    for archive in map(Path, archives):
        notebook, _, rest = archive.name.rpartition("-")
        if notebook not in SECTIONS or not rest.endswith(".tar"):
            raise ValueError(f"archive {archive.name!r} is not allowed: use the NB-iofn.tar that 'run' wrote "
                             f"for one of {sorted(SECTIONS)}")
        if not archive.is_file() or not tarfile.is_tarfile(archive):
            what = "not a readable tar archive" if archive.is_file() else "missing"
            raise ValueError(f"archive {str(archive)!r} is not allowed: it is {what}; use the NB-iofn.tar that "
                             "'run' wrote")
        sec = section(notebook, profile)
        expected = {f"{s.namespace}/{ledger_path(s, sec.data_checksum).name}": s for s in sec.plan}
        with tarfile.open(archive) as tar, tempfile.TemporaryDirectory() as tmp:
            try:
                log = shard_log.read(tar)
            except ValueError as err:
                raise ValueError(f"{archive.name}: {err}") from None
            entries = [m for m in tar.getmembers() if m.name.endswith(".npz")]
            checked = []
            for member in entries:
                if member.name not in expected:
                    raise ValueError(f"{archive.name}: {member.name} is not a run of {notebook}'s {profile} plan "
                                     "here: the source or the data differ from the machine that made it")
                path = Path(tmp) / member.name.replace("/", "_")
                path.write_bytes(tar.extractfile(member).read())
                try:
                    result = load_record(path)
                except RecordError as err:
                    raise ValueError(f"{archive.name}: {member.name} does not read as a result: {err}") from None
                checked.append((expected[member.name], result, member.name, _manifest(tar, member.name)))
            memo: dict = {}
            for spec, result, name, _ in checked:
                local = _data_digest(sec, spec, memo)
                if result.get("data_digest") != local:
                    raise ValueError(f"{archive.name}: {name} was made from other data (corpus digest "
                                     f"{result.get('data_digest')!r}, here {local!r}): the data or a library that "
                                     "builds it differ")
        finish = getattr(sec.module, "ledger_record", None)
        for spec, result, _, manifest in checked:
            ledger = ledger_path(spec, sec.data_checksum)
            save_record(ledger, result if finish is None else finish(sec.config, spec, result))
            atomic_write_text(ledger.with_suffix(".json"),
                              json.dumps({**manifest, "archive": archive.name}, indent=1, sort_keys=True) + "\n")
        if log is not None:
            shard_log.save(log, archive.name, len(checked))
        written[notebook] = written.get(notebook, 0) + len(checked)
    return written


def _manifest(tar: tarfile.TarFile, name: str) -> dict:
    """The manifest entry beside result ``name`` in ``tar`` (label, identity, code), ``{}`` if it has none."""
    try:
        member = tar.getmember(name.removesuffix(".npz") + ".json")
        return json.loads(tar.extractfile(member).read())
    except (KeyError, ValueError, AttributeError):
        return {}


def _data_digest(sec: Section, spec: RunSpec, memo: dict) -> str:
    """The digest this machine computes of the data ``spec`` reads: the section's per-run ``spec_data_digest``
    where its runs read different data, else its ``data_digest(config)`` (computed once per ``memo``)."""
    if hasattr(sec.module, "spec_data_digest"):
        return sec.module.spec_data_digest(spec)
    if "config" not in memo:
        memo["config"] = sec.module.data_digest(sec.config)
    return memo["config"]


def next_shard(profile: str = "full") -> tuple[str, tuple[int, int], int] | None:
    """The first (notebook, shard, runs missing) with runs missing from the ledger, in section order."""
    for notebook, info in SECTIONS.items():
        for i, left in enumerate(_missing_per_shard(section(notebook, profile))):
            if left:
                return notebook, (i, info["shards"]), len(left)
    return None


def estimate_lines(notebook: str, profile: str = "full") -> list[str]:
    """One line per shard of ``notebook`` (its runs still missing from the ledger) and a total: runs, groups and
    estimated minutes of training (FLOPs and measured H200 rates), evaluation and start-up (allowances)."""
    from .shard_time import estimate

    sec = section(notebook, profile)
    n = SECTIONS[notebook]["shards"]
    measured = measured_eval_seconds(sec)
    found = [estimate(notebook, left, SECTIONS[notebook]["group_size"], eval_s=measured)
             for left in _missing_per_shard(sec)]
    lines = [f"{notebook} {i}/{n}: {e.runs} runs in {e.groups} groups, {e.total / 60:.1f} min (training "
             f"{e.train / 60:.1f}, evaluation {e.evaluation / 60:.1f}, start {e.start / 60:.1f})"
             for i, e in enumerate(found)]
    total = sum(e.total for e in found)
    lines.append(f"{notebook}: {sum(e.runs for e in found)} runs, {total / 60:.1f} min in all, longest shard "
                 f"{max(e.total for e in found) / 60:.1f} min; evaluation "
                 + ("estimated from allowances (no run in the ledger yet)" if measured is None else
                    f"{measured:.1f} s per run as measured on the GPU"))
    return lines


def pack(notebook: str, shard: tuple[int, int], profile: str = "full") -> dict:
    """What one GPU command of ``shard`` needs: ``carry`` (the ignored paths, :func:`carry`) and their ``mib``,
    ``command`` (run in the repository root with the output folder in ``$OUT``), ``estimate_s`` of the runs
    still missing and ``timeout_s``: the estimate with half again as much room, at most :data:`SHARD_TIMEOUT_S`
    (a command stopped at its limit still returns its finished groups)."""
    from .shard_time import estimate

    sec = section(notebook, profile)
    paths, total = _carry(sec)
    measured = measured_eval_seconds(sec)
    found = estimate(notebook, missing(sec, shard), SECTIONS[notebook]["group_size"], eval_s=measured)
    flags = "" if profile == "full" else f" --profile {profile}"
    return {"carry": paths, "mib": round(total / 2**20, 1),
            "command": (f"PYTHONPATH=$PWD python3 -m r2mae_core.campaign run {notebook} {shard[0]}/{shard[1]} $OUT "
                        f"--compile{flags}"),
            "runs": found.runs, "estimate_s": round(found.total),
            "timeout_s": min(SHARD_TIMEOUT_S, round(1.5 * found.total))}


def measured_eval_seconds(sec: Section) -> float | None:
    """Mean ``eval_seconds`` of the section's runs in the ledger (made on the GPU), None if it holds none."""
    seconds = []
    for spec in runs.shard_runs(sec.plan, (0, 1)):
        path = ledger_path(spec, sec.data_checksum)
        if path.exists():
            value = load_record(path).get("eval_seconds")
            if value is not None:
                seconds.append(float(value))
    return sum(seconds) / len(seconds) if seconds else None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m r2mae_core.campaign", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one shard into OUT/NB-iofn.tar")
    run.add_argument("notebook")
    run.add_argument("shard", help="i/n")
    run.add_argument("out", type=Path)
    run.add_argument("--profile", default="full")
    run.add_argument("--device", default="cuda")
    run.add_argument("--group-size", type=int, default=None,
                     help="most runs trained as one ensemble (default: the section's, see SECTIONS)")
    run.add_argument("--compile", action="store_true")
    run.add_argument("--dry-run", action="store_true", help="on the CPU, two steps, small data; not for the ledger")
    run.add_argument("--paths", action="store_true", help="with --dry-run: one run per code path of the whole plan")
    run.add_argument("--scratch", type=Path, default=None,
                     help="the engine's cache folder (default: a temporary one); keep it to resume checkpoints")
    reh = sub.add_parser("rehearse", help="the shard's dry run as the GPU machine would run it: a new process with "
                         "only the carried data and without the packages the GPU image lacks")
    reh.add_argument("notebook")
    reh.add_argument("shard", help="i/n")
    reh.add_argument("out", type=Path)
    reh.add_argument("--profile", default="full")
    reh.add_argument("--paths", action="store_true", help="one run per code path of the whole plan")
    reh.add_argument("--group-size", type=int, default=None)
    reh.add_argument("--python", default=None, help="the interpreter to rehearse with (default: this one), e.g. "
                     "a virtual environment with the GPU image's torch")
    unp = sub.add_parser("unpack", help="check the archives and write their results to the ledger")
    unp.add_argument("archives", nargs="+", type=Path)
    unp.add_argument("--profile", default="full")
    pck = sub.add_parser("pack", help="what one GPU command of a shard needs: carry paths, command, time limit")
    pck.add_argument("notebook")
    pck.add_argument("shard", help="i/n")
    pck.add_argument("--profile", default="full")
    est = sub.add_parser("estimate", help="each shard's estimated minutes on one H200 (r2mae_core.shard_time)")
    est.add_argument("notebook")
    est.add_argument("--profile", default="full")
    car = sub.add_parser("carry", help="the data paths a shard needs on the GPU machine (checked against its limits)")
    car.add_argument("notebook")
    car.add_argument("--profile", default="full")
    for name in ("next", "status"):
        p = sub.add_parser(name, help="the first shard with missing runs" if name == "next" else
                           "runs missing from the ledger per section")
        p.add_argument("--profile", default="full")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            archive = run_shard(args.notebook, parse_shard(args.shard), args.out, profile=args.profile,
                                device=args.device, group_size=args.group_size, compile=args.compile,
                                dry_run=args.dry_run, scratch=args.scratch, paths=args.paths)
            with tarfile.open(archive) as tar:
                n = sum(m.name.endswith(".npz") for m in tar.getmembers())
            print(f"{archive}: {n} results")
            failed = failed_groups(archive)
            for row in failed:
                print(f"campaign: group {row['label']} ({row['runs']} runs) failed: {row['error']}", file=sys.stderr)
            if failed:
                return 1
        elif args.command == "rehearse":
            archive = rehearse(args.notebook, parse_shard(args.shard), args.out, profile=args.profile,
                               paths=args.paths, group_size=args.group_size, python=args.python)
            print(f"rehearsal of {args.notebook} {args.shard}: passed ({archive})")
        elif args.command == "unpack":
            for notebook, n in unpack(args.archives, profile=args.profile).items():
                print(f"{notebook}: {n} results written to {ledger_root()}")
        elif args.command == "pack":
            print(json.dumps(pack(args.notebook, parse_shard(args.shard), args.profile)))
        elif args.command == "estimate":
            for line in estimate_lines(args.notebook, args.profile):
                print(line)
        elif args.command == "carry":
            paths, total = carry(args.notebook, args.profile)
            print(json.dumps({"carry": paths, "mib": round(total / 2**20, 1)}))
        elif args.command == "next":
            found = next_shard(args.profile)
            print("every shard is in the ledger" if found is None else
                  f"{found[0]} {found[1][0]}/{found[1][1]} ({found[2]} runs missing)")
        else:
            for notebook in SECTIONS:
                sec = section(notebook, args.profile)
                total = len(shard_runs(sec, (0, 1)))
                print(f"{notebook}: {total - len(missing(sec))} of {total} runs in the ledger")
    except (ValueError, FileNotFoundError) as err:
        print(f"campaign: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
