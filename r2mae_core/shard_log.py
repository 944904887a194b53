"""What a GPU shard command measured about itself: the machine, its matmul peak at the training precision and,
per ensemble group, the wall time, pretraining and evaluation seconds and the training FLOP/s achieved against
that peak.

:func:`r2mae_core.campaign.run_shard` starts a log (:func:`start`: versions, device name, UTC start time and the
peak measured in the same command), adds a row per finished group (:func:`group_row`) and appends the whole log
to the shard's archive with each group's results as :data:`MEMBER` (:func:`entry`; a tar keeps every copy and
the last one is read), so a command stopped at its time limit still brings back what it measured.
:func:`r2mae_core.campaign.unpack` keeps it beside the ledger (:func:`save`, ``<ledger>/_shards/``) and
:func:`provenance_markdown` turns the kept logs into the README's table of where each full number came from.

The achieved rate of a group of :math:`k` members trained :math:`S` steps whose member step costs :math:`F`
FLOPs (forward + backward, :func:`r2mae_core.shard_time.step_flops`) in :math:`T` seconds of pretraining is

.. math:: R = k\\,S\\,F / T,

reported as a fraction of the matmul peak :math:`P` at the training precision (``2 n^3`` FLOPs per ``n × n``
product, :func:`r2mae_core.gpu_check.matmul_peak`; bf16 on CUDA, where training runs under bf16 autocast, and
fp32 on a CPU, where it runs in fp32). :math:`T` is what the records report as pretraining time (the
first step's compilation included), so :math:`R` is a lower bound of the steady-state rate; a section whose
records carry no pretraining time, or whose step FLOPs are not counted (05's gene models), gets none.
"""

from __future__ import annotations

import calendar
import json
import os
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .io import atomic_write_text
from .paths import ledger_root

if TYPE_CHECKING:
    from .runs import RunSpec

__all__ = ["MEMBER", "LOG_FORMAT", "start", "group_row", "entry", "read", "save", "saved", "summary",
           "provenance_markdown"]

#: The archive member holding the log.
MEMBER = "_shard.json"
#: The log's format number (a reader refuses other formats).
LOG_FORMAT = 1
#: The peak's matmul ``(n, reps)`` on a CPU (a dry run's code path; on CUDA the GPU check's
#: :data:`r2mae_core.gpu_check.PEAK_MATMUL_SIZE`).
DRY_RUN_MATMUL_SIZE = (1024, 3)


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def start(notebook: str, shard: tuple[int, int], profile: str, device: str, compile: bool, began: float) -> dict:
    """A new log: the command's section, shard, profile, versions, device name, start (``began``, seconds
    since the epoch, UTC) and matmul ``peak`` at the training precision ``peak_dtype`` (FLOP/s; None with the
    error recorded where the measurement fails: the shard goes on without it)."""
    import torch

    from .gpu_check import PEAK_MATMUL_SIZE, matmul_peak

    cuda = device.startswith("cuda")
    log = {"format": LOG_FORMAT, "notebook": notebook, "shard": list(shard), "profile": profile,
           "device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
           "cuda": torch.version.cuda if cuda else None, "python": sys.version.split()[0],
           "cpus": os.cpu_count(), "compile": compile, "started": _utc(began), "groups": []}
    dtype, (n, reps) = ("bfloat16", PEAK_MATMUL_SIZE) if cuda else ("float32", DRY_RUN_MATMUL_SIZE)
    log["peak_dtype"] = dtype
    try:
        log["peak"] = matmul_peak(device, getattr(torch, dtype), n, reps)
    except Exception as err:  # noqa: BLE001 - a failed measurement is recorded; the shard's runs matter more
        log["peak"], log["peak_error"] = None, repr(err)[:400]
    return log


def _pretrain_seconds(result: dict) -> float | None:
    """The pretraining seconds a record reports (image runs: ``metrics.train_seconds``; token runs:
    ``seconds``), None where it reports none."""
    metrics = result.get("metrics")
    if isinstance(metrics, dict) and "train_seconds" in metrics:
        return float(metrics["train_seconds"])
    return float(result["seconds"]) if "seconds" in result else None


def group_row(group: list[RunSpec], results: list[dict], wall_s: float, member_flops: float,
              peak: float | None) -> dict:
    """One group's row: its first run's label, runs, steps, ``wall_s``, ``pretrain_s`` (the longest a record
    reports: the members train together), ``eval_s`` (the records' ``eval_seconds`` summed), the member's
    step FLOPs and the achieved rate :math:`R = k S F / T` (module docstring) with its fraction of ``peak``."""
    steps = group[0].train.steps if group[0].train is not None else 0
    pretrain = [s for s in map(_pretrain_seconds, results) if s is not None]
    evals = [float(r["eval_seconds"]) for r in results if "eval_seconds" in r]
    pretrain_s = max(pretrain) if pretrain else None
    achieved = (len(group) * steps * member_flops / pretrain_s
                if pretrain_s and member_flops > 0 and steps > 0 else None)
    return {"label": group[0].label(), "runs": len(group), "steps": steps, "wall_s": round(wall_s, 3),
            "pretrain_s": pretrain_s, "eval_s": sum(evals) if evals else None, "member_flops": member_flops,
            "achieved_flops": achieved, "frac_peak": achieved / peak if achieved and peak else None}


def entry(log: dict) -> tuple[str, bytes]:
    """``log`` as the archive entry :data:`MEMBER` (its ``updated`` time set now)."""
    log["updated"] = _utc(time.time())
    return MEMBER, (json.dumps(log, indent=1, sort_keys=True) + "\n").encode()


def read(tar: tarfile.TarFile) -> dict | None:
    """The last log appended to an open archive, None if it holds none.

    Raises
    ------
    ValueError
        A log that is not JSON or of another :data:`LOG_FORMAT`.
    """
    try:
        member = tar.getmember(MEMBER)  # the last occurrence
    except KeyError:
        return None
    try:
        log = json.loads(tar.extractfile(member).read())
    except ValueError as err:
        raise ValueError(f"{MEMBER} is not JSON: {err}") from None
    if not isinstance(log, dict) or log.get("format") != LOG_FORMAT:
        raise ValueError(f"{MEMBER} format={log.get('format') if isinstance(log, dict) else None!r} is not "
                         f"allowed: this reader takes format {LOG_FORMAT}")
    return log


def save(log: dict, archive_name: str, results: int) -> Path:
    """Keep ``log`` beside the ledger as ``<ledger>/_shards/<archive stem>_<profile>_<start>.json`` with the
    archive's name and the number of ``results`` taken in (one file per command: a shard run twice keeps both)."""
    stamp = log["started"].replace("-", "").replace(":", "")
    path = ledger_root() / "_shards" / f"{Path(archive_name).stem}_{log['profile']}_{stamp}.json"
    doc = {**log, "archive": archive_name, "results": results}
    return atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def saved(profile: str = "full") -> list[dict]:
    """The logs kept beside the ledger for ``profile``, by section, shard and start time."""
    folder = ledger_root() / "_shards"
    logs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    return sorted((log for log in logs if log.get("profile") == profile),
                  key=lambda log: (log["notebook"], log["shard"], log["started"]))


def summary(log: dict) -> dict:
    """A command's totals: wall minutes from its start to its last update (the last group's end), the groups
    and runs that finished and the groups that ``failed``, and the FLOP-weighted achieved training rate over the
    groups that have one, :math:`\\sum_g k_g S_g F_g / \\sum_g T_g`, with its fraction of the peak."""
    done = [g for g in log["groups"] if "error" not in g]
    rated = [g for g in done if g["achieved_flops"]]
    flops = sum(g["runs"] * g["steps"] * g["member_flops"] for g in rated)
    seconds = sum(g["pretrain_s"] for g in rated)
    achieved = flops / seconds if seconds else None
    began, ended = (calendar.timegm(time.strptime(log.get(key, log["started"]), "%Y-%m-%dT%H:%M:%SZ"))
                    for key in ("started", "updated"))
    peak = log.get("peak")
    return {"minutes": (ended - began) / 60, "groups": len(done), "failed": len(log["groups"]) - len(done),
            "runs": sum(g["runs"] for g in done), "achieved_flops": achieved,
            "frac_peak": achieved / peak if achieved and peak else None}


def _tflops(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e12:.1f}"


def provenance_markdown(profile: str = "full") -> str:
    """The table of the shard commands whose results the ledger holds: section, shard, device, start (UTC),
    groups (and failed groups) and runs trained, wall minutes, matmul peak at the training precision and achieved
    training rate (TFLOP/s, fraction of the peak); one line saying so when no shard has been taken in."""
    logs = saved(profile)
    if not logs:
        return ("No shard of the GPU route has been taken in yet: `./build.sh gpu status` counts each section's "
                "runs missing from the ledger.\n")
    lines = ["| section | shard | device | started (UTC) | torch | groups | runs | wall min | matmul peak TFLOP/s "
             "| training TFLOP/s (of peak) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for log in logs:
        s = summary(log)
        frac = "" if s["frac_peak"] is None else f" ({100 * s['frac_peak']:.1f}%)"
        failed = f" ({s['failed']} failed)" if s["failed"] else ""
        lines.append(f"| {log['notebook']} | {log['shard'][0]}/{log['shard'][1]} | {log['device']} | "
                     f"{log['started'].replace('T', ' ').removesuffix('Z')} | {log['torch']} | {s['groups']}{failed} | "
                     f"{s['runs']} | {s['minutes']:.1f} | {_tflops(log.get('peak'))} {log.get('peak_dtype', '')} | "
                     f"{_tflops(s['achieved_flops'])}{frac} |")
    return "\n".join(lines) + "\n"
