"""Every cached namespace stores its result as a data-only record that reads back identical.

Each test computes a tiny result through its caller, then reads it back from the same, until then empty, cache
(the computation replaced by one that fails) and compares: same types, arrays of equal dtype, shape and values,
equal DataFrames.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from r2mae_core import single_cell
from r2mae_core.experiments import dna, language
from r2mae_core.experiments import linear_theory as lt
from r2mae_core.theory import simulate

LANGUAGE = language.Config(vocab_size=300, seq_len=16, probe_train=40, probe_eval=20, pos_train_tokens=20,
                           pos_eval_tokens=10, spam_train=24, spam_eval=12)
DNA = dna.Config(probe_train=60, probe_eval=24, pretrain_windows=300, mlm_eval=40, kmer_counts_k=2)


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("R2MAE_NO_CACHE", raising=False)
    language._corpus_cached.cache_clear()
    dna._corpus_cached.cache_clear()
    yield tmp_path / "cache"
    language._corpus_cached.cache_clear()
    dna._corpus_cached.cache_clear()


@pytest.fixture(scope="module")
def language_corpus():
    return language._build_corpus(language._corpus_spec(LANGUAGE))


@pytest.fixture(scope="module")
def dna_corpus():
    return dna._build_corpus(dna._corpus_spec(DNA))


def _never(*args, **kwargs):
    raise AssertionError("computed again: the cache entry was not read")


def assert_same(a, b, where="value"):
    """``a`` and ``b`` are equal with equal types, to every nested level."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys differ"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} vs {b!r}"


def _namespaces(root) -> set[str]:
    return {p.parent.name for p in root.rglob("*.npz")}


def test_language_corpus_round_trips(monkeypatch, fresh_cache, language_corpus):
    monkeypatch.setattr(language, "_build_corpus", lambda spec: language_corpus)
    built = language.corpus(LANGUAGE)
    assert built is language_corpus and _namespaces(fresh_cache) == {"language_corpus"}
    language._corpus_cached.cache_clear()
    monkeypatch.setattr(language, "_build_corpus", _never)
    assert_same(built, language.corpus(LANGUAGE))


def test_language_tfidf_round_trips(monkeypatch, fresh_cache, language_corpus):
    rows = language._tfidf_reference(LANGUAGE, language_corpus)
    assert rows and _namespaces(fresh_cache) == {"language_tfidf"}
    monkeypatch.setattr(language, "_tfidf_rows", _never)
    assert_same(rows, language._tfidf_reference(LANGUAGE, language_corpus))


def test_dna_corpus_round_trips(monkeypatch, fresh_cache, dna_corpus):
    monkeypatch.setattr(dna, "_build_corpus", lambda spec: dna_corpus)
    built = dna.corpus(DNA)
    assert built is dna_corpus and _namespaces(fresh_cache) == {"dna_corpus"}
    dna._corpus_cached.cache_clear()
    monkeypatch.setattr(dna, "_build_corpus", _never)
    assert_same(built, dna.corpus(DNA))


def test_dna_kmer_counts_round_trip(monkeypatch, fresh_cache, dna_corpus):
    rows = dna._kmer_reference(DNA, dna_corpus)
    assert rows and _namespaces(fresh_cache) == {"dna_kmer_counts"}
    monkeypatch.setattr(dna, "_kmer_rows", _never)
    assert_same(rows, dna._kmer_reference(DNA, dna_corpus))


@pytest.mark.parametrize("keep_weights", [True, False])
def test_linear_theory_mc_round_trips(monkeypatch, fresh_cache, keep_weights):
    args = (lt.Config(), "ar1", 0.3, 20, {"train": 0.3}, 2)
    frame, weights = result = lt._mc(*args, seed=1, keep_weights=keep_weights)
    assert isinstance(result, tuple) and len(frame) and _namespaces(fresh_cache) == {"linear_theory_mc"}
    assert all(type(k) is int for k in weights) and bool(weights) == keep_weights
    monkeypatch.setattr(simulate, "simulate_pretraining", _never)
    assert_same(result, lt._mc(*args, seed=1, keep_weights=keep_weights))


@pytest.mark.parametrize(("model", "kwargs"), [("mlp", {"width": 16, "latent": 4}),
                                               ("transformer", {"dim": 8, "depth": 1, "heads": 2})])
def test_single_cell_model_round_trips(monkeypatch, fresh_cache, model, kwargs):
    x = np.random.default_rng(0).random((24, 6)).astype(np.float32)
    fit = dict(model=model, model_kwargs=kwargs, steps=3, batch_size=8)
    net, history = single_cell.fit_encoder(x, **fit)
    assert len(history) == 3 and _namespaces(fresh_cache) == {"single_cell_model"}
    monkeypatch.setattr(single_cell, "pretrain", _never)
    again, history_again = single_cell.fit_encoder(x, **fit)
    assert_same(dict(net.state_dict()), dict(again.state_dict()))
    assert_same(history, history_again)
