"""03_language: masked language modelling on the Brown corpus — fixed ratios vs model size, R²MAE vs fixed and
scheduled ratios; downstream genre (15-way), spam vs ham and POS tagging by linear probes on frozen features.

``run(config)`` returns tidy tables; :mod:`r2mae_core.experiments.language_claims` turns them into the claims
L1–L5 and S1. Every pretraining run (and its evaluation) is cached per (run spec, seed, evaluation spec, data).

Data (:mod:`r2mae_core.text`): byte-level BPE trained on the training documents of Brown; Brown split by
document (stratified by genre, fixed seed 0: 352 / 74 / 74 documents train / val / test); pretraining sees the
packed training documents only. SpamAssassin messages are split 60 / 20 / 20 (stratified by label, fixed seed)
and each is truncated to its first ``seq_len − 2`` tokens. Probes fit on train, choose their inverse L2
strength ``C`` on val and are scored on val and test; the best fixed ratio of a claim is chosen on val.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from .. import data as datasets
from .. import evaluate, text
from .._rng import child_seeds, numpy_generator
from ..cache import cache_key, cached
from ..data.language import BROWN_GENRES
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
    check_choice,
    check_choices,
    check_fields,
    check_intervals,
    check_member,
    check_per,
    check_ratio,
    check_ratios,
    check_seed,
    count,
    param,
)
from . import _token_runs as token_runs
from ._token_runs import SIZES, TokenRunSettings

__all__ = ["Config", "SIZES", "TASKS", "NAMESPACE", "DRY_RUN", "run", "methods", "plan", "work", "evaluation_spec",
           "corpus", "data_names", "data_checksum", "data_digest", "mlm_step", "step_for"]

#: Tasks and their score (higher is better): metric names of the tidy table.
TASKS: dict[str, str] = {"genre": "macro_f1", "spam": "f1", "pos": "acc", "mlm": "neg_loss"}
BASELINES = ("mrd_cosine", "mrd_linear", "scheduled", "r2mae", "masked_diffusion")
ABLATIONS = ("r2mae_sample",)
_DATASETS = ("brown", "spam_assassin")
_SPLIT_SEED = 0  # data splits and probe subsets: fixed, independent of the run seed
_EVAL_SEED = 12345  # masks of the MLM evaluation: the same for every model
NAMESPACE = "language_runs"
#: A dry run of a profile (:mod:`r2mae_core.campaign`): every size and method of its plan (one seed) and every code
#: path of training and evaluation, with two steps on small data.
DRY_RUN = {"n_seeds": 1, "steps": 2, "batch_size": 8, "probe_train": 60, "probe_eval": 30, "pos_train_tokens": 300,
           "pos_eval_tokens": 150, "spam_train": 40, "spam_eval": 20, "finetune_epochs": 1, "finetune_lrs": (1e-3,),
           "device": "cpu"}


@dataclass(frozen=True)
class Config(TokenRunSettings):
    """One study (smoke defaults; ``parameters/{quick,full}/03_language.yaml`` scale it).

    The R²MAE interval is declared here (and in the YAML) before any run; the scheduled baseline decays
    linearly over the same interval, from ``r2mae_high`` to ``r2mae_low``.
    """

    seed: int = param(0, check_seed)
    n_seeds: int = param(3, count(1))
    sizes: tuple[str, ...] = param(("S",), check_choices, choices=SIZES, min_len=1)
    main_size: str = param("S", check_choice, choices=SIZES)
    sweep_ratios: tuple[float, ...] = param((0.15, 0.4), check_ratios)
    baselines: tuple[str, ...] = param(BASELINES, check_choices, choices=BASELINES)
    ablations: tuple[str, ...] = param((), check_choices, choices=ABLATIONS)
    ablation_intervals: tuple[tuple[float, float], ...] = param((), check_intervals)
    r2mae_low: float = param(0.15, check_ratio)
    r2mae_high: float = param(0.45, check_ratio)
    r2mae_per: str = param("batch", check_per)
    primary_task: str = param("downstream", check_choice, choices=(*TASKS, "downstream"))
    vocab_size: int = param(1024, count(300))
    seq_len: int = param(64, count(8))
    steps: int = param(30, count(1))
    batch_size: int = param(32, count(1))
    lr: float = param(1e-3, POSITIVE)
    warmup: float = param(0.1, WARMUP)
    weight_decay: float = param(0.01, NON_NEGATIVE)
    test_ratios: tuple[float, ...] = param((0.15, 0.4), check_ratios)
    probe_train: int = param(400, count(1))
    probe_eval: int = param(200, count(1))
    pos_train_tokens: int = param(3000, count(1))
    pos_eval_tokens: int = param(1500, count(1))
    spam_train: int = param(300, count(1))
    spam_eval: int = param(150, count(1))

    def __post_init__(self) -> None:
        check_fields(self)
        check_member("main_size", self.main_size, "sizes", self.sizes)
        self.methods()  # one clear line for low > high

    def methods(self) -> list[Method]:
        """Pretraining methods at the main size (records: name, kind, sampler, group)."""
        return methods(self)

    def seeds(self) -> list[int]:
        """Child seeds of the runs (init, data order and masks); runs of one index are paired."""
        return child_seeds(self.seed, self.n_seeds)


def methods(config: Config) -> list[Method]:
    """Fixed ratios of the sweep, then the declared baselines and ablations, then the equal-effect control of each
    R²MAE interval (:func:`r2mae_core.experiments._token_runs.equal_effect_controls`). Groups: ``fixed``, ``mrd``,
    ``scheduled``, ``r2mae`` (the declared interval, named by :func:`r2mae_core.runs.r2mae_name`), ``diffusion``
    (masked diffusion, :func:`r2mae_core.runs.masked_diffusion_method`), ``equivalent`` (the fixed ratio of equal
    population effect of the declared interval) and ``ablation`` (with the controls of the ablation intervals)."""
    a, b, per = config.r2mae_low, config.r2mae_high, config.r2mae_per
    out = [fixed_method(r) for r in config.sweep_ratios]
    named = {"mrd_cosine": Method("MRD cosine", "mrd", {"kind": "mrd", "shape": "cosine"}, "mrd"),
             "mrd_linear": Method("MRD linear", "mrd", {"kind": "mrd", "shape": "linear"}, "mrd"),
             "scheduled": Method(f"scheduled {b:g}→{a:g}", "scheduled",
                                 {"kind": "scheduled", "start": b, "end": a, "shape": "linear"}, "scheduled"),
             "r2mae": r2mae_method(a, b, per),
             "r2mae_sample": r2mae_method(a, b, "sample", group="ablation"),
             "masked_diffusion": masked_diffusion_method()}
    out += [named[m] for m in config.baselines] + [named[m] for m in config.ablations]
    out += [r2mae_method(lo, hi, per, group="ablation") for lo, hi in config.ablation_intervals]
    return out + token_runs.equal_effect_controls(out)


# ----------------------------------------------------------------------------------------------- data


def _corpus_spec(config: Config) -> dict:
    return {"vocab_size": config.vocab_size, "seq_len": config.seq_len, "probe_train": config.probe_train,
            "probe_eval": config.probe_eval, "pos_train_tokens": config.pos_train_tokens,
            "pos_eval_tokens": config.pos_eval_tokens, "spam_train": config.spam_train,
            "spam_eval": config.spam_eval, "split_seed": _SPLIT_SEED, "format": 1}


def data_digest(config: Config) -> str:
    """The digest of the corpus every run of ``config`` trains and is evaluated on
    (:func:`r2mae_core.records.record_digest`; each run's record carries the one it used)."""
    return record_digest(corpus(config))


def data_names(config: Config) -> list[str]:
    """The prepared datasets the runs of ``config`` read (``data/<name>/``)."""
    return list(_DATASETS)


def data_checksum(config: Config) -> str:
    """The checksum of the data every run of ``config`` reads (part of every run's key)."""
    return _data_checksum()


def _data_checksum() -> str:
    return "".join(datasets.fingerprint(name) for name in _DATASETS)


def _build_corpus(spec: dict) -> dict:
    brown = datasets.load("brown")
    doc_split = text.split_documents(brown, seed=spec["split_seed"])
    train_rows = brown[brown["doc_id"].map(doc_split) == "train"]
    tok = text.train_tokenizer((" ".join(w) for w in train_rows["words"]), spec["vocab_size"])
    tag_names = text.tag_vocabulary(train_rows["tags"])
    docs = sorted(doc_split)
    grouped = brown.groupby("doc_id", sort=True)
    seqs = text.pack_documents(tok, [grouped.get_group(d)["words"].tolist() for d in docs], spec["seq_len"],
                               tags=[grouped.get_group(d)["tags"].tolist() for d in docs], tag_names=tag_names)
    genres = sorted(BROWN_GENRES.values())
    doc_genre = brown.drop_duplicates("doc_id").set_index("doc_id")["genre"].map(genres.index)
    seq_split = np.array([doc_split[docs[g]] for g in seqs.group])
    rng = numpy_generator(spec["split_seed"])
    out = {"tokenizer": tok.to_str(), "tag_names": tag_names, "genres": genres,
           "pretrain_ids": seqs.input_ids[seq_split == "train"], "brown": {}, "spam": {}, "summary": []}
    caps = {"train": spec["probe_train"], "val": spec["probe_eval"], "test": spec["probe_eval"]}
    for split, cap in caps.items():
        idx = np.flatnonzero(seq_split == split)
        idx = np.sort(idx[rng.permutation(idx.size)[:cap]])
        sub = seqs.subset(idx)
        cap_tok = spec["pos_train_tokens"] if split == "train" else spec["pos_eval_tokens"]
        rows, cols = np.nonzero(sub.tags >= 0)
        keep = np.sort(rng.permutation(rows.size)[:cap_tok])
        out["brown"][split] = {
            "ids": sub.input_ids, "attn": sub.attention_mask,
            "genre": doc_genre.loc[[docs[g] for g in sub.group]].to_numpy(dtype=np.int64),
            "pos_rows": rows[keep], "pos_cols": cols[keep], "pos": sub.tags[rows[keep], cols[keep]],
            "text": [tok.decode(r.tolist()) for r in sub.input_ids]}
        n_docs = sum(v == split for v in doc_split.values())
        out["summary"].append({"dataset": "brown", "split": split, "documents": n_docs,
                               "sequences": int((seq_split == split).sum()), "probe_sequences": len(idx),
                               "pos_tokens": int(keep.size), "cut_sentences": seqs.n_cut if split == "train" else 0})
    spam = datasets.load("spam_assassin")
    spam_split = text.split_stratified(spam["label"].to_numpy(), val_fraction=0.2, test_fraction=0.2,
                                       seed=spec["split_seed"])
    caps = {"train": spec["spam_train"], "val": spec["spam_eval"], "test": spec["spam_eval"]}
    for split, cap in caps.items():
        idx = np.flatnonzero(spam_split == split)
        idx = np.sort(idx[rng.permutation(idx.size)[:cap]])
        enc = text.encode_texts(tok, spam["text"].iloc[idx].tolist(), spec["seq_len"])
        out["spam"][split] = {"ids": enc.input_ids, "attn": enc.attention_mask,
                              "label": spam["label"].to_numpy(dtype=np.int64)[idx],
                              "text": [tok.decode(r.tolist()) for r in enc.input_ids]}
        out["summary"].append({"dataset": "spam_assassin", "split": split,
                               "documents": int((spam_split == split).sum()), "sequences": len(idx),
                               "probe_sequences": len(idx), "pos_tokens": 0, "cut_sentences": enc.n_cut})
    return out


@lru_cache(maxsize=4)
def _corpus_cached(key: str, spec_items: tuple) -> dict:
    spec = dict(spec_items)
    return cached("language_corpus", spec, lambda: _build_corpus(spec), data_checksum=_data_checksum())


def corpus(config: Config) -> dict:
    """Tokenizer (JSON), pretraining ids of the training documents, probe subsets per split (cached)."""
    spec = _corpus_spec(config)
    return _corpus_cached(cache_key("language_corpus", spec), tuple(sorted(spec.items())))


# ------------------------------------------------------------------------------------------ training


mlm_step = MLMStep(text.MASK_ID, first_eligible_id=text.N_SPECIAL, first_random_id=text.N_SPECIAL)
"""The MLM step of the language models (:class:`r2mae_core.mlm.MLMStep`): an exact-count random subset of the
eligible (non-special, non-padding) tokens at each row's ratio, BERT 80/10/10 corruption with random
replacements from the non-special ids."""


def step_for(method: Method) -> MLMStep:
    """The training step of ``method``: :data:`mlm_step`, or its masked-diffusion form (Bernoulli masks at each
    sequence's noise level, all [MASK], 1/t-weighted loss) for a masked-diffusion method. Every run is evaluated
    with :data:`mlm_step`."""
    return replace(mlm_step, diffusion=True) if is_masked_diffusion(method) else mlm_step


def _evaluate(model, corp: dict, evaluation: dict, device) -> list[dict]:
    """Every metric of one model: MLM at the test ratios, genre, spam and POS probes and, with
    ``finetune_epochs``, fine-tuning (rows: split/task/metric)."""
    device = torch.device(device)
    model = model.to(device).eval()
    rows = []
    feats, toks, spam = {}, {}, {}
    for split, d in corp["brown"].items():
        feats[split], toks[split] = token_runs.features(model, d["ids"], d["attn"], device, d["pos_rows"],
                                                        d["pos_cols"])
        s = corp["spam"][split]
        spam[split] = token_runs.features(model, s["ids"], s["attn"], device)
        if split != "train":
            for r in evaluation["test_ratios"]:
                loss, acc = evaluate.mlm_eval(model, d["ids"], r, mlm_step, seed=_EVAL_SEED, device=device)
                rows += [{"split": split, "task": f"mlm@{r:g}", "metric": "loss", "value": loss},
                         {"split": split, "task": f"mlm@{r:g}", "metric": "acc", "value": acc}]
            rows.append({"split": split, "task": "mlm", "metric": "neg_loss",
                         "value": -float(np.mean([x["value"] for x in rows if x["split"] == split
                                                  and x["task"].startswith("mlm@") and x["metric"] == "loss"]))})
    b, s = corp["brown"], corp["spam"]
    probe = token_runs.probe
    results = {"genre": probe(*[(feats[k], b[k]["genre"]) for k in ("train", "val", "test")], metric="macro_f1"),
               "spam": probe(*[(spam[k], s[k]["label"]) for k in ("train", "val", "test")], metric="f1"),
               "pos": probe(*[(toks[k], b[k]["pos"]) for k in ("train", "val", "test")], metric="acc")}
    if evaluation["finetune_epochs"]:
        for task, d, label, metric in (("genre", b, "genre", "macro_f1"), ("spam", s, "label", "f1")):
            results[f"{task}_ft"] = token_runs.finetune(
                model, *[(d[k]["ids"], d[k]["attn"], d[k][label]) for k in ("train", "val", "test")], metric=metric,
                epochs=evaluation["finetune_epochs"], lr=tuple(evaluation["finetune_lrs"]), device=device)
    for task, res in results.items():
        for split in ("val", "test"):
            for metric in (("acc", "macro_f1") if not task.startswith("spam") else ("acc", "f1")):
                rows.append({"split": split, "task": task, "metric": metric, "value": res[f"{split}_{metric}"]})
        if "lr" in res:  # fine-tuning: the learning rate chosen on validation
            rows.append({"split": "val", "task": task, "metric": "lr", "value": res["lr"]})
    return rows


def evaluation_spec(config: Config) -> dict:
    """How every run is evaluated: the MLM test ratios and, only with fine-tuning, its epochs and learning rates
    (runs of profiles without it keep their keys)."""
    out = {"test_ratios": list(config.test_ratios), "finetune_epochs": config.finetune_epochs}
    if config.finetune_epochs:
        out["finetune_lrs"] = sorted(config.finetune_lrs)
    return out


def plan(config: Config) -> list[RunSpec]:
    """Every run of the study (:func:`r2mae_core.experiments._token_runs.token_plan`)."""
    models = {size: {"vocab_size": config.vocab_size, "max_len": config.seq_len, **SIZES[size]}
              for size in {*config.sizes, config.main_size}}
    return token_runs.token_plan(config, methods(config), namespace=NAMESPACE, models=models,
                                 data=_corpus_spec(config), evaluation=evaluation_spec(config))


def work(group: list[RunSpec], options: Options) -> list[dict]:
    """The engine's work on a group of language runs: pretrain them (:func:`step_for`; one by one and resumable,
    or as one ensemble), then :func:`_evaluate` each. Records: ``metrics`` (split/task/metric/value rows),
    ``history``, ``seconds`` (pretraining), ``eval_seconds`` and ``data_digest``
    (of the corpus)."""
    first = group[0]
    corp = _corpus_cached(cache_key("language_corpus", first.data), tuple(sorted(first.data.items())))
    models = [build_model("text_encoder", seed=spec.seed, **spec.model) for spec in group]
    trained = token_runs.pretrain_group(group, models, torch.as_tensor(corp["pretrain_ids"]), step_for(first.method),
                                        options, code=code_fingerprint(__name__))
    digest = record_digest(corp)
    return token_runs.evaluated_records(group, trained, _evaluate, corp, options.device, digest)


def _tfidf_rows(corp: dict) -> list[dict]:
    """TF-IDF (word unigrams, sublinear tf, min_df 2) + logistic regression on the decoded text the encoder sees
    (the same truncated sequences), ``C`` chosen on val."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows = []
    for task, name, label, metric in (("genre", "brown", "genre", "macro_f1"), ("spam", "spam", "label", "f1")):
        d = corp[name]
        vec = TfidfVectorizer(min_df=2, sublinear_tf=True).fit(d["train"]["text"])
        res = token_runs.probe(*[(vec.transform(d[k]["text"]), d[k][label]) for k in ("train", "val", "test")],
                               metric=metric, Cs=(1.0, 10.0, 100.0), max_iter=300, solver="sklearn", standardize=False)
        for split in ("val", "test"):
            for m in ("acc", "macro_f1") if task == "genre" else ("acc", "f1"):
                rows.append({"split": split, "task": task, "metric": m, "value": res[f"{split}_{m}"]})
    return rows


def _tfidf_reference(config: Config, corp: dict) -> list[dict]:
    """The TF-IDF rows (:func:`_tfidf_rows`) of ``config``'s corpus ``corp``, cached."""
    return cached("language_tfidf", _corpus_spec(config), lambda: _tfidf_rows(corp), data_checksum=_data_checksum())


def run(config: Config, progress: bool = True) -> dict[str, pd.DataFrame]:
    """The study: fixed-ratio sweep at every size, baselines at the main size, random-init and TF-IDF rows.

    ``config.threads`` > 0 sets torch's intra-op threads for the duration (restored on return): on a small shared
    CPU one thread is often faster for these small models. Thread counts are not part of the cache key.

    Returns
    -------
    dict of DataFrame
        ``metrics`` (the method's columns: method, group, kind, ratio, ...; size, seed index, split, task,
        metric, value), ``history`` (method, size, seed, step, loss, ratio_mean), ``runs`` (method, size, seed,
        seconds, tokens) and ``splits``.

    ``config.workers`` > 1 runs that many runs at once, each in its own process (``config.threads`` torch
    threads each; on a 2-core CPU two one-thread workers take about half the wall time of one); the results do
    not depend on it. ``config.ensemble_size`` > 1 trains up to that many runs of one size and schedule as one
    vmapped ensemble (:func:`r2mae_core.ensemble.pretrain_ensemble`; for GPUs): equal to the runs one by one up
    to float rounding (``tests/test_ensemble.py``).
    """
    return token_runs.with_threads(config.threads, _run, config, progress)


def _run(config: Config, progress: bool) -> dict[str, pd.DataFrame]:
    corp = corpus(config)
    runs_ = plan(config)
    results = execute(runs_, work, options=Options(device=config.device, threads=config.threads),
                      workers=config.workers, group_size=config.ensemble_size, data_checksum=data_checksum(config),
                      desc="03 runs", progress=progress)
    metrics, history, runs = token_runs.tables(runs_, results, config.seq_len)
    metrics += token_runs.reference_rows("TF-IDF + LR", _tfidf_reference(config, corp), config.n_seeds)
    summary = pd.DataFrame(corp["summary"]).assign(vocab_size=config.vocab_size, seq_len=config.seq_len,
                                                   pretrain_sequences=len(corp["pretrain_ids"]))
    summary = summary.rename(columns={"cut_sentences": "over_long (brown: sentences cut, all splits; spam: "
                                                       "e-mails truncated)"})
    return {"metrics": pd.DataFrame(metrics), "history": token_runs.history_table(history),
            "runs": pd.DataFrame(runs), "splits": summary}


def config_dict(config: Config) -> dict:
    """The config as plain values (for the notebook's record)."""
    return asdict(config)
