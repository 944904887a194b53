"""03_language: tokenizer and sequences, document split without leakage, MLM masking, the text encoder, claims."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from r2mae_core import text
from r2mae_core.experiments import _token_runs as token_runs
from r2mae_core.experiments import language, language_claims
from r2mae_core.masking import IGNORE_INDEX, make_sampler
from r2mae_core.models import build_model
from r2mae_core.train import TrainConfig, pretrain

WORDS = ("the jury said friday an investigation of recent primary election produced no evidence that any "
         "irregularities took place . city executive committee had over-all charge deserves praise").split()


@pytest.fixture(scope="module")
def tok():
    rng = np.random.default_rng(0)
    return text.train_tokenizer([" ".join(rng.choice(WORDS, 30)) for _ in range(200)], 320)


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_tokenizer_specials_and_vocabulary(tok):
    assert [tok.token_to_id(s) for s in text.SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert tok.get_vocab_size() <= 320


@pytest.mark.parametrize("raw", ["naïve café 日本語 🙂 \ufffd", "bad \ud800 surrogate", b"\xff\xfe bytes",
                                 "nul\x00char\ttab\nnewline", "", None, "   "])
def test_encode_texts_handles_any_unicode_and_empty(tok, raw):
    seqs = text.encode_texts(tok, [raw], 16)
    ids, attn = seqs.input_ids[0], seqs.attention_mask[0]
    assert ids.shape == (16,) and ids[0] == text.CLS_ID
    n = int(attn.sum())
    assert ids[n - 1] == text.SEP_ID and (ids[n:] == text.PAD_ID).all() and attn[:n].all()
    assert (ids[1:n - 1] >= text.N_SPECIAL).all()  # content is never a special token (byte-level: no [UNK])
    if not text.clean_text(raw):
        assert n == 2  # [CLS] [SEP]


def test_encode_texts_roundtrip_and_truncation(tok):
    short = "the jury said 日本 🙂"
    seqs = text.encode_texts(tok, [short, " ".join(WORDS * 5)], 24)
    n = int(seqs.attention_mask[0].sum())
    assert tok.decode(seqs.input_ids[0, 1:n - 1].tolist()).strip() == short
    assert seqs.attention_mask[1].all() and seqs.input_ids[1, -1] == text.SEP_ID  # cut to exactly L
    assert seqs.n_cut == 1


def test_pack_documents_keeps_every_token_and_aligns_tags(tok):
    long_sentence = WORDS * 3  # longer than the context: cut into pieces, nothing lost
    docs = [[WORDS[:5], long_sentence, WORDS[5:9]], [[]], [WORDS[:3]]]
    tags = [[["at"] * 5, ["nn-tl"] * len(long_sentence), ["vbd"] * 4], [[]], [["fw-in"] * 3]]
    names = ["at", "in", "nn", "vbd", "other"]
    seqs = text.pack_documents(tok, docs, 24, tags=tags, tag_names=names)
    lengths = [len(tok.encode(s, is_pretokenized=True, add_special_tokens=False).ids) for s in docs[0]]
    assert lengths[0] <= 22 < lengths[1]
    assert seqs.n_cut == sum(n > 22 for n in lengths) and seqs.input_ids.shape[1] == 24
    assert set(seqs.group.tolist()) == {0, 2}  # the empty document gives no sequence
    for d, sentences in ((0, docs[0]), (2, docs[2])):
        rows = np.flatnonzero(seqs.group == d)
        content = np.concatenate([r[(r >= text.N_SPECIAL)] for r in seqs.input_ids[rows]])
        expected = [i for s in sentences if s for i in tok.encode(s, is_pretokenized=True,
                                                                   add_special_tokens=False).ids]
        assert content.tolist() == expected
    first = seqs.tags[seqs.group == 0]
    n_words = 5 + len(long_sentence) + 4
    assert (first >= 0).sum() == n_words  # one label per word, on its first sub-token
    assert (seqs.tags[seqs.group == 2] == names.index("in")).sum() == 3  # fw-in → in
    assert (seqs.tags[~seqs.attention_mask] == text.NO_TAG).all()


def test_simplify_tag():
    assert [text.simplify_tag(t) for t in ("np-tl", "nn$", "ppss+md", "fw-at", "--", "at-hl", "*")] == \
        ["np", "nn$", "ppss", "at", "--", "at", "*"]


def _synthetic_brown(marker_split: str) -> tuple[pd.DataFrame, dict]:
    rows = []
    genres = sorted(language.BROWN_GENRES.values())
    codes = {v: k for k, v in language.BROWN_GENRES.items()}
    for genre in genres:
        for j in range(4):
            doc = f"c{codes[genre]}{j:02d}"
            for s in range(3):
                words = list(np.random.default_rng(hash((doc, s)) % 2**32).choice(WORDS, 12))
                rows.append({"doc_id": doc, "genre_code": codes[genre], "genre": genre, "sentence_idx": s,
                             "words": words, "tags": ["nn"] * 12})
    brown = pd.DataFrame(rows)
    split = text.split_documents(brown)
    marked = [d for d, s in split.items() if s == marker_split]
    for i in brown.index[brown["doc_id"].isin(marked)]:
        brown.at[i, "words"] = ["zzqmarker"] * 12  # frequent enough to be merged into one token if seen
    return brown, split


@pytest.mark.parametrize("marker_split", ["train", "test"])
def test_corpus_tokenizer_and_pretraining_see_only_training_documents(monkeypatch, marker_split):
    brown, split = _synthetic_brown(marker_split)
    spam = pd.DataFrame({"id": [f"s/{i}" for i in range(20)], "group": ["spam-1"] * 10 + ["easy-ham-1"] * 10,
                         "label": [1] * 10 + [0] * 10, "text": ["buy now 🙂 " * 5] * 10 + [""] * 10})
    monkeypatch.setattr(language.datasets, "load", lambda name: brown if name == "brown" else spam)
    spec = {**language._corpus_spec(language.Config(vocab_size=300, seq_len=16)), "spam_train": 8, "spam_eval": 4}
    corp = language._build_corpus(spec)
    tok = text.tokenizer_from_json(corp["tokenizer"])
    seen = tok.token_to_id("Ġzzqmarker") is not None
    assert seen == (marker_split == "train")
    pre = " ".join(tok.decode(r.tolist()) for r in corp["pretrain_ids"])
    assert ("zzqmarker" in pre) == (marker_split == "train")
    assert ("zzqmarker" in " ".join(corp["brown"]["test"]["text"])) == (marker_split == "test")
    docs = {s: {d for d, v in split.items() if v == s} for s in ("train", "val", "test")}
    assert not (docs["train"] & docs["test"]) and not (docs["val"] & docs["test"]) and len(docs["test"]) == 15


def test_split_documents_is_stratified_deterministic_and_disjoint():
    labels = np.repeat(np.arange(5), [2, 3, 10, 20, 40])
    a = text.split_stratified(labels, val_fraction=0.15, test_fraction=0.15, seed=0)
    assert (a == text.split_stratified(labels, val_fraction=0.15, test_fraction=0.15, seed=0)).all()
    assert set(a[labels == 0]) == {"train"}  # fewer than 3 items: all train
    for lab in range(1, 5):
        assert {"train", "val", "test"} <= set(a[labels == lab])


def _model(**kw):
    return build_model("text_encoder", seed=0, **{"vocab_size": 50, "max_len": 12, "dim": 16, "depth": 2,
                                                  "heads": 2, **kw})


def test_mlm_step_never_selects_padding_or_specials():
    seen = {}

    class Spy(torch.nn.Module):
        config = type("C", (), {"vocab_size": 50})()

        def forward(self, corrupted, labels):
            seen.update(corrupted=corrupted, labels=labels)
            return torch.zeros(())

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, 50, (64, 12))
    tokens[:, 0], tokens[:, 9], tokens[:, 10:] = text.CLS_ID, text.SEP_ID, text.PAD_ID
    tokens[0, 2:] = text.PAD_ID  # a row with a single content token: nothing to mask
    for ratio in (0.15, 0.4, 0.9):
        language.mlm_step(Spy(), tokens, torch.full((64,), ratio, dtype=torch.float64), g)
        masked = seen["labels"] != IGNORE_INDEX
        assert not masked[tokens < text.N_SPECIAL].any()
        assert (seen["corrupted"][~masked] == tokens[~masked]).all()
        assert (seen["corrupted"][masked] >= text.MASK_ID).all()  # [MASK] or a non-special random token
        assert (masked[1:].sum(1) == round(ratio * 8)).all()  # exact count of the 8 content tokens
        assert not masked[0].any()


def test_text_encoder_shapes_padding_and_tied_head():
    model = _model().eval()
    ids = torch.randint(4, 50, (3, 12))
    attn = torch.ones(3, 12, dtype=torch.bool)
    attn[1, 7:] = False
    with torch.no_grad():
        h = model.encode_tokens(ids, attn)
        z = model.encode(ids, attn)
        ids2 = ids.clone()
        ids2[1, 7:] = 4  # change padded content: features of real tokens must not move
        z2 = model.encode(ids2, attn)
        empty = model.encode(torch.zeros(1, 12, dtype=torch.long))  # all padding: finite, no NaN
    assert h.shape == (3, 12, 16) and z.shape == (3, 16) and model.feature_dim == 16
    torch.testing.assert_close(z, z2)
    assert torch.isfinite(empty).all()
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3] = ids[:, 3]
    out = model(ids, labels, attn)
    assert out.pred.shape == (3, 50) and out.mask.sum() == 3 and torch.isfinite(out.loss)
    assert out.latent.shape == (3, 16)
    out.loss.backward()
    assert model.tok_embed.weight.grad is not None  # tied: the head trains the embedding


def test_determinism_same_seed_same_weights_and_history():
    data = torch.randint(4, 50, (64, 12))
    runs = []
    for _ in range(2):
        res = pretrain(_model(), data, sampler=make_sampler({"kind": "r2mae", "low": 0.15, "high": 0.45}),
                       train=TrainConfig(steps=4, batch_size=16), seed=3, step_fn=language.mlm_step, progress=False)
        runs.append(res)
    pd.testing.assert_frame_equal(runs[0].history.drop(columns="seconds"), runs[1].history.drop(columns="seconds"))
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, match", [
    ({"r2mae_low": 0.5, "r2mae_high": 0.2}, "R2MAE|low"),
    ({"sweep_ratios": (0.15, 1.2)}, "sweep_ratios"),
    ({"sizes": ("Q",)}, "size"),
    ({"main_size": "M"}, "main_size"),
    ({"baselines": ("bogus",)}, "bogus"),
    ({"primary_task": "nope"}, "primary_task"),
    ({"n_seeds": 0}, "n_seeds"),
    ({"seq_len": 4}, "seq_len"),
    ({"finetune_lrs": ()}, "finetune_lrs"),
    ({"finetune_lrs": 1e-3}, "finetune_lrs"),
    ({"finetune_lrs": [1e-3, 0.0]}, "finetune_lrs"),
    ({"workers": 0}, "workers"),
])
def test_bad_config_fails_with_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        language.Config(**kwargs)
    _one_line(excinfo)


def test_bad_model_and_text_inputs_fail_with_one_line(tok):
    model = _model()
    for bad, match in ((torch.randint(0, 50, (2, 13)), "length"), (torch.full((2, 4), 60), "token ids"),
                       (torch.zeros(2, 4), "int64")):
        with pytest.raises(ValueError, match=match) as excinfo:
            model.encode(bad)
        _one_line(excinfo)
    for call, match in ((lambda: _model(dim=10, heads=3), "heads"), (lambda: _model(vocab_size=1), "vocab_size"),
                        (lambda: text.train_tokenizer(["a b"], 10), "vocab_size"),
                        (lambda: text.encode_texts(tok, ["a"], 2), "seq_len"),
                        (lambda: text.encode_texts(tok, [3.5], 8), "text of type"),
                        (lambda: token_runs.probe((np.zeros((4, 2)), np.arange(4) % 2), (np.zeros((2, 2)), [0, 1]),
                                                  (np.zeros((2, 2)), [0, 1]), metric="auc"), "metric")):
        with pytest.raises(ValueError, match=match) as excinfo:
            call()
        _one_line(excinfo)


EQ = "fixed m_eq 0.315 (R²MAE U[0.15,0.45])"


def _metrics(r2_gain: float, n_seeds: int = 4, random_init: float = 0.45, equal_effect: float = 0.55) -> pd.DataFrame:
    """Synthetic tidy metrics at size S: fixed 0.15 / 0.4, MRD cosine, R²MAE, its equal-effect control at
    ``equal_effect``, random init; R²MAE ahead of the best fixed / MRD by ``r2_gain``."""
    rng = np.random.default_rng(0)
    rows = []
    base = {"fixed 0.15": ("fixed", 0.15, 0.50), "fixed 0.4": ("fixed", 0.4, 0.55),
            "MRD cosine": ("mrd", np.nan, 0.52), "R²MAE": ("r2mae", np.nan, 0.55 + r2_gain),
            EQ: ("equivalent", 0.85 / 2.7, equal_effect), "random init": ("reference", np.nan, random_init)}
    for seed in range(n_seeds):
        noise = rng.normal(0, 0.002)
        for method, (kind, ratio, level) in base.items():
            for split in ("val", "test"):
                for task, metric in language.TASKS.items():
                    value = level + noise + rng.normal(0, 0.0005) - (task == "mlm") * 5
                    rows.append({"method": method, "group": kind, "ratio": ratio, "size": "S", "seed": seed,
                                 "split": split, "task": task, "metric": metric, "value": value})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("gain, verdict", [(0.05, "supported"), (-0.05, "contradicted"), (0.0, "inconclusive")])
def test_claim_rules(gain, verdict):
    config = language.Config(sizes=("S",), main_size="S", baselines=("mrd_cosine", "r2mae"))
    claims = {c.id: c for c in language_claims.claims({"metrics": _metrics(gain)}, config, "smoke", n_boot=200)}
    assert claims["L1"].verdict == "inconclusive"  # one size: not tested
    assert claims["L3"].verdict == verdict
    if gain:
        assert claims["L4"].verdict == verdict
    assert "fixed 0.4" in claims["L3"].claim  # best fixed chosen on validation
    assert claims["L5"].verdict == verdict  # the control sits at the best fixed ratio's level here
    assert claims["S1"].verdict == "supported"  # random init 0.45 is below every pretrained run


@pytest.mark.parametrize("equal_effect, verdict", [(0.50, "supported"), (0.65, "contradicted"),
                                                   (0.60, "inconclusive")])
def test_equal_effect_claim_pairs_r2mae_with_its_control_on_the_primary_task(equal_effect, verdict):
    """L5 reads R²MAE against its equal-effect control only (R²MAE beats the grid by 0.05 throughout, so L3 stays
    supported); the table sets R²MAE, the best fixed ratio and the control side by side with both differences."""
    config = language.Config(sizes=("S",), main_size="S", baselines=("mrd_cosine", "r2mae"))
    metrics = _metrics(0.05, equal_effect=equal_effect)
    claims = {c.id: c for c in language_claims.claims({"metrics": metrics}, config, "smoke", n_boot=200)}
    l5 = claims["L5"]
    assert claims["L3"].verdict == "supported" and l5.verdict == verdict
    assert "m_eq" in l5.claim and "0.315" in l5.claim and "downstream" in l5.metric
    assert {f"L5-{t}" for t in ("genre", "spam", "pos", "mlm")} <= set(claims)
    sc = language_claims.scores(metrics)
    test = sc[sc["split"] == "test"].set_index(["seed", "method"])["downstream"].unstack()
    assert l5.value == pytest.approx((test["R²MAE"] - test[EQ]).mean())
    table = language_claims.equal_effect(sc, config)
    rows = table[table["task"] == "downstream"].set_index("row")
    assert list(rows.index) == ["R²MAE", "best fixed", "equal-effect fixed", "R²MAE − best fixed",
                                "R²MAE − equal-effect fixed"]
    assert rows.loc["best fixed", "method"] == "fixed 0.4" and rows.loc["equal-effect fixed", "method"] == EQ
    assert rows.loc["R²MAE − equal-effect fixed", ["mean", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [l5.value, l5.ci_low, l5.ci_high])
    assert rows.loc["R²MAE − best fixed", "mean"] == pytest.approx(claims["L3"].value)
    assert rows.loc["R²MAE", "mean"] - rows.loc["equal-effect fixed", "mean"] == pytest.approx(l5.value)


def _uniform_m_eq(a: float, b: float) -> float:
    """m_eq = (E[m²] − E[m³]) / (E[m] − E[m²]) for m ~ U[a, b], from the moments E[m^k] = (b^(k+1) − a^(k+1)) /
    ((k + 1)(b − a))."""
    mom = [(b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a)) for k in (1, 2, 3)]
    return (mom[1] - mom[2]) / (mom[0] - mom[1])


def test_every_r2mae_interval_trains_its_equal_effect_control_with_r2mae():
    """The declared interval's control (group ``equivalent``) and an ablation interval's (group ``ablation``) are
    the fixed ratios m_eq = E[m²(1−m)]/E[m(1−m)] of their laws; R²MAE per sample shares the declared law and its
    control; each control runs at the main size with R²MAE's seeds and schedule, in R²MAE's ensemble group."""
    from r2mae_core.runs import group_key

    config = language.Config(sizes=("XS", "S"), main_size="S", ablations=("r2mae_sample",),
                             ablation_intervals=((0.1, 0.3),), n_seeds=2)
    controls = [m for m in config.methods() if m.name.startswith("fixed m_eq")]
    assert [(m.group, m.ratio) for m in controls] == [("equivalent", pytest.approx(_uniform_m_eq(0.15, 0.45))),
                                                      ("ablation", pytest.approx(_uniform_m_eq(0.1, 0.3)))]
    assert controls[0].ratio == pytest.approx(0.06375 / 0.2025)
    runs = language.plan(config)
    declared = [r for r in runs if r.method.group == "r2mae"]
    control = [r for r in runs if r.method.group == "equivalent"]
    assert [(r.size, r.seed, r.train) for r in control] == [(r.size, r.seed, r.train) for r in declared]
    assert {group_key(r) for r in control} == {group_key(r) for r in declared}
    without = language.Config(sizes=("S",), main_size="S", baselines=("mrd_cosine",))
    assert not [m for m in without.methods() if m.kind == "fixed" and m.group != "fixed"]


@pytest.mark.parametrize("random_init, verdict", [(0.50, "supported"), (0.60, "contradicted"),
                                                  (0.55, "inconclusive")])
def test_sanity_claim_compares_genre_with_random_init(random_init, verdict):
    config = language.Config(sizes=("S",), main_size="S", baselines=("mrd_cosine", "r2mae"))
    metrics = _metrics(0.0, random_init=random_init)
    claims = {c.id: c for c in language_claims.claims({"metrics": metrics}, config, "smoke", n_boot=200)}
    s1 = claims["S1"]
    assert s1.verdict == verdict and "genre" in s1.metric
    test = metrics[(metrics["split"] == "test") & (metrics["task"] == "genre")].pivot(
        index="seed", columns="method", values="value")
    assert s1.value == pytest.approx((test["R²MAE"] - test["random init"]).mean())


def test_finetune_leaves_model_unchanged_and_reports_val_chosen_epoch():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    rng = np.random.default_rng(0)

    def split(n):
        ids = torch.as_tensor(rng.integers(4, 50, (n, 12)))
        labels = (ids[:, 1] > 27).numpy().astype(np.int64)  # learnable from the first content token
        return ids.numpy(), np.ones((n, 12), dtype=bool), labels

    res = token_runs.finetune(model, split(64), split(32), split(32), metric="f1", epochs=2, lr=1e-3, device="cpu")
    assert res["best_epoch"] in (0, 1) and 0 <= res["test_f1"] <= 1 and 0 <= res["val_acc"] <= 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_finetune_learning_rate_grid_keeps_the_validation_best_rate():
    """A grid of rates = the single-rate run whose validation score is highest (ties: the smaller rate)."""
    rng = np.random.default_rng(1)

    def split(n):
        ids = torch.as_tensor(rng.integers(4, 50, (n, 12)))
        return ids.numpy(), np.ones((n, 12), dtype=bool), (ids[:, 1] > 27).numpy().astype(np.int64)

    data = (split(64), split(48), split(48))
    lrs = (3e-2, 1e-5, 1e-3)
    single = {lr: token_runs.finetune(_model(), *data, metric="f1", epochs=3, lr=lr, device="cpu") for lr in lrs}
    grid = token_runs.finetune(_model(), *data, metric="f1", epochs=3, lr=lrs, device="cpu")
    best = max(sorted(lrs), key=lambda lr: single[lr]["val_f1"])  # max keeps the first (smallest) of ties
    assert grid["lr"] == best and single[best]["lr"] == best
    assert grid == single[best]
    assert len({single[lr]["val_f1"] for lr in lrs}) > 1  # the rates really differ here, so the choice is tested


def test_parallel_sweep_gives_the_same_tables_as_one_worker(tmp_path, monkeypatch):
    """Two worker processes (spawn) and one: the same metric rows in the same order, a run cached per key;
    fine-tuning with a learning-rate grid records the rate chosen on validation."""
    import shutil

    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    kwargs = {"n_seeds": 2, "sizes": ("XS",), "main_size": "XS", "sweep_ratios": (0.15,), "baselines": ("r2mae",),
              "steps": 5, "probe_train": 100, "probe_eval": 60, "spam_train": 60, "spam_eval": 40, "threads": 1,
              "finetune_epochs": 1, "finetune_lrs": (1e-4, 1e-3)}
    serial = language.run(language.Config(**kwargs, workers=1), progress=False)
    shutil.rmtree(tmp_path / "cache" / "language_runs")  # the corpus stays cached; every run is recomputed
    parallel = language.run(language.Config(**kwargs, workers=2), progress=False)
    # 2 seeds x (fixed, R²MAE, its equal-effect control, random init)
    assert len(list((tmp_path / "cache" / "language_runs").glob("*.npz"))) == 2 * 4
    pd.testing.assert_frame_equal(serial["metrics"], parallel["metrics"])
    pd.testing.assert_frame_equal(serial["history"], parallel["history"])
    chosen = serial["metrics"].query("metric == 'lr'")
    assert set(chosen["task"]) == {"genre_ft", "spam_ft"} and set(chosen["value"]) <= {1e-4, 1e-3}
    assert len(chosen) == 2 * 4 * 2  # every run (random init included) fine-tunes both tasks
    with pytest.raises(ValueError, match="workers=0"):
        language.Config(workers=0)


def _orphaned_worker(pid_file: str) -> None:
    """A sweep worker started (spawn) by this process, which then dies without waiting for it."""
    import multiprocessing
    import os

    child = multiprocessing.get_context("spawn").Process(target=_sleep_as_worker, args=(os.getpid(),))
    child.start()
    Path(pid_file).write_text(str(child.pid))
    os._exit(0)


def _sleep_as_worker(parent_pid: int) -> None:
    import time

    from r2mae_core import runs

    runs._worker_init(1, parent_pid)
    time.sleep(60)


def test_sweep_worker_exits_when_its_parent_is_killed(tmp_path):
    """A kernel killed mid-sweep must not leave worker processes behind (each polls its parent once a second)."""
    import multiprocessing
    import os
    import time

    pid_file = tmp_path / "worker.pid"
    parent = multiprocessing.get_context("spawn").Process(target=_orphaned_worker, args=(str(pid_file),))
    parent.start()
    parent.join(60)
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{worker}/stat") as fh:  # an exited but unreaped worker (zombie) counts as gone
            if fh.read().split(")")[-1].split()[0] == "Z":
                return
        time.sleep(0.2)
    os.kill(worker, 9)
    raise AssertionError("the orphaned sweep worker was still running 30 s after its parent exited")
