"""Tokenisation and task construction for 04_dna (r2mae_core.dna): splits, lengths, balance, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r2mae_core import dna
from r2mae_core.data.dna import Genome, decode

rng0 = np.random.default_rng(0)


def _random_dna(rng: np.random.Generator, n: int, alphabet: str = "ACGT") -> str:
    return "".join(rng.choice(list(alphabet), size=n))


def _strata(x: pd.DataFrame) -> np.ndarray:
    """20 GC bins (k/200 sits on bin edges: binned as the library does) x soft-mask none / <= 1/2 / > 1/2."""
    gc_bin = np.floor(x["gc"].to_numpy() * 20 + 1e-9).astype(int)
    return gc_bin * 3 + np.digitize(x["softmask_frac"].to_numpy(), [1e-12, 0.5 + 1e-12])


# ---------------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def fly():
    from r2mae_core import data
    return {"genes": data.load("dm_genes"), "chr2r": data.load("dm_chr2r"), "promoters": data.load("dm_promoters")}


@pytest.fixture(scope="module")
def exon_task(fly):
    return dna.exon_intron_task(fly["genes"], window=100, chr2r=fly["chr2r"], seed=3)


@pytest.fixture(scope="module")
def promoter_task(fly):
    return dna.promoter_task(fly["promoters"], fly["chr2r"], seed=3)


@pytest.fixture(scope="module")
def bacteria():
    from r2mae_core import data
    return data.load("bacteria")


@pytest.fixture(scope="module")
def species_task(bacteria):
    return dna.species_task(bacteria, n_train=200, n_test=50, seed=3)


# ---------------------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_kmer_round_trip(k):
    tok = dna.DNATokenizer(k)
    assert tok.vocab_size == 10 + (4 ** k if k > 1 else 0)
    assert tok.vocab[:5] == dna.SPECIAL_TOKENS and tok.vocab[dna.N_ID] == "N"
    rng = np.random.default_rng(k)
    for n in [0, 1, k - 1, k, 5 * k + 1, 257]:
        seq = _random_dna(rng, max(n, 0))
        ids = tok.encode(seq)
        assert len(ids) == tok.n_tokens(len(seq))
        assert tok.decode(ids) == seq
        assert ids.dtype == np.int64 and (ids > dna.N_ID).all()  # no specials/N for ACGT text
        assert (ids[:len(seq) // k] >= tok.first_random_id).all()  # k-mers (not the tail) are replaceable
        assert np.array_equal(tok.encode(seq.lower()), ids)  # soft mask is not a token


def test_tokenizer_n_and_iupac():
    t1, t3 = dna.DNATokenizer(1), dna.DNATokenizer(3)
    assert t1.encode("ACGTNRY").tolist() == [6, 7, 8, 9, 5, 5, 5]
    assert t1.decode(t1.encode("acgtryn")) == "ACGTNNN"
    ids = t3.encode("ACGNAATTTG")  # ACG, NAA -> [UNK], TTT, then single G
    assert ids[1] == dna.UNK_ID and t3.decode(ids) == "ACGNNNTTTG"
    assert ids[0] == t3.vocab.index("ACG") and ids[-1] == t3.vocab.index("G")
    codes = np.array([0, 1, 2, 3, 4], dtype=np.uint8)
    assert np.array_equal(t1.encode(codes), t1.encode("ACGTN"))
    assert t1.first_random_id == 6 and t3.first_random_id == 10


def test_tokenize_windows_shapes_and_mask():
    tok = dna.DNATokenizer(2)
    out = dna.tokenize_windows(["ACGTAC", "AC", "ACGTACGTACGT"], tok, seq_len=6, add_cls=True, add_sep=True)
    ids, att = out["input_ids"], out["attention_mask"]
    assert ids.shape == (3, 6) and att.dtype == bool
    assert (ids[:, 0] == dna.CLS_ID).all()
    assert ids[1].tolist()[:3] == [dna.CLS_ID, tok.vocab.index("AC"), dna.SEP_ID] and not att[1, 3:].any()
    assert out["n_cut"] == 1 and ids[2, -1] == dna.SEP_ID and att[2].all()


def test_reverse_complement_involution_and_examples():
    rng = np.random.default_rng(1)
    for _ in range(20):
        s = _random_dna(rng, 50, "ACGTNacgtnRYKMSWBDHV")
        assert dna.reverse_complement(dna.reverse_complement(s)) == s
        codes = rng.integers(0, 5, size=37).astype(np.uint8)
        assert np.array_equal(dna.reverse_complement(dna.reverse_complement(codes)), codes)
    assert dna.reverse_complement("AACGTn") == "nACGTT"
    assert dna.reverse_complement("aRy") == "rYt"
    assert decode(dna.reverse_complement(np.array([0, 0, 1, 4], np.uint8))) == "NGTT"


def test_clean_sequence_and_softmask_fraction():
    assert dna.clean_sequence("acgtRyN") == "ACGTNNN"
    assert dna.softmask_fraction("acGT") == 0.5
    assert np.isnan(dna.softmask_fraction(""))


# ---------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("call, name", [
    (lambda: dna.DNATokenizer(0), "k="),
    (lambda: dna.DNATokenizer(9), "k="),
    (lambda: dna.clean_sequence("ACGT-X"), "seq"),
    (lambda: dna.DNATokenizer(1).encode("AC GT"), "seq"),
    (lambda: dna.reverse_complement(np.array([0, 5])), "seq"),
    (lambda: dna.DNATokenizer(1).decode([99]), "token id"),
    (lambda: dna.tokenize_windows(["A"], dna.DNATokenizer(1), seq_len=2, add_sep=True), "seq_len="),
    (lambda: dna.exon_intron_task(pd.DataFrame(), window=100), "genes"),
    (lambda: dna.exon_intron_task(pd.DataFrame(), window=4), "window="),
    (lambda: dna.exon_intron_task(pd.DataFrame(), classes=("exon", "utr")), "classes="),
    (lambda: dna.exon_intron_task(pd.DataFrame(), max_n_frac=1.5), "max_n_frac="),
    (lambda: dna.exon_intron_task(pd.DataFrame(), seed=-1), "seed="),
    (lambda: dna.species_task(_toy_genome(), min_length=300, max_length=200), "max_length="),
    (lambda: dna.species_task(_toy_genome(), n_test_groups=3), "n_test_groups="),
    (lambda: dna.species_task(_toy_genome(), label="phylum"), "label="),
    (lambda: dna.species_task(_toy_genome(), max_length=50_000), "max_length="),
    (lambda: dna.pretraining_regions(_toy_genome(), margin=-1), "margin="),
    (lambda: dna.pretraining_regions(_toy_genome(), [pd.DataFrame({"x": [1]})]), "exclude"),
    (lambda: dna.tile_regions(_toy_genome(), pd.DataFrame({"record": ["zz"], "start": [0], "end": [9]}), 4),
     "record="),
])
def test_bad_inputs_one_line_errors(call, name):
    with pytest.raises(ValueError) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg and name in msg


def test_real_data_bad_inputs(fly):
    for kwargs, name in [({"length": 4}, "length="), ({"test_fraction": 0}, "test_fraction="),
                         ({"block_size": 100}, "block_size="), ({"gc_bins": 0}, "gc_bins=")]:
        with pytest.raises(ValueError, match=name) as err:
            dna.promoter_task(fly["promoters"], fly["chr2r"], **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no test windows") as err:  # no exon of any test gene is 5 kb long
        dna.exon_intron_task(fly["genes"], window=5_000)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------- toy genome
def _toy_genome(seed: int = 0, n_run: tuple[int, int] = (2_000, 2_600)) -> Genome:
    """Two species x three strains of 10 kb; strain s1 of species A has an N run."""
    rng = np.random.default_rng(seed)
    records, rows = {}, []
    for sp in ("A", "B"):
        for st in ("s1", "s2", "s3"):
            codes = rng.integers(0, 4, size=10_000).astype(np.uint8)
            if (sp, st) == ("A", "s1"):
                codes[n_run[0]:n_run[1]] = 4
            name = f"{sp}/{st}/chr"
            records[name] = codes
            rows.append({"record": name, "length": 10_000, "species": sp, "genus": sp, "strain": st})
    return Genome("toy", records, {}, pd.DataFrame(rows))


def test_n_handling_drops_windows_above_threshold():
    genome = _toy_genome(n_run=(0, 9_000))  # A/s1 is 90% N: most fragments drawn there are N-rich
    strict = dna.species_task(genome, n_train=300, n_test=100, max_n_frac=0.0, seed=1)
    assert (strict.table["n_frac"] == 0).all() and not strict.table["sequence"].str.contains("N").any()
    loose = dna.species_task(genome, n_train=300, n_test=100, max_n_frac=1.0, seed=1)
    assert loose.table["sequence"].str.contains("N").any()
    half = dna.species_task(genome, n_train=300, n_test=100, max_n_frac=0.5, seed=1)
    assert (half.table["n_frac"] <= 0.5).all()
    for task in (strict, loose, half):  # still balanced after dropping
        assert (task.balance["n"].to_numpy() == np.array([100, 100, 300, 300])).all()
    tiles = dna.tile_regions(genome, pd.DataFrame({"record": ["A/s1/chr"], "start": [0], "end": [10_000]}), 100)
    assert len(tiles) == 10 and (tiles["start"] >= 9_000).all()


def test_pretraining_regions_exclusion_margin_and_n_runs():
    genome = _toy_genome()
    excl = pd.DataFrame({"record": ["B/s2/chr", "elsewhere"], "start": [1_000, 0], "end": [1_500, 5]})
    reg = dna.pretraining_regions(genome, [excl], margin=10, min_n_run=100)
    b2 = reg[reg["record"] == "B/s2/chr"][["start", "end"]].to_numpy().tolist()
    assert b2 == [[0, 990], [1_510, 10_000]]
    a1 = reg[reg["record"] == "A/s1/chr"][["start", "end"]].to_numpy().tolist()
    assert a1 == [[0, 2_000], [2_600, 10_000]]  # N run removed
    assert reg["length"].sum() == 6 * 10_000 - 520 - 600
    assert len(dna.pretraining_regions(genome, [excl], margin=10, min_n_run=1_000)) == 7  # N run kept


def test_species_toy_holds_out_whole_strains():
    task = dna.species_task(_toy_genome(), min_length=20, max_length=50, n_train=40, n_test=10, seed=5)
    t = task.table
    for _, part in t.groupby("label"):
        train, test = set(part.loc[part.split == "train", "group"]), set(part.loc[part.split == "test", "group"])
        assert train.isdisjoint(test) and len(test) == 1
    assert t["sequence"].str.len().between(20, 50).all()


# ---------------------------------------------------------------------------------------------- exon/intron
def test_exon_intron_split_by_gene(exon_task, fly):
    t, genes = exon_task.table, fly["genes"]
    train, test = set(t.loc[t.split == "train", "group"]), set(t.loc[t.split == "test", "group"])
    assert train.isdisjoint(test)
    assert test <= set(genes.loc[genes.split == "test", "locus"])
    assert train <= set(genes.loc[genes.split == "train", "locus"])
    # no training window overlaps any test gene locus on chr2R, and every test window lies in one
    assert dna.count_overlaps(t[t.split == "train"], exon_task.test_sources) == 0
    assert dna.count_overlaps(t[t.split == "test"], exon_task.test_sources) == (t.split == "test").sum()


def test_exon_intron_windows_length_labels_balance(exon_task, fly):
    t = exon_task.table
    assert (t["sequence"].str.len() == 100).all() and ((t["end"] - t["start"]) == 100).all()
    bal = exon_task.balance
    assert (bal["fraction"] == 0.5).all() and set(bal["label"]) == {"exon", "intron"}
    assert (t["y"] == (t["label"] == "intron")).all()
    chrom = fly["chr2r"].records["chr2R"]
    genes = fly["genes"].set_index("locus")
    for row in t.sample(40, random_state=0).itertuples():
        codes = chrom[row.start:row.end]
        assert row.sequence == decode(dna.reverse_complement(codes) if row.strand == "-" else codes)
        g = genes.loc[row.group]
        a, b = row.start - g.start, row.end - g.start
        in_exon = any(s <= a and b <= e for s, e in g.exons)
        assert in_exon == (row.label == "exon")
        assert row.strand == g.strand
    assert t["softmask_frac"].notna().all()


def test_exon_intron_three_classes_and_determinism(fly):
    kw = {"window": 80, "classes": ("exon", "intron", "flank"), "max_per_gene": 2}
    a = dna.exon_intron_task(fly["genes"], seed=11, **kw)
    b = dna.exon_intron_task(fly["genes"], seed=np.random.default_rng(11), **kw)
    c = dna.exon_intron_task(fly["genes"], seed=12, **kw)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table.equals(c.table)
    assert np.allclose(a.balance["fraction"], 1 / 3) and a.table["softmask_frac"].isna().all()


# ---------------------------------------------------------------------------------------------- promoter
def test_promoter_split_length_balance(promoter_task):
    t = promoter_task.table
    assert (t["sequence"].str.len() == 200).all()
    assert (promoter_task.balance["fraction"] == 0.5).all()
    assert dna.count_overlaps(t[t.split == "train"], promoter_task.test_sources) == 0
    assert dna.count_overlaps(t[t.split == "test"], promoter_task.test_sources) == (t.split == "test").sum()
    assert not t.duplicated(["record", "start", "strand"]).any()


def test_promoter_positives_are_tss_proximal(promoter_task, fly):
    prom = fly["promoters"]
    meta = prom.metadata[prom.metadata.chrom == "chr2R"]
    upstream_tails = {decode(prom.records[r][-200:]) for r in meta["record"]}
    pos = promoter_task.table[promoter_task.table.label == "promoter"]
    assert set(pos["sequence"]) <= upstream_tails
    assert len(pos) >= 0.9 * meta["region"].str.cat(meta["strand"]).nunique()


def test_promoter_background_is_gc_and_repeat_matched(promoter_task):
    t = promoter_task.table
    for _, part in t.groupby("split"):
        pos, bg = part[part.label == "promoter"], part[part.label == "background"]
        assert abs(pos["gc"].mean() - bg["gc"].mean()) < 0.01
        assert abs(pos["softmask_frac"].mean() - bg["softmask_frac"].mean()) < 0.02
        assert np.array_equal(np.sort(_strata(pos)), np.sort(_strata(bg)))  # exact per-stratum match


def test_promoter_determinism(promoter_task, fly):
    again = dna.promoter_task(fly["promoters"], fly["chr2r"], seed=3)
    pd.testing.assert_frame_equal(again.table, promoter_task.table)


# ---------------------------------------------------------------------------------------------- species
def test_species_strains_held_out(species_task, bacteria):
    t = species_task.table
    assert set(t.loc[t.split == "train", "group"]).isdisjoint(t.loc[t.split == "test", "group"])
    assert dna.count_overlaps(t[t.split == "train"], species_task.test_sources) == 0
    test_strains = set(t.loc[t.split == "test", "group"])
    meta = bacteria.metadata
    assert set(species_task.test_sources["record"]) == set(meta.loc[meta.strain.isin(test_strains), "record"])
    assert t["sequence"].str.len().between(200, 500).all()
    assert (species_task.balance.set_index(["split", "label"])["n"].unstack().to_numpy()
            == np.array([[50] * 4, [200] * 4])).all()
    reg = dna.pretraining_regions(bacteria, [species_task])
    assert set(reg["record"]).isdisjoint(species_task.test_sources["record"])
    assert set(reg["record"]) | set(species_task.test_sources["record"]) == set(bacteria.records)


def test_with_validation_holds_out_groups(exon_task):
    a = dna.with_validation(exon_task, 0.2, seed=4)
    b = dna.with_validation(exon_task, 0.2, seed=4)
    pd.testing.assert_frame_equal(a.table, b.table)
    groups = {sp: set(a.table.loc[a.table.split == sp, "group"]) for sp in ("train", "val", "test")}
    assert all(groups[x].isdisjoint(groups[y]) for x, y in [("train", "val"), ("train", "test"), ("val", "test")])
    assert len(a.table) == len(exon_task.table)
    assert groups["test"] == set(exon_task.table.query("split == 'test'").group)
    n_train_groups = exon_task.table.query("split == 'train'").group.nunique()
    assert len(groups["val"]) == round(0.2 * n_train_groups)
    with pytest.raises(ValueError, match="fraction="):
        dna.with_validation(exon_task, 1.0)


def test_with_validation_by_row_is_stratified_and_keeps_test(species_task):
    a = dna.with_validation(species_task, 0.2, seed=1, unit="row")
    pd.testing.assert_frame_equal(a.table, dna.with_validation(species_task, 0.2, seed=1, unit="row").table)
    counts = a.table.groupby(["split", "label"]).size().unstack()
    assert (counts.loc["val"] == 40).all() and (counts.loc["train"] == 160).all()  # 20% of 200 per class
    pd.testing.assert_frame_equal(a.table[a.table.split == "test"].reset_index(drop=True),
                                  species_task.table[species_task.table.split == "test"].reset_index(drop=True))
    with pytest.raises(ValueError, match="unit="):
        dna.with_validation(species_task, 0.2, unit="gene")


def test_species_determinism(species_task, bacteria):
    again = dna.species_task(bacteria, n_train=200, n_test=50, seed=3)
    pd.testing.assert_frame_equal(again.table, species_task.table)
    pd.testing.assert_frame_equal(again.test_sources, species_task.test_sources)


def test_pretraining_regions_exclude_all_test_sources(exon_task, promoter_task, fly):
    reg = dna.pretraining_regions(fly["chr2r"], [exon_task, promoter_task])
    t = pd.concat([exon_task.table, promoter_task.table])
    assert dna.count_overlaps(t[t.split == "test"], reg) == 0
    assert reg["length"].sum() > 0.5 * len(fly["chr2r"].records["chr2R"])


def test_count_overlaps_matches_brute_force():
    rng = np.random.default_rng(3)
    starts = rng.integers(0, 500, 40)
    wins = pd.DataFrame({"record": rng.choice(["a", "b"], 40), "start": starts,
                         "end": starts + rng.integers(1, 30, 40)})
    istarts = rng.integers(0, 500, 15)
    ivs = pd.DataFrame({"record": rng.choice(["a", "c"], 15), "start": istarts,
                        "end": istarts + rng.integers(1, 60, 15)})
    brute = sum(any(r.record == q.record and r.start < q.end and q.start < r.end for q in ivs.itertuples())
                for r in wins.itertuples())
    assert dna.count_overlaps(wins, ivs) == brute
    assert dna.count_overlaps(wins, ivs.iloc[:0]) == 0
