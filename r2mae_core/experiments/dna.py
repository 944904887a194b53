"""04_dna: masked DNA language models — fixed mask ratios vs model size, R²MAE vs fixed, scheduled and
curriculum masking; exon/intron, promoter and species classification by linear probes on frozen features.

``run(config)`` returns tidy tables; :mod:`r2mae_core.experiments.dna_claims` turns them into the claims D1–D5
and the sanity check S1. Every pretraining run (and its evaluation) is cached per (run spec, seed, data).

Data (:mod:`r2mae_core.dna`, all built with the fixed split seed 0, independent of the run seed):

* tasks — exon vs intron windows of the fly genes (split by gene: the AUGUSTUS train/test genes; 15% of the
  training genes are validation), promoter vs GC- and repeat-matched background (split by 1 Mb chr2R blocks;
  15% of the training blocks are validation), species of bacterial fragments (four species, one whole strain
  per species held out for test; validation = 15% of the training fragments of each species, because some
  species keep a single training strain). All windows have ``window`` bp, read 5'->3' on the gene / transcript
  strand (background and fragments on a random strand), no N, classes exactly balanced in train and test;
  each split is then subsampled per class to the probe budget.
* pretraining text — windows of ``window`` bp tiled (non-overlapping) over every genome of ``genomes`` minus
  the *test sources* of every task (test genes, test blocks, test strains) and minus N runs of >= 50 bp;
  windows with more than ``pretrain_max_n_frac`` N are dropped; ``pretrain_windows`` of them are drawn at random.
  Soft-masked (lower-case, repeat) bases are upper-cased like the rest: the soft mask is not a token. With
  ``rc_augment`` every pretraining window also appears reverse-complemented (the task windows never are).
  A test window never overlaps pretraining text: ``run`` counts the overlaps and records them (always 0).
* near-copies — a test window (of a task or of the masked-nucleotide evaluation) that shares at least
  ``LEAK_THRESHOLD`` of its canonical ``LEAK_K``-mers with the task's training + validation windows or with the
  pretraining windows (:func:`r2mae_core.leakage.containment`; reverse complements count as copies) is dropped
  before the subsets are drawn, and the test classes are cut back to equal counts; :func:`leakage_table` audits
  the split that is used. The species task draws ``_SPECIES_TEST_SLACK`` times the test fragments the probe
  uses, so that the drops leave it full.
* masked-nucleotide evaluation — windows tiled over the test sources on chr2R (held out from pretraining).

Tokens: :class:`r2mae_core.dna.DNATokenizer` (single nucleotide ``kmer=1`` or non-overlapping k-mers),
``[CLS]`` first. Masking selects exactly ``round(m · n)`` of the n nucleotide / k-mer tokens of a row (never
specials, ``[UNK]`` or N) and corrupts them BERT-style (80% ``[MASK]``, 10% a random nucleotide / k-mer,
10% kept; Devlin et al. 2019), as DNABERT, the Nucleotide Transformer and Caduceus do.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from .. import data as datasets
from .. import dna, evaluate, leakage
from .._rng import child_seeds, numpy_generator
from ..cache import cache_key, cached
from ..fingerprint import code_fingerprint
from ..mlm import MLMStep
from ..models import build_model
from ..records import record_digest
from ..runs import (
    Method,
    Options,
    RunSpec,
    execute,
    fixed_method,
    is_masked_diffusion,
    masked_diffusion_method,
    r2mae_method,
)
from ..validation import (
    NON_NEGATIVE,
    POSITIVE,
    WARMUP,
    check_bool,
    check_choice,
    check_choices,
    check_fields,
    check_member,
    check_number,
    check_per,
    check_ratio,
    check_ratios,
    check_seed,
    count,
    param,
)
from . import _token_runs as token_runs
from ._token_runs import SIZES, TokenRunSettings

__all__ = ["Config", "SIZES", "TASKS", "BASELINES", "GENOMES", "NAMESPACE", "DRY_RUN", "run", "methods", "plan", "work",
           "evaluation_spec", "corpus", "data_names", "data_checksum", "data_digest", "mlm_step", "step_for",
           "config_dict", "LEAK_K", "LEAK_THRESHOLD", "leakage_table"]

#: Downstream tasks (score: Matthews correlation of the linear probe, as the Nucleotide Transformer reports).
TASKS: tuple[str, ...] = ("exon_intron", "promoter", "species")
BASELINES = ("scheduled", "curriculum", "r2mae", "masked_diffusion")
GENOMES = ("dm_chr2r", "hs_chrx", "pf_genome", "bacteria")
_SPLIT_SEED = 0  # tasks, splits, probe subsets and pretraining windows: fixed, independent of the run seed
_EVAL_SEED = 12345  # masks of the masked-nucleotide evaluation: the same for every model
_VAL_FRACTION = 0.15
#: Near-copy audit (:mod:`r2mae_core.leakage`): a test window whose canonical 16-mers lie at least half in the
#: training windows or the pretraining text is a near-copy (>= ~96% identity; chance level 2R/4^16: 0.05% of a
#: window's k-mers for R = 1 M reference k-mers, 2% for R = 48 M). Such windows are dropped before the subsets are
#: drawn (:func:`_drop_near_copies`); :func:`leakage_table` measures the split that is used.
LEAK_K = 16
LEAK_THRESHOLD = 0.5
MLM_EVAL = "masked-nucleotide eval"
#: Test fragments the species task draws per fragment its probe uses: held-out strains share much of their genome
#: with the other strains of their species, so at full scale (bacteria in the pretraining text) most of their
#: fragments are near-copies and are dropped; measured there: 60% of 1800, 18% left in the worst species.
_SPECIES_TEST_SLACK = 5
NAMESPACE = "dna_runs"
#: A dry run of a profile (:mod:`r2mae_core.campaign`): every size and method of its plan (one seed) and every code
#: path of training and evaluation, with two steps on small data.
DRY_RUN = {"n_seeds": 1, "steps": 2, "batch_size": 8, "pretrain_windows": 400, "mlm_eval": 40, "probe_train": 60,
           "probe_eval": 30, "finetune_epochs": 1, "finetune_lrs": (1e-3,), "device": "cpu"}


@dataclass(frozen=True)
class Config(TokenRunSettings):
    """One study (smoke defaults; ``parameters/{quick,full}/04_dna.yaml`` scale it).

    The R²MAE interval is declared here (and in the YAML) before any run; the scheduled baseline decays
    linearly over the same interval, from ``r2mae_high`` to ``r2mae_low``; the curriculum masks a fixed
    ``curriculum_ratio`` in contiguous spans whose mean length grows linearly from 1 token to
    ``curriculum_max_span`` over training.
    """

    seed: int = param(0, check_seed)
    n_seeds: int = param(2, count(1))
    sizes: tuple[str, ...] = param(("XS",), check_choices, choices=SIZES, min_len=1)
    main_size: str = param("XS", check_choice, choices=SIZES)
    sweep_ratios: tuple[float, ...] = param((0.15, 0.3), check_ratios)
    baselines: tuple[str, ...] = param(BASELINES, check_choices, choices=BASELINES)
    r2mae_low: float = param(0.15, check_ratio)
    r2mae_high: float = param(0.45, check_ratio)
    r2mae_per: str = param("batch", check_per)
    curriculum_ratio: float = param(0.15, check_ratio)
    curriculum_max_span: float = param(6.0, check_number, low=1)
    kmer: int = param(1, count(1, 6))
    window: int = param(64, count(16))
    genomes: tuple[str, ...] = param(("dm_chr2r",), check_choices, choices=GENOMES, min_len=1)
    pretrain_windows: int = param(2000, count(1))
    pretrain_max_n_frac: float = param(0.1, check_number, low=0, high=1)
    rc_augment: bool = param(False, check_bool)
    steps: int = param(20, count(1))
    batch_size: int = param(32, count(1))
    lr: float = param(2e-3, POSITIVE)
    warmup: float = param(0.1, WARMUP)
    weight_decay: float = param(0.01, NON_NEGATIVE)
    test_ratios: tuple[float, ...] = param((0.15,), check_ratios)
    mlm_eval: int = param(200, count(1))
    probe_train: int = param(300, count(12))
    probe_eval: int = param(100, count(12))
    kmer_counts_k: int = param(6, count(1))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.window % self.kmer:
            raise ValueError(f"window={self.window} is not allowed: use a multiple of kmer={self.kmer}")
        check_member("main_size", self.main_size, "sizes", self.sizes)
        self.methods()  # one clear line for low > high

    def methods(self) -> list[Method]:
        """Pretraining methods at the main size (records: name, kind, sampler, group, mask options)."""
        return methods(self)

    def seeds(self) -> list[int]:
        """Child seeds of the runs (init, data order and masks); runs of one index are paired."""
        return child_seeds(self.seed, self.n_seeds)

    @property
    def tokenizer(self) -> dna.DNATokenizer:
        return dna.DNATokenizer(self.kmer)

    @property
    def seq_len(self) -> int:
        """Tokens per window, ``[CLS]`` included."""
        return 1 + self.tokenizer.n_tokens(self.window)


def methods(config: Config) -> list[Method]:
    """Fixed ratios of the sweep, then the declared baselines, then R²MAE's equal-effect control
    (:func:`r2mae_core.experiments._token_runs.equal_effect_controls`). Groups: ``fixed``, ``scheduled``,
    ``curriculum`` (a fixed ratio masked in spans whose mean length grows over training: ``mask`` holds
    ``span_start`` and ``span_end``), ``r2mae`` (the declared interval, named by
    :func:`r2mae_core.runs.r2mae_name`), ``diffusion`` (masked diffusion,
    :func:`r2mae_core.runs.masked_diffusion_method`) and ``equivalent`` (the fixed ratio of equal population effect
    of the declared interval)."""
    a, b = config.r2mae_low, config.r2mae_high
    out = [fixed_method(r) for r in config.sweep_ratios]
    named = {"scheduled": Method(f"scheduled {b:g}→{a:g}", "scheduled",
                                 {"kind": "scheduled", "start": b, "end": a, "shape": "linear"}, "scheduled"),
             "curriculum": Method(f"span curriculum 1→{config.curriculum_max_span:g}", "fixed",
                                  {"kind": "fixed", "ratio": float(config.curriculum_ratio)}, "curriculum",
                                  mask={"span_start": 1.0, "span_end": float(config.curriculum_max_span)}),
             "r2mae": r2mae_method(a, b, config.r2mae_per),
             "masked_diffusion": masked_diffusion_method()}
    out += [named[m] for m in config.baselines]
    return out + token_runs.equal_effect_controls(out)


# ------------------------------------------------------------------------------------------ masking step
def mlm_step(first_random_id: int, span_start: float = 1.0, span_end: float = 1.0,
             curriculum: bool = False) -> MLMStep:
    """The MLM step of DNA token models (:class:`r2mae_core.mlm.MLMStep`): only nucleotides / k-mers (ids > N;
    never specials, ``[UNK]``, N or padding) are masked, exactly ``round(m · n_eligible)`` per row —
    independently or, with ``curriculum``, in spans of mean length ``span_start + (span_end − span_start) · t``
    at training progress t — and random replacements are drawn from the nucleotide / k-mer ids
    (``first_random_id`` up)."""
    return MLMStep(dna.MASK_ID, dna.N_ID + 1, first_random_id, span_start, span_end, curriculum)


def step_for(method: Method, first_random_id: int) -> MLMStep:
    """The masking step of ``method`` (:meth:`r2mae_core.mlm.MLMStep.for_mask`: independent masks, or its span
    curriculum ``method.mask``) on the DNA ids; for a masked-diffusion method, Bernoulli masks at each window's
    noise level with the 1/t-weighted loss."""
    if is_masked_diffusion(method):  # its mask record names the weighting, not a span curriculum
        return replace(MLMStep.for_mask(dna.MASK_ID, dna.N_ID + 1, first_random_id, {}), diffusion=True)
    return MLMStep.for_mask(dna.MASK_ID, dna.N_ID + 1, first_random_id, method.mask)


# ----------------------------------------------------------------------------------------------- data
def _corpus_spec(config: Config) -> dict:
    return {"kmer": config.kmer, "window": config.window, "genomes": sorted(config.genomes),
            "pretrain_windows": config.pretrain_windows, "pretrain_max_n_frac": config.pretrain_max_n_frac,
            "rc_augment": config.rc_augment, "mlm_eval": config.mlm_eval, "probe_train": config.probe_train,
            "probe_eval": config.probe_eval, "split_seed": _SPLIT_SEED, "leak_k": LEAK_K,
            "leak_threshold": LEAK_THRESHOLD, "format": 2}


def data_digest(config: Config) -> str:
    """The digest of the corpus every run of ``config`` trains and is evaluated on
    (:func:`r2mae_core.records.record_digest`; each run's record carries the one it used)."""
    return record_digest(corpus(config))


def data_checksum(config: Config) -> str:
    """The checksum of the data every run of ``config`` reads (part of every run's key)."""
    return _data_checksum(config.genomes)


def data_names(config: Config) -> list[str]:
    """The prepared datasets the runs of ``config`` read (``data/<name>/``): the task sources and the genomes."""
    return _data_names(config.genomes)


def _data_names(genomes=()) -> list[str]:
    return ["dm_genes", "dm_chr2r", "dm_promoters", "bacteria", *sorted(set(genomes) - {"dm_chr2r", "bacteria"})]


def _data_checksum(genomes=()) -> str:
    return "".join(datasets.fingerprint(n) for n in _data_names(genomes))


def _subsample(table: pd.DataFrame, caps: dict[str, int], rng: np.random.Generator) -> pd.DataFrame:
    """At most ``caps[split]`` rows per class in each split (drawn at random, table order kept)."""
    keep = []
    for (split, _), part in table.groupby(["split", "label"], sort=True):
        n = min(len(part), caps[split])
        keep.append(part.index[np.sort(rng.choice(len(part), size=n, replace=False))])
    return table.loc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def _encode(tok: dna.DNATokenizer, codes: list[np.ndarray]) -> np.ndarray:
    """(N, 1 + n_tokens) int32 ids, ``[CLS]`` first, of equal-length code arrays."""
    body = np.stack([tok.encode(c) for c in codes]) if codes else np.zeros((0, tok.n_tokens(0)), np.int64)
    return np.concatenate([np.full((len(body), 1), dna.CLS_ID), body], axis=1).astype(np.int32)


def _build_tasks(spec: dict, fly: dict, bacteria) -> dict[str, dna.Task]:
    window, seed = spec["window"], spec["split_seed"]
    n_cls_species = bacteria.metadata["species"].nunique()
    per_train = -(-(spec["probe_train"] + spec["probe_eval"]) // n_cls_species)
    tasks = {"exon_intron": dna.exon_intron_task(fly["dm_genes"], window=window, chr2r=fly["dm_chr2r"], seed=seed),
             "promoter": dna.promoter_task(fly["dm_promoters"], fly["dm_chr2r"], length=window, seed=seed),
             "species": dna.species_task(bacteria, min_length=window, max_length=window, n_train=per_train,
                                         n_test=_SPECIES_TEST_SLACK * -(-spec["probe_eval"] // n_cls_species),
                                         seed=seed)}
    return {name: dna.with_validation(t, _VAL_FRACTION, seed=seed, unit="row" if name == "species" else "group")
            for name, t in tasks.items()}


def _build_corpus(spec: dict) -> dict:
    tok = dna.DNATokenizer(spec["kmer"])
    rng = numpy_generator(spec["split_seed"])
    genomes = {g: datasets.load(g) for g in sorted(set(spec["genomes"]) | {"dm_chr2r", "bacteria"})}
    fly = {"dm_genes": datasets.load("dm_genes"), "dm_chr2r": genomes["dm_chr2r"],
           "dm_promoters": datasets.load("dm_promoters")}
    tasks = _build_tasks(spec, fly, genomes["bacteria"])
    out = {"tasks": {}, "summary": [], "pretrain": [], "classes": {}}
    # pretraining text: every genome minus the test sources of every task, N runs cut, tiled windows
    tiles = []
    for g in spec["genomes"]:
        regions = dna.pretraining_regions(genomes[g], list(tasks.values()))
        t = dna.tile_regions(genomes[g], regions, spec["window"], max_n_frac=spec["pretrain_max_n_frac"])
        tiles.append(t.assign(genome=g))
        out["pretrain"].append({"genome": g, "genome_bp": int(sum(len(r) for r in genomes[g].records.values())),
                                "pretraining_bp": int(regions["length"].sum()), "windows_available": len(t)})
    tiles = pd.concat(tiles, ignore_index=True)
    pick = np.sort(rng.choice(len(tiles), size=min(spec["pretrain_windows"], len(tiles)), replace=False))
    chosen = tiles.iloc[pick].reset_index(drop=True)
    codes = [genomes[g].records[r][a:b] for g, r, a, b in chosen[["genome", "record", "start", "end"]].itertuples(
        index=False)]
    if spec["rc_augment"]:
        codes += [dna.reverse_complement(c) for c in codes]
    out["pretrain_ids"] = _encode(tok, codes)
    pre_codes = np.stack(codes[:len(chosen)]) if len(chosen) else np.zeros((0, spec["window"]), np.uint8)
    for row in out["pretrain"]:
        row["windows_used"] = int((chosen["genome"] == row["genome"]).sum()) * (2 if spec["rc_augment"] else 1)
    # held-out text for the masked-nucleotide evaluation: the test sources on chr2R
    held_tiles = dna.tile_regions(genomes["dm_chr2r"], _test_source_regions(tasks), spec["window"])
    held_tiles, out["leak_drops"] = _drop_held_near_copies(held_tiles, genomes["dm_chr2r"], pre_codes)
    mlm = held_tiles.iloc[np.sort(rng.choice(len(held_tiles), size=min(spec["mlm_eval"], len(held_tiles)),
                                             replace=False))]
    out["mlm_ids"] = _encode(tok, [genomes["dm_chr2r"].records[r][a:b] for r, a, b in
                                   mlm[["record", "start", "end"]].itertuples(index=False)])
    overlap_mlm = dna.count_overlaps(mlm, chosen)
    # probe subsets, tokenised
    caps = {"train": spec["probe_train"], "val": spec["probe_eval"], "test": spec["probe_eval"]}
    for name, task in tasks.items():
        k = len(task.classes)
        clean, drops = _drop_near_copies(name, task.table, pre_codes, spec["split_seed"])
        out["leak_drops"] += drops
        table = _subsample(clean, {s: c // k for s, c in caps.items()}, rng)
        overlap = dna.count_overlaps(table[table["split"] == "test"].assign(
            record=lambda d: d["record"].astype(str)), chosen)
        out["tasks"][name] = {}
        for split in ("train", "val", "test"):
            part = table[table["split"] == split]
            enc = dna.tokenize_windows(part["sequence"].tolist(), tok, 1 + tok.n_tokens(spec["window"]))
            out["tasks"][name][split] = {"ids": enc["input_ids"].astype(np.int32), "attn": enc["attention_mask"],
                                         "y": part["y"].to_numpy(np.int64), "text": part["sequence"].tolist()}
            for label, g in part.groupby("label", sort=True):
                out["summary"].append({
                    "task": name, "split": split, "label": label, "windows": len(g),
                    "fraction": len(g) / len(part), "groups": g["group"].nunique(),
                    "unit": {"exon_intron": "gene", "promoter": "1 Mb block", "species": "strain"}[name],
                    "gc": float(g["gc"].mean()), "softmask_frac": float(g["softmask_frac"].mean()),
                    "test_overlap_pretraining": overlap if split == "test" else 0})
        out["classes"][name] = list(task.classes)
    out["mlm_overlap_pretraining"] = overlap_mlm
    return out


def _near_copies(query, references: dict[str, object]) -> tuple[np.ndarray, list[dict]]:
    """Whether each query window is a near-copy (containment >= ``LEAK_THRESHOLD`` of its canonical ``LEAK_K``-mers,
    :func:`r2mae_core.leakage.containment`) of any reference, and per reference the number flagged."""
    flagged, rows = np.zeros(len(query), dtype=bool), []
    for ref_name, ref in references.items():
        hit = leakage.containment(query, ref, LEAK_K) >= LEAK_THRESHOLD  # nan (no k-mer) is never a copy
        flagged |= hit
        rows.append({"reference": ref_name, "candidates": len(query), "flagged": int(hit.sum())})
    return flagged, rows


def _drop_near_copies(name: str, table: pd.DataFrame, pre_codes: np.ndarray,
                      seed: int) -> tuple[pd.DataFrame, list[dict]]:
    """``table`` without its test windows that are near-copies of the task's training windows (train and val:
    what the probe sees) or of the pretraining windows, then rebalanced: every class of the test split is cut
    to the smallest class count at random (generator seeded by ``seed``). Rows: task, reference, candidates,
    flagged, dropped (for either reference), rebalanced (further test windows dropped to keep classes equal)."""
    test = (table["split"] == "test").to_numpy()
    flagged, rows = _near_copies(table.loc[test, "sequence"].tolist(),
                                 {"training": table.loc[~test, "sequence"].tolist(), "pretraining": pre_codes})
    kept = table.drop(index=table.index[test][flagged])
    counts = kept.loc[kept["split"] == "test", "label"].value_counts()
    rng, cut = numpy_generator(seed), []
    for label in sorted(counts.index):
        idx = kept.index[((kept["split"] == "test") & (kept["label"] == label)).to_numpy()]
        cut += rng.choice(idx, size=int(counts[label] - counts.min()), replace=False).tolist()
    drops = [{"task": name, **r, "dropped": int(flagged.sum()), "rebalanced": len(cut)} for r in rows]
    return kept.drop(index=cut), drops


def _drop_held_near_copies(tiles: pd.DataFrame, chr2r, pre_codes: np.ndarray) -> tuple[pd.DataFrame, list[dict]]:
    """The held-out tiles of the masked-nucleotide evaluation without the near-copies of pretraining windows."""
    codes = [chr2r.records[r][a:b] for r, a, b in tiles[["record", "start", "end"]].itertuples(index=False)]
    query = np.stack(codes) if codes else np.zeros((0, 1), np.uint8)
    flagged, rows = _near_copies(query, {"pretraining": pre_codes})
    return (tiles[~flagged].reset_index(drop=True),
            [{"task": MLM_EVAL, **r, "dropped": int(flagged.sum()), "rebalanced": 0} for r in rows])


def _test_source_regions(tasks: dict[str, dna.Task]) -> pd.DataFrame:
    """Merged test sources (test genes, test blocks) on chr2R."""
    src = pd.concat([tasks[t].test_sources for t in ("exon_intron", "promoter")], ignore_index=True)
    src = src[src["record"] == "chr2R"].sort_values("start")
    merged = []
    for a, b in src[["start", "end"]].to_numpy(np.int64):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return pd.DataFrame({"record": "chr2R", "start": [m[0] for m in merged], "end": [m[1] for m in merged]})


@lru_cache(maxsize=2)
def _corpus_cached(key: str, spec_items: tuple) -> dict:
    spec = {k: list(v) if isinstance(v, tuple) else v for k, v in spec_items}
    return cached("dna_corpus", spec, lambda: _build_corpus(spec), data_checksum=_data_checksum(spec["genomes"]))


def corpus(config: Config) -> dict:
    """Tasks (tokenised probe subsets per split), pretraining ids and held-out evaluation ids (cached)."""
    return _corpus_of(_corpus_spec(config))


# ------------------------------------------------------------------------------------------ evaluation
def _task_rows(task: str, res: dict, binary: bool) -> list[dict]:
    metric_keys = {"mcc": "mcc", "f1": "f1" if binary else "macro_f1", "acc": "acc"}
    return [{"split": split, "task": task, "metric": m, "value": res[f"{split}_{k}"]}
            for split in ("val", "test") for m, k in metric_keys.items()]


def _evaluate(model, corp: dict, evaluation: dict, device) -> list[dict]:
    """Masked-nucleotide loss / accuracy / perplexity on held-out text at the test ratios, and a linear probe
    (C chosen on validation MCC) on mean-pooled frozen features of every task (rows: split/task/metric)."""
    device = torch.device(device)
    model = model.to(device).eval()
    rows = []
    for r in evaluation["test_ratios"]:
        loss, acc = evaluate.mlm_eval(model, corp["mlm_ids"], r, mlm_step(evaluation["first_random_id"]),
                                      seed=_EVAL_SEED, device=device)
        rows += [{"split": "test", "task": f"mlm@{r:g}", "metric": m, "value": v}
                 for m, v in (("loss", loss), ("acc", acc), ("perplexity", math.exp(loss)))]
    for task, d in corp["tasks"].items():
        feats = {s: token_runs.features(model, d[s]["ids"].astype(np.int64), d[s]["attn"], device) for s in d}
        res = token_runs.probe(*[(feats[s], d[s]["y"]) for s in ("train", "val", "test")], metric="mcc")
        binary = len(corp["classes"][task]) == 2
        rows += _task_rows(task, res, binary)
        if evaluation["finetune_epochs"]:
            ft = token_runs.finetune(model, *[(d[s]["ids"].astype(np.int64), d[s]["attn"], d[s]["y"])
                                              for s in ("train", "val", "test")], metric="mcc",
                                     epochs=evaluation["finetune_epochs"], lr=tuple(evaluation["finetune_lrs"]),
                                     device=device)
            rows += _task_rows(f"{task}_ft", ft, binary)
            rows.append({"split": "val", "task": f"{task}_ft", "metric": "lr", "value": ft["lr"]})
    return rows


def evaluation_spec(config: Config) -> dict:
    """How every run is evaluated: the masked-nucleotide test ratios, the tokenizer's first random id and, only
    with fine-tuning, its epochs and learning rates (runs of profiles without it keep their keys)."""
    out = {"test_ratios": list(config.test_ratios), "first_random_id": config.tokenizer.first_random_id,
           "finetune_epochs": config.finetune_epochs}
    if config.finetune_epochs:
        out["finetune_lrs"] = sorted(config.finetune_lrs)
    return out


def plan(config: Config) -> list[RunSpec]:
    """Every run of the study (:func:`r2mae_core.experiments._token_runs.token_plan`)."""
    models = {size: {"vocab_size": config.tokenizer.vocab_size, "max_len": config.seq_len, **SIZES[size]}
              for size in {*config.sizes, config.main_size}}
    return token_runs.token_plan(config, methods(config), namespace=NAMESPACE, models=models,
                                 data=_corpus_spec(config), evaluation=evaluation_spec(config))


def _corpus_of(spec: dict) -> dict:
    items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.items()))
    return _corpus_cached(cache_key("dna_corpus", spec), items)


def work(group: list[RunSpec], options: Options) -> list[dict]:
    """The engine's work on a group of DNA runs: pretrain them with their masking step (:func:`step_for`; one by
    one and resumable, or as one ensemble), then :func:`_evaluate` each. Records: ``metrics``
    (split/task/metric/value rows), ``history``, ``seconds`` (pretraining), ``eval_seconds`` and ``data_digest``
    (of the corpus)."""
    first = group[0]
    corp = _corpus_of(first.data)
    models = [build_model("text_encoder", seed=spec.seed, **spec.model) for spec in group]
    step = step_for(first.method, first.evaluation["first_random_id"])
    trained = token_runs.pretrain_group(group, models, torch.as_tensor(corp["pretrain_ids"], dtype=torch.long),
                                        step, options, code=code_fingerprint(__name__))
    digest = record_digest(corp)
    return token_runs.evaluated_records(group, trained, _evaluate, corp, options.device, digest)


def _kmer_rows(corp: dict, k: int) -> list[dict]:
    """Overlapping k-mer counts (all lengths 1..k, sklearn ``CountVectorizer``) + L2 logistic regression
    (sklearn ``LogisticRegression``), ``C`` chosen on validation MCC: the alignment-free reference."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import CountVectorizer

    rows = []
    for task, d in corp["tasks"].items():
        vec = CountVectorizer(analyzer="char", ngram_range=(1, k), lowercase=False).fit(d["train"]["text"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter caps the cost; C is chosen on val
            res = token_runs.probe(*[(vec.transform(d[s]["text"]).astype(np.float64), d[s]["y"])
                                     for s in ("train", "val", "test")], metric="mcc", Cs=(0.01, 0.1, 1.0),
                                   max_iter=300, solver="sklearn", standardize=False)
        rows += _task_rows(task, res, len(corp["classes"][task]) == 2)
    return rows


def _kmer_reference(config: Config, corp: dict) -> list[dict]:
    """The k-mer rows (:func:`_kmer_rows`, k = ``config.kmer_counts_k``) of ``config``'s corpus ``corp``, cached."""
    return cached("dna_kmer_counts", {**_corpus_spec(config), "k": config.kmer_counts_k},
                  lambda: _kmer_rows(corp, config.kmer_counts_k), data_checksum=_data_checksum(config.genomes))


def _window_codes(tok: dna.DNATokenizer, ids: np.ndarray) -> np.ndarray | list[str]:
    """The DNA behind rows of token ids (``[CLS]`` and padding dropped): a code matrix (``A C G T N = 0..4``,
    specials as N) for single nucleotides, decoded strings for k-mer tokens."""
    ids = np.asarray(ids)
    if tok.k == 1:
        return np.where(ids > dna.N_ID, ids - dna.N_ID - 1, 4).astype(np.uint8)
    return [tok.decode(row) for row in ids]


def _leakage_rows(corp: dict, kmer: int) -> list[dict]:
    """Containment of every test window of the corpus in its task's training windows (train + val subsets) and in
    the pretraining windows, summarised (:func:`r2mae_core.leakage.summarise`) and joined to the windows the
    corpus build dropped."""
    tok = dna.DNATokenizer(kmer)
    pre = _window_codes(tok, corp["pretrain_ids"][:, 1:])
    queries = {name: _window_codes(tok, d["test"]["ids"][:, 1:]) for name, d in corp["tasks"].items()}
    queries[MLM_EVAL] = _window_codes(tok, corp["mlm_ids"][:, 1:])
    names = list(queries)
    stacked = [q for n in names for q in queries[n]] if tok.k > 1 else np.concatenate([queries[n] for n in names])
    vs_pre = np.split(leakage.containment(stacked, pre, LEAK_K), np.cumsum([len(queries[n]) for n in names])[:-1])
    n_pre = sum(max(len(r) - LEAK_K + 1, 0) for r in pre)
    drops = {(r["task"], r["reference"]): r for r in corp["leak_drops"]}
    rows = []
    for name, c_pre in zip(names, vs_pre, strict=True):
        refs = {"pretraining": (c_pre, n_pre)}
        if name in corp["tasks"]:
            d = corp["tasks"][name]
            train = _window_codes(tok, np.concatenate([d["train"]["ids"], d["val"]["ids"]])[:, 1:])
            n_train = sum(max(len(r) - LEAK_K + 1, 0) for r in train)
            refs = {"training": (leakage.containment(queries[name], train, LEAK_K), n_train), **refs}
        for ref, (values, n_ref) in refs.items():
            drop = drops.get((name, ref), {})
            rows.append({"task": name, "reference": ref, "k": LEAK_K, "threshold": LEAK_THRESHOLD,
                         "candidates": drop.get("candidates", np.nan), "flagged": drop.get("flagged", np.nan),
                         "flagged_frac": drop.get("flagged", np.nan) / drop.get("candidates", np.nan),
                         "dropped": drop.get("dropped", np.nan), "rebalanced": drop.get("rebalanced", np.nan),
                         **leakage.summarise(values, LEAK_THRESHOLD),
                         "chance_max": leakage.chance_containment(int(n_ref), LEAK_K)})
    return rows


def leakage_table(config: Config, corp: dict | None = None) -> pd.DataFrame:
    """The near-copy audit of ``config``'s test splits, cached: one row per (task, reference).

    Columns: ``k`` and ``threshold``; ``candidates`` (the task's test windows before the subsets are drawn),
    ``flagged`` against this reference and ``flagged_frac`` of the candidates (the leakage of the split as built;
    reference ``training`` here = the task's whole train + val split), ``dropped`` (against either reference) and
    ``rebalanced`` (further windows cut to keep the classes equal); then on the test windows *used*: ``n``,
    ``n_above`` / ``frac_above`` (containment >= threshold), mean, median, p90, p99 and max containment, and
    ``chance_max``, the chance containment of a random window (:func:`r2mae_core.leakage.chance_containment`) at
    the reference's total k-mer count. Reference ``training``: the probe's train + val windows of the task;
    ``pretraining``: every pretraining window (reverse complements count as copies: canonical k-mers).
    """
    corp = corpus(config) if corp is None else corp
    rows = cached("dna_leakage", {**_corpus_spec(config), "k": LEAK_K, "threshold": LEAK_THRESHOLD},
                  lambda: {"rows": pd.DataFrame(_leakage_rows(corp, config.kmer))},
                  data_checksum=_data_checksum(config.genomes))
    return rows["rows"]


def run(config: Config, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The study: fixed-ratio sweep at every size, baselines at the main size, random-init and k-mer rows.

    ``config.threads`` > 0 sets torch's intra-op threads for the duration (restored on return). Thread counts are
    not part of the cache key.

    Returns
    -------
    dict of DataFrame
        ``metrics`` (the method's columns: method, group, kind, ratio, ...; size, seed index, split, task, metric,
        value), ``history`` (method, size,
        seed, step, loss, ratio_mean), ``runs`` (method, size, seed, seconds, tokens), ``tasks`` (per task,
        split and label: windows, fraction, held-out groups, GC, soft-masked fraction, test windows overlapping
        pretraining text), ``pretraining`` (per genome: bp, usable bp, windows) and ``leakage`` (the near-copy
        audit of every test split, :func:`leakage_table`).
    """
    return token_runs.with_threads(config.threads, _run, config, progress)


def _run(config: Config, progress: bool) -> dict[str, pd.DataFrame]:
    corp = corpus(config)
    runs_ = plan(config)
    results = execute(runs_, work, options=Options(device=config.device, threads=config.threads),
                      workers=config.workers, group_size=config.ensemble_size,
                      data_checksum=data_checksum(config), desc="04 runs", progress=progress)
    metrics, history, runs = token_runs.tables(runs_, results, config.seq_len)
    metrics += token_runs.reference_rows("k-mer counts + LR", _kmer_reference(config, corp), config.n_seeds)
    pre = pd.DataFrame(corp["pretrain"]).assign(window_bp=config.window, tokens_per_window=config.seq_len,
                                                rc_augment=config.rc_augment)
    tasks = pd.DataFrame(corp["summary"])
    mlm = pd.DataFrame([{"task": "masked-nucleotide eval (test sources, chr2R)", "split": "test", "label": "-",
                         "windows": len(corp["mlm_ids"]), "fraction": 1.0, "groups": np.nan, "unit": "-",
                         "gc": np.nan, "softmask_frac": np.nan,
                         "test_overlap_pretraining": corp["mlm_overlap_pretraining"]}])
    return {"metrics": pd.DataFrame(metrics), "history": token_runs.history_table(history),
            "runs": pd.DataFrame(runs), "tasks": pd.concat([tasks, mlm], ignore_index=True), "pretraining": pre,
            "leakage": leakage_table(config, corp)}


def config_dict(config: Config) -> dict:
    """The config as plain values (for the notebook's record)."""
    return asdict(config)
