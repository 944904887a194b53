"""Near-copy audit (r2mae_core.leakage): canonical k-mers, containment and Jaccard on constructed sequences with
exact expected values, against a pure-Python reference, the chance level, the audit of a real task, bad inputs."""

import numpy as np
import pandas as pd
import pytest

from r2mae_core import dna, leakage

K = 16
_RC = str.maketrans("ACGTN", "TGCAN")


def _random(n: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


def _py_kmers(seq: str, k: int) -> set[str]:
    """Canonical k-mers of a sequence, the obvious way (strings, no N)."""
    seq = seq.upper()
    out = set()
    for i in range(len(seq) - k + 1):
        kmer = seq[i:i + k]
        if set(kmer) <= set("ACGT"):
            out.add(min(kmer, kmer.translate(_RC)[::-1]))
    return out


def _distinct_kmers(seq: str, k: int) -> bool:
    kmers = [min(seq[i:i + k], seq[i:i + k].translate(_RC)[::-1]) for i in range(len(seq) - k + 1)]
    return len(set(kmers)) == len(kmers)


def test_identical_and_reverse_complement_are_copies():
    s = _random(200, 0)
    rc = dna.reverse_complement(s)
    assert leakage.jaccard(s, s, K) == 1.0
    assert leakage.jaccard(s, rc, K) == 1.0
    assert leakage.containment([s, rc, s.lower()], [s], K).tolist() == [1.0, 1.0, 1.0]
    codes = leakage.encode_windows([s])
    back = leakage.encode_windows([rc])
    assert np.array_equal(leakage.canonical_kmers(codes, K)[0], leakage.canonical_kmers(back, K)[0][::-1])


@pytest.mark.parametrize("pos, changed", [(100, K), (0, 1), (199, 1), (5, 6)])
def test_one_substitution_removes_exactly_the_kmers_covering_it(pos, changed):
    s = _random(200, 1)
    new = {"A": "C", "C": "G", "G": "T", "T": "A"}[s[pos]]
    t = s[:pos] + new + s[pos + 1:]
    m = len(s) - K + 1
    # preconditions of the exact values: every canonical k-mer of s and t is distinct, and the new ones are new
    assert _distinct_kmers(s, K) and _distinct_kmers(t, K)
    assert len(_py_kmers(s, K) & _py_kmers(t, K)) == m - changed
    assert leakage.jaccard(s, t, K) == pytest.approx((m - changed) / (m + changed), abs=1e-15)
    assert leakage.containment([t], [s], K)[0] == pytest.approx((m - changed) / m, abs=1e-15)


def test_unrelated_random_sequences_share_nothing():
    a, b = _random(200, 2), _random(200, 3)
    assert not _py_kmers(a, K) & _py_kmers(b, K)
    assert leakage.jaccard(a, b, K) == 0.0
    assert leakage.containment([a], [b], K)[0] == 0.0


def test_containment_pools_the_reference_and_streams_it_in_chunks():
    r1, r2 = _random(300, 4), _random(300, 5)
    chimera = r1[:100] + dna.reverse_complement(r2[50:150])
    expected = 2 * (100 - K + 1) / (200 - K + 1)  # the k - 1 junction k-mers are new
    assert len(_py_kmers(chimera, K) - _py_kmers(r1, K) - _py_kmers(r2, K)) == K - 1
    for chunk in (1, 2, 100):
        got = leakage.containment([chimera, r1], [r1, r2, _random(80, 6)], K, chunk=chunk)
        assert got[0] == pytest.approx(expected, abs=1e-15) and got[1] == 1.0
    assert max(leakage.jaccard(chimera, r, K) for r in (r1, r2)) < 0.5  # no single window holds it


@pytest.mark.parametrize("k", [3, 5, 12])
def test_containment_equals_the_python_reference(k):
    rng = np.random.default_rng(k)
    letters = list("ACGTACGTACGTNacgt")
    query = ["".join(rng.choice(letters, rng.integers(0, 40))) for _ in range(30)]
    reference = ["".join(rng.choice(letters, rng.integers(0, 60))) for _ in range(40)]
    reference += [q[::-1] for q in query[:5]] + [dna.reverse_complement(q.upper())[3:] for q in query[5:10]]
    pool = set().union(*[_py_kmers(r, k) for r in reference])
    got = leakage.containment(query, reference, k, chunk=7)
    for q, c in zip(query, got, strict=True):
        mine = _py_kmers(q, k)
        if mine:
            assert c == len(mine & pool) / len(mine)
        else:
            assert np.isnan(c)  # shorter than k or every k-mer holds an N
    kmers, owner = leakage.kmer_sets(query, k)
    assert np.bincount(owner, minlength=len(query)).tolist() == [len(_py_kmers(q, k)) for q in query]


def test_codes_and_strings_agree_and_n_breaks_kmers():
    s = _random(64, 7)
    codes = leakage.encode_windows([s, "ACGTN" * 4])
    assert codes.dtype == np.uint8 and codes.shape == (2, 64) and (codes[1, 20:] == 4).all()
    assert np.array_equal(leakage.containment(codes, [s], 8), leakage.containment([s, "ACGTN" * 4], codes[:1], 8),
                          equal_nan=True)
    assert np.isnan(leakage.containment(["ACGTACGNACGTACG"], [s], 8)[0])  # no 8-mer without the N
    assert np.isnan(leakage.containment(["N" * 30], ["ACGT" * 10], 4)[0])


def test_chance_containment_matches_random_sequences():
    k, rng = 7, np.random.default_rng(8)
    reference = rng.integers(0, 4, size=(60, 100)).astype(np.uint8)
    query = rng.integers(0, 4, size=(400, 100)).astype(np.uint8)
    got = leakage.containment(query, reference, k)
    expected = leakage.chance_containment(60 * (100 - k + 1), k)
    assert abs(got.mean() - expected) < 5 * got.std() / np.sqrt(len(got))
    assert leakage.chance_containment(0, 16) == 0.0
    assert leakage.chance_containment(10**6, 16) == pytest.approx(2e6 / 4**16, rel=1e-3)


def test_summarise_distribution():
    out = leakage.summarise(np.array([0.0, 0.25, 0.5, 1.0, np.nan]), 0.5)
    assert out["n"] == 4 and out["n_above"] == 2 and out["frac_above"] == 0.5
    assert out["median"] == 0.375 and out["max"] == 1.0 and out["mean"] == pytest.approx(0.4375)
    assert leakage.summarise(np.array([np.nan]), 0.5)["n"] == 0


def test_audit_of_the_real_exon_intron_task_drops_its_near_copies():
    from r2mae_core import data
    from r2mae_core.experiments import dna as exp

    task = dna.exon_intron_task(data.load("dm_genes"), window=64, seed=0)
    table = task.table
    test = table[table["split"] == "test"]
    train = table[table["split"] != "test"]["sequence"].tolist()
    before = leakage.containment(test["sequence"].tolist(), train, K)
    copies = test["sequence"][before >= 0.5]
    assert len(copies) >= 1 and set(copies) & set(train)  # duplicated exons across genes: exact copies
    clean, drops = exp._drop_near_copies("exon_intron", table, np.zeros((0, 64), np.uint8), 0)
    assert {d["reference"]: d["flagged"] for d in drops} == {"training": len(copies), "pretraining": 0}
    kept = clean[clean["split"] == "test"]
    assert len(kept) == len(test) - len(copies) - drops[0]["rebalanced"]
    assert kept["label"].value_counts().nunique() == 1  # classes still exactly balanced
    after = leakage.containment(kept["sequence"].tolist(), clean[clean["split"] != "test"]["sequence"].tolist(), K)
    assert (after < 0.5).all()
    assert clean[clean["split"] != "test"].equals(table[table["split"] != "test"])  # training windows untouched


@pytest.mark.parametrize("call, match", [
    (lambda: leakage.containment(["ACGT"], ["ACGT"], 0), "k=0"),
    (lambda: leakage.containment(["ACGT"], ["ACGT"], 32), "k=32"),
    (lambda: leakage.containment(["ACGT"], ["ACGT"], True), "k=True"),
    (lambda: leakage.containment(["ACGX"], ["ACGT"], 2), "query"),
    (lambda: leakage.containment(["ACGT"], ["AC GT"], 2), "reference"),
    (lambda: leakage.containment("ACGT", ["ACGT"], 2), "query"),
    (lambda: leakage.containment(np.array([[0, 5]]), ["ACGT"], 2), "query"),
    (lambda: leakage.containment(["ACGT"], ["ACGT"], 2, chunk=0), "chunk"),
    (lambda: leakage.jaccard("ACGT", 3, 2), "a, b"),
    (lambda: leakage.summarise(np.ones(3), 0), "threshold"),
    (lambda: leakage.summarise(np.ones(3), 1.5), "threshold"),
    (lambda: leakage.chance_containment(-1, 16), "n_reference_kmers"),
])
def test_bad_inputs_fail_with_one_line(call, match):
    with pytest.raises(ValueError, match=match) as excinfo:
        call()
    assert "\n" not in str(excinfo.value)


def test_leakage_claim_rule():
    from r2mae_core.experiments import dna_claims

    rows = pd.DataFrame({"task": ["exon_intron", "exon_intron", "promoter"], "reference": ["training",
                         "pretraining", "pretraining"], "frac_above": [0.0, 0.004, 0.0], "dropped": [6, 6, 3]})
    claim = dna_claims.leakage_claim(rows, "smoke")
    assert claim.verdict == "supported" and claim.value == 0.004 and "9 near-copies" in claim.claim
    assert dna_claims.leakage_claim(rows.assign(frac_above=[0.0, 0.02, 0.0]), "smoke").verdict == "contradicted"
    with pytest.raises(ValueError, match="leak"):
        dna_claims.leakage_claim(rows.drop(columns="dropped"), "smoke")
