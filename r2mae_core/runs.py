"""The run engine: a section's *plan* (a list of :class:`RunSpec`) becomes cached, resumable, tidy results.

Every pretraining study of this project is a sweep of runs: model family × size × method (a ratio sampler) ×
seed, each trained with one schedule and evaluated the same way. A section turns its config into a plan, and
:func:`execute` does the rest:

1. **Look up** each run's result in the cache (``<cache root>/<namespace>/<key>.npz``, a data-only
   :mod:`r2mae_core.records` file; the key covers the spec, the data checksum, the fingerprint of the code of
   ``work``'s module (:mod:`r2mae_core.fingerprint`), the package version and the numerics,
   :func:`r2mae_core.cache.cache_key`), then in the committed ledger of runs made on a GPU (:func:`ledger_path`:
   the key without the code and the CPU numerics; a ledger record made by other code is used, with one warning
   per namespace naming both fingerprints). Runs that appear twice in a plan are done once.
2. **Group** the missing runs that share an architecture, data and schedule (everything but the method's
   sampler and the seed, :func:`group_key`) into groups of at most ``group_size``: a group is trained as one
   ensemble (:func:`r2mae_core.ensemble.pretrain_ensemble`), how many small models fill a GPU.
3. **Map** the section's ``work`` function over the groups (in this process, or in ``workers`` processes on a
   CPU); each group's results are stored as soon as it finishes, so a killed sweep resumes without
   recomputing what finished (and a run killed mid-training resumes from its checkpoint, if ``work`` keeps one).
4. **Return** the results in plan order, each with the run's tidy columns (:meth:`RunSpec.columns`).

Under ``torchrun`` (:mod:`r2mae_core.distributed`) every rank executes the same plan: rank 0's list of missing
runs is every rank's, the runs train one at a time data-parallel (``group_size`` and ``workers`` are 1: vmapped
ensembles are not data-parallel), every rank evaluates the trained model alike and rank 0 alone stores the records.

``shard=(i, n)`` restricts the work to the runs with plan position ``p % n == i`` (a fixed partition of the
plan, so several machines or GPU loans can fill one sweep into one cache); the other runs are returned only if
their results are already there. With ``R2MAE_REPLAY=1`` (set by ``./build.sh run --profile full`` on a machine
without CUDA) nothing is trained: a run with a schedule missing from the cache and the ledger is an error naming
how many; a run without one (a reference, 05's PCA) is computed here.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from . import distributed
from ._rng import check_seed
from .cache import cache_key, canonical
from .fingerprint import fingerprint_of
from .masking import make_sampler
from .paths import cache_root, ledger_root
from .progress import progress_line, report
from .records import RecordError, load_record, save_record
from .train import TrainConfig

__all__ = ["Method", "TrainConfig", "RunSpec", "Options", "fixed_method", "r2mae_method", "r2mae_name",
           "reference_method", "masked_diffusion_method", "equivalent_fixed_method", "equivalent_control",
           "is_masked_diffusion",
           "MASKED_DIFFUSION", "group_key",
           "MEMBER_MASK_OPTIONS", "groups", "shard_runs", "result_path", "group_checkpoint_path", "ledger_path",
           "ledger_code", "execute", "parse_shard"]

_NAN = float("nan")


def r2mae_name(low: float, high: float, per: str = "batch") -> str:
    """The one display name of an R²MAE method: ``R²MAE U[low,high]`` (``per sample`` appended)."""
    return f"R²MAE U[{low:g},{high:g}]" + (" per sample" if per == "sample" else "")


@dataclass(frozen=True)
class Method:
    """A pretraining recipe as a record: tables and claims select on its fields, never on its display name.

    Attributes
    ----------
    name
        Display label (row label of tables and figures).
    kind
        The sampler's kind (``fixed``, ``r2mae``, ``scheduled``, ``maskgit``, ``truncnorm``, ``choice``, ...)
        or ``reference`` for a run without pretraining (random initialisation).
    sampler
        Ratio-sampler spec for :func:`r2mae_core.masking.make_sampler`; None for a reference.
    group
        The method's role in its section (e.g. ``fixed``, ``r2mae``, ``baseline``, ``ablation``, ``umae``).
    uniformity_weight
        λ of U-MAE's uniformity term (0 = plain masked modelling).
    mask
        Options of the section's mask generator beyond the ratio (e.g. 04's span curriculum
        ``{"span_start": 1, "span_end": 6}``); empty for the section's default masks.
    """

    name: str
    kind: str
    sampler: dict | None = None
    group: str = ""
    uniformity_weight: float = 0.0
    mask: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sampler is None:
            if self.kind != "reference":
                raise ValueError(f"method {self.name!r}: kind={self.kind!r} needs a sampler spec "
                                 "(only kind 'reference' has none)")
        else:
            make_sampler(self.sampler)  # one clear line for a bad spec
            if self.kind != self.sampler["kind"]:
                raise ValueError(f"method {self.name!r}: kind={self.kind!r} is not allowed: its sampler is of "
                                 f"kind {self.sampler['kind']!r}")
        if not (isinstance(self.uniformity_weight, int | float) and self.uniformity_weight >= 0):
            raise ValueError(f"uniformity_weight={self.uniformity_weight!r} is not allowed: use a number >= 0")

    @property
    def ratio(self) -> float:
        """The fixed ratio of a ``fixed`` method, NaN otherwise."""
        return float(self.sampler["ratio"]) if self.kind == "fixed" else _NAN

    def columns(self) -> dict:
        """Table columns: ``method``, ``group``, ``kind``, ``ratio`` (fixed only), ``ratio_low``/``ratio_high``
        (interval of R²MAE-like samplers, else NaN), ``uniformity_weight``."""
        spec = self.sampler or {}
        return {"method": self.name, "group": self.group, "kind": self.kind, "ratio": self.ratio,
                "ratio_low": float(spec.get("low", _NAN)), "ratio_high": float(spec.get("high", _NAN)),
                "uniformity_weight": float(self.uniformity_weight)}


def fixed_method(ratio: float, *, group: str = "fixed", uniformity_weight: float = 0.0,
                 name: str | None = None) -> Method:
    """The fixed-ratio method ``fixed <ratio>``."""
    return Method(name or f"fixed {ratio:g}", "fixed", {"kind": "fixed", "ratio": float(ratio)}, group,
                  uniformity_weight)


def r2mae_method(low: float, high: float, per: str = "batch", *, group: str = "r2mae",
                 uniformity_weight: float = 0.0, name: str | None = None) -> Method:
    """R²MAE with ratios drawn from U[low, high] (per batch or per sample), named by :func:`r2mae_name`."""
    return Method(name or r2mae_name(low, high, per), "r2mae",
                  {"kind": "r2mae", "low": float(low), "high": float(high), "per": per}, group, uniformity_weight)


#: The mask options of a masked-diffusion method (:attr:`Method.mask`): Bernoulli masks at each sequence's noise
#: level, all [MASK], and the 1/t-weighted loss (:class:`r2mae_core.mlm.MLMStep` with ``diffusion=True``).
MASKED_DIFFUSION = {"objective": "masked_diffusion"}


def masked_diffusion_method(eps: float = 1e-3, *, group: str = "diffusion",
                            name: str = "masked diffusion (MDLM)") -> Method:
    """The masked-diffusion baseline of the token sections (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025): a
    noise level t ~ U[eps, 1) per sequence (:class:`r2mae_core.masking.MaskedDiffusion`; eps = 1e-3 as both
    papers' code), each token masked with probability t, loss weighted by 1/t (mask options
    :data:`MASKED_DIFFUSION`)."""
    return Method(name, "masked_diffusion", {"kind": "masked_diffusion", "eps": float(eps), "per": "sample"}, group,
                  mask=dict(MASKED_DIFFUSION))


def is_masked_diffusion(method: Method) -> bool:
    """Whether ``method`` trains with the masked-diffusion objective (its mask options)."""
    return method.mask.get("objective") == MASKED_DIFFUSION["objective"]


def equivalent_fixed_method(method: Method, *, group: str = "equivalent", name: str | None = None) -> Method:
    r"""The fixed ratio of equal population effect as ``method``'s random ratio law: the equal-effect control.

    In the linear model's population limit a ratio law P with loss weight w trains exactly the predictor of the
    fixed ratio m_eq = E[w m²(1−m)] / E[w m(1−m)] (derived in :func:`r2mae_core.theory.equivalent_fixed_ratio`;
    w = 1 for R²MAE, w = 1/m for masked diffusion, whose m_eq is 1/3). A random ratio that beats the grid's best
    fixed ratio but not m_eq wins by its *effective* ratio, not by being random; this control separates the two.
    The moments are the sampler's Gauss-Legendre quadrature (exact for these polynomial integrands), the nodes
    the theory uses, so the run engine does not import the theory layer.

    Parameters
    ----------
    method
        A method with a random ratio law (R²MAE, masked diffusion, or any sampler with quadrature nodes).
    group, name
        The control's group (default ``equivalent``) and display name (default ``fixed m_eq <m> (<method>)``).
    """
    if method.sampler is None or method.kind == "fixed":
        raise ValueError(f"method={method.name!r} is not allowed: the equal-effect control needs a random ratio "
                         "law (e.g. R²MAE or masked diffusion), not a fixed ratio or a reference")
    ratios, weights = make_sampler(method.sampler).quadrature(n_points=24)
    if is_masked_diffusion(method):
        weights = weights / ratios  # the 1/t loss weight
    m_eq = float((weights * ratios**2 * (1 - ratios)).sum() / (weights * ratios * (1 - ratios)).sum())
    return fixed_method(m_eq, group=group, uniformity_weight=method.uniformity_weight,
                        name=name or f"fixed m_eq {m_eq:.3f} ({method.name})")


def equivalent_control(method: Method, grid: Sequence[Method] = (), *, tol: float = 1e-9) -> Method:
    """The equal-effect control of ``method`` within a section's fixed-ratio grid: the method of ``grid`` whose
    fixed ratio is m_eq (:func:`equivalent_fixed_method`) within ``tol`` and whose U-MAE λ and mask options are
    ``method``'s, when there is one (the control *is* that grid run: it is not trained twice); else the new
    fixed-ratio method at m_eq (group ``equivalent``) with ``method``'s mask options.

    Parameters
    ----------
    method
        A method with a random ratio law (R²MAE, masked diffusion, ...).
    grid
        The section's other methods (any kinds; only fixed ratios can be the control).
    tol
        How close a grid ratio must be to m_eq (m_eq is a ratio of quadratures, so U[0.1, 0.9]'s 0.5 comes out
        0.5 up to rounding).
    """
    control = equivalent_fixed_method(method)
    mask = {} if is_masked_diffusion(method) else dict(method.mask)
    for candidate in grid:
        if (candidate.kind == "fixed" and abs(candidate.ratio - control.ratio) <= tol and candidate.mask == mask
                and candidate.uniformity_weight == control.uniformity_weight):
            return candidate
    return replace(control, mask=mask)


def reference_method(name: str = "random init") -> Method:
    """No pretraining: the model as initialised (a reference row of every table)."""
    return Method(name, "reference", None, "reference")


@dataclass(frozen=True)
class RunSpec:
    """One run of a plan: everything its result depends on, as plain records.

    Attributes
    ----------
    namespace
        Cache namespace of the result (one per kind of run, e.g. ``image_runs``).
    family, size
        Model family and size preset (the section resolves them, with ``model``, into a model config).
    method
        The :class:`Method` (sampler, U-MAE λ); a ``reference`` method is not trained.
    seed
        Initialisation, data order and masks.
    train
        The schedule (:class:`r2mae_core.train.TrainConfig`); None for a run that is not trained (a ``reference``
        method).
    model, data, evaluation
        Model config fields beyond the size preset, the data the run reads and how it is evaluated (plain,
        JSON-ready mappings; the section defines their fields).
    tags
        Columns added to the run's result rows that do not change the result (e.g. the part of a study, or
        ``seed`` as the seed's index where a section numbers its seeds); not part of the key.
    """

    namespace: str
    family: str
    size: str
    method: Method
    seed: int
    train: TrainConfig | None
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if (self.train is None) != (self.method.kind == "reference"):
            raise ValueError(f"train={self.train!r} is not allowed for method {self.method.name!r}: a reference "
                             "method has no schedule (None), every other method one TrainConfig")
        if not self.namespace or "/" in self.namespace or self.namespace.startswith("."):
            raise ValueError(f"namespace={self.namespace!r} is not allowed: use a plain name like 'image_runs'")

    def identity(self) -> dict:
        """What the result is keyed on: every field but ``tags``, of the method only what it computes (sampler,
        U-MAE λ, mask options; two labels of one recipe share the run) and of the schedule all but the
        checkpoint interval."""
        out = {k: v for k, v in asdict(self).items() if k != "tags"}
        out["method"] = {"sampler": self.method.sampler, "uniformity_weight": self.method.uniformity_weight,
                         "mask": self.method.mask}
        if out["train"] is not None:
            out["train"].pop("checkpoint_every")  # how often a run is saved does not change it
        return canonical(out)

    def training_identity(self) -> dict:
        """What the trained weights are keyed on: the identity without the evaluation (runs evaluated two ways
        share their weights)."""
        return {k: v for k, v in self.identity().items() if k != "evaluation"}

    def label(self) -> str:
        return f"{self.family}-{self.size} {self.method.name} seed {self.seed}"

    def columns(self) -> dict:
        """The run's columns in every table: family, size, the method's columns, seed, steps, then the tags (a
        tag of the same name replaces a column)."""
        return {"family": self.family, "size": self.size, **self.method.columns(), "seed": self.seed,
                "steps": 0 if self.train is None else self.train.steps or 0, **self.tags}


@dataclass(frozen=True)
class Options:
    """How a plan is executed (never part of a result's key: they change speed, not numbers beyond float
    rounding). ``device``: torch device; ``compile``: ``torch.compile`` the training step; ``threads``: torch
    threads per worker (0 keeps them); ``progress``: per-run progress bars inside ``work``."""

    device: str = "cpu"
    compile: bool = False
    threads: int = 0
    progress: bool = False


#: Mask options that each ensemble member's step draws by itself (an image model's mask generator, random subset
#: or blocks: :class:`r2mae_core.ensemble.ImageMasking` per member), so runs that differ only in them train as one
#: ensemble.
MEMBER_MASK_OPTIONS = ("generator",)


def group_key(spec: RunSpec) -> str:
    """Runs with equal group keys can train as one ensemble: the same architecture, data and schedule, the same
    U-MAE λ and mask options; only the sampler, the seed, the :data:`MEMBER_MASK_OPTIONS` and the evaluation may
    differ. References never group."""
    if spec.method.kind == "reference":
        return f"reference {cache_key('group', spec.identity())}"
    ident = spec.training_identity()
    ident["method"].pop("sampler")
    for option in MEMBER_MASK_OPTIONS:
        ident["method"]["mask"].pop(option, None)
    ident.pop("seed")
    return cache_key("group", ident)


def result_path(spec: RunSpec, data_checksum: str = "", *, code: str = "") -> Path:
    """Where the result of ``spec`` computed by code with fingerprint ``code`` is stored (``code``: that of the
    ``work`` function's module, :func:`r2mae_core.fingerprint.fingerprint_of`)."""
    key = cache_key(spec.namespace, spec.identity(), data_checksum=data_checksum, code=code)
    return cache_root() / spec.namespace / f"{key}.npz"


def shard_runs(plan: Sequence[RunSpec], shard: tuple[int, int]) -> list[RunSpec]:
    """The distinct runs at plan positions ``p % n == i`` of ``shard = (i, n)`` (a run that appears twice is done
    once): one fixed partition of a plan."""
    i, n = shard
    unique: dict[str, RunSpec] = {}
    for p, spec in enumerate(plan):
        if p % n == i:
            unique.setdefault(repr(spec.identity()), spec)
    return list(unique.values())


def group_checkpoint_path(group: Sequence[RunSpec], folder: str, *, code: str = "") -> Path:
    """Where an ensemble group's resumable training state lives: ``<cache root>/<folder>/group-<key>.pt``, keyed
    on its members' training identities in order (the same members in another order are another group) and on
    the fingerprint ``code`` of the training code (the calling module's)."""
    key = cache_key(folder, [spec.training_identity() for spec in group], code=code)
    return cache_root() / folder / f"group-{key}.pt"


def ledger_path(spec: RunSpec, data_checksum: str = "") -> Path:
    """Where the result of ``spec`` made on another machine is committed: ``<ledger root>/<namespace>/<key>.npz``
    (:func:`r2mae_core.paths.ledger_root`). The key is :func:`result_path`'s without the CPU numerics: a run
    trained on a GPU does not depend on them, and neither the device nor torch's version is part of any key (the
    GPU machine runs another torch than the CPU side: its results are taken as the runs of the same spec)."""
    key = cache_key(spec.namespace, spec.identity(), data_checksum=data_checksum, with_numerics=False)
    return ledger_root() / spec.namespace / f"{key}.npz"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (0 <= i < n) → ``(i, n)``; None → None."""
    if text is None:
        return None
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ValueError(f"shard={text!r} is not allowed: use i/n with 0 <= i < n, e.g. 0/4")
    return i, n


def groups(todo: list[RunSpec], group_size: int) -> list[list[RunSpec]]:
    """Consecutive chunks of at most ``group_size`` runs per :func:`group_key`, in order of first appearance: the
    groups :func:`execute` trains together."""
    by_key: dict[str, list[RunSpec]] = {}
    for spec in todo:
        by_key.setdefault(group_key(spec), []).append(spec)
    return [runs[i:i + group_size] for runs in by_key.values() for i in range(0, len(runs), group_size)]


def _store(group: list[RunSpec], outs: list[dict], paths: dict[str, Path]) -> None:
    """Store a group's results; under data parallelism rank 0 writes them and every rank waits for it."""
    if len(outs) != len(group):
        raise RuntimeError(f"work returned {len(outs)} results for a group of {len(group)} runs")
    if distributed.is_main():
        for spec, out in zip(group, outs, strict=True):
            save_record(paths[repr(spec.identity())], out)
    distributed.barrier()


def _worker_init(threads: int, parent_pid: int) -> None:
    """Start of a worker process: torch's intra-op threads (and BLAS's) as asked, and a watcher that ends the
    worker once its parent is gone (a killed kernel must not leave workers behind)."""
    if threads:
        torch.set_num_threads(threads)
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Exit this process (status 1, at once) when its parent is no longer ``parent_pid``."""
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)


def _stored(path: Path, spec: RunSpec, data_checksum: str, code: str, stale: dict[str, str]) -> dict | None:
    """The result of ``spec`` from the cache, else from the ledger; None if neither has it. A ledger record whose
    provenance names another code fingerprint than ``code`` is still returned (the ledger holds what a GPU made
    and this machine cannot remake) and noted in ``stale`` (its fingerprint by namespace)."""
    out = _load(path)
    if out is not None:
        return out
    ledger = ledger_path(spec, data_checksum)
    out = _load(ledger)
    if out is not None and code:
        made_by = ledger_code(ledger)
        if made_by != code:
            stale.setdefault(spec.namespace, made_by or "unrecorded")
    return out


def ledger_code(ledger: Path) -> str:
    """The code fingerprint recorded beside a ledger record (its ``.json`` provenance), ``""`` if none."""
    info = ledger.with_suffix(".json")
    if not info.exists():
        return ""
    try:
        return str(json.loads(info.read_text(encoding="utf-8")).get("code", ""))
    except (OSError, ValueError):
        return ""


def _warn_stale(stale: dict[str, str], code: str) -> None:
    """One warning per namespace whose ledger records were made by code other than this checkout's."""
    for namespace, made_by in sorted(stale.items()):
        warnings.warn(f"ledger records of {namespace} were made by code {made_by}; this checkout's code is {code}: "
                      "the results shown are those of the code that made them", stacklevel=3)


def _load(path: Path) -> dict | None:
    """The stored result at ``path``; None if there is none (or it is unreadable: then it is recomputed)."""
    if not path.exists() or os.environ.get("R2MAE_NO_CACHE", "") in ("1", "true", "yes"):
        return None
    try:
        return load_record(path)
    except RecordError as err:
        warnings.warn(f"{err}; recomputing it", stacklevel=3)
        return None


def execute(plan: Sequence[RunSpec], work: Callable[[list[RunSpec], Options], list[dict]], *,
            options: Options | None = None, group_size: int = 1, workers: int = 1, data_checksum: str = "",
            shard: tuple[int, int] | None = None, desc: str = "runs", progress: bool = True) -> list[dict | None]:
    """Run every spec of ``plan`` that has no stored result, then return all results in plan order.

    Parameters
    ----------
    plan
        The runs (duplicates are computed once).
    work
        ``work(group, options) -> [result, ...]``: trains (resumably) and evaluates a group of runs with equal
        :func:`group_key` (one run if ``group_size`` is 1) and returns one result per run, a data-only record
        (:func:`r2mae_core.records.save_record`). A module-level function (it may run in worker processes).
    options
        Device, compile, threads (:class:`Options`).
    group_size
        Most runs trained together as one ensemble (1: one run at a time).
    workers
        > 1: that many worker processes (``spawn``; each with ``options.threads`` torch threads), one group
        each at a time. Results, their order and the cache do not depend on it.
    data_checksum
        Checksum of the data every run reads (part of every key).
    shard
        ``(i, n)``: compute only the runs at plan positions ``p % n == i`` (:func:`parse_shard`).
    desc, progress
        The progress bar over runs.

    Returns
    -------
    list
        Per plan entry: its result (as ``work`` returned it), or None for a run outside ``shard`` whose result is
        not stored yet.
    """
    from tqdm.auto import tqdm

    options = options or Options()
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size={group_size!r} is not allowed: use an integer >= 1")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is not allowed: use an integer >= 1")
    keys = [repr(spec.identity()) for spec in plan]
    unique = dict(zip(keys, plan, strict=True))
    mine = set(keys) if shard is None else {repr(spec.identity()) for spec in shard_runs(plan, shard)}
    code, stale = fingerprint_of(work), {}
    paths = {k: result_path(spec, data_checksum, code=code) for k, spec in unique.items()}
    done = {k: out for k, spec in unique.items()
            if (out := _stored(paths[k], spec, data_checksum, code, stale)) is not None}
    _warn_stale(stale, code)
    todo = distributed.agree([spec for k, spec in unique.items() if k not in done and k in mine])  # rank 0's
    if distributed.active():  # every rank trains the same run at once, data-parallel (r2mae_core.distributed)
        group_size, workers, progress = 1, 1, progress and distributed.is_main()
    to_train = [spec for spec in todo if spec.train is not None]
    if to_train and os.environ.get("R2MAE_REPLAY", "") in ("1", "true", "yes"):
        raise RuntimeError(f"{desc}: {len(to_train)} of {len(unique)} runs are neither in the cache nor in the "
                           f"ledger ({ledger_root()}) and R2MAE_REPLAY=1 forbids training them here: run their "
                           "shards on a GPU first (./build.sh gpu next), or set R2MAE_REPLAY=0 to train on this "
                           "machine")
    chunks = groups(todo, group_size)
    bar = tqdm(total=len(unique), initial=len(done), desc=desc, disable=not progress)
    started, finished = time.monotonic(), len(done)  # runs stored so far (the bar counts nothing when off)

    def tell(current: str) -> None:
        report(progress_line(desc, finished, len(unique), current, started, len(done)))

    if workers <= 1 or len(chunks) <= 1:
        for group in chunks:
            label = group[0].label() + (f" (+{len(group) - 1})" if len(group) > 1 else "")
            bar.set_postfix_str(label)
            tell(f"now {label}")
            _store(group, work(group, options), paths)
            bar.update(len(group))
            finished += len(group)
        tell("")
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        pool = ProcessPoolExecutor(min(workers, len(chunks)), mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(options.threads, os.getpid()))
        try:
            futures = {pool.submit(work, group, options): group for group in chunks}
            tell(f"{min(workers, len(chunks))} worker processes")
            for future in as_completed(futures):
                _store(futures[future], future.result(), paths)  # the first failure is raised here
                bar.update(len(futures[future]))
                finished += len(futures[future])
                tell(f"last {futures[future][0].label()}")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # after a failure: groups not yet started never start
    bar.close()
    out = []
    for key in keys:
        result = done.get(key)
        if result is None and key in mine:
            result = load_record(paths[key])
        out.append(result)
    return out
