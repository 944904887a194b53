"""04_dna experiments: the DNA masking step, the curriculum clock, the corpus (no test/pretraining overlap,
balance, determinism), config errors, the claim rules and the k-mer baseline."""

import numpy as np
import pandas as pd
import pytest
import torch

from r2mae_core import dna, masking
from r2mae_core.experiments import dna as exp
from r2mae_core.experiments import dna_claims
from r2mae_core.masking import IGNORE_INDEX
from r2mae_core.models import build_model
from r2mae_core.runs import r2mae_name
from r2mae_core.train import TrainConfig, pretrain


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


class _Spy(torch.nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.config = type("C", (), {"vocab_size": vocab_size})()
        self.seen = {}

    def forward(self, corrupted, labels):
        self.seen.update(corrupted=corrupted, labels=labels)
        return torch.zeros(())


def _dna_batch(tok: dna.DNATokenizer, n: int = 64, length: int = 60, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]
    seqs[0] = "N" * 10 + seqs[0][10:]  # N tokens are never masked
    seqs[1] = seqs[1][:20]  # a short row with padding
    return torch.as_tensor(dna.tokenize_windows(seqs, tok, 1 + tok.n_tokens(length))["input_ids"])


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("curriculum", [False, True])
def test_dna_mlm_step_masks_only_nucleotides_exact_count(k, curriculum):
    tok = dna.DNATokenizer(k)
    batch = _dna_batch(tok)
    step = exp.mlm_step(tok.first_random_id, 1.0, 4.0, curriculum=curriculum)
    spy = _Spy(tok.vocab_size)
    g = torch.Generator().manual_seed(0)
    for ratio in (0.15, 0.5):
        step(spy, batch, torch.full((64,), ratio, dtype=torch.float64), g, 0.9)
        masked = spy.seen["labels"] != IGNORE_INDEX
        assert not masked[batch <= dna.N_ID].any()  # never specials, [UNK], N or padding
        eligible = (batch > dna.N_ID).sum(1)
        assert (masked.sum(1) == torch.round(ratio * eligible.double()).long()).all()
        corrupted = spy.seen["corrupted"]
        assert (corrupted[~masked] == batch[~masked]).all()
        changed = masked & (corrupted != dna.MASK_ID) & (corrupted != batch)
        assert (corrupted[changed] >= tok.first_random_id).all()  # random replacements: nucleotides / k-mers


def test_curriculum_spans_grow_with_progress():
    tok = dna.DNATokenizer(1)
    batch = _dna_batch(tok, n=256, length=120, seed=1)[2:]
    step = exp.mlm_step(tok.first_random_id, 1.0, 8.0, curriculum=True)
    spy = _Spy(tok.vocab_size)
    runs = {}
    for t in (0.0, 1.0):
        g = torch.Generator().manual_seed(0)
        ratios = masking.Fixed(0.2).sample(len(batch), generator=g, progress=t)
        step(spy, batch, ratios, g, t)
        m = (spy.seen["labels"] != IGNORE_INDEX).int()
        starts = ((m[:, 1:] - m[:, :-1]) == 1).sum() + m[:, 0].sum()
        runs[t] = m.sum().item() / starts.item()  # mean run length of masked tokens
    assert runs[0.0] < 1.5 and runs[1.0] > 4.0


def test_curriculum_pretrain_resumes_with_the_right_progress(tmp_path):
    tok = dna.DNATokenizer(1)
    data = _dna_batch(tok, n=64, length=30)
    method = next(m for m in exp.methods(exp.Config(curriculum_ratio=0.2, curriculum_max_span=4.0))
                  if m.group == "curriculum")
    assert method.mask == {"span_start": 1.0, "span_end": 4.0} and method.sampler == {"kind": "fixed", "ratio": 0.2}

    class Stop(Exception):
        pass

    def stop_at_3(step, row):
        if step == 2:
            raise Stop

    def go(path, callback=None):
        model = build_model("text_encoder", seed=0, vocab_size=tok.vocab_size, max_len=31, dim=16, depth=1, heads=2)
        return pretrain(model, data, sampler=masking.make_sampler(method.sampler), seed=1, progress=False,
                        train=TrainConfig(steps=6, batch_size=16, checkpoint_every=3),
                        step_fn=exp.step_for(method, tok.first_random_id), checkpoint_path=path, callback=callback)

    whole = go(tmp_path / "a.pt")
    with pytest.raises(Stop):
        go(tmp_path / "b.pt", stop_at_3)  # interrupted after the checkpoint of step 3
    resumed = go(tmp_path / "b.pt")  # continues at step 3 with the curriculum's progress 3/6, not 0
    assert resumed.resumed_from == 3
    for p, q in zip(whole.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.fixture(scope="module")
def smoke_corpus():
    return exp.corpus(exp.Config(probe_train=120, probe_eval=48, pretrain_windows=500, mlm_eval=50))


def test_corpus_no_test_overlap_balanced_and_deterministic(smoke_corpus):
    corp = smoke_corpus
    summary = pd.DataFrame(corp["summary"])
    assert (summary["test_overlap_pretraining"] == 0).all() and corp["mlm_overlap_pretraining"] == 0
    for (task, split), g in summary.groupby(["task", "split"]):
        if split != "val":
            assert g["windows"].nunique() == 1, (task, split)  # exactly balanced
    again = exp._build_corpus(exp._corpus_spec(exp.Config(probe_train=120, probe_eval=48, pretrain_windows=500,
                                                           mlm_eval=50)))
    assert np.array_equal(again["pretrain_ids"], corp["pretrain_ids"])
    for task in exp.TASKS:
        for split in ("train", "val", "test"):
            assert np.array_equal(again["tasks"][task][split]["ids"], corp["tasks"][task][split]["ids"])
    ids = corp["pretrain_ids"]
    assert ids.shape == (500, 65) and (ids[:, 0] == dna.CLS_ID).all() and (ids[:, 1:] >= dna.N_ID).all()
    test_text = set(corp["tasks"]["exon_intron"]["test"]["text"])
    pre_text = {dna.DNATokenizer(1).decode(r[1:]) for r in ids}
    assert not test_text & pre_text


def test_test_genes_and_blocks_are_cut_from_pretraining_text():
    from r2mae_core import data
    tasks = exp._build_tasks({"window": 64, "split_seed": 0, "probe_train": 120, "probe_eval": 48},
                             {"dm_genes": data.load("dm_genes"), "dm_chr2r": data.load("dm_chr2r"),
                              "dm_promoters": data.load("dm_promoters")}, data.load("bacteria"))
    regions = dna.pretraining_regions(data.load("dm_chr2r"), list(tasks.values()))
    for name in ("exon_intron", "promoter"):
        test = tasks[name].table[tasks[name].table["split"] == "test"]
        assert dna.count_overlaps(test, regions) == 0
        val = tasks[name].table[tasks[name].table["split"] == "val"]
        assert set(val["group"]).isdisjoint(set(test["group"]))
        train = tasks[name].table[tasks[name].table["split"] == "train"]
        assert set(train["group"]).isdisjoint(set(val["group"]))
    sp = tasks["species"].table
    assert set(sp.loc[sp.split == "test", "group"]).isdisjoint(set(sp.loc[sp.split != "test", "group"]))


def test_kmer_baseline_beats_chance_on_exon_intron(smoke_corpus):
    rows = pd.DataFrame(exp._kmer_rows(smoke_corpus, 4))
    mcc = rows[(rows.task == "exon_intron") & (rows.split == "test") & (rows.metric == "mcc")]["value"].iloc[0]
    assert mcc > 0.3  # GC content alone separates exons from introns in the fly


@pytest.mark.parametrize("kwargs, match", [
    ({"r2mae_low": 0.5, "r2mae_high": 0.2}, "low"),
    ({"sweep_ratios": (0.15, 1.2)}, "sweep_ratios"),
    ({"sizes": ("Q",)}, "size"),
    ({"main_size": "M"}, "main_size"),
    ({"baselines": ("mrd_cosine",)}, "baselines"),
    ({"genomes": ("mouse",)}, "genomes"),
    ({"kmer": 7}, "kmer"),
    ({"kmer": 3, "window": 64}, "window"),
    ({"n_seeds": 0}, "n_seeds"),
    ({"curriculum_max_span": 0.5}, "curriculum_max_span"),
    ({"curriculum_ratio": 1.0}, "curriculum_ratio"),
    ({"finetune_lrs": []}, "finetune_lrs"),
    ({"finetune_lrs": [True]}, "finetune_lrs"),
    ({"workers": 0}, "workers"),
])
def test_bad_config_fails_with_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        exp.Config(**kwargs)
    _one_line(excinfo)


EQ = "fixed m_eq 0.315 (R²MAE U[0.15,0.45])"


def _metrics(r2_gain: float, n_seeds: int = 4, best_ratio_by_task=None, equal_effect: float = 0.55) -> pd.DataFrame:
    """Synthetic tidy metrics at size S: fixed 0.15 / 0.5, scheduled, curriculum, R²MAE, its equal-effect control
    at ``equal_effect``, random init."""
    rng = np.random.default_rng(0)
    best_ratio_by_task = best_ratio_by_task or {t: 0.5 for t in exp.TASKS}
    rows = []
    base = {"fixed 0.15": ("fixed", 0.15), "fixed 0.5": ("fixed", 0.5), "scheduled": ("scheduled", np.nan),
            "curriculum": ("curriculum", np.nan), "R²MAE": ("r2mae", np.nan), EQ: ("equivalent", 0.85 / 2.7),
            "random init": ("reference", np.nan)}
    for seed in range(n_seeds):
        noise = rng.normal(0, 0.002)
        for method, (kind, ratio) in base.items():
            for split in ("val", "test"):
                for task in exp.TASKS:
                    level = {"scheduled": 0.52, "curriculum": 0.51, "R²MAE": 0.55 + r2_gain, "random init": 0.3,
                             EQ: equal_effect}.get(method, 0.55 if ratio == best_ratio_by_task[task] else 0.50)
                    rows.append({"method": method, "group": kind, "ratio": ratio, "size": "S", "seed": seed,
                                 "split": split, "task": task, "metric": "mcc",
                                 "value": level + noise + rng.normal(0, 0.0005)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("gain, verdict", [(0.05, "supported"), (-0.05, "contradicted"), (0.0, "inconclusive")])
def test_claim_rules(gain, verdict):
    config = exp.Config(sizes=("S",), main_size="S", sweep_ratios=(0.15, 0.5))
    claims = {c.id: c for c in dna_claims.claims({"metrics": _metrics(gain)}, config, "smoke", n_boot=200)}
    assert claims["D1"].verdict == verdict
    assert "fixed 0.5" in claims["D1"].claim  # best fixed chosen on validation
    if gain:
        assert claims["D2"].verdict == verdict
    assert claims["S1"].verdict == "supported"  # 0.25 above random init, margin 0.05
    assert claims["D3"].verdict == "inconclusive"  # every task peaks at 0.5
    assert claims["D5"].verdict == verdict  # the control sits at the best fixed ratio's level here


@pytest.mark.parametrize("equal_effect, verdict", [(0.50, "supported"), (0.65, "contradicted"),
                                                   (0.60, "inconclusive")])
def test_d5_pairs_r2mae_with_its_equal_effect_control_on_the_task_average(equal_effect, verdict):
    """D5 reads R²MAE against its equal-effect control only (D1 stays supported at a 0.05 gain over the grid);
    the table sets R²MAE, the best fixed ratio and the control side by side with both paired differences."""
    config = exp.Config(sizes=("S",), main_size="S", sweep_ratios=(0.15, 0.5))
    metrics = _metrics(0.05, equal_effect=equal_effect)
    claims = {c.id: c for c in dna_claims.claims({"metrics": metrics}, config, "smoke", n_boot=200)}
    d5 = claims["D5"]
    assert claims["D1"].verdict == "supported" and d5.verdict == verdict
    assert "m_eq" in d5.claim and "MCC" in d5.metric and d5.metric.endswith(", mean")
    assert {f"D5-{t}" for t in exp.TASKS} <= set(claims)
    sc = dna_claims.scores(metrics)
    test = sc[sc["split"] == "test"].set_index(["seed", "method"])["mean"].unstack()
    assert d5.value == pytest.approx((test["R²MAE"] - test[EQ]).mean())
    table = dna_claims.equal_effect(sc, config).query("task == 'mean'").set_index("row")
    assert table.loc["equal-effect fixed", "ratio"] == pytest.approx(0.85 / 2.7)
    assert table.loc["best fixed", "method"] == "fixed 0.5"
    assert table.loc["R²MAE − equal-effect fixed", "mean"] == pytest.approx(d5.value)
    assert table.loc["R²MAE − best fixed", "mean"] == pytest.approx(claims["D1"].value)


def test_d3_supported_when_tasks_peak_at_different_ratios():
    config = exp.Config(sizes=("S",), main_size="S", sweep_ratios=(0.15, 0.5))
    best = {"exon_intron": 0.15, "promoter": 0.5, "species": 0.5}
    claims = {c.id: c for c in dna_claims.claims({"metrics": _metrics(0.0, best_ratio_by_task=best)}, config,
                                                 "smoke", n_boot=200)}
    assert claims["D3"].verdict == "supported" and claims["D3"].value == pytest.approx(0.35)
    table = dna_claims.best_ratios(dna_claims.scores(_metrics(0.0, best_ratio_by_task=best)))
    assert table.set_index("task").loc["exon_intron", "best_ratio_val"] == 0.15


def test_run_smoke_is_cached_and_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path))
    exp._corpus_cached.cache_clear()
    config = exp.Config(n_seeds=1, sweep_ratios=(0.15,), baselines=("curriculum", "r2mae"), steps=4,
                        pretrain_windows=300, probe_train=60, probe_eval=24, mlm_eval=40, threads=1)
    a = exp.run(config, progress=False)
    b = exp.run(config, progress=False)  # from the cache
    pd.testing.assert_frame_equal(a["metrics"], b["metrics"])
    m = a["metrics"]
    r2 = r2mae_name(config.r2mae_low, config.r2mae_high)
    assert set(m["method"]) == {"fixed 0.15", "span curriculum 1→6", r2, f"fixed m_eq 0.315 ({r2})", "random init",
                                "k-mer counts + LR"}
    assert m.loc[m.metric == "mcc", "value"].between(-1, 1).all()
    assert (a["tasks"]["test_overlap_pretraining"] == 0).all()
    leak = a["leakage"]  # the near-copy audit of the split used: nothing at or above the threshold is left
    assert set(leak["task"]) == {*exp.TASKS, exp.MLM_EVAL} and set(leak["reference"]) == {"training", "pretraining"}
    assert (leak["n_above"] == 0).all() and leak["max"].between(0, exp.LEAK_THRESHOLD, inclusive="left").all()
    assert (leak["n"] <= leak["candidates"]).all()
    pd.testing.assert_frame_equal(leak, b["leakage"])
    exp._corpus_cached.cache_clear()


def test_runs_trained_as_one_ensemble_match_the_runs_one_by_one(tmp_path, monkeypatch):
    """``ensemble_size`` groups the runs of one size and schedule (fixed ratios, R²MAE and its equal-effect control
    of one seed) into one vmapped ensemble; their histories and masked-token metrics equal the runs one by one to
    float tolerance."""
    config = dict(n_seeds=1, sweep_ratios=(0.15, 0.5), baselines=("r2mae",), steps=6, pretrain_windows=300,
                  probe_train=60, probe_eval=24, mlm_eval=40, threads=1)
    out = {}
    for size in (1, 4):
        monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / str(size)))
        exp._corpus_cached.cache_clear()
        out[size] = exp.run(exp.Config(**config, ensemble_size=size), progress=False)
    exp._corpus_cached.cache_clear()
    a, b = out[1]["history"], out[4]["history"]
    assert len(a) == len(b) and (a["loss"] - b["loss"]).abs().max() < 1e-5
    mlm = [m[m.task.str.startswith("mlm") & (m.group != "reference")].reset_index(drop=True)
           for m in (out[1]["metrics"], out[4]["metrics"])]
    assert len(mlm[0]) >= 6 and (mlm[0]["value"] - mlm[1]["value"]).abs().max() < 1e-4
    trained = out[4]["runs"].query("tokens > 0")["seconds"]
    # fixed 0.15 and 0.5, R²MAE and its equal-effect control: one ensemble, whose members share its clock
    assert len(trained) == 4 and trained.nunique() == 1
